//! The JSON of `container inspect` and `container list --format json`: an array of
//! container snapshots in one of two shapes.
//!
//! - current (CLI 1.0, after apple/container#1611): `{"id", "configuration", "status":
//!   {"state": "running", ...}}`
//! - pre-1.0: `{"configuration", "status": "running", "networks": [...], ...}`, with the ID
//!   in `configuration.id` (some versions also have a top-level `id`).
//!
//! Labels live in `configuration.labels` in both. The CLI's states are `unknown`,
//! `stopped`, `running` and `stopping`; `created`, `exited` and `dead` are accepted too
//! (other front ends report them). There is no exit code in either shape.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::Value;

use crate::runtime::ContainerState;
use crate::time;

/// One container, as far as moat cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Empty when the snapshot names no ID.
    pub id: String,
    pub state: String,
    pub labels: HashMap<String, String>,
    /// When it was created: `configuration.creationDate` (current) or `created`
    /// (pre-1.0), when the snapshot has either.
    pub created: Option<SystemTime>,
}

/// Parse an array of snapshots (a lone object is taken as an array of one).
pub fn parse(bytes: &[u8]) -> Result<Vec<Snapshot>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(bytes);
        let shown: String = text.trim().chars().take(80).collect();
        format!("unexpected answer {shown:?}: {e}")
    })?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => return Err(format!("unexpected answer: {other} is not a JSON array")),
    };
    items.iter().map(snapshot).collect()
}

fn snapshot(item: &Value) -> Result<Snapshot, String> {
    if !item.is_object() {
        return Err(format!("unexpected answer: {item} is not a container"));
    }
    let config = &item["configuration"];
    let id = item["id"]
        .as_str()
        .or_else(|| config["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let state = match &item["status"] {
        // pre-1.0: a bare string
        Value::String(s) => s.clone(),
        // current: an object with `state`
        Value::Object(status) => match status.get("state").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => return Err(format!("container {id:?} has a status without a state")),
        },
        Value::Null => return Err(format!("container {id:?} has no status")),
        other => return Err(format!("container {id:?} has an unexpected status {other}")),
    };
    let labels_value = if config["labels"].is_object() {
        &config["labels"]
    } else {
        &item["labels"]
    };
    let labels = labels_value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let created = config["creationDate"]
        .as_str()
        .or_else(|| item["created"].as_str())
        .and_then(time::parse_rfc3339);
    Ok(Snapshot {
        id,
        state,
        labels,
        created,
    })
}

/// What a state name means for a run. Anything moat does not know is taken as still
/// running: an unknown state must never end a run.
pub fn container_state(state: &str) -> ContainerState {
    match state.to_ascii_lowercase().as_str() {
        "created" => ContainerState::Created,
        // The CLI knows no exit code: the foreground `container start` child was the only
        // place to learn it.
        "stopped" | "exited" | "dead" => ContainerState::Exited(None),
        // running, stopping, unknown, and whatever a later version adds
        _ => ContainerState::Running,
    }
}

/// The state of container `id` from `container inspect ID`'s output; an empty array is
/// [`ContainerState::Gone`] (the CLI before 1.0 answered a missing ID that way).
pub fn inspect_state(bytes: &[u8], id: &str) -> Result<ContainerState, String> {
    let snapshots = parse(bytes)?;
    let Some(first) = snapshots.first() else {
        return Ok(ContainerState::Gone);
    };
    let snapshot = snapshots.iter().find(|s| s.id == id).unwrap_or(first);
    Ok(container_state(&snapshot.state))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURRENT: &str = include_str!("../../../tests/fixtures/apple/inspect-current.json");
    const LEGACY: &str = include_str!("../../../tests/fixtures/apple/inspect-legacy.json");
    const LIST_CURRENT: &str = include_str!("../../../tests/fixtures/apple/list-current.json");
    const LIST_LEGACY: &str = include_str!("../../../tests/fixtures/apple/list-legacy.json");

    #[test]
    fn current_shape_reads_state_and_labels() {
        let snapshots = parse(CURRENT.as_bytes()).expect("parse");
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].id, "run_0123456789ab");
        assert_eq!(snapshots[0].state, "running");
        assert_eq!(snapshots[0].labels["moat.run_id"], "run_0123456789ab");
        assert_eq!(snapshots[0].labels["moat.managed"], "true");
        assert_eq!(
            inspect_state(CURRENT.as_bytes(), "run_0123456789ab"),
            Ok(ContainerState::Running)
        );
    }

    #[test]
    fn creation_dates_are_read_from_both_shapes() {
        let current = br#"[{"id":"a","status":{"state":"running"},
            "configuration":{"creationDate":"2026-01-02T03:04:05Z"}}]"#;
        let legacy = br#"[{"configuration":{"id":"a"},"status":"running",
            "created":"2026-01-02T03:04:05Z"}]"#;
        let want = time::parse_rfc3339("2026-01-02T03:04:05Z");
        assert!(want.is_some());
        for shape in [&current[..], &legacy[..]] {
            assert_eq!(parse(shape).expect("parse")[0].created, want);
        }
        let without = br#"[{"id":"a","status":"running"}]"#;
        assert_eq!(parse(without).expect("parse")[0].created, None);
    }

    #[test]
    fn legacy_shape_reads_state_and_labels() {
        let snapshots = parse(LEGACY.as_bytes()).expect("parse");
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].id, "run_0123456789ab");
        assert_eq!(snapshots[0].state, "stopped");
        assert_eq!(snapshots[0].labels["moat.home"], "/Users/me/.moat");
        assert_eq!(
            inspect_state(LEGACY.as_bytes(), "run_0123456789ab"),
            Ok(ContainerState::Exited(None))
        );
    }

    #[test]
    fn lists_in_both_shapes() {
        for (shape, text) in [("current", LIST_CURRENT), ("legacy", LIST_LEGACY)] {
            let snapshots = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{shape}: {e}"));
            let ids: Vec<&str> = snapshots.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(
                ids,
                ["run_0123456789ab", "run_ba9876543210", "buildkit"],
                "{shape}"
            );
            let states: Vec<&str> = snapshots.iter().map(|s| s.state.as_str()).collect();
            assert_eq!(states, ["running", "stopped", "running"], "{shape}");
            assert!(snapshots[2].labels.is_empty(), "{shape}");
            assert_eq!(
                snapshots[1].labels.get("moat.run_id").map(String::as_str),
                Some("run_ba9876543210"),
                "{shape}"
            );
        }
    }

    #[test]
    fn an_empty_array_is_gone() {
        assert_eq!(inspect_state(b"[]", "x"), Ok(ContainerState::Gone));
        assert_eq!(inspect_state(b" [ ]\n", "x"), Ok(ContainerState::Gone));
    }

    #[test]
    fn the_requested_id_wins_over_the_first() {
        let two = r#"[{"id":"a","status":{"state":"running"}},{"id":"b","status":"stopped"}]"#;
        assert_eq!(
            inspect_state(two.as_bytes(), "b"),
            Ok(ContainerState::Exited(None))
        );
        assert_eq!(
            inspect_state(two.as_bytes(), "a"),
            Ok(ContainerState::Running)
        );
        assert_eq!(
            inspect_state(two.as_bytes(), "zzz"),
            Ok(ContainerState::Running)
        );
    }

    #[test]
    fn states_map_to_what_a_run_needs() {
        assert_eq!(container_state("running"), ContainerState::Running);
        assert_eq!(container_state("stopping"), ContainerState::Running);
        assert_eq!(container_state("unknown"), ContainerState::Running);
        assert_eq!(container_state("something-new"), ContainerState::Running);
        assert_eq!(container_state("created"), ContainerState::Created);
        for ended in ["stopped", "exited", "dead", "Stopped"] {
            assert_eq!(
                container_state(ended),
                ContainerState::Exited(None),
                "{ended}"
            );
        }
    }

    #[test]
    fn missing_fields_are_tolerated_or_reported() {
        // No ID anywhere, no labels: still a state.
        let snapshots = parse(br#"[{"status":{"state":"running"}}]"#).expect("parse");
        assert_eq!(snapshots[0].id, "");
        assert!(snapshots[0].labels.is_empty());
        // Labels that are not strings are skipped.
        let snapshots =
            parse(br#"[{"id":"a","status":"running","configuration":{"labels":{"n":1,"s":"x"}}}]"#)
                .expect("parse");
        assert_eq!(snapshots[0].labels.len(), 1);
        // A lone object is an array of one.
        assert_eq!(
            inspect_state(br#"{"id":"a","status":"running"}"#, "a"),
            Ok(ContainerState::Running)
        );
        // Without a state there is nothing to go on: an error, never a guess.
        for bad in [
            &br#"[{"id":"a"}]"#[..],
            br#"[{"id":"a","status":{}}]"#,
            br#"[{"id":"a","status":{"state":null}}]"#,
            br#"[{"id":"a","status":42}]"#,
        ] {
            let e = inspect_state(bad, "a").expect_err(&String::from_utf8_lossy(bad));
            assert!(e.contains("\"a\""), "{e}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b""[..],
            b"not json",
            b"[{\"id\":",
            b"\"running\"",
            b"42",
            b"[1, 2]",
            b"null",
            b"Error: container not found: x",
        ] {
            assert!(
                inspect_state(bad, "x").is_err(),
                "{:?} parsed",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
