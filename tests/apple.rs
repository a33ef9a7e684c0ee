//! moat on Apple's `container` runtime, through the stand-in `tests/container`: a Python
//! script that implements the CLI surface moat uses on top of the local Docker engine, so
//! every run here is a real container. Its switches (`STANDIN_*`, documented at its top)
//! choose the inspect JSON shape (1.0 or pre-1.0) and inject the CLI's known faults:
//! transient XPC errors, hangs, and the two ways a missing container shows.
//!
//! What the Apple CLI cannot provide, and what moat does instead (tested where the
//! parametrised suites guard the Docker behaviour, e.g. `manage.rs`'s orphan tests):
//! - an exit code after the fact: `container inspect` has none (only `stopped`), and there
//!   is no `wait`. The exit code comes from the foreground `container start --attach` child
//!   that `moat run` keeps; when that process is gone (the owner was killed), a run whose
//!   container then ends is recorded `failed` with `exit code unknown`, where Docker would
//!   record the real code.
//! - `created` as a state: a created but never started container shows as `stopped`.
//!
//! The behavioural suites (`run`, `manage`, `interactive`) also run on this runtime with
//! `MOAT_TEST_RUNTIME=apple` (`scripts/test` does), so exit codes, output, logs, stops,
//! orphans and TTY sessions are tested there on both runtimes. This file keeps what only
//! the Apple runtime has: the CLI calls moat makes, a missing CLI, the record's runtime
//! winning over `MOAT_RUNTIME`, both inspect shapes, and the CLI's faults. It runs on
//! Apple whatever `MOAT_TEST_RUNTIME` says.
//!
//! Every test works in its own `MOAT_HOME` and stand-in state directory; dropping the env
//! asserts that no container of a run without `--keep` remains.

mod common;

use common::{assert_code, stderr, stdout};

use std::ops::Deref;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::live::Live;
use common::{Env, IMAGE, Runtime, containers_for, remove_container};

/// How long anything that starts a container may take (the stand-in costs a Python start
/// and a `docker` call per CLI call, on a shared engine).
const SLOW: Duration = Duration::from_secs(60);

// ---- helpers ----------------------------------------------------------------------------

/// A test env whose `moat` uses the stand-in, with its own stand-in state directory.
struct Apple {
    env: Env,
}

impl Deref for Apple {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

fn apple() -> Apple {
    Apple {
        env: common::moat_on(Runtime::Apple),
    }
}

impl Apple {
    /// `moat` with the stand-in as the CLI and no stand-in switch set.
    fn cmd(&self) -> Command {
        self.env.cmd()
    }

    /// `moat ARGS...` to completion, with extra environment.
    fn run_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = self.cmd();
        cmd.envs(vars.iter().copied()).args(args);
        cmd.output().expect("spawn moat")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(&[], args)
    }

    /// `moat run --runtime apple --image IMAGE -- CMD...` to completion.
    fn run_cmd(&self, command: &[&str]) -> Output {
        let mut args = vec!["run", "--runtime", "apple", "--image", IMAGE, "--"];
        args.extend_from_slice(command);
        self.run(&args)
    }

    /// Starts `moat run --runtime apple -- sh -c SCRIPT` where SCRIPT prints `ready` first;
    /// waits for that line and for the record to say `running`.
    fn start_ready(&self, vars: &[(&str, &str)], extra: &[&str], script: &str) -> (Live, String) {
        let mut cmd = self.cmd();
        cmd.envs(vars.iter().copied())
            .args(["run", "--runtime", "apple", "--image", IMAGE])
            .args(extra)
            .args(["--", "sh", "-c", script]);
        let live = Live::spawn(cmd);
        live.expect_stdout("ready");
        let id = self.only_run_id();
        common::wait_for("state running", SLOW, || {
            (self.record(&id)["state"] == "running").then_some(())
        });
        (live, id)
    }

    /// Every stand-in invocation so far, as argv lists.
    fn calls(&self) -> Vec<Vec<String>> {
        self.env.standin_calls()
    }

    /// How many stand-in calls had `verb` as their first argument.
    fn count(&self, verb: &str) -> usize {
        self.env.standin_count(verb)
    }

    /// Forgets the stand-in calls so far.
    fn clear_calls(&self) {
        self.env.clear_standin_calls();
    }
}

/// The container of run `id`, from its record.
fn container_of(env: &Env, id: &str) -> String {
    env.record(id)["container_id"]
        .as_str()
        .expect("container_id recorded")
        .to_string()
}

/// The run's line in `moat list`.
fn list_line(out: &Output, id: &str) -> String {
    stdout(out)
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{id} not in moat list: {out:?}"))
        .to_string()
}

// ---- the CLI calls, a missing CLI, a kept container ------------------------------------

#[test]
fn success_is_recorded_with_the_apple_runtime() {
    let env = apple();
    let out = env.run_cmd(&["true"]);
    assert_code(&out, 0);
    assert!(out.stdout.is_empty(), "stdout {:?}", stdout(&out));
    assert!(out.stderr.is_empty(), "stderr {:?}", stderr(&out));
    let id = env.only_run_id();
    let record = env.record(&id);
    assert_eq!(record["runtime"], "apple", "{record:#}");
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["exit_code"], 0, "{record:#}");
    // The container is the stand-in's, named with the run ID, created under init.
    assert_eq!(record["container_id"], id.as_str(), "{record:#}");
    let create = env
        .calls()
        .into_iter()
        .find(|c| c[0] == "create")
        .expect("container create was called");
    for flag in ["--name", "--init", "--label", "--volume", "--workdir"] {
        assert!(create.iter().any(|a| a == flag), "{flag} in {create:?}");
    }
    assert!(
        create.iter().any(|a| a == "moat.managed=true"),
        "{create:?}"
    );
    assert!(containers_for(&id).is_empty(), "container left behind");
}

#[test]
fn a_missing_cli_is_one_line_and_exit_125() {
    let env = apple();
    let out = env.run_with(
        &[("MOAT_CONTAINER_BIN", "/nonexistent/container")],
        &["run", "--runtime", "apple", "--image", IMAGE, "--", "true"],
    );
    assert_code(&out, 125);
    let err = stderr(&out);
    assert_eq!(
        err,
        "moat: cannot run Apple's container CLI at /nonexistent/container: \
         No such file or directory\n"
    );
}

#[test]
fn clean_reaps_a_kept_container_listed_by_the_cli() {
    let env = apple();
    let out = env.run(&[
        "run",
        "--runtime",
        "apple",
        "--keep",
        "--image",
        IMAGE,
        "--",
        "true",
    ]);
    assert_code(&out, 0);
    let id = env.only_run_id();
    assert_eq!(containers_for(&id).len(), 1, "kept");
    env.clear_calls();

    let dry = env.run(&["clean", "--dry-run"]);
    assert_code(&dry, 0);
    assert!(
        stdout(&dry).contains(&format!("Would remove container {} (run {id})", &id[..12])),
        "{dry:?}"
    );
    let listed = env.calls().into_iter().any(|c| {
        c == ["list", "--all", "--format", "json"]
            .map(String::from)
            .to_vec()
    });
    assert!(listed, "no container list: {:?}", env.calls());

    let clean = env.run(&["clean", "-f"]);
    assert_code(&clean, 0);
    assert!(containers_for(&id).is_empty(), "container left behind");
    assert!(env.records().is_empty(), "run not removed");
}

// ---- cross-process stop, and later commands use the record's runtime ---------------------

#[test]
fn moat_stop_ends_a_blocked_run_through_the_records_runtime() {
    let env = apple();
    let (mut live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    env.clear_calls();

    // No --runtime, and a MOAT_RUNTIME that names the other runtime: the record decides.
    let vars = [("MOAT_RUNTIME", "docker")];
    let sent = Instant::now();
    let stop = env.run_with(&vars, &["stop", &id]);
    let took = sent.elapsed();
    assert_code(&stop, 0);
    assert!(
        stdout(&stop).contains(&format!("Run {id} stopped")),
        "{stop:?}"
    );
    assert!(
        env.count("stop") >= 1,
        "no container stop: {:?}",
        env.calls()
    );
    assert!(took < Duration::from_secs(20), "moat stop took {took:?}");

    let (status, _, err) = live.wait(SLOW);
    // sleep dies of the SIGTERM: the container's exit code.
    assert_eq!(status.code(), Some(143), "stderr {err:?}");
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert_eq!(record["exit_code"], 143, "{record:#}");

    let logs = env.run_with(&vars, &["logs", &id]);
    assert_code(&logs, 0);
    assert_eq!(stdout(&logs), "ready\n");
    let list = env.run_with(&vars, &["list"]);
    assert_code(&list, 0);
    assert!(list_line(&list, &id).contains("stopped"), "{list:?}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}

/// `moat stop` from elsewhere ends a run that is still pulling its image at once, and the
/// pull (here one that hangs) does not outlive it.
#[test]
fn moat_stop_ends_a_run_that_is_still_pulling() {
    let env = apple();
    // A name no other test uses, to find this run's pull among the processes.
    let image = format!(
        "moat-test/absent-{}:latest",
        env.root
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 dir")
    );
    let mut cmd = env.cmd();
    cmd.env("STANDIN_HANG", "image-pull")
        .args([
            "run",
            "--runtime",
            "apple",
            "--image",
            &image,
            "-n",
            "pulling",
        ])
        .args(["--", "true"]);
    let mut live = Live::spawn(cmd);
    common::wait_for("the pull to start", SLOW, || {
        env.calls()
            .iter()
            .any(|c| c.starts_with(&["image".to_string(), "pull".to_string()]))
            .then_some(())
    });
    // The pull's argv ends `pull IMAGE` (moat's own argv has the image too).
    let pull = format!("pull\0{image}");
    assert_eq!(
        processes_mentioning(&pull),
        1,
        "the hung pull is not running"
    );

    let sent = Instant::now();
    let stop = env.run(&["stop", "pulling"]);
    let took = sent.elapsed();
    assert_code(&stop, 0);
    let id = env.only_run_id();
    assert_eq!(stdout(&stop), format!("Run {id} stopped\n"));
    assert!(took < Duration::from_secs(5), "moat stop took {took:?}");

    let (status, _, err) = live.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "stderr {err:?}");
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert!(record["exit_code"].is_null(), "{record:#}");
    assert!(record["container_id"].is_null(), "{record:#}");
    assert_eq!(processes_mentioning(&pull), 0, "the pull outlived moat");
}

/// How many processes have `needle` in their command line (NUL between arguments).
fn processes_mentioning(needle: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(needle))
        .count()
}

// ---- reconciliation when the owner died -------------------------------------------------

/// Kills the owner of a running run, then checks that readers show it `running
/// (orphaned)` with inspect answering in `shape`, and that `moat stop` ends it.
fn orphan_is_reconciled(shape: &str) {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    live.kill_owner_and_watchdog();
    env.clear_calls();
    let vars = [("STANDIN_INSPECT_SHAPE", shape)];

    let list = env.run_with(&vars, &["list"]);
    assert_code(&list, 0);
    assert!(
        list_line(&list, &id).contains("running (orphaned)"),
        "{list:?}"
    );
    assert!(env.count("inspect") >= 1, "{:?}", env.calls());
    assert_eq!(env.record(&id)["state"], "running");

    let stop = env.run_with(&vars, &["stop", &id]);
    assert_code(&stop, 0);
    let record = env.record(&id);
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert!(
        record["state"] == "stopped" || record["state"] == "failed",
        "{record:#}"
    );
    // No owner kept the exit code and inspect has none.
    assert!(record["exit_code"].is_null(), "{record:#}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}

#[test]
fn orphan_is_reconciled_with_the_current_inspect_shape() {
    orphan_is_reconciled("current");
}

#[test]
fn orphan_is_reconciled_with_the_legacy_inspect_shape() {
    orphan_is_reconciled("legacy");
}

// ---- faults -------------------------------------------------------------------------------

#[test]
fn transient_inspect_failures_never_end_a_run() {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    live.kill_owner_and_watchdog();

    // Two transient failures: retried, then the third inspect answers `running`.
    env.clear_calls();
    let list = env.run_with(&[("STANDIN_FAIL", "inspect:2")], &["list"]);
    assert_code(&list, 0);
    assert!(
        list_line(&list, &id).contains("running (orphaned)"),
        "{list:?}"
    );
    assert!(list.stderr.is_empty(), "stderr {:?}", stderr(&list));
    assert_eq!(env.count("inspect"), 3, "{:?}", env.calls());
    assert_eq!(env.record(&id)["state"], "running");

    // Failures that outlast the retries: an error, and still not an exit.
    let list = env.run_with(&[("STANDIN_FAIL", "inspect:1000")], &["list"]);
    assert_code(&list, 0);
    let err = stderr(&list);
    assert!(
        err.contains(&format!("cannot check run {id}")) && err.contains("XPC connection error"),
        "{err:?}"
    );
    assert!(
        list_line(&list, &id).contains("running (orphaned)"),
        "{list:?}"
    );
    let record = env.record(&id);
    assert_eq!(record["state"], "running", "{record:#}");
    assert!(record["exit_code"].is_null(), "{record:#}");

    let stop = env.run(&["stop", &id]);
    assert_code(&stop, 0);
    assert!(containers_for(&id).is_empty(), "container left behind");
}

/// A hung `container stop`, in `moat stop` and in `moat run` at once: each waits out the
/// deadline of half a minute, so the two share it rather than take a test thread each.
#[test]
fn a_hung_container_stop_is_an_error_and_the_run_still_ends() {
    common::on_threads(2, |i| {
        if i == 0 {
            hung_stop_in_moat_stop()
        } else {
            hung_stop_in_moat_run()
        }
    });
}

/// A hung `container stop` in `moat stop`: a clear error once its deadline (stop timeout
/// + 30 s) passes, then moat kills the container and the run ends recorded.
fn hung_stop_in_moat_stop() {
    let env = apple();
    let (mut live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    let sent = Instant::now();
    let stop = env.run_with(&[("STANDIN_HANG", "stop")], &["stop", "-t", "1", &id]);
    let took = sent.elapsed();
    let err = stderr(&stop);
    assert!(
        err.contains("container stop did not answer within 31s"),
        "{err:?}"
    );
    assert!(took >= Duration::from_secs(31), "took {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_code(&stop, 0);

    let (status, _, _) = live.wait(SLOW);
    assert_eq!(status.code(), Some(137), "killed");
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}

/// The same hang inside `moat run` (stopping on SIGTERM, stop timeout 1 s): the error is
/// reported once the stop's deadline (31 s) passes, the container is killed, and the run
/// ends recorded.
fn hung_stop_in_moat_run() {
    let env = apple();
    let (mut live, id) = env.start_ready(
        &[("STANDIN_HANG", "stop")],
        &["--stop-timeout", "1"],
        "echo ready; exec sleep 1000",
    );
    let sent = Instant::now();
    live.signal(libc::SIGTERM);
    let (status, _, err) = live.wait(Duration::from_secs(90));
    let took = sent.elapsed();
    // moat exits with the command's own code: the kill ended it.
    assert_eq!(status.code(), Some(137), "stderr {err:?}");
    assert!(
        err.iter()
            .any(|l| l == "moat: stopping the container: container stop did not answer within 31s"),
        "{err:?}"
    );
    assert!(took >= Duration::from_secs(31), "took {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "signal", "{record:#}");
    assert_eq!(record["exit_code"], 137, "killed: {record:#}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}

/// The container is removed behind moat's back after its owner died; inspect then
/// answers in the way `missing` selects, and the run is recorded as gone.
fn removed_container_is_gone(missing: Option<&str>) {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    live.kill_owner_and_watchdog();
    remove_container(&container_of(&env, &id));

    let vars: Vec<(&str, &str)> = missing
        .map(|m| ("STANDIN_MISSING", m))
        .into_iter()
        .collect();
    let list = env.run_with(&vars, &["list"]);
    assert_code(&list, 0);
    let record = env.record(&id);
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["error"], "container disappeared", "{record:#}");
    assert!(list_line(&list, &id).contains("failed"), "{list:?}");
}

#[test]
fn an_empty_inspect_array_is_gone() {
    removed_container_is_gone(Some("empty"));
}

#[test]
fn xpc_not_found_is_gone() {
    removed_container_is_gone(Some("notfound"));
}
