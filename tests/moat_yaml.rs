//! `moat.yaml`: a project's settings for `moat run`. Every key reaches the run (what the
//! command sees, what the record says), flags win over the file and lists add to it,
//! Go moat's files are read where they mean the same and refused by name where they do
//! not, and every mistake is one line at FILE:LINE:COLUMN with exit 2 and nothing created.

mod common;

use std::path::Path;

use common::{Env, IMAGE, assert_code, moat, stdout};

/// The Go moat style samples and moat's complete example.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/moat-yaml");

/// Reads a cgroup value under v2 (`V2`) or v1 (`V1`), whichever the machine has.
fn cgroup(v2: &str, v1: &str) -> String {
    format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}")
}

fn write(env: &Env, text: &str) {
    std::fs::write(env.ws.join("moat.yaml"), text).expect("write moat.yaml");
}

/// The one error line of a refused file (without the pointer to `--help`), after
/// checking that it is a usage error that created nothing.
#[track_caller]
fn refused(env: &Env, out: &std::process::Output) -> String {
    let line = common::usage_error_line(out);
    assert!(env.records().is_empty(), "a run was recorded");
    line
}

/// The `--dry-run` line starting with `key: `.
#[track_caller]
fn line<'a>(dry_run: &'a str, key: &str) -> &'a str {
    dry_run
        .lines()
        .find(|l| l.starts_with(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} line in {dry_run}"))
}

#[test]
fn every_key_reaches_the_run() {
    let env = moat();
    std::fs::create_dir(env.ws.join("data")).unwrap();
    std::fs::write(env.ws.join("data/f"), "mounted\n").unwrap();
    std::fs::write(env.ws.join(".env.ci"), "FROM_ENV_FILE=yes\n# a comment\n").unwrap();
    write(
        &env,
        &format!(
            "name: from-the-file
image: {IMAGE}
command: [\"sh\", \"-c\", \"echo $GREETING $FROM_ENV_FILE $PASSED; id -u; pwd; cat /data/f\"]
interactive: false
env:
  GREETING: hello
  PASSED:
env_file: .env.ci
mounts:
  - ./data:/data:ro
workdir: /tmp
user: \"4321\"
ports:
  - \"127.0.0.1::8080\"
network:
  policy: open
resources:
  memory: 64m
  cpus: 0.5
  pids: 64
timeout: 5m
stop_timeout: 3
runtime: docker
keep: false
"
        ),
    );
    let out = env
        .cmd()
        .env("PASSED", "through")
        .arg("run")
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "hello yes through\n4321\n/tmp\nmounted\n");
    let record = env
        .record_named("from-the-file")
        .expect("the run has the file's name");
    assert_eq!(record["image"], IMAGE);
    assert_eq!(record["exit_code"], 0);

    // The limits and the timeout, as the engine and the run hold them.
    let dry = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_code(&dry, 0);
    let dry = stdout(&dry);
    assert_eq!(line(&dry, "memory"), "memory: 67108864 (moat.yaml:18)");
    assert_eq!(
        line(&dry, "nano_cpus"),
        "nano_cpus: 500000000 (moat.yaml:19)"
    );
    assert_eq!(line(&dry, "pids_limit"), "pids_limit: 64 (moat.yaml:20)");
    assert_eq!(line(&dry, "timeout"), "timeout: 5m (moat.yaml:21)");
    assert_eq!(
        line(&dry, "stop_timeout"),
        "stop_timeout: 3s (moat.yaml:22)"
    );
    assert_eq!(line(&dry, "runtime"), "runtime: docker (moat.yaml:23)");
    assert_eq!(line(&dry, "keep"), "keep: false (moat.yaml:24)");
    assert_eq!(
        line(&dry, "interactive"),
        "interactive: false (moat.yaml:4)"
    );
    assert_eq!(line(&dry, "workdir"), "workdir: /tmp (moat.yaml:11)");
    assert_eq!(line(&dry, "user"), "user: 4321 (moat.yaml:12)");
    // Published as -p would (docker_flags.rs reaches a published port; here, that the
    // file's entry becomes one).
    assert_eq!(
        line(&dry, "publish"),
        "publish: 127.0.0.1:random -> 8080/tcp (moat.yaml:14)"
    );
    assert!(
        line(&dry, "mount").ends_with("/data -> /data (ro) (moat.yaml:10)"),
        "{dry}"
    );
}

#[test]
fn file_limits_and_timeout_hold_in_the_container() {
    let env = moat();
    write(
        &env,
        &format!(
            "resources:\n  memory: 64m\n  pids: 64\ntimeout: 2s\n\
             command: [\"sh\", \"-c\", \"{}; {}; sleep 30\"]\n",
            cgroup("memory.max", "memory/memory.limit_in_bytes"),
            cgroup("pids.max", "pids/pids.max")
        ),
    );
    let out = env.cmd().arg("run").output().unwrap();
    // The file's timeout ended it: 124, and the limits were the file's.
    assert_code(&out, 124);
    assert_eq!(stdout(&out), "67108864\n64\n");
}

#[test]
fn keep_from_the_file_keeps_the_container() {
    let env = moat();
    write(&env, "name: kept\nkeep: true\ncommand: [\"true\"]\n");
    let out = env.cmd().arg("run").output().unwrap();
    assert_code(&out, 0);
    let id = env.record_named("kept").expect("recorded")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        common::containers_for(&id).len(),
        1,
        "the container is kept"
    );
    let out = env.cmd().args(["destroy", &id]).output().unwrap();
    assert_code(&out, 0);
}

#[test]
fn flags_win_and_lists_add() {
    let env = moat();
    std::fs::create_dir(env.ws.join("a")).unwrap();
    std::fs::write(env.ws.join("a/f"), "from a\n").unwrap();
    std::fs::create_dir(env.ws.join("b")).unwrap();
    std::fs::write(env.ws.join("b/f"), "from b\n").unwrap();
    write(
        &env,
        "name: file-name
image: surely-not-an-image-here:1
command: [\"echo\", \"the file's command\"]
env:
  ONE: file
  TWO: file
mounts:
  - ./a:/a
resources:
  memory: 64m
",
    );
    let out = env
        .cmd()
        .args(["run", "--image", IMAGE, "-n", "flag-name", "-e", "TWO=flag"])
        .args(["-m", "b:/b", "--memory", "96m", "--"])
        .args(["sh", "-c"])
        .arg(format!(
            "echo $ONE $TWO; cat /a/f /b/f; {}",
            cgroup("memory.max", "memory/memory.limit_in_bytes")
        ))
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "file flag\nfrom a\nfrom b\n100663296\n");
    assert!(env.record_named("flag-name").is_some());

    let dry = env
        .cmd()
        .args(["run", "--dry-run", "--image", IMAGE, "-e", "TWO=flag"])
        .output()
        .unwrap();
    assert_code(&dry, 0);
    let dry = stdout(&dry);
    assert_eq!(
        line(&dry, "image"),
        format!("image: {IMAGE} (--image, over moat.yaml:2)")
    );
    assert_eq!(
        line(&dry, "argv"),
        "argv: [\"echo\",\"the file's command\"] (moat.yaml:3)"
    );
    assert_eq!(
        line(&dry, "env"),
        "env: [\"ONE\",\"TWO\"] (moat.yaml:5, moat.yaml:6, -e)"
    );
    assert_eq!(line(&dry, "name"), "name: file-name (moat.yaml:1)");
}

#[test]
fn the_file_beats_the_environment_defaults() {
    let env = moat();
    // MOAT_IMAGE is the test image; the file names another, which wins (and is not
    // there, so the dry run is all that is asked of it).
    write(&env, "image: example/from-the-file:1\n");
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_code(&out, 0);
    assert_eq!(
        line(&stdout(&out), "image"),
        "image: example/from-the-file:1 (moat.yaml:1)"
    );
}

#[test]
fn dash_f_reads_another_file_and_a_missing_one_is_an_error() {
    let env = moat();
    let missing = env.root.join("nope.yaml");
    let out = env
        .cmd()
        .args(["run", "-f"])
        .arg(&missing)
        .output()
        .unwrap();
    let line = refused(&env, &out);
    assert_eq!(
        line,
        format!(
            "moat: {}: cannot read it: No such file or directory",
            missing.display()
        )
    );

    write(&env, "image: example/not-this-one:1\n");
    let other = env.root.join("ci.yaml");
    std::fs::write(
        &other,
        format!("image: {IMAGE}\ncommand: [\"echo\", \"ci\"]\n"),
    )
    .unwrap();
    let out = env.cmd().args(["run", "-f"]).arg(&other).output().unwrap();
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "ci\n");
}

#[test]
fn a_workspace_path_reads_its_own_file() {
    let env = moat();
    let sub = env.ws.join("sub");
    std::fs::create_dir_all(sub.join("data")).unwrap();
    std::fs::write(sub.join("data/f"), "sub data\n").unwrap();
    std::fs::write(
        sub.join("moat.yaml"),
        "mounts: [\"./data:/data\"]\ncommand: [\"cat\", \"/data/f\"]\n",
    )
    .unwrap();
    let out = env.cmd().args(["run", "sub"]).output().unwrap();
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "sub data\n");
}

#[test]
fn typos_name_the_nearest_key_at_their_place() {
    let env = moat();
    for (text, want) in [
        (
            "image: x\nimgae: y\n",
            "moat: moat.yaml:2:1: unknown key \"imgae\" (did you mean \"image\"?)",
        ),
        (
            "resources:\n  memroy: 1g\n",
            "moat: moat.yaml:2:3: unknown key \"resources.memroy\" (did you mean \"resources.memory\"?)",
        ),
        (
            "cpus: 2\n",
            "moat: moat.yaml:1:1: unknown key \"cpus\" (did you mean \"resources.cpus\"?)",
        ),
        (
            "keep: maybe\n",
            "moat: moat.yaml:1:7: \"keep\" must be true or false",
        ),
    ] {
        write(&env, text);
        let out = env.cmd().args(["run", "--", "true"]).output().unwrap();
        assert_eq!(refused(&env, &out), want, "{text}");
    }
}

#[test]
fn bad_values_are_told_at_their_place_before_anything_exists() {
    let env = moat();
    for (text, want) in [
        ("timeout: 5x\n", "moat.yaml:1:10: invalid timeout \"5x\""),
        (
            "stop_timeout: soon\n",
            "moat.yaml:1:15: invalid stop_timeout \"soon\"",
        ),
        ("workdir: rel\n", "moat.yaml:1:10: invalid workdir \"rel\""),
        (
            "mounts: [\"/nonexistent/x:/x\"]\n",
            "moat.yaml:1:10: invalid -m",
        ),
        ("ports: [\"99999\"]\n", "moat.yaml:1:9: invalid"),
        (
            "resources:\n  memory: lots\n",
            "moat.yaml:2:11: invalid resources.memory",
        ),
        ("runtime: lxc\n", "moat.yaml:1:10: unknown runtime \"lxc\""),
        ("name: \"bad name\"\n", "moat.yaml:1:7: "),
        ("env_file: missing.env\n", "moat.yaml:1:11: "),
        (
            "agent: copilot\n",
            "moat.yaml:1:8: unknown agent \"copilot\"",
        ),
    ] {
        write(&env, text);
        let out = env.cmd().args(["run", "--", "true"]).output().unwrap();
        let line = refused(&env, &out);
        assert!(line.starts_with(&format!("moat: {want}")), "{text}: {line}");
    }
    assert!(common::containers_of_home(&env).is_empty());
}

#[test]
fn the_files_network_policy_and_allowlist_reach_the_run() {
    let env = moat();
    write(
        &env,
        &format!(
            "image: {IMAGE}\nnetwork:\n  policy: strict\n  allow: [api.example.test, \"*.example.org:8443\"]\n"
        ),
    );
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_code(&out, 0);
    let dry = stdout(&out);
    assert_eq!(
        line(&dry, "network_policy"),
        "network_policy: strict (moat.yaml:3)"
    );
    assert_eq!(
        line(&dry, "allow_hosts"),
        "allow_hosts: [\"api.example.test\",\"*.example.org:8443\"] (moat.yaml:4)"
    );
    // --allow-host adds to the file's list; --network-policy replaces the file's policy,
    // list and all.
    let out = env
        .cmd()
        .args(["run", "--dry-run", "--allow-host", "x.test"])
        .output()
        .unwrap();
    assert_eq!(
        line(&stdout(&out), "allow_hosts"),
        "allow_hosts: [\"api.example.test\",\"*.example.org:8443\",\"x.test\"] (moat.yaml:4, --allow-host)"
    );
    let out = env
        .cmd()
        .args(["run", "--dry-run", "--network-policy", "open"])
        .output()
        .unwrap();
    let dry = stdout(&out);
    assert_eq!(
        line(&dry, "network_policy"),
        "network_policy: open (--network-policy, over moat.yaml:3)"
    );
    assert!(!dry.contains("allow_hosts"), "{dry}");

    // The run itself is strict: its container gets the proxy, its record says so.
    let out = env
        .cmd()
        .args(["run", "--", "sh", "-c", "echo proxy=${HTTP_PROXY%%:*}"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "proxy=http\n");
    let record = &env.records()[0];
    assert_eq!(record["network_policy"], "strict", "{record:#}");
    assert_eq!(
        record["allowed_hosts"],
        serde_json::json!(["api.example.test", "*.example.org:8443"])
    );

    // A list alone means strict; bad values are refused at their place.
    let env = moat();
    write(&env, "network:\n  allow:\n    - x.test\n");
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_eq!(
        line(&stdout(&out), "network_policy"),
        "network_policy: strict"
    );
    for (text, want) in [
        (
            "network:\n  policy: sometimes\n",
            "moat: moat.yaml:2:11: invalid network.policy \"sometimes\": use strict or open",
        ),
        (
            "network:\n  allow:\n    - \"a b\"\n",
            "moat: moat.yaml:3:7: invalid host \"a b\"",
        ),
    ] {
        write(&env, text);
        let out = env.cmd().args(["run", "--", "true"]).output().unwrap();
        let refused_line = refused(&env, &out);
        assert!(refused_line.starts_with(want), "{text}: {refused_line}");
    }
}

#[test]
fn go_moat_files_are_read_where_they_mean_the_same() {
    let env = moat();
    let fixture = |name: &str| std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap();

    // Named ports and a permissive network: each port published, the network open.
    write(&env, &fixture("go-endpoints.yaml"));
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_code(&out, 0);
    let dry = stdout(&out);
    assert!(
        dry.contains("publish: *:random -> 3000/tcp (moat.yaml:6)\n"),
        "{dry}"
    );
    assert!(
        dry.contains("publish: *:random -> 8081/tcp (moat.yaml:7)\n"),
        "{dry}"
    );
    assert_eq!(
        line(&dry, "argv"),
        "argv: [\"python3\",\"-m\",\"http.server\",\"3000\"] (moat.yaml:12)"
    );

    // Its keys for what moat does not do are refused by name.
    write(&env, &fixture("go-unsupported.yaml"));
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_eq!(
        refused(&env, &out),
        "moat: moat.yaml:5:1: \"dependencies\" is a Go moat key that moat does not support"
    );

    // An agent file: the agent, its mounts in both of Go moat's forms, its memory in
    // megabytes, its strict network with its rules' hosts after the agent's own.
    std::fs::create_dir_all(env.ws.join("cache")).unwrap();
    std::fs::create_dir_all(env.ws.join("data")).unwrap();
    write(&env, &fixture("go-agent.yaml"));
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_code(&out, 0);
    let dry = stdout(&out);
    assert_eq!(
        line(&dry, "network_policy"),
        "network_policy: strict (moat.yaml:17)"
    );
    assert!(
        line(&dry, "allow_hosts").starts_with(
            "allow_hosts: [\"api.anthropic.com\",\"api.example.com\",\"*.example.org\"]"
        ),
        "{dry}"
    );
    assert!(dry.contains("agent: claude (moat.yaml:4)\n"), "{dry}");
    assert!(dry.contains("memory: 4294967296 (moat.yaml"), "{dry}");
    assert!(dry.contains("nano_cpus: 2000000000 (moat.yaml"), "{dry}");
    assert!(
        dry.contains("/cache -> /home/dev/.cache (ro) (moat.yaml:"),
        "{dry}"
    );
    assert!(dry.contains("/data -> /data (ro) (moat.yaml:"), "{dry}");
    assert!(
        dry.contains("argv: [\"claude\",\"--help\"] (moat.yaml:"),
        "{dry}"
    );
    assert!(dry.contains("env: [\"NODE_ENV\",\"LOG_LEVEL\""), "{dry}");
}

#[test]
fn the_complete_example_is_read_whole() {
    let env = moat();
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("complete.yaml")).unwrap();
    write(&env, &text);
    std::fs::create_dir_all(env.ws.join("cache")).unwrap();
    std::fs::write(env.ws.join(".env.ci"), "A=1\n").unwrap();
    let out = env.cmd().args(["run", "--dry-run"]).output().unwrap();
    assert_code(&out, 0);
    let dry = stdout(&out);
    for want in [
        "name: nightly-tests (moat.yaml:2)",
        "image: ubuntu:24.04 (moat.yaml:3)",
        "argv: [\"make\",\"test\"] (moat.yaml:4)",
        "workdir: /workspace/src (moat.yaml:13)",
        "user: 1000:1000 (moat.yaml:14)",
        "publish: *:8080 -> 80/tcp (moat.yaml:16)",
        "publish: *:random -> 9229/tcp (moat.yaml:17)",
        "memory: 2147483648 (moat.yaml:24)",
        "timeout: 30m (moat.yaml:27)",
        "network_policy: strict (moat.yaml:19)",
        "allow_hosts: [\"api.anthropic.com\",\"api.example.com\",\"example.org:8443\"] (moat.yaml:21, moat.yaml:22)",
        "agent: claude (moat.yaml:30)",
        "keep: true (moat.yaml:31)",
    ] {
        assert!(dry.lines().any(|l| l == want), "no {want:?} in\n{dry}");
    }
}

#[test]
fn the_readmes_example_is_read_whole() {
    let env = moat();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = &readme[readme
        .find("### `moat.yaml`")
        .expect("the moat.yaml section")..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    write(&env, example);
    std::fs::create_dir_all(env.ws.join("cache")).unwrap();
    std::fs::write(env.ws.join(".env.ci"), "A=1\n").unwrap();
    let out = env
        .cmd()
        .env("NPM_TOKEN", "x")
        .args(["run", "--dry-run"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let dry = stdout(&out);
    assert!(dry.contains("agent: claude (moat.yaml:"), "{dry}");
    assert!(dry.contains("env: [\"A\",\"CI\",\"NPM_TOKEN\""), "{dry}");
}
