//! `moat.yaml` under the command line: the file's settings fill in what the flags left
//! unset (lists: the file's entries first, then the flags'), each value checked here by
//! its flag's own parser so that an error points at the file's line, and a note of where
//! every value came from for `--dry-run`.
//!
//! Precedence, highest first: a flag, the file, then moat's environment defaults
//! (`MOAT_IMAGE`, `MOAT_RUNTIME`): the file is the project's choice, the environment
//! the machine's.

use std::path::Path;

use super::container_flags::{parse_bytes, parse_cpus, parse_pids, parse_publish, read_env_file};
use super::run::{RunFlags, check_user, check_workdir, parse_env, parse_mount};
use crate::config::{self, Config, Sourced};
use crate::error::{Error, Result};
use crate::runtime::Kind;
use crate::runtime::reference::check as check_image;
use crate::sandbox::allow;
use crate::store::id::validate_name;
use crate::time;

/// The project file of a run: `-f FILE`, else `WORKSPACE/moat.yaml` when there is one. It
/// is named in messages as the user would name it (`moat.yaml`, `sub/moat.yaml`).
pub fn load(
    command: &'static str,
    flags: &RunFlags,
    workspace: Option<&Path>,
) -> Result<Option<Config>> {
    let dir = workspace.unwrap_or(Path::new(""));
    config::load(dir, flags.file.as_deref().map(Path::new))
        .map_err(|e| Error::usage(command, e.to_string()))
}

/// Where a run's settings came from, for `--dry-run`: per setting, one origin per value in
/// the order the run uses them (`moat.yaml:3`, or the flag: `--image`).
#[derive(Debug, Default)]
pub struct Origins {
    entries: Vec<(&'static str, String)>,
}

impl Origins {
    fn add(&mut self, key: &'static str, origin: impl Into<String>) {
        self.entries.push((key, origin.into()));
    }

    /// The agent: the file's, or the command's over it (`moat codex` in a workspace whose
    /// file says claude).
    pub fn add_agent(
        &mut self,
        command: &str,
        chosen: &str,
        named: &Sourced<String>,
        file: &Config,
    ) {
        let origin = if named.value == chosen {
            place(file, named)
        } else {
            format!("moat {command}, over {}", place(file, named))
        };
        self.add("agent", origin);
    }

    /// The origins of setting `key`, in order.
    pub fn of(&self, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, o)| o.as_str())
            .collect()
    }

    /// ` (ORIGIN, ...)` after a `--dry-run` line for `key`, each origin once; empty when
    /// nothing is known (no file was read, or the value is moat's default).
    pub fn suffix(&self, key: &str) -> String {
        let mut distinct: Vec<&str> = Vec::new();
        for o in self.of(key) {
            if !distinct.contains(&o) {
                distinct.push(o);
            }
        }
        if distinct.is_empty() {
            String::new()
        } else {
            format!(" ({})", distinct.join(", "))
        }
    }

    /// ` (ORIGIN)` for the `index`th value of a list setting (a mount, a port).
    pub fn suffix_at(&self, key: &str, index: usize) -> String {
        self.of(key)
            .get(index)
            .map_or(String::new(), |o| format!(" ({o})"))
    }
}

/// Fill `flags` from `file` where the command line left a setting unset, and say where
/// each setting came from. The file's `command` and `agent` are the caller's: they mean
/// different things to `moat run` and to an agent.
pub fn apply(command: &'static str, flags: &mut RunFlags, file: &Config) -> Result<Origins> {
    let mut merge = Merge {
        command,
        file,
        origins: Origins::default(),
    };
    let m = &mut merge;
    m.one("name", "--name", &mut flags.name, &file.name, validate_name)?;
    m.one("image", "--image", &mut flags.image, &file.image, |i| {
        check_image(i).map_err(|why| format!("invalid image {i:?}: {why}"))
    })?;
    m.one(
        "workdir",
        "-w",
        &mut flags.workdir,
        &file.workdir,
        check_workdir,
    )?;
    m.one("user", "-u", &mut flags.user, &file.user, check_user)?;
    m.one(
        "runtime",
        "--runtime",
        &mut flags.runtime,
        &file.runtime,
        |r| {
            Kind::parse(r)
                .map(drop)
                .ok_or_else(|| format!("unknown runtime {r:?}: use docker, podman or apple"))
        },
    )?;
    m.one(
        "timeout",
        "--timeout",
        &mut flags.timeout,
        &file.timeout,
        |t| match time::parse_flag_duration("timeout", t, time::MAX_TIMEOUT)? {
            d if d.is_zero() => Err("timeout must be more than zero".into()),
            _ => Ok(()),
        },
    )?;
    m.one(
        "stop_timeout",
        "--stop-timeout",
        &mut flags.stop_timeout,
        &file.stop_timeout,
        |s| time::parse_flag_seconds("stop_timeout", s, time::MAX_STOP_TIMEOUT).map(drop),
    )?;
    let c = &mut flags.container;
    m.one("memory", "--memory", &mut c.memory, &file.memory, |v| {
        parse_bytes("resources.memory", v).map(drop)
    })?;
    m.one("cpus", "--cpus", &mut c.cpus, &file.cpus, |v| {
        parse_cpus(v).map(drop)
    })?;
    m.one("pids", "--pids-limit", &mut c.pids_limit, &file.pids, |v| {
        parse_pids(v).map(drop)
    })?;
    m.list("ports", "-p", &mut c.publish, &file.ports, |p| {
        parse_publish(p).map(drop)
    })?;
    m.list("mounts", "-m", &mut flags.mounts, &file.mounts, |v| {
        parse_mount(v).map(drop)
    })?;
    m.switch(
        "interactive",
        "-i",
        &mut flags.interactive,
        &file.interactive,
    );
    m.switch("keep", "--keep", &mut flags.keep, &file.keep);
    m.env(flags)?;
    m.network(flags)?;
    Ok(merge.origins)
}

/// The command of a run: the command line's when it has one, else the file's.
pub fn command(given: Vec<String>, file: &Config, origins: &mut Origins) -> Vec<String> {
    match &file.command {
        Some(c) if given.is_empty() => {
            origins.add("command", place(file, c));
            c.value.clone()
        }
        Some(c) => {
            origins.add("command", format!("-- CMD, over {}", place(file, c)));
            given
        }
        None => given,
    }
}

/// `moat.yaml:LINE`: where a value was written.
fn place<T>(file: &Config, at: &Sourced<T>) -> String {
    format!("{}:{}", file.file.display(), at.line)
}

struct Merge<'a> {
    command: &'static str,
    file: &'a Config,
    origins: Origins,
}

impl Merge<'_> {
    /// A usage error at the value's place in the file.
    fn error<T>(&self, at: &Sourced<T>, message: String) -> Error {
        Error::usage(self.command, self.file.error(at, message).to_string())
    }

    /// A setting with one value: the flag's, else the file's (checked).
    fn one(
        &mut self,
        key: &'static str,
        flag: &'static str,
        slot: &mut Option<String>,
        from_file: &Option<Sourced<String>>,
        check: impl Fn(&str) -> std::result::Result<(), String>,
    ) -> Result<()> {
        match (slot.is_some(), from_file) {
            (true, Some(f)) => {
                let origin = format!("{flag}, over {}", place(self.file, f));
                self.origins.add(key, origin);
            }
            (true, None) => self.origins.add(key, flag),
            (false, Some(f)) => {
                check(&f.value).map_err(|m| self.error(f, m))?;
                *slot = Some(f.value.clone());
                self.origins.add(key, place(self.file, f));
            }
            (false, None) => {}
        }
        Ok(())
    }

    /// A setting with many values: the file's first, then the flags'.
    fn list(
        &mut self,
        key: &'static str,
        flag: &'static str,
        slot: &mut Vec<String>,
        from_file: &[Sourced<String>],
        check: impl Fn(&str) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let mut merged = Vec::with_capacity(from_file.len() + slot.len());
        for f in from_file {
            check(&f.value).map_err(|m| self.error(f, m))?;
            merged.push(f.value.clone());
            self.origins.add(key, place(self.file, f));
        }
        for value in slot.drain(..) {
            merged.push(value);
            self.origins.add(key, flag);
        }
        *slot = merged;
        Ok(())
    }

    /// A flag without a value (`-i`, `--keep`): given, it is on; else the file decides.
    fn switch(
        &mut self,
        key: &'static str,
        flag: &'static str,
        slot: &mut bool,
        from_file: &Option<Sourced<bool>>,
    ) {
        match (*slot, from_file) {
            (true, Some(f)) => self
                .origins
                .add(key, format!("{flag}, over {}", place(self.file, f))),
            (true, None) => self.origins.add(key, flag),
            (false, Some(f)) => {
                *slot = f.value;
                self.origins.add(key, place(self.file, f));
            }
            (false, None) => {}
        }
    }

    /// The file's variables, read now (its env files, then its `env`), so that every flag
    /// wins over them: docker's order is the files' variables, then `-e`.
    fn env(&mut self, flags: &mut RunFlags) -> Result<()> {
        for f in &self.file.env_files {
            let vars = read_env_file(Path::new(&f.value)).map_err(|m| self.error(f, m))?;
            flags.file_env.extend(vars);
            self.origins.add("env", place(self.file, f));
        }
        for e in &self.file.env {
            if let Some(var) = parse_env(&e.value).map_err(|m| self.error(e, m))? {
                flags.file_env.push(var);
            }
            self.origins.add("env", place(self.file, e));
        }
        if !flags.env_files.is_empty() {
            self.origins.add("env", "--env-file");
        }
        if !flags.env.is_empty() {
            self.origins.add("env", "-e");
        }
        Ok(())
    }

    /// `network:`: the policy, and the hosts a strict run may reach (the file's first,
    /// then `--allow-host`'s). A policy given as a flag replaces the file's, hosts and
    /// all: `--network-policy open` runs without the file's allowlist.
    fn network(&mut self, flags: &mut RunFlags) -> Result<()> {
        let policy_flag = flags.network_policy.clone();
        self.one(
            "network_policy",
            "--network-policy",
            &mut flags.network_policy,
            &self.file.network_policy,
            |p| match p {
                "strict" | "open" => Ok(()),
                other => Err(format!(
                    "invalid network.policy {other:?}: use strict or open"
                )),
            },
        )?;
        if policy_flag.is_some() {
            return Ok(());
        }
        self.list(
            "allow_hosts",
            "--allow-host",
            &mut flags.allow_hosts,
            &self.file.network_allow,
            |h| {
                allow::parse(h)
                    .map(drop)
                    .map_err(|why| format!("invalid host {h:?}: {why}"))
            },
        )
    }
}
