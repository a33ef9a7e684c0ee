//! Agent presets (`moat claude|codex|gemini`) against the local image `moat-test/agents`,
//! whose stand-in `claude`, `codex` and `gemini` print their argv and the names of the
//! API-key variables they see, then exit with `$STANDIN_EXIT`.

mod common;

use std::process::Output;

use common::{Env, moat};

const AGENTS_IMAGE: &str = "moat-test/agents:latest";

/// `moat AGENT ARGS...` with a private HOME (so the config-directory mount is this test's
/// own) and the given host variables.
fn agent(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let home = env.root.join("home-dir");
    std::fs::create_dir_all(&home).expect("create fake HOME");
    let mut cmd = env.cmd();
    cmd.args(args).env("HOME", &home);
    // The preset's own image is the default unless a test says --image.
    cmd.env_remove("MOAT_IMAGE");
    for name in common::AGENT_KEYS {
        cmd.env_remove(name);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run moat")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The stand-in's report: (argv after the program, API-key variable names it saw).
fn report(out: &Output) -> (Vec<String>, Vec<String>) {
    let stdout = text(&out.stdout);
    let argv = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("arg[").and_then(|r| r.split_once("]=")))
        .map(|(_, v)| v.to_string())
        .collect();
    let env = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("env="))
        .map(str::to_string)
        .collect();
    (argv, env)
}

#[test]
fn claude_with_a_prompt_runs_non_interactively_with_yolo_and_its_key() {
    let env = moat();
    let out = agent(
        &env,
        &[
            "claude",
            "--image",
            AGENTS_IMAGE,
            "-p",
            "fix the bug",
            "--",
            "--model",
            "x",
        ],
        &[
            ("ANTHROPIC_API_KEY", "sk-secret-123"),
            ("OPENAI_API_KEY", "other"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (argv, keys) = report(&out);
    assert_eq!(
        argv,
        [
            "--dangerously-skip-permissions",
            "-p",
            "fix the bug",
            "--model",
            "x"
        ]
    );
    // Only claude's own key passes through.
    assert_eq!(keys, ["ANTHROPIC_API_KEY"]);
    let id = env.only_run_id();
    assert!(
        text(&out.stderr).contains(&format!("Started agent \"claude\" ({id})")),
        "{}",
        text(&out.stderr)
    );
    let record = env.record(&id);
    assert_eq!(record["interactive"], false);
    // The key by name; moat's own variables with it.
    assert_eq!(
        record["env"],
        serde_json::json!(["ANTHROPIC_API_KEY", "IS_SANDBOX", "HOME"])
    );
    assert_eq!(record["command"][0], "claude");
    // The key's value reaches the container, never the disk or the screen.
    for dir in env.run_dirs() {
        for file in std::fs::read_dir(dir).expect("run dir") {
            let data = std::fs::read(file.expect("entry").path()).expect("read");
            assert!(!text(&data).contains("sk-secret-123"), "key on disk");
        }
    }
    assert!(!text(&out.stderr).contains("sk-secret-123"));
}

#[test]
fn claude_noyolo_resume_and_continue() {
    let env = moat();
    let out = agent(
        &env,
        &[
            "claude",
            "--image",
            AGENTS_IMAGE,
            "--noyolo",
            "--resume",
            "abc",
            "-p",
            "go",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(report(&out).0, ["--resume", "abc", "-p", "go"]);

    let out = agent(
        &env,
        &["claude", "--image", AGENTS_IMAGE, "--continue", "-p", "go"],
        &[],
    );
    assert_eq!(
        report(&out).0,
        ["--dangerously-skip-permissions", "--continue", "-p", "go"]
    );

    // Both at once is a usage error, and nothing is created.
    let before = env.run_dirs().len();
    let out = agent(&env, &["claude", "--continue", "--resume", "x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--continue and --resume"));
    assert_eq!(env.run_dirs().len(), before);
}

#[test]
fn codex_and_gemini_build_their_prompt_command_lines() {
    let env = moat();
    /// An agent, its prompt and API-key variables; the argv and keys it must see.
    struct Case {
        name: &'static str,
        prompt: &'static str,
        vars: &'static [(&'static str, &'static str)],
        argv: &'static [&'static str],
        keys: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "codex",
            prompt: "write tests",
            vars: &[("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "no")],
            argv: &["exec", "write tests"],
            keys: &["OPENAI_API_KEY"],
        },
        Case {
            name: "gemini",
            prompt: "hi",
            vars: &[("GEMINI_API_KEY", "a"), ("GOOGLE_API_KEY", "b")],
            argv: &["-p", "hi"],
            keys: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        },
    ];
    for c in cases {
        let args = [c.name, "--image", AGENTS_IMAGE, "-p", c.prompt];
        let out = agent(&env, &args, c.vars);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(report(&out), (owned(c.argv), owned(c.keys)), "{}", c.name);
    }
    // Flags another agent has are not this one's.
    for (name, flag) in [("codex", "--continue"), ("gemini", "--noyolo")] {
        let out = agent(&env, &[name, flag], &[]);
        assert_eq!(out.status.code(), Some(2), "{name} {flag}");
    }
}

#[test]
fn without_a_prompt_the_session_is_interactive() {
    // No terminal here, so interactive means stdin attached without a TTY.
    let env = moat();
    let out = agent(&env, &["gemini", "--image", AGENTS_IMAGE], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(report(&out).0.is_empty(), "no prompt arguments");
    assert_eq!(env.record(&env.only_run_id())["interactive"], true);
}

#[test]
fn the_agents_exit_code_is_moats() {
    let env = moat();
    let out = agent(
        &env,
        &[
            "codex",
            "--image",
            AGENTS_IMAGE,
            "-e",
            "STANDIN_EXIT=5",
            "-p",
            "x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(5));
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed");
    assert_eq!(record["exit_code"], 5);
}

#[test]
fn an_image_without_the_agent_exits_127_with_a_hint() {
    let env = moat();
    let out = agent(&env, &["claude", "--image", common::IMAGE, "-p", "x"], &[]);
    assert_eq!(out.status.code(), Some(127));
    let err = text(&out.stderr);
    assert!(err.contains("--image") && err.contains("claude"), "{err}");
}

#[test]
fn extra_positional_arguments_are_usage_errors() {
    let env = moat();
    for name in ["claude", "codex", "gemini"] {
        let out = agent(&env, &[name, ".", "extra"], &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(text(&out.stderr).contains("extra"), "{name}");
    }
    assert!(env.run_dirs().is_empty(), "nothing created");
}

#[test]
fn dry_run_prints_argv_image_env_names_and_mounts_and_creates_nothing() {
    let env = moat();
    let home = env.root.join("home-dir");
    std::fs::create_dir_all(home.join(".claude")).expect("config dir");
    let cases: [(&str, &[&str], &str, &str); 3] = [
        (
            "claude",
            &["claude", "--dry-run", "-p", "do it", "-e", "EXTRA=1"],
            r#"argv: ["claude","--dangerously-skip-permissions","-p","do it"]"#,
            r#"env: ["EXTRA","ANTHROPIC_API_KEY","IS_SANDBOX","HOME"]"#,
        ),
        (
            "codex",
            &["codex", "--dry-run", "-p", "do it"],
            r#"argv: ["codex","exec","do it"]"#,
            r#"env: ["OPENAI_API_KEY","HOME"]"#,
        ),
        (
            "gemini",
            &["gemini", "--dry-run"],
            r#"argv: ["gemini"]"#,
            r#"env: ["GEMINI_API_KEY","HOME"]"#,
        ),
    ];
    for (name, args, argv, env_line) in cases {
        let out = agent(
            &env,
            args,
            &[
                ("ANTHROPIC_API_KEY", "v1"),
                ("OPENAI_API_KEY", "v2"),
                ("GEMINI_API_KEY", "v3"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.lines().any(|l| l == argv), "{name}: {stdout}");
        assert!(stdout.lines().any(|l| l == env_line), "{name}: {stdout}");
        // The image is the agent's own, tagged by its recipe, built when missing.
        let image = stdout
            .lines()
            .find_map(|l| l.strip_prefix("image: "))
            .unwrap_or_else(|| panic!("{name}: no image line: {stdout}"));
        let hash = image
            .strip_prefix(&format!("moat/{name}:"))
            .unwrap_or_else(|| panic!("{name}: {image}"));
        assert!(
            hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}: {image}"
        );
        assert!(
            stdout.lines().any(
                |l| l.starts_with(&format!("build: {image} from node:22-bookworm-slim with @"))
            ),
            "{name}: {stdout}"
        );
        // It runs as the workspace's owner, with its state in the store.
        let owner = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&env.ws).expect("stat workspace");
            format!("user: {}:{}", m.uid(), m.gid())
        };
        assert!(stdout.lines().any(|l| l == owner), "{name}: {stdout}");
        let state = format!("{}/agents/{name}/", env.home.display());
        assert!(
            stdout.lines().any(|l| l.starts_with("mount: ")
                && l.contains(&state)
                && l.ends_with(" -> /home/agent")),
            "{name}: {stdout}"
        );
        assert!(stdout.contains("-> /workspace"), "{name}: {stdout}");
        for secret in ["v1", "v2", "v3", "=1\""] {
            assert!(
                !stdout
                    .lines()
                    .any(|l| l.starts_with("env:") && l.contains(secret)),
                "{name}: value shown: {stdout}"
            );
        }
        let interactive = if args.contains(&"-p") {
            "false"
        } else {
            "true"
        };
        assert!(
            stdout.contains(&format!("interactive: {interactive}")),
            "{name}: {stdout}"
        );
    }
    // The host's config directory is never mounted: the state is seeded from it.
    let out = agent(&env, &["claude", "--dry-run"], &[]);
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(".claude ->"), "{stdout}");
    assert!(
        stdout.contains("(seeded from ~/.claude on first use)"),
        "{stdout}"
    );
    // The pinned version shows, and --agent-version replaces it.
    let out = agent(
        &env,
        &["codex", "--dry-run", "--agent-version", "9.9.9"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(" with @openai/codex@9.9.9 and "),
        "{stdout}"
    );
    let help = text(&agent(&env, &["codex", "--help"], &[]).stdout);
    assert!(help.contains("@openai/codex@0."), "{help}");
    // --image builds nothing.
    let out = agent(&env, &["gemini", "--dry-run", "--image", AGENTS_IMAGE], &[]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("image: {AGENTS_IMAGE}\n")),
        "{stdout}"
    );
    assert!(!stdout.contains("build:"), "{stdout}");
    assert!(env.run_dirs().is_empty(), "dry runs create nothing");
    assert!(
        !env.home.join("agents").exists(),
        "dry runs create no state"
    );
}

#[test]
fn the_agents_state_is_seeded_with_the_hosts_settings_never_its_credentials() {
    let env = moat();
    let host_config = env.root.join("home-dir/.claude");
    std::fs::create_dir_all(&host_config).expect("host config dir");
    std::fs::write(host_config.join("settings.json"), "{\"theme\":\"dark\"}").expect("settings");
    std::fs::write(host_config.join(".credentials.json"), "secret-token").expect("creds");
    let out = agent(&env, &["claude", "--image", AGENTS_IMAGE, "-p", "x"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let states: Vec<_> = std::fs::read_dir(env.home.join("agents/claude"))
        .expect("agents/claude")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(states.len(), 1, "one state per workspace: {states:?}");
    let state = states[0].join(".claude");
    assert_eq!(
        std::fs::read_to_string(state.join("settings.json")).expect("seeded settings"),
        "{\"theme\":\"dark\"}"
    );
    assert!(
        !state.join(".credentials.json").exists(),
        "credentials were copied"
    );
    // Seeded once: what the agent changed there is kept, the host's later edits are not
    // copied over it.
    std::fs::write(state.join("settings.json"), "{}").expect("agent's own edit");
    let out = agent(&env, &["claude", "--image", AGENTS_IMAGE, "-p", "x"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(state.join("settings.json")).expect("kept"),
        "{}"
    );
}
