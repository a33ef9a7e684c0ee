//! `moat destroy RUN... [-f]`: the entry point for removing runs.

use std::ffi::OsString;

use super::{Report, address, parse_args, run_queries};
use crate::error::{Error, Result};
use crate::run::reap;
use crate::runtime::Connections;
use crate::store::{Entry, Record, Store};
use crate::term;

const HELP: &str = "\
Remove runs: their records, logs and any leftover container

Usage: moat destroy RUN... [-f]

A live run is refused unless -f, which stops it first. A corrupt run directory
(shown by moat list) can be removed by its directory name.

Flags:
  -f, --force    stop live runs first
  -h, --help     show this help";

/// Entry point for `moat destroy`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut force = false;
    let Some(values) = parse_args("destroy", HELP, args, |key, _| {
        Ok(match key {
            "-f" | "--force" => {
                force = true;
                true
            }
            _ => false,
        })
    })?
    else {
        return Ok(0);
    };
    let queries = run_queries(values);
    if queries.is_empty() {
        return Err(Error::usage("destroy", "name at least one run"));
    }
    let store = Store::open()?;
    let entries = store.list()?;
    let runs: Vec<Record> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Run(r) => Some(r.clone()),
            Entry::Corrupt { .. } => None,
        })
        .collect();
    let mut conns = Connections::default();
    // Every run named is removed even when stdout is gone (see `Report`).
    let mut report = Report::default();
    let mut code = 0;
    for query in &queries {
        // A corrupt directory is removed only when named exactly.
        if entries
            .iter()
            .any(|e| matches!(e, Entry::Corrupt { dir, .. } if dir == query))
        {
            store.remove_dir_named(query)?;
            report.say(format_args!("Removed corrupt run directory {query}"));
            continue;
        }
        let record = match address::find(&runs, query) {
            Ok(r) => r.clone(),
            Err(e) => {
                term::warn(e);
                code = 1;
                continue;
            }
        };
        match reap::destroy(&store, &mut conns, record, force) {
            Ok(r) => report.say(format_args!("Removed run {} ({})", r.id, r.name)),
            Err(e) => {
                term::warn(e);
                code = 1;
            }
        }
    }
    report.finish(code)
}
