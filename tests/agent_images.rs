//! Agents out of the box: moat builds each agent's image through the engine from its
//! declaration (real agent CLIs from the npm registry onto `scripts/setup`'s stand-in for
//! the Node base image), reuses it, runs it as the workspace's owner, keeps API keys out
//! of the image and the record, and fails a broken build with its step and output, tagging
//! nothing and leaving nothing running.
//!
//! The package registries are reachable from containers only with the host's CA bundle
//! trusted: every build here gets it through `MOAT_CA_CERTS`, as a user behind an
//! intercepting proxy would. Runs that start an agent use `--network none`, so nothing a
//! test starts talks to an outside host.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::live::Live;
use common::{
    Env, Runtime, assert_code, docker_request, moat, stderr, stdout, url_encode, wait_for,
};
use serde_json::Value;

/// `scripts/setup`'s stand-in for `node:22-bookworm-slim`.
const AGENT_BASE: &str = "moat-test/agent-base:bookworm";

/// Debian's system bundle: what the containers must trust to reach the registries.
const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A cold build (Debian packages, then the agent's npm package) takes 30-90 s here; a
/// slow mirror may take longer, and nothing else bounds it.
const BUILD: Duration = Duration::from_secs(600);

/// How long moat may take to end once interrupted during a build: it leaves at once;
/// the bound only absorbs a loaded machine.
const INTERRUPTED_EXIT: Duration = Duration::from_secs(10);

/// How long the engine may take to end an abandoned build's step container: it notices
/// the closed connection and kills the step.
const BUILD_CLEANUP: Duration = Duration::from_secs(30);

/// `moat AGENT ARGS...` with the stand-in base, the host's CA bundle, a private HOME and
/// no API keys unless `vars` sets them.
fn agent_cmd(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let home = env.root.join("home-dir");
    std::fs::create_dir_all(&home).expect("create fake HOME");
    let mut cmd = env.cmd();
    cmd.args(args)
        .env("HOME", &home)
        .env("MOAT_AGENT_BASE", AGENT_BASE)
        .env("MOAT_CA_CERTS", HOST_CA);
    for name in common::AGENT_KEYS {
        cmd.env_remove(name);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn agent(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    agent_cmd(env, args, vars).output().expect("run moat")
}

/// The image `moat AGENT` would use (from `--dry-run`, which builds nothing).
fn tag_of(env: &Env, agent_args: &[&str]) -> String {
    let mut args = agent_args.to_vec();
    args.push("--dry-run");
    let out = agent(env, &args, &[]);
    assert_code(&out, 0);
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .expect("an image line")
        .to_string()
}

/// The engine's inspect of image `tag`, or `None` when there is none.
fn inspect_image(tag: &str) -> Option<Value> {
    let (status, body) =
        docker_request("GET", &format!("/images/{}/json", url_encode(tag))).expect("inspect");
    match status {
        200 => Some(serde_json::from_slice(&body).expect("inspect is JSON")),
        404 => None,
        _ => panic!("inspect image {tag}: {status}"),
    }
}

/// Containers (running or not) made from `image` or an image built on it.
fn containers_from(image: &str) -> Vec<Value> {
    let filters = serde_json::json!({ "ancestor": [image] }).to_string();
    let path = format!("/containers/json?all=1&filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path).expect("list containers");
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("list is JSON")
}

/// What `moat AGENT -- --version` gave, and how long it took.
type VersionRun = (Output, Duration);

/// `moat AGENT -- --version` once per agent and test process (the tests share the
/// images, and one build at a time is all two cores take).
fn version_run(agent_name: &'static str) -> &'static VersionRun {
    static RUNS: OnceLock<Mutex<Vec<(&'static str, &'static VersionRun)>>> = OnceLock::new();
    let runs = RUNS.get_or_init(|| Mutex::new(Vec::new()));
    let mut runs = runs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, run)) = runs.iter().find(|(name, _)| *name == agent_name) {
        return run;
    }
    let env = moat();
    let started = Instant::now();
    let out = agent(
        &env,
        &[agent_name, "--network", "none", "--", "--version"],
        &[],
    );
    let run: &'static VersionRun = Box::leak(Box::new((out, started.elapsed())));
    runs.push((agent_name, run));
    run
}

/// The version each agent's declaration pins (`moat AGENT --help` shows it).
fn pinned_version(env: &Env, agent_name: &str) -> String {
    let help = stdout(&agent(env, &[agent_name, "--help"], &[]));
    let at = help
        .split_whitespace()
        .find_map(|w| w.strip_prefix('@').and_then(|w| w.split_once('@')))
        .unwrap_or_else(|| panic!("no PACKAGE@VERSION in {agent_name} --help: {help}"));
    at.1.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[test]
fn each_agent_gets_its_image_built_once_and_prints_its_version() {
    let env = moat();
    for name in ["claude", "codex", "gemini"] {
        let (first, took) = version_run(name);
        assert_code(first, 0);
        let version = pinned_version(&env, name);
        assert!(
            stdout(first).contains(&version),
            "{name} --version printed {:?}, not {version}",
            stdout(first)
        );
        let tag = tag_of(&env, &[name]);
        let image = inspect_image(&tag).unwrap_or_else(|| panic!("{tag} was not tagged"));
        // MOAT_CA_CERTS is trusted in the image, and offered to the agent's tools.
        let image_env = image["Config"]["Env"].to_string();
        for var in [
            "NODE_EXTRA_CA_CERTS=",
            "SSL_CERT_FILE=",
            "REQUESTS_CA_BUNDLE=",
            "GIT_SSL_CAINFO=",
        ] {
            assert!(image_env.contains(var), "{name}: {var} not in {image_env}");
        }
        let labels = &image["Config"]["Labels"];
        assert_eq!(labels["moat.managed"], "true", "{labels}");
        assert_eq!(
            tag.split_once(':').map(|(_, h)| h),
            labels["moat.recipe"].as_str(),
            "{labels}"
        );
        eprintln!("{name}: first --version in {took:?}");

        // The second call finds the image and builds nothing.
        let started = Instant::now();
        let again = agent(&env, &[name, "--network", "none", "--", "--version"], &[]);
        assert_code(&again, 0);
        assert!(
            !stderr(&again).contains("Building image"),
            "{}",
            stderr(&again)
        );
        assert_eq!(inspect_image(&tag).expect("still there")["Id"], image["Id"]);
        eprintln!("{name}: second --version in {:?}", started.elapsed());
    }
}

#[test]
fn claude_without_a_key_ends_with_its_own_code_and_words() {
    let (built, _) = version_run("claude");
    assert_code(built, 0);
    let env = moat();
    let out = agent(&env, &["claude", "--network", "none", "-p", "hi"], &[]);
    let code = out.status.code().expect("an exit code");
    let words = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        ![0, 125, 126, 127].contains(&code),
        "claude without a key exited {code}: {words}"
    );
    assert!(!words.trim().is_empty(), "claude said nothing");
    assert!(!stderr(&out).contains("moat: "), "{}", stderr(&out));
    let record = env.record(&env.only_run_id());
    assert_eq!(record["exit_code"], code, "{record:#}");
}

#[test]
fn the_agent_runs_as_the_workspaces_owner_with_its_state_in_the_store() {
    let (built, _) = version_run("claude");
    assert_code(built, 0);
    let env = moat();
    // A workspace of a user that is not root.
    let (uid, gid) = (4321, 4321);
    std::os::unix::fs::chown(&env.ws, Some(uid), Some(gid)).expect("chown workspace");
    let out = agent(
        &env,
        &["claude", "--keep", "--network", "none", "--", "--version"],
        &[],
    );
    assert_code(&out, 0);
    let id = env.only_run_id();
    let container = env.record(&id)["container_id"]
        .as_str()
        .expect("container id")
        .to_string();
    let inspect = common::inspect_container(&container).expect("kept container");
    assert_eq!(inspect["Config"]["User"], format!("{uid}:{gid}"));
    let home = inspect["Config"]["Env"]
        .as_array()
        .expect("env")
        .iter()
        .any(|v| v == "HOME=/home/agent");
    assert!(home, "{:#}", inspect["Config"]["Env"]);
    common::remove_container(&container);

    // The state directory is the owner's, private, and kept for the next run.
    let state = std::fs::read_dir(env.home.join("agents/claude"))
        .expect("agents/claude")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .expect("a state directory");
    let meta = std::fs::metadata(&state).expect("stat state");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (uid, gid, 0o700)
    );

    // What the owner's command writes in /workspace is the owner's on the host.
    let out = env.run(&[
        "run",
        "-u",
        &format!("{uid}:{gid}"),
        "--image",
        common::IMAGE,
        "--",
        "sh",
        "-c",
        "id -u; touch made-here",
    ]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), format!("{uid}\n"));
    let made = std::fs::metadata(env.ws.join("made-here")).expect("file from the container");
    assert_eq!((made.uid(), made.gid()), (uid, gid));
}

#[test]
fn no_api_key_value_reaches_the_image_the_record_or_the_log() {
    let (built, _) = version_run("claude");
    assert_code(built, 0);
    let env = moat();
    let secret = "sk-ant-moat-test-7f3c9a1e55d0";
    // With a key and no network, claude retries for minutes: the run is stopped after a
    // while, which is all this test needs of it.
    let out = agent(
        &env,
        &["claude", "--network", "none", "--timeout", "5s", "-p", "hi"],
        &[("ANTHROPIC_API_KEY", secret)],
    );
    assert_code(&out, 124);
    let id = env.only_run_id();
    let record = std::fs::read_to_string(env.runs_dir().join(&id).join("metadata.json"))
        .expect("metadata.json");
    assert!(!record.contains(secret), "the key is in metadata.json");
    assert!(
        record.contains("ANTHROPIC_API_KEY"),
        "the key's name is recorded"
    );
    let logs =
        std::fs::read_to_string(env.runs_dir().join(&id).join("logs.jsonl")).unwrap_or_default();
    assert!(!logs.contains(secret), "the key is in logs.jsonl");

    let tag = tag_of(&env, &["claude"]);
    let image = inspect_image(&tag).expect("the image");
    assert!(
        !image.to_string().contains(secret),
        "the key is in the image's config"
    );
    let (status, history) =
        docker_request("GET", &format!("/images/{}/history", url_encode(&tag))).expect("history");
    assert_eq!(status, 200);
    assert!(
        !String::from_utf8_lossy(&history).contains(secret),
        "the key is in the image's history"
    );
}

/// A base built on busybox whose `apt-get` and `update-ca-certificates` are `script`
/// (so the packages step "succeeds" or hangs as the test needs) and that has no npm.
fn fake_base(name: &str, script: &str) -> String {
    let tag = format!("moat-test/agent-fake:{name}");
    let container = format!("moat-test-fake-base-{name}-{}", std::process::id());
    let setup = format!(
        "printf '#!/bin/sh\\n{script}\\n' > /bin/apt-get && chmod +x /bin/apt-get \
         && cp /bin/apt-get /bin/update-ca-certificates"
    );
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .output()
            .expect("run docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&[
        "run",
        "--name",
        &container,
        common::IMAGE,
        "sh",
        "-c",
        &setup,
    ]);
    docker(&["commit", &container, &tag]);
    docker(&["rm", "-f", &container]);
    tag
}

#[test]
fn a_base_without_npm_fails_at_its_step_with_its_output_and_tags_nothing() {
    let env = moat();
    let base = fake_base("npmless", "exit 0");
    let args = ["codex", "--network", "none", "--", "--version"];
    let mut cmd = agent_cmd(&env, &args, &[]);
    cmd.env("MOAT_AGENT_BASE", &base)
        .env_remove("MOAT_CA_CERTS");
    let out = cmd.output().expect("run moat");
    assert_code(&out, 125);
    let err = stderr(&out);
    assert!(err.contains("npm: not found"), "the step's output: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("moat: building image moat/codex:")
            && last.contains("failed at step ")
            && last.contains("(RUN npm install"),
        "{last}"
    );
    let mut dry = agent_cmd(&env, &["codex", "--dry-run"], &[]);
    dry.env("MOAT_AGENT_BASE", &base)
        .env_remove("MOAT_CA_CERTS");
    let tag = stdout(&dry.output().expect("dry run"))
        .lines()
        .find_map(|l| l.strip_prefix("image: ").map(str::to_string))
        .expect("image line");
    assert!(inspect_image(&tag).is_none(), "{tag} was tagged");
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed", "{record:#}");
}

#[test]
fn an_unknown_package_version_fails_with_npms_words_and_tags_nothing() {
    let env = moat();
    let args = ["gemini", "--agent-version", "0.0.0-moat-no-such-version"];
    let tag = tag_of(&env, &args);
    let mut with_run = args.to_vec();
    with_run.extend(["--network", "none", "--", "--version"]);
    let out = agent(&env, &with_run, &[]);
    assert_code(&out, 125);
    let err = stderr(&out);
    assert!(
        err.contains("0.0.0-moat-no-such-version") && err.contains("npm"),
        "npm's own words: {err}"
    );
    assert!(err.contains("failed at step "), "{err}");
    assert!(inspect_image(&tag).is_none(), "{tag} was tagged");
}

#[test]
fn an_interrupted_build_ends_promptly_and_leaves_nothing_running() {
    let base = fake_base("slow", "exec sleep 300");
    for how in ["SIGINT", "moat stop"] {
        let env = moat();
        let mut cmd = agent_cmd(&env, &["claude", "-n", "slowbuild", "-p", "x"], &[]);
        cmd.env("MOAT_AGENT_BASE", &base)
            .env_remove("MOAT_CA_CERTS");
        let mut live = Live::spawn(cmd);
        live.expect_stderr("RUN apt-get update");
        // The step's container runs the slow `apt-get`.
        wait_for("the build step's container", BUILD, || {
            containers_from(&base)
                .iter()
                .any(|c| c["State"] == "running")
                .then_some(())
        });
        let asked = Instant::now();
        match how {
            "SIGINT" => live.signal(libc::SIGINT),
            _ => assert_code(&env.run(&["stop", "slowbuild"]), 0),
        }
        let (status, _, _) = live.wait(INTERRUPTED_EXIT);
        assert!(
            asked.elapsed() < INTERRUPTED_EXIT,
            "{how}: {:?}",
            asked.elapsed()
        );
        assert_ne!(status.code(), Some(0), "{how}");
        wait_for("the build step's container to go", BUILD_CLEANUP, || {
            containers_from(&base).is_empty().then_some(())
        });
        let record = env.record(&env.only_run_id());
        assert!(record["container_id"].is_null(), "{how}: {record:#}");
        assert_ne!(record["state"], "running", "{how}: {record:#}");
    }
}

#[test]
fn apple_builds_the_agent_image_through_its_cli() {
    let (built, _) = version_run("codex");
    assert_code(built, 0);
    let env = common::moat_on(Runtime::Apple);
    // Apple's runtime has no strict network: an agent there runs open when told to.
    let strict = agent(&env, &["codex", "--dry-run"], &[]);
    assert_code(&strict, 2);
    assert!(
        stderr(&strict).contains("not available on Apple's runtime"),
        "{}",
        stderr(&strict)
    );
    let tag = tag_of(&env, &["codex", "--network", "none"]);
    let out = agent(
        &env,
        &["codex", "--rebuild", "--network", "none", "--", "--version"],
        &[],
    );
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains(&pinned_version(&env, "codex")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(&format!("Built image {tag}")),
        "{}",
        stderr(&out)
    );
    let builds: Vec<Vec<String>> = env
        .standin_calls()
        .into_iter()
        .filter(|argv| argv.first().map(String::as_str) == Some("build"))
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert!(
        builds[0].windows(2).any(|w| w[0] == "--tag" && w[1] == tag),
        "{builds:?}"
    );
    assert!(inspect_image(&tag).is_some(), "{tag}");
}
