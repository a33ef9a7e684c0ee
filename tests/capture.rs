//! Nothing is lost: output written after `moat run` died is recovered from the engine
//! before the orphan's container is removed (and `moat logs -f` follows it there), and a
//! full disk under `MOAT_HOME` stops the capture, not the output.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::live::Live;
use common::{IMAGE, Runtime, assert_code, containers_for, moat, stderr};

/// How long a step that only waits for moat and the engine may take.
const END: Duration = Duration::from_secs(60);

/// A command that prints `a`, waits until the test creates `go` in the workspace, prints
/// `b`: the owner can be killed between the two lines without a race.
const A_THEN_B: &str = "echo a; while [ ! -e go ]; do sleep 0.05; done; echo b";

/// Starts `moat run -- sh -c A_THEN_B`, waits for `a`, SIGKILLs the owner; the run id.
fn orphan_after_a(env: &common::Env) -> String {
    let mut cmd = env.cmd();
    cmd.args(["run", "--image", IMAGE, "--", "sh", "-c", A_THEN_B]);
    let live = Live::spawn(cmd);
    live.expect_stdout("a");
    let id = env.only_run_id();
    live.kill_owner_and_watchdog();
    id
}

/// Pins issue 12 bug 4: the record said `stopped 0` and `logs.jsonl` held only `a`, the
/// output after the owner died gone with the container.
#[test]
fn output_written_after_the_owner_died_is_kept() {
    let env = moat();
    let id = orphan_after_a(&env);
    std::fs::write(env.ws.join("go"), "").expect("create go");
    let out = env.run(&["wait", &id]);
    let record = env.record(&id);
    if common::runtime() == Runtime::Apple {
        // Apple's CLI can tell neither the exit code nor the output once the owner is
        // gone: the record says both are unknown.
        assert_code(&out, 125);
        assert_eq!(record["error"], "exit code unknown", "{record:#}");
        assert!(record["logs_incomplete"].is_string(), "{record:#}");
    } else {
        assert_code(&out, 0);
        assert_eq!(record["state"], "stopped", "{record:#}");
        assert_eq!(env.joined(&id, "stdout"), b"a\nb\n", "{:?}", env.logs(&id));
        assert!(record.get("logs_incomplete").is_none(), "{record:#}");
        let logs = env.run(&["logs", &id]);
        assert_code(&logs, 0);
        assert_eq!(common::stdout(&logs), "a\nb\n");
    }
    assert!(containers_for(&id).is_empty(), "container left");
}

/// Pins issue 12 bug 4: `moat logs -f` on a run whose owner died exited 0 at once.
#[test]
fn logs_follow_on_an_orphan_keeps_following_through_the_engine() {
    if common::runtime() == Runtime::Apple {
        // Apple's CLI has no log of a container for moat to follow.
        return;
    }
    let env = moat();
    let id = orphan_after_a(&env);
    let mut follow = env.cmd();
    follow.args(["logs", "-f", &id]);
    let mut live = Live::spawn(follow);
    live.expect_stdout("a");
    live.expect_stderr("following its output through the engine");
    std::fs::write(env.ws.join("go"), "").expect("create go");
    live.expect_stdout("b");
    let (status, rest, _) = live.wait(END);
    assert_eq!(status.code(), Some(0));
    assert!(rest.is_empty(), "more output: {rest:?}");
    // Following settled the run, with the output that came through the engine.
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(env.joined(&id, "stdout"), b"a\nb\n");
    assert!(containers_for(&id).is_empty(), "container left");
}

/// A tmpfs mounted over a directory for the test's life.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a tmpfs on {} (needs root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Pins issue 12 bug 5: a full disk under MOAT_HOME cut the command's stdout off mid-line,
/// exited 125 blaming metadata.json, and left the record `running` for ever.
#[test]
fn a_full_disk_under_moat_home_stops_the_capture_not_the_output() {
    const OUTPUT: usize = 5_000_000;
    let env = moat();
    let _disk = Tmpfs::mount(&env.home, "1m");
    let script = format!("head -c {OUTPUT} /dev/zero | tr '\\0' x; exit 3");
    let out = env
        .cmd()
        .args(["run", "--image", IMAGE, "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run moat");
    assert_code(&out, 3);
    assert_eq!(out.stdout.len(), OUTPUT, "all of the output reached stdout");
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("moat:")).collect();
    assert_eq!(lines.len(), 1, "one warning: {err:?}");
    assert!(lines[0].contains("logs.jsonl is incomplete"), "{err:?}");
    let id = env.only_run_id();
    let record = env.record(&id);
    assert_eq!(record["state"], "failed", "final: {record:#}");
    assert_eq!(record["exit_code"], 3, "{record:#}");
    assert_eq!(record["moat_exit_code"], 3, "{record:#}");
    assert!(record["logs_incomplete"].is_string(), "{record:#}");
    assert!(containers_for(&id).is_empty(), "container left");
}
