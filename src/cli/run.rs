//! `moat run [PATH] [FLAGS] [-- CMD...]`: the entry point for running a command.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::agents;
use super::container_flags::{ContainerFlags, read_env_file};
use super::moat_yaml::{self, Origins};
use super::{at_most_one, parse_args, say_text, string_value};
use crate::error::{Error, Result};
use crate::run::{self, Pull, RunSpec, Workspace};
use crate::runtime::endpoint::Endpoint;
use crate::runtime::reference::check as check_image;
use crate::runtime::{self, Kind, Mount};
use crate::sandbox::allow;
use crate::store::id::validate_name;
use crate::time;
use crate::workspace::{self, Ignore, Mode};

pub const HELP: &str = "\
Run a command in a fresh container and block until it ends

Usage: moat run [PATH] [FLAGS] [-- CMD...]

PATH (default .) is the workspace, at /workspace in the container, the working
directory. CMD defaults to the image's command. moat exits with the command's exit code.
PATH/moat.yaml, when there is one, holds settings for the run (each is a flag below;
a flag given wins over the file, lists add to it); --dry-run shows where each came from.

Run:
  -i, --interactive        attach stdin; with a terminal, give the container a TTY
                           (escape: Ctrl-/ then k stops the run)
  -n, --name NAME          name the run (default: a random adjective-animal)
      --image IMAGE        image to run (default $MOAT_IMAGE, else ubuntu:22.04)
      --pull WHEN          missing (default), always, or never (a missing image fails)
      --platform P         the image's platform, e.g. linux/arm64
      --entrypoint CMD     run CMD instead of the image's entrypoint (\"\" for none)
  -e, --env KEY=VALUE      set a variable in the container; -e KEY passes the host's value
      --env-file FILE      variables from FILE, one KEY=VALUE (or KEY) a line, # comments
  -m, --mount SRC:DST[:ro] bind-mount a host path (read-only with :ro)
      --tmpfs PATH[:OPTS]  mount a tmpfs at PATH (OPTS as mount(8): size=64m,mode=1777)
  -w, --workdir DIR        working directory in the container (default /workspace)
      --workspace MODE     how PATH reaches the container: bind (mounted read-write,
                           the default when the engine sees this machine's files),
                           copy (copied in before the command starts, leaving out
                           what PATH/.moatignore excludes; the host's files stay
                           untouched) or none (an empty /workspace)
      --copy-back          with copy: when the command has ended, write the files it
                           added or changed back into PATH. Nothing is deleted; a file
                           also changed on the host meanwhile is a conflict, reported,
                           and the host's version kept; excluded paths never come back
  -u, --user UID[:GID]     run the command as this user (or NAME[:GROUP]); default
                           the image's
  -l, --label KEY=VALUE    label the container (moat.* labels are moat's own)
      --runtime RUNTIME    docker, podman or apple (default $MOAT_RUNTIME, else
                           automatic: DOCKER_HOST, the Docker context, Docker's
                           socket, then Podman's)
      --keep               do not remove the container when the run ends
      --no-init            run the command as PID 1 instead of under the engine's init
      --stop-timeout SECS  grace period between the stop signal and a kill (default 10,
                           at most 86400)
      --timeout DURATION   stop the run after DURATION (90s, 5m, 2h; at most 365d); exits 124
  -f, --file FILE          read the settings from FILE instead of PATH/moat.yaml
      --dry-run            print what would run and create nothing
  -h, --help               show this help

Resources:
      --memory SIZE        memory limit (512m, 2g)
      --memory-swap SIZE   memory plus swap limit (-1: unlimited swap)
      --cpus N             CPUs (1.5)
      --pids-limit N       processes (-1: no limit)
      --shm-size SIZE      size of /dev/shm
      --ulimit N=S[:H]     a resource limit, e.g. nofile=1024:2048
      --gpus GPUS          all, a count, or device=ID[,ID...]

Network:
      --network-policy POLICY
                           open (the default) or strict: the container reaches only
                           the --allow-host hosts, through moat's proxy, and nothing
                           else (no route out; requests logged: moat logs --network)
      --allow-host HOST[:PORT]
                           with strict, a host the run may reach (*.example.com for
                           its subdomains; ports 80 and 443 unless given); implies
                           strict
      --network NETWORK    none, bridge or a network name (not with strict)
  -p, --publish [IP:][HOST:]PORT[/PROTO]
                           publish a container port (no HOST: a random one); the
                           ports are recorded, shown by moat list, and printed on start
                           on a terminal
  -P, --publish-all        publish every port the image exposes, on random ports
      --hostname NAME      the container's host name
      --add-host HOST:IP   add a line to /etc/hosts (IP may be host-gateway)
      --dns IP             a DNS server

Security:
      --read-only          mount the container's root file system read-only
      --cap-add CAP        add a Linux capability (NET_ADMIN...; ALL)
      --cap-drop CAP       drop a Linux capability
      --security-opt OPT   a security option (no-new-privileges, seccomp=...)
      --privileged         give the container every capability and device

Signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT...) are forwarded to the command; a kill
follows after --stop-timeout; a second SIGINT kills at once.

Exit codes: the command's own (also when a forwarded signal ended it: 130, 143...);
124 timeout; 125 moat failed; 126 command not executable; 127 command not found;
141 stdout closed; 2 bad usage.";

/// The flags `moat run` and the agent presets share.
#[derive(Debug, Default)]
pub struct RunFlags {
    pub interactive: bool,
    pub name: Option<String>,
    pub image: Option<String>,
    pub env: Vec<String>,
    pub mounts: Vec<String>,
    pub workdir: Option<String>,
    pub workspace: Option<String>,
    pub copy_back: bool,
    pub runtime: Option<String>,
    pub network: Option<String>,
    /// `--network-policy`: `open` or `strict`.
    pub network_policy: Option<String>,
    /// `--allow-host`, as given.
    pub allow_hosts: Vec<String>,
    pub user: Option<String>,
    pub env_files: Vec<String>,
    pub pull: Option<String>,
    pub container: ContainerFlags,
    pub keep: bool,
    pub no_init: bool,
    pub stop_timeout: Option<String>,
    pub timeout: Option<String>,
    pub dry_run: bool,
    /// `-f`: the project file to read instead of `PATH/moat.yaml`.
    pub file: Option<String>,
    /// The variables the project file sets, read (`moat_yaml::apply`): they come first,
    /// so every flag wins over them.
    pub file_env: Vec<(String, String)>,
}

impl RunFlags {
    /// Take the flag `key` (`-i`, `--name`...) if it is one of the shared flags, reading
    /// its value from `parser`. Returns whether it was.
    pub fn take(
        &mut self,
        command: &'static str,
        key: &str,
        parser: &mut lexopt::Parser,
    ) -> Result<bool> {
        match key {
            "-i" | "--interactive" => self.interactive = true,
            "-n" | "--name" => self.name = Some(string_value(command, parser)?),
            "--image" => self.image = Some(string_value(command, parser)?),
            "-e" | "--env" => self.env.push(string_value(command, parser)?),
            "-m" | "--mount" => self.mounts.push(string_value(command, parser)?),
            "-w" | "--workdir" => self.workdir = Some(string_value(command, parser)?),
            "--workspace" => self.workspace = Some(string_value(command, parser)?),
            "--copy-back" => self.copy_back = true,
            "--runtime" => self.runtime = Some(string_value(command, parser)?),
            "--network" => self.network = Some(string_value(command, parser)?),
            "--network-policy" => self.network_policy = Some(string_value(command, parser)?),
            "--allow-host" => self.allow_hosts.push(string_value(command, parser)?),
            "-u" | "--user" => self.user = Some(string_value(command, parser)?),
            "--env-file" => self.env_files.push(string_value(command, parser)?),
            "--pull" => self.pull = Some(string_value(command, parser)?),
            "--keep" => self.keep = true,
            "--no-init" => self.no_init = true,
            "--stop-timeout" => self.stop_timeout = Some(string_value(command, parser)?),
            "--timeout" => self.timeout = Some(string_value(command, parser)?),
            "--dry-run" => self.dry_run = true,
            "-f" | "--file" => self.file = Some(string_value(command, parser)?),
            _ => return self.container.take(command, key, parser),
        }
        Ok(true)
    }

    /// Check every flag and build the run's spec. Nothing is created here.
    pub fn into_spec(
        self,
        command_name: &'static str,
        workspace: Option<PathBuf>,
        command: Vec<String>,
    ) -> Result<RunSpec> {
        let bad = |m: String| Error::usage(command_name, m);
        let workspace_path =
            resolve_workspace(workspace.as_deref().unwrap_or(Path::new("."))).map_err(bad)?;
        if let Some(name) = &self.name {
            validate_name(name).map_err(bad)?;
        }
        // Docker's order: the files' variables, then `-e`; a later one wins. The project
        // file's come before both.
        let mut env = self.file_env;
        for file in &self.env_files {
            env.extend(read_env_file(Path::new(file)).map_err(bad)?);
        }
        for e in &self.env {
            env.extend(parse_env(e).map_err(bad)?);
        }
        let env = last_wins(env);
        let mounts = self
            .mounts
            .iter()
            .map(|m| parse_mount(m))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        check_mount_targets(&self.mounts, &mounts).map_err(bad)?;
        let workdir = self.workdir.unwrap_or_else(|| "/workspace".into());
        check_workdir(&workdir).map_err(bad)?;
        let runtime = match self.runtime {
            Some(r) => Kind::parse(&r).ok_or_else(|| {
                bad(format!(
                    "unknown runtime {r:?}: use docker, podman or apple"
                ))
            })?,
            None => match std::env::var("MOAT_RUNTIME") {
                Ok(r) if !r.is_empty() => Kind::parse(&r).ok_or_else(|| {
                    bad(format!(
                        "unknown runtime {r:?} in MOAT_RUNTIME: use docker, podman or apple"
                    ))
                })?,
                _ => Kind::auto(),
            },
        };
        let workspace = workspace_spec(
            workspace_path,
            self.workspace.as_deref(),
            self.copy_back,
            runtime,
            &mounts,
        )
        .map_err(bad)?;
        let stop_timeout = match self.stop_timeout {
            Some(s) => time::parse_flag_seconds("--stop-timeout", &s, time::MAX_STOP_TIMEOUT)
                .map_err(bad)?,
            None => Duration::from_secs(10),
        };
        let timeout = match self.timeout {
            Some(t) => {
                let d =
                    time::parse_flag_duration("--timeout", &t, time::MAX_TIMEOUT).map_err(bad)?;
                if d.is_zero() {
                    return Err(bad("--timeout must be more than zero".into()));
                }
                Some(d)
            }
            None => None,
        };
        let user = self
            .user
            .map(|u| check_user(&u).map(|()| u))
            .transpose()
            .map_err(bad)?;
        let image = match self.image {
            Some(i) if i.is_empty() => return Err(bad("--image needs a value".into())),
            Some(i) => {
                check_image(&i).map_err(|why| bad(format!("invalid --image {i:?}: {why}")))?;
                i
            }
            None => match std::env::var("MOAT_IMAGE") {
                Ok(i) if !i.is_empty() => {
                    check_image(&i)
                        .map_err(|why| bad(format!("invalid MOAT_IMAGE {i:?}: {why}")))?;
                    i
                }
                _ => "ubuntu:22.04".into(),
            },
        };
        let pull = match self.pull.as_deref() {
            None | Some("missing") => Pull::Missing,
            Some("always") => Pull::Always,
            Some("never") => Pull::Never,
            Some(other) => {
                return Err(bad(format!(
                    "invalid --pull {other:?}: use missing, always or never"
                )));
            }
        };
        let options = self.container.parse().map_err(bad)?;
        let allow = network_policy(
            self.network_policy.as_deref(),
            &self.allow_hosts,
            self.network.as_deref(),
        )
        .map_err(bad)?;
        if runtime == Kind::Apple && allow.is_some() {
            return Err(bad(
                "--network-policy strict is not available on Apple's runtime: its CLI \
                 cannot make a network whose only way out is moat's proxy (use \
                 --network-policy open, or another runtime)"
                    .into(),
            ));
        }
        if runtime == Kind::Apple
            && let Some(flag) = self.container.given().first()
        {
            return Err(bad(format!(
                "{flag} is not supported on Apple's runtime (its CLI has no such setting moat can rely on)"
            )));
        }
        Ok(RunSpec {
            workspace,
            image,
            name: self.name,
            env,
            mounts,
            workdir,
            keep: self.keep,
            init: !self.no_init,
            interactive: self.interactive,
            stop_timeout,
            timeout,
            network: self.network,
            allow,
            command,
            runtime,
            agent: None,
            user,
            build: None,
            options,
            pull,
        })
    }
}

/// The run's network policy: `Some(rules)` for strict (the hosts it may reach), `None`
/// for open. `--allow-host` alone means strict: a list of hosts only makes sense with it.
fn network_policy(
    policy: Option<&str>,
    hosts: &[String],
    network: Option<&str>,
) -> std::result::Result<Option<Vec<allow::Rule>>, String> {
    let strict = match policy {
        Some("strict") => true,
        Some("open") if !hosts.is_empty() => {
            return Err("--allow-host needs --network-policy strict, not open".into());
        }
        Some("open") => false,
        Some(other) => {
            return Err(format!(
                "invalid --network-policy {other:?}: use strict or open"
            ));
        }
        None => !hosts.is_empty(),
    };
    if !strict {
        return Ok(None);
    }
    if let Some(network) = network {
        return Err(format!(
            "--network {network} cannot be used with --network-policy strict: the run's \
             network is its sandbox"
        ));
    }
    let mut rules = Vec::with_capacity(hosts.len());
    for host in hosts {
        let rule =
            allow::parse(host).map_err(|why| format!("invalid --allow-host {host:?}: {why}"))?;
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    Ok(Some(rules))
}

/// Each variable once, at the place and with the value of its last setting.
fn last_wins(vars: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(vars.len());
    for (k, v) in vars {
        out.retain(|(name, _)| *name != k);
        out.push((k, v));
    }
    out
}

/// `-w`: an absolute path in the container.
pub fn check_workdir(workdir: &str) -> std::result::Result<(), String> {
    if workdir.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "invalid workdir {workdir:?}: it must be an absolute path in the container"
        ))
    }
}

/// `-u`: `UID[:GID]` or `NAME[:GROUP]`, as docker takes it.
pub fn check_user(user: &str) -> std::result::Result<(), String> {
    let bad =
        |why: &str| format!("invalid --user {user:?}: {why} (expected UID[:GID] or NAME[:GROUP])");
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    for part in std::iter::once(name).chain(group) {
        if part.is_empty() {
            return Err(bad("an empty part"));
        }
        if part.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control()) {
            return Err(bad("a bad character"));
        }
    }
    Ok(())
}

/// The workspace as an absolute path; it must be a directory.
fn resolve_workspace(path: &Path) -> std::result::Result<PathBuf, String> {
    let abs = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "workspace {}: {}",
            path.display(),
            crate::io_reason::io_reason(&e)
        )
    })?;
    if !abs.is_dir() {
        return Err(format!("workspace {} is not a directory", path.display()));
    }
    Ok(abs)
}

/// How the workspace reaches the container: `--workspace`, else the engine's default.
/// `--copy-back` goes only with a copy, and Apple's runtime cannot copy. A copy reads
/// `.moatignore` here, so a bad pattern is told before anything exists.
fn workspace_spec(
    path: PathBuf,
    mode: Option<&str>,
    copy_back: bool,
    runtime: Kind,
    mounts: &[Mount],
) -> std::result::Result<Workspace, String> {
    let (mode, chosen) = match mode {
        Some(m) => match Mode::parse(m) {
            Some(mode) => (mode, true),
            None => return Err(format!("invalid --workspace {m:?}: use bind, copy or none")),
        },
        None => (Mode::default_for(runtime::sees_host_files(runtime)), false),
    };
    if copy_back && mode != Mode::Copy {
        let why = match mode {
            Mode::Bind => {
                "the workspace is bind-mounted: the command's changes are on the host already"
            }
            _ => "with --workspace none there is no workspace to copy back",
        };
        return Err(format!(
            "invalid --copy-back without --workspace copy ({why})"
        ));
    }
    if mode == Mode::Copy && runtime == Kind::Apple {
        return Err(
            "invalid --workspace copy: Apple's runtime cannot copy a workspace in \
                    before the command starts (its `container cp` reaches only a running \
                    container); it sees this machine's files, so use bind"
                .into(),
        );
    }
    let mut ignore = match mode {
        Mode::Copy => Ignore::load(&path).map_err(|e| format!("invalid {e}"))?,
        Mode::Bind | Mode::None => Ignore::default(),
    };
    // A `-m` inside the workspace hides what is there, as it would over a bind mount. A
    // copy neither sends it (the engine would write it through the mount, onto the
    // mount's source on the host) nor brings the mount's files back into the workspace.
    let inside = format!("{}/", workspace::TARGET);
    for m in mounts {
        if let Some(rel) = clean_path(&m.target).strip_prefix(&inside) {
            ignore.hide(rel);
        }
    }
    Ok(Workspace {
        path,
        mode,
        chosen,
        copy_back,
        ignore,
    })
}

/// The `workspace:` line of `--dry-run`: where it goes, how, and why.
fn describe_workspace(ws: &Workspace) -> String {
    let why = if ws.chosen {
        format!("--workspace {}", ws.mode.as_str())
    } else if ws.mode == Mode::Bind {
        "the engine sees this machine's files".to_string()
    } else {
        "the engine cannot see this machine's files".to_string()
    };
    let path = ws.path.display();
    let target = workspace::TARGET;
    match ws.mode {
        Mode::Bind => format!("workspace: {path} -> {target} (bind-mounted: {why})\n"),
        Mode::Copy => format!(
            "workspace: {path} -> {target} (copied in: {why}; {} pattern{} in {}; {})\n",
            ws.ignore.len(),
            if ws.ignore.len() == 1 { "" } else { "s" },
            workspace::ignore::FILE,
            if ws.copy_back {
                "changes copied back at the end"
            } else {
                "changes stay in the container"
            }
        ),
        Mode::None => format!("workspace: none ({why}; {target} is empty)\n"),
    }
}

/// `KEY=VALUE`, or `KEY` to pass the host's value (skipped when the host has none, as
/// docker does).
pub fn parse_env(arg: &str) -> std::result::Result<Option<(String, String)>, String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (arg, None),
    };
    if name.is_empty() {
        return Err(format!(
            "invalid -e {arg:?}: the variable needs a name (KEY=VALUE or KEY)"
        ));
    }
    if name.contains(['\0', ' ']) {
        return Err(format!("invalid -e {arg:?}: bad variable name"));
    }
    Ok(match value {
        Some(v) => Some((name.to_string(), v)),
        None => std::env::var(name).ok().map(|v| (name.to_string(), v)),
    })
}

/// `SRC:DST[:ro|:rw]` with an existing source and an absolute target other than `/` and
/// the workspace's.
pub fn parse_mount(arg: &str) -> std::result::Result<Mount, String> {
    let bad = |why: &str| format!("invalid -m {arg:?}: {why} (expected SRC:DST[:ro])");
    let parts: Vec<&str> = arg.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        [_, _, mode] => return Err(bad(&format!("unknown mode {mode:?}"))),
        [_] => return Err(bad("no target")),
        _ => return Err(bad("too many ':'")),
    };
    if source.is_empty() {
        return Err(bad("no source"));
    }
    if target.is_empty() {
        return Err(bad("no target"));
    }
    if !target.starts_with('/') {
        return Err(bad("the target must be an absolute path"));
    }
    // Engines refuse these only after the run is recorded, in their own words.
    match clean_path(target).as_str() {
        "/" => return Err(bad("the target cannot be / (the container's root)")),
        // No `-m` may take the workspace's place.
        workspace::TARGET => {
            return Err(bad(&format!(
                "{} is reserved: the workspace is there",
                workspace::TARGET
            )));
        }
        _ => {}
    }
    let source = std::fs::canonicalize(source).map_err(|e| {
        bad(&format!(
            "source {source}: {}",
            crate::io_reason::io_reason(&e)
        ))
    })?;
    Ok(Mount {
        source,
        target: target.to_string(),
        read_only,
    })
}

/// An absolute path cleaned as the engine cleans a mount target (Go's `filepath.Clean`):
/// `/a//b/./c/../d/` is `/a/b/d`.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// No two `-m` flags may mount at the same place (the engine refuses a duplicate mount
/// point, after the run is recorded).
fn check_mount_targets(args: &[String], mounts: &[Mount]) -> std::result::Result<(), String> {
    for (i, m) in mounts.iter().enumerate() {
        let target = clean_path(&m.target);
        if let Some(j) = mounts[..i]
            .iter()
            .position(|o| clean_path(&o.target) == target)
        {
            return Err(format!(
                "invalid -m {:?}: {target} is already mounted by -m {:?}",
                args[i], args[j]
            ));
        }
    }
    Ok(())
}

/// Split the arguments at the first `--`: flags and PATH before, the command after.
pub fn split_command(args: Vec<OsString>) -> Result<(Vec<OsString>, Vec<String>)> {
    match args.iter().position(|a| a == "--") {
        Some(i) => {
            let mut before = args;
            let after = before.split_off(i);
            let command = after
                .into_iter()
                .skip(1)
                .map(|a| {
                    a.into_string()
                        .map_err(|a| Error::usage("run", format!("{a:?} is not valid UTF-8")))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((before, command))
        }
        None => Ok((args, Vec::new())),
    }
}

/// `--dry-run`: print what would be created, and on which engine, creating nothing;
/// with a project file, where each setting came from.
pub fn dry_run(spec: &RunSpec, origins: &Origins) -> Result<()> {
    let located = runtime::locate(spec.runtime).map_err(|e| Error::moat(e.to_string()))?;
    say_text(&describe(spec, located.as_ref(), origins))
}

/// The text `--dry-run` prints: exactly what would be created, and where: the runtime
/// that would answer and its endpoint, with why it was chosen. A line whose value came
/// from the project file or a flag overriding it ends with its origin: `(moat.yaml:3)`.
pub fn describe(spec: &RunSpec, located: Option<&(Endpoint, Kind)>, origins: &Origins) -> String {
    let json = |v: &[String]| serde_json::to_string(v).expect("strings serialise");
    let from = |key: &str| origins.suffix(key);
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut line = |text: String, suffix: String| lines.push((text, suffix));
    let kind = located.map_or(spec.runtime, |(_, kind)| *kind);
    line(format!("runtime: {}", kind.as_str()), from("runtime"));
    if let Some((endpoint, _)) = located {
        line(format!("endpoint: {endpoint}"), String::new());
    }
    if let Some(name) = &spec.name {
        line(format!("name: {name}"), from("name"));
    }
    line(format!("image: {}", spec.image), from("image"));
    if spec.command.is_empty() {
        line(
            "argv: (the image's default command)".into(),
            from("command"),
        );
    } else {
        line(format!("argv: {}", json(&spec.command)), from("command"));
    }
    let workspace = describe_workspace(&spec.workspace);
    line(workspace.trim_end_matches('\n').into(), String::new());
    for (i, m) in spec.mounts.iter().enumerate() {
        let ro = if m.read_only { " (ro)" } else { "" };
        let text = format!("mount: {} -> {}{ro}", m.source.display(), m.target);
        line(text, origins.suffix_at("mounts", i));
    }
    line(format!("workdir: {}", spec.workdir), from("workdir"));
    if let Some(user) = &spec.user {
        line(format!("user: {user}"), from("user"));
    }
    let names: Vec<String> = spec.env.iter().map(|(k, _)| k.clone()).collect();
    line(format!("env: {}", json(&names)), from("env"));
    line(
        format!("interactive: {}", spec.interactive),
        from("interactive"),
    );
    line(format!("init: {}", spec.init), String::new());
    line(format!("keep: {}", spec.keep), from("keep"));
    if let Some(n) = &spec.network {
        line(format!("network: {n}"), String::new());
    }
    match &spec.allow {
        Some(rules) => {
            let hosts: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            line("network_policy: strict".into(), from("network_policy"));
            line(
                format!("allow_hosts: {}", json(&hosts)),
                from("allow_hosts"),
            );
        }
        None if !origins.of("network_policy").is_empty() => {
            line("network_policy: open".into(), from("network_policy"));
        }
        None => {}
    }
    if let Some(t) = spec.timeout {
        line(
            format!("timeout: {}", time::format_duration(t)),
            from("timeout"),
        );
    }
    if !origins.of("stop_timeout").is_empty() {
        let t = time::format_duration(spec.stop_timeout);
        line(format!("stop_timeout: {t}"), from("stop_timeout"));
    }
    if spec.pull != Pull::Missing {
        line(
            format!("pull: {:?}", spec.pull).to_lowercase(),
            String::new(),
        );
    }
    lines.extend(describe_options(&spec.options, origins));
    lines
        .into_iter()
        .map(|(text, suffix)| format!("{text}{suffix}\n"))
        .collect()
}

/// `--dry-run`'s lines for the `docker run` flags given, in the engine's terms, each with
/// its origin's suffix when the value can come from the project file.
fn describe_options(o: &runtime::ContainerOptions, origins: &Origins) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = Vec::new();
    // `key` is the setting's name in the project file ("" for a flag it has no key for).
    let mut num = |name: &str, key: &str, v: Option<i64>| {
        if let Some(v) = v {
            lines.push((format!("{name}: {v}"), origins.suffix(key)));
        }
    };
    num("memory", "memory", o.memory);
    num("memory_swap", "", o.memory_swap);
    num("nano_cpus", "cpus", o.nano_cpus);
    num("pids_limit", "pids", o.pids_limit);
    num("shm_size", "", o.shm_size);
    for u in &o.ulimits {
        let text = format!("ulimit: {}={}:{}", u.name, u.soft, u.hard);
        lines.push((text, String::new()));
    }
    for (i, p) in o.publish.iter().enumerate() {
        let host = p.host_port.map_or("random".to_string(), |h| h.to_string());
        let ip = if p.host_ip.is_empty() {
            "*"
        } else {
            &p.host_ip
        };
        let text = format!("publish: {ip}:{host} -> {}/{}", p.container_port, p.proto);
        lines.push((text, origins.suffix_at("ports", i)));
    }
    let mut list = |name: &str, values: Vec<String>| {
        for v in values {
            lines.push((format!("{name}: {v}"), String::new()));
        }
    };
    if o.publish_all {
        list("publish", vec!["every exposed port".into()]);
    }
    if let Some(e) = &o.entrypoint {
        list(
            "entrypoint",
            vec![serde_json::to_string(e).expect("strings")],
        );
    }
    list(
        "label",
        o.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    );
    list("hostname", o.hostname.iter().cloned().collect());
    list("add_host", o.extra_hosts.clone());
    list("dns", o.dns.clone());
    list(
        "tmpfs",
        o.tmpfs
            .iter()
            .map(|(p, opts)| format!("{p} {opts}"))
            .collect(),
    );
    list("cap_add", o.cap_add.clone());
    list("cap_drop", o.cap_drop.clone());
    list("security_opt", o.security_opt.clone());
    list("platform", o.platform.iter().cloned().collect());
    if o.read_only {
        list("read_only", vec!["true".into()]);
    }
    if o.privileged {
        list("privileged", vec!["true".into()]);
    }
    if let Some(g) = &o.gpus {
        list("gpus", vec![format!("{g:?}")]);
    }
    lines
}

/// Entry point for `moat run`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let (args, command) = split_command(args)?;
    let mut flags = RunFlags::default();
    let Some(values) = parse_args("run", HELP, args, |key, parser| {
        flags.take("run", key, parser)
    })?
    else {
        return Ok(0);
    };
    let workspace = at_most_one(
        "run",
        values,
        " (put the command after --: moat run [PATH] -- CMD...)",
    )?
    .map(PathBuf::from);
    let file = moat_yaml::load("run", &flags, workspace.as_deref())?;
    let (command, origins) = match &file {
        Some(file) => {
            if let Some(agent) = &file.agent {
                return agents::from_file(agent, flags, workspace, file, command);
            }
            let mut origins = moat_yaml::apply("run", &mut flags, file)?;
            (moat_yaml::command(command, file, &mut origins), origins)
        }
        None => (command, Origins::default()),
    };
    let dry_run = flags.dry_run;
    let spec = flags.into_spec("run", workspace, command)?;
    if dry_run {
        self::dry_run(&spec, &origins)?;
        return Ok(0);
    }
    run::execute(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_needs_a_name() {
        assert!(parse_env("=x").is_err());
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            Some(("A".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_env("MOAT_SURELY_UNSET_VAR").unwrap(), None);
    }

    #[test]
    fn mounts_need_source_and_absolute_target() {
        assert!(parse_mount("/tmp").is_err());
        assert!(parse_mount("/tmp:").is_err());
        assert!(parse_mount(":/x").is_err());
        assert!(parse_mount("/tmp:rel").is_err());
        assert!(parse_mount("/tmp:/x:rx").is_err());
        assert!(parse_mount("/surely/not/here:/x").is_err());
        let m = parse_mount("/tmp:/x:ro").unwrap();
        assert!(m.read_only);
        assert_eq!(m.target, "/x");
    }

    #[test]
    fn mounts_keep_off_the_root_and_the_workspace() {
        for target in [
            "/",
            "//",
            "/workspace",
            "/workspace/",
            "/x/../workspace",
            "/./",
        ] {
            let e = parse_mount(&format!("/tmp:{target}")).unwrap_err();
            assert!(e.starts_with("invalid -m "), "{target}: {e}");
        }
        assert!(parse_mount("/tmp:/workspace/sub").is_ok());
        assert!(parse_mount("/tmp:/workspaces").is_ok());
    }

    #[test]
    fn two_mounts_cannot_share_a_target() {
        let args = vec!["/tmp:/x".to_string(), "/:/x/".to_string()];
        let mounts: Vec<Mount> = args.iter().map(|a| parse_mount(a).unwrap()).collect();
        let e = check_mount_targets(&args, &mounts).unwrap_err();
        assert!(e.starts_with("invalid -m \"/:/x/\""), "{e}");
        assert!(check_mount_targets(&args[..1], &mounts[..1]).is_ok());
    }

    #[test]
    fn splits_at_the_first_double_dash() {
        let args = ["a", "-e", "X", "--", "sh", "--", "x"]
            .iter()
            .map(OsString::from)
            .collect();
        let (before, command) = split_command(args).unwrap();
        assert_eq!(before.len(), 3);
        assert_eq!(command, vec!["sh", "--", "x"]);
    }
}
