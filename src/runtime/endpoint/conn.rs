//! A byte stream to an engine: a Unix socket, TCP, TLS over TCP, or an ssh process's
//! pipes. The HTTP client and the attach stream both use it. Reads take an optional
//! timeout; for attach the stream splits into a [`Reader`] and a [`Writer`] that two
//! threads use at once, and the writer can half-close (the container's stdin then sees
//! end of file while its output keeps coming).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{ChildStdin, ChildStdout};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::ClientConnection;

use super::ssh;

/// A plain socket to the engine.
#[derive(Debug)]
pub enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Socket {
    fn fd(&self) -> RawFd {
        match self {
            Socket::Unix(s) => s.as_raw_fd(),
            Socket::Tcp(s) => s.as_raw_fd(),
        }
    }

    fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
        })
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Socket::Unix(s) => s.shutdown(how),
            Socket::Tcp(s) => s.shutdown(how),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Unix(s) => s.set_write_timeout(timeout),
            Socket::Tcp(s) => s.set_write_timeout(timeout),
        }
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => (&*s).read(buf),
            Socket::Tcp(s) => (&*s).read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => (&*s).write(buf),
            Socket::Tcp(s) => (&*s).write(buf),
        }
    }
}

/// A TLS session over TCP, shared by the reader and the writer. The session is locked
/// only to move bytes in or out of it, never across a blocking socket call, so a reader
/// waiting for output never holds up the writer.
pub struct TlsStream {
    session: Mutex<ClientConnection>,
    /// Held while TLS bytes are taken from the session and written, so records reach the
    /// socket in the order the session made them.
    out: Mutex<()>,
    socket: TcpStream,
}

/// How much is read from the socket at once for a TLS session (a record's size).
const TLS_READ: usize = 16 * 1024;

/// TLS bytes read from the socket that the session has not taken yet.
pub struct TlsInput {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The socket has ended.
    eof: bool,
}

impl TlsInput {
    fn new() -> TlsInput {
        TlsInput {
            buf: vec![0; TLS_READ],
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

impl TlsStream {
    pub fn new(session: ClientConnection, socket: TcpStream) -> TlsStream {
        TlsStream {
            session: Mutex::new(session),
            out: Mutex::new(()),
            socket,
        }
    }

    fn session(&self) -> MutexGuard<'_, ClientConnection> {
        // A thread that panicked while holding it left the session as it was.
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send what the session owes the peer; the caller holds `out`.
    fn flush_pending(&self, _out: &MutexGuard<'_, ()>) -> io::Result<()> {
        let mut pending = Vec::new();
        {
            let mut session = self.session();
            while session.wants_write() {
                session.write_tls(&mut pending)?;
            }
        }
        (&self.socket).write_all(&pending)
    }

    /// Read plaintext. TLS bytes from the socket go into the session one `read_tls` at a
    /// time, each only once the plaintext before it is handed out: the session refuses more
    /// than 16 KiB of unread plaintext. What it did not take waits in `input`.
    fn read(
        &self,
        input: &mut TlsInput,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match self.session().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The engine closed the connection without a close_notify: the HTTP
                // framing above says whether anything is missing.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if input.start == input.end && !input.eof {
                wait_readable(self.socket.as_raw_fd(), remaining(deadline)?)?;
                let n = retry(|| (&self.socket).read(&mut input.buf))?;
                input.start = 0;
                input.end = n;
                input.eof = n == 0;
            }
            {
                let mut session = self.session();
                let mut pending = &input.buf[input.start..input.end];
                let taken = session.read_tls(&mut pending)?;
                input.start += taken;
                session.process_new_packets().map_err(tls_error)?;
            }
            if let Ok(out) = self.out.try_lock() {
                self.flush_pending(&out)?;
            }
            if input.eof && input.start == input.end {
                // The end of the TCP stream, told to the session (an empty read_tls):
                // hand out what it still holds, then 0.
                return match self.session().reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(_) => Ok(0),
                };
            }
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.session().writer().write(buf)?;
        self.flush_pending(&out)?;
        Ok(n)
    }

    /// TLS's own half-close, as Go's `tls.Conn.CloseWrite`: a close_notify alert. The
    /// engine then closes the container's stdin; the output keeps coming.
    fn close_write(&self) -> io::Result<()> {
        let out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        self.session().send_close_notify();
        self.flush_pending(&out)
    }
}

/// A rustls failure as an I/O error that says it was TLS: a failure to reach the engine
/// (it refused moat's certificate, or does not speak TLS), not a dropped connection.
pub fn tls_error(e: rustls::Error) -> io::Error {
    super::DialError::io(
        io::ErrorKind::InvalidData,
        format!("TLS: {}", tls_reason(&e)),
    )
}

/// What a TLS failure means for the user, with rustls's words.
pub fn tls_reason(e: &rustls::Error) -> String {
    use rustls::{AlertDescription, Error};
    let hint = match e {
        Error::AlertReceived(AlertDescription::BadCertificate)
        | Error::AlertReceived(AlertDescription::CertificateRequired)
        | Error::AlertReceived(AlertDescription::UnknownCA) => {
            " (the engine refused moat's client certificate: DOCKER_CERT_PATH must hold the \
             cert.pem and key.pem it trusts)"
        }
        Error::InvalidMessage(_) => " (is it a plain tcp:// port? unset DOCKER_TLS_VERIFY)",
        Error::InvalidCertificate(_) => {
            " (DOCKER_CERT_PATH's ca.pem must be the CA that signed the engine's certificate)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// The reading half.
pub struct Reader {
    source: Source,
    timeout: Option<Duration>,
}

enum Source {
    Socket(Socket),
    Tls(Arc<TlsStream>, TlsInput),
    Ssh(ChildStdout, Arc<ssh::Process>),
}

/// The writing half.
pub struct Writer {
    sink: Sink,
}

enum Sink {
    Socket(Socket),
    Tls(Arc<TlsStream>),
    Ssh {
        /// `None` once closed.
        stdin: Option<ChildStdin>,
        /// The process lives until both halves are gone.
        _process: Arc<ssh::Process>,
    },
}

/// Ends a connection both ways from any thread: a blocked read returns.
#[derive(Debug)]
pub enum Closer {
    Socket(Socket),
    Ssh(Arc<ssh::Process>),
}

impl Closer {
    pub fn close(&self) {
        match self {
            Closer::Socket(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Closer::Ssh(p) => p.kill(),
        }
    }
}

/// A connection to the engine.
pub struct Conn {
    pub reader: Reader,
    pub writer: Writer,
}

impl Conn {
    pub fn socket(socket: Socket) -> io::Result<Conn> {
        let clone = socket.try_clone()?;
        Ok(Conn {
            reader: Reader {
                source: Source::Socket(socket),
                timeout: None,
            },
            writer: Writer {
                sink: Sink::Socket(clone),
            },
        })
    }

    pub fn tls(stream: TlsStream) -> Conn {
        let stream = Arc::new(stream);
        Conn {
            reader: Reader {
                source: Source::Tls(stream.clone(), TlsInput::new()),
                timeout: None,
            },
            writer: Writer {
                sink: Sink::Tls(stream),
            },
        }
    }

    pub fn ssh(stdout: ChildStdout, stdin: ChildStdin, process: Arc<ssh::Process>) -> Conn {
        Conn {
            reader: Reader {
                source: Source::Ssh(stdout, process.clone()),
                timeout: None,
            },
            writer: Writer {
                sink: Sink::Ssh {
                    stdin: Some(stdin),
                    _process: process,
                },
            },
        }
    }

    /// A reader's timeout: a read that waits longer fails with `TimedOut`.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.reader.timeout = timeout;
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.writer.sink {
            Sink::Socket(s) => s.set_write_timeout(timeout),
            Sink::Tls(t) => t.socket.set_write_timeout(timeout),
            // A pipe to ssh takes what it is given.
            Sink::Ssh { .. } => Ok(()),
        }
    }

    pub fn closer(&self) -> io::Result<Closer> {
        Ok(match &self.reader.source {
            Source::Socket(s) => Closer::Socket(s.try_clone()?),
            Source::Tls(t, _) => Closer::Socket(Socket::Tcp(t.socket.try_clone()?)),
            Source::Ssh(_, p) => Closer::Ssh(p.clone()),
        })
    }

    /// Whether the connection can take another request: nothing is waiting to be read
    /// (an idle connection the engine closed reads as end of file at once).
    pub fn is_open(&self) -> bool {
        let fd = match &self.reader.source {
            Source::Socket(s) => s.fd(),
            Source::Tls(t, _) => t.socket.as_raw_fd(),
            Source::Ssh(out, _) => out.as_raw_fd(),
        };
        matches!(poll_in(fd, 0), Ok(false))
    }

    pub fn split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.source {
            Source::Socket(s) => {
                wait_readable(s.fd(), self.timeout)?;
                retry(|| s.read(buf))
            }
            Source::Tls(t, input) => t.read(input, buf, self.timeout),
            Source::Ssh(out, process) => {
                wait_readable(out.as_raw_fd(), self.timeout)?;
                let n = retry(|| out.read(buf))?;
                if n == 0
                    && let Some(e) = process.failure()
                {
                    return Err(e);
                }
                Ok(n)
            }
        }
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Socket(s) => retry(|| s.write(buf)),
            Sink::Tls(t) => t.write(buf),
            Sink::Ssh {
                stdin: Some(stdin), ..
            } => retry(|| stdin.write(buf)),
            Sink::Ssh { stdin: None, .. } => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Writer {
    /// Half-close: the engine sees the end of what moat sends; the reader goes on.
    pub fn close(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Socket(s) => s.shutdown(Shutdown::Write),
            Sink::Tls(t) => t.close_write(),
            Sink::Ssh { stdin, .. } => {
                stdin.take();
                Ok(())
            }
        }
    }
}

/// Retry a call that a signal interrupted.
fn retry<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn remaining(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(io::ErrorKind::TimedOut.into()),
        },
    }
}

/// Wait until `fd` has something to read (or its end); `None` waits as long as it takes
/// (the read itself then blocks).
fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let Some(timeout) = timeout else {
        return Ok(());
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // Round up, so a short timeout still waits rather than spinning.
        let ms = if ms == 0 && !left.is_zero() { 1 } else { ms };
        match poll_in(fd, ms) {
            Ok(true) => return Ok(()),
            Ok(false) if Instant::now() >= deadline => {
                return Err(io::ErrorKind::TimedOut.into());
            }
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether `fd` is readable within `ms` milliseconds.
fn poll_in(fd: RawFd, ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the length given.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}
