//! The lifecycle of one run: record it, create and start its container with output and
//! exit subscribed first, pump its streams, stop it when asked, then write the final record
//! and clean up exactly once. Its rooms follow the lifecycle: [`spec`] (what to run),
//! [`start`] (create, pull, start), [`follow`] (the main loop and stops), [`finish`] (the
//! final record, cleanup and the exit code), with [`crate::outcome`] deciding how it ended.
//! Other processes act on a run through [`reconcile`] (settling one whose owner died),
//! [`stop`], [`wait`] and [`reap`] (removing finished runs and leftover containers).
//!
//! Threads: the runtime's exit waiter, the output pump, the stdin pump, the signals thread
//! and a stop helper all send [`Event`]s; the main thread owns the state machine.

pub mod catch_up;
mod copy;
mod finish;
mod follow;
mod pumps;
pub mod reap;
pub mod reconcile;
mod signals;
mod spec;
mod start;
pub mod stop;
pub mod wait;
pub mod watchdog;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

pub use spec::{Build, Pull, RunSpec, Workspace};

use crate::error::{Error, Result};
use crate::runtime::{self, Runtime};
use crate::store::{self, OwnerLock, Record, Store};
use crate::{term, time, workspace};

/// What the run's threads tell the main thread.
#[derive(Debug)]
pub enum Event {
    OutputDone(std::result::Result<(), String>),
    /// moat's stdout was closed (its reader went away).
    StdoutClosed,
    /// Writing the command's output to moat's stdout failed otherwise (a full disk).
    OutputLost(String),
    /// Writing `logs.jsonl` failed (a full disk under MOAT_HOME): the capture stopped.
    CaptureFailed(String),
    StdinClosed,
    Escape,
    Signal(i32),
    WindowChanged,
    /// A stop or kill call to the runtime finished (with its error, if any).
    StopDone(Option<String>),
}

/// An interactive shell ignores SIGTERM; a hang-up is what ends a TTY session, as when
/// its terminal closes.
pub const TTY_STOP_SIGNAL: &str = "SIGHUP";

/// Run `spec` to its end and return `moat run`'s exit code.
pub fn execute(spec: RunSpec) -> Result<i32> {
    let runtime: Arc<dyn Runtime> =
        Arc::from(runtime::connect(spec.runtime).map_err(|e| Error::moat(e.to_string()))?);
    refuse_host_mounts_on_a_remote_engine(&spec, &*runtime)?;
    let store = Store::create().map_err(|e| Error::moat(e.to_string()))?;

    let stdin_is_terminal = std::io::stdin().is_terminal();
    let tty = spec.interactive && stdin_is_terminal;
    // Non-interactive runs forward a piped stdin; interactive runs always attach it.
    let forward_stdin = spec.interactive || !stdin_is_terminal;

    let (events_tx, events) = unbounded();
    signals::start(events_tx.clone()).map_err(|e| Error::moat(format!("handling signals: {e}")))?;

    let record = first_record(&spec, &*runtime);
    let owner = store
        .create_run(&record)
        .map_err(|e| Error::moat(e.to_string()))?;
    log::debug!("run {} recorded", record.id);
    watchdog::spawn(&record.id);
    store.reserve_space(&record.id);

    let mut run = Run {
        store,
        runtime,
        id: record.id,
        name: record.name,
        container: None,
        started: false,
        copy_back: None,
        sandbox: None,
        keep: spec.keep,
        stop_timeout: spec.stop_timeout,
        tty,
        events_tx,
        events,
        stopping: None,
        error_told: false,
        logs_incomplete: None,
        record_failed: std::cell::Cell::new(false),
        _owner: owner,
    };
    let ended = run.drive(&spec, forward_stdin);
    run.finish(ended)
}

/// A bind mount names a path on the engine's machine: on an engine that cannot see this
/// machine's files it would mount whatever is there (or an empty directory), silently.
fn refuse_host_mounts_on_a_remote_engine(spec: &RunSpec, runtime: &dyn Runtime) -> Result<()> {
    let Some(endpoint) = runtime.endpoint().filter(|e| !e.sees_host_files()) else {
        return Ok(());
    };
    match spec.mounts.first() {
        Some(m) => Err(Error::usage(
            "run",
            format!(
                "-m {}:{}: the engine at {} cannot see this machine's files, so a bind \
                 mount would name a path on the engine's machine",
                m.source.display(),
                m.target,
                endpoint.url()
            ),
        )),
        None => Ok(()),
    }
}

/// The record of a run about to be created.
fn first_record(spec: &RunSpec, runtime: &dyn Runtime) -> Record {
    Record {
        workspace: spec.workspace.path.to_string_lossy().into_owned(),
        workspace_mode: spec.workspace.mode.as_str().to_string(),
        image: spec.image.clone(),
        command: spec.command.clone(),
        // The runtime found, which may differ from the one asked for (Podman's socket
        // answering where Docker's does not).
        runtime: runtime.kind().as_str().to_string(),
        endpoint: runtime.endpoint().map(|e| e.save().to_record()),
        interactive: spec.interactive,
        timeout: spec.timeout.map(time::format_duration),
        owner_pid: Some(std::process::id()),
        keep: spec.keep,
        env: spec.env.iter().map(|(k, _)| k.clone()).collect(),
        network_policy: if spec.allow.is_some() {
            "strict"
        } else {
            "open"
        }
        .into(),
        allowed_hosts: spec.allow.iter().flatten().map(|r| r.to_string()).collect(),
        ..Record::new(
            store::id::new_run_id(),
            spec.name.clone().unwrap_or_else(store::id::random_name),
            time::now_rfc3339(),
        )
    }
}

/// A stop this process has set going.
#[derive(Clone, Copy)]
struct Stopping {
    /// A second SIGINT has turned it into a kill.
    killed: bool,
}

/// The run this process owns.
struct Run {
    store: Store,
    runtime: Arc<dyn Runtime>,
    id: String,
    name: String,
    /// The container, until it has been removed (cleanup runs once: it takes this).
    container: Option<String>,
    /// The container has been started: the command may have changed its workspace.
    started: bool,
    /// The copy-back to do at the end (`--copy-back`), once the workspace is copied in.
    copy_back: Option<workspace::CopyBack>,
    /// A strict run's network sandbox, once made (cleanup takes it).
    sandbox: Option<crate::sandbox::Sandbox>,
    /// Leave the container when the run ends (`--keep`, or a copy-back that did not
    /// finish: the run's files are still in it).
    keep: bool,
    stop_timeout: Duration,
    tty: bool,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    stopping: Option<Stopping>,
    /// The run's error has been told on stderr already (it is not told twice).
    error_told: bool,
    /// Why `logs.jsonl` lacks some output, once its capture failed.
    logs_incomplete: Option<String>,
    /// A record write has failed and was told: later ones fail quietly (a full disk would
    /// otherwise say so at every state change).
    record_failed: std::cell::Cell<bool>,
    /// Held until the run is over; dropping it wakes every waiter.
    _owner: OwnerLock,
}

impl Run {
    /// Change the record; a failure is told, and the run goes on (its container must
    /// still be stopped and removed).
    fn update(&self, change: impl FnOnce(&mut Record) -> bool) -> Option<Record> {
        match self.store.update(&self.id, change) {
            Ok(record) => Some(record),
            Err(e) => {
                if !self.record_failed.replace(true) {
                    term::warn(e);
                }
                None
            }
        }
    }
}
