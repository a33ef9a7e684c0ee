//! Stopping a run: delivering a stop to a container once its command runs (used by the
//! run's owner and by `moat stop` alike), and stopping a run from any process (`moat stop`,
//! `moat destroy -f`). A stop from another process is recorded, with its grace period,
//! before the runtime is asked, so the owner knows the ending is `moat stop` and, if it
//! is the one to carry the stop out, how long the grace is.

use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use super::reconcile;
use crate::error::{Error, Result};
use crate::runtime::{self, Connections, Runtime};
use crate::store::{Record, State, StopReason, Store};
use crate::term;

pub enum Stopped {
    /// The run was live and has now ended; its final record.
    Now(Record),
    /// The run had already ended.
    Already(Record),
}

/// How long the owner may take, beyond the stop timeout, to record the ending.
const OWNER_GRACE: Duration = Duration::from_secs(30);
/// How long a stop waits for the command's process to exist before it is sent anyway. An
/// init starts its command within milliseconds; this only bounds a start that is stuck.
const START_WINDOW: Duration = Duration::from_secs(5);
/// Pauses between looks at the container's processes while its command is starting
/// (the last one repeats).
const START_POLL: [Duration; 4] = [
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
];

/// Stop `container` once its command runs: `signal` (default: the container's stop
/// signal), then a kill after `timeout`. Waiting for the command first keeps the signal
/// out of the window where the engine's init cannot handle it yet.
pub fn deliver(
    rt: &dyn Runtime,
    container: &str,
    signal: Option<&str>,
    timeout: Duration,
) -> runtime::Result<()> {
    let deadline = Instant::now() + START_WINDOW;
    let mut pauses = START_POLL.iter().chain(std::iter::repeat(&START_POLL[3]));
    loop {
        match rt.command_started(container) {
            Ok(true) => break,
            Ok(false) if Instant::now() < deadline => {
                std::thread::sleep(*pauses.next().expect("the pauses repeat forever"));
            }
            Ok(false) => {
                log::debug!("the command did not start within {START_WINDOW:?}; stopping anyway");
                break;
            }
            Err(e) => {
                log::debug!("cannot tell whether the command started ({e}); stopping anyway");
                break;
            }
        }
    }
    rt.stop(container, signal, timeout)
}

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
        r.stop_timeout = Some(timeout.as_secs());
        r.state = State::Stopping;
        true
    })?;
    if requested.state.is_final() {
        return Ok(Stopped::Already(requested));
    }

    // A dead owner may have made the container without recording it: its label tells.
    let requested = match requested.container_id {
        None if !store.owner_alive(&requested) => {
            reconcile::adopt_unrecorded(store, conns, &requested)?.unwrap_or(requested)
        }
        _ => requested,
    };

    // A live owner that has not started the container yet reads the request when it
    // does, and stops it then, with this timeout: a stop sent now could find the
    // container only created (a no-op) and the command would run on.
    let owner_will_stop = was_starting && store.owner_alive(&requested);
    if let Some(container) = requested.container_id.as_ref().filter(|_| !owner_will_stop) {
        let rt = conns.for_record(&requested.runtime, requested.endpoint.as_ref())?;
        let signal = requested.interactive.then_some(super::TTY_STOP_SIGNAL);
        if let Err(e) = deliver(&*rt, container, signal, timeout) {
            term::warn(format_args!("{e}; killing it"));
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
