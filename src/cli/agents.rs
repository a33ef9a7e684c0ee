//! `moat claude|codex|gemini [PATH] [-p PROMPT] [-- ARGS]`: agent presets. Each agent is a
//! declaration; one runner turns a declaration and the command line into a `moat run`.
//! Adding an agent is adding a declaration.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::moat_yaml::{self, Origins};
use super::run::{RunFlags, split_command};
use super::{at_most_one, parse_args, say, string_value};
use crate::config::{Config, Sourced};
use crate::error::{Error, Result};
use crate::runtime::reference::check as check_image;
use crate::store::Store;
use crate::{image, run, runtime, term};

/// The image an agent's image starts from unless `MOAT_AGENT_BASE` names another: Debian
/// with Node and npm.
pub const DEFAULT_BASE: &str = "node:22-bookworm-slim";

/// The Debian packages the agents expect (a shell is in the base already). One list for
/// all: the image layer that installs them is then built once and shared by every
/// agent's image. claude uses python3; gemini's optional native modules build with it.
const TOOLS: &[&str] = &["ca-certificates", "git", "python3"];

/// What moat needs to know to build and run one agent CLI.
pub struct Agent {
    /// The subcommand and the agent's name, e.g. `claude`.
    pub name: &'static str,
    /// The agent CLI's npm package, and the version moat installs: the one place the
    /// versions live.
    pub package: &'static str,
    pub version: &'static str,
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
    /// Variables the agent always gets, with moat's values.
    pub set_env: &'static [(&'static str, &'static str)],
    /// The agent's config directory under a home (`.claude`).
    pub config_dir: &'static str,
    /// Files of the host's config directory that seed the agent's state on first use:
    /// settings and instructions, never credentials.
    pub seed: &'static [&'static str],
    /// Hosts the agent talks to: all it may reach under the strict policy it runs with
    /// by default (with the user's `--allow-host`).
    pub hosts: &'static [&'static str],
}

pub const AGENTS: &[Agent] = &[
    Agent {
        name: "claude",
        package: "@anthropic-ai/claude-code",
        version: "2.1.332",
        program: "claude",
        prompt_args: &["-p", "{prompt}"],
        yolo_flag: Some("--dangerously-skip-permissions"),
        resumable: true,
        env: &["ANTHROPIC_API_KEY"],
        // claude refuses to skip its permission prompts as root outside a sandbox; the
        // container is one (the workspace's owner may be root, as in many CI jobs).
        set_env: &[("IS_SANDBOX", "1")],
        config_dir: ".claude",
        seed: &["settings.json", "CLAUDE.md"],
        hosts: &["api.anthropic.com"],
    },
    Agent {
        name: "codex",
        package: "@openai/codex",
        version: "0.171.0",
        program: "codex",
        prompt_args: &["exec", "{prompt}"],
        yolo_flag: None,
        resumable: false,
        env: &["OPENAI_API_KEY"],
        set_env: &[],
        config_dir: ".codex",
        seed: &["config.toml", "AGENTS.md"],
        hosts: &["api.openai.com"],
    },
    Agent {
        name: "gemini",
        package: "@google/gemini-cli",
        version: "0.61.0",
        program: "gemini",
        prompt_args: &["-p", "{prompt}"],
        yolo_flag: None,
        resumable: false,
        env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        set_env: &[],
        config_dir: ".gemini",
        seed: &["settings.json", "GEMINI.md"],
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
ARGS go to `{program}` unchanged.

Image: moat builds moat/{name}:<recipe hash> when it is missing, from
$MOAT_AGENT_BASE (default {base}) with {package}@{version} and
{tools}; $MOAT_CA_CERTS (a PEM file) is trusted in the build and in the image.
--image IMAGE runs that image instead and builds nothing.
The agent runs as the workspace's owner, with its state (its home) kept per
workspace under $MOAT_HOME/agents/{name}/, seeded from ~/{config}/ on first use
({seed}; never credentials).
Passed through when set on the host: {env}.
PATH/moat.yaml (or -f FILE) is read as by moat run; its command stands in for the
agent's own line when neither -p nor ARGS are given.

Agent flags:
  -p, --prompt PROMPT      run PROMPT non-interactively
      --rebuild            build the image even when it exists
      --agent-version V    install version V of {package} instead of {version}
",
        name = agent.name,
        program = agent.program,
        base = DEFAULT_BASE,
        package = agent.package,
        version = agent.version,
        tools = TOOLS.join(", "),
        config = agent.config_dir,
        seed = agent.seed.join(", "),
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
Every flag of moat run works here too (-n, --image, -e, --env-file, -m, --memory,
--publish (not -p), --network, -u, --keep, --timeout, --dry-run...: moat run --help
lists them).
-h/--help shows this help.",
    );
    text
}

/// What the user asked of the agent itself.
#[derive(Default)]
struct AgentArgs {
    prompt: Option<String>,
    noyolo: bool,
    rebuild: bool,
    version: Option<String>,
    resume: Option<Resume>,
    extra: Vec<String>,
}

impl AgentArgs {
    /// Whether the command line said nothing of what the agent should do.
    fn is_empty(&self) -> bool {
        self.prompt.is_none() && self.resume.is_none() && self.extra.is_empty() && !self.noyolo
    }
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
        // `-p` is the agent's prompt here, as in the agents' own CLIs (`--publish` still
        // publishes a port).
        if matches!(key, "-p" | "--prompt") {
            ours.prompt = Some(string_value(usage_of, parser)?);
            return Ok(true);
        }
        if flags.take(usage_of, key, parser)? {
            return Ok(true);
        }
        match key {
            "--noyolo" if agent.yolo_flag.is_some() => ours.noyolo = true,
            "--rebuild" => ours.rebuild = true,
            "--agent-version" => ours.version = Some(string_value(usage_of, parser)?),
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
    let file = moat_yaml::load(usage_of, &flags, workspace.as_deref())?;
    start(
        agent,
        usage_of,
        flags,
        ours,
        workspace,
        file.as_ref(),
        Vec::new(),
    )
}

/// `moat run` in a workspace whose `moat.yaml` names an agent: that agent's preset with
/// the run's flags; a command after `--` (else the file's) replaces the agent's own.
pub fn from_file(
    name: &Sourced<String>,
    flags: RunFlags,
    workspace: Option<PathBuf>,
    file: &Config,
    command: Vec<String>,
) -> Result<i32> {
    let agent = find(&name.value).ok_or_else(|| {
        let known: Vec<&str> = AGENTS.iter().map(|a| a.name).collect();
        let why = format!("unknown agent {:?}: use {}", name.value, known.join(", "));
        Error::usage("run", file.error(name, why).to_string())
    })?;
    start(
        agent,
        "run",
        flags,
        AgentArgs::default(),
        workspace,
        Some(file),
        command,
    )
}

/// Run `agent` with the flags, its own arguments and the project file. `command`, when
/// given, replaces the agent's command line (`moat run -- CMD`).
fn start(
    agent: &'static Agent,
    usage_of: &'static str,
    mut flags: RunFlags,
    ours: AgentArgs,
    workspace: Option<PathBuf>,
    file: Option<&Config>,
    command: Vec<String>,
) -> Result<i32> {
    let mut origins = match file {
        Some(file) => moat_yaml::apply(usage_of, &mut flags, file)?,
        None => Origins::default(),
    };
    // The file's command stands in for the agent's line only when the command line says
    // nothing of what the agent should do.
    let command = match file {
        Some(file) if ours.is_empty() => moat_yaml::command(command, file, &mut origins),
        _ => command,
    };
    if let Some(file) = file
        && let Some(name) = &file.agent
    {
        origins.add_agent(usage_of, agent.name, name, file);
    }
    let argv = if command.is_empty() {
        argv(agent, &ours)
    } else {
        command
    };

    // A prompt runs to completion on its own; otherwise the agent is a conversation,
    // unless the project file says it is not.
    let batch = file
        .and_then(|f| f.interactive.as_ref())
        .is_some_and(|i| !i.value);
    flags.interactive = flags.interactive || (ours.prompt.is_none() && !batch);
    let set = |flags: &RunFlags, name: &str| {
        flags.env.iter().any(|e| env_name(e) == name)
            || flags.file_env.iter().any(|(k, _)| k == name)
    };
    for name in agent.env {
        if std::env::var_os(name).is_some() && !set(&flags, name) {
            flags.env.push((*name).to_string());
        }
    }
    for (name, value) in agent.set_env {
        if !set(&flags, name) {
            flags.env.push(format!("{name}={value}"));
        }
    }
    let recipe = match &flags.image {
        Some(_) => None,
        None => Some(recipe(agent, ours.version.as_deref(), usage_of)?),
    };
    if let Some(recipe) = &recipe {
        flags.image = Some(recipe.tag());
    }
    // An agent reaches only the hosts it declares (and the user's --allow-host) unless
    // told otherwise: by a policy, or by naming its network (`--network none`).
    if flags.network_policy.is_none() && flags.network.is_none() {
        flags.network_policy = Some("strict".into());
    }
    if flags.network_policy.as_deref() == Some("strict") {
        let declared = agent.hosts.iter().map(|h| h.to_string());
        flags.allow_hosts.splice(0..0, declared);
    }
    let dry_run = flags.dry_run;
    let user_given = flags.user.is_some();
    let mut spec = flags.into_spec(usage_of, workspace, argv)?;
    spec.agent = Some(agent.name);
    spec.build = recipe.map(|recipe| run::Build {
        recipe,
        rebuild: ours.rebuild,
    });
    let owner = owner_of(&spec.workspace.path)
        .map_err(|e| Error::moat(format!("workspace {}: {e}", spec.workspace.path.display())))?;
    if !user_given {
        spec.user = Some(format!("{}:{}", owner.0, owner.1));
    }
    // The agent's home holds its state; it is kept on this machine, so only an engine
    // that sees this machine's files can mount it.
    let state = runtime::sees_host_files(spec.runtime).then(|| {
        let store = Store::open().map_err(|e| Error::moat(e.to_string()))?;
        Ok::<_, Error>(store.agent_state_dir(agent.name, &spec.workspace.path))
    });
    let state = state.transpose()?;
    if let Some(dir) = &state {
        spec.mounts.push(runtime::Mount {
            source: dir.clone(),
            target: image::AGENT_HOME.into(),
            read_only: false,
        });
        if !spec.env.iter().any(|(k, _)| k == "HOME") {
            spec.env.push(("HOME".into(), image::AGENT_HOME.into()));
        }
    }
    if dry_run {
        super::run::dry_run(&spec, &origins)?;
        say(format_args!(
            "agent: {}{}",
            agent.name,
            origins.suffix("agent")
        ))?;
        if let Some(build) = &spec.build {
            say(format_args!(
                "build: {} from {} with {} and {} (when missing{})",
                build.recipe.tag(),
                build.recipe.base,
                build.recipe.spec(),
                build.recipe.tools.join(", "),
                if build.rebuild {
                    "; --rebuild: always"
                } else {
                    ""
                }
            ))?;
        }
        match &state {
            Some(dir) => say(format_args!(
                "state: {} -> {} (seeded from ~/{} on first use)",
                dir.display(),
                image::AGENT_HOME,
                agent.config_dir
            ))?,
            None => say("state: not kept (the engine cannot see this machine's files)")?,
        }
        return Ok(0);
    }
    if let Some(dir) = &state {
        prepare_state(agent, dir, owner).map_err(|e| {
            Error::moat(format!(
                "preparing the agent's state in {}: {e}",
                dir.display()
            ))
        })?;
    }
    let image = spec.image.clone();
    let built = spec.build.is_some();
    let code = run::execute(spec)?;
    if code == 127 && !built {
        term::warn(format_args!(
            "hint: if the image {image} has no `{}` command, choose one that does with --image",
            agent.program
        ));
    }
    Ok(code)
}

/// The agent's image recipe: its declaration, the base from `MOAT_AGENT_BASE`, the CA
/// bundle from `MOAT_CA_CERTS`, and `--agent-version`.
fn recipe(agent: &Agent, version: Option<&str>, usage_of: &'static str) -> Result<image::Recipe> {
    let base = match std::env::var("MOAT_AGENT_BASE") {
        Ok(b) if !b.is_empty() => {
            check_image(&b).map_err(|why| {
                Error::usage(usage_of, format!("invalid MOAT_AGENT_BASE {b:?}: {why}"))
            })?;
            b
        }
        _ => DEFAULT_BASE.to_string(),
    };
    if let Some(v) = version
        && (v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c)))
    {
        return Err(Error::usage(
            usage_of,
            format!("invalid --agent-version {v:?}: expected a version such as 1.2.3"),
        ));
    }
    let ca_certs = match std::env::var_os("MOAT_CA_CERTS") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            let pem = std::fs::read(&path).map_err(|e| {
                Error::moat(format!(
                    "MOAT_CA_CERTS {}: {}",
                    path.display(),
                    crate::io_reason::io_reason(&e)
                ))
            })?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(Error::moat(format!(
                    "MOAT_CA_CERTS {}: no PEM certificate in it",
                    path.display()
                )));
            }
            Some(pem)
        }
        _ => None,
    };
    Ok(image::Recipe {
        name: agent.name.to_string(),
        base,
        package: agent.package.to_string(),
        version: version.unwrap_or(agent.version).to_string(),
        tools: TOOLS.iter().map(|t| t.to_string()).collect(),
        ca_certs,
    })
}

/// The uid and gid that own the workspace: the agent runs as them, so what it writes
/// there belongs to the workspace's owner.
fn owner_of(workspace: &Path) -> std::io::Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(workspace)?;
    Ok((meta.uid(), meta.gid()))
}

/// Make the agent's state directory when it is missing: private, owned by the user the
/// agent runs as, and seeded with the host's settings (never its credentials).
fn prepare_state(agent: &Agent, dir: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)?;
    // Made beside and renamed into place, so a half-seeded state is never found.
    let partial = parent.join(format!(
        ".{}.{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&partial);
    let config = partial.join(agent.config_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config)?;
    let host_config = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(agent.config_dir));
    for name in agent.seed {
        let Some(from) = host_config.as_ref().map(|c| c.join(name)) else {
            break;
        };
        if from.is_file() {
            std::fs::copy(&from, config.join(name))?;
            std::os::unix::fs::chown(config.join(name), Some(uid), Some(gid))?;
        }
    }
    std::os::unix::fs::chown(&config, Some(uid), Some(gid))?;
    std::os::unix::fs::chown(&partial, Some(uid), Some(gid))?;
    match std::fs::rename(&partial, dir) {
        Ok(()) => Ok(()),
        // Another run of the same workspace made it first: use that one.
        Err(_) if dir.exists() => {
            let _ = std::fs::remove_dir_all(&partial);
            Ok(())
        }
        Err(e) => Err(e),
    }
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
