//! The run's beginning: create the container (pulling its image when it is missing), copy
//! the workspace in when it is copied, start it with its output and exit subscribed, and
//! hand it to the main loop. A stop asked for before the command starts (a signal, `moat
//! stop`) ends the run here, without starting it.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use crossbeam_channel::select;

use super::{Build, Event, Pull, Run, RunSpec, pumps};
use crate::image::{self, build::Ensured};
use crate::outcome::{Ended, StopReason};
use crate::runtime::{CreateSpec, ErrorKind, StartOptions};
use crate::sandbox::{self, allow::Rule};
use crate::store::State;
use crate::workspace::Mode;
use crate::{signal, term, time};

/// How often a run that is pulling its image or copying its workspace looks for a
/// `moat stop`.
const STOP_CHECK: Duration = Duration::from_millis(200);

impl Run {
    /// Set up, start and follow the run until it has ended; how the command ended.
    pub(super) fn drive(&mut self, spec: &RunSpec, forward_stdin: bool) -> Ended {
        let home = self.store.root().to_string_lossy().into_owned();
        let mut create = spec.container(&self.id, &home, self.tty, forward_stdin);
        if let Some(build) = &spec.build
            && let Err(ended) = self.build_image(build)
        {
            return ended;
        }
        if let Some(rules) = &spec.allow {
            if let Err(ended) = self.make_sandbox(&mut create, rules) {
                return ended;
            }
            if let Some(s) = self.pending_signal() {
                return self.abort(StopReason::Signal, Some(s));
            }
        }
        let container = match self.create(&mut create, spec.pull) {
            Ok(c) => c,
            Err(ended) => return ended,
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
            return self.abort(StopReason::Signal, Some(s));
        }
        if stop_requested {
            return Ended::NeverStarted;
        }
        if spec.workspace.mode == Mode::Copy
            && let Err(ended) = self.copy_in(&container, &spec.workspace)
        {
            return ended;
        }

        // The log exists before the record says the run is running.
        let log = match self.store.open_log(&self.id) {
            Ok(f) => f,
            Err(e) => return moat_failed(e.to_string()),
        };

        // Raw mode before start: the first keystrokes must already be raw.
        let _raw = if self.tty {
            term::install_panic_hook();
            match term::RawGuard::enter(0) {
                Ok(g) => Some(g),
                Err(e) => return moat_failed(format!("setting up the terminal: {e}")),
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
                return match e.kind {
                    ErrorKind::CommandNotFound => could_not_run(127, e),
                    ErrorKind::CommandNotExecutable => could_not_run(126, e),
                    _ => moat_failed(e.to_string()),
                };
            }
        };
        log::debug!("container started");
        self.started = true;
        let requested_stop = self.mark_running(spec.timeout);
        self.announce(spec.agent);
        if !spec.options.publish.is_empty() || spec.options.publish_all {
            self.record_ports(&container);
        }

        if let Err(e) = pumps::spawn_output(session.output, log, self.events_tx.clone()) {
            return self.abandon(&container, format!("starting the output pump: {e}"));
        }
        if let Some(sink) = session.stdin
            && let Err(e) = pumps::spawn_stdin(sink, self.tty, self.events_tx.clone())
        {
            return self.abandon(&container, format!("starting the stdin pump: {e}"));
        }
        if let Some(timeout) = requested_stop {
            // `moat stop` asked while the container was starting and left the stop to
            // this process, with its own grace period.
            self.request_stop(&container, StopReason::MoatStop, None, timeout);
        }
        self.follow(&container, session.exit, session.resizer, spec.timeout)
    }

    /// Make the run's network sandbox (`--network-policy strict`) and put the container
    /// in it: on its internal network, with the proxy's variables.
    fn make_sandbox(&mut self, create: &mut CreateSpec, rules: &[Rule]) -> Result<(), Ended> {
        let log = self
            .store
            .open_network_log(&self.id)
            .map_err(|e| moat_failed(e.to_string()))?;
        let settings = sandbox::Settings {
            run_id: &self.id,
            labels: &create.labels,
            allow: rules,
            extra_hosts: &create.options.extra_hosts,
            dns: &create.options.dns,
        };
        let made = sandbox::set_up(&*self.runtime, &settings, log).map_err(moat_failed)?;
        log::debug!("sandbox made: network {}", made.network);
        create.network = Some(made.network.clone());
        create.env.extend(made.env.iter().cloned());
        self.sandbox = Some(made);
        Ok(())
    }

    /// Create the container; pull its image first when it is missing (`--pull missing`),
    /// always (`always`) or never (`never`: a missing image fails the run). Creating first
    /// and pulling only then costs the common case one engine call instead of two.
    fn create(&mut self, create: &mut CreateSpec, pull: Pull) -> Result<String, Ended> {
        if pull == Pull::Always {
            self.pull(&create.image, create.options.platform.as_deref())?;
        }
        // The size as the container is made, after any pull (which can take minutes).
        let tty = self.tty;
        let sized = |create: &mut CreateSpec| {
            create.tty_size = tty.then(|| term::size_or_default(0));
        };
        sized(create);
        match self.runtime.create(create) {
            Ok(c) => Ok(c),
            Err(e) if e.kind == ErrorKind::ImageNotFound && pull == Pull::Never => {
                Err(moat_failed(format!(
                    "image {} is not present, and --pull never does not pull it",
                    create.image
                )))
            }
            Err(e) if e.kind == ErrorKind::ImageNotFound => {
                self.pull(&create.image, create.options.platform.as_deref())?;
                sized(create);
                self.runtime
                    .create(create)
                    .map_err(|e| moat_failed(e.to_string()))
            }
            Err(e) => Err(moat_failed(e.to_string())),
        }
    }

    /// Pull the image. A pull can take long, so it runs beside the signal handling: a
    /// signal or a `moat stop` ends the run at once (no container exists yet).
    fn pull(&mut self, image: &str, platform: Option<&str>) -> Result<(), Ended> {
        let line = std::io::stderr()
            .is_terminal()
            .then(term::ProgressLine::new);
        if line.is_some() {
            term::notice(format_args!("Pulling image {image}..."));
        }
        let rt = self.runtime.clone();
        let image = image.to_string();
        let platform = platform.map(str::to_string);
        let drawer = line.clone();
        let pulled = self.beside_stops(move || {
            let progress = drawer.map(|l| Box::new(move |text: &str| l.draw(text)) as _);
            rt.pull(&image, platform.as_deref(), progress)
        });
        if let Some(line) = line {
            line.end();
        }
        match pulled? {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(moat_failed(e.to_string())),
            None => Err(moat_failed("pulling the image: the pull stopped".into())),
        }
    }

    /// Make sure the image the run builds exists, building it when it is missing. Like a
    /// pull, the build runs beside the signal handling: a signal or a `moat stop` ends the
    /// run at once, and the engine ends the build when moat's connection goes. On a
    /// terminal one line shows the step and the builder's last line; elsewhere every line
    /// is passed on, prefixed, so a CI log shows what happened.
    fn build_image(&mut self, build: &Build) -> Result<(), Ended> {
        let line = std::io::stderr()
            .is_terminal()
            .then(term::ProgressLine::new);
        let rt = self.runtime.clone();
        let recipe = build.recipe.clone();
        let rebuild = build.rebuild;
        let tag = recipe.tag();
        let drawer = line.clone();
        let built = self.beside_stops(move || {
            let mut announced = false;
            let cols = usize::from(term::size_or_default(2).1).max(20);
            image::ensure(&*rt, &recipe, rebuild, |progress, text| {
                if !announced {
                    announced = true;
                    term::notice(format_args!(
                        "Building image {} ({} on {})...",
                        recipe.tag(),
                        recipe.spec(),
                        recipe.base
                    ));
                }
                match &drawer {
                    Some(l) => {
                        let shown = format!("{}: {}", progress.step_text(), text.trim());
                        l.draw(&shown.chars().take(cols - 1).collect::<String>());
                    }
                    None => term::notice(format_args!("build: {text}")),
                }
            })
        });
        if let Some(line) = &line {
            line.end();
        }
        match built? {
            Some(Ok(Ensured::Found)) => Ok(()),
            Some(Ok(Ensured::Built)) => {
                term::notice(format_args!("Built image {tag}"));
                Ok(())
            }
            Some(Err(failed)) => {
                // Without a terminal every line was shown as it came.
                if line.is_some() {
                    for text in &failed.progress.tail {
                        term::notice(format_args!("build: {text}"));
                    }
                }
                Err(moat_failed(failed.to_string()))
            }
            None => Err(moat_failed(format!(
                "building image {tag}: the build stopped"
            ))),
        }
    }

    /// Do `job` (a long call: a pull, an upload) on a thread of its own, beside the
    /// signal handling: a signal or a `moat stop` ends the run at once, before its
    /// command starts, and the job is left to end by itself (runtime calls it waits on
    /// are cancelled). `None` when the job's thread died.
    pub(super) fn beside_stops<T: Send + 'static>(
        &mut self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Option<T>, Ended> {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = done_tx.send(job());
        });
        // `moat stop` from elsewhere only writes the record; look at it now and then.
        let stop_check = crossbeam_channel::tick(STOP_CHECK);
        loop {
            select! {
                recv(done) -> r => break match r {
                    Ok(_) if self.stop_requested() => Err(Ended::NeverStarted),
                    Ok(result) => Ok(Some(result)),
                    Err(_) => Ok(None),
                },
                recv(self.events) -> ev => {
                    if let Ok(Event::Signal(s)) = ev {
                        self.runtime.cancel_calls();
                        break Err(self.abort(StopReason::Signal, Some(s)));
                    }
                }
                recv(stop_check) -> _ => {
                    if self.stop_requested() {
                        self.runtime.cancel_calls();
                        break Err(Ended::NeverStarted);
                    }
                }
            }
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

    /// A stop came before the command started: record why, and end without starting it.
    fn abort(&mut self, reason: StopReason, received: Option<i32>) -> Ended {
        self.update(|r| {
            if r.stop_reason.is_none() {
                r.stop_reason = Some(reason);
                r.signal = received.and_then(signal::name).map(str::to_string);
            }
            true
        });
        Ended::NeverStarted
    }

    /// The container runs: record it, with the deadline of `--timeout`. Returns the grace
    /// period of a `moat stop` that asked meanwhile and left the stop to this process.
    fn mark_running(&self, timeout: Option<Duration>) -> Option<Duration> {
        let now = SystemTime::now();
        let deadline = timeout.and_then(|t| now.checked_add(t));
        let mut requested = None;
        self.update(|r| {
            r.started_at = Some(time::rfc3339_ms(now));
            r.deadline = deadline.map(time::rfc3339_ms);
            if r.state == State::Starting {
                r.state = State::Running;
            }
            if r.stop_reason == Some(StopReason::MoatStop) {
                requested = Some(
                    r.stop_timeout
                        .map_or(self.stop_timeout, Duration::from_secs),
                );
            }
            true
        });
        requested
    }

    /// Say on stderr that the run started (an agent always; a plain run when stderr is
    /// a terminal), and how to stop a TTY session.
    fn announce(&self, agent: Option<&str>) {
        if let Some(agent) = agent {
            term::notice(format_args!("Started agent \"{agent}\" ({})", self.id));
        } else if !self.tty && std::io::stderr().is_terminal() {
            term::notice(format_args!("Started {} ({})", self.name, self.id));
        }
        if self.tty {
            term::notice("Escape: Ctrl-/ k (stop)");
        }
    }

    /// Record the ports the engine published, and show them on a terminal. Not knowing
    /// them does not stop the run: the engine published them either way.
    fn record_ports(&self, container: &str) {
        match self.runtime.published(container) {
            Ok(ports) => {
                let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                if !ports.is_empty() && std::io::stderr().is_terminal() {
                    term::notice(format_args!("Ports: {}", ports.join(", ")));
                }
                self.update(|r| {
                    r.ports = ports.clone();
                    true
                });
            }
            Err(e) => term::warn(format_args!("the published ports are unknown: {e}")),
        }
    }

    /// Something failed after the container started: kill it and record the failure.
    fn abandon(&self, container: &str, error: String) -> Ended {
        let _ = self.runtime.kill(container);
        moat_failed(error)
    }
}

pub(super) fn moat_failed(error: String) -> Ended {
    Ended::MoatFailed { error, code: None }
}

/// The command's own exit code, as a shell would report it.
fn could_not_run(code: i32, e: crate::runtime::Error) -> Ended {
    Ended::CouldNotRun {
        code,
        error: e.to_string(),
    }
}
