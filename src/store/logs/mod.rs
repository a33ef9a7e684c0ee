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

mod encode;
mod follow;
mod join;
mod parse;
mod read;
#[cfg(test)]
mod tests;
mod writer;

pub use follow::Follower;
pub use join::LogLine;
pub use parse::{LogError, LogErrorKind, LogRecord, parse_record};
pub use read::{LogReader, Records};
pub use writer::LogWriter;

use crate::stream::Stream;

/// The most bytes of output one record holds, and the most a writer buffers per stream.
pub const MAX_PIECE: usize = 64 * 1024;

/// The longest `logs.jsonl` line the readers accept. The longest line the writer produces is a
/// 64 KiB piece of control characters, each escaped as `\u00XX`: about 385 KiB.
const MAX_RECORD: usize = 1024 * 1024;

const STREAMS: [Stream; 3] = [Stream::Stdout, Stream::Stderr, Stream::Tty];

fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
        Stream::Tty => 2,
    }
}

/// The first `\n` in `b`. Every byte of a run's output passes through here (and every byte
/// of a log read back), so it is `memchr`'s vectorised search.
fn find_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}
