//! The `docker run` flags CI users reach for, checked against `docker run --init --rm`
//! itself: each flag is given to both on the same command, and what the command sees
//! (its ids, its cgroup limits, its ulimits, its capabilities, its /etc/hosts, a write to
//! a read-only root...) must be the same. The engine under test is the local one (the
//! docker CLI is the baseline); published ports are reached from the host through a server
//! the test starts in the container.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use common::live::Live;
use common::{Env, IMAGE, assert_code, moat, stderr, stdout, wait_for};

/// How long a published port may take to answer once the run is recorded as running:
/// the server in the container starts with its shell.
const SERVER_UP: Duration = Duration::from_secs(20);

/// Reads a cgroup value under v2 (`V2`) or v1 (`V1`), whichever the machine has.
fn cgroup(v2: &str, v1: &str) -> String {
    format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}")
}

/// `docker run --init --rm FLAGS IMAGE sh -c SCRIPT`.
fn docker_run(flags: &[&str], script: &str) -> Output {
    Command::new("docker")
        .args(["run", "--init", "--rm"])
        .args(flags)
        .args([IMAGE, "sh", "-c", script])
        .output()
        .expect("run docker")
}

/// `moat run --image IMAGE FLAGS -- sh -c SCRIPT`.
fn moat_run(env: &Env, flags: &[&str], script: &str) -> Output {
    let mut cmd = env.cmd();
    cmd.args(["run", "--image", IMAGE])
        .args(flags)
        .args(["--", "sh", "-c", script]);
    cmd.output().expect("run moat")
}

/// Each case's flags through both; the same exit code and stdout.
fn same_as_docker(cases: &[(&[&str], &str)]) {
    if common::runtime() != common::Runtime::Docker
        || common::engine::engine() != common::engine::Engine::Local
    {
        // The docker CLI is the baseline only on the local engine.
        return;
    }
    let env = moat();
    for (flags, script) in cases {
        // What this machine's engine refuses (`--privileged` in a sandbox that may not
        // grant every capability) moat must fail on the same way: 125, nothing run.
        let want = docker_run(flags, script);
        let got = moat_run(&env, flags, script);
        assert_eq!(
            (got.status.code(), stdout(&got)),
            (want.status.code(), stdout(&want)),
            "moat {flags:?} `{script}`: {}",
            stderr(&got)
        );
    }
}

#[test]
fn resource_limits_match_docker() {
    same_as_docker(&[
        (
            &["--memory", "64m"],
            &cgroup("memory.max", "memory/memory.limit_in_bytes"),
        ),
        (
            &["--memory", "64m", "--memory-swap", "96m"],
            &cgroup("memory.swap.max", "memory/memory.memsw.limit_in_bytes"),
        ),
        (
            &["--cpus", "1.5"],
            &cgroup("cpu.max", "cpu/cpu.cfs_quota_us"),
        ),
        (
            &["--pids-limit", "50"],
            &cgroup("pids.max", "pids/pids.max"),
        ),
        (
            &["--shm-size", "16m"],
            "df -k /dev/shm | tail -1 | awk '{print $2}'",
        ),
        (
            &["--ulimit", "nofile=512:1024", "--ulimit", "nproc=300"],
            "ulimit -n; ulimit -Hn; ulimit -u",
        ),
    ]);
}

#[test]
fn identity_and_environment_match_docker() {
    let dir = std::env::temp_dir().join(format!("moat-flags-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("vars");
    std::fs::write(&file, "# the test's\nFROM_FILE=one two\nOVERRIDDEN=file\n").expect("write");
    let file = file.to_str().expect("utf-8");
    same_as_docker(&[
        (&["--user", "1234:5678"], "id -u; id -g"),
        (&["-u", "nobody"], "id -un"),
        (
            &["--env-file", file, "-e", "OVERRIDDEN=flag"],
            "echo \"$FROM_FILE|$OVERRIDDEN\"",
        ),
        (&["--hostname", "box-1"], "hostname"),
        (&["--entrypoint", "/bin/echo"], "from the entrypoint"),
        (&["--platform", "linux/amd64"], "uname -m"),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn network_settings_match_docker() {
    same_as_docker(&[
        (&["--add-host", "db:10.1.2.3"], "grep -w db /etc/hosts"),
        (&["--dns", "10.9.8.7"], "grep nameserver /etc/resolv.conf"),
        (&["--network", "none"], "ls /sys/class/net | sort"),
    ]);
}

#[test]
fn security_settings_match_docker() {
    same_as_docker(&[
        (
            &["--read-only"],
            "touch /x 2>/dev/null; echo $?; touch /tmp/y; echo $?",
        ),
        (
            &["--read-only", "--tmpfs", "/scratch:size=1m"],
            "touch /scratch/y && echo ok; df -k /scratch | tail -1 | awk '{print $2}'",
        ),
        (&["--cap-add", "NET_ADMIN"], "grep Cap /proc/self/status"),
        (&["--cap-drop", "ALL"], "grep Cap /proc/self/status"),
        (
            &["--cap-drop", "chown", "--cap-add", "sys_time"],
            "grep Cap /proc/self/status",
        ),
        (
            &["--security-opt", "no-new-privileges"],
            "grep NoNewPrivs /proc/self/status",
        ),
        (&["--privileged"], "grep CapEff /proc/self/status"),
    ]);
}

#[test]
fn what_the_engine_refuses_fails_as_docker_fails() {
    if common::engine::engine() != common::engine::Engine::Local {
        return;
    }
    // No image registry: a missing image with --pull never must not try one.
    let env = moat();
    let missing = "moat-test/never-pulled:nope";
    let out = env.run(&["run", "--pull", "never", "--image", missing, "--", "true"]);
    assert_code(&out, 125);
    assert!(stderr(&out).contains(missing), "{}", stderr(&out));
    let docker = Command::new("docker")
        .args(["run", "--rm", "--pull", "never", missing, "true"])
        .output()
        .expect("docker");
    assert_eq!(docker.status.code(), Some(125));
    // This machine has no GPU: the engine's own refusal, with docker's exit code.
    let out = env.run(&["run", "--gpus", "all", "--image", IMAGE, "--", "true"]);
    let docker = docker_run(&["--gpus", "all"], "true");
    assert_eq!(out.status.code(), docker.status.code(), "{}", stderr(&out));
    assert_code(&out, 125);
    assert!(stderr(&out).contains("device driver"), "{}", stderr(&out));
}

#[test]
fn bad_flag_values_are_usage_errors_that_name_the_flag() {
    let env = moat();
    for (flag, value) in [
        ("--memory", "lots"),
        ("--cpus", "0"),
        ("--pids-limit", "-5"),
        ("--ulimit", "nofile=2:1"),
        ("--publish", "8080:80/icmp"),
        ("--label", "moat.run_id=x"),
        ("--add-host", "db"),
        ("--dns", "resolver"),
        ("--tmpfs", "relative"),
        ("--pull", "sometimes"),
        ("--gpus", "none"),
        ("--env-file", "/nonexistent/vars"),
        ("--user", "a:b:c"),
    ] {
        let out = env.run(&["run", flag, value, "--image", IMAGE, "--", "true"]);
        common::assert_usage_error_naming(&out, flag);
    }
    assert!(env.run_dirs().is_empty(), "a bad flag recorded a run");
}

#[test]
fn user_labels_are_kept_beside_moats_own() {
    let env = moat();
    let out = env.run(&[
        "run", "--keep", "--label", "team=ci", "-l", "flag", "--image", IMAGE, "--", "true",
    ]);
    assert_code(&out, 0);
    let id = env.only_run_id();
    let container = env.record(&id)["container_id"]
        .as_str()
        .expect("container")
        .to_string();
    let labels = &common::inspect_container(&container).expect("kept")["Config"]["Labels"];
    assert_eq!(labels["team"], "ci");
    assert_eq!(labels["flag"], "");
    assert_eq!(labels["moat.run_id"], id.as_str());
    common::remove_container(&container);
}

/// An HTTP GET of `path` on 127.0.0.1:`port`; the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

#[test]
fn published_ports_are_recorded_listed_and_reachable() {
    if common::engine::engine() != common::engine::Engine::Local
        || common::runtime() != common::Runtime::Docker
    {
        return;
    }
    let env = moat();
    // A server the test starts in the container: busybox's httpd, serving one file.
    let script = "mkdir -p /srv && echo hello > /srv/i && exec httpd -f -p 8080 -h /srv";
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "-n",
        "web",
        "-p",
        "127.0.0.1::8080",
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        script,
    ]);
    let mut live = Live::spawn(cmd);
    let ports = wait_for("the published port in the record", SERVER_UP, || {
        env.record_named("web")
            .and_then(|r| r["ports"].as_array().cloned())
            .filter(|p| !p.is_empty())
    });
    assert_eq!(ports.len(), 1, "{ports:?}");
    let port_text = ports[0].as_str().expect("a string").to_string();
    let host_port: u16 = port_text
        .strip_prefix("127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("->8080/tcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{port_text}"));
    let body = wait_for("the server through the published port", SERVER_UP, || {
        http_get(host_port, "/i")
    });
    assert_eq!(body, "hello\n");
    let list = stdout(&env.run(&["list"]));
    assert!(list.contains(&port_text), "{list}");
    assert_code(&env.run(&["stop", "web"]), 0);
    let _ = live.wait(Duration::from_secs(30));

    // docker publishes the same way: the baseline reaches its server too.
    let docker = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "-p",
            "127.0.0.1::8080",
            IMAGE,
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("docker");
    assert_eq!(docker.status.code(), Some(0), "{}", stderr(&docker));
    let id = stdout(&docker).trim().to_string();
    let port = Command::new("docker")
        .args(["port", &id, "8080/tcp"])
        .output()
        .expect("docker port");
    let port: u16 = stdout(&port)
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .expect("docker's port");
    let body = wait_for("docker's server", SERVER_UP, || http_get(port, "/i"));
    assert_eq!(body, "hello\n");
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
}
