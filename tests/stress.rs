//! Hardening under load and after crashes (SPEC sections 3–5): many parallel runs with
//! every kind of ending, a million lines through one run, `--timeout` parsing, damaged
//! run directories, a dead lock owner, and the security basics of records and containers.
//!
//! Sizes are modest so the file fits in a normal `cargo test`; `MOAT_STRESS_SCALE=N`
//! multiplies the number of parallel runs, their output and the line count for big runs
//! by hand, e.g. `MOAT_STRESS_SCALE=10 cargo test --release --test stress -- --nocapture`.

mod common;

use common::{assert_code, stderr, stdout};

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::live::{Capture, Spawned};
use common::{Env, IMAGE, containers_for, containers_labelled, inspect_container, moat, wait_for};
use serde_json::Value;

/// Long enough for anything on a loaded 2-core machine; a hang still ends the test.
const LONG: Duration = Duration::from_secs(120);

/// `MOAT_STRESS_SCALE` (default 1).
fn scale() -> usize {
    std::env::var("MOAT_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// Length, line count and FNV-1a 64 of some bytes: compared instead of the bytes, so a
/// mismatch prints three numbers rather than megabytes.
#[derive(Debug, PartialEq, Eq)]
struct Digest {
    bytes: usize,
    lines: usize,
    fnv: u64,
}

fn digest(data: &[u8]) -> Digest {
    let fnv = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Digest {
        bytes: data.len(),
        lines: data.iter().filter(|&&b| b == b'\n').count(),
        fnv,
    }
}

/// `moat run --image IMAGE EXTRA... -- COMMAND...`, not yet started.
fn run_command(env: &Env, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = env.cmd();
    cmd.args(["run", "--image", IMAGE]).args(extra).arg("--");
    cmd.args(command);
    cmd
}

/// Waits until run `name` is `running`; returns its record.
#[track_caller]
fn wait_running(env: &Env, name: &str) -> Value {
    wait_for(&format!("run {name} running"), LONG, || {
        env.record_named(name).filter(|r| r["state"] == "running")
    })
}

fn id_of(record: &Value) -> String {
    record["id"].as_str().expect("id is a string").to_string()
}

// ---- 20 parallel runs, every ending -------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// `exit N` after a last stdout line without `\n`.
    Exit(i32),
    /// `kill -9 $$`: 137.
    Kill9,
    /// SIGINT to moat: 130, `stopped`/`signal`.
    SigInt,
    /// SIGTERM to moat: 143, `stopped`/`signal`.
    SigTerm,
    /// `moat stop NAME` from another process: the container's code (143), `stopped`.
    MoatStop,
    /// `--timeout 1s` on a sleep: 124, `failed`/`timeout`.
    Timeout,
}

const ENDINGS: [Ending; 9] = [
    Ending::Exit(0),
    Ending::Exit(1),
    Ending::Exit(3),
    Ending::Exit(42),
    Ending::Kill9,
    Ending::SigInt,
    Ending::SigTerm,
    Ending::MoatStop,
    Ending::Timeout,
];

impl Ending {
    /// The end of the run's shell script, after its output.
    fn script(self, i: usize) -> String {
        match self {
            Ending::Exit(code) => format!("printf 'tail {i}'; exit {code}"),
            Ending::Kill9 => "kill -9 $$".to_string(),
            Ending::SigInt | Ending::SigTerm | Ending::MoatStop => "exec sleep 1000".to_string(),
            Ending::Timeout => "exec sleep 100".to_string(),
        }
    }

    /// True when the test acts on the run once all its output has arrived.
    fn blocks(self) -> bool {
        matches!(self, Ending::SigInt | Ending::SigTerm | Ending::MoatStop)
    }

    /// The exit code of `moat run`.
    fn moat_code(self) -> i32 {
        match self {
            Ending::Exit(code) => code,
            Ending::Kill9 => 137,
            Ending::SigInt => 130,
            Ending::SigTerm | Ending::MoatStop => 143,
            Ending::Timeout => 124,
        }
    }
}

/// One run of the parallel test: what it was made to print and how it ended.
struct Planned {
    i: usize,
    name: String,
    ending: Ending,
    n_out: usize,
    n_err: usize,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Planned {
    fn new(i: usize, lines: usize) -> Planned {
        let ending = ENDINGS[i % ENDINGS.len()];
        let n_out = 4 * lines + i;
        let n_err = lines + i;
        let mut out: Vec<u8> = (1..=n_out)
            .flat_map(|k| format!("out {i} {k}\n").into_bytes())
            .collect();
        if let Ending::Exit(_) = ending {
            out.extend_from_slice(format!("tail {i}").as_bytes());
        }
        let err = (1..=n_err)
            .flat_map(|k| format!("err {i} {k}\n").into_bytes())
            .collect();
        Planned {
            i,
            name: format!("par-{i}"),
            ending,
            n_out,
            n_err,
            out,
            err,
        }
    }

    /// stderr first, then stdout, then the ending: each `seq | sed` is done before the
    /// next starts, so all of it is written before the command blocks or ends.
    fn script(&self) -> String {
        let i = self.i;
        format!(
            "seq 1 {} | sed 's/^/err {i} /' >&2; seq 1 {} | sed 's/^/out {i} /'; {}",
            self.n_err,
            self.n_out,
            self.ending.script(i)
        )
    }
}

/// What one parallel run produced.
struct Outcome {
    status: ExitStatus,
    out: Vec<u8>,
    err: Vec<u8>,
    stop: Option<Output>,
}

fn drive(env: &Env, plan: &Planned) -> Outcome {
    let mut extra = vec!["-n", plan.name.as_str()];
    if plan.ending == Ending::Timeout {
        extra.extend(["--timeout", "1s"]);
    }
    let script = plan.script();
    let proc = Spawned::spawn(run_command(env, &extra, &["sh", "-c", &script]));
    let mut stop = None;
    if plan.ending.blocks() {
        // Act only once every byte the command prints has come through moat.
        wait_for(&format!("all output of {}", plan.name), LONG, || {
            (proc.out.len() >= plan.out.len() && proc.err.len() >= plan.err.len()).then_some(())
        });
        match plan.ending {
            Ending::SigInt => proc.signal(libc::SIGINT),
            Ending::SigTerm => proc.signal(libc::SIGTERM),
            Ending::MoatStop => stop = Some(env.run(&["stop", &plan.name])),
            _ => unreachable!(),
        }
    }
    let (status, out, err) = proc.wait(Instant::now() + LONG);
    Outcome {
        status,
        out,
        err,
        stop,
    }
}

#[test]
fn parallel_runs_with_mixed_endings_end_right_and_lose_nothing() {
    let scale = scale();
    let runs = 20 * scale;
    let lines = 50 * scale;
    let env = moat();
    let plans: Vec<Planned> = (0..runs).map(|i| Planned::new(i, lines)).collect();

    let started = Instant::now();
    let outcomes: Vec<Outcome> = common::on_threads(runs, |i| drive(&env, &plans[i]));
    eprintln!(
        "{runs} parallel runs ({} to {} lines each) took {:?}",
        plans[0].n_out + plans[0].n_err,
        plans[runs - 1].n_out + plans[runs - 1].n_err,
        started.elapsed()
    );

    let records = env.records();
    assert_eq!(records.len(), runs, "one record per run");
    let mut problems = Vec::new();
    for (plan, got) in plans.iter().zip(&outcomes) {
        let name = &plan.name;
        let ending = plan.ending;
        let Some(record) = records.iter().find(|r| r["name"] == name.as_str()) else {
            problems.push(format!("{name} ({ending:?}): no record"));
            continue;
        };
        let id = id_of(record);
        let mut check = |ok: bool, what: String| {
            if !ok {
                problems.push(format!("{name} {id} ({ending:?}): {what}"));
            }
        };
        let err_text = String::from_utf8_lossy(&got.err);

        // The exit code of moat run.
        check(
            got.status.code() == Some(ending.moat_code()),
            format!(
                "moat exited {:?}, expected {}; stderr tail {:?}",
                got.status,
                ending.moat_code(),
                err_text.lines().rev().take(3).collect::<Vec<_>>()
            ),
        );

        // What moat printed: stdout is exactly the command's; stderr starts with the
        // command's, and only carries moat's own notices after it.
        check(
            digest(&got.out) == digest(&plan.out),
            format!(
                "moat stdout {:?} != printed {:?}",
                digest(&got.out),
                digest(&plan.out)
            ),
        );
        let err_ok = match ending {
            Ending::Exit(_) | Ending::Kill9 => digest(&got.err) == digest(&plan.err),
            _ => got.err.starts_with(&plan.err),
        };
        check(
            err_ok,
            format!(
                "moat stderr {:?} vs printed {:?}; extra: {:?}",
                digest(&got.err),
                digest(&plan.err),
                String::from_utf8_lossy(got.err.get(plan.err.len()..).unwrap_or_default())
            ),
        );
        if matches!(ending, Ending::SigInt | Ending::SigTerm) {
            check(
                err_text.contains(&format!("Stopping run {id}")),
                format!("no `Stopping run {id}...` notice on stderr: {err_text:?}"),
            );
        }
        if let Some(stop) = &got.stop {
            check(
                stop.status.code() == Some(0) && stdout(stop) == format!("Run {id} stopped\n"),
                format!(
                    "moat stop: {:?} {:?} {:?}",
                    stop.status,
                    stdout(stop),
                    stderr(stop)
                ),
            );
        }

        // The record: final and right for its ending.
        let (state, exit, error, reason): (&str, Option<i64>, Option<String>, Option<&str>) =
            match ending {
                Ending::Exit(0) => ("stopped", Some(0), None, None),
                Ending::Exit(code) => (
                    "failed",
                    Some(code.into()),
                    Some(format!("exit code {code}")),
                    None,
                ),
                Ending::Kill9 => ("failed", Some(137), Some("exit code 137".into()), None),
                Ending::SigInt | Ending::SigTerm => ("stopped", None, None, Some("signal")),
                Ending::MoatStop => ("stopped", Some(143), None, Some("moat stop")),
                Ending::Timeout => (
                    "failed",
                    None,
                    Some("timeout after 1s".into()),
                    Some("timeout"),
                ),
            };
        check(record["state"] == state, format!("state: {record}"));
        match exit {
            Some(code) => check(record["exit_code"] == code, format!("exit_code: {record}")),
            None => check(
                record["exit_code"].is_i64(),
                format!("exit_code not a number: {record}"),
            ),
        }
        match &error {
            Some(text) => check(record["error"] == text.as_str(), format!("error: {record}")),
            None => check(record.get("error").is_none(), format!("error: {record}")),
        }
        match reason {
            Some(text) => check(
                record["stop_reason"] == text,
                format!("stop_reason: {record}"),
            ),
            None => check(
                record.get("stop_reason").is_none(),
                format!("stop_reason: {record}"),
            ),
        }
        for key in ["created_at", "started_at", "stopped_at"] {
            check(record[key].is_string(), format!("{key} not set: {record}"));
        }

        // The captured log: exactly the bytes the command wrote, per stream.
        let logged_out = env.joined(&id, "stdout");
        let logged_err = env.joined(&id, "stderr");
        check(
            digest(&logged_out) == digest(&plan.out),
            format!(
                "logged stdout {:?} != printed {:?}",
                digest(&logged_out),
                digest(&plan.out)
            ),
        );
        check(
            digest(&logged_err) == digest(&plan.err),
            format!(
                "logged stderr {:?} != printed {:?}",
                digest(&logged_err),
                digest(&plan.err)
            ),
        );

        // Nothing left in the engine.
        let left = containers_for(&id);
        check(left.is_empty(), format!("containers left: {left:?}"));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );

    // Nor any container of this home whose run went missing from the records.
    let left = containers_labelled(&format!("moat.home={}", env.home.display()));
    assert!(left.is_empty(), "containers of this home left: {left:?}");

    // Every other reader agrees: no run is live.
    let out = env.run(&["list", "--json"]);
    assert_code(&out, 0);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("list --json parses");
    assert_eq!(list.len(), runs);
    for record in &list {
        assert!(
            record["state"] == "stopped" || record["state"] == "failed",
            "not final: {record}"
        );
    }
}

// ---- a million lines ---------------------------------------------------------------------

/// One `logs.jsonl` record, for reading a big log without building a `Value` per line.
#[derive(serde::Deserialize)]
struct LogRecord {
    stream: String,
    line: Option<String>,
    #[serde(default)]
    partial: bool,
    eol: Option<bool>,
}

#[test]
fn a_million_lines_through_one_run_in_order() {
    let n = 1_000_000 * scale();
    let env = moat();
    let started = Instant::now();
    let mut child = run_command(&env, &["-n", "million"], &["seq", "1", &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn moat");
    let err = Capture::of(child.stderr.take().expect("stderr piped"));

    // stdout, read and checked as it streams.
    let mut reader = BufReader::with_capacity(1 << 16, child.stdout.take().expect("stdout"));
    let mut line = Vec::new();
    let mut count = 0usize;
    loop {
        line.clear();
        let got = reader
            .read_until(b'\n', &mut line)
            .expect("read moat stdout");
        if got == 0 {
            break;
        }
        count += 1;
        let want = format!("{count}\n");
        assert!(
            line == want.as_bytes(),
            "stdout line {count}: got {:?}, expected {want:?}",
            String::from_utf8_lossy(&line)
        );
    }
    let status = child.wait().expect("wait moat");
    let moat_time = started.elapsed();
    let err = err.finish();
    assert_eq!(
        status.code(),
        Some(0),
        "moat: {status:?}, stderr {:?}",
        String::from_utf8_lossy(&err)
    );
    assert!(
        err.is_empty(),
        "stderr: {:?}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(count, n, "stdout lines");

    // logs.jsonl, streamed: every record a whole stdout line, in order.
    let id = env.only_run_id();
    let checked = Instant::now();
    let path = env.runs_dir().join(&id).join("logs.jsonl");
    let file = std::fs::File::open(&path).expect("open logs.jsonl");
    let mut logged = 0usize;
    for (at, text) in BufReader::with_capacity(1 << 16, file).lines().enumerate() {
        let text = text.expect("read logs.jsonl");
        let record: LogRecord = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("logs.jsonl line {}: {e}: {text:?}", at + 1));
        assert_eq!(record.stream, "stdout", "record {}: {text}", at + 1);
        assert!(
            !record.partial && record.eol != Some(false),
            "record {}: {text}",
            at + 1
        );
        logged += 1;
        let want = logged.to_string();
        assert_eq!(
            record.line.as_deref(),
            Some(want.as_str()),
            "record {}",
            at + 1
        );
    }
    assert_eq!(logged, n, "logged lines");
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["exit_code"], 0, "{record:#}");
    eprintln!(
        "{n} lines: moat run took {moat_time:?} (stdout read and checked as it came); \
         checking logs.jsonl took {:?}",
        checked.elapsed()
    );
}

// ---- --timeout parsing --------------------------------------------------------------------

/// Seconds in a duration like `1m30s`, `5m`, `2h`, `90s` (what `--dry-run` prints).
fn seconds_of(text: &str) -> Option<u64> {
    let mut total = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total += number.parse::<u64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then_some(total)
}

#[test]
fn timeout_durations_are_parsed_and_bad_ones_are_usage_errors() {
    let env = moat();
    for (arg, secs) in [("90s", 90), ("5m", 300), ("2h", 7200)] {
        let out = env.run(&["run", "--dry-run", "--timeout", arg, "--", "true"]);
        assert_code(&out, 0);
        let text = stdout(&out);
        let shown = text
            .lines()
            .find_map(|l| l.strip_prefix("timeout:"))
            .unwrap_or_else(|| panic!("--dry-run does not show --timeout {arg}:\n{text}"));
        assert_eq!(
            seconds_of(shown.trim()),
            Some(secs),
            "--timeout {arg} shown as {shown:?}"
        );
    }
    for arg in ["0s", "abc", "-5s", "1.5x", "5 m", ""] {
        for form in [
            vec!["run".to_string(), "--timeout".into(), arg.into()],
            vec!["run".to_string(), format!("--timeout={arg}")],
        ] {
            let mut args: Vec<&str> = form.iter().map(String::as_str).collect();
            args.extend(["--", "true"]);
            let out = env.run(&args);
            assert_code(&out, 2);
            let err = stderr(&out);
            assert!(
                err.starts_with("moat: ") && err.contains("timeout")
                    || err.contains(&format!("{arg:?}")),
                "{args:?}: stderr {err:?}"
            );
        }
    }
    assert!(env.run_dirs().is_empty(), "a bad --timeout created a run");
}

// ---- crash safety -----------------------------------------------------------------------------

/// Runs `moat run -n NAME -- CMD...` to success; returns the run's ID.
fn finished_run(env: &Env, name: &str, command: &[&str]) -> String {
    let out = run_command(env, &["-n", name], command)
        .output()
        .expect("spawn moat");
    assert_code(&out, 0);
    id_of(&env.record_named(name).expect("record of a finished run"))
}

#[test]
fn damaged_records_are_reported_and_skipped() {
    let env = moat();
    let good = finished_run(&env, "good", &["echo", "one"]);
    let torn = finished_run(&env, "torn", &["seq", "1", "5"]);
    let half = finished_run(&env, "half", &["echo", "h"]);
    let runs = env.runs_dir();

    // A log whose writer died mid-record.
    let log = runs.join(&torn).join("logs.jsonl");
    let mut text = std::fs::read(&log).expect("read log");
    assert!(text.ends_with(b"\n"));
    text.extend_from_slice(br#"{"ts":"2026-"#);
    std::fs::write(&log, &text).expect("tear the log");
    // A record cut in half.
    let meta = runs.join(&half).join("metadata.json");
    let full = std::fs::read(&meta).expect("read record");
    let cut = full[..full.len() / 2].to_vec();
    std::fs::write(&meta, &cut).expect("cut the record");
    // A run directory with nothing in it.
    let empty = "run_0000deadbeef";
    std::fs::create_dir(runs.join(empty)).expect("empty run dir");

    let out = env.run(&["list"]);
    assert_code(&out, 0);
    let listed = stdout(&out);
    for id in [half.as_str(), empty] {
        let row = listed
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
        assert!(row.contains("corrupt"), "row: {row:?}");
    }
    for id in [good.as_str(), torn.as_str()] {
        let row = listed
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
        assert!(row.contains("stopped"), "row: {row:?}");
    }

    // The torn log: every complete line, and a word about the torn one.
    let out = env.run(&["logs", "torn"]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "1\n2\n3\n4\n5\n");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(
        err.starts_with("moat: ") && err.contains("line 6"),
        "the torn line is not reported clearly: {err:?}"
    );

    // Asking for the broken record itself: a clear one-line error, no crash.
    let out = env.run(&["logs", &half]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err:?}");
    assert!(
        err.starts_with("moat: ") && err.lines().count() == 1 && err.contains("is corrupt"),
        "{err:?}"
    );

    // clean -f: the finished runs go, the damaged directories stay and are named.
    let out = env.run(&["clean", "-f"]);
    assert_code(&out, 0);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    for id in [good.as_str(), torn.as_str()] {
        assert!(!runs.join(id).exists(), "clean -f kept finished run {id}");
    }
    for id in [half.as_str(), empty] {
        assert!(runs.join(id).exists(), "clean -f removed damaged {id}");
        assert!(said.contains(id), "clean -f did not report {id}: {said}");
    }
    assert_eq!(std::fs::read(&meta).expect("read"), cut, "record changed");

    // Env's own check reads every record: leave none unreadable.
    std::fs::remove_dir_all(runs.join(&half)).expect("rm half");
    std::fs::remove_dir(runs.join(empty)).expect("rm empty");
}

#[test]
fn a_new_run_works_after_an_owner_died_holding_its_locks() {
    let env = moat();
    let proc = Spawned::spawn(run_command(
        &env,
        &["-n", "holder"],
        &["sh", "-c", "echo ready; exec sleep 1000"],
    ));
    proc.wait_stdout_len(6, LONG);
    let holder = id_of(&wait_running(&env, "holder"));
    // The owner and its watchdog, as a cgroup kill: the run stays an orphan.
    proc.child.kill_watchdog();
    proc.signal(libc::SIGKILL);
    let (status, out, _) = proc.wait(Instant::now() + LONG);
    assert_eq!(status.code(), None, "moat was not killed: {status:?}");
    assert_eq!(out, b"ready\n");

    // A new run in the same home, while the dead owner's run is still "running".
    let out = run_command(&env, &["-n", "after"], &["echo", "after"])
        .output()
        .expect("spawn moat");
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "after\n");
    let after = env.record_named("after").expect("record of the new run");
    assert_eq!(after["state"], "stopped", "{after:#}");
    assert_eq!(env.joined(&id_of(&after), "stdout"), b"after\n");

    // The orphan is visible as such, and moat stop ends it.
    let out = env.run(&["list"]);
    assert_code(&out, 0);
    let listed = stdout(&out);
    let row = listed
        .lines()
        .find(|l| l.contains(&holder))
        .unwrap_or_else(|| panic!("{holder} not listed:\n{listed}"));
    assert!(row.contains("orphaned"), "row: {row:?}");
    let out = env.run(&["stop", "holder"]);
    assert_code(&out, 0);
    let record = env.record(&holder);
    assert!(
        record["state"] == "stopped" || record["state"] == "failed",
        "{record:#}"
    );
    assert!(
        containers_for(&holder).is_empty(),
        "container of {holder} left"
    );
}

// ---- security basics ---------------------------------------------------------------------

/// Every file and directory under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            all.push(path);
        }
    }
    all
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn env_values_never_reach_the_disk_and_records_are_private() {
    let env = moat();
    let out = run_command(
        &env,
        &["-n", "secret", "-e", "SECRET=value-xyz"],
        // The command must not spell the value out: its argv is part of the record.
        &[
            "sh",
            "-c",
            r#"test "${SECRET#value-}" = xyz && echo secret-ok"#,
        ],
    )
    .output()
    .expect("spawn moat");
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "secret-ok\n");
    let id = id_of(&env.record_named("secret").expect("record"));
    assert_eq!(env.record(&id)["env"], serde_json::json!(["SECRET"]));

    let runs = env.runs_dir();
    assert_eq!(mode(&runs), 0o700, "{}", runs.display());
    for path in walk(&env.home) {
        if path.is_dir() {
            if path.starts_with(&runs) {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
            }
            continue;
        }
        let data = std::fs::read(&path).expect("read");
        assert!(
            !data.windows(9).any(|w| w == b"value-xyz"),
            "the value of -e SECRET is in {}",
            path.display()
        );
        if path.starts_with(&runs) {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[test]
fn run_names_and_ids_never_become_other_paths() {
    let env = moat();
    let id = finished_run(&env, "real", &["echo", "real"]);
    // Bait: a valid run directory outside runs/, where `runs/../x` would find it.
    let bait = env.home.join("x");
    std::fs::create_dir(&bait).expect("bait dir");
    for file in ["metadata.json", "logs.jsonl"] {
        std::fs::copy(env.runs_dir().join(&id).join(file), bait.join(file)).expect("copy");
    }

    for query in ["../x", "run_../../etc", "run_../x", "/etc", "x/../../x"] {
        for command in ["logs", "destroy", "wait"] {
            let out = env.run(&[command, query]);
            assert_code(&out, 1);
            assert!(
                stderr(&out).contains("run not found"),
                "moat {command} {query}: {:?}",
                stderr(&out)
            );
            assert!(
                out.stdout.is_empty(),
                "moat {command} {query}: {}",
                stdout(&out)
            );
        }
    }
    assert!(
        bait.join("metadata.json").exists(),
        "the bait was destroyed"
    );

    let before = env.run_dirs();
    for name in ["../x", "a/b", "..", ".", "/x", "x\ny"] {
        let out = run_command(&env, &["-n", name], &["true"])
            .output()
            .expect("spawn moat");
        assert_code(&out, 2);
    }
    assert_eq!(env.run_dirs(), before, "a bad run name created a run");
    assert!(!env.home.join("x").join("logs").exists());
}

#[test]
fn containers_get_only_moat_labels_and_only_the_asked_mounts() {
    let env = moat();
    let extra = env.root.join("extra");
    std::fs::create_dir(&extra).expect("extra dir");
    let mount = format!("{}:/extra:ro", extra.display());
    let proc = Spawned::spawn(run_command(
        &env,
        &["-n", "sec", "-m", &mount],
        &["sh", "-c", "echo ready; exec sleep 1000"],
    ));
    proc.wait_stdout_len(6, LONG);
    let record = wait_running(&env, "sec");
    let id = id_of(&record);
    let container = record["container_id"].as_str().expect("container_id");
    let inspect = inspect_container(container).expect("the run's container exists");

    let labels = inspect["Config"]["Labels"]
        .as_object()
        .expect("labels object");
    let foreign: Vec<&String> = labels.keys().filter(|k| !k.starts_with("moat.")).collect();
    assert!(foreign.is_empty(), "labels not moat's: {foreign:?}");
    assert_eq!(labels["moat.run_id"], id.as_str());
    assert_eq!(labels["moat.managed"], "true");

    let canon = |p: &Path| std::fs::canonicalize(p).expect("canonicalize");
    let mut mounts: Vec<(String, String, String, bool)> = inspect["Mounts"]
        .as_array()
        .expect("Mounts array")
        .iter()
        .map(|m| {
            (
                m["Type"].as_str().unwrap_or_default().to_string(),
                m["Source"].as_str().unwrap_or_default().to_string(),
                m["Destination"].as_str().unwrap_or_default().to_string(),
                m["RW"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    mounts.sort();
    let mut expected = vec![
        (
            "bind".to_string(),
            canon(&env.ws).display().to_string(),
            "/workspace".to_string(),
            true,
        ),
        (
            "bind".to_string(),
            canon(&extra).display().to_string(),
            "/extra".to_string(),
            false,
        ),
    ];
    expected.sort();
    assert_eq!(mounts, expected, "mounts: {:#}", inspect["Mounts"]);
    let host = &inspect["HostConfig"];
    let everything = host.to_string();
    assert!(
        !everything.contains("docker.sock"),
        "the engine socket is mounted: {host:#}"
    );
    assert_ne!(host["Privileged"], true, "privileged container");

    let out = env.run(&["stop", "sec"]);
    assert_code(&out, 0);
    let (status, _, _) = proc.wait(Instant::now() + LONG);
    assert_eq!(status.code(), Some(143));
}
