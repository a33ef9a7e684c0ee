//! Docker's multiplexed stream format (non-TTY attach): 8-byte frame headers
//! `[stream, 0, 0, 0, len u32 big-endian]`, then `len` bytes. Stream 1 is stdout, 2 stderr
//! (0, stdin echoed back, is shown as stdout; 3, the engine's own error, as stderr).

use std::io::{self, BufReader, Read};

use crate::runtime::OutputSource;
use crate::stream::Stream;

pub struct Demux<R> {
    /// Buffered: a frame's header and payload usually arrive in one read.
    inner: BufReader<R>,
    /// Bytes left in the current frame, and its stream.
    remaining: usize,
    stream: Stream,
}

impl<R: Read> Demux<R> {
    pub fn new(inner: R) -> Demux<R> {
        Demux {
            inner: BufReader::with_capacity(64 * 1024, inner),
            remaining: 0,
            stream: Stream::Stdout,
        }
    }

    /// Whether more bytes of `stream` can be read without waiting: the current frame has
    /// buffered bytes left, or it is done and a whole header of the same stream is buffered
    /// (then it is taken).
    fn more_of(&mut self, stream: Stream) -> io::Result<bool> {
        let buffered = self.inner.buffer();
        if self.remaining > 0 {
            return Ok(!buffered.is_empty());
        }
        let same = match buffered.first() {
            Some(0 | 1) => stream == Stream::Stdout,
            Some(2 | 3) => stream == Stream::Stderr,
            _ => false,
        };
        if same && buffered.len() >= 8 {
            self.read_header()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Read the next frame header. `Ok(false)` at a clean end of stream.
    fn read_header(&mut self) -> io::Result<bool> {
        let mut header = [0u8; 8];
        let mut filled = 0;
        while filled < header.len() {
            match self.inner.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "output stream ended inside a frame header",
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stream = match header[0] {
            0 | 1 => Stream::Stdout,
            2 | 3 => Stream::Stderr,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("output stream has a frame for unknown stream {other}"),
                ));
            }
        };
        self.remaining = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        Ok(true)
    }
}

impl<R: Read + Send> OutputSource for Demux<R> {
    fn next_chunk(&mut self, buf: &mut [u8]) -> io::Result<Option<(Stream, usize)>> {
        if buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty buffer"));
        }
        while self.remaining == 0 {
            if !self.read_header()? {
                return Ok(None);
            }
        }
        // Fill `buf` with as much of this stream as has already arrived: the rest of the
        // frame, then following frames of the same stream. One chunk per burst keeps the
        // writes to the terminal and the log few; nothing here waits for more input.
        let stream = self.stream;
        let mut got = 0;
        loop {
            let want = self.remaining.min(buf.len() - got);
            let n = loop {
                match self.inner.read(&mut buf[got..got + want]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "output stream ended inside a frame",
                        ));
                    }
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            self.remaining -= n;
            got += n;
            if got == buf.len() || !self.more_of(stream)? {
                return Ok(Some((stream, got)));
            }
        }
    }

    fn pending(&self) -> bool {
        !self.inner.buffer().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    /// A reader that hands out at most `step` bytes per read, to exercise split headers.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn collect(data: Vec<u8>, step: usize, bufsize: usize) -> io::Result<Vec<(Stream, Vec<u8>)>> {
        let mut demux = Demux::new(Trickle { data, pos: 0, step });
        let mut buf = vec![0u8; bufsize];
        let mut out: Vec<(Stream, Vec<u8>)> = Vec::new();
        while let Some((stream, n)) = demux.next_chunk(&mut buf)? {
            match out.last_mut() {
                Some((s, bytes)) if *s == stream => bytes.extend_from_slice(&buf[..n]),
                _ => out.push((stream, buf[..n].to_vec())),
            }
        }
        Ok(out)
    }

    #[test]
    fn splits_frames_by_stream_at_any_read_size() {
        let mut data = frame(1, b"out\n");
        data.extend(frame(2, b"err\n"));
        data.extend(frame(1, b""));
        data.extend(frame(1, &[0, 255, 10]));
        for step in 1..20 {
            for bufsize in 1..10 {
                let got = collect(data.clone(), step, bufsize).unwrap();
                assert_eq!(
                    got,
                    vec![
                        (Stream::Stdout, b"out\n".to_vec()),
                        (Stream::Stderr, b"err\n".to_vec()),
                        (Stream::Stdout, vec![0, 255, 10]),
                    ]
                );
            }
        }
    }

    #[test]
    fn truncated_frame_is_an_error_not_a_hang() {
        let mut data = frame(1, b"hello");
        data.truncate(10);
        assert!(collect(data, 3, 4).is_err());
        let data = vec![1, 0, 0];
        assert!(collect(data, 3, 4).is_err());
    }

    #[test]
    fn unknown_stream_is_an_error() {
        assert!(collect(frame(9, b"x"), 8, 8).is_err());
    }

    #[test]
    fn empty_stream_ends_cleanly() {
        assert_eq!(collect(Vec::new(), 1, 1).unwrap(), vec![]);
    }
}
