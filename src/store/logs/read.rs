//! Reading a finished `logs.jsonl`: record by record, or line by line.

use std::collections::VecDeque;
use std::io::{self, BufRead, ErrorKind};

use super::join::{Joiner, LogLine};
use super::parse::{LogError, LogErrorKind, LogRecord, decode_line};
use super::{MAX_RECORD, find_newline};

/// Iterator over the records of a `logs.jsonl`, each at most [`MAX_PIECE`](super::MAX_PIECE) bytes of output, so
/// memory stays bounded however long the lines are. Malformed lines are yielded as errors and
/// skipped; blank lines are skipped silently; a read error is yielded once and ends the
/// iteration. A last line without `\n` is used if it parses, else yielded as a `Torn` error.
pub struct Records<R: BufRead> {
    r: R,
    buf: Vec<u8>,
    line: u64,
    done: bool,
}

impl<R: BufRead> Records<R> {
    pub fn new(r: R) -> Self {
        Records {
            r,
            buf: Vec::new(),
            line: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<LogRecord, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let read = read_line_bounded(&mut self.r, &mut self.buf);
            self.line += 1;
            let (terminated, too_long) = match read {
                Ok(Some(x)) => x,
                Ok(None) => {
                    self.done = true;
                    self.line -= 1;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(LogError {
                        line: self.line,
                        kind: LogErrorKind::Io,
                        reason: e.to_string(),
                    }));
                }
            };
            if let Some(item) = decode_line(&self.buf, self.line, terminated, too_long) {
                return Some(item);
            }
        }
        None
    }
}

/// Read one line into `buf` (without `\n`), keeping at most MAX_RECORD bytes of it.
/// Returns `None` at end of input, else `(terminated by \n, longer than MAX_RECORD)`.
fn read_line_bounded<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<(bool, bool)>> {
    buf.clear();
    let mut any = false;
    let mut too_long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any.then_some((false, too_long)));
        }
        any = true;
        let (chunk, found) = match find_newline(avail) {
            Some(n) => (&avail[..n], true),
            None => (avail, false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_RECORD {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(found);
        r.consume(used);
        if found {
            return Ok(Some((true, too_long)));
        }
    }
}

/// Iterator over the logical lines of a finished `logs.jsonl`: partial records are joined per
/// stream (interleaved streams are fine), and a line is yielded when its last piece is read,
/// so lines of different streams come out in the order they were completed. At the end, lines
/// still missing their last piece are yielded with `eol: false`. Errors are yielded in place
/// and reading continues with the next line (except after an `Io` error).
///
/// A joined line is held in memory whole; use [`Records`] to stream arbitrarily long lines.
pub struct LogReader<R: BufRead> {
    records: Records<R>,
    joiner: Joiner,
    tail: VecDeque<LogLine>,
    at_end: bool,
}

impl<R: BufRead> LogReader<R> {
    pub fn new(r: R) -> Self {
        LogReader {
            records: Records::new(r),
            joiner: Joiner::new(),
            tail: VecDeque::new(),
            at_end: false,
        }
    }
}

impl<R: BufRead> Iterator for LogReader<R> {
    type Item = Result<LogLine, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(line) = self.tail.pop_front() {
                return Some(Ok(line));
            }
            if self.at_end {
                return None;
            }
            match self.records.next() {
                None => {
                    self.at_end = true;
                    self.tail.extend(self.joiner.finish());
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(rec)) => {
                    if let Some(line) = self.joiner.push(rec) {
                        return Some(Ok(line));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::logs::tests::lines_of;

    #[test]
    fn reader_skips_garbage_and_reports_a_torn_last_line() {
        let log = concat!(
            r#"{"ts":"1","stream":"stdout","line":"one"}"#,
            "\n",
            "garbage\n",
            r#"{"ts":"2","stream":"stdout","line":"two","partial":true}"#,
            "\n",
            r#"{"ts":"3","stream":"bogus","line":"x"}"#,
            "\n",
            "\n",
            r#"{"ts":"4","stream":"stdout","line":" too"}"#,
            "\n",
            r#"{"ts":"5","stream":"stderr","li"#,
        );
        let items: Vec<_> = LogReader::new(log.as_bytes()).collect();
        assert_eq!(items.len(), 5, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().data, b"one");
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (2, LogErrorKind::Malformed));
        assert!(
            e.to_string()
                .starts_with("logs.jsonl line 2: malformed record"),
            "{e}"
        );
        let e = items[2].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (4, LogErrorKind::Malformed));
        assert!(e.reason.contains("unknown stream \"bogus\""), "{e}");
        assert_eq!(items[3].as_ref().unwrap().data, b"two too");
        let e = items[4].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (7, LogErrorKind::Torn));
        assert!(e.to_string().contains("torn last line"), "{e}");

        // A last line without `\n` that parses is used.
        let log = r#"{"ts":"1","stream":"stdout","line":"ok"}"#;
        assert_eq!(lines_of(log.as_bytes())[0].data, b"ok");
    }
}
