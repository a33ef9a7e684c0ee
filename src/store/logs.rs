//! `logs.jsonl`, the captured output of a run (SPEC §4): one JSON object per line,
//!
//! ```text
//! {"ts":"2026-11-25T08:35:18.123Z","stream":"stdout","line":"hello"}
//! {"ts":"2026-11-25T08:35:18.123Z","stream":"stderr","b64":"/w=="}
//! {"ts":"2026-11-25T08:35:18.124Z","stream":"stdout","line":"<64 KiB>","partial":true}
//! {"ts":"2026-11-25T08:35:18.125Z","stream":"stdout","line":"end of it, no newline","eol":false}
//! ```
//!
//! A line is cut at `\n` (not stored). A line longer than 64 KiB is split into records of at
//! most 64 KiB, all but the last marked `"partial":true`; cuts back off up to 3 bytes to land
//! on a UTF-8 character boundary. A piece that is not valid UTF-8 is stored as `"b64"` (standard
//! base64 with padding) instead of `"line"`. A tail without `\n` at the end of the run is written
//! with `"eol":false`. Joining the records of one stream, with a `\n` after every record that
//! is neither partial nor `eol:false`, gives back exactly the bytes written to that stream.
//!
//! Writing: [`LogWriter`]. Reading a finished log: [`LogReader`] (whole lines) or [`Records`]
//! (record by record, bounded memory). Following a live log: [`Follower`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::ops::Not;
use std::time::SystemTime;

use serde::Deserialize;

use crate::stream::Stream;
use crate::time::rfc3339_ms;

/// The most bytes of output one record holds, and the most a writer buffers per stream.
pub const MAX_PIECE: usize = 64 * 1024;

/// The longest `logs.jsonl` line the readers accept. The longest line the writer produces is a
/// 64 KiB piece of control characters, each escaped as `\u00XX`: about 385 KiB.
const MAX_RECORD: usize = 1024 * 1024;

/// The writer hands its records to the underlying writer when this many bytes are queued, and
/// at the end of every [`LogWriter::write`] call.
const OUT_BATCH: usize = 128 * 1024;

const STREAMS: [Stream; 3] = [Stream::Stdout, Stream::Stderr, Stream::Tty];

fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
        Stream::Tty => 2,
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

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

/// The first `\n` in `b`. Eight bytes at a time (a word with a zero byte where `\n` was),
/// since every byte of a run's output passes through here.
fn find_newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut words = b.chunks_exact(8);
    for (k, w) in words.by_ref().enumerate() {
        let x = u64::from_le_bytes(w.try_into().expect("chunks of eight")) ^ NL;
        if (x.wrapping_sub(LO) & !x & HI) != 0 {
            let at = w
                .iter()
                .position(|&c| c == b'\n')
                .expect("the word has one");
            return Some(k * 8 + at);
        }
    }
    let tail = words.remainder();
    tail.iter()
        .position(|&c| c == b'\n')
        .map(|at| b.len() - tail.len() + at)
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

/// Whether every byte is printable ASCII other than `"` and `\\`: valid UTF-8 that goes
/// into a JSON string as is. No early exit, so the compiler can do it many bytes at a time.
fn is_plain_ascii(s: &[u8]) -> bool {
    s.iter()
        .fold(false, |bad, &b| {
            bad | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
        })
        .not()
}

/// For each byte: 0 if it goes into a JSON string as is, `u` if it is written as `\u00XX`,
/// else the letter that follows the backslash.
static JSON_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Append the valid UTF-8 `s` as the inside of a JSON string (what serde_json would write).
fn escape_json(buf: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let e = JSON_ESCAPE[b as usize];
        if e == 0 {
            continue;
        }
        buf.extend_from_slice(&s[start..i]);
        if e == b'u' {
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]);
        } else {
            buf.extend_from_slice(&[b'\\', e]);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
}

// ---------------------------------------------------------------------------------------------
// Base64 (standard alphabet, with padding)

const B64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static B64_DECODE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 64 {
        t[B64_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn b64_encode(out: &mut Vec<u8>, data: &[u8]) {
    let a = |n: u32| B64_ALPHABET[(n & 63) as usize];
    out.reserve(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[a(n >> 18), a(n >> 12), a(n >> 6), a(n)]);
    }
    match *chunks.remainder() {
        [x] => {
            let n = u32::from(x) << 16;
            out.extend_from_slice(&[a(n >> 18), a(n >> 12), b'=', b'=']);
        }
        [x, y] => {
            let n = u32::from(x) << 16 | u32::from(y) << 8;
            out.extend_from_slice(&[a(n >> 18), a(n >> 12), a(n >> 6), b'=']);
        }
        _ => {}
    }
}

fn b64_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(4) {
        return Err(format!("length {} is not a multiple of 4", s.len()));
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let quads = s.len() / 4;
    for (q, c) in s.chunks_exact(4).enumerate() {
        let pad = if q + 1 == quads {
            c.iter().rev().take_while(|&&b| b == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return Err("too much padding".to_string());
        }
        let mut n: u32 = 0;
        for (j, &b) in c[..4 - pad].iter().enumerate() {
            let v = B64_DECODE[b as usize];
            if v == 0xFF {
                return Err(format!("invalid character at offset {}", q * 4 + j));
            }
            n |= u32::from(v) << (18 - 6 * j);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Reader

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

/// Joins partial records into lines, separately per stream.
struct Joiner {
    pending: [Option<Pending>; 3],
    seq: u64,
}

struct Pending {
    ts: String,
    data: Vec<u8>,
    seq: u64,
}

impl Joiner {
    fn new() -> Self {
        Joiner {
            pending: [None, None, None],
            seq: 0,
        }
    }

    /// Add a record; returns the line it completes, if any.
    fn push(&mut self, rec: LogRecord) -> Option<LogLine> {
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
    fn finish(&mut self) -> Vec<LogLine> {
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

/// Turn one line of `logs.jsonl` (without its `\n`) into a record, an error, or nothing
/// (blank lines are skipped).
fn decode_line(
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

/// Iterator over the records of a `logs.jsonl`, each at most [`MAX_PIECE`] bytes of output, so
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

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io::Cursor;
    use std::rc::Rc;
    use std::time::{Duration, UNIX_EPOCH};

    const T0: &str = "2026-11-25T08:35:18.123Z";

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_595_718_123)
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

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn write_all(chunks: &[(Stream, &[u8])]) -> Vec<u8> {
        let mut w = LogWriter::new(Vec::new());
        for (s, b) in chunks {
            w.write(*s, b, t0()).unwrap();
        }
        w.finish(t0()).unwrap();
        w.into_inner()
    }

    fn records(log: &[u8]) -> Vec<LogRecord> {
        Records::new(log)
            .map(|r| r.expect("valid record"))
            .collect()
    }

    /// Per stream, the bytes the lines stand for.
    fn join(lines: impl IntoIterator<Item = LogLine>) -> [Vec<u8>; 3] {
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

    fn lines_of(log: &[u8]) -> Vec<LogLine> {
        LogReader::new(log)
            .map(|r| r.expect("valid line"))
            .collect()
    }

    fn text(log: &[u8]) -> &str {
        std::str::from_utf8(log).unwrap()
    }

    #[test]
    fn base64_known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            b64_encode(&mut out, plain.as_bytes());
            assert_eq!(text(&out), enc);
            assert_eq!(b64_decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
        let mut out = Vec::new();
        b64_encode(&mut out, &[0xFB, 0xFF, 0xBF]);
        assert_eq!(text(&out), "+/+/");
    }

    #[test]
    fn base64_round_trips_all_bytes_and_lengths() {
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for len in 0..300 {
            let data = &all[len % 7..len % 7 + len];
            let mut enc = Vec::new();
            b64_encode(&mut enc, data);
            assert_eq!(enc.len(), len.div_ceil(3) * 4);
            assert_eq!(b64_decode(&enc).unwrap(), data);
        }
    }

    #[test]
    fn base64_rejects_bad_input() {
        for bad in [
            "Zg",
            "Zg=",
            "Z===",
            "====",
            "Zg==Zg==",
            "Zm9v!A==",
            "Zm 9",
            "Zm=v",
            "Zm9vYmFy=",
            "é===",
        ] {
            assert!(b64_decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

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
    fn escapes_json() {
        let input = "q\"b\\s/\t\n".as_bytes();
        let mut w = LogWriter::new(Vec::new());
        w.write(Stream::Stdout, input, t0()).unwrap();
        w.write(
            Stream::Stdout,
            "c\x00\x01\x08\x0b\x0c\r\x1b[1m\x1f\x7f é ✓ 😀 \u{2028}\n".as_bytes(),
            t0(),
        )
        .unwrap();
        let log = w.into_inner();
        let want = concat!(
            r#""line":"q\"b\\s/\t"}"#,
            "\n",
            r#""line":"c\u0000\u0001\b\u000b\f\r\u001b[1m\u001f"#,
            "\x7f é ✓ 😀 \u{2028}\"}\n",
        );
        let got = text(&log);
        let stripped: String = got
            .lines()
            .map(|l| &l[l.find("\"line\"").unwrap()..])
            .flat_map(|l| [l, "\n"])
            .collect();
        assert_eq!(stripped, want);
        // serde_json agrees on every byte below 0x80.
        let all: Vec<u8> = (0..0x80u8).filter(|&b| b != b'\n').collect();
        let mut w = LogWriter::new(Vec::new());
        w.write(Stream::Stderr, &all, t0()).unwrap();
        w.write(Stream::Stderr, b"\n", t0()).unwrap();
        let mine = w.into_inner();
        let theirs = format!(
            "{{\"ts\":\"{T0}\",\"stream\":\"stderr\",\"line\":{}}}\n",
            serde_json::to_string(std::str::from_utf8(&all).unwrap()).unwrap()
        );
        assert_eq!(text(&mine), theirs);
        assert_eq!(records(&mine)[0].data, all);
    }

    #[test]
    fn invalid_utf8_becomes_b64() {
        let log = write_all(&[(Stream::Stdout, b"ab\xffcd\n\xc3\n\xc3\xa9\n")]);
        let t = text(&log);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].ends_with(r#""b64":"YWL/Y2Q="}"#), "{}", lines[0]);
        assert!(lines[1].ends_with(r#""b64":"ww=="}"#), "{}", lines[1]);
        assert!(lines[2].ends_with(r#""line":"é"}"#), "{}", lines[2]);
        let recs = records(&log);
        assert_eq!(recs[0].data, b"ab\xffcd");
        assert_eq!(recs[1].data, b"\xc3");
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

    /// Random streams: every byte value, text, long runs without newline, multibyte chars.
    fn random_stream(rng: &mut XorShift, len: usize) -> Vec<u8> {
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

    #[derive(Default)]
    struct Growing {
        data: Vec<u8>,
        pos: usize,
        max_read: usize,
    }

    /// A file another process appends to: reads return what is there, then 0.
    struct GrowingReader(Rc<RefCell<Growing>>);

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
