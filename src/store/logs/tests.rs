//! What the tests of the parts of logs/ share, and tests that span several parts.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::encode::is_plain_ascii;
use super::{LogLine, LogReader, LogRecord, LogWriter, MAX_PIECE, Records, STREAMS};
use super::{find_newline, stream_index};
use crate::stream::Stream;

pub(super) const T0: &str = "2026-11-25T08:35:18.123Z";

pub(super) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_795_595_718_123)
}

pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(super) fn write_all(chunks: &[(Stream, &[u8])]) -> Vec<u8> {
    let mut w = LogWriter::new(Vec::new());
    for (s, b) in chunks {
        w.write(*s, b, t0()).unwrap();
    }
    w.finish(t0()).unwrap();
    w.into_inner()
}

pub(super) fn records(log: &[u8]) -> Vec<LogRecord> {
    Records::new(log)
        .map(|r| r.expect("valid record"))
        .collect()
}

/// Per stream, the bytes the lines stand for.
pub(super) fn join(lines: impl IntoIterator<Item = LogLine>) -> [Vec<u8>; 3] {
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    for l in lines {
        let o = &mut out[stream_index(l.stream)];
        o.extend_from_slice(&l.data);
        if l.eol {
            o.push(b'\n');
        }
    }
    out
}

pub(super) fn lines_of(log: &[u8]) -> Vec<LogLine> {
    LogReader::new(log)
        .map(|r| r.expect("valid line"))
        .collect()
}

pub(super) fn text(log: &[u8]) -> &str {
    std::str::from_utf8(log).unwrap()
}

/// Random streams: every byte value, text, long runs without newline, multibyte chars.
pub(super) fn random_stream(rng: &mut XorShift, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        match rng.below(8) {
            0 => v.extend((0..rng.below(300)).map(|_| rng.next() as u8)),
            1 => v.extend(std::iter::repeat_n(b'z', rng.below(3 * MAX_PIECE))),
            2 => v.extend(std::iter::repeat_n("é✓😀".as_bytes(), rng.below(20_000)).flatten()),
            3 => v.extend(std::iter::repeat_n(b'\n', rng.below(5))),
            4 => v.extend_from_slice(b"\"quoted\\ \t\x1b[0m\r\n"),
            _ => {
                let n = rng.below(200);
                v.extend((0..n).map(|_| b' ' + rng.below(95) as u8));
                v.push(b'\n');
            }
        }
    }
    v
}

#[derive(Default)]
pub(super) struct Growing {
    pub(super) data: Vec<u8>,
    pub(super) pos: usize,
    pub(super) max_read: usize,
}

/// A file another process appends to: reads return what is there, then 0.
pub(super) struct GrowingReader(pub(super) Rc<RefCell<Growing>>);

impl Read for GrowingReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut g = self.0.borrow_mut();
        let n = out.len().min(g.data.len() - g.pos).min(g.max_read.max(1));
        out[..n].copy_from_slice(&g.data[g.pos..g.pos + n]);
        g.pos += n;
        Ok(n)
    }
}

#[test]
fn fast_scans_agree_with_plain_ones() {
    let mut rng = XorShift(99);
    for _ in 0..5000 {
        let len = rng.below(40);
        let v: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => b'\n',
                1 => b'"',
                2 => rng.below(256) as u8,
                _ => b'a' + rng.below(26) as u8,
            })
            .collect();
        assert_eq!(
            find_newline(&v),
            v.iter().position(|&c| c == b'\n'),
            "{v:?}"
        );
        let plain = v
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        assert_eq!(is_plain_ascii(&v), plain, "{v:?}");
    }
}

#[test]
fn every_byte_value_round_trips_in_every_stream() {
    let all: Vec<u8> = (0..=255u8).collect();
    let mut chunks = Vec::new();
    for s in STREAMS {
        for i in 0..=255usize {
            chunks.push((s, &all[i..]));
            chunks.push((s, &all[..i]));
        }
    }
    let log = write_all(&chunks);
    let joined = join(lines_of(&log));
    for (k, s) in STREAMS.iter().enumerate() {
        let want: Vec<u8> = chunks
            .iter()
            .filter(|(cs, _)| cs == s)
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        assert_eq!(joined[k], want);
    }
}
