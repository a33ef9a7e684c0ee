//! The egress proxy (`moat __proxy`): a strict run's only way out.
//!
//! moat runs its own binary as this proxy, in a container on the run's internal network and
//! on an outside one. It serves `CONNECT host:port` (a tunnel, for TLS) and plain `http://`
//! requests in absolute form, one request per client connection, and lets through only what
//! the allowlist allows. It decides on the host and port the client asked for, never on a
//! Host header. Blocking std::net with a thread per connection: a run makes few connections,
//! and this keeps the binary small.
//!
//! Protocol with moat, on stdout: `{"listening":"IP:PORT"}` once bound, then one JSON record
//! per request when its exchange ends. Diagnostics go to stderr, `moat proxy: ` first.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::allow::{self, Allowlist};
use crate::cli;
use crate::error::{Error, Result};
use crate::io_reason::io_reason;

/// The hidden command the proxy runs as.
pub const COMMAND: &str = "__proxy";

const HELP: &str = "\
moat __proxy: the egress proxy of a strict run (moat starts it; not for use by hand)

Usage: moat __proxy [OPTIONS]

Options:
  --listen ADDR         address to listen on [default: 0.0.0.0:3128]
  --client-net CIDR     accept clients only from this network (repeatable)
  --allow RULE          allow HOST[:PORT], *.DOMAIN[:PORT], an IP or [IPv6] (repeatable)
  --add-host NAME:IP    resolve NAME to IP before DNS (repeatable)";

/// How long a client has to send its whole request head. Real clients send it at once; the
/// bound only keeps one that connects and says nothing from holding a thread forever.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head accepted; real ones are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// How long connecting to one upstream address may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused client may go on sending before the proxy closes. Closing with unread
/// bytes resets the connection, and the client could lose the answer that says why.
const LINGER: Duration = Duration::from_secs(2);
/// How long to wait before accepting again after `accept` failed (out of file descriptors):
/// retrying at once would spin and flood stderr.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the proxy was started with.
struct Config {
    allow: Allowlist,
    /// Networks clients may connect from (address, prefix length); empty: any.
    client_nets: Vec<(IpAddr, u8)>,
    /// `--add-host`: lowercase name, address.
    hosts: Vec<(String, IpAddr)>,
}

/// One request as network.jsonl records it, written when its exchange ends. The fields'
/// order is the protocol's.
#[derive(Serialize, Default)]
struct Record {
    /// When the client connected (one request per connection: when the request came).
    time: String,
    method: String,
    /// Lowercase, as the client asked for it; an IPv6 address without brackets.
    host: String,
    port: u16,
    /// "allowed" or "denied"; a malformed request is denied.
    decision: &'static str,
    /// What the proxy answered: 200 for a tunnel, the upstream's status, 400, 403 or 502.
    status: u16,
    /// Why the proxy refused or failed; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Client to upstream: tunnel bytes, or the forwarded head and body.
    bytes_up: u64,
    /// Upstream to client.
    bytes_down: u64,
    duration_ms: u64,
}

/// `moat __proxy ...`: serve until killed.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut listen = SocketAddr::from(([0, 0, 0, 0], 3128));
    let mut cfg = Config {
        allow: Allowlist::default(),
        client_nets: Vec::new(),
        hosts: Vec::new(),
    };
    let Some(values) = cli::parse_args(COMMAND, HELP, args, |key, p| {
        if !matches!(key, "--listen" | "--client-net" | "--allow" | "--add-host") {
            return Ok(false);
        }
        let v = cli::string_value(COMMAND, p)?;
        let bad = |why: &str| Error::usage(COMMAND, format!("invalid {key} {v:?}: {why}"));
        match key {
            "--listen" => listen = parse_listen(&v).ok_or_else(|| bad("expected IP:PORT"))?,
            "--client-net" => cfg
                .client_nets
                .push(parse_net(&v).ok_or_else(|| bad("expected a CIDR like 172.18.0.0/16"))?),
            "--allow" => cfg.allow.0.push(allow::parse(&v).map_err(|why| bad(&why))?),
            _ => cfg
                .hosts
                .push(parse_add_host(&v).ok_or_else(|| bad("expected NAME:IP"))?),
        }
        Ok(true)
    })?
    else {
        return Ok(0);
    };
    cli::no_values(COMMAND, &values)?;

    let cannot_listen = |e: io::Error| {
        let at = host_port(&listen.ip().to_string(), listen.port());
        Error::failed(format!("cannot listen on {at}: {}", io_reason(&e)))
    };
    let listener = TcpListener::bind(listen).map_err(cannot_listen)?;
    let bound = listener.local_addr().map_err(cannot_listen)?;
    let bound = host_port(&bound.ip().to_string(), bound.port());
    // moat starts the run's container only once it has read this line.
    let mut out = io::stdout().lock();
    out.write_all(format!("{{\"listening\":\"{bound}\"}}\n").as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::output)?;
    drop(out);

    // Lives as long as the process, and every connection's thread reads it.
    let cfg: &'static Config = Box::leak(Box::new(cfg));
    for conn in listener.incoming() {
        let client = match conn {
            Ok(c) => c,
            Err(e) => {
                say(&format!("cannot accept: {}", io_reason(&e)));
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        // A peer address is what the check needs; without one there is nobody to serve.
        let Ok(peer) = client.peer_addr() else {
            continue;
        };
        // A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d.
        let ip = peer.ip().to_canonical();
        if !cfg.client_nets.is_empty() && !cfg.client_nets.iter().any(|&n| in_net(ip, n)) {
            say(&format!(
                "refused a connection from {ip}: not in --client-net"
            ));
            continue;
        }
        if let Err(e) = spawn(Box::new(move || serve(client, cfg))) {
            say(&format!("cannot start a thread: {}", io_reason(&e)));
        }
    }
    // `incoming` never ends; the proxy serves until the engine stops its container.
    Ok(0)
}

/// A line on stderr. A stderr nobody reads cannot be told anything; the proxy goes on.
fn say(msg: &str) {
    let _ = io::stderr()
        .lock()
        .write_all(format!("moat proxy: {msg}\n").as_bytes());
}

/// Start a thread. Every thread of the proxy starts through this one function, so the
/// binary holds one copy of std's spawning code. Threads return the bytes they relayed.
fn spawn(f: Box<dyn FnOnce() -> u64 + Send>) -> io::Result<thread::JoinHandle<u64>> {
    thread::Builder::new().spawn(f)
}

/// `IP:PORT` or `[IPv6]:PORT`.
fn parse_listen(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.rsplit_once(':')?;
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `ADDR/BITS`, IPv4 or IPv6.
fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// Whether `ip` is in the network `(net, bits)`.
fn in_net(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    // Both as the top bits of a u128, so one comparison serves both families.
    let (a, b) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(a.to_bits()) << 96, u128::from(b.to_bits()) << 96)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits()),
        _ => return false,
    };
    // A shift by 128 (a /0 network) is None: every address is in it.
    (a ^ b).checked_shr(128 - u32::from(bits)).unwrap_or(0) == 0
}

/// `NAME:IP`, split at the first colon; the IP may be an IPv6 address, bracketed or not.
fn parse_add_host(s: &str) -> Option<(String, IpAddr)> {
    let (name, ip) = s.split_once(':')?;
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), ip.parse().ok()?))
}

/// One client connection: one request, its record, and the close.
fn serve(client: TcpStream, cfg: &Config) -> u64 {
    let time = SystemTime::now();
    let start = Instant::now();
    let mut rec = Record {
        decision: "denied",
        ..Record::default()
    };
    if !exchange(&client, cfg, &mut rec) {
        return 0;
    }
    rec.time = crate::time::rfc3339_ms(time);
    rec.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Ok(mut line) = serde_json::to_vec(&rec) {
        line.push(b'\n');
        // Stdout's lock is the one mutex: a whole line is written and flushed under it, so
        // lines from many threads never interleave. A failed write loses only this record.
        let mut out = io::stdout().lock();
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
    if rec.reason.is_some() {
        linger(&client);
    }
    0
}

/// Serve the one request of `client`, filling `rec`; false when no request came at all.
fn exchange(mut client: &TcpStream, cfg: &Config, rec: &mut Record) -> bool {
    let mut buf = Vec::new();
    let end = match read_head(client, &mut buf) {
        Ok(end) => end,
        // Connected and closed (or said nothing): no request to record.
        Err(_) if buf.is_empty() => return false,
        Err(why) => return refuse(client, rec, 400, why),
    };
    let _ = client.set_read_timeout(None);
    let mut lines = buf[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty());
    let line = std::str::from_utf8(lines.next().unwrap_or_default()).unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return refuse(client, rec, 400, "malformed request line".into());
    };
    let graphic = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !graphic(method) || !graphic(target) || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return refuse(client, rec, 400, "malformed request line".into());
    }
    rec.method = method.to_string();

    // Plain HTTP: the authority and the path of an absolute http:// URL.
    let mut http = None;
    let authority = if method == "CONNECT" {
        target
    } else if let Some(rest) = target
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &target[7..])
    {
        let i = rest.find(['/', '?']).unwrap_or(rest.len());
        http = Some(&rest[i..]);
        &rest[..i]
    } else if target.starts_with('/') {
        return refuse(
            client,
            rec,
            400,
            "this is a proxy: send an absolute http:// URL or CONNECT".into(),
        );
    } else {
        return refuse(
            client,
            rec,
            400,
            "only http:// URLs and CONNECT go through this proxy".into(),
        );
    };
    let Some((host, port)) = split_host_port(authority, http.map(|_| 80)) else {
        return refuse(client, rec, 400, format!("invalid host:port {authority:?}"));
    };
    rec.host = host.to_ascii_lowercase();
    rec.port = port;
    let host = rec.host.clone();
    let name = host_port(&host, port);

    // The head to send upstream: for plain HTTP the request in origin form, Host from the
    // URL (the one the decision was on), hop-by-hop headers dropped, one request only.
    let mut first = Vec::new();
    if let Some(path) = http {
        let slash = if path.starts_with('/') { "" } else { "/" };
        first = format!("{method} {slash}{path} {version}\r\nHost: {authority}\r\n").into_bytes();
        for h in lines {
            // Not a header, a folded one, "Name :" or a bare CR (tricks to make the upstream
            // read headers other than the ones checked here): refused.
            let key = match memchr::memchr(b':', h) {
                Some(i)
                    if i > 0
                        && h[..i].iter().all(u8::is_ascii_graphic)
                        && !h.contains(&b'\r')
                        && !h.contains(&0) =>
                {
                    &h[..i]
                }
                _ => return refuse(client, rec, 400, "malformed header line".into()),
            };
            let hop = [
                "host",
                "connection",
                "proxy-connection",
                "proxy-authorization",
                "keep-alive",
            ];
            let lower = |n: &&str| {
                n.len() == key.len()
                    && n.bytes()
                        .zip(key)
                        .all(|(a, &b)| a == b.to_ascii_lowercase())
            };
            if !hop.iter().any(lower) {
                first.extend_from_slice(h);
                first.extend_from_slice(b"\r\n");
            }
        }
        first.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    // Bytes the client sent after its head belong upstream, before anything else.
    first.extend_from_slice(&buf[end..]);

    if !cfg.allow.allows(&host, port) {
        let why = format!("{name} is not allowed by this run's network policy");
        return refuse(client, rec, 403, why);
    }
    rec.decision = "allowed";

    let upstream = match connect(cfg, &host, port) {
        Ok(s) => s,
        Err(why) => return refuse(client, rec, 502, format!("cannot connect to {name}: {why}")),
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    // The client's side goes up in a thread of its own, with handles of its own.
    let up = client
        .try_clone()
        .and_then(|c| Ok((c, upstream.try_clone()?)))
        .and_then(|(c, u)| spawn(Box::new(move || pump(&c, &u, &first))));
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            let _ = upstream.shutdown(Shutdown::Both);
            return refuse(client, rec, 502, format!("cannot relay: {}", io_reason(&e)));
        }
    };
    if http.is_none() {
        // Failing here means the client is gone; the relay then ends at once.
        let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
        rec.status = 200;
        rec.bytes_down = pump(&upstream, client, &[]);
    } else {
        // Plain HTTP: the upstream's status line, for the record, before relaying.
        let mut head = Vec::new();
        let mut chunk = [0; 1024];
        while head.len() < 12 {
            match (&upstream).read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        match status_of(&head) {
            Some(status) => {
                rec.status = status;
                rec.bytes_down = pump(&upstream, client, &head);
                // The response is over; stop waiting on the client too.
                let _ = client.shutdown(Shutdown::Read);
            }
            None => {
                let _ = upstream.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Read);
                refuse(client, rec, 502, format!("{name} sent no HTTP response"));
            }
        }
    }
    // A thread that panicked has already ended the process (panic = "abort").
    rec.bytes_up = up.join().unwrap_or(0);
    true
}

/// Read from `client` into `buf` until a whole request head is in it; returns the head's
/// length (any bytes after it are the start of a body or of a tunnel).
fn read_head(mut client: &TcpStream, buf: &mut Vec<u8>) -> std::result::Result<usize, String> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut chunk = [0; 4096];
    loop {
        // The blank line that ends the head: "\n\n" or "\n\r\n".
        let end = memchr::memchr_iter(b'\n', buf).find_map(|i| match &buf[i + 1..] {
            [b'\n', ..] => Some(i + 2),
            [b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        });
        if let Some(end) = end {
            return Ok(end);
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("request head larger than {} KiB", MAX_HEAD / 1024));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out = || format!("no whole request head within {}s", HEAD_TIMEOUT.as_secs());
        if left.is_zero() {
            return Err(timed_out());
        }
        let _ = client.set_read_timeout(Some(left));
        match client.read(&mut chunk) {
            Ok(0) => return Err("the client closed the connection within the request head".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(io_reason(&e)),
        }
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`; without a port, `default` (none for CONNECT). The host
/// keeps its case; `None` when malformed.
fn split_host_port(s: &str, default: Option<u16>) -> Option<(&str, u16)> {
    let (host, after) = match s.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            ip.parse::<Ipv6Addr>().ok()?;
            (ip, after)
        }
        None => s.split_at(s.find(':').unwrap_or(s.len())),
    };
    let port = match after.strip_prefix(':') {
        Some(p) => allow::parse_port(p)?,
        None if after.is_empty() => default?,
        None => return None,
    };
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._:".contains(&b);
    (!host.is_empty() && host.bytes().all(ok)).then_some((host, port))
}

/// The status code of an HTTP/1.x status line at the start of `head`.
fn status_of(head: &[u8]) -> Option<u16> {
    match head {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', d @ ..] if d.len() >= 3 => {
            std::str::from_utf8(&d[..3])
                .ok()?
                .parse()
                .ok()
                .filter(|s| (100..1000).contains(s))
        }
        _ => None,
    }
}

/// Connect to `host:port`: `--add-host` first, then DNS, every address in turn.
fn connect(cfg: &Config, host: &str, port: u16) -> std::result::Result<TcpStream, String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    let mut addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![(ip, port).into()],
        Err(_) => cfg
            .hosts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|&(_, ip)| (ip, port).into())
            .collect(),
    };
    if addrs.is_empty() {
        addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| io_reason(&e))?
            .collect();
    }
    let mut why = "no address".to_string();
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => why = io_reason(&e),
        }
    }
    Err(why)
}

/// Copy `first`, then everything from `from`, to `to`; returns the bytes written. When
/// `from` ends, `to` is shut for writing so its peer sees the end; after an error both are
/// shut so the other direction ends too.
fn pump(mut from: &TcpStream, mut to: &TcpStream, first: &[u8]) -> u64 {
    let mut buf = [0; 16 * 1024];
    let mut n = 0;
    let mut chunk = first;
    while to.write_all(chunk).is_ok() {
        n += chunk.len() as u64;
        chunk = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return n;
            }
            Ok(k) => &buf[..k],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => &[],
            Err(_) => break,
        };
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    n
}

/// Answer `client` with `status` and a one-line body saying `why`, and record both.
/// Returns true: there was a request.
fn refuse(mut client: &TcpStream, rec: &mut Record, status: u16, why: String) -> bool {
    let text = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Bad Gateway",
    };
    let body = format!("moat: {why}\n");
    let head = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The client may be gone already; the record still tells.
    let _ = client.write_all((head + &body).as_bytes());
    rec.status = status;
    rec.reason = Some(why);
    true
}

/// End a refused client's connection without resetting it: say we are done, then take what
/// it still sends for a while, so the answer is not lost to a reset.
fn linger(mut client: &TcpStream) {
    let _ = client.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut buf = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || client.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match client.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_nets() {
        let net = |s: &str| parse_net(s).unwrap_or_else(|| panic!("{s}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_net(ip("172.18.3.4"), net("172.18.0.0/16")));
        assert!(!in_net(ip("172.19.0.1"), net("172.18.0.0/16")));
        assert!(in_net(ip("10.1.2.3"), net("0.0.0.0/0")));
        assert!(in_net(ip("10.1.2.3"), net("10.1.2.3/32")));
        assert!(!in_net(ip("10.1.2.4"), net("10.1.2.3/32")));
        assert!(in_net(ip("fd00::5"), net("fd00::/8")));
        assert!(!in_net(ip("fe80::1"), net("fd00::/8")));
        assert!(!in_net(ip("::1"), net("0.0.0.0/0")));
        assert!(in_net(ip("::1"), net("::/0")));
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "x/8", "10.0.0.0/"] {
            assert_eq!(parse_net(bad), None, "{bad}");
        }
    }

    #[test]
    fn add_hosts() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_add_host("A.test:127.0.0.1"),
            Some(("a.test".into(), ip("127.0.0.1")))
        );
        assert_eq!(parse_add_host("v6:::1"), Some(("v6".into(), ip("::1"))));
        assert_eq!(parse_add_host("v6:[::1]"), Some(("v6".into(), ip("::1"))));
        for bad in ["a.test", ":127.0.0.1", "a.test:x", "a.test:"] {
            assert_eq!(parse_add_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("A.test:443", None), Some(("A.test", 443)));
        assert_eq!(split_host_port("a.test", Some(80)), Some(("a.test", 80)));
        assert_eq!(split_host_port("[::1]:443", None), Some(("::1", 443)));
        assert_eq!(split_host_port("[::1]", Some(80)), Some(("::1", 80)));
        for bad in [
            "a.test", "a.test:0", "a.test:x", ":443", "[::1]x", "a b:1", "u@a:1", "[x]:1",
        ] {
            assert_eq!(split_host_port(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 404"), Some(404));
        assert_eq!(status_of(b"HTTP/1.1 20"), None);
        assert_eq!(status_of(b"SSH-2.0-x\r\n"), None);
    }
}
