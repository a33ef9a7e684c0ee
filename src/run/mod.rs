//! The lifecycle of one run: record it, create and start its container with output and
//! exit subscribed first, pump its streams, stop it when asked, then write the final record
//! and clean up exactly once.
//!
//! Threads: the runtime's exit waiter, the output pump, the stdin pump, the signals thread
//! and a stop helper all send [`Event`]s; the main thread owns the state machine.

mod pumps;
pub mod reconcile;
mod signals;
pub mod stop;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, after, never, select, unbounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Error, MOAT_FAILED, Result};
use crate::runtime::{self, CreateSpec, ErrorKind, Kind, Mount, Runtime, StartOptions};
use crate::store::{self, OwnerLock, Record, State, StopReason, Store};
use crate::term;
use crate::time;

/// What the user asked `moat run` to do.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Host directory mounted at `/workspace` (absolute).
    pub workspace: PathBuf,
    pub image: String,
    pub name: Option<String>,
    /// Variables for the container: (name, value). Values never reach the disk.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub workdir: String,
    pub keep: bool,
    pub init: bool,
    pub interactive: bool,
    pub stop_timeout: Duration,
    pub timeout: Option<Duration>,
    pub network: Option<String>,
    pub command: Vec<String>,
    pub runtime: Kind,
    /// The agent preset this run is for (`moat claude`...): announced on start as
    /// `Started agent "NAME" (ID)`.
    pub agent: Option<&'static str>,
}

/// What the run's threads tell the main thread.
#[derive(Debug)]
pub enum Event {
    OutputDone(std::result::Result<(), String>),
    StdinClosed,
    Escape,
    Signal(i32),
    WindowChanged,
    /// A stop or kill call to the runtime finished (with its error, if any).
    StopDone(Option<String>),
}

/// How long to wait for the output stream to end after the command exited. The engine
/// closes it as soon as the container is gone; this only guards against a stuck stream.
const DRAIN: Duration = Duration::from_secs(10);
/// How often a run that is pulling its image looks for a `moat stop`.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// An interactive shell ignores SIGTERM; a hang-up is what ends a TTY session, as when
/// its terminal closes.
pub const TTY_STOP_SIGNAL: &str = "SIGHUP";

/// How long to keep asking an engine that dropped the run's wait for the exit code.
const LOST_ENGINE_GRACE: Duration = Duration::from_secs(10);

/// Run `spec` to its end and return `moat run`'s exit code.
pub fn execute(spec: RunSpec) -> Result<i32> {
    let runtime: Arc<dyn Runtime> =
        Arc::from(runtime::connect(spec.runtime).map_err(|e| Error::moat(e.to_string()))?);
    let store = Store::open().map_err(|e| Error::moat(e.to_string()))?;

    let stdin_is_terminal = std::io::stdin().is_terminal();
    let tty = spec.interactive && stdin_is_terminal;
    // Non-interactive runs forward a piped stdin; interactive runs always attach it.
    let forward_stdin = spec.interactive || !stdin_is_terminal;

    let (events_tx, events) = unbounded();
    signals::start(events_tx.clone()).map_err(|e| Error::moat(format!("handling signals: {e}")))?;

    let id = store::id::new_run_id();
    let record = Record {
        id: id.clone(),
        name: spec.name.clone().unwrap_or_else(store::id::random_name),
        workspace: spec.workspace.to_string_lossy().into_owned(),
        image: spec.image.clone(),
        command: spec.command.clone(),
        runtime: spec.runtime.as_str().to_string(),
        container_id: None,
        interactive: spec.interactive,
        state: State::Created,
        exit_code: None,
        error: None,
        stop_reason: None,
        created_at: time::now_rfc3339(),
        started_at: None,
        stopped_at: None,
        owner_pid: Some(std::process::id()),
        keep: spec.keep,
        env: spec.env.iter().map(|(k, _)| k.clone()).collect(),
    };
    let owner = store
        .create(&record)
        .map_err(|e| Error::moat(e.to_string()))?;
    log::debug!("run {} recorded", record.id);

    let mut run = Run {
        store,
        runtime,
        id,
        name: record.name,
        container: None,
        keep: spec.keep,
        stop_timeout: spec.stop_timeout,
        tty,
        events_tx,
        events,
        stop: None,
        _owner: owner,
    };
    let ending = run.drive(&spec, forward_stdin);
    run.finish(ending)
}

/// How the run ended, as the main loop saw it.
struct Ending {
    /// The command's exit code, when known.
    exit_code: Option<i32>,
    /// Set when moat itself failed; the run is then `failed` with this error.
    error: Option<String>,
    /// The exit code for `moat run` when the run failed before or around the command
    /// (125, 126, 127); `None` lets the record decide.
    code: Option<i32>,
}

impl Ending {
    fn failed(code: i32, error: impl Into<String>) -> Ending {
        Ending {
            exit_code: None,
            error: Some(error.into()),
            code: Some(code),
        }
    }
}

/// A stop this process started, and why.
#[derive(Clone, Copy)]
struct Stopping {
    /// The signal moat received, for its exit code (128 + signal).
    signal: Option<i32>,
    killed: bool,
}

struct Run {
    store: Store,
    runtime: Arc<dyn Runtime>,
    id: String,
    name: String,
    /// The container, until it has been removed (cleanup runs once: it takes this).
    container: Option<String>,
    keep: bool,
    stop_timeout: Duration,
    tty: bool,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    stop: Option<Stopping>,
    /// Held until the run is over; dropping it wakes every waiter.
    _owner: OwnerLock,
}

impl Run {
    fn update(&self, change: impl FnOnce(&mut Record) -> bool) {
        if let Err(e) = self.store.update(&self.id, change) {
            eprintln!("moat: {e}");
        }
    }

    /// A signal that arrived while moat was busy setting up.
    fn pending_signal(&self) -> Option<i32> {
        while let Ok(event) = self.events.try_recv() {
            if let Event::Signal(s) = event {
                return Some(s);
            }
        }
        None
    }

    /// Whether another process has asked this run to stop (`moat stop`).
    fn stop_requested(&self) -> bool {
        self.store
            .read(&self.id)
            .is_ok_and(|r| r.stop_reason == Some(StopReason::MoatStop))
    }

    /// `moat stop` came before the command started: end without starting it.
    fn aborted_by_stop(&mut self) -> Ending {
        Ending {
            exit_code: None,
            error: None,
            code: Some(128 + SIGTERM),
        }
    }

    fn aborted(&mut self, signal: i32) -> Ending {
        self.stop = Some(Stopping {
            signal: Some(signal),
            killed: false,
        });
        self.update(|r| {
            r.stop_reason.get_or_insert(StopReason::Signal);
            true
        });
        Ending {
            exit_code: None,
            error: None,
            code: None,
        }
    }

    /// Set up, start and follow the run until it has ended.
    fn drive(&mut self, spec: &RunSpec, forward_stdin: bool) -> Ending {
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.dedup();
        let mut mounts = vec![Mount {
            source: spec.workspace.clone(),
            target: "/workspace".into(),
            read_only: false,
        }];
        mounts.extend(spec.mounts.iter().cloned());
        let create = CreateSpec {
            name: self.id.clone(),
            image: spec.image.clone(),
            command: spec.command.clone(),
            env,
            mounts,
            workdir: spec.workdir.clone(),
            labels: vec![
                ("moat.run_id".into(), self.id.clone()),
                ("moat.managed".into(), "true".into()),
                (
                    "moat.home".into(),
                    self.store.root().to_string_lossy().into_owned(),
                ),
            ],
            init: spec.init,
            tty: self.tty,
            stdin: forward_stdin,
            network: spec.network.clone(),
        };
        // Create first and pull only when the image is missing: the common case costs one
        // engine call instead of two.
        let container = match self.runtime.create(&create) {
            Ok(c) => c,
            Err(e) if e.kind == ErrorKind::ImageNotFound => {
                if let Err(ending) = self.pull(&spec.image) {
                    return ending;
                }
                match self.runtime.create(&create) {
                    Ok(c) => c,
                    Err(e) => return Ending::failed(MOAT_FAILED, e.to_string()),
                }
            }
            Err(e) => return Ending::failed(MOAT_FAILED, e.to_string()),
        };
        log::debug!("container created");
        self.container = Some(container.clone());
        let mut stop_requested = false;
        self.update(|r| {
            r.container_id = Some(container.clone());
            if r.state == State::Created {
                r.state = State::Starting;
            }
            stop_requested = r.stop_reason == Some(StopReason::MoatStop);
            true
        });
        if let Some(s) = self.pending_signal() {
            return self.aborted(s);
        }
        if stop_requested {
            return self.aborted_by_stop();
        }

        // Raw mode before start: the first keystrokes must already be raw.
        let _raw = if self.tty {
            term::install_panic_hook();
            match term::RawGuard::enter(0) {
                Ok(g) => Some(g),
                Err(e) => {
                    return Ending::failed(MOAT_FAILED, format!("setting up the terminal: {e}"));
                }
            }
        } else {
            None
        };
        let opts = StartOptions {
            tty: self.tty,
            stdin: forward_stdin,
            size: self.tty.then(|| term::size_or_default(0)),
        };
        let session = match self.runtime.start(&container, opts) {
            Ok(s) => s,
            Err(e) => {
                let code = match e.kind {
                    ErrorKind::CommandNotFound => 127,
                    ErrorKind::CommandNotExecutable => 126,
                    _ => MOAT_FAILED,
                };
                let mut ending = Ending::failed(code, e.to_string());
                if code != MOAT_FAILED {
                    // The command's own exit code, as a shell would report it.
                    ending.exit_code = Some(code);
                }
                return ending;
            }
        };
        log::debug!("container started");
        let mut stop_requested = false;
        self.update(|r| {
            r.started_at = Some(time::now_rfc3339());
            if r.state == State::Starting {
                r.state = State::Running;
            }
            stop_requested = r.stop_reason == Some(StopReason::MoatStop);
            true
        });
        // The terminal is raw in a TTY session: lines need their carriage return.
        let newline = if self.tty { "\r\n" } else { "\n" };
        if let Some(agent) = spec.agent {
            eprint!("Started agent \"{agent}\" ({}){newline}", self.id);
        } else if !self.tty && std::io::stderr().is_terminal() {
            eprint!("Started {} ({}){newline}", self.name, self.id);
        }
        if self.tty {
            eprint!("Escape: Ctrl-/ k (stop){newline}");
        }

        let log = match self.store.open_log(&self.id) {
            Ok(f) => f,
            Err(e) => return self.abandon(&container, e.to_string()),
        };
        if let Err(e) = pumps::spawn_output(session.output, log, self.events_tx.clone()) {
            return self.abandon(&container, format!("starting the output pump: {e}"));
        }
        if let Some(sink) = session.stdin
            && let Err(e) = pumps::spawn_stdin(sink, self.tty, self.events_tx.clone())
        {
            return self.abandon(&container, format!("starting the stdin pump: {e}"));
        }
        if stop_requested {
            // `moat stop` asked while the container was starting; its stop call may have
            // come before the start, so stop it again now that it runs.
            self.request_stop(&container, StopReason::MoatStop, None, false);
        }
        self.follow(&container, session.exit, session.resizer, spec.timeout)
    }

    /// Pull the image. A pull can take long, so it runs beside the signal handling: a
    /// Ctrl-C ends the run at once (no container exists yet).
    fn pull(&mut self, image: &str) -> std::result::Result<(), Ending> {
        let progress = std::io::stderr().is_terminal();
        let (pulled_tx, pulled) = crossbeam_channel::bounded(1);
        let rt = self.runtime.clone();
        let image = image.to_string();
        std::thread::spawn(move || {
            let _ = pulled_tx.send(rt.ensure_image(&image, progress));
        });
        // `moat stop` from elsewhere only writes the record; look at it now and then.
        let stop_check = crossbeam_channel::tick(STOP_CHECK);
        let abort = loop {
            select! {
                recv(pulled) -> r => match r {
                    Ok(Ok(())) => break None,
                    Ok(Err(e)) => return Err(Ending::failed(MOAT_FAILED, e.to_string())),
                    Err(_) => return Err(Ending::failed(MOAT_FAILED, "pulling the image: the pull stopped")),
                },
                recv(self.events) -> ev => {
                    if let Ok(Event::Signal(s)) = ev {
                        break Some(self.aborted(s));
                    }
                }
                recv(stop_check) -> _ => {
                    if self.stop_requested() {
                        break Some(self.aborted_by_stop());
                    }
                }
            }
        };
        if let Some(ending) = abort {
            self.runtime.cancel_calls();
            if progress {
                // The pull's progress line is drawn without its newline: end it, so
                // that the shell's prompt does not land on it.
                eprintln!();
            }
            return Err(ending);
        }
        if self.stop_requested() {
            return Err(self.aborted_by_stop());
        }
        Ok(())
    }

    /// Something failed after the container started: kill it and record the failure.
    fn abandon(&self, container: &str, error: String) -> Ending {
        let _ = self.runtime.kill(container);
        Ending::failed(MOAT_FAILED, error)
    }

    /// The main loop: wait for the exit and the end of output, handling signals, the
    /// escape key, the timeout and window changes meanwhile.
    fn follow(
        &mut self,
        container: &str,
        exit: Receiver<runtime::Result<i32>>,
        resizer: Option<Box<dyn runtime::Resizer>>,
        timeout: Option<Duration>,
    ) -> Ending {
        let mut exit_rx = exit;
        let mut exited: Option<runtime::Result<i32>> = None;
        let mut output_done = false;
        let mut timer = timeout.map_or_else(never, after);
        let mut drain = never();

        while exited.is_none() || !output_done {
            select! {
                recv(exit_rx) -> r => {
                    log::debug!("exit: {r:?}");
                    exited = Some(r.unwrap_or_else(|_| Err(runtime::Error::new(
                        ErrorKind::ConnectionLost, "waiting for the container", "the exit waiter stopped"))));
                    exit_rx = never();
                    drain = after(DRAIN);
                }
                recv(self.events) -> ev => match ev {
                    Ok(Event::OutputDone(result)) => {
                        log::debug!("output ended");
                        if let Err(e) = result {
                            log::debug!("output stream ended with an error: {e}");
                        }
                        output_done = true;
                    }
                    Ok(Event::Signal(signal)) => {
                        let reason = StopReason::Signal;
                        self.request_stop(container, reason, Some(signal), signal == SIGINT);
                    }
                    Ok(Event::Escape) => {
                        self.request_stop(container, StopReason::Escape, None, false);
                    }
                    Ok(Event::WindowChanged) => {
                        if let Some(resizer) = &resizer
                            && let Some((rows, cols)) = term::window_size(0) {
                                let _ = resizer.resize(rows, cols);
                            }
                    }
                    Ok(Event::StopDone(Some(e))) => self.say(&format!("moat: {e}")),
                    Ok(Event::StdinClosed | Event::StopDone(None)) => {}
                    Err(_) => break,
                },
                recv(timer) -> _ => {
                    timer = never();
                    let limit = timeout.map(time::format_duration).unwrap_or_default();
                    self.update(|r| {
                        if r.stop_reason.is_none() {
                            r.stop_reason = Some(StopReason::Timeout);
                            r.error = Some(format!("timeout after {limit}"));
                        }
                        true
                    });
                    self.request_stop(container, StopReason::Timeout, None, false);
                }
                recv(drain) -> _ => {
                    log::debug!("output did not end within {DRAIN:?} of the exit");
                    break;
                }
            }
        }

        // A stop error that raced the exit is still worth telling.
        while let Ok(event) = self.events.try_recv() {
            if let Event::StopDone(Some(e)) = event {
                self.say(&format!("moat: {e}"));
            }
        }

        match exited {
            Some(Ok(code)) => Ending {
                exit_code: Some(code),
                error: None,
                code: None,
            },
            Some(Err(e)) => self.exit_after_lost_wait(container, e),
            None => Ending::failed(MOAT_FAILED, "the run's event channel closed"),
        }
    }

    /// The wait for the exit broke (the engine went away, say). Ask once more; if the
    /// engine can still tell the exit code, that is the truth, else moat failed.
    fn exit_after_lost_wait(&self, container: &str, e: runtime::Error) -> Ending {
        // An engine that is restarting answers again within seconds; one that died does
        // not, and then moat says so rather than waiting on.
        let deadline = std::time::Instant::now() + LOST_ENGINE_GRACE;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.runtime.inspect(container) {
                Ok(runtime::ContainerState::Exited(Some(code))) => {
                    return Ending {
                        exit_code: Some(code),
                        error: None,
                        code: None,
                    };
                }
                Err(err)
                    if err.kind == ErrorKind::Unreachable
                        && std::time::Instant::now() + pause < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                _ => return Ending::failed(MOAT_FAILED, e.to_string()),
            }
        }
    }

    /// Print one of moat's own lines to stderr; a raw terminal needs the carriage return.
    fn say(&self, line: &str) {
        if self.tty {
            eprint!("{line}\r\n");
        } else {
            eprintln!("{line}");
        }
    }

    /// Start stopping the container (in a helper thread: the call blocks for up to the stop
    /// timeout). A second interrupt while stopping kills at once.
    fn request_stop(
        &mut self,
        container: &str,
        reason: StopReason,
        signal: Option<i32>,
        interrupt: bool,
    ) {
        if let Some(stop) = &mut self.stop {
            if interrupt && !stop.killed {
                stop.killed = true;
                let rt = self.runtime.clone();
                let id = container.to_string();
                let tx = self.events_tx.clone();
                std::thread::spawn(move || {
                    let r = rt.kill(&id).err().map(|e| e.to_string());
                    let _ = tx.send(Event::StopDone(r));
                });
            }
            return;
        }
        self.stop = Some(Stopping {
            signal,
            killed: false,
        });
        self.update(|r| {
            r.stop_reason.get_or_insert(reason);
            if !r.state.is_final() {
                r.state = State::Stopping;
            }
            true
        });
        if reason == StopReason::Signal {
            self.say(&format!("Stopping run {}...", self.id));
        }
        let stop_signal = self.tty.then_some(TTY_STOP_SIGNAL);
        let rt = self.runtime.clone();
        let id = container.to_string();
        let tx = self.events_tx.clone();
        let timeout = self.stop_timeout;
        std::thread::spawn(move || match rt.stop(&id, stop_signal, timeout) {
            Ok(()) => {
                let _ = tx.send(Event::StopDone(None));
            }
            Err(e) => {
                // A stop that fails (a hung runtime, say) falls back to a kill, so the run
                // still ends. The error is told first: the kill ends the main loop.
                let _ = tx.send(Event::StopDone(Some(e.to_string())));
                let _ = rt.kill(&id);
            }
        });
    }

    /// Write the final record, then clean up (once), then say how moat exits.
    fn finish(mut self, ending: Ending) -> Result<i32> {
        let now = time::now_rfc3339();
        let record = self.store.update(&self.id, |r| {
            r.finish(ending.exit_code, ending.error.clone(), now.clone());
            true
        });
        log::debug!("final record written");
        // The terminal comes back before anything else is printed.
        term::restore_now();
        if let Some(container) = self.container.take()
            && !self.keep
            && let Err(e) = self.runtime.remove(&container)
        {
            // A lost engine is the run's own error, told below; one line is enough.
            let engine_lost = matches!(e.kind, ErrorKind::Unreachable | ErrorKind::ConnectionLost);
            if !(engine_lost && ending.error.is_some()) {
                eprintln!("moat: {e}");
            }
        }
        log::debug!("cleaned up");
        let record = record.map_err(|e| Error::moat(e.to_string()))?;
        if let Some(error) = &ending.error {
            eprintln!("moat: {error}");
        }
        if let Some(code) = ending.code {
            return Ok(code);
        }
        Ok(exit_code_for(&record, self.stop))
    }
}

/// `moat run`'s exit code for a finished record (SPEC section 3).
fn exit_code_for(record: &Record, stop: Option<Stopping>) -> i32 {
    let container_code = record.exit_code.unwrap_or(MOAT_FAILED);
    match record.stop_reason {
        Some(StopReason::MoatStop) | None => container_code,
        Some(StopReason::Timeout) => 124,
        Some(StopReason::Escape) => {
            eprint!("Run {} stopped\r\n", record.id);
            0
        }
        Some(StopReason::Signal) => match stop.and_then(|s| s.signal) {
            Some(s @ (SIGINT | SIGTERM | SIGHUP)) => 128 + s,
            _ => container_code,
        },
    }
}
