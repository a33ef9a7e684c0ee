//! One `.moatignore` pattern, matched as Docker matches a `.dockerignore` pattern: Go's
//! `filepath.Match` rules over the whole path relative to the workspace (`*` and `?` never
//! cross a `/`, `[...]` classes, `\` escapes), plus `**`, which matches any number of
//! directories, none included.
//!
//! Docker compiles a pattern to a regular expression; the same language is matched here
//! by a small backtracking matcher, so moat needs no regex engine for it.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` (and `**/`) inside the pattern: any number of whole directories, none
    /// included (Docker's `(.*/)?`).
    Dirs,
    /// `**` at the end: anything at all.
    Rest,
    /// `[...]` (or `[^...]`): one character other than `/` in (or not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern, without its `!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
    /// More than one `*` or `**`: matching may revisit the same state, so it is memoised.
    backtracks: bool,
}

impl Pattern {
    /// Compile a cleaned pattern (see [`super::ignore`] for the cleaning). The error says
    /// what is wrong with it.
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    // `**/` is `**`: the slash belongs to it.
                    if chars.peek() == Some(&'/') {
                        chars.next();
                    }
                    if chars.peek().is_none() {
                        Token::Rest
                    } else {
                        Token::Dirs
                    }
                }
                '*' => Token::Star,
                '?' => Token::One,
                '[' => class(&mut chars)?,
                // A trailing backslash stands for itself.
                '\\' => Token::Literal(chars.next().unwrap_or('\\')),
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        let stars = tokens
            .iter()
            .filter(|t| matches!(t, Token::Star | Token::Dirs))
            .count();
        Ok(Pattern {
            tokens,
            backtracks: stars > 1,
        })
    }

    /// The pattern that matches `path` and nothing else.
    pub fn literal(path: &str) -> Pattern {
        Pattern {
            tokens: path.chars().map(Token::Literal).collect(),
            backtracks: false,
        }
    }

    /// Whether the pattern matches all of `path` (relative, `/`-separated).
    pub fn matches(&self, path: &str) -> bool {
        self.run(path, false)
    }

    /// Whether some path below the directory `dir` could match the pattern, or be below
    /// a path that matches it: used to decide whether an excluded directory must still be
    /// walked for a `!` pattern. It may say yes where no path will match; never no where
    /// one would.
    pub fn may_match_below(&self, dir: &str) -> bool {
        self.run(&format!("{dir}/"), true)
    }

    fn run(&self, path: &str, prefix: bool) -> bool {
        let mut matcher = Matcher {
            tokens: &self.tokens,
            path,
            prefix,
            failed: if self.backtracks {
                vec![false; (self.tokens.len() + 1) * (path.len() + 1)]
            } else {
                Vec::new()
            },
        };
        matcher.at(0, 0)
    }
}

/// Parse a class after its `[`: `[^...]` negates; `a-z` is a range; `\` escapes; a `]`
/// right after the opening (or after `^`) is literal.
fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token, String> {
    let negated = chars.peek() == Some(&'^');
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = match chars.next() {
            None => return Err("a '[' is not closed".into()),
            Some(']') if !first => break,
            Some('\\') => chars
                .next()
                .ok_or("a '[' is not closed (it ends in '\\')")?,
            Some(c) => c,
        };
        first = false;
        let mut end = c;
        if chars.peek() == Some(&'-') {
            let mut ahead = chars.clone();
            ahead.next();
            match ahead.next() {
                // `a-]`: the dash is literal, the class ends.
                Some(']') | None => {}
                Some(hi) => {
                    chars.next();
                    chars.next();
                    end = if hi == '\\' {
                        chars
                            .next()
                            .ok_or("a '[' is not closed (it ends in '\\')")?
                    } else {
                        hi
                    };
                    if end < c {
                        return Err(format!("bad range {c}-{end} in '[...]'"));
                    }
                }
            }
        }
        ranges.push((c, end));
    }
    Ok(Token::Class { negated, ranges })
}

/// One match of a pattern against one path.
struct Matcher<'a> {
    tokens: &'a [Token],
    path: &'a str,
    /// Accept as soon as the path is used up (or the tokens end at one of its `/`):
    /// [`Pattern::may_match_below`].
    prefix: bool,
    /// States (token, byte offset) already known to fail; empty when not memoised.
    failed: Vec<bool>,
}

impl Matcher<'_> {
    /// Whether tokens from `t` match the path from byte `p`.
    fn at(&mut self, mut t: usize, mut p: usize) -> bool {
        loop {
            if self.prefix && p == self.path.len() {
                return true;
            }
            let Some(token) = self.tokens.get(t) else {
                // A pattern that ends at a `/` of the path matched one of its directories.
                return p == self.path.len() || (self.prefix && self.path[p..].starts_with('/'));
            };
            let rest = &self.path[p..];
            let next = rest.chars().next();
            match token {
                Token::Literal(c) => match next {
                    Some(n) if n == *c => p += n.len_utf8(),
                    _ => return false,
                },
                Token::One => match next {
                    Some(n) if n != '/' => p += n.len_utf8(),
                    _ => return false,
                },
                Token::Class { negated, ranges } => match next {
                    Some(n)
                        if n != '/'
                            && ranges.iter().any(|&(lo, hi)| lo <= n && n <= hi) != *negated =>
                    {
                        p += n.len_utf8()
                    }
                    _ => return false,
                },
                Token::Rest => return true,
                Token::Star | Token::Dirs => return self.star(t, p),
            }
            t += 1;
        }
    }

    /// Tokens from `t`, a `*` or `**`, matching the path from `p`: try every place the
    /// rest of the pattern could start.
    fn star(&mut self, t: usize, p: usize) -> bool {
        let slot = t * (self.path.len() + 1) + p;
        if self.failed.get(slot) == Some(&true) {
            return false;
        }
        let dirs = self.tokens[t] == Token::Dirs;
        let mut k = p;
        let found = loop {
            // `*` stops at a `/`; `**` may start the rest only right after one (or here).
            let may_start = !dirs || k == p || self.path[..k].ends_with('/');
            if may_start && self.at(t + 1, k) {
                break true;
            }
            match self.path[k..].chars().next() {
                None => break false,
                Some('/') if !dirs => break false,
                Some(c) => k += c.len_utf8(),
            }
        };
        if !found && let Some(f) = self.failed.get_mut(slot) {
            *f = true;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Pattern::compile(pattern).unwrap().matches(path)
    }

    #[test]
    fn star_and_question_mark_stay_within_a_name() {
        assert!(m("*.log", "a.log"));
        assert!(!m("*.log", "dir/a.log"));
        assert!(m("*/temp*", "somedir/temporary.txt"));
        assert!(!m("*/temp*", "a/b/temp"));
        assert!(m("*/*/temp*", "somedir/subdir/temporary.txt"));
        assert!(m("temp?", "tempa"));
        assert!(!m("temp?", "temp"));
        assert!(!m("temp?", "temp/"));
        assert!(m("a?c", "aéc"));
        assert!(m("*", "anything"));
        assert!(!m("*", "a/b"));
    }

    #[test]
    fn double_star_spans_directories() {
        assert!(m("**/*.go", "main.go"));
        assert!(m("**/*.go", "a/b/c.go"));
        assert!(!m("**/*.go", "a/b/c.goo"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "a/xb"));
        assert!(m("a/**", "a/x/y"));
        assert!(!m("a/**", "a"));
        assert!(m("**", "a/b/c"));
        assert!(m("**/node_modules", "node_modules"));
        assert!(m("**/node_modules", "x/node_modules"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("[abc].txt", "b.txt"));
        assert!(!m("[abc].txt", "d.txt"));
        assert!(m("[a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[^a-c]x", "ax"));
        assert!(!m("a[^x]b", "a/b"), "a class never matches /");
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\", "a\\"));
        assert!(m("a.b+(c)", "a.b+(c)"));
        assert!(Pattern::compile("[abc").is_err());
        assert!(Pattern::compile("[z-a]").is_err());
    }

    #[test]
    fn many_stars_do_not_explode() {
        let pattern = Pattern::compile("**/*a*a*a*a*a*a*a*b").unwrap();
        let path = format!("{}/{}", "a".repeat(200), "a".repeat(200));
        assert!(!pattern.matches(&path));
    }

    #[test]
    fn may_match_below_sees_into_directories() {
        let p = |s: &str| Pattern::compile(s).unwrap();
        assert!(p("foo/bar").may_match_below("foo"));
        assert!(!p("foo/bar").may_match_below("baz"));
        assert!(p("**/*.py").may_match_below("anything"));
        assert!(p("*/keep").may_match_below("x"));
        assert!(!p("*/keep").may_match_below("x/y"));
        // A pattern matching the directory or one above it re-includes all below.
        assert!(p("foo").may_match_below("foo/bar"));
        assert!(!p("fo").may_match_below("foo/bar"));
    }
}
