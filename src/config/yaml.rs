//! YAML text to a tree of nodes that each know where they were written.
//!
//! `saphyr-parser` gives events with their spans; this builds the small tree the reader
//! walks. Scalars are resolved by the YAML 1.2 core schema (`yes` and `on` are strings,
//! not booleans) and keep the text as written, so `cpus: 1.50` stays `1.50`. A mapping
//! may not repeat a key. Anchors and aliases work; an alias is a copy of its anchor's
//! node, positions included. Tags other than `!!str` (and `!!seq`, `!!map` on
//! collections) are refused rather than guessed at.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, StrInput, Tag};

/// A place in the text: line and column, both from 1 (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: usize,
    pub column: usize,
}

impl At {
    fn from_marker(m: &Marker) -> At {
        At {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub at: At,
    pub message: String,
}

fn fault<T>(at: At, message: impl Into<String>) -> Result<T, Fault> {
    Err(Fault {
        at,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: At,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer, as written (`42`, `0x2a`).
    Int(String),
    /// A floating-point number, as written (`1.50`, `1e3`).
    Float(String),
    Str(String),
    List(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping. A key is a scalar, taken as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub at: At,
    pub value: Node,
}

/// Deeper than this is not a configuration file (and would deepen our recursion).
const MAX_DEPTH: usize = 64;
/// More nodes than this, counting every alias's copy, is an alias bomb or not a
/// configuration file.
const MAX_NODES: usize = 100_000;

/// The document in `text`, or `None` when it holds none or an empty one (only comments,
/// `---` alone, `null`).
pub fn parse(text: &str) -> Result<Option<Node>, Fault> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: Vec::new(),
        nodes: 0,
    };
    let mut root = None;
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return fault(
                        At::from_marker(&span.start),
                        "a second YAML document: the file holds one",
                    );
                }
                let (event, span) = builder.next()?;
                root = Some(builder.node(event, span, 0)?);
            }
            _ => {}
        }
    }
    Ok(root.filter(|n| n.value != Value::Null))
}

struct Builder<'a> {
    parser: Parser<'a, StrInput<'a>>,
    /// Anchored nodes by anchor id: few, so a list.
    anchors: Vec<(usize, Node)>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), Fault> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => fault(
                At::from_marker(e.marker()),
                format!("invalid YAML: {}", e.info()),
            ),
            // The parser ends every stream with StreamEnd, after which we stop asking.
            None => fault(At { line: 1, column: 1 }, "invalid YAML: unexpected end"),
        }
    }

    fn count(&mut self, n: usize, at: At) -> Result<(), Fault> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return fault(
                at,
                format!("more than {MAX_NODES} values (aliases included)"),
            );
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, Fault> {
        let at = At::from_marker(&span.start);
        if depth > MAX_DEPTH {
            return fault(at, format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.count(1, at)?;
        let (anchor, value) = match event {
            Event::Scalar(text, style, anchor, tag) => (anchor, scalar(&text, style, tag, at)?),
            Event::SequenceStart(anchor, tag) => {
                check_tag(tag, "seq", at)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (anchor, Value::List(items))
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(tag, "map", at)?;
                (anchor, Value::Map(self.entries(depth)?))
            }
            Event::Alias(id) => {
                let Some((_, node)) = self.anchors.iter().rev().find(|(a, _)| *a == id).cloned()
                else {
                    return fault(at, "an alias to an unknown anchor");
                };
                self.count(size(&node), at)?;
                return Ok(node);
            }
            _ => return fault(at, "invalid YAML: unexpected structure"),
        };
        let node = Node { at, value };
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }

    fn entries(&mut self, depth: usize) -> Result<Vec<Entry>, Fault> {
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if let Event::MappingEnd = event {
                return Ok(entries);
            }
            let key = self.node(event, span, depth + 1)?;
            let name = match key.value {
                Value::Str(s) | Value::Int(s) | Value::Float(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Null => return fault(key.at, "a key without a name"),
                Value::List(_) | Value::Map(_) => {
                    return fault(key.at, "a key must be a name, not a list or a mapping");
                }
            };
            if let Some(first) = entries.iter().find(|e| e.key == name) {
                return fault(
                    key.at,
                    format!("duplicate key {name:?} (first at line {})", first.at.line),
                );
            }
            let (event, span) = self.next()?;
            let value = self.node(event, span, depth + 1)?;
            entries.push(Entry {
                key: name,
                at: key.at,
                value,
            });
        }
    }
}

/// How many nodes `node` holds, itself included.
fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::List(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|e| 1 + size(&e.value)).sum(),
        _ => 0,
    }
}

/// A collection may carry its own core tag (`!!seq`, `!!map`) and no other.
fn check_tag(tag: Option<std::borrow::Cow<'_, Tag>>, own: &str, at: At) -> Result<(), Fault> {
    match tag {
        Some(t) if !(t.is_yaml_core_schema() && t.suffix == own) => {
            fault(at, format!("the YAML tag {t} is not supported here"))
        }
        _ => Ok(()),
    }
}

/// A scalar by the YAML 1.2 core schema: only a plain (unquoted) scalar can be null, a
/// boolean or a number; `!!str` makes any scalar a string.
fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<std::borrow::Cow<'_, Tag>>,
    at: At,
) -> Result<Value, Fault> {
    if let Some(t) = tag {
        if t.is_yaml_core_schema() && t.suffix == "str" {
            return Ok(Value::Str(text.to_string()));
        }
        return fault(at, format!("the YAML tag {t} is not supported here"));
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if is_int(text) => Value::Int(text.to_string()),
        _ if is_float(text) => Value::Float(text.to_string()),
        _ => Value::Str(text.to_string()),
    })
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`.
fn is_int(s: &str) -> bool {
    let digits = |t: &str, radix| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(octal) = s.strip_prefix("0o") {
        return digits(octal, 8);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return digits(hex, 16);
    }
    digits(s.strip_prefix(['-', '+']).unwrap_or(s), 10)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `[-+]?.inf`, `.nan`.
fn is_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if matches!(s, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    exponent_ok && digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> At {
        At { line, column }
    }

    fn root(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }

    fn entries(text: &str) -> Vec<Entry> {
        match root(text).value {
            Value::Map(e) => e,
            v => panic!("not a map: {v:?}"),
        }
    }

    #[test]
    fn keys_and_values_know_their_place() {
        let e = entries("# c\nname: x\nresources:\n  memory:   2g\n");
        assert_eq!((e[0].key.as_str(), e[0].at), ("name", at(2, 1)));
        assert_eq!(e[0].value.at, at(2, 7));
        let Value::Map(inner) = &e[1].value.value else {
            panic!()
        };
        assert_eq!((inner[0].key.as_str(), inner[0].at), ("memory", at(4, 3)));
        assert_eq!(
            inner[0].value,
            Node {
                at: at(4, 13),
                value: Value::Str("2g".into())
            }
        );
    }

    #[test]
    fn scalars_follow_the_core_schema_and_keep_their_text() {
        let value = |t: &str| root(&format!("k: {t}\n")).value;
        let one = |t: &str| match value(t) {
            Value::Map(mut e) => e.remove(0).value.value,
            v => panic!("{v:?}"),
        };
        assert_eq!(one("true"), Value::Bool(true));
        assert_eq!(one("False"), Value::Bool(false));
        assert_eq!(one("yes"), Value::Str("yes".into()));
        assert_eq!(one("\"true\""), Value::Str("true".into()));
        assert_eq!(one("~"), Value::Null);
        assert_eq!(one(""), Value::Null);
        assert_eq!(one("0x1F"), Value::Int("0x1F".into()));
        assert_eq!(one("-12"), Value::Int("-12".into()));
        assert_eq!(one("1.50"), Value::Float("1.50".into()));
        assert_eq!(one(".5e3"), Value::Float(".5e3".into()));
        assert_eq!(one("1.2.3"), Value::Str("1.2.3".into()));
        assert_eq!(one("2g"), Value::Str("2g".into()));
        assert_eq!(one("'5'"), Value::Str("5".into()));
        assert_eq!(one("!!str 5"), Value::Str("5".into()));
    }

    #[test]
    fn empty_documents_are_none() {
        for text in ["", "# only a comment\n", "---\n", "null\n", "---\n...\n"] {
            assert_eq!(parse(text).unwrap(), None, "{text:?}");
        }
    }

    #[test]
    fn a_repeated_key_is_refused_where_it_repeats() {
        let e = parse("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(e.at, at(4, 3));
        assert_eq!(e.message, "duplicate key \"c\" (first at line 3)");
        assert!(parse("a: 1\na: 1\n").is_err());
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let e = entries("base: &b [x, y]\nother: *b\n");
        assert_eq!(e[1].value.value, e[0].value.value);
    }

    #[test]
    fn an_alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.starts_with("more than"), "{e:?}");
    }

    #[test]
    fn bad_yaml_says_where() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML: "), "{e:?}");
        assert!(e.at.line >= 2, "{e:?}");
        let e = parse("a: b: c\n").unwrap_err();
        assert_eq!(e.at.line, 1, "{e:?}");
    }

    #[test]
    fn one_document_only() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.at, at(2, 1));
    }

    #[test]
    fn tags_other_than_str_are_refused() {
        let e = parse("a: !!int 5\n").unwrap_err();
        assert_eq!(e.at, at(1, 4));
        assert!(parse("a: !custom x\n").is_err());
        assert!(parse("a: !!map {b: 1}\n").is_ok());
    }

    #[test]
    fn keys_must_be_names() {
        assert!(parse("? [a]\n: 1\n").is_err());
        assert!(parse("~: 1\n").is_err());
        assert_eq!(entries("1: x\n")[0].key, "1");
    }
}
