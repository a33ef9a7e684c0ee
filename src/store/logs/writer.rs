//! The writer: output chunks of a run in, `logs.jsonl` records out.

use std::io::{self, Write};
use std::time::SystemTime;

use super::encode::{b64_encode, escape_json, is_plain_ascii};
use super::{MAX_PIECE, STREAMS, find_newline, stream_index};
use crate::stream::Stream;
use crate::time::rfc3339_ms;

/// The writer hands its records to the underlying writer when this many bytes are queued, and
/// at the end of every [`LogWriter::write`] call.
const OUT_BATCH: usize = 128 * 1024;

/// Turns the output chunks of a run into `logs.jsonl` records.
///
/// Memory is bounded: at most [`MAX_PIECE`] bytes of unterminated output per stream, plus a
/// batch of encoded records that is handed to `out` before each [`write`](Self::write) returns.
/// Dropping the writer without [`finish`](Self::finish) loses only the unterminated tails.
pub struct LogWriter<W: Write> {
    out: W,
    /// Unterminated output per stream, in [`stream_index`] order; never longer than MAX_PIECE.
    pending: [Vec<u8>; 3],
    /// Encoded records not yet handed to `out`.
    buf: Vec<u8>,
    ts: TsCache,
}

impl<W: Write> LogWriter<W> {
    pub fn new(out: W) -> Self {
        LogWriter {
            out,
            pending: [Vec::new(), Vec::new(), Vec::new()],
            buf: Vec::new(),
            ts: TsCache::new(),
        }
    }

    /// Feed bytes of one stream as they arrive. Complete lines become records at once; the
    /// unterminated tail is kept per stream (chunks of different streams may interleave), and
    /// when a stream's unterminated line grows past 64 KiB its first 64 KiB go out as a
    /// `partial` record. `ts` is the timestamp put on the records this call produces. The
    /// records are handed to the underlying writer before this returns; call
    /// [`flush`](Self::flush) if it buffers.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], ts: SystemTime) -> io::Result<()> {
        self.ts.set(ts);
        let i = stream_index(stream);
        let mut rest = bytes;
        while let Some(n) = find_newline(rest) {
            self.feed(i, &rest[..n], true);
            rest = &rest[n + 1..];
            if self.buf.len() >= OUT_BATCH {
                self.drain()?;
            }
        }
        self.feed(i, rest, false);
        self.drain()
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }

    /// End of the run: write each stream's unterminated tail as a record with `"eol":false`
    /// (stdout, then stderr, then tty), then flush. The writer may be used again afterwards.
    pub fn finish(&mut self, ts: SystemTime) -> io::Result<()> {
        self.ts.set(ts);
        let LogWriter {
            pending, buf, ts, ..
        } = self;
        for (i, p) in pending.iter_mut().enumerate() {
            if !p.is_empty() {
                encode_record(buf, ts.get(), STREAMS[i], p, false, false);
                p.clear();
            }
        }
        self.flush()
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Bytes of unterminated output held for `stream`.
    #[cfg(test)]
    fn pending_len(&self, stream: Stream) -> usize {
        self.pending[stream_index(stream)].len()
    }

    /// Add `data` to stream `i`'s current line; `end` means a `\n` followed it.
    fn feed(&mut self, i: usize, mut data: &[u8], end: bool) {
        let LogWriter {
            pending, buf, ts, ..
        } = self;
        let stream = STREAMS[i];
        let p = &mut pending[i];
        loop {
            if p.len() + data.len() <= MAX_PIECE {
                if !end {
                    push_bounded(p, data);
                } else if p.is_empty() {
                    encode_record(buf, ts.get(), stream, data, false, true);
                } else {
                    push_bounded(p, data);
                    encode_record(buf, ts.get(), stream, p, false, true);
                    p.clear();
                }
                return;
            }
            // More than a piece: the first piece goes out as a partial record.
            if p.is_empty() {
                let cut = cut_point(&data[..MAX_PIECE], data[MAX_PIECE]);
                encode_record(buf, ts.get(), stream, &data[..cut], true, true);
                data = &data[cut..];
            } else {
                let k = MAX_PIECE - p.len();
                push_bounded(p, &data[..k]);
                data = &data[k..]; // not empty: there was more than a piece
                let cut = cut_point(p, data[0]);
                encode_record(buf, ts.get(), stream, &p[..cut], true, true);
                p.drain(..cut); // keeps at most 3 bytes
            }
        }
    }

    /// Hand the queued records to `out`. On error they are dropped, so memory stays bounded.
    fn drain(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.out.write_all(&self.buf);
        self.buf.clear();
        r
    }
}

/// Append to a pending buffer without letting its capacity grow past MAX_PIECE.
fn push_bounded(p: &mut Vec<u8>, data: &[u8]) {
    let need = p.len() + data.len();
    debug_assert!(need <= MAX_PIECE);
    if need > p.capacity() {
        let target = need.max(p.capacity() * 2).clamp(256, MAX_PIECE);
        p.reserve_exact(target - p.len());
    }
    p.extend_from_slice(data);
}

/// Where to end a piece: `head` holds MAX_PIECE bytes and `next` is the byte after them. Cut
/// after all of `head`, unless that splits a UTF-8 character: then back off (at most 3 bytes)
/// to the character's first byte. Bytes that are not UTF-8 anyway are cut at MAX_PIECE.
fn cut_point(head: &[u8], next: u8) -> usize {
    let is_cont = |b: u8| b & 0xC0 == 0x80;
    let mut cut = head.len();
    let mut at = next;
    while is_cont(at) && cut > head.len() - 3 {
        cut -= 1;
        at = head[cut];
    }
    if is_cont(at) { head.len() } else { cut }
}

/// The formatted timestamp of the current `write` call, formatted only when a record needs it
/// and only when the time changed.
struct TsCache {
    want: SystemTime,
    have: Option<SystemTime>,
    text: String,
}

impl TsCache {
    fn new() -> Self {
        TsCache {
            want: SystemTime::UNIX_EPOCH,
            have: None,
            text: String::new(),
        }
    }

    fn set(&mut self, t: SystemTime) {
        self.want = t;
    }

    fn get(&mut self) -> &str {
        if self.have != Some(self.want) {
            self.text = rfc3339_ms(self.want);
            self.have = Some(self.want);
        }
        &self.text
    }
}

/// Append one record, with its `\n`, to `buf`. Field order: ts, stream, line|b64, then
/// `"partial":true` when partial and `"eol":false` when not eol.
fn encode_record(
    buf: &mut Vec<u8>,
    ts: &str,
    stream: Stream,
    piece: &[u8],
    partial: bool,
    eol: bool,
) {
    buf.reserve(piece.len() + 96);
    buf.extend_from_slice(b"{\"ts\":\"");
    buf.extend_from_slice(ts.as_bytes()); // digits and -:.TZ only: nothing to escape
    buf.extend_from_slice(b"\",\"stream\":\"");
    buf.extend_from_slice(stream.as_str().as_bytes());
    if is_plain_ascii(piece) {
        // Most output: printable ASCII, nothing to check or escape.
        buf.extend_from_slice(b"\",\"line\":\"");
        buf.extend_from_slice(piece);
    } else if std::str::from_utf8(piece).is_ok() {
        buf.extend_from_slice(b"\",\"line\":\"");
        escape_json(buf, piece);
    } else {
        buf.extend_from_slice(b"\",\"b64\":\"");
        b64_encode(buf, piece);
    }
    buf.push(b'"');
    if partial {
        buf.extend_from_slice(b",\"partial\":true");
    }
    if !eol {
        buf.extend_from_slice(b",\"eol\":false");
    }
    buf.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::logs::Follower;
    use crate::store::logs::tests::{
        Growing, GrowingReader, T0, XorShift, join, lines_of, random_stream, records, t0, text,
        write_all,
    };
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn writes_the_documented_format() {
        let log = write_all(&[
            (Stream::Stdout, b"hello\nwor"),
            (Stream::Stderr, b"oops\n"),
            (Stream::Stdout, b"ld\n\nbye"),
            (Stream::Tty, b"\xff\xfe\n"),
        ]);
        let want = format!(
            concat!(
                "{{\"ts\":\"{t}\",\"stream\":\"stdout\",\"line\":\"hello\"}}\n",
                "{{\"ts\":\"{t}\",\"stream\":\"stderr\",\"line\":\"oops\"}}\n",
                "{{\"ts\":\"{t}\",\"stream\":\"stdout\",\"line\":\"world\"}}\n",
                "{{\"ts\":\"{t}\",\"stream\":\"stdout\",\"line\":\"\"}}\n",
                "{{\"ts\":\"{t}\",\"stream\":\"tty\",\"b64\":\"//4=\"}}\n",
                "{{\"ts\":\"{t}\",\"stream\":\"stdout\",\"line\":\"bye\",\"eol\":false}}\n",
            ),
            t = T0
        );
        assert_eq!(text(&log), want);
    }

    #[test]
    fn records_carry_the_time_they_were_completed() {
        let mut w = LogWriter::new(Vec::new());
        let t1 = t0() + Duration::from_millis(1);
        let t2 = t0() + Duration::from_secs(3600);
        w.write(Stream::Stdout, b"a", t0()).unwrap();
        w.write(Stream::Stdout, b"b\nc", t1).unwrap();
        w.finish(t2).unwrap();
        let recs = records(&w.into_inner());
        assert_eq!(recs[0].ts, "2026-11-25T08:35:18.124Z");
        assert_eq!(recs[1].ts, "2026-11-25T09:35:18.123Z");
    }

    #[test]
    fn a_long_line_without_newline_is_cut_into_partial_records() {
        let line: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let mut w = LogWriter::new(Vec::new());
        for chunk in line.chunks(4096) {
            w.write(Stream::Stdout, chunk, t0()).unwrap();
            assert!(w.pending_len(Stream::Stdout) <= MAX_PIECE);
        }
        w.finish(t0()).unwrap();
        let log = w.into_inner();
        let recs = records(&log);
        assert_eq!(recs.len(), 16);
        for r in &recs[..15] {
            assert_eq!(r.data.len(), MAX_PIECE);
            assert!(r.partial && r.eol);
        }
        assert_eq!(recs[15].data.len(), MAX_PIECE);
        assert!(!recs[15].partial && !recs[15].eol);
        assert!(text(&log).lines().all(|l| l.contains("\"line\":")));
        let lines = lines_of(&log);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].data, line);
        assert!(!lines[0].eol);
        assert_eq!(lines[0].ts, T0);
    }

    #[test]
    fn a_line_of_exactly_64k_is_one_record() {
        let mut line = vec![b'x'; MAX_PIECE];
        let mut w = LogWriter::new(Vec::new());
        w.write(Stream::Stdout, &line[..10], t0()).unwrap();
        w.write(Stream::Stdout, &line[10..], t0()).unwrap();
        assert_eq!(w.pending_len(Stream::Stdout), MAX_PIECE);
        w.write(Stream::Stdout, b"\n", t0()).unwrap();
        line.push(b'y');
        line.push(b'\n');
        w.write(Stream::Stderr, &line, t0()).unwrap();
        w.finish(t0()).unwrap();
        let recs = records(&w.into_inner());
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].data.len(), recs[0].partial), (MAX_PIECE, false));
        assert_eq!((recs[1].data.len(), recs[1].partial), (MAX_PIECE, true));
        assert_eq!((&recs[2].data[..], recs[2].partial), (&b"y"[..], false));
    }

    #[test]
    fn multibyte_characters_across_a_cut_stay_text() {
        for ch in ["é", "✓", "😀"] {
            for shift in 0..4 {
                let mut line = vec![b'a'; MAX_PIECE - shift];
                for _ in 0..3 {
                    line.extend_from_slice(ch.as_bytes());
                }
                line.extend_from_slice(b"tail");
                for chunking in [line.len(), 1000, 1] {
                    let mut w = LogWriter::new(Vec::new());
                    for c in line.chunks(chunking) {
                        w.write(Stream::Tty, c, t0()).unwrap();
                    }
                    w.write(Stream::Tty, b"\n", t0()).unwrap();
                    let log = w.into_inner();
                    assert!(!text(&log).contains("b64"), "{ch} shift {shift}");
                    let recs = records(&log);
                    assert_eq!(recs.len(), 2);
                    assert!(recs[0].data.len() >= MAX_PIECE - 3);
                    assert!(recs[0].partial);
                    let lines = lines_of(&log);
                    assert_eq!(lines.len(), 1);
                    assert_eq!(lines[0].data, line);
                }
            }
        }
    }

    #[test]
    fn invalid_bytes_at_a_cut_do_not_back_off_forever() {
        let line = vec![0x80u8; 3 * MAX_PIECE + 5];
        let log = write_all(&[(Stream::Stdout, &line)]);
        let recs = records(&log);
        assert_eq!(recs.len(), 4);
        assert!(recs[..3].iter().all(|r| r.data.len() == MAX_PIECE));
        assert!(text(&log).lines().all(|l| l.contains("\"b64\":")));
        assert_eq!(join(lines_of(&log))[0], line);
    }

    #[test]
    fn cut_point_backs_off_at_most_three_bytes() {
        let mut head = vec![b'a'; MAX_PIECE];
        assert_eq!(cut_point(&head, b'b'), MAX_PIECE);
        assert_eq!(cut_point(&head, 0xC3), MAX_PIECE); // a lead byte starts the next piece
        head[MAX_PIECE - 1] = 0xC3;
        assert_eq!(cut_point(&head, 0xA9), MAX_PIECE - 1);
        head[MAX_PIECE - 1] = 0x98;
        head[MAX_PIECE - 2] = 0x9F;
        head[MAX_PIECE - 3] = 0xF0;
        assert_eq!(cut_point(&head, 0x80), MAX_PIECE - 3);
        head[MAX_PIECE - 3] = 0x80;
        assert_eq!(cut_point(&head, 0x80), MAX_PIECE);
    }

    #[test]
    fn random_interleaved_streams_round_trip_exactly() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for round in 0..12 {
            let inputs: Vec<Vec<u8>> = (0..3)
                .map(|_| {
                    let len = rng.below(400_000);
                    random_stream(&mut rng, len)
                })
                .collect();
            let mut pos = [0usize; 3];
            let mut w = LogWriter::new(Vec::new());
            while pos.iter().zip(&inputs).any(|(p, i)| *p < i.len()) {
                let s = rng.below(3);
                let max = [16, 4096, 200_000][rng.below(3)];
                let n = (1 + rng.below(max)).min(inputs[s].len() - pos[s]);
                w.write(STREAMS[s], &inputs[s][pos[s]..pos[s] + n], t0())
                    .unwrap();
                pos[s] += n;
                for st in STREAMS {
                    assert!(w.pending_len(st) <= MAX_PIECE);
                    assert!(w.pending[stream_index(st)].capacity() <= MAX_PIECE);
                }
                assert!(w.buf.is_empty());
            }
            w.finish(t0()).unwrap();
            let log = w.into_inner();

            for rec in records(&log) {
                assert!(rec.data.len() <= MAX_PIECE);
                assert!(!rec.data.contains(&b'\n'));
            }
            let lines = lines_of(&log);
            assert_eq!(join(lines.clone()), *inputs, "round {round}");

            // The follower, reading the log as it grows in random pieces, sees the same lines.
            let shared = Rc::new(RefCell::new(Growing::default()));
            let mut f = Follower::new(GrowingReader(shared.clone()));
            let mut followed = Vec::new();
            let mut at = 0;
            while at < log.len() {
                let n = (1 + rng.below(100_000)).min(log.len() - at);
                shared.borrow_mut().data.extend_from_slice(&log[at..at + n]);
                shared.borrow_mut().max_read = 1 + rng.below(70_000);
                at += n;
                followed.extend(f.poll().unwrap().into_iter().map(Result::unwrap));
                let complete = log[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                assert_eq!(f.offset(), complete as u64);
            }
            followed.extend(f.finish().unwrap().into_iter().map(Result::unwrap));
            assert_eq!(followed, lines, "round {round}");
        }
    }

    struct FailingWriter;

    impl Write for FailingWriter {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_are_reported_and_memory_stays_bounded() {
        let mut w = LogWriter::new(FailingWriter);
        let big = vec![b'a'; 10 * MAX_PIECE];
        for _ in 0..10 {
            assert!(w.write(Stream::Stdout, &big, t0()).is_err());
            assert!(w.buf.is_empty());
            assert!(w.pending_len(Stream::Stdout) <= MAX_PIECE);
        }
        assert!(w.finish(t0()).is_err());
    }
}
