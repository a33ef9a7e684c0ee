//! The hijacked attach connection. ureq cannot hand over a connection after an HTTP
//! upgrade, so attach is a plain Unix stream: write the request, read the `101` head, then
//! the socket carries the container's raw streams both ways.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::client::Client;
use crate::io_reason::io_reason;
use crate::runtime::{Error, ErrorKind, Result, StdinSink};

/// Open `attach` on container `id`. Returns the stream positioned after the response head,
/// plus any bytes that arrived with the head.
pub fn attach(client: &Client, id: &str, stdin: bool) -> Result<(UnixStream, Vec<u8>)> {
    let mut stream = UnixStream::connect(client.socket()).map_err(|e| client.unreachable(&e))?;
    // The head must come promptly; the stream itself has no deadline.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(lost)?;
    let path = client.versioned(&format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
        u8::from(stdin)
    ));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: moat/{}\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(lost)?;

    let (status, rest) = read_head(&mut stream)?;
    if status != 101 && status != 200 {
        return Err(error_answer(&stream, status, rest));
    }
    stream.set_read_timeout(None).map_err(lost)?;
    Ok((stream, rest))
}

/// Read the answer's head; its status and the bytes that came after the head.
fn read_head(stream: &mut UnixStream) -> Result<(u16, Vec<u8>)> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let end = loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                return Err(Error::new(
                    ErrorKind::ConnectionLost,
                    WHAT,
                    "Docker closed the connection before answering",
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    WHAT,
                    "Docker did not answer within 30s",
                ));
            }
            Err(e) => return Err(lost(e)),
        };
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 64 * 1024 {
            return Err(Error::new(
                ErrorKind::Other,
                WHAT,
                "Docker's answer has no end of headers",
            ));
        }
    };
    let rest = head.split_off(end);
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, rest))
}

/// An error answer: its body (JSON with `message`) follows the head.
fn error_answer(stream: &UnixStream, status: u16, rest: Vec<u8>) -> Error {
    let mut body = rest;
    let _ = stream.take(64 * 1024).read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_str::<serde_json::Value>(
        text.trim_start_matches(|c: char| c.is_ascii_hexdigit() || c.is_whitespace()),
    )
    .ok()
    .and_then(|v| {
        v.get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
    })
    .unwrap_or_else(|| format!("HTTP {status}"));
    let kind = if status == 404 {
        ErrorKind::NotFound
    } else {
        ErrorKind::Other
    };
    Error::new(kind, WHAT, message)
}

fn lost(e: io::Error) -> Error {
    Error::new(
        ErrorKind::ConnectionLost,
        WHAT,
        format!("connection to Docker lost: {}", io_reason(&e)),
    )
}

const WHAT: &str = "attaching to the container";

/// Bytes that arrived with the response head, then the socket.
pub struct Prefixed {
    pub prefix: Vec<u8>,
    pub pos: usize,
    pub stream: UnixStream,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.stream.read(buf)
    }
}

/// The container's stdin: the write half of the attach socket.
pub struct AttachStdin(pub UnixStream);

impl Write for AttachStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl StdinSink for AttachStdin {
    /// Half-close: Docker then closes the container's stdin (the container is created with
    /// `StdinOnce`), while the output keeps flowing on the read half.
    fn close(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }
}
