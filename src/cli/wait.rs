//! `moat wait RUN...`: the entry point for blocking until runs end.

use std::ffi::OsString;

use super::{address, parse_args, run_queries};
use crate::error::{Error, MOAT_FAILED, Result};
use crate::run::wait;
use crate::runtime::Connections;
use crate::store::Store;

const HELP: &str = "\
Wait for runs to end

Usage: moat wait RUN...

Blocks until each run has ended and exits with what the last one's `moat run`
exited with (or would have, for a run whose moat run died).

Flags:
  -h, --help     show this help";

/// Entry point for `moat wait`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let Some(values) = parse_args("wait", HELP, args, |_, _| Ok(false))? else {
        return Ok(0);
    };
    let queries = run_queries(values);
    if queries.is_empty() {
        return Err(Error::usage("wait", "name at least one run"));
    }
    let store = Store::open()?;
    let records = queries
        .iter()
        .map(|q| address::resolve_by(&store, q, address::Pick::NewestLive))
        .collect::<Result<Vec<_>>>()?;
    let mut conns = Connections::default();
    let mut code = 0;
    for record in records {
        let done = wait::until_final(&store, &mut conns, record)?;
        // Exactly what `moat run` exited with: the one function of SPEC §3.
        code = done.moat_exit_code.unwrap_or(MOAT_FAILED);
    }
    Ok(code)
}
