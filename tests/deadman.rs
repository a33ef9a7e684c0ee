//! The dead-man's switch: when the `moat run` that owns a run is SIGKILLed (alone, with
//! its whole process group, or under a terminal), its container is stopped and removed
//! within 5 seconds and the run is recorded `failed`, saying the owner was killed, with
//! the command's code. A run whose owner ends normally is left as its owner left it.

mod common;

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::live::{Live, watchdog_of, watchdogs};
use common::pty::Pty;
use common::{Env, IMAGE, containers_for, moat, networks_for, scaled, wait_for};

/// The switch's promise: nothing of the run is left this long after its owner died.
const SWITCH_DEADLINE: Duration = Duration::from_secs(5);

/// `sleep`'s code when the switch stops it: SIGTERM.
const SLEEP_STOPPED: i64 = 143;

/// How long a run may take to start (an image already present, a loaded machine).
const START: Duration = Duration::from_secs(30);

/// `moat run -n NAME --image IMAGE -- sleep 600`, not yet spawned.
fn sleeper(env: &Env, name: &str) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.args(["run", "-n", name, "--image", IMAGE, "--", "sleep", "600"]);
    cmd
}

/// Waits until run `name` runs; its ID.
fn running(env: &Env, name: &str) -> String {
    let record = wait_for(&format!("run {name} running"), START, || {
        env.record_named(name).filter(|r| r["state"] == "running")
    });
    record["id"].as_str().expect("id").to_string()
}

/// Within [`SWITCH_DEADLINE`] of `killed`, run `id` has no container (nor a strict run's
/// proxy and network) and is recorded failed with its owner's death and the command's
/// exit code `code`.
#[track_caller]
fn switched(env: &Env, id: &str, killed: Instant, code: i64) {
    let gone = wait_for(
        "the run's containers and network removed",
        SWITCH_DEADLINE * 2,
        || (containers_for(id).is_empty() && networks_for(id).is_empty()).then(Instant::now),
    );
    let took = gone - killed;
    assert!(
        took <= SWITCH_DEADLINE,
        "the container of {id} outlived its owner by {took:?}"
    );
    let record = wait_for("the run settled", SWITCH_DEADLINE, || {
        Some(env.record(id)).filter(|r| r["state"] != "running")
    });
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["outcome"], "moat_failed", "{record:#}");
    assert_eq!(record["moat_exit_code"], 125, "{record:#}");
    let error = record["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("moat run (pid ") && error.contains(") was killed"),
        "{record:#}"
    );
    // The command's own code as the engine tells it (Apple's CLI cannot tell one).
    if common::runtime() != common::Runtime::Apple {
        assert_eq!(record["exit_code"], code, "{record:#}");
    }
}

/// Spawns `cmd` (a `moat` whose run is named `name`), waits until the run runs, sends
/// SIGKILL with `kill` (given moat's pid), and checks that the switch ended the run.
fn kill_and_check(env: &Env, cmd: std::process::Command, name: &str, kill: impl Fn(libc::pid_t)) {
    let mut live = Live::spawn(cmd);
    let id = running(env, name);
    kill(live.pid());
    let killed = Instant::now();
    let _ = live.wait(START);
    switched(env, &id, killed, SLEEP_STOPPED);
}

/// SIGKILLs `target` (a pid, or a process group as `-pgid`).
fn sigkill(target: libc::pid_t) {
    // SAFETY: kill(2) of a process (group) this test started.
    let rc = unsafe { libc::kill(target, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {target}");
}

#[test]
fn a_killed_owner_takes_its_container_with_it() {
    let env = moat();
    for round in 0..scaled(8, 3) {
        let name = format!("killed-{round}");
        kill_and_check(&env, sleeper(&env, &name), &name, sigkill);
    }
}

#[test]
fn a_killed_strict_owner_takes_its_proxy_and_network_with_it() {
    let env = moat();
    if common::runtime() == common::Runtime::Apple {
        // Its CLI cannot make the topology: strict is refused, never run open.
        let out = env.run(&[
            "run",
            "--image",
            IMAGE,
            "--allow-host",
            "x.test",
            "--",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not available on Apple's runtime"), "{err}");
        assert!(env.records().is_empty());
        return;
    }
    for round in 0..scaled(4, 2) {
        let name = format!("strict-{round}");
        let mut cmd = env.cmd();
        cmd.args([
            "run",
            "-n",
            &name,
            "--image",
            IMAGE,
            "--allow-host",
            "example.test",
        ]);
        cmd.args(["--", "sleep", "600"]);
        // The owner alone, then its whole process group, as CI runners cancel.
        if round % 2 == 0 {
            kill_and_check(&env, cmd, &name, sigkill);
        } else {
            cmd.process_group(0);
            kill_and_check(&env, cmd, &name, |owner| sigkill(-owner));
        }
    }
}

#[test]
fn a_killed_process_group_takes_its_container_with_it() {
    let env = moat();
    for round in 0..scaled(5, 2) {
        let name = format!("group-{round}");
        // The owner in a process group of its own, killed whole, as CI runners cancel.
        let mut cmd = sleeper(&env, &name);
        cmd.process_group(0);
        kill_and_check(&env, cmd, &name, |owner| sigkill(-owner));
    }
}

#[test]
fn a_killed_agent_session_takes_its_container_with_it() {
    let env = moat();
    // `moat claude` with the project's image and command: the agent preset's path (its
    // state, its user, its strict network) without building the agent's image. Apple's
    // runtime has no strict network: the session runs open there.
    let policy = match common::runtime() {
        common::Runtime::Apple => "network:\n  policy: open\n",
        common::Runtime::Docker => "",
    };
    std::fs::write(
        env.ws.join("moat.yaml"),
        format!("name: agent\nimage: {IMAGE}\ncommand: [\"sleep\", \"600\"]\n{policy}"),
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.arg("claude");
    kill_and_check(&env, cmd, "agent", sigkill);
}

#[test]
fn a_killed_interactive_owner_leaves_no_shell_running() {
    let env = moat();
    let mut cmd = env.cmd();
    cmd.args(["run", "-i", "-n", "shell", "--image", IMAGE, "--", "sh"]);
    let mut pty = Pty::spawn(cmd, 24, 80);
    let id = running(&env, "shell");
    pty.send("echo ready-$((6*7))\r");
    pty.expect("ready-42", START);
    pty.signal(libc::SIGKILL);
    let killed = Instant::now();
    // A shell ignores SIGTERM: the kill after the grace ends it.
    switched(&env, &id, killed, 137);
}

#[test]
fn a_normal_end_is_left_as_the_owner_left_it() {
    let env = moat();
    let out = env
        .cmd()
        .args([
            "run", "-n", "kept", "--keep", "--image", IMAGE, "--", "sh", "-c", "exit 3",
        ])
        .output()
        .unwrap();
    common::assert_code(&out, 3);
    let record = env.record_named("kept").expect("recorded");
    let id = record["id"].as_str().unwrap().to_string();
    // Its watchdog saw the run end by itself and is gone, having done nothing.
    wait_for("the watchdog gone", SWITCH_DEADLINE, || {
        (!watchdogs().iter().any(|w| w.run_id == id)).then_some(())
    });
    let record = env.record(&id);
    assert_eq!(record["outcome"], "exited", "{record:#}");
    assert_eq!(record["exit_code"], 3, "{record:#}");
    assert_eq!(record["moat_exit_code"], 3, "{record:#}");
    assert_eq!(record["error"], "exit code 3", "{record:#}");
    assert_eq!(containers_for(&id).len(), 1, "--keep kept the container");
    common::assert_code(&env.run(&["destroy", &id]), 0);
}

#[test]
fn the_watchdog_lives_in_a_session_of_its_own() {
    let env = moat();
    let mut live = Live::spawn(sleeper(&env, "session"));
    let id = running(&env, "session");
    let watchdog = watchdog_of(live.pid()).expect("a watchdog");
    // SAFETY: getsid(2) only reads.
    let (owner_sid, watchdog_sid) = unsafe { (libc::getsid(live.pid()), libc::getsid(watchdog)) };
    assert_eq!(watchdog_sid, watchdog, "the watchdog leads its own session");
    assert_ne!(owner_sid, watchdog_sid);
    // Its stdio is not the caller's: nothing of a CI log's pipe is held open by it.
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{watchdog}/fd/{fd}")).unwrap();
        assert_eq!(target, std::path::Path::new("/dev/null"), "fd {fd}");
    }
    common::assert_code(&env.run(&["stop", &id]), 0);
    let _ = live.wait(START);
}
