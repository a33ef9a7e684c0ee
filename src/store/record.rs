//! A run's record, `metadata.json`. The keys are the `moat list --json` schema: snake_case,
//! stable, every key always present except `error` and `stop_reason`.

use serde::{Deserialize, Serialize};

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

/// Why a run was stopped before its command ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    #[serde(rename = "signal")]
    Signal,
    #[serde(rename = "escape")]
    Escape,
    #[serde(rename = "moat stop")]
    MoatStop,
    #[serde(rename = "timeout")]
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub image: String,
    pub command: Vec<String>,
    pub runtime: String,
    pub container_id: Option<String>,
    pub interactive: bool,
    pub state: State,
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub owner_pid: Option<u32>,
    pub keep: bool,
    /// Names of the `-e` variables; their values are never written down.
    #[serde(default)]
    pub env: Vec<String>,
}

impl Record {
    /// Finish the record: the final state follows from how it ended.
    ///
    /// A run stopped on purpose (`moat stop`, a signal to moat, the escape key) is `stopped`
    /// whatever code the stop produced; a timeout is `failed`; otherwise the exit code
    /// decides.
    pub fn finish(&mut self, exit_code: Option<i32>, error: Option<String>, now: String) {
        self.exit_code = exit_code;
        self.stopped_at = Some(now);
        let (state, error) = match (error, self.stop_reason) {
            (Some(e), _) => (State::Failed, Some(e)),
            (None, Some(StopReason::Timeout)) => (State::Failed, self.error.take()),
            (None, Some(_)) => (State::Stopped, None),
            (None, None) => match exit_code {
                Some(0) => (State::Stopped, None),
                Some(n) => (State::Failed, Some(format!("exit code {n}"))),
                None => (State::Failed, Some("exit code unknown".to_string())),
            },
        };
        self.state = state;
        self.error = error;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: "run_0123456789ab".into(),
            name: "brave-otter".into(),
            workspace: "/w".into(),
            image: "img".into(),
            command: vec!["true".into()],
            runtime: "docker".into(),
            container_id: None,
            interactive: false,
            state: State::Running,
            exit_code: None,
            error: None,
            stop_reason: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            started_at: None,
            stopped_at: None,
            owner_pid: Some(1),
            keep: false,
            env: vec![],
        }
    }

    #[test]
    fn json_has_every_stable_key_and_omits_absent_error() {
        let v: serde_json::Value = serde_json::to_value(record()).unwrap();
        for key in [
            "id",
            "name",
            "workspace",
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
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v.get("error").is_none());
        assert!(v.get("stop_reason").is_none());
        assert_eq!(v["state"], "running");
    }

    #[test]
    fn endings_map_to_states() {
        let mut r = record();
        r.finish(Some(0), None, "t".into());
        assert_eq!((r.state, r.error.as_deref()), (State::Stopped, None));

        let mut r = record();
        r.finish(Some(3), None, "t".into());
        assert_eq!(r.state, State::Failed);
        assert_eq!(r.error.as_deref(), Some("exit code 3"));

        let mut r = record();
        r.stop_reason = Some(StopReason::MoatStop);
        r.finish(Some(137), None, "t".into());
        assert_eq!((r.state, r.exit_code), (State::Stopped, Some(137)));

        let mut r = record();
        r.stop_reason = Some(StopReason::Timeout);
        r.error = Some("timeout after 1s".into());
        r.finish(Some(143), None, "t".into());
        assert_eq!(r.state, State::Failed);
        assert_eq!(r.error.as_deref(), Some("timeout after 1s"));

        let mut r = record();
        r.finish(None, Some("container disappeared".into()), "t".into());
        assert_eq!(r.state, State::Failed);
    }

    #[test]
    fn stop_reason_uses_the_spec_spelling() {
        let mut r = record();
        r.stop_reason = Some(StopReason::MoatStop);
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["stop_reason"], "moat stop");
    }
}
