//! Joining the partial records of each stream back into lines.

use super::parse::LogRecord;
use super::{STREAMS, stream_index};
use crate::stream::Stream;

/// A logical line: the consecutive partial records of one stream joined with the record that
/// ends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The timestamp of the first piece.
    pub ts: String,
    pub stream: Stream,
    /// The line without its `\n`.
    pub data: Vec<u8>,
    /// False when the stream ended without `\n` (or the log ended in the middle of the line):
    /// print no newline after it.
    pub eol: bool,
}

/// Joins partial records into lines, separately per stream.
pub(super) struct Joiner {
    pending: [Option<Pending>; 3],
    seq: u64,
}

struct Pending {
    ts: String,
    data: Vec<u8>,
    seq: u64,
}

impl Joiner {
    pub(super) fn new() -> Self {
        Joiner {
            pending: [None, None, None],
            seq: 0,
        }
    }

    /// Add a record; returns the line it completes, if any.
    pub(super) fn push(&mut self, rec: LogRecord) -> Option<LogLine> {
        let slot = &mut self.pending[stream_index(rec.stream)];
        if rec.partial {
            match slot {
                Some(p) => p.data.extend_from_slice(&rec.data),
                None => {
                    self.seq += 1;
                    *slot = Some(Pending {
                        ts: rec.ts,
                        data: rec.data,
                        seq: self.seq,
                    });
                }
            }
            return None;
        }
        Some(match slot.take() {
            Some(mut p) => {
                p.data.extend_from_slice(&rec.data);
                LogLine {
                    ts: p.ts,
                    stream: rec.stream,
                    data: p.data,
                    eol: rec.eol,
                }
            }
            None => LogLine {
                ts: rec.ts,
                stream: rec.stream,
                data: rec.data,
                eol: rec.eol,
            },
        })
    }

    /// Lines still waiting for their last piece, in the order they started, as `eol: false`.
    pub(super) fn finish(&mut self) -> Vec<LogLine> {
        let mut rest: Vec<(u64, LogLine)> = (0..3)
            .filter_map(|i| {
                self.pending[i].take().map(|p| {
                    let line = LogLine {
                        ts: p.ts,
                        stream: STREAMS[i],
                        data: p.data,
                        eol: false,
                    };
                    (p.seq, line)
                })
            })
            .collect();
        rest.sort_by_key(|(seq, _)| *seq);
        rest.into_iter().map(|(_, l)| l).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::logs::tests::lines_of;

    #[test]
    fn reader_joins_interleaved_partials_per_stream() {
        let log = concat!(
            r#"{"ts":"1","stream":"stdout","line":"ab","partial":true}"#,
            "\n",
            r#"{"ts":"2","stream":"stderr","line":"err","partial":true}"#,
            "\n",
            r#"{"ts":"3","stream":"tty","line":"tty line"}"#,
            "\n",
            r#"{"ts":"4","stream":"stdout","b64":"Y2Q=","partial":true}"#,
            "\n",
            r#"{"ts":"5","stream":"stderr","line":"!"}"#,
            "\n",
            r#"{"ts":"6","stream":"stdout","line":"e"}"#,
            "\n",
            r#"{"ts":"7","stream":"stdout","line":"x","partial":true}"#,
            "\n",
            r#"{"ts":"8","stream":"stderr","line":"y","partial":true}"#,
            "\n",
        );
        let lines = lines_of(log.as_bytes());
        let got: Vec<(&str, Stream, &[u8], bool)> = lines
            .iter()
            .map(|l| (l.ts.as_str(), l.stream, &l.data[..], l.eol))
            .collect();
        assert_eq!(
            got,
            [
                ("3", Stream::Tty, &b"tty line"[..], true),
                ("2", Stream::Stderr, b"err!", true),
                ("1", Stream::Stdout, b"abcde", true),
                ("7", Stream::Stdout, b"x", false),
                ("8", Stream::Stderr, b"y", false),
            ]
        );
    }
}
