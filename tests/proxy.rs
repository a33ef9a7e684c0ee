//! `moat __proxy`, the egress proxy of a strict run, run as the built binary on this
//! machine: no engine. Each test starts a proxy on 127.0.0.1 with `--add-host` names for
//! servers the test itself runs on 127.0.0.1, talks to it as a client would, and reads the
//! proxy's records from its stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

/// The longest a test socket waits for the proxy or a server. Only a broken proxy comes
/// near it; the bound makes that a failure instead of a hung test.
const STUCK: Duration = Duration::from_secs(20);

/// A running `moat __proxy`, killed when dropped.
struct Proxy {
    child: Child,
    addr: String,
    out: BufReader<ChildStdout>,
    err: BufReader<ChildStderr>,
}

impl Proxy {
    /// Start a proxy on 127.0.0.1 with `args` and wait for its listening line.
    fn start(args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .args(["__proxy", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moat __proxy");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let err = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut proxy = Proxy {
            child,
            addr: String::new(),
            out,
            err,
        };
        let first = proxy.record();
        proxy.addr = first["listening"]
            .as_str()
            .unwrap_or_else(|| panic!("listening line: {first}"))
            .to_string();
        assert!(proxy.addr.starts_with("127.0.0.1:"), "{first}");
        assert_ne!(proxy.addr, "127.0.0.1:0");
        proxy
    }

    /// The next line on the proxy's stdout.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .expect("read the proxy's stdout");
        assert!(line.ends_with('\n'), "the proxy's stdout ended: {line:?}");
        line
    }

    /// The next line on the proxy's stdout, as JSON.
    fn record(&mut self) -> Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// A client connection to the proxy.
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connect to the proxy");
        s.set_read_timeout(Some(STUCK)).unwrap();
        s
    }

    /// Send `request` as a client and read the whole answer, to the proxy's close.
    fn ask(&self, request: &str) -> String {
        let mut s = self.connect();
        s.write_all(request.as_bytes()).unwrap();
        read_all(&mut s)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read to the end");
    String::from_utf8(buf).expect("UTF-8 answer")
}

/// A server on 127.0.0.1 that serves one connection with `serve`; returns its port.
fn server<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (u16, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(STUCK)).unwrap();
        serve(s)
    });
    (port, handle)
}

/// Read until the blank line that ends a request head.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "head cut short: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn assert_denied(rec: &Value, method: &str, host: &str, port: u16) {
    assert_eq!(rec["method"], method, "{rec}");
    assert_eq!(rec["host"], host, "{rec}");
    assert_eq!(rec["port"], port, "{rec}");
    assert_eq!(rec["decision"], "denied", "{rec}");
    assert_eq!(rec["status"], 403, "{rec}");
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    assert_eq!(
        rec["reason"],
        format!("{shown} is not allowed by this run's network policy"),
        "{rec}"
    );
    assert_eq!(rec["bytes_up"], 0, "{rec}");
    assert_eq!(rec["bytes_down"], 0, "{rec}");
}

#[test]
fn connect_tunnels_both_ways_to_an_allowed_name() {
    let (port, srv) = server(|mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"reply:").unwrap();
        s.write_all(&got).unwrap();
        got
    });
    let allow = format!("allowed.test:{port}");
    let mut proxy = Proxy::start(&["--add-host", "allowed.test:127.0.0.1", "--allow", &allow]);

    let mut c = proxy.connect();
    // The first bytes of the tunnel come with the head, as eager clients send them.
    let head = format!("CONNECT Allowed.Test:{port} HTTP/1.1\r\nHost: x\r\n\r\nhello");
    c.write_all(head.as_bytes()).unwrap();
    let established = b"HTTP/1.1 200 Connection Established\r\n\r\n";
    let mut answer = vec![0; established.len()];
    c.read_exact(&mut answer).unwrap();
    assert_eq!(answer, established);
    c.write_all(b" world").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), "reply:hello world");
    assert_eq!(srv.join().unwrap(), b"hello world");

    let line = proxy.line();
    let rec: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(rec["method"], "CONNECT", "{rec}");
    assert_eq!(rec["host"], "allowed.test", "{rec}");
    assert_eq!(rec["port"], port, "{rec}");
    assert_eq!(rec["decision"], "allowed", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec.get("reason"), None, "{rec}");
    assert_eq!(rec["bytes_up"], 11, "{rec}");
    assert_eq!(rec["bytes_down"], 17, "{rec}");
    assert!(rec["duration_ms"].is_u64(), "{rec}");
    let time = rec["time"].as_str().unwrap();
    assert!(moat::time::parse_rfc3339(time).is_some(), "{rec}");
    // The fields in their documented order.
    let keys = [
        "time",
        "method",
        "host",
        "port",
        "decision",
        "status",
        "bytes_up",
        "bytes_down",
        "duration_ms",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            line.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k}: {line}"))
        })
        .collect();
    assert!(at.is_sorted(), "{line}");
    assert_eq!(rec.as_object().unwrap().len(), keys.len(), "{line}");
}

#[test]
fn plain_http_goes_upstream_in_origin_form() {
    const RESPONSE: &str = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello";
    let (port, srv) = server(|mut s| {
        let head = read_head(&mut s);
        s.write_all(RESPONSE.as_bytes()).unwrap();
        head
    });
    let allow = format!("web.test:{port}");
    let mut proxy = Proxy::start(&["--add-host", "web.test:127.0.0.1", "--allow", &allow]);

    // The Host header names a host that is not allowed: the decision is on the URL, and
    // upstream gets the URL's host.
    let answer = proxy.ask(&format!(
        "GET http://web.test:{port}/path?q=1 HTTP/1.1\r\nHost: evil.test\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n\
         Connection: keep-alive\r\nUser-Agent: t\r\n\r\n"
    ));
    assert_eq!(answer, RESPONSE);
    let head = srv.join().unwrap();
    assert_eq!(
        head,
        format!(
            "GET /path?q=1 HTTP/1.1\r\nHost: web.test:{port}\r\nUser-Agent: t\r\n\
             Connection: close\r\n\r\n"
        )
    );

    let rec = proxy.record();
    assert_eq!(rec["method"], "GET", "{rec}");
    assert_eq!(rec["host"], "web.test", "{rec}");
    assert_eq!(rec["port"], port, "{rec}");
    assert_eq!(rec["decision"], "allowed", "{rec}");
    assert_eq!(rec["status"], 201, "{rec}");
    assert_eq!(rec.get("reason"), None, "{rec}");
    assert_eq!(rec["bytes_up"], head.len(), "{rec}");
    assert_eq!(rec["bytes_down"], RESPONSE.len(), "{rec}");
}

#[test]
fn plain_http_forwards_the_body() {
    let (port, srv) = server(|mut s| {
        let head = read_head(&mut s);
        let mut body = [0; 4];
        s.read_exact(&mut body).unwrap();
        s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").unwrap();
        (head, body)
    });
    let allow = format!("127.0.0.1:{port}");
    let mut proxy = Proxy::start(&["--allow", &allow]);
    let mut c = proxy.connect();
    // The head and the start of the body in one write, the rest after.
    let req = format!("POST http://127.0.0.1:{port} HTTP/1.1\r\nContent-Length: 4\r\n\r\nab");
    c.write_all(req.as_bytes()).unwrap();
    c.write_all(b"cd").unwrap();
    assert_eq!(read_all(&mut c), "HTTP/1.0 200 OK\r\n\r\nok");
    let (head, body) = srv.join().unwrap();
    assert!(head.starts_with("POST / HTTP/1.1\r\n"), "{head}");
    assert_eq!(&body, b"abcd");
    let rec = proxy.record();
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["bytes_up"], head.len() + 4, "{rec}");
}

#[test]
fn denied_hosts_and_ports_get_403() {
    let mut proxy = Proxy::start(&[
        "--add-host",
        "allowed.test:127.0.0.1",
        "--allow",
        "allowed.test:8080",
    ]);
    let body = |hp: &str| format!("moat: {hp} is not allowed by this run's network policy\n");
    let forbidden = |hp: &str| {
        let b = body(hp);
        format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{b}",
            b.len()
        )
    };

    let answer = proxy.ask("CONNECT denied.test:443 HTTP/1.1\r\n\r\n");
    assert_eq!(answer, forbidden("denied.test:443"));
    assert_denied(&proxy.record(), "CONNECT", "denied.test", 443);

    // The allowed host, on a port the rule does not name.
    let answer = proxy.ask("CONNECT allowed.test:443 HTTP/1.1\r\n\r\n");
    assert_eq!(answer, forbidden("allowed.test:443"));
    assert_denied(&proxy.record(), "CONNECT", "allowed.test", 443);

    // Plain HTTP: the URL's host decides, not the Host header.
    let answer = proxy.ask("GET http://denied.test/x HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n");
    assert_eq!(answer, forbidden("denied.test:80"));
    assert_denied(&proxy.record(), "GET", "denied.test", 80);

    // An IP is matched literally: the name's address is not the name.
    let answer = proxy.ask("CONNECT 127.0.0.1:8080 HTTP/1.1\r\n\r\n");
    assert_eq!(answer, forbidden("127.0.0.1:8080"));
    assert_denied(&proxy.record(), "CONNECT", "127.0.0.1", 8080);
    let answer = proxy.ask("CONNECT [::1]:8080 HTTP/1.1\r\n\r\n");
    assert_eq!(answer, forbidden("[::1]:8080"));
    assert_denied(&proxy.record(), "CONNECT", "::1", 8080);
}

#[test]
fn no_rules_deny_everything() {
    let mut proxy = Proxy::start(&[]);
    let answer = proxy.ask("CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert_denied(&proxy.record(), "CONNECT", "example.com", 443);
}

/// Port 443 (a rule's default) cannot be served by a test, so an allowed request to it
/// shows as a failed connect: nothing on this machine listens on 127.0.0.1:443.
#[test]
fn wildcards_and_default_ports() {
    let mut proxy = Proxy::start(&[
        "--add-host",
        "a.b.wild.test:127.0.0.1",
        "--add-host",
        "wild.test:127.0.0.1",
        "--add-host",
        "x.wild.test:127.0.0.1",
        "--allow",
        "*.wild.test",
    ]);
    let answer = proxy.ask("CONNECT a.b.wild.test:443 HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer} (does something listen on 127.0.0.1:443?)"
    );
    assert!(
        answer.contains("\r\n\r\nmoat: cannot connect to a.b.wild.test:443: "),
        "{answer}"
    );
    let rec = proxy.record();
    assert_eq!(rec["decision"], "allowed", "{rec}");
    assert_eq!(rec["status"], 502, "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("cannot connect to a.b.wild.test:443: "),
        "{rec}"
    );

    let answer = proxy.ask("GET http://x.wild.test./ HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    let rec = proxy.record();
    assert_eq!(rec["decision"], "allowed", "{rec}");
    assert_eq!(rec["host"], "x.wild.test.", "{rec}");
    assert_eq!(rec["port"], 80, "{rec}");

    // Not the apex, not another port.
    proxy.ask("CONNECT wild.test:443 HTTP/1.1\r\n\r\n");
    assert_denied(&proxy.record(), "CONNECT", "wild.test", 443);
    proxy.ask("CONNECT a.wild.test:8443 HTTP/1.1\r\n\r\n");
    assert_denied(&proxy.record(), "CONNECT", "a.wild.test", 8443);
}

#[test]
fn malformed_requests_get_400() {
    let mut proxy = Proxy::start(&["--allow", "example.com"]);
    for (request, reason) in [
        (
            "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "this is a proxy",
        ),
        (
            "GET https://example.com/ HTTP/1.1\r\n\r\n",
            "only http:// URLs",
        ),
        ("CONNECT example.com HTTP/1.1\r\n\r\n", "invalid host:port"),
        (
            "GET http://example.com/ HTTP/1.1\r\nX : y\r\n\r\n",
            "malformed header",
        ),
        ("hello\r\n\r\n", "malformed request line"),
    ] {
        let answer = proxy.ask(request);
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?}: {answer}"
        );
        let rec = proxy.record();
        assert_eq!(rec["status"], 400, "{rec}");
        assert_eq!(rec["decision"], "denied", "{rec}");
        let why = rec["reason"].as_str().unwrap();
        assert!(why.contains(reason), "{request:?}: {rec}");
        assert!(
            answer.ends_with(&format!("\r\n\r\nmoat: {why}\n")),
            "{answer}"
        );
    }
}

#[test]
fn client_net_refuses_other_peers_without_a_record() {
    let mut proxy = Proxy::start(&["--client-net", "10.0.0.0/8", "--allow", "example.com"]);
    // The client sends nothing: bytes the proxy never reads would make its close a reset.
    assert_eq!(read_all(&mut proxy.connect()), "", "closed at once");
    let mut line = String::new();
    proxy.err.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "moat proxy: refused a connection from 127.0.0.1: not in --client-net\n"
    );
    // The proxy gone, its stdout holds everything it wrote: no record.
    proxy.child.kill().unwrap();
    let mut rest = String::new();
    proxy.out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

#[test]
fn client_net_lets_its_peers_in() {
    let mut proxy = Proxy::start(&["--client-net", "10.0.0.0/8", "--client-net", "127.0.0.0/8"]);
    let answer = proxy.ask("CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert_denied(&proxy.record(), "CONNECT", "example.com", 443);
}

#[test]
fn bad_arguments_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--allow", "a b"], "invalid --allow \"a b\": "),
        (&["--allow", "*"], "invalid --allow \"*\": "),
        (&["--client-net", "10.0.0.0"], "invalid --client-net"),
        (&["--add-host", "a.test"], "invalid --add-host"),
        (&["--listen", "nowhere"], "invalid --listen"),
        (&["--bogus"], "unknown flag '--bogus'"),
        (&["extra"], "unexpected argument"),
    ];
    for &(args, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_moat"))
            .arg("__proxy")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_upstream_that_does_not_speak_http_gets_502() {
    let (port, srv) = server(|mut s| {
        read_head(&mut s);
        s.write_all(b"SSH-2.0-x\r\n").unwrap();
    });
    let allow = format!("ssh.test:{port}");
    let mut proxy = Proxy::start(&["--add-host", "ssh.test:127.0.0.1", "--allow", &allow]);
    let answer = proxy.ask(&format!("GET http://ssh.test:{port}/ HTTP/1.1\r\n\r\n"));
    srv.join().unwrap();
    let why = format!("ssh.test:{port} sent no HTTP response");
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(&format!("\r\n\r\nmoat: {why}\n")),
        "{answer}"
    );
    let rec = proxy.record();
    assert_eq!(rec["decision"], "allowed", "{rec}");
    assert_eq!(rec["status"], 502, "{rec}");
    assert_eq!(rec["reason"], why, "{rec}");
}

#[test]
fn records_of_concurrent_requests_are_whole_lines() {
    const CLIENTS: usize = 32;
    let mut proxy = Proxy::start(&[]);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut c = proxy.connect();
            thread::spawn(move || {
                let req = format!("CONNECT host{i}.test:443 HTTP/1.1\r\n\r\n");
                c.write_all(req.as_bytes()).unwrap();
                read_all(&mut c)
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap().starts_with("HTTP/1.1 403 "));
    }
    let mut hosts: Vec<String> = (0..CLIENTS)
        .map(|_| proxy.record()["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    let mut want: Vec<String> = (0..CLIENTS).map(|i| format!("host{i}.test")).collect();
    want.sort();
    assert_eq!(hosts, want);
}
