//! `moat claude|codex|gemini [PATH] [-p PROMPT] [-- ARGS]`: agent presets. Each agent is a
//! declaration; one runner turns a declaration and the command line into a `moat run`.
//! Adding an agent is adding a declaration.

use std::ffi::OsString;
use std::path::PathBuf;

use super::run::{RunFlags, split_command};
use super::{at_most_one, parse_args, say, string_value};
use crate::error::{Error, Result};
use crate::{run, term};

/// What moat needs to know to run one agent CLI.
pub struct Agent {
    /// The subcommand and the agent's name, e.g. `claude`.
    pub name: &'static str,
    /// The image used unless `--image` (or `$MOAT_IMAGE`) says otherwise.
    pub image: &'static str,
    /// The agent's executable.
    pub program: &'static str,
    /// Arguments that run a prompt non-interactively; `{prompt}` is replaced by it.
    pub prompt_args: &'static [&'static str],
    /// A flag that lets the agent act without asking, added unless `--noyolo`.
    pub yolo_flag: Option<&'static str>,
    /// Whether the agent can pick up its last session (`--continue`, `--resume ID`).
    pub resumable: bool,
    /// Host variables passed through when set (their values never reach disk or screen).
    pub env: &'static [&'static str],
    /// The agent's config directory under the host's home, mounted at the same place
    /// under the container's home when it exists.
    pub config_dir: Option<&'static str>,
    /// Hosts the agent talks to (printed by `--dry-run`, for network policies).
    pub hosts: &'static [&'static str],
}

pub const AGENTS: &[Agent] = &[
    Agent {
        name: "claude",
        image: "moat/claude:latest",
        program: "claude",
        prompt_args: &["-p", "{prompt}"],
        yolo_flag: Some("--dangerously-skip-permissions"),
        resumable: true,
        env: &["ANTHROPIC_API_KEY"],
        config_dir: Some(".claude"),
        hosts: &["api.anthropic.com"],
    },
    Agent {
        name: "codex",
        image: "moat/codex:latest",
        program: "codex",
        prompt_args: &["exec", "{prompt}"],
        yolo_flag: None,
        resumable: false,
        env: &["OPENAI_API_KEY"],
        config_dir: Some(".codex"),
        hosts: &["api.openai.com"],
    },
    Agent {
        name: "gemini",
        image: "moat/gemini:latest",
        program: "gemini",
        prompt_args: &["-p", "{prompt}"],
        yolo_flag: None,
        resumable: false,
        env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        config_dir: Some(".gemini"),
        hosts: &["generativelanguage.googleapis.com"],
    },
];

pub fn find(name: &str) -> Option<&'static Agent> {
    AGENTS.iter().find(|a| a.name == name)
}

fn help(agent: &Agent) -> String {
    let mut text = format!(
        "Run the {name} agent in a fresh container around a workspace

Usage: moat {name} [PATH] [-p PROMPT] [FLAGS] [-- ARGS...]

Without -p the session is interactive; with -p it runs the prompt and exits.
ARGS go to `{program}` unchanged. Image: {image} unless --image.
Passed through when set on the host: {env}.

Agent flags:
  -p, --prompt PROMPT      run PROMPT non-interactively
",
        name = agent.name,
        program = agent.program,
        image = agent.image,
        env = agent.env.join(", "),
    );
    if agent.yolo_flag.is_some() {
        text.push_str("      --noyolo             let the agent ask before it acts\n");
    }
    if agent.resumable {
        text.push_str("      --continue           continue the last session\n");
        text.push_str("      --resume ID          resume session ID\n");
    }
    text.push_str(
        "
Run flags (as for moat run): -n/--name, --image, -e/--env, -m/--mount,
-w/--workdir, --workspace, --copy-back, --runtime, --network, --keep, --no-init,
--stop-timeout, --timeout, --dry-run, -i/--interactive. -h/--help shows this help.",
    );
    text
}

/// What the user asked of the agent itself.
#[derive(Default)]
struct AgentArgs {
    prompt: Option<String>,
    noyolo: bool,
    resume: Option<Resume>,
    extra: Vec<String>,
}

enum Resume {
    Continue,
    Session(String),
}

/// The agent's command line from its declaration and the user's arguments.
fn argv(agent: &Agent, args: &AgentArgs) -> Vec<String> {
    let mut argv = vec![agent.program.to_string()];
    if let (Some(flag), false) = (agent.yolo_flag, args.noyolo) {
        argv.push(flag.to_string());
    }
    match &args.resume {
        Some(Resume::Continue) => argv.push("--continue".into()),
        Some(Resume::Session(id)) => argv.extend(["--resume".to_string(), id.clone()]),
        None => {}
    }
    if let Some(prompt) = &args.prompt {
        argv.extend(
            agent
                .prompt_args
                .iter()
                .map(|a| a.replace("{prompt}", prompt)),
        );
    }
    argv.extend(args.extra.iter().cloned());
    argv
}

/// Entry point for `moat claude`, `moat codex` and `moat gemini`.
pub fn main(agent: &'static Agent, args: Vec<OsString>) -> Result<i32> {
    let (args, extra) = split_command(args)?;
    let mut flags = RunFlags::default();
    let mut ours = AgentArgs {
        extra,
        ..AgentArgs::default()
    };
    let usage_of = agent.name;
    let help_text = help(agent);
    let Some(values) = parse_args(usage_of, &help_text, args, |key, parser| {
        if flags.take(usage_of, key, parser)? {
            return Ok(true);
        }
        match key {
            "-p" | "--prompt" => ours.prompt = Some(string_value(usage_of, parser)?),
            "--noyolo" if agent.yolo_flag.is_some() => ours.noyolo = true,
            "--continue" if agent.resumable => {
                if matches!(ours.resume, Some(Resume::Session(_))) {
                    return Err(conflict(usage_of));
                }
                ours.resume = Some(Resume::Continue);
            }
            "--resume" if agent.resumable => {
                if matches!(ours.resume, Some(Resume::Continue)) {
                    return Err(conflict(usage_of));
                }
                ours.resume = Some(Resume::Session(string_value(usage_of, parser)?));
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?
    else {
        return Ok(0);
    };
    let workspace = at_most_one(
        usage_of,
        values,
        &format!(" ({usage_of} takes one PATH; pass the agent's own arguments after --)"),
    )?
    .map(PathBuf::from);
    if ours.prompt.as_deref() == Some("") {
        return Err(Error::usage(usage_of, "-p needs a prompt"));
    }

    // A prompt runs to completion on its own; otherwise the agent is a conversation.
    flags.interactive = flags.interactive || ours.prompt.is_none();
    if flags.image.is_none() && std::env::var_os("MOAT_IMAGE").is_none_or(|v| v.is_empty()) {
        flags.image = Some(agent.image.to_string());
    }
    for name in agent.env {
        if std::env::var_os(name).is_some() && !flags.env.iter().any(|e| env_name(e) == *name) {
            flags.env.push((*name).to_string());
        }
    }
    if let (Some(dir), Some(home)) = (agent.config_dir, std::env::var_os("HOME")) {
        let host = PathBuf::from(home).join(dir);
        if host.is_dir() {
            flags
                .mounts
                .push(format!("{}:/root/{dir}", host.to_string_lossy()));
        }
    }
    let dry_run = flags.dry_run;
    let mut spec = flags.into_spec(usage_of, workspace, argv(agent, &ours))?;
    spec.agent = Some(agent.name);
    if dry_run {
        super::run::dry_run(&spec)?;
        if !agent.hosts.is_empty() {
            say(format_args!("hosts: {}", agent.hosts.join(", ")))?;
        }
        return Ok(0);
    }
    let image = spec.image.clone();
    let code = run::execute(spec)?;
    if code == 127 {
        term::warn(format_args!(
            "hint: if the image {image} has no `{}` command, choose one that does with --image",
            agent.program
        ));
    }
    Ok(code)
}

fn conflict(command: &'static str) -> Error {
    Error::usage(command, "--continue and --resume cannot be used together")
}

/// The variable name of a `-e` argument (`KEY=VALUE` or `KEY`).
fn env_name(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_argv() {
        let claude = find("claude").unwrap();
        let mut a = AgentArgs::default();
        assert_eq!(
            argv(claude, &a),
            ["claude", "--dangerously-skip-permissions"]
        );
        a.noyolo = true;
        a.prompt = Some("fix it".into());
        a.resume = Some(Resume::Session("abc".into()));
        a.extra = vec!["--model".into(), "x".into()];
        assert_eq!(
            argv(claude, &a),
            ["claude", "--resume", "abc", "-p", "fix it", "--model", "x"]
        );
    }

    #[test]
    fn codex_and_gemini_prompts() {
        let a = AgentArgs {
            prompt: Some("hi".into()),
            ..AgentArgs::default()
        };
        assert_eq!(argv(find("codex").unwrap(), &a), ["codex", "exec", "hi"]);
        assert_eq!(argv(find("gemini").unwrap(), &a), ["gemini", "-p", "hi"]);
        assert_eq!(
            argv(find("gemini").unwrap(), &AgentArgs::default()),
            ["gemini"]
        );
    }
}
