//! Shared helpers for the integration tests: a per-test `MOAT_HOME`, readers for run
//! records, and a few raw calls to the Docker Engine over its Unix socket.
//!
//! The tests run the built `moat` binary against a real engine with the local image
//! `moat-test/busybox:latest` (`scripts/setup` creates both). A missing engine is a test
//! failure, never a silent skip.
//!
//! One suite, two runtimes: `MOAT_TEST_RUNTIME` (`docker`, the default, or `apple`)
//! chooses the runtime of every `moat` an [`Env`] starts. Under `apple`, moat drives the
//! stand-in `tests/container` (Apple's `container` CLI implemented over the local Docker
//! engine), so the containers are still real Docker containers carrying moat's labels,
//! and the raw engine helpers below ([`containers_for`], [`inspect_container`]...) see
//! them. A test that cannot hold through Apple's CLI checks [`runtime`] and says why.

#![allow(dead_code)] // each test crate uses a different subset of these helpers

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod engine;
pub mod gate;
pub mod live;
pub mod pty;

/// The image every test runs: busybox with all its applets.
pub const IMAGE: &str = "moat-test/busybox:latest";

/// The `moat run` flag for a test that signals its command through a file it creates in the
/// workspace: the workspace is bind-mounted on every engine. On a tcp or ssh engine moat
/// would copy it by default (the command would never see the file); every test engine runs
/// on this machine, so the bind sees the test's files there too.
pub const SHARED_WORKSPACE: &str = "--workspace=bind";

/// The API-key variables the agent presets pass through: tests clear them, so only a key
/// a test sets reaches moat.
pub const AGENT_KEYS: [&str; 4] = [
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
];

/// The stand-in for Apple's `container` CLI (see its header for its switches).
pub const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/container");

/// The stand-in's switches: an [`Env`] clears them, so only a test that sets one gets it.
const STANDIN_SWITCHES: [&str; 4] = [
    "STANDIN_INSPECT_SHAPE",
    "STANDIN_MISSING",
    "STANDIN_FAIL",
    "STANDIN_HANG",
];

/// The runtime a test's `moat` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The Docker Engine API (moat's default).
    Docker,
    /// Apple's `container` CLI, here the stand-in [`STANDIN`].
    Apple,
}

impl Runtime {
    /// The name moat records and `--runtime` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Apple => "apple",
        }
    }
}

/// The runtime this test pass runs on: `$MOAT_TEST_RUNTIME`, `docker` when unset. Any
/// other value is a mistake, and fails the test rather than silently testing Docker.
pub fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    *RUNTIME.get_or_init(|| match std::env::var("MOAT_TEST_RUNTIME") {
        Err(std::env::VarError::NotPresent) => Runtime::Docker,
        Ok(v) if v.is_empty() || v == "docker" => Runtime::Docker,
        Ok(v) if v == "apple" => Runtime::Apple,
        other => panic!("MOAT_TEST_RUNTIME={other:?}: expected `docker` or `apple`"),
    })
}

/// The `runtime` a record of this pass names: `podman` when the Docker API is Podman's.
pub fn recorded_runtime() -> &'static str {
    match runtime() {
        Runtime::Docker => engine::engine().recorded_runtime(),
        Runtime::Apple => "apple",
    }
}

/// `docker_n` on the local Docker engine, `small_n` elsewhere: iteration counts that the
/// stand-in's cost per CLI call (a Python start plus `docker` calls, several per run)
/// would make take minutes at the local count. The other engines' passes (TCP, TLS, ssh,
/// a context, Podman) take the small count too: they prove the transport and the engine's
/// differences, while the race a test makes likely by repetition is moat's own and is
/// proven on the local engine, within the time `scripts/test` has.
pub fn scaled(docker_n: usize, small_n: usize) -> usize {
    match (runtime(), engine::engine()) {
        (Runtime::Docker, engine::Engine::Local) => docker_n,
        _ => small_n,
    }
}

/// Runs `work(0)` … `work(threads - 1)` at once, each on a thread of its own, and returns
/// their results in order; if any worker panicked, panics with every worker's message.
pub fn on_threads<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let work = &work;
    let results: Vec<std::thread::Result<T>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(value) => done.push(value),
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {threads} workers failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    done
}

/// A fresh, private moat environment for one test: `root/home` is `MOAT_HOME` and
/// `root/ws` is the workspace (and the working directory of every `moat` it starts).
/// Under Apple, `root/standin` is the stand-in's state directory (its call log and
/// fault counters).
///
/// On drop, unless the test is already failing, it asserts that no container of any run
/// without `--keep` was left behind, then removes its directories.
pub struct Env {
    pub root: PathBuf,
    pub home: PathBuf,
    pub ws: PathBuf,
    pub runtime: Runtime,
    pub standin: PathBuf,
}

/// A new [`Env`] on this pass's [`runtime`], after checking that the engine answers.
pub fn moat() -> Env {
    moat_on(runtime())
}

/// A new [`Env`] whose `moat` uses `runtime`, whatever `MOAT_TEST_RUNTIME` says.
pub fn moat_on(runtime: Runtime) -> Env {
    require_engine();
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    // pid + counter + clock: pids wrap quickly on a busy machine, and a directory of a
    // live test elsewhere must never be reused or removed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let root = std::env::temp_dir().join(format!("moat-test-{}-{n}-{nanos:x}", std::process::id()));
    std::fs::create_dir(&root).expect("create a new test directory");
    let home = root.join("home");
    let ws = root.join("ws");
    let standin = root.join("standin");
    std::fs::create_dir_all(&ws).expect("create test workspace");
    if runtime == Runtime::Apple {
        std::fs::create_dir_all(&standin).expect("create stand-in state dir");
    }
    Env {
        root,
        home,
        ws,
        runtime,
        standin,
    }
}

impl Env {
    /// `moat` with this env's `MOAT_HOME` and runtime, run in the workspace, stdin closed.
    pub fn cmd(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_moat"))
    }

    /// `program` with the environment of [`Env::cmd`] (for wrappers such as `time`).
    /// Under Apple: `MOAT_RUNTIME=apple`, the stand-in as the CLI, this env's stand-in
    /// state directory, and no stand-in switch set.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("MOAT_HOME", &self.home)
            .env("MOAT_IMAGE", IMAGE)
            .env_remove("MOAT_LOG")
            .current_dir(&self.ws)
            .stdin(Stdio::null());
        for switch in STANDIN_SWITCHES {
            cmd.env_remove(switch);
        }
        match self.runtime {
            Runtime::Docker => {
                cmd.env_remove("MOAT_RUNTIME")
                    .env_remove("MOAT_CONTAINER_BIN");
                engine::engine().apply(&mut cmd);
            }
            Runtime::Apple => {
                cmd.env("MOAT_RUNTIME", "apple")
                    .env("MOAT_CONTAINER_BIN", STANDIN)
                    .env("STANDIN_STATE_DIR", &self.standin);
            }
        }
        cmd
    }

    /// `moat ARGS...` with no way to reach a runtime: `DOCKER_HOST` points nowhere (for
    /// Docker, and for the stand-in's own `docker` calls) and, under Apple, the CLI does
    /// not exist. Proves that a command needs no runtime call.
    pub fn cmd_without_runtime(&self) -> Command {
        let mut cmd = self.cmd();
        cmd.env("DOCKER_HOST", "unix:///nonexistent")
            .env("CONTAINER_HOST", "unix:///nonexistent");
        if self.runtime == Runtime::Apple {
            cmd.env("MOAT_CONTAINER_BIN", "/nonexistent/container");
        }
        cmd
    }

    /// Every stand-in call this env's `moat`s made so far, as argv lists (Apple only).
    pub fn standin_calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.standin.join("calls")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("calls line is JSON"))
            .collect()
    }

    /// How many stand-in calls had `verb` as their first argument.
    pub fn standin_count(&self, verb: &str) -> usize {
        self.standin_calls()
            .iter()
            .filter(|c| c.first().map(String::as_str) == Some(verb))
            .count()
    }

    /// Forgets the stand-in calls so far.
    pub fn clear_standin_calls(&self) {
        let _ = std::fs::remove_file(self.standin.join("calls"));
    }

    /// Runs `moat ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn moat")
    }

    /// Runs `moat run --image IMAGE -- CMD...` to completion.
    pub fn run_cmd(&self, command: &[&str]) -> Output {
        let mut args = vec!["run", "--image", IMAGE, "--"];
        args.extend_from_slice(command);
        self.run(&args)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.home.join("runs")
    }

    /// The run directories (`runs/*`), sorted; empty when `runs/` does not exist. A run
    /// still being created (a hidden `.creating-*` directory, renamed into place once its
    /// record is written) is not one yet, as for `moat list`.
    pub fn run_dirs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.runs_dir()) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .map(|e| e.expect("read runs dir").path())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        dirs.sort();
        dirs
    }

    /// Every `runs/*/metadata.json`, parsed.
    pub fn records(&self) -> Vec<Value> {
        self.run_dirs()
            .iter()
            .filter(|dir| dir.join("metadata.json").exists())
            .map(|dir| read_json(&dir.join("metadata.json")))
            .collect()
    }

    /// The record of the newest run named `name`, if there is one yet.
    pub fn record_named(&self, name: &str) -> Option<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["name"] == name)
            .max_by_key(|r| r["created_at"].as_str().unwrap_or_default().to_string())
    }

    /// The metadata of run `id`.
    pub fn record(&self, id: &str) -> Value {
        read_json(&self.runs_dir().join(id).join("metadata.json"))
    }

    /// The records of run `id`'s `logs.jsonl`, in order.
    pub fn logs(&self, id: &str) -> Vec<Value> {
        let path = self.runs_dir().join(id).join("logs.jsonl");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad logs.jsonl line {line:?}: {e}"))
            })
            .collect()
    }

    /// The bytes of one stream of run `id`, joined back from its log records.
    pub fn joined(&self, id: &str, stream: &str) -> Vec<u8> {
        join_stream(&self.logs(id), stream)
    }

    /// The ID of the only run in this env.
    pub fn only_run_id(&self) -> String {
        let records = self.records();
        assert_eq!(
            records.len(),
            1,
            "expected exactly one run, got {records:#?}"
        );
        records[0]["id"]
            .as_str()
            .expect("id is a string")
            .to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the directories for a look at what went wrong.
            eprintln!("test env kept at {}", self.root.display());
            return;
        }
        for record in self.records() {
            let id = record["id"].as_str().unwrap_or_default();
            let left = containers_for(id);
            if record["keep"] == Value::Bool(true) {
                left.iter().for_each(|c| remove_container(c));
            } else {
                assert!(left.is_empty(), "run {id} left containers behind: {left:?}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Joins the log records of one stream back into the bytes the container wrote: each
/// record's `line` (or decoded `b64`), plus `\n` unless it is `partial` or `eol: false`.
pub fn join_stream(records: &[Value], stream: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records.iter().filter(|r| r["stream"] == stream) {
        if let Some(line) = record["line"].as_str() {
            out.extend_from_slice(line.as_bytes());
        } else if let Some(b64) = record["b64"].as_str() {
            out.extend(base64_decode(b64));
        } else {
            panic!("log record has neither line nor b64: {record}");
        }
        let partial = record["partial"] == Value::Bool(true);
        let no_eol = record["eol"] == Value::Bool(false);
        if !partial && !no_eol {
            out.push(b'\n');
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
pub fn base64_decode(text: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c:#x}"),
        }
    }
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// True when `ts` looks like `2024-01-31T12:34:56.789Z` (RFC 3339, UTC, milliseconds).
pub fn is_rfc3339_ms(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- the Docker Engine, raw ------------------------------------------------------------

/// The engine's socket: the engine under test's ([`engine::engine`]), else
/// `DOCKER_HOST=unix://PATH`, else `/var/run/docker.sock`.
pub fn docker_socket() -> PathBuf {
    if runtime() == Runtime::Docker
        && let Some(socket) = engine::engine().socket()
    {
        return socket;
    }
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// One HTTP/1.0 request to the engine (the engine closes the connection after the
/// response, with no chunked encoding). Returns the status code and the body.
pub fn docker_request(method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    docker_request_json(method, path, None)
}

/// [`docker_request`] with an optional JSON body.
pub fn docker_request_json(
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Vec<u8>)> {
    socket_request(&docker_socket(), method, path, body)
}

/// One HTTP/1.0 request to the engine at `socket`; the status and the body.
pub fn socket_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of HTTP head"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// Panics (never skips) unless the Docker engine answers `/_ping`.
pub fn require_engine() {
    let socket = docker_socket();
    let answer = match docker_request("GET", "/_ping") {
        Ok((200, body)) if body == b"OK" => return,
        Ok((status, body)) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
        Err(e) => e.to_string(),
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    panic!(
        "the Docker engine at {} does not answer /_ping ({answer}); these tests need it{}. \
         Run scripts/setup to install and start dockerd and create the test images.",
        socket.display(),
        if ci {
            " (CI=true: a missing engine is a failure)"
        } else {
            ""
        },
    );
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// IDs of every container (running or not) labelled `moat.run_id=<run_id>`.
pub fn containers_for(run_id: &str) -> Vec<String> {
    let filters = serde_json::json!({ "label": [format!("moat.run_id={run_id}")] }).to_string();
    let path = format!("/containers/json?all=1&filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path).expect("list containers");
    assert_eq!(
        status,
        200,
        "list containers: {}",
        String::from_utf8_lossy(&body)
    );
    let list: Vec<Value> = serde_json::from_slice(&body).expect("container list is JSON");
    list.iter()
        .map(|c| c["Id"].as_str().expect("container Id").to_string())
        .collect()
}

/// The networks labelled `moat.run_id=<run_id>` (a strict run's), by ID.
pub fn networks_for(run_id: &str) -> Vec<String> {
    let filters = serde_json::json!({ "label": [format!("moat.run_id={run_id}")] }).to_string();
    let path = format!("/networks?filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path).expect("list networks");
    assert_eq!(
        status,
        200,
        "list networks: {}",
        String::from_utf8_lossy(&body)
    );
    let list: Vec<Value> = serde_json::from_slice(&body).expect("network list is JSON");
    list.iter()
        .map(|n| n["Id"].as_str().expect("network Id").to_string())
        .collect()
}

/// The engine's full ID of `container` (an ID or a name: Apple's runtime records the
/// container's name, which the stand-in gives the Docker container), if it exists.
pub fn engine_id(container: &str) -> Option<String> {
    inspect_container(container).map(|c| c["Id"].as_str().expect("container Id").to_string())
}

/// Force-removes a container.
pub fn remove_container(id: &str) {
    let (status, body) =
        docker_request("DELETE", &format!("/containers/{id}?force=1")).expect("remove container");
    assert!(
        status == 204 || status == 404,
        "remove container {id}: {status} {}",
        String::from_utf8_lossy(&body)
    );
}

/// The engine's own error message for pulling `image` (`name:tag`), if the pull fails.
pub fn pull_error(image: &str) -> Option<String> {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let path = format!(
        "/images/create?fromImage={}&tag={}",
        url_encode(name),
        url_encode(tag)
    );
    let (status, body) = docker_request("POST", &path).expect("pull request");
    if status != 200 {
        let value: Value = serde_json::from_slice(&body).ok()?;
        return value["message"].as_str().map(str::to_string);
    }
    // A 200 streams progress objects; a failure is an object with "error".
    body.split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .find_map(|v| v["error"].as_str().map(str::to_string))
}

/// IDs of every container (running or not) carrying `label` (`KEY=VALUE` or `KEY`).
pub fn containers_labelled(label: &str) -> Vec<String> {
    let filters = serde_json::json!({ "label": [label] }).to_string();
    let path = format!("/containers/json?all=1&filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path).expect("list containers");
    assert_eq!(
        status,
        200,
        "list containers: {}",
        String::from_utf8_lossy(&body)
    );
    let list: Vec<Value> = serde_json::from_slice(&body).expect("container list is JSON");
    let mut ids: Vec<String> = list
        .iter()
        .map(|c| c["Id"].as_str().expect("container Id").to_string())
        .collect();
    ids.sort();
    ids
}

/// The engine's inspect of container `id`, or `None` when it does not exist.
pub fn inspect_container(id: &str) -> Option<Value> {
    let (status, body) =
        docker_request("GET", &format!("/containers/{id}/json")).expect("inspect container");
    match status {
        200 => Some(serde_json::from_slice(&body).expect("inspect answer is JSON")),
        404 => None,
        _ => panic!(
            "inspect container {id}: {status} {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// Creates and starts a container of [`IMAGE`] running `command`, with `labels`, behind
/// moat's back; returns its ID. The caller removes it ([`remove_container`]).
pub fn start_labelled_container(labels: &[(&str, &str)], command: &[&str]) -> String {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let spec = serde_json::json!({
        "Image": IMAGE,
        "Cmd": command,
        "Labels": labels,
        "HostConfig": { "Init": true },
    });
    let (status, body) =
        docker_request_json("POST", "/containers/create", Some(&spec)).expect("create container");
    assert_eq!(
        status,
        201,
        "create container: {}",
        String::from_utf8_lossy(&body)
    );
    let created: Value = serde_json::from_slice(&body).expect("create answer is JSON");
    let id = created["Id"].as_str().expect("created Id").to_string();
    let (status, body) =
        docker_request("POST", &format!("/containers/{id}/start")).expect("start container");
    assert!(
        status == 204 || status == 304,
        "start container {id}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    id
}

/// A command's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing the command's output when it differs.
#[track_caller]
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}, stdout {:?}, stderr {:?}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Asserts a usage error: exit 2, nothing on stdout, and one line on stderr (then only
/// the pointer to `--help`). Returns the line.
#[track_caller]
pub fn usage_error_line(out: &Output) -> String {
    assert_code(out, 2);
    assert!(out.stdout.is_empty(), "stdout {:?}", stdout(out));
    let text = stderr(out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("Run 'moat "))
        .collect();
    assert_eq!(lines.len(), 1, "not one line: {text:?}");
    lines[0].to_string()
}

/// Asserts a usage error about `flag`: [`usage_error_line`], naming the flag.
#[track_caller]
pub fn assert_usage_error_naming(out: &Output, flag: &str) {
    let line = usage_error_line(out);
    assert!(
        line.starts_with(&format!("moat: invalid {flag} ")),
        "does not name {flag}: {line:?}"
    );
}

/// Every container (running or not) labelled with `env`'s `MOAT_HOME`.
pub fn containers_of_home(env: &Env) -> Vec<String> {
    containers_labelled(&format!("moat.home={}", env.home.display()))
}
