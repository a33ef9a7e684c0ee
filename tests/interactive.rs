//! `moat run -i`, driven through a real pseudo-terminal (`common::pty`): what reaches the
//! screen, the exit code, the run record, the captured log, window sizes, the escape key,
//! signals, and the terminal settings after every ending. Plus `-i` without a terminal.
//!
//! Every test works in its own `MOAT_HOME` and waits for observable output (the busybox
//! prompt, a command's output), never for a fixed time.
//!
//! The suite runs on the runtime `MOAT_TEST_RUNTIME` names (see `common::runtime`); what
//! Apple's `container` CLI cannot do is guarded in the test concerned, saying why.

mod common;

use std::io::Write;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::pty::{Pty, describe, show};
use common::{Env, IMAGE, Runtime, containers_for, docker_request, moat, remove_container};
use serde_json::Value;

/// The busybox shell's prompt in the workspace.
const PROMPT: &str = "/workspace # ";
/// How long to wait for anything that involves starting a container.
const SLOW: Duration = Duration::from_secs(20);
/// How long to wait for a shell to answer once it runs.
const QUICK: Duration = Duration::from_secs(10);

/// One `moat run -i` on its own terminal, in its own env.
struct Session {
    pty: Pty,
    env: Env,
    /// The size the container's TTY should have: the terminal's, 24x80 for a 0x0 one.
    size: (u16, u16),
}

impl Session {
    /// `moat run -i --image IMAGE EXTRA... -- COMMAND...` on a `rows` x `cols` terminal.
    fn start(extra: &[&str], command: &[&str], rows: u16, cols: u16) -> Session {
        let env = moat();
        let mut cmd = env.cmd();
        cmd.args(["run", "-i", "--image", IMAGE])
            .args(extra)
            .arg("--")
            .args(command);
        let pty = Pty::spawn(cmd, rows, cols);
        let size = if rows == 0 || cols == 0 {
            (24, 80)
        } else {
            (rows, cols)
        };
        Session { pty, env, size }
    }

    /// `sh` on a 24x80 terminal, up to its first prompt.
    fn shell(extra: &[&str]) -> Session {
        let mut s = Session::start(extra, &["sh"], 24, 80);
        s.first_prompt();
        s
    }

    /// Waits for a shell's first prompt; under Apple, also until the container's TTY has
    /// its size.
    ///
    /// The stand-in cannot size the TTY before the start as Apple's CLI does: it is
    /// `docker start --attach`, whose CLI sizes the TTY just after the start (the engine
    /// refuses to resize a container that is not running). So the shell can get a SIGWINCH
    /// after its first prompt. `stty size` is asked until it shows the size: from then on
    /// no SIGWINCH is pending. The size itself is asserted where a test is about it.
    fn first_prompt(&mut self) {
        self.prompt(SLOW);
        if common::runtime() != Runtime::Apple {
            return;
        }
        let want = format!("{} {}", self.size.0, self.size.1);
        let deadline = Instant::now() + QUICK;
        let mut seen = Vec::new();
        loop {
            let size = one_line(self, "stty size");
            if size == want {
                return;
            }
            seen.push(size);
            assert!(
                Instant::now() < deadline,
                "the container's TTY never got the size {want}: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn prompt(&mut self, timeout: Duration) -> Vec<u8> {
        self.pty.expect(PROMPT, timeout)
    }

    /// Waits for moat to exit, then asserts the terminal settings are those from before.
    #[track_caller]
    fn finish(&mut self, timeout: Duration) -> ExitStatus {
        let status = self.pty.wait(timeout);
        assert_eq!(
            self.pty.stty_g(),
            self.pty.settings_before(),
            "terminal settings after the run ({}) differ from before; screen {:?}",
            describe(status),
            show(&self.pty.screen()),
        );
        status
    }

    #[track_caller]
    fn assert_code(&self, status: ExitStatus, code: i32) {
        assert_eq!(
            status.code(),
            Some(code),
            "moat exited with {}; screen {:?}",
            describe(status),
            show(&self.pty.screen())
        );
    }

    fn id(&self) -> String {
        self.env.only_run_id()
    }

    fn record(&self) -> Value {
        self.env.record(&self.id())
    }

    /// Waits until a process whose command line contains `needle` runs in the container:
    /// then the shell has handed the TTY to it (and put it back in canonical mode).
    fn wait_for_process(&self, needle: &str) {
        let record = self.record();
        let container = record["container_id"]
            .as_str()
            .expect("container_id while running");
        common::wait_for(
            &format!("{needle:?} to run in the container"),
            QUICK,
            || {
                processes(container)
                    .iter()
                    .any(|p| p.contains(needle))
                    .then_some(())
            },
        );
    }

    fn screen_text(&self) -> String {
        String::from_utf8_lossy(&self.pty.screen()).into_owned()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Do not leave a shell running in the engine after a failure.
            for record in self.env.records() {
                let id = record["id"].as_str().unwrap_or_default();
                containers_for(id).iter().for_each(|c| remove_container(c));
            }
        }
    }
}

/// Asserts the run ended `state` with `exit_code` and `stop_reason` (`None`: absent).
#[track_caller]
fn assert_record(record: &Value, state: &str, exit_code: Option<i64>, stop_reason: Option<&str>) {
    assert_eq!(record["state"], state, "{record:#}");
    assert_eq!(record["interactive"], true, "{record:#}");
    if let Some(code) = exit_code {
        assert_eq!(record["exit_code"], code, "{record:#}");
    }
    match stop_reason {
        Some(reason) => assert_eq!(record["stop_reason"], reason, "{record:#}"),
        None => assert!(
            record.get("stop_reason").is_none_or(Value::is_null),
            "{record:#}"
        ),
    }
}

/// Types `command` at the shell's prompt and returns the line it prints (without
/// `\r\n`), once the shell prompts again.
///
/// The output is found by a marker the shell computes (`=42=` from `=$((6*7))=`), never by
/// the echo of the typed line: a SIGWINCH (after a resize) makes the line editor redraw the
/// line while it is being typed, which splits its echo anywhere.
fn one_line(s: &mut Session, command: &str) -> String {
    s.pty.send(format!("echo \"=$((6*7))=$({command})\"\r"));
    s.pty.expect("=42=", QUICK);
    let line = s.pty.expect("\r\n", QUICK);
    s.prompt(QUICK);
    String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
}

/// Types `command` into the shell and asserts it prints the line `expected`.
#[track_caller]
fn assert_line(s: &mut Session, command: &str, expected: &str) {
    let line = one_line(s, command);
    assert_eq!(
        line,
        expected,
        "{command:?} printed {line:?}; screen {:?}",
        show(&s.pty.screen())
    );
}

/// The command lines of the processes in `container`.
fn processes(container: &str) -> Vec<String> {
    let (status, body) =
        docker_request("GET", &format!("/containers/{container}/top")).expect("container top");
    if status != 200 {
        return Vec::new();
    }
    let top: Value = serde_json::from_slice(&body).expect("top is JSON");
    let cmd = top["Titles"]
        .as_array()
        .and_then(|t| t.iter().position(|t| t == "CMD" || t == "COMMAND"))
        .unwrap_or(0);
    top["Processes"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| row[cmd].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---- a shell on a terminal ----------------------------------------------------------------

#[test]
fn typed_command_runs_and_its_exit_code_is_kept() {
    let mut s = Session::start(&[], &["sh"], 24, 80);
    s.pty.expect("Escape: Ctrl-/ k (stop)", SLOW);
    s.first_prompt();
    // moat owns the terminal meanwhile: raw, so Ctrl-C and friends are bytes.
    let during = s.pty.stty_g();
    assert_eq!(
        during.lflag & (libc::ICANON | libc::ECHO | libc::ISIG),
        0,
        "the terminal is not raw during the session: {during:?}"
    );
    s.pty.send("echo hi; exit 7\r");
    // The typed line is echoed as `echo hi; exit 7`; only the output is `hi` on its own line.
    s.pty.expect("\nhi\r\n", QUICK);
    let status = s.finish(QUICK);
    s.assert_code(status, 7);

    let record = s.record();
    assert_record(&record, "failed", Some(7), None);
    let logs = s.env.logs(&s.id());
    assert!(
        logs.iter().all(|r| r["stream"] == "tty"),
        "a TTY session is captured as stream tty only: {logs:#?}"
    );
    let tty = String::from_utf8_lossy(&common::join_stream(&logs, "tty")).into_owned();
    assert!(
        tty.contains("\nhi\r\n"),
        "the log holds the session's output: {tty:?}"
    );
    assert!(containers_for(&s.id()).is_empty());
}

#[test]
fn container_tty_has_the_terminal_size_and_follows_a_resize() {
    let mut s = Session::start(&[], &["sh"], 33, 101);
    s.first_prompt();
    assert_line(&mut s, "stty size", "33 101");

    s.pty.resize(40, 120);
    // moat passes the change on asynchronously (SIGWINCH, then a call to the engine), so
    // ask until the container sees it.
    let deadline = Instant::now() + QUICK;
    let mut seen = Vec::new();
    loop {
        let size = one_line(&mut s, "stty size");
        if size == "40 120" {
            break;
        }
        seen.push(size);
        assert!(
            Instant::now() < deadline,
            "the container's TTY never became 40x120: {seen:?}"
        );
    }
    assert!(
        seen.iter().all(|size| size == "33 101"),
        "sizes between: {seen:?}"
    );
    s.pty.send("exit\r");
    let status = s.finish(QUICK);
    s.assert_code(status, 0);
    assert_record(&s.record(), "stopped", Some(0), None);
}

/// The command sees the terminal's size before its first instruction: `stty size` is the
/// command itself. dockerd before API 1.42 cannot size a TTY before the start, so moat
/// starts the command through a step of its own binary that does (bound on a local
/// engine, copied into a remote one: runtime/docker/tty_size.rs); Podman sizes it itself.
/// Each way of naming the command goes through the step, as does a user without root.
#[test]
fn the_command_sees_the_terminal_size_from_its_first_instruction() {
    if common::runtime() == Runtime::Apple {
        // Apple's CLI sizes the TTY before the start; its stand-in, `docker start
        // --attach` on dockerd 20.10, cannot (see `Session::first_prompt`).
        return;
    }
    let mut cases: Vec<(&[&str], &[&str])> = vec![
        (&[], &["stty", "size"]),
        (&["--no-init"], &["stty", "size"]),
        (&["--entrypoint", "stty"], &["size"]),
        (&["--user", "65534"], &["stty", "size"]),
    ];
    // A bound binary needs no write to the container's root; a remote engine's copy does,
    // so there a read-only root is sized just after the start.
    if common::engine::engine().sees_host_files() {
        cases.push((&["--read-only"], &["stty", "size"]));
    }
    for _ in 0..common::scaled(2, 1) {
        for (extra, command) in &cases {
            let mut s = Session::start(extra, command, 33, 101);
            let status = s.finish(SLOW);
            s.assert_code(status, 0);
            let screen = s.screen_text();
            assert!(
                screen.contains("33 101\r\n"),
                "{extra:?} {command:?}: the command saw another size: {screen:?}"
            );
        }
    }
}

#[test]
fn zero_size_terminal_gives_the_container_24x80() {
    let mut s = Session::start(&[], &["sh"], 0, 0);
    s.first_prompt();
    assert_line(&mut s, "stty size", "24 80");
    s.pty.send("exit 3\r");
    let status = s.finish(QUICK);
    s.assert_code(status, 3);
    assert_record(&s.record(), "failed", Some(3), None);
}

#[test]
fn a_command_that_exits_at_once_keeps_its_exit_code() {
    // The exit may come before moat is done setting up the TTY; a few tries make that
    // race likely.
    for _ in 0..3 {
        let mut s = Session::start(&[], &["sh", "-c", "exit 5"], 24, 80);
        let status = s.finish(SLOW);
        s.assert_code(status, 5);
        assert_record(&s.record(), "failed", Some(5), None);
    }
}

#[test]
fn failure_to_start_the_command_restores_the_terminal() {
    let mut s = Session::start(&[], &["no-such-command"], 24, 80);
    let status = s.finish(SLOW);
    s.assert_code(status, 127);
    assert_record(&s.record(), "failed", Some(127), None);
    // Under the engine's init the reason comes from init itself (as with
    // `docker run --init`); either way the user sees which command could not run.
    let screen = s.screen_text();
    assert!(
        screen.contains("no-such-command") && screen.contains("No such file"),
        "no error on screen: {screen:?}"
    );
}

// ---- the escape key -------------------------------------------------------------------------

/// Sends `prefix` then `k` (two writes) to a shell and checks the run stops promptly.
fn escape_stops(prefix: &[u8]) {
    let mut s = Session::shell(&[]);
    let id = s.id();
    s.pty.send(prefix);
    let sent = Instant::now();
    s.pty.send("k");
    let status = s.finish(SLOW);
    let took = sent.elapsed();
    s.assert_code(status, 0);
    assert!(
        took < Duration::from_secs(2),
        "Ctrl-/ k took {took:?} to end the run"
    );
    let screen = s.screen_text();
    assert!(
        screen.contains(&format!("Run {id} stopped")),
        "no stop notice on screen: {screen:?}"
    );
    assert_record(&s.record(), "stopped", None, Some("escape"));
    assert!(containers_for(&id).is_empty(), "container left behind");
}

#[test]
fn ctrl_slash_k_stops_the_run() {
    escape_stops(b"\x1f");
}

#[test]
fn kitty_ctrl_slash_k_stops_the_run() {
    escape_stops(b"\x1b[47;5u");
}

#[test]
fn ctrl_slash_twice_sends_one_literal_and_the_session_goes_on() {
    let mut s = Session::shell(&[]);
    s.pty.send("od -An -tx1\r");
    // Until od runs, the TTY may still be in the shell's line-editing mode, where ^D is
    // no end of input.
    s.wait_for_process("od -An");
    // Prefix prefix → one 0x1f; prefix + `a` → both bytes; then Enter and end of input.
    s.pty.send(b"\x1f\x1f");
    s.pty.send(b"\x1fa\r");
    s.pty.send(b"\x04");
    let line = s.pty.expect(" 0a\r\n", QUICK);
    let line = String::from_utf8_lossy(&line);
    assert!(
        line.ends_with("\n 1f 1f 61 0a\r\n"),
        "od saw other bytes: {line:?}"
    );
    s.prompt(QUICK);
    assert_line(&mut s, "echo alive", "alive");
    s.pty.send("exit\r");
    let status = s.finish(QUICK);
    s.assert_code(status, 0);
    assert_record(&s.record(), "stopped", Some(0), None);
}

// ---- Ctrl-C and signals -----------------------------------------------------------------------

#[test]
fn ctrl_c_interrupts_the_command_inside_and_the_session_goes_on() {
    let mut s = Session::shell(&[]);
    let container = s.record()["container_id"]
        .as_str()
        .expect("container_id while running")
        .to_string();
    s.pty.send("sleep 100\r");
    s.wait_for_process("sleep 100");
    let sent = Instant::now();
    s.pty.send(b"\x03");
    // The container's TTY echoes `^C`; then the shell prompts again.
    s.pty.expect("^C", QUICK);
    s.prompt(QUICK);
    assert_line(&mut s, "echo alive", "alive");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "Ctrl-C took {:?} to get the shell back",
        sent.elapsed()
    );
    assert!(
        !processes(&container)
            .iter()
            .any(|p| p.contains("sleep 100")),
        "sleep still runs after Ctrl-C"
    );
    s.pty.send("exit 0\r");
    let status = s.finish(QUICK);
    s.assert_code(status, 0);
    assert_record(&s.record(), "stopped", Some(0), None);
}

/// Sends `signal` to moat during a shell session and checks how it ends.
fn signal_stops(signal: libc::c_int, code: i32) {
    let mut s = Session::shell(&["--stop-timeout", "1"]);
    let id = s.id();
    s.pty.signal(signal);
    let status = s.finish(SLOW);
    s.assert_code(status, code);
    let screen = s.screen_text();
    assert!(
        screen.contains(&format!("Stopping run {id}...")),
        "no stopping notice on screen: {screen:?}"
    );
    assert_record(&s.record(), "stopped", None, Some("signal"));
    assert!(containers_for(&id).is_empty(), "container left behind");
}

/// A TTY session is stopped by hanging it up (an interactive shell ignores SIGTERM), and
/// moat exits with the command's own code, as for every forwarded signal: the shell died
/// of the hang-up.
#[test]
fn sigterm_hangs_the_session_up_and_exits_with_the_shells_129() {
    signal_stops(libc::SIGTERM, 129);
}

#[test]
fn sighup_stops_the_session_with_129() {
    signal_stops(libc::SIGHUP, 129);
}

// ---- bytes ----------------------------------------------------------------------------------

#[test]
fn bytes_that_are_not_utf8_come_back_unchanged() {
    let mut s = Session::start(&[], &["cat"], 24, 80);
    s.pty.expect("Escape: Ctrl-/ k (stop)\r\n", SLOW);
    let bytes: &[u8] = b"\xff\xfe(\xc3\x28\x80z";
    // Typed before the container may read it: it waits in the container's TTY.
    s.pty.send([bytes, b"\r"].concat());
    // The TTY echoes the line, then cat writes it back.
    let twice = [bytes, b"\r\n", bytes, b"\r\n"].concat();
    s.pty.expect(&twice, SLOW);
    s.pty.send(b"\x04");
    let status = s.finish(QUICK);
    s.assert_code(status, 0);
    assert_record(&s.record(), "stopped", Some(0), None);
    let tty = s.env.joined(&s.id(), "tty");
    assert!(
        tty.windows(twice.len()).any(|w| w == twice),
        "the log lost bytes: {:?}",
        show(&tty)
    );
}

// ---- -i without a terminal --------------------------------------------------------------------

#[test]
fn piped_stdin_reaches_the_command_without_a_terminal() {
    let env = moat();
    let mut child = env
        .cmd()
        .args(["run", "-i", "--image", IMAGE, "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn moat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a\nb\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for moat");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr {stderr:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    let id = env.only_run_id();
    assert_record(&env.record(&id), "stopped", Some(0), None);
    assert_eq!(env.joined(&id, "stdout"), b"a\nb\n");
}

#[test]
fn without_a_terminal_stdout_and_stderr_stay_apart() {
    let env = moat();
    let out = env
        .cmd()
        .args(["run", "-i", "--image", IMAGE, "--"])
        .args(["sh", "-c", "echo x; echo y >&2"])
        .output()
        .expect("run moat");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr {stderr:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\n");
    assert_eq!(stderr, "y\n");
    let id = env.only_run_id();
    assert_record(&env.record(&id), "stopped", Some(0), None);
    let logs = env.logs(&id);
    assert!(
        logs.iter().all(|r| r["stream"] != "tty"),
        "no TTY without a terminal: {logs:#?}"
    );
    assert_eq!(common::join_stream(&logs, "stdout"), b"x\n");
    assert_eq!(common::join_stream(&logs, "stderr"), b"y\n");
}
