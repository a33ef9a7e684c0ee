//! One line of `logs.jsonl` into a record, or an error that says why it cannot be used.

use std::fmt;

use serde::Deserialize;

use super::MAX_RECORD;
use super::encode::b64_decode;
use crate::stream::Stream;

/// One record of `logs.jsonl`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub ts: String,
    pub stream: Stream,
    /// The bytes of the piece (from `line` or `b64`), without `\n`.
    pub data: Vec<u8>,
    /// More of the same line follows in a later record of this stream.
    pub partial: bool,
    /// False for the tail of a stream that ended without `\n`.
    pub eol: bool,
}

#[derive(Deserialize)]
struct RawRecord {
    ts: String,
    stream: String,
    line: Option<String>,
    b64: Option<String>,
    #[serde(default)]
    partial: bool,
    #[serde(default = "default_eol")]
    eol: bool,
}

fn default_eol() -> bool {
    true
}

/// Decode one line of `logs.jsonl` (a trailing `\n` or whitespace is allowed). Unknown fields
/// are ignored. Never panics; the error says what is wrong.
pub fn parse_record(line: &[u8]) -> Result<LogRecord, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("empty record".to_string());
    }
    let raw: RawRecord =
        serde_json::from_slice(line).map_err(|e| format!("malformed record: {e}"))?;
    let stream = Stream::parse(&raw.stream).ok_or_else(|| {
        format!(
            "unknown stream {:?} (expected stdout, stderr or tty)",
            raw.stream
        )
    })?;
    let data = match (raw.line, raw.b64) {
        (Some(l), None) => l.into_bytes(),
        (None, Some(b)) => b64_decode(b.as_bytes()).map_err(|e| format!("invalid b64: {e}"))?,
        (Some(_), Some(_)) => return Err("record has both \"line\" and \"b64\"".to_string()),
        (None, None) => return Err("record has neither \"line\" nor \"b64\"".to_string()),
    };
    Ok(LogRecord {
        ts: raw.ts,
        stream,
        data,
        partial: raw.partial,
        eol: raw.eol,
    })
}

/// Why a line of `logs.jsonl` could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogErrorKind {
    /// Not a record: bad JSON, missing or mistyped fields, unknown stream, bad base64, or
    /// longer than any record the writer produces.
    Malformed,
    /// The last line has no `\n` and does not parse: a write cut short (crash, full disk) or,
    /// for a run that is still live, a record being written right now.
    Torn,
    /// Reading the file failed; reading stops.
    Io,
}

/// A line of `logs.jsonl` that was skipped, or a read error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogError {
    /// 1-based line number in `logs.jsonl` (for `Io`: the line being read).
    pub line: u64,
    pub kind: LogErrorKind,
    pub reason: String,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            LogErrorKind::Malformed => write!(f, "logs.jsonl line {}: {}", self.line, self.reason),
            LogErrorKind::Torn => write!(
                f,
                "logs.jsonl line {}: torn last line (no newline): {}",
                self.line, self.reason
            ),
            LogErrorKind::Io => write!(
                f,
                "logs.jsonl line {}: read error: {}",
                self.line, self.reason
            ),
        }
    }
}

impl std::error::Error for LogError {}

/// Turn one line of `logs.jsonl` (without its `\n`) into a record, an error, or nothing
/// (blank lines are skipped).
pub(super) fn decode_line(
    line: &[u8],
    number: u64,
    terminated: bool,
    too_long: bool,
) -> Option<Result<LogRecord, LogError>> {
    let kind = if terminated {
        LogErrorKind::Malformed
    } else {
        LogErrorKind::Torn
    };
    if too_long {
        return Some(Err(LogError {
            line: number,
            kind,
            reason: format!("record longer than {MAX_RECORD} bytes"),
        }));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(parse_record(line).map_err(|reason| LogError {
        line: number,
        kind,
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::logs::tests::XorShift;

    #[test]
    fn parse_record_messages() {
        let err = |s: &str| parse_record(s.as_bytes()).unwrap_err();
        assert!(err("").contains("empty"));
        assert!(err("[1]").contains("malformed record"));
        assert!(err(r#"{"stream":"stdout","line":"a"}"#).contains("missing field `ts`"));
        assert!(err(r#"{"ts":"1","line":"a"}"#).contains("missing field `stream`"));
        assert!(err(r#"{"ts":"1","stream":"std","line":"a"}"#).contains("unknown stream"));
        assert!(err(r#"{"ts":"1","stream":"stdout"}"#).contains("neither"));
        assert!(err(r#"{"ts":"1","stream":"stdout","line":"a","b64":"YQ=="}"#).contains("both"));
        assert!(err(r#"{"ts":"1","stream":"stdout","b64":"YQ="}"#).contains("invalid b64"));
        assert!(err(r#"{"ts":"1","stream":"stdout","line":5}"#).contains("invalid type"));
        assert!(err(r#"{"ts":"1","stream":"stdout","line":"a","line":"b"}"#).contains("duplicate"));
        assert!(err(r#"{"ts":"1","stream":"stdout","line":"\ud800"}"#).contains("malformed"));
        let not_utf8 = parse_record(b"{\"ts\":\"1\",\"stream\":\"stdout\",\"line\":\"\xff\"}");
        assert!(not_utf8.unwrap_err().contains("malformed"));
        let ok =
            parse_record(br#"{"ts":"1","stream":"tty","line":"a","new":[1],"eol":false}"#).unwrap();
        assert_eq!(
            (ok.stream, ok.data, ok.partial, ok.eol),
            (Stream::Tty, b"a".to_vec(), false, false)
        );
    }

    #[test]
    fn parse_record_never_panics() {
        let mut rng = XorShift(99);
        let valid = br#"{"ts":"2026-11-25T08:35:18.123Z","stream":"stdout","b64":"YWL/Y2Q=","partial":true}"#;
        for _ in 0..50_000 {
            let mut v = valid.to_vec();
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 => {
                        let i = rng.below(v.len());
                        v[i] = rng.next() as u8;
                    }
                    1 => {
                        let i = rng.below(v.len());
                        v.truncate(i);
                    }
                    _ => {
                        let i = rng.below(v.len() + 1);
                        v.insert(i, b"{}[]\",:\\0e-"[rng.below(11)]);
                    }
                }
                if v.is_empty() {
                    break;
                }
            }
            let _ = parse_record(&v);
        }
        let deep = "[".repeat(100_000);
        assert!(parse_record(deep.as_bytes()).is_err());
    }
}
