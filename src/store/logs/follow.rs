//! Following a `logs.jsonl` that is still being written (`moat logs -f`).

use std::io::{self, ErrorKind, Read};

use super::join::{Joiner, LogLine};
use super::parse::{LogError, LogRecord, decode_line};
use super::{MAX_RECORD, find_newline};

/// Follows a `logs.jsonl` that another process is still appending to (`moat logs -f`).
///
/// It reads `r` (typically a `File` opened at the start of the log) up to its current end on
/// each [`poll`](Self::poll), and yields only records whose `\n` has arrived: a half-written
/// last record is kept, unconsumed, until the rest of it is appended. Usage:
///
/// ```text
/// let mut f = Follower::new(File::open(path)?);
/// loop {
///     let items = f.poll()?;
///     print(items);
///     if items.is_empty() {            // caught up with the writer
///         if run_has_ended() {         // checked *after* an empty poll
///             print(f.finish()?);      // reads what is left, then the pending tails
///             break;
///         }
///         sleep(100ms);
///     }
/// }
/// ```
///
/// The writer finishes `logs.jsonl` before the run's state says it ended, so once the state is
/// final, `finish` sees everything.
pub struct Follower<R: Read> {
    r: R,
    /// Bytes read but not yet used: the start of a line whose `\n` has not arrived.
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no `\n`.
    scanned: usize,
    /// True while discarding a line longer than MAX_RECORD.
    skipping: bool,
    /// Bytes of the current line discarded while skipping.
    skipped: u64,
    /// Bytes of `r` consumed: the end of the last complete line.
    offset: u64,
    line: u64,
    joiner: Joiner,
}

/// Bytes read per `read` call.
const FOLLOW_CHUNK: usize = 64 * 1024;
/// A poll returns once it has yielded something and read this much, so a follower that starts
/// on a large log hands out lines in batches instead of all at once.
const FOLLOW_BUDGET: usize = 1024 * 1024;

impl<R: Read> Follower<R> {
    /// Follow `r` from its current position, which should be the start of `logs.jsonl` (or the
    /// start of a line in it; line numbers in errors then count from there).
    pub fn new(r: R) -> Self {
        Follower {
            r,
            buf: Vec::new(),
            scanned: 0,
            skipping: false,
            skipped: 0,
            offset: 0,
            line: 0,
            joiner: Joiner::new(),
        }
    }

    /// Bytes of `r` used so far: everything up to and including the last `\n` read (after
    /// [`finish`](Self::finish): everything). A half-written record is not counted.
    #[cfg(test)]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Read what has been appended and return the lines it completes, and errors for malformed
    /// records, in order. An empty result means nothing new is available yet. A line whose
    /// pieces are still arriving is held back until its last piece is read (or `finish`).
    pub fn poll(&mut self) -> io::Result<Vec<Result<LogLine, LogError>>> {
        let mut out = Vec::new();
        let mut read = 0;
        loop {
            let start = self.buf.len();
            self.buf.reserve_exact(FOLLOW_CHUNK);
            self.buf.resize(start + FOLLOW_CHUNK, 0);
            let n = match self.r.read(&mut self.buf[start..]) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(start);
                    match e.kind() {
                        ErrorKind::Interrupted => continue,
                        ErrorKind::WouldBlock => 0,
                        // Hand out what was read; a lasting error shows up on the next poll.
                        _ if !out.is_empty() => 0,
                        _ => return Err(e),
                    }
                }
            };
            self.buf.truncate(start + n);
            if n == 0 {
                return Ok(out);
            }
            read += n;
            self.take_lines(&mut out);
            if read >= FOLLOW_BUDGET && !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// The log is complete (the run has ended): read whatever is left, then return the
    /// remaining lines, including a last line without `\n` (or a `Torn` error if it does not
    /// parse) and lines whose last piece never came (as `eol: false`).
    pub fn finish(&mut self) -> io::Result<Vec<Result<LogLine, LogError>>> {
        let mut out = Vec::new();
        loop {
            let more = self.poll()?;
            if more.is_empty() {
                break;
            }
            out.extend(more);
        }
        if self.skipping || !self.buf.is_empty() {
            self.line += 1;
            self.offset += self.skipped + self.buf.len() as u64;
            if let Some(item) = decode_line(&self.buf, self.line, false, self.skipping) {
                self.push(item, &mut out);
            }
            self.buf.clear();
            self.scanned = 0;
            self.skipping = false;
            self.skipped = 0;
        }
        out.extend(self.joiner.finish().into_iter().map(Ok));
        Ok(out)
    }

    fn push(
        &mut self,
        item: Result<LogRecord, LogError>,
        out: &mut Vec<Result<LogLine, LogError>>,
    ) {
        match item {
            Ok(rec) => out.extend(self.joiner.push(rec).map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }

    /// Decode the complete lines in `buf` and drop them from it.
    fn take_lines(&mut self, out: &mut Vec<Result<LogLine, LogError>>) {
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(n) = find_newline(&self.buf[from..]) {
            let end = from + n;
            self.line += 1;
            self.offset += self.skipped + (end + 1 - start) as u64;
            let item = decode_line(&self.buf[start..end], self.line, true, self.skipping);
            self.skipping = false;
            self.skipped = 0;
            if let Some(item) = item {
                self.push(item, out);
            }
            start = end + 1;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_RECORD {
            // Not a record the writer could have written: drop it up to its `\n`.
            self.skipping = true;
            self.skipped += self.buf.len() as u64;
            self.buf.clear();
            self.scanned = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::logs::LogReader;
    use crate::store::logs::parse::LogErrorKind;
    use crate::store::logs::tests::{Growing, GrowingReader, write_all};
    use crate::stream::Stream;
    use std::cell::RefCell;
    use std::io::Cursor;
    use std::rc::Rc;

    #[test]
    fn over_long_lines_are_rejected_without_buffering_them() {
        let mut log = Vec::new();
        log.extend_from_slice(b"{\"ts\":\"1\",\"stream\":\"stdout\",\"line\":\"");
        log.extend(std::iter::repeat_n(b'a', 3 * MAX_RECORD));
        log.extend_from_slice(b"\"}\n");
        log.extend_from_slice(br#"{"ts":"2","stream":"stdout","line":"next"}"#);
        log.push(b'\n');
        log.extend(std::iter::repeat_n(b'b', 2 * MAX_RECORD));
        let expect = |items: Vec<Result<LogLine, LogError>>| {
            assert_eq!(items.len(), 3);
            let e = items[0].as_ref().unwrap_err();
            assert_eq!((e.line, e.kind), (1, LogErrorKind::Malformed));
            assert_eq!(items[1].as_ref().unwrap().data, b"next");
            let e = items[2].as_ref().unwrap_err();
            assert_eq!((e.line, e.kind), (3, LogErrorKind::Torn));
        };
        expect(LogReader::new(&log[..]).collect());
        let mut f = Follower::new(&log[..]);
        let mut items = f.poll().unwrap();
        assert!(f.buf.capacity() <= MAX_RECORD + 2 * FOLLOW_CHUNK);
        items.extend(f.finish().unwrap());
        expect(items);
        assert_eq!(f.offset(), log.len() as u64);
    }

    #[test]
    fn follower_waits_for_the_newline_of_a_half_written_record() {
        let shared = Rc::new(RefCell::new(Growing {
            max_read: usize::MAX,
            ..Growing::default()
        }));
        let append = |s: &[u8]| shared.borrow_mut().data.extend_from_slice(s);
        let mut f = Follower::new(GrowingReader(shared.clone()));
        assert!(f.poll().unwrap().is_empty());

        append(br#"{"ts":"1","stream":"stdout","line":"a"}"#);
        append(b"\n");
        append(br#"{"ts":"2","stream":"stdout","li"#);
        let got = f.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().data, b"a");
        assert_eq!(
            f.offset(),
            br#"{"ts":"1","stream":"stdout","line":"a"}"#.len() as u64 + 1
        );
        assert!(f.poll().unwrap().is_empty());

        append(br#"ne":"b","partial":true}"#);
        assert!(f.poll().unwrap().is_empty()); // still no newline
        append(b"\n");
        assert!(f.poll().unwrap().is_empty()); // a partial piece completes no line
        append(br#"{"ts":"3","stream":"stderr","line":"c"}"#);
        append(b"\n");
        let got = f.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().data, b"c");
        append(br#"{"ts":"4","stream":"stdout","line":"d"}"#);
        append(b"\n");
        let got = f.poll().unwrap();
        assert_eq!(got[0].as_ref().unwrap().data, b"bd");
        assert_eq!(got[0].as_ref().unwrap().ts, "2");

        // At the end: a pending partial comes out as eol:false; a torn tail is an error.
        append(br#"{"ts":"5","stream":"tty","line":"e","partial":true}"#);
        append(b"\n");
        append(br#"{"ts":"6","stream":"std"#);
        let got = f.finish().unwrap();
        assert_eq!(got.len(), 2);
        let e = got[0].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (6, LogErrorKind::Torn));
        let l = got[1].as_ref().unwrap();
        assert_eq!(
            (l.stream, &l.data[..], l.eol),
            (Stream::Tty, &b"e"[..], false)
        );
        assert!(f.finish().unwrap().is_empty());

        // A complete last record without `\n` is used by finish.
        let mut f = Follower::new(Cursor::new(br#"{"ts":"1","stream":"stdout","line":"z"}"#));
        assert!(f.poll().unwrap().is_empty());
        let got = f.finish().unwrap();
        assert_eq!(got[0].as_ref().unwrap().data, b"z");
    }

    #[test]
    fn follower_hands_out_a_big_backlog_in_batches() {
        let mut chunks = Vec::new();
        let line = [b'x'; 99];
        for _ in 0..100_000 {
            chunks.push((Stream::Stdout, &line[..]));
            chunks.push((Stream::Stdout, &b"\n"[..]));
        }
        let log = write_all(&chunks);
        let mut f = Follower::new(&log[..]);
        let mut total = 0;
        let mut polls = 0;
        loop {
            let got = f.poll().unwrap();
            if got.is_empty() {
                break;
            }
            assert!(got.len() < 20_000);
            total += got.len();
            polls += 1;
        }
        assert_eq!(total, 100_000);
        assert!(polls > 5);
    }
}
