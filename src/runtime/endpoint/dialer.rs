//! Dialling an endpoint: one [`Conn`] per call, TLS set up once and shared.

use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::conn::{Conn, Socket, TlsStream};
use super::{Address, Endpoint, ssh, tls};

/// How long reaching an engine may take: a TCP connect, a TLS handshake, ssh's connect.
/// An unreachable host fails within it rather than after the system's minutes.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// Why an endpoint could not be reached, with the I/O kind of the cause so the caller can
/// give the right advice. It travels inside an `io::Error` through the HTTP client.
#[derive(Debug)]
pub struct DialError {
    pub kind: io::ErrorKind,
    pub message: String,
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DialError {}

impl DialError {
    pub(super) fn io(kind: io::ErrorKind, message: impl Into<String>) -> io::Error {
        io::Error::new(
            kind,
            DialError {
                kind,
                message: message.into(),
            },
        )
    }

    /// The dial failure inside `e`, if it is one.
    pub fn of(e: &io::Error) -> Option<&DialError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<DialError>())
    }
}

/// Opens connections to one endpoint.
pub struct Dialer {
    endpoint: Endpoint,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("endpoint", &self.endpoint.url())
            .finish()
    }
}

impl Dialer {
    /// Ready to dial `endpoint`: its TLS files are read now, so a bad one is told before
    /// anything is attempted.
    pub fn new(endpoint: Endpoint) -> Result<Dialer, String> {
        let tls = match (&endpoint.tls, &endpoint.address) {
            (Some(files), Address::Tcp { host, .. }) => {
                Some((tls::client_config(files)?, tls::server_name(host)?))
            }
            _ => None,
        };
        Ok(Dialer { endpoint, tls })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A new connection to the engine.
    pub fn dial(&self) -> io::Result<Conn> {
        match &self.endpoint.address {
            Address::Unix(path) => {
                let socket = UnixStream::connect(path).map_err(|e| {
                    DialError::io(e.kind(), crate::io_reason::io_reason(&e).to_string())
                })?;
                Conn::socket(Socket::Unix(socket))
            }
            Address::Tcp { host, port } => {
                let socket = connect_tcp(host, *port)?;
                match &self.tls {
                    None => Conn::socket(Socket::Tcp(socket)),
                    Some((config, name)) => handshake(config, name, socket, host, *port),
                }
            }
            Address::Ssh { .. } => {
                let (stdout, stdin, process) = ssh::spawn(&self.endpoint.address)
                    .map_err(|e| DialError::io(e.kind(), e.to_string()))?;
                Ok(Conn::ssh(stdout, stdin, process))
            }
        }
    }
}

/// TCP to `host:port`, each address in turn, each within the connect deadline.
fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let addresses = (host, port).to_socket_addrs().map_err(|e| {
        DialError::io(
            io::ErrorKind::NotFound,
            format!("cannot resolve {host}: {}", crate::io_reason::io_reason(&e)),
        )
    })?;
    let mut last = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_DEADLINE) {
            Ok(socket) => {
                // Requests are small and answered at once: no Nagle delay.
                socket.set_nodelay(true)?;
                return Ok(socket);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::ErrorKind::NotFound.into());
    let reason = if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        format!("no answer within {}s", CONNECT_DEADLINE.as_secs())
    } else {
        crate::io_reason::io_reason(&e).to_string()
    };
    Err(DialError::io(e.kind(), reason))
}

/// The TLS handshake, done now so that a certificate problem is told as one.
fn handshake(
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    mut socket: TcpStream,
    host: &str,
    port: u16,
) -> io::Result<Conn> {
    let failed = |reason: String| {
        DialError::io(
            io::ErrorKind::InvalidData,
            format!("TLS handshake with {host}:{port} failed: {reason}"),
        )
    };
    let mut session = rustls::ClientConnection::new(config.clone(), name.clone())
        .map_err(|e| failed(e.to_string()))?;
    socket.set_read_timeout(Some(CONNECT_DEADLINE))?;
    socket.set_write_timeout(Some(CONNECT_DEADLINE))?;
    while session.is_handshaking() {
        if let Err(e) = session.complete_io(&mut socket) {
            let reason = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => super::conn::tls_reason(tls),
                None if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
                {
                    format!("no answer within {}s", CONNECT_DEADLINE.as_secs())
                }
                None if e.kind() == io::ErrorKind::UnexpectedEof => {
                    "the engine closed the connection (does it speak TLS?)".into()
                }
                None => crate::io_reason::io_reason(&e).to_string(),
            };
            return Err(failed(reason));
        }
    }
    socket.set_read_timeout(None)?;
    socket.set_write_timeout(None)?;
    Ok(Conn::tls(TlsStream::new(session, socket)))
}
