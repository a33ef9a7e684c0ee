//! `--network-policy strict`: a run's container sits on an internal network whose only way
//! out is moat's egress proxy, which lets through the `--allow-host` hosts and logs every
//! request to the run's `network.jsonl`.
//!
//! No test sends a packet off this machine, not even one the policy should stop. "The
//! outside" is an [`Outside`]: a container the test starts on the engine's default network,
//! in whose network namespace the test itself listens (an HTTP server, a raw TCP listener,
//! a UDP listener), so it sees every connection and datagram that arrives there; beside it,
//! a server of the engine's host listening on all the host's addresses, what a container
//! would reach at a gateway. (The test enters those namespaces with `setns(2)`: it runs as
//! root, as the engines' tests do.) The proxy knows the outside by name through
//! `--add-host`. Every "cannot get out" probe is run again from an open run, where it must
//! get through: a failure is the policy, not a broken probe.
//!
//! The proxy runs moat's own binary in a container, so these tests need the static build:
//! `RUSTFLAGS='-C target-feature=+crt-static' cargo test --target <host> --test network`.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use common::engine::{self, Engine};
use common::{
    Env, IMAGE, assert_code, containers_for, docker_request, docker_request_json, moat, stderr,
    stdout, url_encode,
};

/// How long a probe in a run waits to connect (`nc -w`) or for a UDP answer (`timeout`): a
/// server on this machine answers within milliseconds, so a probe still waiting after this
/// is blocked, not slow.
const PROBE_SECS: u32 = 2;

/// How long the test's servers wait for a client that connected to send its request: only
/// a broken proxy comes near it; the bound makes that a failure instead of a hung test.
const STUCK: Duration = Duration::from_secs(10);

/// The port the proxy listens on, on the run's network.
const PROXY_PORT: &str = "3128";

/// The outside's HTTP server (the allowed one), published on the host.
const HTTP_PORT: u16 = 8080;
/// A second HTTP server on the outside, on a port no rule allows.
const OTHER_HTTP_PORT: u16 = 9090;
/// The outside's raw TCP listener.
const TCP_PORT: u16 = 9000;
/// The outside's UDP listener.
const UDP_PORT: u16 = 9999;

/// What the outside's servers say: in every answer, so a probe's output shows it got one.
const ANSWER: &str = "hello from the outside";

/// A name unique to this test process and call, for hosts and containers (parallel tests,
/// and passes on several engines, share the machine).
fn unique() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{nanos:x}", std::process::id())
}

// ---- the outside ------------------------------------------------------------------------

/// A container on the engine's default network that stands for the outside world: it only
/// sleeps, and the test listens in its network namespace. Removed (servers stopped first)
/// when dropped.
struct Outside {
    id: String,
    /// Its address on the engine's default network.
    ip: String,
    /// The default network's gateway (the host's address on it).
    gateway: String,
    /// The host port its [`HTTP_PORT`] is published on.
    published: String,
    /// Its network namespace, once it runs.
    netns: Option<File>,
    servers: Vec<Server>,
}

impl Outside {
    /// Start the container (unique name, [`HTTP_PORT`] published on every host address).
    fn start() -> Outside {
        let name = format!("moat-test-outside-{}", unique());
        let port = format!("{HTTP_PORT}/tcp");
        let spec = serde_json::json!({
            "Image": IMAGE,
            // It only anchors the network namespace; the guard removes it long before.
            "Cmd": ["sleep", "600"],
            "Labels": { "moat.test": "network-outside" },
            "ExposedPorts": { &port: {} },
            "HostConfig": {
                "Init": true,
                "PortBindings": { &port: [{ "HostIp": "", "HostPort": "" }] },
            },
        });
        let (status, body) = docker_request_json(
            "POST",
            &format!("/containers/create?name={name}"),
            Some(&spec),
        )
        .expect("create the outside");
        assert_eq!(status, 201, "create the outside: {}", text(&body));
        let created: Value = serde_json::from_slice(&body).expect("create answer is JSON");
        let id = created["Id"].as_str().expect("created Id").to_string();
        // From here on a panic removes it.
        let mut outside = Outside {
            id,
            ip: String::new(),
            gateway: String::new(),
            published: String::new(),
            netns: None,
            servers: Vec::new(),
        };
        let (status, body) = docker_request("POST", &format!("/containers/{}/start", outside.id))
            .expect("start the outside");
        assert!(
            status == 204 || status == 304,
            "start the outside: {status} {}",
            text(&body)
        );
        let inspect = common::inspect_container(&outside.id).expect("the outside exists");
        let settings = &inspect["NetworkSettings"];
        // Docker fills the top-level fields for the default network; Podman's compatible
        // API may only fill the per-network ones.
        let field = |key: &str| {
            settings[key]
                .as_str()
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    settings["Networks"]
                        .as_object()
                        .and_then(|n| n.values().next())
                        .and_then(|n| n[key].as_str())
                })
                .unwrap_or_else(|| panic!("the outside has no {key}: {settings:#}"))
                .to_string()
        };
        outside.ip = field("IPAddress");
        outside.gateway = field("Gateway");
        outside.published = settings["Ports"][&port]
            .as_array()
            .and_then(|b| b.first())
            .and_then(|b| b["HostPort"].as_str())
            .unwrap_or_else(|| panic!("{port} is not published: {settings:#}"))
            .to_string();
        let pid = inspect["State"]["Pid"].as_i64().expect("the outside's pid");
        let netns = File::open(format!("/proc/{pid}/ns/net"))
            .unwrap_or_else(|e| panic!("the outside's network namespace: {e}"));
        outside.netns = Some(netns);
        outside
    }

    /// Runs `make` on a thread inside the outside's network namespace (sockets it makes
    /// stay there).
    fn inside<T: Send>(&self, make: impl FnOnce() -> T + Send) -> T {
        in_netns(Some(self.netns.as_ref().expect("the outside runs")), make)
    }

    /// A TCP server on `port` that records each connection's request (to its blank line)
    /// and answers `HTTP/1.0 200` with [`ANSWER`].
    fn serve_tcp(&mut self, port: u16) -> Received {
        let listener = self.inside(|| TcpListener::bind(("0.0.0.0", port)).expect("bind TCP"));
        let server = Server::tcp(listener);
        let received = server.received.clone();
        self.servers.push(server);
        received
    }

    /// A UDP listener on `port` that records each datagram and answers it with a TFTP
    /// error packet (so busybox `tftp` ends at once and shows it got an answer).
    fn serve_udp(&mut self, port: u16) -> Received {
        let socket = self.inside(|| UdpSocket::bind(("0.0.0.0", port)).expect("bind UDP"));
        let server = Server::udp(socket);
        let received = server.received.clone();
        self.servers.push(server);
        received
    }

    /// A TCP server of the engine's host itself, on all its addresses, answering as
    /// [`Outside::serve_tcp`]; its port. The engine's host is this machine, or for the
    /// private dockerd (tcp, tls, context) its network namespace. Stopped with `self`.
    fn serve_on_engine_host(&mut self) -> (u16, Received) {
        let netns = match engine::engine() {
            Engine::Tcp | Engine::Tls | Engine::Context => {
                let path = engine::address("MOAT_TEST_REMOTE_NETNS_PATH");
                Some(File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
            }
            Engine::Local | Engine::Ssh | Engine::Podman => None,
        };
        let listener = in_netns(netns.as_ref(), || {
            TcpListener::bind(("0.0.0.0", 0)).expect("bind on the host")
        });
        let port = listener.local_addr().expect("its port").port();
        let server = Server::tcp(listener);
        let received = server.received.clone();
        self.servers.push(server);
        (port, received)
    }
}

/// Runs `make` on a thread of its own, in network namespace `netns` (this one if `None`):
/// the sockets it makes stay there.
fn in_netns<T: Send>(netns: Option<&File>, make: impl FnOnce() -> T + Send) -> T {
    let fd = netns.map(File::as_raw_fd);
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(fd) = fd {
                // SAFETY: setns(2) on a descriptor the caller keeps open; it moves only
                // this thread, which ends when `make` returns.
                let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            }
            make()
        })
        .join()
        .expect("the namespace thread")
    })
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.servers.clear();
        common::remove_container(&self.id);
    }
}

/// What one of the outside's servers received, a request or datagram an entry.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    fn push(&self, bytes: &[u8]) {
        self.0.lock().unwrap().push(text(bytes));
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Whether anything received contains `needle`.
    fn saw(&self, needle: &str) -> bool {
        self.all().iter().any(|r| r.contains(needle))
    }
}

/// A server thread; stopped (its socket shut down, the thread joined) when dropped.
struct Server {
    fd: RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    received: Received,
}

impl Server {
    fn tcp(listener: TcpListener) -> Server {
        let received = Received::default();
        let stop = Arc::new(AtomicBool::new(false));
        let fd = listener.as_raw_fd();
        let (log, stopped) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let log = log.clone();
                std::thread::spawn(move || answer_http(conn, &log));
            }
        });
        Server {
            fd,
            stop,
            thread: Some(thread),
            received,
        }
    }

    fn udp(socket: UdpSocket) -> Server {
        let received = Received::default();
        let stop = Arc::new(AtomicBool::new(false));
        let fd = socket.as_raw_fd();
        let (log, stopped) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // TFTP ERROR (opcode 5), code 0, a message, NUL.
            let mut reply = vec![0, 5, 0, 0];
            reply.extend_from_slice(ANSWER.as_bytes());
            reply.push(0);
            loop {
                let got = socket.recv_from(&mut buf);
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok((n, from)) = got else { continue };
                log.push(&buf[..n]);
                let _ = socket.send_to(&reply, from);
            }
        });
        Server {
            fd,
            stop,
            thread: Some(thread),
            received,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: shutdown(2) of the socket the thread owns and still holds open: it wakes
        // the blocked accept or recvfrom, and the thread sees `stop`.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head (or what comes before the client stops), records it, and answers.
fn answer_http(mut conn: TcpStream, log: &Received) {
    let _ = conn.set_read_timeout(Some(STUCK));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    log.push(&request);
    let body = format!("{ANSWER}\n");
    let _ = write!(
        conn,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

// ---- runs and what they leave -------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `moat run -n NAME --image IMAGE ARGS... -- sh -c SCRIPT`; its output and the run's ID.
fn run_sh(env: &Env, name: &str, args: &[&str], script: &str) -> (Output, String) {
    let mut cmd = env.cmd();
    cmd.args(["run", "-n", name, "--image", IMAGE])
        .args(args)
        .args(["--", "sh", "-c", script]);
    let out = cmd.output().expect("run moat");
    let record = env
        .record_named(name)
        .unwrap_or_else(|| panic!("run {name} not recorded: {}", stderr(&out)));
    let id = record["id"].as_str().expect("id").to_string();
    (out, id)
}

/// The IDs and names of the networks labelled `label` on the engine under test.
fn networks_labelled(label: &str) -> Vec<(String, String)> {
    let filters = serde_json::json!({ "label": [label] }).to_string();
    let path = format!("/networks?filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path).expect("list networks");
    assert_eq!(status, 200, "list networks: {}", text(&body));
    let list: Vec<Value> = serde_json::from_slice(&body).expect("network list is JSON");
    list.iter()
        .map(|n| {
            (
                n["Id"].as_str().expect("network Id").to_string(),
                n["Name"].as_str().expect("network Name").to_string(),
            )
        })
        .collect()
}

/// The networks of run `id`.
fn networks_for(id: &str) -> Vec<(String, String)> {
    networks_labelled(&format!("moat.run_id={id}"))
}

/// Nothing of run `id` is on the engine: no container (its proxy included), no network.
#[track_caller]
fn assert_nothing_left(id: &str) {
    assert_eq!(
        containers_for(id),
        Vec::<String>::new(),
        "containers of {id}"
    );
    assert_eq!(networks_for(id), Vec::new(), "networks of {id}");
}

/// The records of run `id`'s `network.jsonl`, in order.
fn network_log(env: &Env, id: &str) -> Vec<Value> {
    let path = env.runs_dir().join(id).join("network.jsonl");
    let log =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The line `moat logs --network` prints for one record.
fn network_line(r: &Value) -> String {
    let mut line = format!(
        "{} {} {} {}:{} {} {}/{} B {} ms",
        r["time"].as_str().expect("time"),
        r["decision"].as_str().expect("decision"),
        r["method"].as_str().expect("method"),
        r["host"].as_str().expect("host"),
        r["port"],
        r["status"],
        r["bytes_up"],
        r["bytes_down"],
        r["duration_ms"],
    );
    if let Some(reason) = r["reason"].as_str() {
        line.push_str(" - ");
        line.push_str(reason);
    }
    line
}

/// Every record is well formed: its time, decision, numbers.
#[track_caller]
fn assert_well_formed(records: &[Value]) {
    for r in records {
        assert!(
            common::is_rfc3339_ms(r["time"].as_str().unwrap_or_default()),
            "{r}"
        );
        assert!(
            r["decision"] == "allowed" || r["decision"] == "denied",
            "{r}"
        );
        for key in ["port", "status", "bytes_up", "bytes_down", "duration_ms"] {
            assert!(r[key].is_u64(), "{key} in {r}");
        }
    }
}

/// The shell of a run that talks to the proxy with `nc`: `ask REQUEST` sends REQUEST (a
/// printf format) to `$HTTP_PROXY` and prints the answer, then `<end>`. When `nc` fails
/// (the proxy cannot be reached) the script ends there, with its status.
fn ask_shell() -> String {
    format!(
        r#"p=${{HTTP_PROXY#http://}}
ask() {{ printf "$1" | nc -w {PROBE_SECS} "${{p%:*}}" "${{p##*:}}" || exit; echo "<end>"; }}
"#
    )
}

/// The answers of a run that used [`ask_shell`], in order.
fn answers(out: &Output) -> Vec<String> {
    let all = stdout(out);
    let mut answers: Vec<String> = all.split("<end>\n").map(str::to_string).collect();
    assert_eq!(answers.pop().as_deref(), Some(""), "{all:?}");
    answers
}

// ---- the tests ----------------------------------------------------------------------------

#[test]
fn an_allowed_host_is_reached_by_plain_http_and_connect_and_logged() {
    let env = moat();
    let mut outside = Outside::start();
    let web = outside.serve_tcp(HTTP_PORT);
    let host = format!("web-{}.test", unique());
    let ask = ask_shell();
    let script = format!(
        "{ask}ask 'GET http://{host}:{HTTP_PORT}/plain HTTP/1.1\\r\\nHost: {host}\\r\\n\\r\\n'
ask 'CONNECT {host}:{HTTP_PORT} HTTP/1.1\\r\\nHost: {host}:{HTTP_PORT}\\r\\n\\r\\nGET /tunnelled HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n'"
    );
    let (out, id) = run_sh(
        &env,
        "allowed",
        &[
            "--network-policy",
            "strict",
            "--allow-host",
            &format!("{host}:{HTTP_PORT}"),
            "--add-host",
            &format!("{host}:{}", outside.ip),
        ],
        &script,
    );
    assert_code(&out, 0);
    assert_nothing_left(&id);
    let answers = answers(&out);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers[0].starts_with("HTTP/1.0 200 OK\r\n"), "{answers:?}");
    assert!(
        answers[0].ends_with(&format!("\r\n\r\n{ANSWER}\n")),
        "{answers:?}"
    );
    assert!(
        answers[1].starts_with("HTTP/1.1 200 "),
        "the tunnel opens: {answers:?}"
    );
    assert!(
        answers[1].ends_with(&format!("\r\n\r\n{ANSWER}\n")),
        "{answers:?}"
    );
    // The server saw both, by the name's address.
    let seen = web.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("/plain "), "{seen:?}");
    assert!(
        seen[1].starts_with("GET /tunnelled HTTP/1.0\r\n"),
        "{seen:?}"
    );

    let records = network_log(&env, &id);
    assert_well_formed(&records);
    assert_eq!(records.len(), 2, "{records:#?}");
    for (r, method) in records.iter().zip(["GET", "CONNECT"]) {
        assert_eq!(r["method"], method, "{r}");
        assert_eq!(r["host"], host.as_str(), "{r}");
        assert_eq!(r["port"], HTTP_PORT, "{r}");
        assert_eq!(r["decision"], "allowed", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["bytes_up"].as_u64() > Some(0), "{r}");
        assert!(r["bytes_down"].as_u64() > Some(ANSWER.len() as u64), "{r}");
        assert!(r.get("reason").is_none(), "{r}");
    }
    let logs = env.run(&["logs", "--network", &id]);
    assert_code(&logs, 0);
    let want: Vec<String> = records.iter().map(network_line).collect();
    assert_eq!(stdout(&logs).lines().collect::<Vec<_>>(), want);
}

#[test]
fn what_the_rules_do_not_name_is_denied_with_403_and_logged() {
    let env = moat();
    let mut outside = Outside::start();
    let web = outside.serve_tcp(HTTP_PORT);
    let other_port = outside.serve_tcp(OTHER_HTTP_PORT);
    let u = unique();
    let (host, other, zone) = (
        format!("web-{u}.test"),
        format!("other-{u}.test"),
        format!("zone-{u}.test"),
    );
    let sub = format!("api.{zone}");
    let ip = outside.ip.clone();
    // Every name leads to the outside, so a proxy that let one through would reach only it.
    let mut args = vec![
        "--allow-host".to_string(),
        format!("{host}:{HTTP_PORT}"),
        "--allow-host".into(),
        format!("*.{zone}:{HTTP_PORT}"),
    ];
    for name in [&host, &other, &zone, &sub] {
        args.extend(["--add-host".into(), format!("{name}:{ip}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let get = |name: &str, port: u16, path: &str| {
        format!("ask 'GET http://{name}:{port}/{path} HTTP/1.1\\r\\nHost: {name}\\r\\n\\r\\n'\n")
    };
    let connect = |target: &str, path: &str| {
        format!(
            "ask 'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\nGET /{path} HTTP/1.0\\r\\n\\r\\n'\n"
        )
    };
    let script = [
        ask_shell(),
        // Not named by any rule.
        get(&other, HTTP_PORT, "denied-name"),
        // Named, on a port no rule gives it.
        connect(&format!("{host}:{OTHER_HTTP_PORT}"), "denied-port"),
        get(&host, OTHER_HTTP_PORT, "denied-port"),
        // The allowed name's address: rules name hosts, not what they resolve to.
        connect(&format!("{ip}:{HTTP_PORT}"), "denied-address"),
        // `*.zone` allows its subdomains, not the zone itself.
        get(&zone, HTTP_PORT, "denied-apex"),
        get(&sub, HTTP_PORT, "allowed-subdomain"),
        // The allowed name in the same run: the way through works.
        get(&host, HTTP_PORT, "allowed"),
    ]
    .concat();
    let (out, id) = run_sh(&env, "denied", &args, &script);
    assert_code(&out, 0);
    assert_nothing_left(&id);
    let answers = answers(&out);
    let denied = [
        format!("{other}:{HTTP_PORT}"),
        format!("{host}:{OTHER_HTTP_PORT}"),
        format!("{host}:{OTHER_HTTP_PORT}"),
        format!("{ip}:{HTTP_PORT}"),
        format!("{zone}:{HTTP_PORT}"),
    ];
    assert_eq!(answers.len(), denied.len() + 2, "{answers:?}");
    for (answer, target) in answers.iter().zip(&denied) {
        assert!(
            answer.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{answer:?}"
        );
        let body = format!("\r\n\r\nmoat: {target} is not allowed by this run's network policy");
        assert!(answer.trim_end().ends_with(&body), "{answer:?}");
    }
    for answer in &answers[denied.len()..] {
        assert!(
            answer.ends_with(&format!("\r\n\r\n{ANSWER}\n")),
            "{answer:?}"
        );
    }
    // Only the allowed requests arrived; nothing reached the port no rule names.
    let seen = web.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("/allowed-subdomain "), "{seen:?}");
    assert!(seen[1].contains("/allowed "), "{seen:?}");
    assert_eq!(other_port.all(), Vec::<String>::new());

    let records = network_log(&env, &id);
    assert_well_formed(&records);
    let methods = ["GET", "CONNECT", "GET", "CONNECT", "GET", "GET", "GET"];
    assert_eq!(records.len(), methods.len(), "{records:#?}");
    for ((r, target), method) in records.iter().zip(&denied).zip(methods) {
        assert_eq!(r["method"], method, "{r}");
        assert_eq!(
            format!("{}:{}", r["host"].as_str().unwrap(), r["port"]),
            *target
        );
        assert_eq!(r["decision"], "denied", "{r}");
        assert_eq!(r["status"], 403, "{r}");
        assert_eq!(
            r["reason"],
            format!("{target} is not allowed by this run's network policy"),
            "{r}"
        );
    }
    for (r, name) in records[denied.len()..].iter().zip([&sub, &host]) {
        assert_eq!(
            (&r["decision"], &r["status"]),
            (&"allowed".into(), &200.into())
        );
        assert_eq!(r["host"], name.as_str(), "{r}");
    }
    let logs = env.run(&["logs", "--network", &id]);
    assert_code(&logs, 0);
    let want: Vec<String> = records.iter().map(network_line).collect();
    assert_eq!(stdout(&logs).lines().collect::<Vec<_>>(), want);
}

/// Probes from inside a run, in parallel, each printing `NAME STATUS OUTPUT` on one line:
/// raw TCP to the outside on a port of its own and on the allowed HTTP port (past the
/// proxy), UDP to it, its published port and a server of the engine's host on `host_port`,
/// each at the default network's gateway and at the run's own network's gateway (the first
/// address of the run's subnet; for an open run, the same). `MARK` is in every payload.
fn raw_probes(outside: &Outside, host_port: u16, mark: &str) -> String {
    let Outside {
        ip,
        gateway,
        published,
        ..
    } = outside;
    format!(
        r#"tcp() {{ printf '%s\r\n\r\n' "$1" | nc -w {PROBE_SECS} "$2" "$3"; }}
udp() {{ timeout {PROBE_SECS} tftp -p -l /etc/hostname -r "$1" "$2" "$3"; }}
probe() {{ name=$1; shift; out=$("$@" 2>&1); echo "$name $? $(echo $out | tr -d '\r')"; }}
gw=$(ip route | awk '/ src / {{ split($1, a, "/"); split(a[1], o, "."); print o[1] "." o[2] "." o[3] "." o[4] + 1; exit }}')
probe tcp tcp "{mark}-tcp" {ip} {TCP_PORT} &
probe direct tcp "GET /{mark}-direct HTTP/1.0" {ip} {HTTP_PORT} &
probe udp udp "{mark}-udp" {ip} {UDP_PORT} &
probe published-default-gateway tcp "GET /{mark}-published-default-gateway HTTP/1.0" {gateway} {published} &
probe published-run-gateway tcp "GET /{mark}-published-run-gateway HTTP/1.0" "$gw" {published} &
probe host-default-gateway tcp "GET /{mark}-host-default-gateway HTTP/1.0" {gateway} {host_port} &
probe host-run-gateway tcp "GET /{mark}-host-run-gateway HTTP/1.0" "$gw" {host_port} &
wait
"#
    )
}

/// The probes' names, sorted.
const PROBES: [&str; 7] = [
    "direct",
    "host-default-gateway",
    "host-run-gateway",
    "published-default-gateway",
    "published-run-gateway",
    "tcp",
    "udp",
];

/// The probes' results by name: (status, output).
fn probe_results(out: &Output) -> std::collections::BTreeMap<String, (i32, String)> {
    let results: std::collections::BTreeMap<String, (i32, String)> = stdout(out)
        .lines()
        .map(|line| {
            let mut words = line.splitn(3, ' ');
            let name = words.next().unwrap_or_default().to_string();
            let status = words.next().and_then(|s| s.parse().ok());
            let status = status.unwrap_or_else(|| panic!("not a probe line: {line:?}"));
            (name, (status, words.next().unwrap_or_default().to_string()))
        })
        .collect();
    let names: Vec<&str> = results.keys().map(String::as_str).collect();
    assert_eq!(names, PROBES, "{results:#?}");
    results
}

#[test]
fn raw_tcp_udp_and_the_hosts_ports_have_no_way_out() {
    let env = moat();
    let mut outside = Outside::start();
    let web = outside.serve_tcp(HTTP_PORT);
    let tcp = outside.serve_tcp(TCP_PORT);
    let udp = outside.serve_udp(UDP_PORT);
    let (host_port, on_host) = outside.serve_on_engine_host();
    let host = format!("web-{}.test", unique());

    // Strict, allowed to reach the outside's HTTP port through the proxy: none of it gets
    // out, and nothing arrives.
    let (out, id) = run_sh(
        &env,
        "strict",
        &[
            "--allow-host",
            &format!("{host}:{HTTP_PORT}"),
            "--add-host",
            &format!("{host}:{}", outside.ip),
        ],
        &raw_probes(&outside, host_port, "strict"),
    );
    assert_code(&out, 0);
    assert_nothing_left(&id);
    // Podman's API cannot make a bridge without an address of the host's, so a service
    // on the host listening on all addresses answers at the run network's gateway (the
    // README says so); Docker's bridge has none.
    let podman = common::engine::engine() == common::engine::Engine::Podman;
    let known_hole = |name: &str| podman && name == "host-run-gateway";
    let got_out: Vec<_> = probe_results(&out)
        .into_iter()
        .filter(|(name, _)| !known_hole(name))
        .filter(|(_, (status, output))| *status == 0 || output.contains(ANSWER))
        .collect();
    assert_eq!(got_out, Vec::new(), "probes of a strict run got out");

    // The same probes from an open run all get through: the probes work.
    let (out, id) = run_sh(
        &env,
        "open",
        &["--network-policy", "open"],
        &raw_probes(&outside, host_port, "open"),
    );
    assert_code(&out, 0);
    assert_nothing_left(&id);
    let stuck: Vec<_> = probe_results(&out)
        .into_iter()
        // busybox tftp ends with 1 on the server's error packet: the answer it waited for.
        .filter(|(name, (status, output))| {
            *status != i32::from(name == "udp") || !output.contains(ANSWER)
        })
        .collect();
    assert_eq!(
        stuck,
        Vec::new(),
        "probes of an open run did not get through"
    );

    // The servers' side: every open probe arrived, no strict one.
    assert!(tcp.saw("open-tcp"), "{:?}", tcp.all());
    assert!(udp.saw("open-udp"), "{:?}", udp.all());
    for path in [
        "open-direct",
        "open-published-default-gateway",
        "open-published-run-gateway",
    ] {
        assert!(web.saw(path), "{path}: {:?}", web.all());
    }
    for path in ["open-host-default-gateway", "open-host-run-gateway"] {
        assert!(on_host.saw(path), "{path}: {:?}", on_host.all());
    }
    for server in [&web, &tcp, &udp, &on_host] {
        let strict: Vec<String> = server
            .all()
            .into_iter()
            .filter(|got| {
                got.contains("strict") && !(podman && got.contains("strict-host-run-gateway"))
            })
            .collect();
        assert_eq!(strict, Vec::<String>::new(), "{:?}", server.all());
    }
}

#[test]
fn a_strict_run_gets_the_proxy_variables_and_is_recorded_strict() {
    let env = moat();
    // --allow-host alone makes a run strict. These names are never asked for.
    let (out, id) = run_sh(
        &env,
        "vars",
        &[
            "--allow-host",
            "Web.Example.TEST.",
            "--allow-host",
            "*.Zone.test:8443",
        ],
        "env | grep -i _proxy= | sort",
    );
    assert_code(&out, 0);
    assert_nothing_left(&id);
    let vars: Vec<(String, String)> = stdout(&out)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "NO_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy"
        ]
    );
    let url = &vars[0].1;
    let address = url
        .strip_prefix("http://")
        .and_then(|a| a.strip_suffix(&format!(":{PROXY_PORT}")))
        .unwrap_or_else(|| panic!("{url}"));
    assert!(
        address.parse::<std::net::Ipv4Addr>().is_ok(),
        "the proxy's address: {url}"
    );
    for (name, value) in &vars {
        if name.eq_ignore_ascii_case("no_proxy") {
            assert_eq!(value, "localhost,127.0.0.1,::1", "{name}");
        } else {
            assert_eq!(value, url, "{name}");
        }
    }

    // Recorded and listed strict, with the rules in their canonical form.
    let rules = serde_json::json!(["web.example.test", "*.zone.test:8443"]);
    let record = env.record(&id);
    assert_eq!(record["network_policy"], "strict", "{record:#}");
    assert_eq!(record["allowed_hosts"], rules, "{record:#}");
    let list = env.run(&["list", "--json"]);
    assert_code(&list, 0);
    let list: Value = serde_json::from_slice(&list.stdout).expect("list --json is JSON");
    let listed = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("{id} not listed: {list:#}"));
    assert_eq!(listed["network_policy"], "strict", "{listed:#}");
    assert_eq!(listed["allowed_hosts"], rules, "{listed:#}");

    // An open run of the same image gets none of them: they are the policy's.
    let (out, id) = run_sh(&env, "open", &[], "env | grep -i _proxy= ; true");
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "");
    assert_eq!(env.record(&id)["network_policy"], "open");
}

#[test]
fn bad_network_usage_is_refused_before_anything_is_made() {
    let env = moat();
    for (args, flag) in [
        (&["--allow-host", "a b"][..], "--allow-host"),
        (&["--allow-host", "http://web.test"], "--allow-host"),
        (&["--allow-host", "web.test:0"], "--allow-host"),
        (&["--network-policy", "bogus"], "--network-policy"),
    ] {
        let mut cmd = env.cmd();
        cmd.args(["run", "--image", IMAGE])
            .args(args)
            .args(["--", "true"]);
        let out = cmd.output().expect("run moat");
        common::assert_usage_error_naming(&out, flag);
    }
    for (args, says) in [
        (
            &["--network", "bridge", "--network-policy", "strict"][..],
            "--network bridge cannot be used with --network-policy strict",
        ),
        (
            &["--network", "bridge", "--allow-host", "web.test"],
            "--network bridge cannot be used with --network-policy strict",
        ),
        (
            &["--network-policy", "open", "--allow-host", "web.test"],
            "--allow-host needs --network-policy strict",
        ),
    ] {
        let mut cmd = env.cmd();
        cmd.args(["run", "--image", IMAGE])
            .args(args)
            .args(["--", "true"]);
        let out = cmd.output().expect("run moat");
        let line = common::usage_error_line(&out);
        assert!(
            line.starts_with(&format!("moat: {says}")),
            "{args:?}: {line}"
        );
    }
    assert!(env.run_dirs().is_empty(), "a refused run was recorded");
    assert_eq!(common::containers_of_home(&env), Vec::<String>::new());
    let home = format!("moat.home={}", env.home.display());
    assert_eq!(networks_labelled(&home), Vec::new());
}

#[test]
fn a_kept_strict_run_keeps_its_network_until_destroyed() {
    let env = moat();
    let (out, id) = run_sh(
        &env,
        "kept",
        &["--keep", "--allow-host", "web.test"],
        "exit 3",
    );
    assert_code(&out, 3);
    let record = env.record(&id);
    let container = record["container_id"]
        .as_str()
        .expect("container")
        .to_string();
    // The run's container alone: the proxy is gone.
    let left = containers_for(&id);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        common::engine_id(&container).as_deref(),
        Some(left[0].as_str())
    );
    let inspect = common::inspect_container(&container).expect("kept");
    assert_eq!(inspect["Config"]["Labels"].get("moat.role"), None);
    // Its network stays, with the container on it.
    let network = format!("moat-{id}");
    let networks = networks_for(&id);
    assert_eq!(networks.len(), 1, "{networks:?}");
    assert_eq!(networks[0].1, network);
    let attached = &inspect["NetworkSettings"]["Networks"];
    assert!(attached.get(&network).is_some(), "{attached:#}");

    assert_code(&env.run(&["destroy", &id]), 0);
    assert_nothing_left(&id);
}

#[test]
fn a_command_that_cannot_start_leaves_nothing_behind() {
    let env = moat();
    let out = env.run(&[
        "run",
        "-n",
        "missing",
        "--image",
        IMAGE,
        "--allow-host",
        "web.test",
        "--",
        "/nonexistent",
    ]);
    assert_code(&out, 127);
    let id = env.record_named("missing").expect("recorded")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_nothing_left(&id);
    assert_eq!(env.record(&id)["network_policy"], "strict");
}

/// `moat AGENT --dry-run ARGS...` as tests/agents.rs runs an agent: a private HOME, the
/// preset's own image, no API key.
fn agent_dry_run(env: &Env, agent: &str, args: &[&str]) -> Output {
    let home = env.root.join("home-dir");
    std::fs::create_dir_all(&home).expect("create fake HOME");
    let mut cmd = env.cmd();
    cmd.args([agent, "--dry-run"])
        .args(args)
        .env("HOME", &home)
        .env_remove("MOAT_IMAGE");
    for name in common::AGENT_KEYS {
        cmd.env_remove(name);
    }
    cmd.output().expect("run moat")
}

/// The `allow_hosts:` of a dry run, or `None` when it prints none; its `network_policy:`.
fn dry_run_network(out: &Output) -> (Option<String>, Option<Vec<String>>) {
    let all = stdout(out);
    let policy = all
        .lines()
        .find_map(|l| l.strip_prefix("network_policy: "))
        .map(str::to_string);
    let hosts = all
        .lines()
        .find_map(|l| l.strip_prefix("allow_hosts: "))
        .map(|h| serde_json::from_str(h).unwrap_or_else(|e| panic!("{h}: {e}")));
    (policy, hosts)
}

#[test]
fn agent_presets_run_strict_by_default() {
    let env = moat();
    for (agent, host) in [
        ("claude", "api.anthropic.com"),
        ("codex", "api.openai.com"),
        ("gemini", "generativelanguage.googleapis.com"),
    ] {
        let out = agent_dry_run(&env, agent, &[]);
        assert_code(&out, 0);
        let (policy, hosts) = dry_run_network(&out);
        assert_eq!(
            policy.as_deref(),
            Some("strict"),
            "{agent}: {}",
            stdout(&out)
        );
        let hosts = hosts.unwrap_or_else(|| panic!("{agent}: no allow_hosts"));
        assert!(hosts.iter().any(|h| h == host), "{agent}: {hosts:?}");
    }
    // The user's rules come after the preset's, canonical.
    let out = agent_dry_run(&env, "claude", &["--allow-host", "Extra.TEST:8080"]);
    assert_code(&out, 0);
    let (policy, hosts) = dry_run_network(&out);
    assert_eq!(policy.as_deref(), Some("strict"));
    let hosts = hosts.expect("allow_hosts");
    assert_eq!(hosts.first().map(String::as_str), Some("api.anthropic.com"));
    assert_eq!(hosts.last().map(String::as_str), Some("extra.test:8080"));
    // Open on request: no rules.
    let out = agent_dry_run(&env, "claude", &["--network-policy", "open"]);
    assert_code(&out, 0);
    let (policy, hosts) = dry_run_network(&out);
    assert_ne!(policy.as_deref(), Some("strict"), "{}", stdout(&out));
    assert_eq!(hosts, None, "{}", stdout(&out));
    assert!(env.run_dirs().is_empty(), "a dry run recorded a run");
}

#[test]
fn an_agent_reaches_its_declared_host_and_nothing_else() {
    let env = moat();
    let mut outside = Outside::start();
    // Stand-ins for the preset's declared host on its two default ports (a tunnel to 443
    // carries what the client sends; no TLS is needed to see it arrive), and another host.
    let api = outside.serve_tcp(443);
    let api_plain = outside.serve_tcp(80);
    let elsewhere = outside.serve_tcp(HTTP_PORT);
    let other = format!("other-{}.test", unique());
    let ask = ask_shell();
    let script = format!(
        "{ask}ask 'CONNECT api.anthropic.com:443 HTTP/1.1\\r\\n\\r\\nGET /v1/messages HTTP/1.0\\r\\n\\r\\n'
ask 'GET http://api.anthropic.com/plain HTTP/1.1\\r\\n\\r\\n'
ask 'GET http://{other}:{HTTP_PORT}/ HTTP/1.1\\r\\n\\r\\n'"
    );
    // The claude preset (its strict policy and declared hosts) with the test's image and
    // command, so no agent image is built: `agent:` in the project file, the command
    // after `--`.
    std::fs::write(
        env.ws.join("moat.yaml"),
        format!("agent: claude\nname: agent\nimage: {IMAGE}\n"),
    )
    .expect("write moat.yaml");
    let home = env.root.join("home-dir");
    std::fs::create_dir_all(&home).expect("create fake HOME");
    let mut cmd = env.cmd();
    cmd.args(["run", "--add-host"])
        .arg(format!("api.anthropic.com:{}", outside.ip))
        .arg("--add-host")
        .arg(format!("{other}:{}", outside.ip))
        .args(["--", "sh", "-c", &script])
        .env("HOME", &home);
    for name in common::AGENT_KEYS {
        cmd.env_remove(name);
    }
    let out = cmd.output().expect("run moat");
    assert_code(&out, 0);
    let record = env.record_named("agent").expect("the agent's run");
    let id = record["id"].as_str().expect("id");
    assert_eq!(record["network_policy"], "strict", "{record:#}");
    assert_eq!(
        record["allowed_hosts"],
        serde_json::json!(["api.anthropic.com"])
    );
    assert_nothing_left(id);

    let answers = answers(&out);
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(answers[0].starts_with("HTTP/1.1 200 "), "{answers:?}");
    assert!(answers[0].ends_with(&format!("{ANSWER}\n")), "{answers:?}");
    assert!(answers[1].starts_with("HTTP/1.0 200 OK\r\n"), "{answers:?}");
    assert!(answers[2].starts_with("HTTP/1.1 403 "), "{answers:?}");
    assert!(
        api.all().iter().any(|r| r.starts_with("GET /v1/messages ")),
        "{:?}",
        api.all()
    );
    assert!(
        api_plain.all().iter().any(|r| r.starts_with("GET /plain ")),
        "{:?}",
        api_plain.all()
    );
    assert_eq!(elsewhere.all(), Vec::<String>::new());
    let decisions: Vec<(String, String)> = network_log(&env, id)
        .iter()
        .map(|r| {
            let host = r["host"].as_str().unwrap_or_default().to_string();
            (host, r["decision"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let want = [
        ("api.anthropic.com", "allowed"),
        ("api.anthropic.com", "allowed"),
        (other.as_str(), "denied"),
    ]
    .map(|(h, d)| (h.to_string(), d.to_string()));
    assert_eq!(decisions, want);
}
