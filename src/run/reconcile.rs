//! Reconciliation (SPEC section 4): a run that claims to be live but whose owner process is
//! gone gets its true ending from the runtime, written once, under the run's lock. A run
//! whose `--timeout` has passed meanwhile is stopped and recorded as timed out: the
//! deadline holds even when `moat run` itself died.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::outcome::Ended;
use crate::runtime::{Connections, ContainerState, Runtime};
use crate::sandbox;
use crate::store::{self, Record, StopReason, Store};
use crate::{term, time};

/// How long an orphan past its deadline gets between its stop signal and the kill. Its
/// owner is gone and a reader (`moat list`) is waiting: the grace is short.
const OVERDUE_GRACE: Duration = Duration::from_secs(2);

/// A run as a reader should show it.
pub struct Checked {
    pub record: Record,
    /// Its owner is gone but its container still runs: `running (orphaned)`.
    pub orphaned: bool,
}

impl Checked {
    /// The state to display.
    pub fn state_text(&self) -> String {
        if self.orphaned {
            format!("{} (orphaned)", self.record.state.as_str())
        } else {
            self.record.state.as_str().to_string()
        }
    }
}

/// Check a run before showing or using it. Finished runs and runs with a live owner cost
/// no engine call.
pub fn check(store: &Store, conns: &mut Connections, record: Record) -> Checked {
    if record.state.is_final() || store.owner_alive(&record) {
        return Checked {
            record,
            orphaned: false,
        };
    }
    match settle(store, conns, &record) {
        Ok(Some(record)) => Checked {
            record,
            orphaned: false,
        },
        Ok(None) => Checked {
            record,
            orphaned: true,
        },
        Err(e) => {
            term::warn(format_args!("cannot check run {}: {e}", record.id));
            Checked {
                record,
                orphaned: true,
            }
        }
    }
}

/// Whether the run's `--timeout` has run out.
fn overdue(record: &Record) -> bool {
    record
        .deadline
        .as_deref()
        .and_then(time::parse_rfc3339)
        .is_some_and(|deadline| SystemTime::now() >= deadline)
}

/// The owner of `record` is gone: ask the runtime how the run ended and record it, then
/// remove the container unless the run keeps it. Returns `None` while the container is
/// still running (the run is orphaned; `moat stop` or `moat clean` end it), unless its
/// deadline has passed: then it is stopped here and recorded as timed out.
pub fn settle(
    store: &Store,
    conns: &mut Connections,
    record: &Record,
) -> Result<Option<Record>, crate::error::Error> {
    let record = &with_container(store, conns, record)?;
    let (mut state, runtime) = match &record.container_id {
        None => (ContainerState::Gone, None),
        Some(c) => {
            let rt = conns.for_record(&record.runtime, record.endpoint.as_ref())?;
            (rt.inspect(c)?, Some(rt))
        }
    };
    let mut stop_reason = record.stop_reason;
    if let (ContainerState::Running, Some(rt), Some(c)) = (state, &runtime, &record.container_id)
        && overdue(record)
    {
        let requested = store.update(&record.id, |r| {
            r.stop_reason.get_or_insert(StopReason::Timeout);
            true
        })?;
        stop_reason = requested.stop_reason;
        if let Err(e) = rt.stop(c, None, OVERDUE_GRACE) {
            log::debug!("stopping an orphan past its deadline: {e}");
            rt.kill(c)?;
        }
        state = rt.inspect(c)?;
    }
    let never_started = |error: &str| match stop_reason {
        Some(_) => Ended::NeverStarted,
        None => Ended::MoatFailed {
            error: error.to_string(),
            code: None,
        },
    };
    let ended = match state {
        ContainerState::Running => return Ok(None),
        ContainerState::Created => never_started("moat exited before the command started"),
        ContainerState::Exited(Some(code)) => Ended::Exited(code),
        // The runtime cannot tell the code (Apple): the record says how it was stopped,
        // or that the code is unknown.
        ContainerState::Exited(None) => Ended::Unknown,
        ContainerState::Gone if record.container_id.is_none() => {
            never_started("moat exited before the container was created")
        }
        ContainerState::Gone => Ended::MoatFailed {
            error: "container disappeared".into(),
            code: None,
        },
    };
    record_ending(store, conns, runtime.as_ref(), record, state, ended).map(Some)
}

/// How long the command gets between its stop signal and the kill when the owner of its
/// run died: nobody is left to wait for it, and the switch promises the container is gone
/// within 5 seconds of the owner.
const OWNER_DIED_GRACE: Duration = Duration::from_secs(2);

/// The dead-man's switch fired (`watchdog`): the owner of `record` died without ending
/// it. Stop its container now, record the run `failed` with the owner's death and the
/// command's code as the engine tells it, and remove the container unless the run keeps
/// it.
pub fn owner_died(
    store: &Store,
    conns: &mut Connections,
    record: &Record,
) -> Result<Record, crate::error::Error> {
    let record = &with_container(store, conns, record)?;
    let (state, runtime) = match &record.container_id {
        None => (ContainerState::Gone, None),
        Some(c) => {
            let rt = conns.for_record(&record.runtime, record.endpoint.as_ref())?;
            if let Err(e) = rt.stop(c, None, OWNER_DIED_GRACE) {
                log::debug!("stopping the run of a dead owner: {e}");
                rt.kill(c)?;
            }
            (rt.inspect(c)?, Some(rt))
        }
    };
    let code = match state {
        ContainerState::Exited(code) => code,
        _ => None,
    };
    let owner = record
        .owner_pid
        .map_or(String::new(), |pid| format!(" (pid {pid})"));
    let ended = Ended::MoatFailed {
        error: format!("moat run{owner} was killed; its watchdog stopped the run"),
        code,
    };
    record_ending(store, conns, runtime.as_ref(), record, state, ended)
}

/// Write how a run whose owner is gone ended, once (a run already final is left as it
/// is), with the output its owner did not capture; then remove the container unless the
/// run keeps it, and a strict run's sandbox.
fn record_ending(
    store: &Store,
    conns: &mut Connections,
    runtime: Option<&Arc<dyn Runtime>>,
    record: &Record,
    state: ContainerState,
    ended: Ended,
) -> Result<Record, crate::error::Error> {
    let now = time::now_rfc3339();
    let updated = store.update(&record.id, |r| {
        if r.state.is_final() {
            return false;
        }
        // Only the process that settles the run (under the record's lock) catches up its
        // output, so it is appended once.
        r.logs_incomplete = r
            .logs_incomplete
            .take()
            .or_else(|| match (runtime, &r.container_id) {
                (Some(rt), Some(c)) if state != ContainerState::Gone => {
                    super::catch_up::catch_up(store, &**rt, &r.id, c)
                        .err()
                        .map(|why| {
                            format!("output after moat run ended could not be recovered: {why}")
                        })
                }
                (_, Some(_)) if r.started_at.is_some() => {
                    Some("the container was gone before its output could be recovered".into())
                }
                _ => None,
            });
        r.finish(ended, now);
        true
    })?;
    if let (Some(rt), Some(c), false) = (runtime, &record.container_id, updated.keep)
        && state != ContainerState::Gone
        && let Err(e) = rt.remove(c)
    {
        term::warn(e);
    }
    if updated.is_strict() {
        // The owner may have died with its sandbox made and no container yet.
        let rt = match runtime {
            Some(rt) => Ok(rt.clone()),
            None => conns.for_record(&record.runtime, record.endpoint.as_ref()),
        };
        let kept = updated.keep && record.container_id.is_some() && state != ContainerState::Gone;
        let log = store.network_log_path(&record.id);
        if let Err(e) = rt.and_then(|rt| sandbox::tear_down(&*rt, &record.id, kept, Some(&log))) {
            term::warn(format_args!(
                "removing the sandbox of run {}: {e}",
                record.id
            ));
        }
    }
    Ok(updated)
}

/// `record`, or, when it names no container, the same record naming the container its
/// owner made but died before recording ([`adopt_unrecorded`]).
fn with_container(
    store: &Store,
    conns: &mut Connections,
    record: &Record,
) -> Result<Record, crate::error::Error> {
    Ok(match &record.container_id {
        Some(_) => record.clone(),
        None => adopt_unrecorded(store, conns, record)?.unwrap_or_else(|| record.clone()),
    })
}

/// A run whose record names no container may still have one: its owner died between the
/// create and the record. Only the container's `moat.run_id` label tells; when there is
/// one, the record names it from now on (so it is settled, stopped and removed as any
/// other) and the record is given back.
pub(super) fn adopt_unrecorded(
    store: &Store,
    conns: &mut Connections,
    record: &Record,
) -> Result<Option<Record>, crate::error::Error> {
    let rt = conns.for_record(&record.runtime, record.endpoint.as_ref())?;
    let Some(found) = rt.find_by_run_id(&record.id)? else {
        return Ok(None);
    };
    log::debug!("run {} has container {found}, unrecorded", record.id);
    let adopted = store.update(&record.id, |r| {
        if r.container_id.is_some() {
            return false;
        }
        r.container_id = Some(found);
        true
    })?;
    Ok(Some(adopted))
}

/// Every run in the store, checked, newest first; unreadable directories as they are.
pub fn check_all(store: &Store, conns: &mut Connections) -> store::Result<Vec<Listed>> {
    Ok(store
        .list()?
        .into_iter()
        .map(|e| match e {
            store::Entry::Run(r) => Listed::Run(check(store, conns, r)),
            store::Entry::Corrupt { dir, why } => Listed::Corrupt { dir, why },
        })
        .collect())
}

// Nearly every entry is a run; boxing it would cost an allocation per run for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Listed {
    Run(Checked),
    Corrupt { dir: String, why: String },
}
