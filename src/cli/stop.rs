//! `moat stop [RUN...] [-t SECONDS]`: the entry point for stopping runs from any process.

use std::ffi::OsString;
use std::time::Duration;

use super::{Report, address, parse_args, run_queries, string_value};
use crate::error::{Error, Result};
use crate::run::{reconcile, stop};
use crate::runtime::Connections;
use crate::store::Store;
use crate::{term, time};

const HELP: &str = "\
Stop runs

Usage: moat stop [RUN...] [-t SECONDS]

With no RUN, stops the newest running run. The container gets its stop signal, then
a kill after the timeout; moat stop returns once the run's record is final.

Flags:
  -t, --time SECONDS   seconds to wait before killing (default 10, at most 86400)
  -h, --help           show this help";

/// Entry point for `moat stop`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut timeout = Duration::from_secs(10);
    let Some(values) = parse_args("stop", HELP, args, |key, parser| {
        Ok(match key {
            "-t" | "--time" | "--timeout" => {
                let v = string_value("stop", parser)?;
                timeout = time::parse_flag_seconds(key, &v, time::MAX_STOP_TIMEOUT)
                    .map_err(|e| Error::usage("stop", e))?;
                true
            }
            _ => false,
        })
    })?
    else {
        return Ok(0);
    };
    let queries = run_queries(values);
    let store = Store::open()?;
    let mut conns = Connections::default();
    let targets = if queries.is_empty() {
        let newest_live = store
            .runs()?
            .into_iter()
            .map(|r| reconcile::check(&store, &mut conns, r))
            .find(|c| !c.record.state.is_final())
            .ok_or_else(|| Error::failed("no run is running"))?;
        vec![newest_live.record]
    } else {
        queries
            .iter()
            .map(|q| address::resolve_by(&store, q, address::Pick::NewestLive))
            .collect::<Result<Vec<_>>>()?
    };
    // Every run named is stopped even when stdout is gone (see `Report`).
    let mut report = Report::default();
    let mut failed = None;
    for record in targets {
        match stop::stop(&store, &mut conns, &record, timeout) {
            Ok(stop::Stopped::Now(r)) => report.say(format_args!("Run {} stopped", r.id)),
            Ok(stop::Stopped::Already(r)) => report.say(format_args!(
                "Run {} is not running ({})",
                r.id,
                r.state.as_str()
            )),
            Err(e) => {
                term::warn(format_args!("stopping run {}: {e}", record.id));
                failed = Some(1);
            }
        }
    }
    report.finish(failed.unwrap_or(0))
}
