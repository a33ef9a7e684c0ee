//! Stopping a run from any process (`moat stop`, `moat destroy -f`). The stop request is
//! recorded before the runtime is asked, so the owner knows the ending is `moat stop`; then
//! this process waits for the owner to write the final record and clean up, or does both
//! itself when there is no owner.

use std::time::Duration;

use crossbeam_channel::bounded;

use super::reconcile;
use crate::error::{Error, Result};
use crate::runtime::Connections;
use crate::store::{Record, State, StopReason, Store};

pub enum Stopped {
    /// The run was live and has now ended; its final record.
    Now(Record),
    /// The run had already ended.
    Already(Record),
}

/// How long the owner may take, beyond the stop timeout, to record the ending.
const OWNER_GRACE: Duration = Duration::from_secs(30);

pub fn stop(
    store: &Store,
    conns: &mut Connections,
    record: &Record,
    timeout: Duration,
) -> Result<Stopped> {
    if record.state.is_final() {
        return Ok(Stopped::Already(record.clone()));
    }
    let mut was_starting = false;
    let requested = store.update(&record.id, |r| {
        if r.state.is_final() {
            return false;
        }
        was_starting = matches!(r.state, State::Created | State::Starting);
        r.stop_reason.get_or_insert(StopReason::MoatStop);
        r.state = State::Stopping;
        true
    })?;
    if requested.state.is_final() {
        return Ok(Stopped::Already(requested));
    }

    // A live owner that has not started the container yet reads the request when it
    // does, and stops it then: a stop sent now could find the container only created (a
    // no-op) or catch it half-started, and the command would run on or die oddly.
    let owner_will_stop = was_starting && store.owner_alive(&requested);
    if let Some(container) = requested.container_id.as_ref().filter(|_| !owner_will_stop) {
        let rt = conns.for_record(&requested.runtime)?;
        let signal = requested.interactive.then_some(super::TTY_STOP_SIGNAL);
        if let Err(e) = rt.stop(container, signal, timeout) {
            eprintln!("moat: {e}; killing it");
            rt.kill(container)?;
        }
    }

    if store.owner_alive(&requested) {
        wait_for_owner(store, &requested, timeout.saturating_add(OWNER_GRACE))?;
    }
    let now = store.read(&record.id)?;
    if now.state.is_final() {
        return Ok(Stopped::Now(now));
    }
    // No owner (it died, or never got to start the container): finish the record here.
    match reconcile::settle(store, conns, &now)? {
        Some(done) => Ok(Stopped::Now(done)),
        None => Err(Error::failed(format!(
            "run {} is still running after the stop",
            record.id
        ))),
    }
}

/// Block until the owner releases the run, with a deadline so a stuck owner cannot hang
/// `moat stop`.
fn wait_for_owner(store: &Store, record: &Record, deadline: Duration) -> Result<()> {
    let (tx, rx) = bounded(1);
    let store = store.clone();
    let id = record.id.clone();
    std::thread::spawn(move || {
        let _ = tx.send(store.wait_owner(&id));
    });
    match rx.recv_timeout(deadline) {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::failed(format!(
            "run {} did not finish within {}s of the stop (its moat run process is pid {})",
            record.id,
            deadline.as_secs(),
            record
                .owner_pid
                .map_or_else(|| "unknown".to_string(), |p| p.to_string())
        ))),
    }
}
