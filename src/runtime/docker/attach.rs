//! The hijacked attach connection. ureq cannot hand over a connection after an HTTP
//! upgrade, so attach is a connection of its own to the engine (the same kind ureq's
//! transport dials: a Unix socket, TCP, TLS or ssh): write the request, read the `101`
//! head, then the connection carries the container's raw streams both ways.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::client::Client;
use crate::io_reason::io_reason;
use crate::runtime::endpoint::{Conn, Reader, Writer};
use crate::runtime::{Error, ErrorKind, Result, StdinSink};

/// How long the engine may take to answer the attach request (the stream itself has no
/// deadline).
const HEAD_DEADLINE: Duration = Duration::from_secs(30);

/// The most of an error answer's body read: its message is a line.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Open `attach` on container `id`. Returns the connection's halves positioned after the
/// response head, plus any bytes that arrived with the head.
pub fn attach(client: &Client, id: &str, stdin: bool) -> Result<(Reader, Writer, Vec<u8>)> {
    let mut stream = client.dialer().dial().map_err(|e| client.unreachable(&e))?;
    stream.set_read_timeout(Some(HEAD_DEADLINE));
    let path = client.versioned(&format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
        u8::from(stdin)
    ));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: moat/{}\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(lost)?;

    let (head, rest) = read_head(&mut stream)?;
    let status = status_of(&head);
    if status != 101 && status != 200 {
        return Err(error_answer(&mut stream, &head, status, rest));
    }
    stream.set_read_timeout(None);
    let (reader, writer) = stream.split();
    Ok((reader, writer, rest))
}

/// Read the answer's head: the head, and the bytes that came after it.
fn read_head(stream: &mut Conn) -> Result<(String, Vec<u8>)> {
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
                    format!(
                        "the engine did not answer within {}s",
                        HEAD_DEADLINE.as_secs()
                    ),
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
    Ok((String::from_utf8_lossy(&head).into_owned(), rest))
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` in `head`, if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// An error answer: its body (JSON with `message`) follows the head. Its end is where the
/// head says (Content-Length, or the last chunk): the engine may keep the connection open
/// after it (Podman does), so reading to the end of the stream would wait.
fn error_answer(stream: &mut Conn, head: &str, status: u16, rest: Vec<u8>) -> Error {
    let mut body = rest;
    let length = header(head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut buf = [0u8; 4096];
    loop {
        let complete = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete || body.len() >= ERROR_BODY_LIMIT {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
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

/// Bytes that arrived with the response head, then the connection.
pub struct Prefixed {
    pub prefix: Vec<u8>,
    pub pos: usize,
    pub stream: Reader,
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

/// The container's stdin: the write half of the attach connection.
pub struct AttachStdin {
    pub writer: Writer,
    /// The command has exited: nothing more is forwarded. (Podman writes its own error
    /// into the output when stdin arrives for a command that is gone.)
    pub exited: Arc<AtomicBool>,
}

impl Write for AttachStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.exited.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl StdinSink for AttachStdin {
    /// Half-close: Docker then closes the container's stdin (the container is created with
    /// `StdinOnce`), while the output keeps flowing on the read half.
    fn close(&mut self) -> io::Result<()> {
        self.writer.close()
    }
}
