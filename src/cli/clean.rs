//! `moat clean [--older-than DUR] [--dry-run] [-f]`: the entry point for removing finished
//! runs and reaping moat containers nobody owns.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use super::{Report, no_values, parse_args, say, string_value};
use crate::error::{Error, Result};
use crate::run::reap::{self, Plan, Removed};
use crate::runtime::Connections;
use crate::store::Store;
use crate::time;

const HELP: &str = "\
Remove finished runs and orphaned moat containers

Usage: moat clean [--older-than DURATION] [--dry-run] [-f]

Removes runs that are stopped or failed (their records, logs and any container
they kept), and containers labelled moat.managed=true by this MOAT_HOME (or that
carry no home label) whose run this MOAT_HOME does not hold, once they are a few
seconds old. Live runs, their containers and corrupt run directories are never
touched (moat destroy removes those by name).

Flags:
      --older-than DURATION   only runs that ended longer ago than this (e.g. 7d, 12h)
      --dry-run               list what would be removed, remove nothing
  -f, --force                 do not ask for confirmation
  -h, --help                  show this help

Without -f, moat asks when stdin is a terminal and refuses otherwise.";

/// Entry point for `moat clean`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut older_than: Option<Duration> = None;
    let mut dry_run = false;
    let mut force = false;
    let Some(values) = parse_args("clean", HELP, args, |key, parser| {
        match key {
            "--older-than" => {
                let v = string_value("clean", parser)?;
                older_than = Some(
                    time::parse_flag_duration("--older-than", &v, time::MAX_OLDER_THAN)
                        .map_err(|e| Error::usage("clean", e))?,
                );
            }
            "--dry-run" | "-n" => dry_run = true,
            "-f" | "--force" => force = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?
    else {
        return Ok(0);
    };
    no_values("clean", &values)?;

    let store = Store::open()?;
    let plan = reap::plan(&store, &mut Connections::default(), older_than)?;
    if plan.is_empty() {
        say("Nothing to clean")?;
        return Ok(0);
    }
    if dry_run {
        return show(&plan);
    }
    if !force && !confirm(plan.runs.len(), plan.containers.len())? {
        return Ok(1);
    }
    // Everything confirmed is removed even when stdout is gone (see `Report`).
    let mut report = Report::default();
    let code = reap::clean(&store, &plan, |removed| match removed {
        Removed::Container(c) => report.say(format_args!(
            "Removed container {} (run {})",
            short(&c.id),
            c.run_id.as_deref().unwrap_or("unknown")
        )),
        Removed::Network(n) => report.say(format_args!(
            "Removed network {} (run {})",
            short(&n.id),
            n.run_id.as_deref().unwrap_or("unknown")
        )),
        Removed::Run(r) => report.say(format_args!("Removed run {} ({})", r.id, r.name)),
    });
    report.finish(code)
}

/// `--dry-run`: what would be removed. Only printing: a closed stdout ends it there.
fn show(plan: &Plan) -> Result<i32> {
    for r in &plan.runs {
        say(format_args!(
            "Would remove run {} ({}, {})",
            r.id,
            r.name,
            r.state.as_str()
        ))?;
    }
    for c in &plan.containers {
        say(format_args!(
            "Would remove container {} (run {})",
            short(&c.id),
            c.run_id.as_deref().unwrap_or("unknown")
        ))?;
    }
    for n in &plan.networks {
        say(format_args!(
            "Would remove network {} (run {})",
            short(&n.id),
            n.run_id.as_deref().unwrap_or("unknown")
        ))?;
    }
    Ok(0)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Ask on a terminal; refuse without one (moat never prompts a script).
fn confirm(runs: usize, containers: usize) -> Result<bool> {
    let what = format!("{runs} run(s) and {containers} container(s)");
    if !std::io::stdin().is_terminal() {
        return Err(Error::failed(format!(
            "clean would remove {what}; pass -f to remove them (or --dry-run to list them)"
        )));
    }
    // A prompt, not a line: no newline, and a stderr nobody reads is no reason to panic.
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "Remove {what}? [y/N] ");
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::failed(format!("reading the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
