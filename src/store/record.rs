//! A run's record, `metadata.json`. The keys are the `moat list --json` schema: snake_case,
//! stable, every key always present except `error`, `stop_reason` and the keys that only
//! some runs have (`signal`, `stop_timeout`, `timeout`, `deadline`, `copy_back`).

use serde::{Deserialize, Serialize};

pub use crate::outcome::StopReason;
use crate::outcome::{Ended, Outcome, OutcomeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Created,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    /// Whether the run has ended for good.
    pub fn is_final(self) -> bool {
        matches!(self, State::Stopped | State::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub workspace: String,
    /// How the workspace reached the container: `bind`, `copy` or `none` (runs recorded
    /// before there was a choice were bound).
    #[serde(default = "bind")]
    pub workspace_mode: String,
    /// What `--copy-back` did, once it has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_back: Option<CopyBack>,
    pub image: String,
    pub command: Vec<String>,
    pub runtime: String,
    /// Where the engine is (its URL, TLS files and why it was chosen; never a secret), so
    /// later commands reach the run on the same engine. Absent for Apple's runtime and for
    /// runs recorded before engines had endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<serde_json::Value>,
    pub container_id: Option<String>,
    pub interactive: bool,
    pub state: State,
    /// The command's own exit code (null while it runs, or when it never ran).
    pub exit_code: Option<i32>,
    /// What `moat run` exited with, or would have for a run another command settled
    /// (null until the run is final): [`Outcome::exit_code`].
    #[serde(default)]
    pub moat_exit_code: Option<i32>,
    /// Which row of SPEC §3 the run ended in (null until the run is final).
    #[serde(default)]
    pub outcome: Option<OutcomeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// The signal moat received and forwarded (`SIGINT`), when `stop_reason` is `signal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The grace period, in seconds, that the stop asked for (`moat stop -t`): whoever
    /// carries the stop out uses it, whatever state the run was in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// Why `logs.jsonl` lacks some of the output (a full disk, output written after
    /// `moat run` died that the runtime could not return); absent when it is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_incomplete: Option<String>,
    /// `--timeout`, as given (`90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// When `--timeout` runs out (RFC 3339 UTC): kept so that a run whose owner died still
    /// times out when any command settles it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub owner_pid: Option<u32>,
    pub keep: bool,
    /// Names of the `-e` variables; their values are never written down.
    #[serde(default)]
    pub env: Vec<String>,
    /// `open`, or `strict`: the container reached only `allowed_hosts`, through moat's
    /// proxy (runs recorded before there were policies were open).
    #[serde(default = "open")]
    pub network_policy: String,
    /// A strict run's `--allow-host` rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// The ports the engine published (`-p`, `-P`), as `HOST_IP:HOST_PORT->PORT/PROTO`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

fn bind() -> String {
    "bind".into()
}

fn open() -> String {
    "open".into()
}

/// The `copy_back` key: what `--copy-back` wrote to the host's workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyBack {
    /// Files and links written (added or changed by the run).
    pub written: u64,
    /// Paths changed both on the host and in the container: the host's version was kept.
    pub conflicts: Vec<String>,
    /// Paths not copied back for another reason, each followed by it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Why the copy-back did not finish (the container was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// Whether the run had a strict network policy: a proxy and a network of its own,
    /// removed with it.
    pub fn is_strict(&self) -> bool {
        self.network_policy == "strict"
    }

    /// A run's first record: created, nothing else known yet. Every key the record gains
    /// gets its starting value here, once.
    pub fn new(id: String, name: String, created_at: String) -> Record {
        Record {
            id,
            name,
            workspace: String::new(),
            workspace_mode: bind(),
            copy_back: None,
            image: String::new(),
            command: Vec::new(),
            runtime: String::new(),
            endpoint: None,
            container_id: None,
            interactive: false,
            state: State::Created,
            exit_code: None,
            moat_exit_code: None,
            outcome: None,
            error: None,
            stop_reason: None,
            signal: None,
            stop_timeout: None,
            logs_incomplete: None,
            timeout: None,
            deadline: None,
            created_at,
            started_at: None,
            stopped_at: None,
            owner_pid: None,
            keep: false,
            env: Vec::new(),
            network_policy: open(),
            allowed_hosts: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Finish the record with how the command ended: the outcome follows from that and
    /// from the stop that was asked for (SPEC §3), and decides the state, the error and
    /// `moat_exit_code`.
    pub fn finish(&mut self, ended: Ended, now: String) {
        let signal = self.signal.as_deref().and_then(crate::signal::number);
        let outcome = Outcome::decide(self.stop_reason, signal, &ended);
        self.exit_code = outcome.command_code();
        self.outcome = Some(outcome.kind());
        self.moat_exit_code = Some(outcome.exit_code());
        self.stopped_at = Some(now);
        self.state = if outcome.is_success() {
            State::Stopped
        } else {
            State::Failed
        };
        self.error = match (ended, outcome) {
            (Ended::MoatFailed { error, .. } | Ended::CouldNotRun { error, .. }, _) => Some(error),
            (_, Outcome::TimedOut { .. }) => Some(format!(
                "timeout after {}",
                self.timeout.as_deref().unwrap_or("its deadline")
            )),
            (_, Outcome::Exited(0) | Outcome::Stopped { .. }) => None,
            (_, Outcome::Exited(n)) => Some(format!("exit code {n}")),
            (Ended::Unknown, _) => Some("exit code unknown".into()),
            (_, _) => Some("the command never started".into()),
        };
    }

    /// A final record written before moat recorded its outcome gets it from the same
    /// function, as it is read, so every reader sees one answer.
    pub fn fill_outcome(&mut self) {
        if !self.state.is_final() || self.moat_exit_code.is_some() {
            return;
        }
        let ended = match (self.exit_code, &self.error) {
            (Some(code), _) => Ended::Exited(code),
            (None, Some(error)) if self.stop_reason.is_none() => Ended::MoatFailed {
                error: error.clone(),
                code: None,
            },
            (None, _) => Ended::Unknown,
        };
        let signal = self.signal.as_deref().and_then(crate::signal::number);
        let outcome = Outcome::decide(self.stop_reason, signal, &ended);
        self.outcome = Some(outcome.kind());
        self.moat_exit_code = Some(outcome.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            workspace: "/w".into(),
            image: "img".into(),
            command: vec!["true".into()],
            runtime: "docker".into(),
            state: State::Running,
            owner_pid: Some(1),
            ..Record::new(
                "run_0123456789ab".into(),
                "brave-otter".into(),
                "2026-01-01T00:00:00.000Z".into(),
            )
        }
    }

    #[test]
    fn json_has_every_stable_key_and_omits_absent_error() {
        let v: serde_json::Value = serde_json::to_value(record()).unwrap();
        for key in [
            "id",
            "name",
            "workspace",
            "workspace_mode",
            "image",
            "command",
            "runtime",
            "container_id",
            "interactive",
            "state",
            "exit_code",
            "created_at",
            "started_at",
            "stopped_at",
            "owner_pid",
            "keep",
            "moat_exit_code",
            "outcome",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v.get("error").is_none());
        assert!(v.get("stop_reason").is_none());
        assert!(v.get("copy_back").is_none());
        assert_eq!(v["state"], "running");
    }

    #[test]
    fn endings_map_to_states() {
        let mut r = record();
        r.finish(Ended::Exited(0), "t".into());
        assert_eq!((r.state, r.error.as_deref()), (State::Stopped, None));
        assert_eq!(r.moat_exit_code, Some(0));

        let mut r = record();
        r.finish(Ended::Exited(3), "t".into());
        assert_eq!(r.state, State::Failed);
        assert_eq!(r.error.as_deref(), Some("exit code 3"));
        assert_eq!(r.outcome, Some(OutcomeKind::Exited));

        let mut r = record();
        r.stop_reason = Some(StopReason::MoatStop);
        r.finish(Ended::Exited(137), "t".into());
        assert_eq!((r.state, r.exit_code), (State::Stopped, Some(137)));
        assert_eq!(r.moat_exit_code, Some(137));

        let mut r = record();
        r.stop_reason = Some(StopReason::Timeout);
        r.timeout = Some("1s".into());
        r.finish(Ended::Exited(143), "t".into());
        assert_eq!(r.state, State::Failed);
        assert_eq!(r.error.as_deref(), Some("timeout after 1s"));
        assert_eq!((r.exit_code, r.moat_exit_code), (Some(143), Some(124)));

        let mut r = record();
        r.stop_reason = Some(StopReason::Signal);
        r.signal = Some("SIGHUP".into());
        r.finish(Ended::NeverStarted, "t".into());
        assert_eq!((r.state, r.exit_code), (State::Stopped, None));
        assert_eq!(r.moat_exit_code, Some(129));

        let mut r = record();
        let error = "container disappeared".to_string();
        r.finish(Ended::MoatFailed { error, code: None }, "t".into());
        assert_eq!(r.state, State::Failed);
        assert_eq!(r.moat_exit_code, Some(125));
    }

    #[test]
    fn records_written_before_moat_exit_code_get_it_from_the_same_function() {
        let filled = |change: &dyn Fn(&mut Record)| {
            let mut r = record();
            r.state = State::Stopped;
            change(&mut r);
            r.fill_outcome();
            (r.outcome, r.moat_exit_code)
        };
        let timed_out = filled(&|r| {
            r.stop_reason = Some(StopReason::Timeout);
            r.exit_code = Some(143);
        });
        assert_eq!(timed_out, (Some(OutcomeKind::TimedOut), Some(124)));
        let escaped = filled(&|r| r.stop_reason = Some(StopReason::Escape));
        assert_eq!(escaped.1, Some(0));
        let lost = filled(&|r| r.error = Some("container disappeared".into()));
        assert_eq!(lost, (Some(OutcomeKind::MoatFailed), Some(125)));
        let live = filled(&|r| r.state = State::Running);
        assert_eq!(live, (None, None));
    }

    #[test]
    fn records_from_before_the_workspace_mode_were_bound() {
        let mut v = serde_json::to_value(record()).unwrap();
        v.as_object_mut().unwrap().remove("workspace_mode");
        let r: Record = serde_json::from_value(v).unwrap();
        assert_eq!(r.workspace_mode, "bind");
    }

    #[test]
    fn stop_reason_uses_the_spec_spelling() {
        let mut r = record();
        r.stop_reason = Some(StopReason::MoatStop);
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["stop_reason"], "moat stop");
    }
}
