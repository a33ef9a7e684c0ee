//! The workspace modes, seen from outside: `--workspace copy` (the workspace uploaded
//! into the container, `.moatignore` honoured, the host untouched), `--copy-back` (what
//! the run added or changed written back, nothing deleted, conflicts reported and the
//! host's version kept, on every ending), `--workspace none`, and the usage errors.
//!
//! A copy goes through the Docker Engine's archive API, so the copy tests run on Docker
//! whatever `MOAT_TEST_RUNTIME` says; Apple's runtime refuses a copy (tested here too).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::live::Live;
use common::{
    Env, IMAGE, Runtime, assert_code, assert_usage_error_naming, containers_of_home, moat, moat_on,
    stderr, stdout,
};
use serde_json::Value;

/// A new env on Docker, where a copy goes through the archive API.
fn docker() -> Env {
    moat_on(Runtime::Docker)
}

/// `moat run` with the workspace copied in and back, before `-- CMD...`.
const COPY_BACK: [&str; 6] = [
    "run",
    "--image",
    IMAGE,
    "--workspace",
    "copy",
    "--copy-back",
];

/// `moat run --image IMAGE --workspace copy [extra] -- CMD...`.
fn run_copy(env: &Env, extra: &[&str], command: &[&str]) -> Output {
    let mut args = vec!["run", "--image", IMAGE, "--workspace", "copy"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    env.run(&args)
}

/// Writes `files` (path, contents) into the workspace, making directories as needed.
fn write_files(env: &Env, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = env.ws.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write file");
    }
}

/// Everything about a tree that a change would show: each path's kind, mode, owner,
/// modification time and contents (or link target).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let what = if meta.is_dir() {
                dirs.push(path.clone());
                "dir".to_string()
            } else if meta.is_symlink() {
                format!("link {:?}", std::fs::read_link(&path).expect("readlink"))
            } else {
                format!("file {:?}", std::fs::read(&path).expect("read"))
            };
            let rel = path.strip_prefix(root).expect("below root");
            all.insert(
                rel.to_string_lossy().into_owned(),
                format!(
                    "{what} mode {:o} owner {}:{} mtime {}.{}",
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                    meta.mtime(),
                    meta.mtime_nsec()
                ),
            );
        }
    }
    all
}

fn read(env: &Env, path: &str) -> String {
    std::fs::read_to_string(env.ws.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The record's `copy_back` key.
fn copy_back(env: &Env) -> Value {
    let record = env.record(&env.only_run_id());
    assert_eq!(record["workspace_mode"], "copy", "{record:#}");
    record["copy_back"].clone()
}

// ---- copy --------------------------------------------------------------------------------

#[test]
fn a_copy_shows_the_workspace_and_leaves_the_host_untouched() {
    let env = docker();
    write_files(
        &env,
        &[
            ("a.txt", "from the host\n"),
            ("sub/b.txt", "below\n"),
            ("gone.txt", "to be deleted\n"),
        ],
    );
    std::os::unix::fs::symlink("a.txt", env.ws.join("link")).expect("symlink");
    std::fs::set_permissions(
        env.ws.join("sub/b.txt"),
        std::fs::Permissions::from_mode(0o751),
    )
    .expect("chmod");
    let before = snapshot(&env.ws);
    let script = "pwd; cat a.txt sub/b.txt link; stat -c %a sub/b.txt; \
                  echo changed > a.txt; echo new > new.txt; rm gone.txt; \
                  mkdir made; chmod 700 sub/b.txt; touch sub/b.txt";
    let out = run_copy(&env, &[], &["sh", "-c", script]);
    assert_code(&out, 0);
    assert_eq!(
        stdout(&out),
        "/workspace\nfrom the host\nbelow\nfrom the host\n751\n"
    );
    assert_eq!(snapshot(&env.ws), before, "the host's workspace changed");
    let record = env.record(&env.only_run_id());
    assert_eq!(record["workspace_mode"], "copy", "{record:#}");
    assert!(record.get("copy_back").is_none(), "{record:#}");
    let ws = env.ws.canonicalize().expect("canonical ws");
    assert_eq!(record["workspace"], ws.to_str().expect("utf-8"));
}

#[test]
fn moatignore_keeps_excluded_paths_out_of_the_container() {
    let env = docker();
    write_files(
        &env,
        &[
            (
                ".moatignore",
                "# secrets stay home\nsecret.env\n/build/\n!build/keep.txt\n**/*.log\n",
            ),
            ("secret.env", "KEY=1\n"),
            ("src/main.rs", "fn main() {}\n"),
            ("src/debug.log", "noise\n"),
            ("top.log", "noise\n"),
            ("build/out.bin", "binary\n"),
            ("build/keep.txt", "kept\n"),
        ],
    );
    let out = run_copy(&env, &[], &["sh", "-c", "find . | sort"]);
    assert_code(&out, 0);
    assert_eq!(
        stdout(&out),
        ".\n./.moatignore\n./build\n./build/keep.txt\n./src\n./src/main.rs\n"
    );
}

// ---- copy-back ---------------------------------------------------------------------------

#[test]
fn copy_back_brings_added_and_changed_files_and_deletes_nothing() {
    let env = docker();
    write_files(
        &env,
        &[
            (".moatignore", "private/\n"),
            ("edit.txt", "old\n"),
            ("same.txt", "same\n"),
            ("delete-me.txt", "still here\n"),
            ("private/notes", "host notes\n"),
        ],
    );
    let same_before = snapshot(&env.ws)["same.txt"].clone();
    let script = "echo new > edit.txt; echo added > added.txt; rm delete-me.txt; \
                  mkdir -p tools/bin; printf '#!/bin/sh\\necho hi\\n' > tools/bin/run; \
                  chmod 755 tools/bin/run; mkdir -p private; \
                  echo container > private/notes; echo container > private/new; \
                  ln -s edit.txt alias; ln -s /etc/passwd escape";
    let out = run_copy(&env, &["--copy-back"], &["sh", "-c", script]);
    assert_code(&out, 0);
    assert_eq!(read(&env, "edit.txt"), "new\n");
    assert_eq!(read(&env, "added.txt"), "added\n");
    assert_eq!(
        read(&env, "delete-me.txt"),
        "still here\n",
        "deleted on the host"
    );
    assert_eq!(read(&env, "tools/bin/run"), "#!/bin/sh\necho hi\n");
    let mode = std::fs::metadata(env.ws.join("tools/bin/run"))
        .expect("stat run")
        .mode();
    assert_eq!(mode & 0o777, 0o755, "mode kept");
    assert_eq!(
        read(&env, "private/notes"),
        "host notes\n",
        "excluded path written"
    );
    assert!(
        !env.ws.join("private/new").exists(),
        "excluded path written"
    );
    assert_eq!(
        std::fs::read_link(env.ws.join("alias")).expect("alias is a link"),
        Path::new("edit.txt")
    );
    assert!(
        std::fs::symlink_metadata(env.ws.join("escape")).is_err(),
        "a link out of the workspace was made"
    );
    assert_eq!(
        snapshot(&env.ws)["same.txt"],
        same_before,
        "unchanged file rewritten"
    );
    let copied = copy_back(&env);
    assert_eq!(copied["written"], 4, "{copied:#}");
    assert_eq!(copied["conflicts"], serde_json::json!([]), "{copied:#}");
    let skipped = copied["skipped"].to_string();
    assert!(skipped.contains("escape"), "{copied:#}");
    assert!(
        stderr(&out).contains("escape"),
        "the refused link is told: {}",
        stderr(&out)
    );
}

#[test]
fn a_file_changed_on_both_sides_is_a_conflict_and_the_host_keeps_its_version() {
    let env = docker();
    write_files(
        &env,
        &[
            ("both.txt", "original\n"),
            ("host-only.txt", "original\n"),
            ("container-only.txt", "original\n"),
        ],
    );
    let mut cmd = env.cmd();
    // The container cannot see the host: the command waits on its stdin while the test
    // edits the host's files, then changes its own copies.
    let script = "echo ready; read line; echo container > both.txt; \
                  echo container > container-only.txt; echo container > made-on-both.txt";
    cmd.args(COPY_BACK)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::piped());
    let mut live = Live::spawn(cmd);
    let mut stdin = live.take_stdin();
    live.expect_stdout("ready");
    write_files(
        &env,
        &[
            ("both.txt", "host edit\n"),
            ("host-only.txt", "host edit\n"),
            ("made-on-both.txt", "host made it\n"),
        ],
    );
    stdin.write_all(b"go\n").expect("write stdin");
    drop(stdin);
    let (status, _, err) = live.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "stderr {err:?}");
    assert_eq!(read(&env, "both.txt"), "host edit\n");
    assert_eq!(read(&env, "made-on-both.txt"), "host made it\n");
    assert_eq!(read(&env, "host-only.txt"), "host edit\n");
    assert_eq!(read(&env, "container-only.txt"), "container\n");
    let conflicts: Vec<&String> = err
        .iter()
        .filter(|l| l.contains("changed on the host and in the container"))
        .collect();
    assert_eq!(conflicts.len(), 2, "one line per conflict: {err:?}");
    assert!(conflicts.iter().all(|l| l.starts_with("moat: ")), "{err:?}");
    assert!(conflicts[0].contains("both.txt"), "{err:?}");
    assert!(conflicts[1].contains("made-on-both.txt"), "{err:?}");
    let copied = copy_back(&env);
    assert_eq!(
        copied["conflicts"],
        serde_json::json!(["both.txt", "made-on-both.txt"]),
        "{copied:#}"
    );
    assert_eq!(copied["written"], 1, "{copied:#}");
}

#[test]
fn copy_back_happens_when_the_run_times_out() {
    let env = docker();
    let started = Instant::now();
    let out = run_copy(
        &env,
        &["--copy-back", "--timeout", "2s"],
        &["sh", "-c", "echo late > result.txt; exec sleep 1000"],
    );
    assert_code(&out, 124);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(read(&env, "result.txt"), "late\n");
    assert_eq!(copy_back(&env)["written"], 1);
}

#[test]
fn copy_back_happens_when_moat_stop_ends_the_run() {
    let env = docker();
    let mut cmd = env.cmd();
    let script = "echo made > stopped.txt; echo ready; exec sleep 1000";
    cmd.args(COPY_BACK).args(["--", "sh", "-c", script]);
    let mut live = Live::spawn(cmd);
    live.expect_stdout("ready");
    let stop = env.run(&["stop", &env.only_run_id()]);
    assert_code(&stop, 0);
    let (status, _, err) = live.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(143), "stderr {err:?}");
    assert_eq!(read(&env, "stopped.txt"), "made\n");
    let record = env.record(&env.only_run_id());
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert_eq!(record["copy_back"]["written"], 1, "{record:#}");
}

#[test]
fn a_mount_inside_the_workspace_is_not_written_through_nor_copied_back() {
    let env = docker();
    write_files(
        &env,
        &[("data/from-workspace", "ws\n"), ("top.txt", "top\n")],
    );
    let mounted = env.root.join("mounted");
    std::fs::create_dir(&mounted).expect("mkdir mounted");
    std::fs::write(mounted.join("from-mount"), "mount\n").expect("write");
    let mount = format!("{}:/workspace/data", mounted.display());
    let script = "ls data; echo c > data/made-in-mount; echo t > top.txt";
    let out = run_copy(&env, &["--copy-back", "-m", &mount], &["sh", "-c", script]);
    assert_code(&out, 0);
    // The mount hides the workspace's own `data`, as over a bind mount.
    assert_eq!(stdout(&out), "from-mount\n");
    assert!(
        !mounted.join("from-workspace").exists(),
        "the copy wrote through the mount onto its source"
    );
    assert_eq!(
        std::fs::read_to_string(mounted.join("made-in-mount")).expect("the mount works"),
        "c\n"
    );
    assert!(!env.ws.join("data/made-in-mount").exists());
    assert!(!env.ws.join("data/from-mount").exists());
    assert_eq!(read(&env, "data/from-workspace"), "ws\n");
    assert_eq!(read(&env, "top.txt"), "t\n");
}

#[test]
fn a_large_workspace_streams_both_ways_in_little_memory() {
    const TIME: &str = "/usr/bin/time";
    let env = docker();
    let size = 64usize << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(env.ws.join("big"), &data).expect("write big");
    let script = "wc -c < big; echo tail >> big";
    let timed = Path::new(TIME).exists();
    let mut cmd = if timed {
        let mut cmd = env.command(TIME);
        cmd.args(["-v", env!("CARGO_BIN_EXE_moat")]);
        cmd
    } else {
        env.cmd()
    };
    cmd.args(COPY_BACK).args(["--", "sh", "-c", script]);
    let out = cmd.output().expect("spawn moat");
    assert_code(&out, 0);
    assert_eq!(stdout(&out).trim(), size.to_string());
    let back = std::fs::read(env.ws.join("big")).expect("read big");
    assert_eq!(back.len(), size + 5);
    assert!(back[..size] == data[..], "the copied-back file differs");
    assert_eq!(&back[size..], b"tail\n");
    if timed {
        let text = stderr(&out);
        let kb: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS in {text}"));
        assert!(kb < 20 * 1024, "moat peak RSS {kb} kB for a 64 MiB file");
    } else {
        eprintln!("{TIME} not found: skipping only the peak-memory assertion");
    }
}

// ---- none ----------------------------------------------------------------------------------

#[test]
fn none_gives_an_empty_workspace() {
    let env = moat();
    write_files(&env, &[("a.txt", "host\n")]);
    let before = snapshot(&env.ws);
    let out = env.run(&[
        "run",
        "--image",
        IMAGE,
        "--workspace",
        "none",
        "--",
        "sh",
        "-c",
        "pwd; ls -A; echo x > new.txt",
    ]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "/workspace\n");
    assert_eq!(snapshot(&env.ws), before);
    assert_eq!(env.record(&env.only_run_id())["workspace_mode"], "none");
}

// ---- usage -----------------------------------------------------------------------------------

#[test]
fn copy_back_without_a_copy_is_a_usage_error_that_creates_no_run() {
    let env = moat();
    for mode in [None, Some("bind"), Some("none")] {
        let mut args = vec!["run", "--image", IMAGE, "--copy-back"];
        if let Some(mode) = mode {
            args.extend(["--workspace", mode]);
        }
        args.extend(["--", "true"]);
        let out = env.run(&args);
        assert_usage_error_naming(&out, "--copy-back");
        assert!(
            stderr(&out).contains("--workspace copy"),
            "says what it needs: {}",
            stderr(&out)
        );
        assert!(env.run_dirs().is_empty(), "{mode:?}: created a run");
    }
    assert!(containers_of_home(&env).is_empty());
}

#[test]
fn bad_workspace_settings_are_usage_errors() {
    let env = moat();
    let out = env.run(&["run", "--workspace", "rsync", "--", "true"]);
    assert_usage_error_naming(&out, "--workspace");
    // Apple's runtime sees the host's files and has no way to copy in before start.
    let out = env.run(&[
        "run",
        "--runtime",
        "apple",
        "--workspace",
        "copy",
        "--",
        "true",
    ]);
    assert_usage_error_naming(&out, "--workspace");
    assert!(stderr(&out).contains("Apple"), "{}", stderr(&out));
    write_files(&env, &[(".moatignore", "ok\n[unclosed\n")]);
    let out = env.run(&[
        "run",
        "--runtime",
        "docker",
        "--workspace",
        "copy",
        "--",
        "true",
    ]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains(".moatignore: line 2:"),
        "{}",
        stderr(&out)
    );
    assert!(env.run_dirs().is_empty(), "created {:?}", env.run_dirs());
}

#[test]
fn dry_run_tells_the_mode_and_why() {
    let env = moat();
    write_files(&env, &[(".moatignore", "a\nb\n")]);
    let line = |extra: &[&str]| {
        let mut args = vec!["run", "--dry-run", "--runtime", "docker"];
        args.extend_from_slice(extra);
        args.extend(["--", "true"]);
        let out = env.run(&args);
        assert_code(&out, 0);
        stdout(&out)
            .lines()
            .find(|l| l.starts_with("workspace:"))
            .expect("a workspace line")
            .to_string()
    };
    let bind = line(&[]);
    assert!(bind.contains("-> /workspace"), "{bind}");
    assert!(
        bind.contains("bind") && bind.contains("the engine sees this machine's files"),
        "{bind}"
    );
    let copy = line(&["--workspace", "copy", "--copy-back"]);
    assert!(copy.contains("copied in: --workspace copy"), "{copy}");
    assert!(copy.contains("2 patterns in .moatignore"), "{copy}");
    assert!(copy.contains("copied back"), "{copy}");
    let none = line(&["--workspace", "none"]);
    assert!(
        none.starts_with("workspace: none (--workspace none"),
        "{none}"
    );
    assert!(env.run_dirs().is_empty());
}

#[test]
fn help_documents_the_flags() {
    let env = moat();
    let out = env.run(&["run", "--help"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for what in ["--workspace MODE", "--copy-back", ".moatignore", "never"] {
        assert!(text.contains(what), "{what} missing from:\n{text}");
    }
}
