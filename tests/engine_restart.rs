//! The engine going away in the middle of a run (SPEC section 5, "no hang"): dockerd is
//! killed, or restarted, while `moat run` waits on its container. `moat run` must end
//! within a bound with a clear error (or the real exit code when it can still learn it),
//! and no run may stay `running`.
//!
//! These tests never touch the shared engine the other tests use: each starts a PRIVATE
//! dockerd with its own socket, data root, exec root (and so its own containerd), and its
//! own network namespace, under `/tmp/moat-restart-<pid>-<n>/`; moat is pointed at it
//! with `DOCKER_HOST`. The network namespace matters: with `--bridge=none`, dockerd
//! deletes the host's `docker0` at startup, which would break the shared engine's default
//! network. In its own namespace it only sees (and changes) its own interfaces.
//!
//! Everything the private engine leaves behind (processes, mounts, cgroups, directories)
//! is removed by a drop guard, also when a test panics.

mod common;

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::live::Spawned;
use common::{Env, IMAGE, moat, url_encode, wait_for};
use serde_json::Value;

/// How long moat may take to notice that the engine is gone (SPEC 5.4: no hang).
const LOST_BOUND: Duration = Duration::from_secs(30);
/// How long a private dockerd may take to answer its first `/_ping`.
const ENGINE_START: Duration = Duration::from_secs(60);
/// How long a private dockerd may take to shut down on SIGTERM (it stops its containers
/// with their stop timeout first).
const ENGINE_STOP: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(60);

// ---- a private engine ------------------------------------------------------------------------

/// A dockerd of this test's own; see the module doc. Dropping it stops it and removes
/// every trace of it.
struct PrivateEngine {
    root: PathBuf,
    sock: PathBuf,
    dockerd: Option<Child>,
}

impl PrivateEngine {
    /// Starts a private engine and loads [`IMAGE`] into it.
    fn start() -> PrivateEngine {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let root = loop {
            let n = SEQ.fetch_add(1, Ordering::SeqCst);
            let root = PathBuf::from(format!("/tmp/moat-restart-{pid}-{n}"));
            match std::fs::create_dir(&root) {
                Ok(()) => break root,
                // Someone else's (a reused pid): never touch it, take the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create {}: {e}", root.display()),
            }
        };
        std::fs::write(root.join("daemon.json"), "{}\n").expect("write daemon.json");
        let mut engine = PrivateEngine {
            sock: root.join("docker.sock"),
            root,
            dockerd: None,
        };
        // From here on the guard exists: a failure below still cleans up.
        engine.start_dockerd();
        engine.load_image();
        engine
    }

    /// `unix://SOCKET`, for `DOCKER_HOST`.
    fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    /// Starts dockerd (again) and waits until it answers `/_ping`.
    fn start_dockerd(&mut self) {
        assert!(self.dockerd.is_none(), "dockerd already started");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("dockerd.log"))
            .expect("open dockerd.log");
        let mut cmd = Command::new(find_program("dockerd"));
        cmd.args(["-H", &self.host()])
            .args(["--data-root", &self.path("data")])
            .args(["--exec-root", &self.path("exec")])
            .args(["--pidfile", &self.path("docker.pid")])
            .args(["--config-file", &self.path("daemon.json")])
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
            ])
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .process_group(0);
        // SAFETY: only async-signal-safe calls (unshare, prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Its own network namespace: see the module doc.
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // If this test process dies without its drop guard, dockerd stops too.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        self.dockerd = Some(cmd.spawn().expect("spawn the private dockerd"));
        let deadline = Instant::now() + ENGINE_START;
        loop {
            if let Ok((200, body)) = self.request("GET", "/_ping")
                && body == b"OK"
            {
                return;
            }
            if let Some(status) = self.dockerd.as_mut().and_then(|c| c.try_wait().ok()?) {
                self.dockerd = None;
                panic!(
                    "the private dockerd exited ({status:?}) before answering /_ping:\n{}",
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not answer /_ping in {ENGINE_START:?}:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn dockerd_pid(&self) -> libc::pid_t {
        let child = self.dockerd.as_ref().expect("dockerd running");
        libc::pid_t::try_from(child.id()).expect("pid fits")
    }

    /// Sends `signal` to dockerd and waits (at most `timeout`) for it to exit.
    fn signal_dockerd(&mut self, signal: libc::c_int, timeout: Duration) -> ExitStatus {
        let pid = self.dockerd_pid();
        // SAFETY: kill(2) on our own child, not yet waited for.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill(dockerd {pid}, {signal})");
        let mut child = self.dockerd.take().expect("dockerd running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait dockerd") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the private dockerd did not exit in {timeout:?} after signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Copies [`IMAGE`] from the shared engine into this one (no registry here).
    fn load_image(&self) {
        let mut save = Command::new(find_program("docker"))
            .args(["save", IMAGE])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docker save");
        let load = Command::new(find_program("docker"))
            .args(["-H", &self.host(), "load"])
            .env_remove("DOCKER_HOST")
            .stdin(save.stdout.take().expect("save stdout"))
            .output()
            .expect("run docker load");
        let saved = save.wait_with_output().expect("wait docker save");
        assert!(
            saved.status.success() && load.status.success(),
            "docker save | docker load: {:?} {} / {:?} {} {}",
            saved.status,
            String::from_utf8_lossy(&saved.stderr),
            load.status,
            String::from_utf8_lossy(&load.stdout),
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// One HTTP/1.0 request to this engine; the status and the body.
    fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        common::socket_request(&self.sock, method, path, None)
    }

    /// Every container (running or not) of this engine labelled `moat.managed=true`, as
    /// `(id, state)`.
    fn moat_containers(&self) -> Vec<(String, String)> {
        let filters = serde_json::json!({ "label": ["moat.managed=true"] }).to_string();
        let path = format!("/containers/json?all=1&filters={}", url_encode(&filters));
        let (status, body) = self.request("GET", &path).expect("list containers");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let list: Vec<Value> = serde_json::from_slice(&body).expect("container list");
        list.iter()
            .map(|c| {
                (
                    c["Id"].as_str().unwrap_or_default().to_string(),
                    c["State"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// `moat` with `env`'s home, pointed at this engine.
    fn moat(&self, env: &Env) -> Command {
        let mut cmd = env.cmd();
        cmd.env("DOCKER_HOST", self.host());
        cmd
    }

    fn moat_output(&self, env: &Env, args: &[&str]) -> Output {
        self.moat(env).args(args).output().expect("spawn moat")
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "private dockerd log ({}), last lines:\n{}",
                self.root.display(),
                self.log_tail(30)
            );
        }
        // 1. A graceful stop: dockerd stops its containers and its containerd.
        if let Some(mut child) = self.dockerd.take() {
            if let Ok(None) = child.try_wait() {
                if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: kill(2) on our own child, not yet waited for.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let deadline = Instant::now() + ENGINE_STOP;
                while let Ok(None) = child.try_wait() {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let _ = child.wait();
        }
        // 2. Whatever survived a killed dockerd: its containerd, shims and containers.
        kill_processes_under(&self.root);
        // 3. Its mounts (data root, container root filesystems, network namespaces).
        unmount_under(&self.root);
        // 4. The cgroups of its containers, when they were killed behind its back.
        remove_container_cgroups(&self.root.join("data/containers"));
        // 5. Its directory.
        let mut result = std::fs::remove_dir_all(&self.root);
        for _ in 0..20 {
            if result.is_ok() || !self.root.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
            unmount_under(&self.root);
            result = std::fs::remove_dir_all(&self.root);
        }
        if let Err(e) = result {
            eprintln!("could not remove {}: {e}", self.root.display());
        }
    }
}

/// `name` on `PATH`, else in the usual sbin directories (dockerd lives in /usr/sbin).
fn find_program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found (scripts/setup installs it)"))
}

/// `(pid, ppid, argv)` of every process.
fn processes() -> Vec<(libc::pid_t, libc::pid_t, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let argv = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some((pid, ppid, argv))
        })
        .collect()
}

/// SIGKILLs every process whose command line names `root` (a private containerd and its
/// shims), and all their descendants (the containers' processes). All of them were
/// started, directly or not, by this test's own dockerd.
fn kill_processes_under(root: &Path) {
    let root = root.display().to_string();
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    for _ in 0..10 {
        let all = processes();
        let mut doomed: Vec<libc::pid_t> = all
            .iter()
            .filter(|(pid, _, argv)| *pid != me && argv.contains(&root))
            .map(|(pid, _, _)| *pid)
            .collect();
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            for (pid, ppid, _) in &all {
                if *ppid == parent && *pid != me && !doomed.contains(pid) {
                    doomed.push(*pid);
                }
            }
            i += 1;
        }
        if doomed.is_empty() {
            return;
        }
        for pid in &doomed {
            // SAFETY: kill(2) on a process of this test's private engine, by its pid.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Decodes the octal escapes (`\040`) of a mountinfo path.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(d) = octal {
            out.push(d.iter().fold(0u8, |v, b| v.wrapping_mul(8) + (b - b'0')));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts every mount at or below `root`, deepest first.
fn unmount_under(root: &Path) {
    let prefix = format!("{}/", root.display());
    for _ in 0..5 {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mount_path)
            .filter(|p| p.starts_with(&prefix) || Path::new(p) == root)
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let Ok(c) = std::ffi::CString::new(point) else {
                continue;
            };
            // SAFETY: umount2(2) with a valid C string, on a mount of this test's engine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Removes the (empty) cgroups of the containers whose state lives in `containers`:
/// only `rmdir`, which fails harmlessly on a cgroup that still has processes.
fn remove_container_cgroups(containers: &Path) {
    let Ok(entries) = std::fs::read_dir(containers) else {
        return;
    };
    let ids: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(controllers.filter_map(|e| Some(e.ok()?.path())));
    }
    for id in &ids {
        for base in &bases {
            let _ = std::fs::remove_dir(base.join("docker").join(id));
        }
    }
}

// ---- helpers -----------------------------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The newest record named `name`, if any.
fn record_named(env: &Env, name: &str) -> Option<Value> {
    env.records()
        .into_iter()
        .filter(|r| r["name"] == name)
        .max_by_key(|r| r["created_at"].as_str().unwrap_or_default().to_string())
}

/// Starts `moat run -n NAME --network none -- sh -c 'echo up; sleep 1000'` on `engine`
/// and waits until it prints `up` and its record says `running`; returns it and its ID.
fn start_blocked_run(engine: &PrivateEngine, env: &Env, name: &str) -> (Spawned, String) {
    let mut cmd = engine.moat(env);
    cmd.args([
        "run",
        "--image",
        IMAGE,
        "-n",
        name,
        "--network",
        "none",
        "--",
    ])
    .args(["sh", "-c", "echo up; sleep 1000"]);
    let run = Spawned::spawn(cmd);
    run.wait_stdout_len(3, LONG);
    let record = wait_for(&format!("run {name} running"), LONG, || {
        record_named(env, name).filter(|r| r["state"] == "running")
    });
    (run, record["id"].as_str().expect("id").to_string())
}

/// Asserts that `moat list` (with the engine as it is now) shows run `id` as final, and
/// that its record is final.
#[track_caller]
fn assert_final(engine: &PrivateEngine, env: &Env, id: &str) -> Value {
    let record = env.record(id);
    assert!(
        record["state"] == "stopped" || record["state"] == "failed",
        "record not final: {record:#}"
    );
    assert!(record["stopped_at"].is_string(), "{record:#}");
    let out = engine.moat_output(env, &["list"]);
    assert_eq!(out.status.code(), Some(0), "moat list: {out:?}");
    let listed = text(&out.stdout);
    let row = listed
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
    assert!(!row.contains("running"), "still running: {row:?}");
    let out = engine.moat_output(env, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "moat list --json: {out:?}");
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("list --json");
    let listed = list
        .iter()
        .find(|r| r["id"] == id)
        .expect("listed in --json");
    assert_eq!(listed["state"], record["state"], "list --json vs record");
    record
}

/// `moat clean -f` on the (running) engine leaves no moat container in it.
#[track_caller]
fn assert_clean_leaves_nothing(engine: &PrivateEngine, env: &Env) {
    let out = engine.moat_output(env, &["clean", "-f"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "moat clean -f: {:?} {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let left = engine.moat_containers();
    assert!(
        left.is_empty(),
        "moat containers left after clean -f: {left:?}; clean said {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ---- the tests -----------------------------------------------------------------------------------

#[test]
fn engine_killed_during_a_run_ends_it_with_a_clear_error() {
    let mut engine = PrivateEngine::start();
    let env = moat();
    let (run, id) = start_blocked_run(&engine, &env, "lost");

    engine.signal_dockerd(libc::SIGKILL, LONG);
    let killed = Instant::now();
    let (status, out, err) = run.wait(killed + LOST_BOUND);
    eprintln!(
        "moat run ended {:?} after dockerd was killed",
        killed.elapsed()
    );

    let err = text(&err);
    assert_eq!(
        status.code(),
        Some(125),
        "moat run: {status:?}, stderr {err:?}"
    );
    assert_eq!(text(&out), "up\n");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("moat: "),
        "expected one error line, got {lines:#?}"
    );
    let lower = err.to_lowercase();
    assert!(
        ["lost", "connection", "cannot reach", "disconnected"]
            .iter()
            .any(|w| lower.contains(w)),
        "the error does not say the engine went away: {err:?}"
    );

    // Final in the record and in `moat list`, with the engine still down.
    let record = assert_final(&engine, &env, &id);
    assert_eq!(record["state"], "failed", "{record:#}");
    assert!(record["error"].is_string(), "{record:#}");

    // Once the engine is back, clean removes what is left of the run's container. The
    // killed dockerd's containerd lives on, and a new dockerd does not always manage to
    // reconnect to it (seen: "containerd is still running", then dial timeouts until it
    // gives up); a host that lost its engine this way restarts the whole of it, so the
    // test does too. A killed containerd can linger for a moment as a zombie, which its
    // pid file still names as running (seen in a soak: "containerd is still running", then
    // "timeout waiting for containerd to start"); without that file the new dockerd starts
    // a containerd of its own.
    kill_processes_under(&engine.root);
    let pid_file = engine.root.join("exec/containerd/containerd.pid");
    if let Err(e) = std::fs::remove_file(&pid_file) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::NotFound,
            "{}: {e}",
            pid_file.display()
        );
    }
    engine.start_dockerd();
    assert_final(&engine, &env, &id);
    assert_clean_leaves_nothing(&engine, &env);
}

#[test]
fn engine_restarted_during_a_run_ends_it_with_the_real_code_or_a_clear_error() {
    let mut engine = PrivateEngine::start();
    let env = moat();
    let (run, id) = start_blocked_run(&engine, &env, "restarted");

    let restarted = Instant::now();
    engine.signal_dockerd(libc::SIGTERM, ENGINE_STOP);
    let stopped_in = restarted.elapsed();
    engine.start_dockerd();
    let back_in = restarted.elapsed();
    let (status, out, err) = run.wait(restarted + ENGINE_STOP + ENGINE_START + LOST_BOUND);
    eprintln!(
        "dockerd stopped in {stopped_in:?}, answered again after {back_in:?}; \
         moat run ended {:?} after the restart began, with {status:?}",
        restarted.elapsed()
    );

    let err = text(&err);
    let code = status.code();
    assert!(
        matches!(code, Some(137 | 143 | 125)),
        "moat run: {status:?}, stderr {err:?}"
    );
    assert_eq!(text(&out), "up\n");
    let lines: Vec<&str> = err.lines().collect();
    if code == Some(125) {
        assert!(
            lines.len() == 1 && lines[0].starts_with("moat: "),
            "expected one error line, got {lines:#?}"
        );
    } else {
        // The code is known; the engine may still have gone before the container could
        // be removed, which moat may report (`moat clean` removes it below).
        assert!(
            lines.len() <= 1 && lines.iter().all(|l| l.starts_with("moat: ")),
            "stderr: {lines:#?}"
        );
    }

    let record = assert_final(&engine, &env, &id);
    if let Some(code @ (137 | 143)) = code {
        assert_eq!(record["exit_code"], code, "{record:#}");
    }
    assert_clean_leaves_nothing(&engine, &env);
}
