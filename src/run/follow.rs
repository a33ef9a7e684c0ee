//! The main loop of a started run: wait for the command's exit and the end of its output,
//! and meanwhile stop it when asked (a signal to moat, the escape key, `--timeout`, a
//! closed stdout), pass on window changes and tell a lost output once.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, after, never, select};
use libc::SIGINT;

use super::{Event, Run, Stopping, TTY_STOP_SIGNAL, stop};
use crate::outcome::{Ended, StopReason};
use crate::runtime::{self, ErrorKind};
use crate::store::State;
use crate::{signal, term, time};

/// How long to wait for the output stream to end after the command exited. The engine
/// closes it as soon as the container is gone; this only guards against a stuck stream.
const DRAIN: Duration = Duration::from_secs(10);
/// How long to keep asking an engine that dropped the run's wait for the exit code: an
/// engine that is restarting answers again within seconds.
const LOST_ENGINE_GRACE: Duration = Duration::from_secs(10);

impl Run {
    /// Follow the started run until its command has exited and its output ended; how the
    /// command ended.
    pub(super) fn follow(
        &mut self,
        container: &str,
        exit: Receiver<runtime::Result<i32>>,
        resizer: Option<Box<dyn runtime::Resizer>>,
        timeout: Option<Duration>,
    ) -> Ended {
        let mut exit_rx = exit;
        let mut exited: Option<runtime::Result<i32>> = None;
        let mut output_done = false;
        let mut output_lost: Option<String> = None;
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
                    Ok(Event::OutputLost(why)) => {
                        let error = format!("writing the command's output: {why}");
                        term::warn(&error);
                        output_lost = Some(error);
                    }
                    Ok(Event::CaptureFailed(why)) => {
                        term::warn(format_args!("capturing the output: {why}; logs.jsonl is incomplete, the output still goes on"));
                        self.logs_incomplete = Some(format!("capturing the output failed: {why}"));
                    }
                    Ok(event) => self.on_event(container, event, resizer.as_deref()),
                    Err(_) => break,
                },
                recv(timer) -> _ => {
                    timer = never();
                    let limit = timeout.map(time::format_duration).unwrap_or_default();
                    term::warn(format_args!("run {} timed out after {limit}; stopping it", self.name));
                    self.request_stop(container, StopReason::Timeout, None, self.stop_timeout);
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
                term::warn(e);
            }
        }

        let ended = match exited {
            Some(Ok(code)) => Ended::Exited(code),
            // The engine's init could not run the command (Podman's says so only once
            // the container has exited): 127 or 126, as a shell would say.
            Some(Err(e)) if e.kind == ErrorKind::CommandNotFound => Ended::CouldNotRun {
                code: 127,
                error: e.to_string(),
            },
            Some(Err(e)) if e.kind == ErrorKind::CommandNotExecutable => Ended::CouldNotRun {
                code: 126,
                error: e.to_string(),
            },
            Some(Err(e)) => self.exit_after_lost_wait(container, e),
            None => Ended::MoatFailed {
                error: "the run's event channel closed".into(),
                code: None,
            },
        };
        match (output_lost, ended) {
            // The command ran, but what it wrote did not reach moat's stdout: moat failed
            // at its job. The error was told when it happened.
            (Some(error), Ended::Exited(code)) => {
                self.error_told = true;
                Ended::MoatFailed {
                    error,
                    code: Some(code),
                }
            }
            (_, ended) => ended,
        }
    }

    /// An event that asks for a stop or a resize, or tells of one.
    fn on_event(&mut self, container: &str, event: Event, resizer: Option<&dyn runtime::Resizer>) {
        match event {
            Event::Signal(s) => self.on_signal(container, s),
            Event::Escape => {
                self.request_stop(container, StopReason::Escape, None, self.stop_timeout);
            }
            Event::StdoutClosed => {
                self.request_stop(container, StopReason::StdoutClosed, None, self.stop_timeout);
            }
            Event::WindowChanged => {
                if let Some(resizer) = resizer
                    && let Some((rows, cols)) = term::window_size(0)
                {
                    let _ = resizer.resize(rows, cols);
                }
            }
            Event::StopDone(Some(e)) => term::warn(e),
            Event::OutputDone(_)
            | Event::OutputLost(_)
            | Event::CaptureFailed(_)
            | Event::StdinClosed
            | Event::StopDone(None) => {}
        }
    }

    /// A signal for moat: the first one stops the run, forwarded to the command; a second
    /// SIGINT during that stop kills at once.
    fn on_signal(&mut self, container: &str, received: i32) {
        match &mut self.stopping {
            Some(stopping) if received == SIGINT && !stopping.killed => {
                stopping.killed = true;
                let rt = self.runtime.clone();
                let id = container.to_string();
                let tx = self.events_tx.clone();
                std::thread::spawn(move || {
                    let r = rt.kill(&id).err().map(|e| e.to_string());
                    let _ = tx.send(Event::StopDone(r));
                });
            }
            Some(_) => {}
            None => {
                let timeout = self.stop_timeout;
                self.request_stop(container, StopReason::Signal, Some(received), timeout);
            }
        }
    }

    /// Record the stop and set it going (in a helper thread: the call blocks for up to
    /// `timeout`). The signal sent is the one moat received, so the command sees what a
    /// local command would; a TTY session is hung up, as when its terminal closes.
    pub(super) fn request_stop(
        &mut self,
        container: &str,
        reason: StopReason,
        received: Option<i32>,
        timeout: Duration,
    ) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Stopping { killed: false });
        let name = received.and_then(signal::name);
        self.update(|r| {
            if r.stop_reason.is_none() {
                r.stop_reason = Some(reason);
                r.signal = name.map(str::to_string);
            }
            if !r.state.is_final() {
                r.state = State::Stopping;
            }
            true
        });
        if reason == StopReason::Signal {
            term::notice(format_args!("Stopping run {}...", self.id));
        }
        let send = if self.tty {
            Some(TTY_STOP_SIGNAL)
        } else {
            match reason {
                StopReason::Signal => name,
                StopReason::StdoutClosed => Some("SIGPIPE"),
                _ => None,
            }
        };
        let rt = self.runtime.clone();
        let id = container.to_string();
        let tx = self.events_tx.clone();
        std::thread::spawn(move || match stop::deliver(&*rt, &id, send, timeout) {
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

    /// The wait for the exit broke (the engine went away, say). Ask again; if the engine
    /// can still tell the exit code, that is the truth, else moat failed.
    fn exit_after_lost_wait(&self, container: &str, e: runtime::Error) -> Ended {
        let deadline = Instant::now() + LOST_ENGINE_GRACE;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.runtime.inspect(container) {
                Ok(runtime::ContainerState::Exited(Some(code))) => return Ended::Exited(code),
                Err(err)
                    if err.kind == ErrorKind::Unreachable && Instant::now() + pause < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                _ => {
                    return Ended::MoatFailed {
                        error: e.to_string(),
                        code: None,
                    };
                }
            }
        }
    }
}
