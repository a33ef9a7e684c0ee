//! `moat clean [--older-than DUR] [--dry-run] [-f]`: the entry point for removing finished
//! runs and reaping moat containers nobody owns.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime};

use super::{Report, no_values, parse_args, say, string_value};
use crate::error::{Error, Result};
use crate::run::reconcile::{self, Listed};
use crate::runtime::{Connections, Kind};
use crate::store::{Record, Store};
use crate::term;
use crate::time;

const HELP: &str = "\
Remove finished runs and orphaned moat containers

Usage: moat clean [--older-than DURATION] [--dry-run] [-f]

Removes runs that are stopped or failed (their records and logs), and containers
labelled moat.managed=true by this MOAT_HOME whose run is unknown or finished
(or that carry no home label). Live runs and corrupt
run directories are never touched (moat destroy removes those by name).

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
    let mut conns = Connections::default();
    let now = SystemTime::now();
    let listed = reconcile::check_all(&store, &mut conns)?;

    let mut runs: Vec<Record> = Vec::new();
    let mut known_live: Vec<String> = Vec::new();
    for entry in &listed {
        match entry {
            Listed::Run(c) if c.record.state.is_final() => {
                if ended_before(&c.record, older_than, now) {
                    runs.push(c.record.clone());
                }
            }
            Listed::Run(c) => known_live.push(c.record.id.clone()),
            Listed::Corrupt { dir, why } => {
                term::warn(format_args!(
                    "leaving corrupt run directory {dir} alone ({why})"
                ));
            }
        }
    }

    // Containers moat made whose run is unknown or finished. Only the runtimes that are
    // reachable are asked; the default one always.
    let mut containers = Vec::new();
    let mut kinds = vec![Kind::auto()];
    for entry in &listed {
        if let Listed::Run(c) = entry
            && let Some(k) = Kind::parse(&c.record.runtime)
            && !kinds.contains(&k)
        {
            kinds.push(k);
        }
    }
    for kind in kinds {
        let rt = match conns.get(kind) {
            Ok(rt) => rt,
            Err(e) => {
                term::warn(format_args!(
                    "not reaping {} containers: {e}",
                    kind.as_str()
                ));
                continue;
            }
        };
        let home = store.root().to_string_lossy().into_owned();
        match rt.list_managed() {
            Ok(list) => {
                // Another store's containers (another MOAT_HOME) are its own business.
                for c in list
                    .into_iter()
                    .filter(|c| c.home.as_deref().is_none_or(|h| h == home))
                {
                    let owned_by_live = c.run_id.as_ref().is_some_and(|id| known_live.contains(id));
                    if !owned_by_live {
                        containers.push((rt.clone(), c));
                    }
                }
            }
            Err(e) => term::warn(format_args!(
                "not reaping {} containers: {e}",
                kind.as_str()
            )),
        }
    }

    if runs.is_empty() && containers.is_empty() {
        say("Nothing to clean")?;
        return Ok(0);
    }
    if dry_run {
        // Only printing: a closed stdout ends it there.
        for r in &runs {
            say(format_args!(
                "Would remove run {} ({}, {})",
                r.id,
                r.name,
                r.state.as_str()
            ))?;
        }
        for (_, c) in &containers {
            say(format_args!(
                "Would remove container {} (run {})",
                short(&c.id),
                c.run_id.as_deref().unwrap_or("unknown")
            ))?;
        }
        return Ok(0);
    }
    if !force && !confirm(runs.len(), containers.len())? {
        return Ok(1);
    }

    // Everything confirmed is removed even when stdout is gone (see `Report`).
    let mut report = Report::default();
    let mut code = 0;
    for (rt, c) in &containers {
        match rt.remove(&c.id) {
            Ok(()) => report.say(format_args!(
                "Removed container {} (run {})",
                short(&c.id),
                c.run_id.as_deref().unwrap_or("unknown")
            )),
            Err(e) => {
                term::warn(e);
                code = 1;
            }
        }
    }
    for r in &runs {
        match store.remove(&r.id) {
            Ok(()) => report.say(format_args!("Removed run {} ({})", r.id, r.name)),
            Err(e) => {
                term::warn(e);
                code = 1;
            }
        }
    }
    report.finish(code)
}

/// Whether the run ended longer ago than `older_than` (any finished run without a limit).
fn ended_before(record: &Record, older_than: Option<Duration>, now: SystemTime) -> bool {
    let Some(limit) = older_than else {
        return true;
    };
    let ended = record
        .stopped_at
        .as_deref()
        .or(Some(record.created_at.as_str()))
        .and_then(time::parse_rfc3339);
    ended.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age >= limit))
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
