//! ureq over moat's own connections. ureq dials TCP by default; its transport API takes a
//! connector, so this one dials the engine's endpoint (a Unix socket, TCP, TLS, ssh) through
//! the same [`Dialer`] the attach stream uses, and a resolver that skips DNS (the host
//! name in the URL is a placeholder).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Weak};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};

use crate::runtime::endpoint::{Closer, Conn, Dialer};

/// Dials the engine for every connection the agent opens.
pub struct EngineConnector {
    pub dialer: Arc<Dialer>,
}

impl fmt::Debug for EngineConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConnector")
            .field("dialer", &self.dialer)
            .finish()
    }
}

impl Connector<()> for EngineConnector {
    type Out = EngineTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let conn = self.dialer.dial()?;
        let config = details.config;
        let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        let closer = Arc::new(SharedCloser(conn.closer()?));
        (details.register_shutdown)(Arc::downgrade(&closer) as Weak<dyn ShutdownHandle>)?;
        Ok(Some(EngineTransport {
            conn,
            buffers,
            _closer: closer,
        }))
    }
}

/// Ends the connection from another thread when the agent shuts down.
#[derive(Debug)]
struct SharedCloser(Closer);

impl ShutdownHandle for SharedCloser {
    fn shutdown(&self) {
        self.0.close();
    }
}

pub struct EngineTransport {
    conn: Conn,
    buffers: LazyBuffers,
    /// Kept alive for the agent's weak reference.
    _closer: Arc<SharedCloser>,
}

impl fmt::Debug for EngineTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineTransport").finish()
    }
}

fn timeout_error(e: io::Error, timeout: &NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for EngineTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.conn
            .set_write_timeout(timeout.not_zero().map(|d| *d))?;
        let output = &self.buffers.output()[..amount];
        self.conn
            .write_all(output)
            .map_err(|e| timeout_error(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.conn.set_read_timeout(timeout.not_zero().map(|d| *d));
        let input = self.buffers.input_append_buf();
        let amount = self
            .conn
            .read(input)
            .map_err(|e| timeout_error(e, &timeout))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.conn.is_open()
    }
}

/// The URL's host is a placeholder; the connector ignores the address anyway.
#[derive(Debug)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], 80)));
        Ok(addrs)
    }
}
