//! moat on Apple's `container` runtime, through the stand-in `tests/container`: a Python
//! script that implements the CLI surface moat uses on top of the local Docker engine, so
//! every run here is a real container. Its switches (`STANDIN_*`, documented at its top)
//! choose the inspect JSON shape (1.0 or pre-1.0) and inject the CLI's known faults:
//! transient XPC errors, hangs, and the two ways a missing container shows.
//!
//! What the Apple CLI cannot provide, and what moat does instead (tested below):
//! - an exit code after the fact: `container inspect` has none (only `stopped`), and there
//!   is no `wait`. The exit code comes from the foreground `container start --attach` child
//!   that `moat run` keeps; when that process is gone (the owner was killed), a run whose
//!   container then ends is recorded `failed` with `exit code unknown`, where Docker would
//!   record the real code.
//! - `created` as a state: a created but never started container shows as `stopped`.
//!
//! Every test works in its own `MOAT_HOME` and stand-in state directory; dropping the env
//! asserts that no container of a run without `--keep` remains.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::pty::{Pty, describe, show};
use common::{Env, IMAGE, containers_for, inspect_container, remove_container};

/// The stand-in `container` executable.
const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/container");

/// How long anything that starts a container may take (the stand-in costs a Python start
/// and a `docker` call per CLI call, on a shared engine).
const SLOW: Duration = Duration::from_secs(60);

// ---- helpers ----------------------------------------------------------------------------

/// A test env whose `moat` uses the stand-in, with its own stand-in state directory.
struct Apple {
    env: Env,
    state: PathBuf,
}

impl Deref for Apple {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

fn apple() -> Apple {
    let env = common::moat();
    let state = env.root.join("standin");
    std::fs::create_dir_all(&state).expect("create stand-in state dir");
    Apple { env, state }
}

impl Apple {
    /// `moat` with the stand-in as the CLI and no stand-in switch set.
    fn cmd(&self) -> Command {
        let mut cmd = self.env.cmd();
        cmd.env("MOAT_CONTAINER_BIN", STANDIN)
            .env("STANDIN_STATE_DIR", &self.state);
        for switch in [
            "STANDIN_INSPECT_SHAPE",
            "STANDIN_MISSING",
            "STANDIN_FAIL",
            "STANDIN_HANG",
        ] {
            cmd.env_remove(switch);
        }
        cmd
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
        let text = std::fs::read_to_string(self.state.join("calls")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("calls line is JSON"))
            .collect()
    }

    /// How many stand-in calls had `verb` as their first argument.
    fn count(&self, verb: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.first().map(String::as_str) == Some(verb))
            .count()
    }

    /// Forgets the stand-in calls so far.
    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.state.join("calls"));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}, stdout {:?}, stderr {:?}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// A `moat` process whose stdout and stderr lines arrive on channels as it runs.
struct Live {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Live {
    fn spawn(mut cmd: Command) -> Live {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moat");
        let stdout = lines_of(child.stdout.take().expect("stdout piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr piped"));
        Live {
            child,
            stdout,
            stderr,
        }
    }

    fn expect_stdout(&self, line: &str) {
        let got = self
            .stdout
            .recv_timeout(SLOW)
            .unwrap_or_else(|e| panic!("no stdout line {line:?} from moat: {e}"));
        assert_eq!(got, line);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid; it is still ours (not yet waited for).
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Waits (at most `timeout`, else kills moat and panics) for moat to exit; returns
    /// its status and the rest of its stdout and stderr lines.
    fn wait(mut self, timeout: Duration) -> (ExitStatus, Vec<String>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("moat did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (
            status,
            self.stdout.iter().collect(),
            self.stderr.iter().collect(),
        )
    }

    /// SIGKILLs moat (no cleanup, no final record) and reaps it, leaving an orphan.
    fn kill_owner(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
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

// ---- exit codes, output, stdin ------------------------------------------------------------

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
fn exit_code_3_is_the_commands() {
    let env = apple();
    let out = env.run_cmd(&["sh", "-c", "exit 3"]);
    assert_code(&out, 3);
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["exit_code"], 3, "{record:#}");
    assert_eq!(record["error"], "exit code 3", "{record:#}");
}

#[test]
fn killed_by_sigkill_exits_137() {
    let env = apple();
    let out = env.run_cmd(&["sh", "-c", "kill -9 $$"]);
    assert_code(&out, 137);
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["exit_code"], 137, "{record:#}");
}

/// Under init a missing command is the init's exit code 127. (Without init the CLI's own
/// start error is all there is: `container start` exits non-zero with the message on its
/// stderr, and moat records that exit code.)
#[test]
fn missing_command_exits_127() {
    let env = apple();
    let out = env.run_cmd(&["no-such-command-here"]);
    assert_code(&out, 127);
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["exit_code"], 127, "{record:#}");
}

#[test]
fn stdout_and_stderr_are_kept_apart_and_logged() {
    let env = apple();
    let out = env.run_cmd(&["sh", "-c", "echo out; echo err >&2; echo out2"]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "out\nout2\n");
    assert_eq!(stderr(&out), "err\n");
    let id = env.only_run_id();
    assert_eq!(env.joined(&id, "stdout"), b"out\nout2\n");
    assert_eq!(env.joined(&id, "stderr"), b"err\n");
    let logs = env.logs(&id);
    assert_eq!(logs.len(), 3, "{logs:#?}");
    for record in &logs {
        assert!(
            record["stream"] == "stdout" || record["stream"] == "stderr",
            "{record}"
        );
        assert!(common::is_rfc3339_ms(
            record["ts"].as_str().unwrap_or_default()
        ));
    }
}

#[test]
fn piped_stdin_reaches_the_command() {
    let env = apple();
    let mut cmd = env.cmd();
    cmd.args(["run", "--runtime", "apple", "--image", IMAGE, "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn moat");
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(b"hi\n").expect("write stdin");
    drop(stdin); // EOF ends cat
    let out = child.wait_with_output().expect("wait moat");
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(env.joined(&env.only_run_id(), "stdout"), b"hi\n");
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
fn sigint_stops_the_run_and_exits_130() {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    live.signal(libc::SIGINT);
    let (status, _, err) = live.wait(SLOW);
    assert_eq!(status.code(), Some(130), "stderr {err:?}");
    assert!(
        err.iter()
            .any(|l| l.contains(&format!("Stopping run {id}"))),
        "{err:?}"
    );
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "signal", "{record:#}");
    assert_eq!(env.joined(&id, "stdout"), b"ready\n");
    assert!(env.count("stop") >= 1, "{:?}", env.calls());
    assert!(containers_for(&id).is_empty(), "container left behind");
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

#[test]
fn a_missing_image_exits_125_with_the_clis_message() {
    let env = apple();
    let image = "moat-test/nosuch:latest";
    // The CLI fetches a missing image itself (the stand-in's `docker create` too), so its
    // message is the engine's pull error.
    let daemon = common::pull_error(image).expect("pulling a missing image fails");
    let out = env.run(&["run", "--runtime", "apple", "--image", image, "--", "true"]);
    assert_code(&out, 125);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("moat: "), "{err:?}");
    assert!(
        err.contains(&daemon),
        "{err:?} lacks the engine's {daemon:?}"
    );
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["runtime"], "apple", "{record:#}");
}

// ---- cross-process stop, and later commands use the record's runtime ---------------------

#[test]
fn moat_stop_ends_a_blocked_run_through_the_records_runtime() {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
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

// ---- reconciliation when the owner died -------------------------------------------------

/// Kills the owner of a running run, then checks that readers show it `running
/// (orphaned)` with inspect answering in `shape`, and that `moat stop` ends it.
fn orphan_is_reconciled(shape: &str) {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    live.kill_owner();
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

/// The Apple CLI cannot tell an exit code after the fact: a container that ends after its
/// owner died is recorded `failed` with `exit code unknown` (Docker would record 7).
#[test]
fn an_orphan_that_exits_by_itself_has_no_exit_code() {
    let env = apple();
    let script = "echo ready; while [ ! -e /workspace/go ]; do sleep 0.1; done; exit 7";
    let (live, id) = env.start_ready(&[], &[], script);
    live.kill_owner();
    let container = container_of(&env, &id);
    std::fs::write(env.ws.join("go"), "").expect("write go");
    common::wait_for("the container to exit", SLOW, || {
        inspect_container(&container)
            .is_some_and(|c| c["State"]["Running"] == false)
            .then_some(())
    });

    let list = env.run(&["list"]);
    assert_code(&list, 0);
    let record = env.record(&id);
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["error"], "exit code unknown", "{record:#}");
    assert!(record["exit_code"].is_null(), "{record:#}");
    assert!(record["stopped_at"].is_string(), "{record:#}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}

// ---- faults -------------------------------------------------------------------------------

#[test]
fn transient_inspect_failures_never_end_a_run() {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
    live.kill_owner();

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

/// A hung `container stop` in `moat stop`: a clear error once its deadline (stop timeout
/// + 30 s) passes, then moat kills the container and the run ends recorded.
#[test]
fn a_hung_container_stop_in_moat_stop_is_an_error_and_the_run_still_ends() {
    let env = apple();
    let (live, id) = env.start_ready(&[], &[], "echo ready; exec sleep 1000");
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
#[test]
fn a_hung_container_stop_in_moat_run_is_an_error_and_the_run_still_ends() {
    let env = apple();
    let (live, id) = env.start_ready(
        &[("STANDIN_HANG", "stop")],
        &["--stop-timeout", "1"],
        "echo ready; exec sleep 1000",
    );
    let sent = Instant::now();
    live.signal(libc::SIGTERM);
    let (status, _, err) = live.wait(Duration::from_secs(90));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(143), "stderr {err:?}");
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
    live.kill_owner();
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
fn container_not_found_is_gone() {
    removed_container_is_gone(None);
}

#[test]
fn xpc_not_found_is_gone() {
    removed_container_is_gone(Some("notfound"));
}

// ---- a TTY session --------------------------------------------------------------------------

const PROMPT: &str = "/workspace # ";

/// `moat run -i --runtime apple -- sh` on a terminal of `rows` x `cols`, up to its prompt.
fn tty_shell(env: &Apple, rows: u16, cols: u16) -> Pty {
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "-i",
        "--runtime",
        "apple",
        "--image",
        IMAGE,
        "--",
        "sh",
    ]);
    let mut pty = Pty::spawn(cmd, rows, cols);
    pty.expect(PROMPT, SLOW);
    pty
}

/// Types `command` and returns the line it prints.
fn one_line(pty: &mut Pty, command: &str) -> String {
    pty.send(format!("{command}\r"));
    pty.expect(format!("{command}\r\n"), SLOW);
    let line = pty.expect("\r\n", SLOW);
    pty.expect(PROMPT, SLOW);
    String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
}

#[test]
fn a_tty_session_runs_on_a_pty_of_the_terminals_size() {
    let env = apple();
    let mut pty = tty_shell(&env, 30, 100);
    assert_eq!(one_line(&mut pty, "echo $((6*7))"), "42");
    // The stand-in's `docker start -a` sizes the container's TTY just after the start, so
    // the very first look may come before it (Apple's CLI sizes it before the start).
    common::wait_for(
        "the container's TTY to get the terminal's size",
        SLOW,
        || (one_line(&mut pty, "stty size") == "30 100").then_some(()),
    );
    pty.resize(40, 120);
    common::wait_for("the container's TTY to follow the resize", SLOW, || {
        (one_line(&mut pty, "stty size") == "40 120").then_some(())
    });
    pty.send("exit 5\r");
    let status = pty.wait(SLOW);
    assert_eq!(
        status.code(),
        Some(5),
        "{}; screen {:?}",
        describe(status),
        show(&pty.screen())
    );
    let id = env.only_run_id();
    let record = env.record(&id);
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["exit_code"], 5, "{record:#}");
    assert_eq!(record["interactive"], true, "{record:#}");
    let tty = String::from_utf8_lossy(&env.joined(&id, "tty")).into_owned();
    assert!(tty.contains("42"), "{tty:?}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}

#[test]
fn escape_stops_a_tty_session() {
    let env = apple();
    let mut pty = tty_shell(&env, 24, 80);
    let id = env.only_run_id();
    pty.send(b"\x1f");
    pty.send("k");
    let status = pty.wait(SLOW);
    assert_eq!(
        status.code(),
        Some(0),
        "{}; screen {:?}",
        describe(status),
        show(&pty.screen())
    );
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "escape", "{record:#}");
    assert!(containers_for(&id).is_empty(), "container left behind");
}
