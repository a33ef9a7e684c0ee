//! How a run ended, and the exit code of `moat run` that follows from it (SPEC §3). One
//! type and one function: `moat run`, `moat wait` and `moat list --json` all take the exit
//! code from [`Outcome::exit_code`], so they cannot disagree.

use serde::{Deserialize, Serialize};

/// The exit code when moat itself failed.
pub const MOAT_FAILED: i32 = 125;
/// `--timeout` elapsed (as GNU `timeout` exits).
pub const TIMED_OUT: i32 = 124;
/// The reader of moat's stdout went away: what SIGPIPE makes a local command exit with.
pub const STDOUT_CLOSED: i32 = 128 + libc::SIGPIPE;

/// Why a run was stopped before its command ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// moat received a signal (recorded beside it) and forwarded it.
    #[serde(rename = "signal")]
    Signal,
    /// The escape key (Ctrl-/ k) in an interactive session.
    #[serde(rename = "escape")]
    Escape,
    /// `moat stop` from any process.
    #[serde(rename = "moat stop")]
    MoatStop,
    #[serde(rename = "timeout")]
    Timeout,
    /// moat's stdout was closed (`moat run ... | head`).
    #[serde(rename = "stdout closed")]
    StdoutClosed,
}

/// What the runtime could tell about the command's end: the facts an [`Outcome`] is
/// decided from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The command exited with this code (128 + N when signal N ended it).
    Exited(i32),
    /// It ended, but the runtime cannot tell its code (Apple, once the owner is gone).
    Unknown,
    /// The command never started: the run was stopped, or its owner died, before.
    NeverStarted,
    /// The command could not be run: 127 not found, 126 not executable.
    CouldNotRun { code: i32, error: String },
    /// moat itself failed (engine lost, image missing, container disappeared, output
    /// lost); the command's code when it is known all the same.
    MoatFailed { error: String, code: Option<i32> },
}

/// How a run ended (SPEC §3's table, one row a variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command ended by itself with this code.
    Exited(i32),
    /// Stopped on purpose; `signal` is the one moat received (stop_reason `signal`),
    /// `code` the command's own code when it ran and the runtime could tell.
    Stopped {
        by: StopReason,
        signal: Option<i32>,
        code: Option<i32>,
    },
    /// `--timeout` elapsed and moat stopped the run.
    TimedOut { code: Option<i32> },
    /// The command could not be run (126 or 127).
    CouldNotRun(i32),
    /// moat itself failed.
    MoatFailed { code: Option<i32> },
}

/// The `outcome` key of a record: which row of the table the run ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Exited,
    Stopped,
    TimedOut,
    CouldNotRun,
    MoatFailed,
}

impl Outcome {
    /// Decide how the run ended from how the command ended and the stop that was asked
    /// for (if any), with the signal moat received for a stop of reason `signal`.
    pub fn decide(stop: Option<StopReason>, signal: Option<i32>, ended: &Ended) -> Outcome {
        let code = match ended {
            Ended::MoatFailed { code, .. } => return Outcome::MoatFailed { code: *code },
            Ended::CouldNotRun { code, .. } => return Outcome::CouldNotRun(*code),
            Ended::Exited(code) => Some(*code),
            Ended::Unknown | Ended::NeverStarted => None,
        };
        match (stop, code) {
            (Some(StopReason::Timeout), code) => Outcome::TimedOut { code },
            (Some(by), code) => Outcome::Stopped {
                by,
                signal: signal.filter(|_| by == StopReason::Signal),
                code,
            },
            (None, Some(code)) => Outcome::Exited(code),
            // Nobody stopped it and nobody can tell how it ended: moat lost the run.
            (None, None) => Outcome::MoatFailed { code: None },
        }
    }

    /// The exit code of `moat run` for this ending: the one function SPEC §3 is.
    pub fn exit_code(&self) -> i32 {
        match *self {
            Outcome::Exited(code) | Outcome::CouldNotRun(code) => code,
            Outcome::TimedOut { .. } => TIMED_OUT,
            Outcome::MoatFailed { .. } => MOAT_FAILED,
            Outcome::Stopped { by, signal, code } => match by {
                StopReason::Escape => 0,
                StopReason::StdoutClosed => STDOUT_CLOSED,
                // The command's own code: it may have handled the signal. One that never
                // started ends as the signal would have ended it.
                StopReason::Signal => code.unwrap_or(128 + signal.unwrap_or(libc::SIGTERM)),
                StopReason::MoatStop | StopReason::Timeout => code.unwrap_or(128 + libc::SIGTERM),
            },
        }
    }

    /// The command's own exit code, when it ran and it is known.
    pub fn command_code(&self) -> Option<i32> {
        match *self {
            Outcome::Exited(code) | Outcome::CouldNotRun(code) => Some(code),
            Outcome::Stopped { code, .. }
            | Outcome::TimedOut { code }
            | Outcome::MoatFailed { code } => code,
        }
    }

    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Exited(_) => OutcomeKind::Exited,
            Outcome::Stopped { .. } => OutcomeKind::Stopped,
            Outcome::TimedOut { .. } => OutcomeKind::TimedOut,
            Outcome::CouldNotRun(_) => OutcomeKind::CouldNotRun,
            Outcome::MoatFailed { .. } => OutcomeKind::MoatFailed,
        }
    }

    /// Whether the run counts as `stopped` (else `failed`).
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Exited(0) | Outcome::Stopped { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

    fn code(stop: Option<StopReason>, signal: Option<i32>, ended: Ended) -> i32 {
        Outcome::decide(stop, signal, &ended).exit_code()
    }

    #[test]
    fn the_table_of_spec_section_3() {
        use StopReason::*;
        assert_eq!(code(None, None, Ended::Exited(3)), 3);
        assert_eq!(code(None, None, Ended::Exited(0)), 0);
        assert_eq!(code(Some(MoatStop), None, Ended::Exited(137)), 137);
        assert_eq!(code(Some(MoatStop), None, Ended::NeverStarted), 143);
        // A forwarded signal: the command's own code, handled or not.
        assert_eq!(code(Some(Signal), Some(SIGINT), Ended::Exited(130)), 130);
        assert_eq!(code(Some(Signal), Some(SIGINT), Ended::Exited(7)), 7);
        assert_eq!(code(Some(Signal), Some(SIGHUP), Ended::NeverStarted), 129);
        assert_eq!(code(Some(Signal), Some(SIGQUIT), Ended::NeverStarted), 131);
        assert_eq!(code(Some(Signal), Some(SIGTERM), Ended::Unknown), 143);
        assert_eq!(code(Some(Escape), None, Ended::Exited(129)), 0);
        assert_eq!(code(Some(StdoutClosed), None, Ended::Exited(0)), 141);
        assert_eq!(code(Some(Timeout), None, Ended::Exited(143)), 124);
        let not_found = Ended::CouldNotRun {
            code: 127,
            error: "x".into(),
        };
        assert_eq!(code(None, None, not_found), 127);
        let lost = Ended::MoatFailed {
            error: "engine lost".into(),
            code: None,
        };
        assert_eq!(code(Some(MoatStop), None, lost), 125);
        assert_eq!(code(None, None, Ended::Unknown), 125);
    }

    #[test]
    fn only_a_signal_stop_keeps_its_signal() {
        let o = Outcome::decide(
            Some(StopReason::MoatStop),
            Some(SIGINT),
            &Ended::NeverStarted,
        );
        assert_eq!(o.exit_code(), 143);
    }
}
