//! moat on every kind of engine endpoint, seen from outside: a private dockerd over plain
//! TCP and TLS (in its own network namespace), the same through a Docker context, the
//! shared dockerd over ssh, and Podman's compatible API. `scripts/setup` prepares them
//! all (see `common::engine`). The behavioural suites also run whole on each of them
//! (`MOAT_TEST_ENGINE` in `scripts/test`); this suite holds what only endpoints have:
//! where a run's engine is recorded and found again, and how each way of failing to reach
//! one reads.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use common::engine::{Engine, address};
use common::live::Live;
use common::{Env, IMAGE, Runtime, assert_code, moat_on, socket_request, stderr, stdout, wait_for};
use serde_json::Value;

/// moat gives up on an engine that does not answer a connect within 5 s
/// (`endpoint::CONNECT_DEADLINE`); the rest is a process start on a busy machine.
const UNREACHABLE_FAILS: Duration = Duration::from_secs(5 + 5);

/// A run reaches `running` within this.
const REACH: Duration = Duration::from_secs(30);

/// The engines other than the local socket, each as the tests reach it.
const ENGINES: [Engine; 5] = [
    Engine::Tcp,
    Engine::Tls,
    Engine::Context,
    Engine::Ssh,
    Engine::Podman,
];

/// A fresh env whose `moat` reaches `engine`.
fn cmd_on(env: &Env, engine: Engine) -> Command {
    let mut cmd = env.cmd();
    engine.apply(&mut cmd);
    cmd
}

/// The containers on `engine` made by `env`'s store.
fn containers_on(engine: Engine, env: &Env) -> Vec<Value> {
    let socket = engine
        .socket()
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    let filter = format!(
        r#"{{"label":["moat.home={}"]}}"#,
        env.home
            .canonicalize()
            .unwrap_or(env.home.clone())
            .display()
    );
    let path = format!(
        "/containers/json?all=1&filters={}",
        common::url_encode(&filter)
    );
    let (status, body) = socket_request(&socket, "GET", &path, None).expect("list containers");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<Vec<Value>>(&body).expect("a list")
}

fn one_line(out: &std::process::Output) -> String {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("moat: "), "{err:?}");
    err
}

/// `moat run -- true` on `engine` with `var` set to `value`: it must fail with 125 and one
/// line, which is returned.
fn fails_with(env: &Env, engine: Engine, var: &str, value: &str) -> String {
    let out = cmd_on(env, engine)
        .env(var, value)
        .args(["run", "--image", IMAGE, "--", "true"])
        .output()
        .expect("spawn moat");
    assert_code(&out, 125);
    one_line(&out)
}

#[test]
fn every_kind_of_endpoint_runs_a_command_and_records_where() {
    for engine in ENGINES {
        let env = moat_on(Runtime::Docker);
        let out = cmd_on(&env, engine)
            .args([
                "run",
                "--image",
                IMAGE,
                "--",
                "sh",
                "-c",
                "echo hi; echo err >&2; exit 3",
            ])
            .output()
            .expect("spawn moat");
        assert_code(&out, 3);
        assert_eq!(stdout(&out), "hi\n", "{engine:?}");
        assert_eq!(stderr(&out), "err\n", "{engine:?}");
        let record = env.record(&env.only_run_id());
        assert_eq!(record["runtime"], engine.recorded_runtime(), "{record:#}");
        assert_eq!(record["exit_code"], 3, "{record:#}");
        let url = record["endpoint"]["url"].as_str().expect("endpoint url");
        let expected = match engine {
            Engine::Tcp => address("MOAT_TEST_TCP_HOST"),
            Engine::Tls | Engine::Context => address("MOAT_TEST_TLS_HOST"),
            Engine::Ssh => address("MOAT_TEST_SSH_HOST"),
            Engine::Podman => format!("unix://{}", address("MOAT_TEST_PODMAN_SOCK")),
            Engine::Local => unreachable!(),
        };
        assert_eq!(url, expected, "{record:#}");
        match engine {
            Engine::Tls => {
                assert_eq!(record["endpoint"]["tls"]["verify"], true, "{record:#}");
                assert_eq!(record["endpoint"]["source"], "DOCKER_HOST", "{record:#}");
            }
            Engine::Context => {
                let source = record["endpoint"]["source"].as_str().unwrap_or("");
                assert!(source.contains(&address("MOAT_TEST_CONTEXT")), "{record:#}");
                assert_eq!(record["endpoint"]["tls"]["verify"], true, "{record:#}");
            }
            _ => assert!(record["endpoint"].get("tls").is_none(), "{record:#}"),
        }
        assert!(
            containers_on(engine, &env).is_empty(),
            "{engine:?}: container left"
        );

        // --dry-run names the same endpoint, and why.
        let out = cmd_on(&env, engine)
            .args(["run", "--dry-run", "--", "true"])
            .output()
            .expect("spawn moat");
        assert_code(&out, 0);
        let text = stdout(&out);
        let line = text
            .lines()
            .find(|l| l.starts_with("endpoint: "))
            .unwrap_or_else(|| panic!("no endpoint line: {text}"));
        assert!(line.contains(&expected), "{line}");
        assert!(
            text.contains(&format!("runtime: {}\n", engine.recorded_runtime())),
            "{text}"
        );
    }
}

#[test]
fn later_commands_reach_a_run_on_the_engine_it_recorded() {
    let env = moat_on(Runtime::Docker);
    let mut run = cmd_on(&env, Engine::Tls);
    run.args(["run", "--image", IMAGE, "-n", "far", "--", "sleep", "60"]);
    let mut live = Live::spawn(run);
    wait_for("the run to say running", REACH, || {
        env.record_named("far").filter(|r| r["state"] == "running")
    });
    assert_eq!(containers_on(Engine::Tls, &env).len(), 1);

    // Inside the namespace, but with no DOCKER_* variable: only the record says where.
    let mut stop = cmd_on(&env, Engine::Tls);
    stop.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args(["stop", "far"]);
    let out = stop.output().expect("spawn moat stop");
    assert_code(&out, 0);
    let (status, _, err) = live.wait(REACH);
    assert_eq!(status.code(), Some(143), "{err:?}");
    let record = env.record_named("far").expect("record");
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert!(
        containers_on(Engine::Tls, &env).is_empty(),
        "container left"
    );
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to
/// it neither succeeds nor is refused, as with a host that does not answer. Loopback
/// only. Returns the address and what keeps the queue full.
fn silent_listener() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
    // SAFETY: plain socket calls on a descriptor this function owns.
    let listener = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let listener = TcpListener::from_raw_fd(fd);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let bound = libc::bind(
            listener.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(listener.as_raw_fd(), 0), 0, "listen");
        listener
    };
    let addr = listener.local_addr().expect("local address");
    // A backlog of 0 holds one connection; one more makes sure it is full.
    let fillers = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok())
        .collect();
    (addr, listener, fillers)
}

#[test]
fn an_engine_that_does_not_answer_fails_within_the_connect_deadline() {
    let env = moat_on(Runtime::Docker);
    let (addr, _listener, _fillers) = silent_listener();
    let host = format!("tcp://{addr}");
    let started = Instant::now();
    let out = env
        .cmd()
        .env("DOCKER_HOST", &host)
        .args(["run", "--image", IMAGE, "--", "true"])
        .output()
        .expect("spawn moat");
    let took = started.elapsed();
    assert_code(&out, 125);
    let err = one_line(&out);
    assert!(err.contains(&host), "{err}");
    assert!(took < UNREACHABLE_FAILS, "took {took:?}");
    assert!(
        took >= Duration::from_secs(4),
        "failed at once ({took:?}): the listener did not hold the connect: {err}"
    );
}

#[test]
fn a_certificate_the_engine_was_not_signed_by_is_one_line_saying_so() {
    let env = moat_on(Runtime::Docker);
    let err = fails_with(
        &env,
        Engine::Tls,
        "DOCKER_CERT_PATH",
        &address("MOAT_TEST_TLS_OTHER_CERT_PATH"),
    );
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    // Plain HTTP where TLS is spoken, and TLS where plain is: the same, one line each.
    let err = fails_with(
        &env,
        Engine::Tls,
        "DOCKER_HOST",
        &address("MOAT_TEST_TCP_HOST"),
    );
    assert!(err.contains("TLS"), "{err}");
    assert!(env.records().iter().all(|r| r["state"] != "running"));
}

#[test]
fn ssh_failures_are_told_in_sshs_own_words() {
    let env = moat_on(Runtime::Docker);
    let ssh = address("MOAT_TEST_SSH_HOST");
    // A user the far side does not let in.
    let stranger = ssh.replacen("root@", "nobody@", 1);
    let err = fails_with(&env, Engine::Ssh, "DOCKER_HOST", &stranger);
    assert!(err.contains(&stranger), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    // No engine on the far side at that socket.
    let nowhere = format!("{ssh}/nonexistent/docker.sock");
    let err = fails_with(&env, Engine::Ssh, "DOCKER_HOST", &nowhere);
    assert!(err.contains("ssh"), "{err}");
    assert!(env.records().iter().all(|r| r["state"] != "running"));
}

#[test]
fn unknown_schemes_and_missing_contexts_say_what_moat_takes() {
    let env = moat_on(Runtime::Docker);
    for (var, value, expect) in [
        ("DOCKER_HOST", "npipe:////./pipe/docker_engine", "unix://"),
        ("DOCKER_HOST", "fd://", "tcp://"),
        ("DOCKER_CONTEXT", "no-such-context", "docker context ls"),
    ] {
        let out = env
            .cmd()
            .env_remove("DOCKER_HOST")
            .env(var, value)
            .args(["run", "--image", IMAGE, "--", "true"])
            .output()
            .expect("spawn moat");
        assert_code(&out, 125);
        let err = one_line(&out);
        assert!(err.contains(value) && err.contains(expect), "{err}");
    }
    assert!(env.records().is_empty(), "a run was recorded");
}

#[test]
fn podman_is_found_when_no_docker_engine_answers() {
    let env = moat_on(Runtime::Docker);
    let hidden = env.root.join("not-a-socket");
    std::fs::write(&hidden, "").expect("write a placeholder");
    let empty_home = env.root.join("empty-home");
    std::fs::create_dir_all(&empty_home).expect("make a home");
    // In a mount namespace of its own, Docker's socket is a plain file: nothing answers.
    let script = format!(
        "mount --bind {} /var/run/docker.sock && exec \"$0\" \"$@\"",
        hidden.display()
    );
    let mut cmd = env.command("unshare");
    cmd.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_CONFIG")
        .env("HOME", &empty_home)
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_moat"))
        .args(["run", "--image", IMAGE, "--", "echo", "found"]);
    let out = cmd.output().expect("spawn unshare");
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "found\n");
    let record = env.record(&env.only_run_id());
    assert_eq!(record["runtime"], "podman", "{record:#}");
    let source = record["endpoint"]["source"].as_str().unwrap_or("");
    assert!(source.contains("Podman"), "{record:#}");
    assert!(
        containers_on(Engine::Podman, &env).is_empty(),
        "container left"
    );
}

#[test]
fn a_host_mount_on_an_engine_that_cannot_see_this_machine_is_refused() {
    let env = moat_on(Runtime::Docker);
    let src = env.root.join("src");
    std::fs::create_dir_all(&src).expect("make a mount source");
    let mount = format!("{}:/src", src.display());
    for engine in [Engine::Tcp, Engine::Ssh] {
        let out = cmd_on(&env, engine)
            .args(["run", "-m", &mount, "--image", IMAGE, "--", "true"])
            .output()
            .expect("spawn moat");
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(err.contains(&mount) && err.contains("cannot see"), "{err}");
        assert!(env.records().is_empty(), "{engine:?}: a run was recorded");
        assert!(
            containers_on(engine, &env).is_empty(),
            "{engine:?}: a container was made"
        );
    }
}

/// The host's workspace as (path, contents) pairs, `.moatignore` included.
fn workspace_files(env: &Env) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![env.ws.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the workspace") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(&env.ws).expect("below the workspace");
            let text = std::fs::read_to_string(&path).expect("read a workspace file");
            files.push((rel.display().to_string(), text));
        }
    }
    files.sort();
    files
}

#[test]
fn a_remote_engine_gets_a_copy_and_copy_back_writes_home() {
    // tcp and ssh engines cannot see this machine's files: the workspace is copied in by
    // default. Podman's socket is local (it binds), so its archive API is asked for by name.
    let script = "ls -A; echo made > new.txt; echo changed > kept.txt; cat kept.txt";
    for (engine, mode) in [
        (Engine::Tls, None),
        (Engine::Ssh, None),
        (Engine::Podman, Some("copy")),
    ] {
        let env = moat_on(Runtime::Docker);
        std::fs::write(env.ws.join("kept.txt"), "from the host\n").expect("write");
        std::fs::create_dir_all(env.ws.join("secret")).expect("mkdir");
        std::fs::write(env.ws.join("secret/key"), "never sent\n").expect("write");
        std::fs::write(env.ws.join(".moatignore"), "secret\n").expect("write");
        let before = workspace_files(&env);
        let mut args = vec!["run", "--image", IMAGE];
        if let Some(mode) = mode {
            args.extend(["--workspace", mode]);
        }

        // Without --copy-back the host's workspace is untouched.
        let mut run = args.clone();
        run.extend(["--", "sh", "-c", script]);
        let out = cmd_on(&env, engine)
            .args(&run)
            .output()
            .expect("spawn moat");
        assert_code(&out, 0);
        assert_eq!(
            stdout(&out),
            ".moatignore\nkept.txt\nchanged\n",
            "{engine:?}: what the container saw"
        );
        assert_eq!(
            workspace_files(&env),
            before,
            "{engine:?}: the host changed"
        );
        let first = env.only_run_id();
        assert_eq!(env.record(&first)["workspace_mode"], "copy", "{engine:?}");

        // With it, what the command added or changed comes home; the excluded stays put.
        let mut run = args.clone();
        run.extend(["--copy-back", "--", "sh", "-c", script]);
        let out = cmd_on(&env, engine)
            .args(&run)
            .output()
            .expect("spawn moat");
        assert_code(&out, 0);
        assert_eq!(
            stdout(&out),
            ".moatignore\nkept.txt\nchanged\n",
            "{engine:?}"
        );
        let after: Vec<(String, String)> = workspace_files(&env);
        let expected: Vec<(String, String)> = [
            (".moatignore", "secret\n"),
            ("kept.txt", "changed\n"),
            ("new.txt", "made\n"),
            ("secret/key", "never sent\n"),
        ]
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
        assert_eq!(after, expected, "{engine:?}: the host after --copy-back");
        let second = env
            .records()
            .into_iter()
            .find(|r| r["id"] != first.as_str())
            .expect("the second run's record");
        assert_eq!(second["copy_back"]["written"], 2, "{engine:?}: {second:#}");
        assert!(
            containers_on(engine, &env).is_empty(),
            "{engine:?}: container left"
        );
    }
}
