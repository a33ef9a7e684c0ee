//! Run addressing shared by every command: a full run ID, a unique prefix of one (with or
//! without `run_`), or an exact name (the newest run with it).

use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::store::id::ID_PREFIX;
use crate::store::{Entry, Record, Store};
use crate::time;

/// Find the one run `query` names among `runs` (newest first).
pub fn find<'a>(runs: &'a [Record], query: &str) -> Result<&'a Record> {
    if query.is_empty() {
        return Err(Error::failed("run not found: (empty name)"));
    }
    if let Some(r) = runs.iter().find(|r| r.id == query) {
        return Ok(r);
    }
    let by_name = runs.iter().find(|r| r.name == query);
    let prefix = if query.starts_with(ID_PREFIX) {
        query.to_string()
    } else {
        format!("{ID_PREFIX}{query}")
    };
    // A prefix must look like part of an ID; anything else (`../x`) is only a name.
    let by_prefix: Vec<&Record> = if prefix[ID_PREFIX.len()..]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        runs.iter().filter(|r| r.id.starts_with(&prefix)).collect()
    } else {
        Vec::new()
    };
    let mut candidates: Vec<&Record> = by_name.into_iter().collect();
    for r in by_prefix {
        if !candidates.iter().any(|c| c.id == r.id) {
            candidates.push(r);
        }
    }
    match candidates.as_slice() {
        [] => Err(Error::failed(format!("run not found: {query}"))),
        [one] => Ok(one),
        many => Err(Error::failed(ambiguous(query, many))),
    }
}

/// The error text for an ambiguous query: one line, then the candidates.
fn ambiguous(query: &str, candidates: &[&Record]) -> String {
    let now = SystemTime::now();
    let mut text = format!(
        "{query:?} matches {} runs; use more of the run ID:",
        candidates.len()
    );
    for r in candidates {
        let age = time::parse_rfc3339(&r.created_at)
            .map(|t| time::age(t, now))
            .unwrap_or_else(|| "?".into());
        text.push_str(&format!(
            "\n  {}  {}  {}  {age} ago",
            r.name,
            r.id,
            r.state.as_str()
        ));
    }
    text
}

/// Resolve `query` against the store.
pub fn resolve(store: &Store, query: &str) -> Result<Record> {
    let mut runs = Vec::new();
    let mut corrupt = None;
    for entry in store.list()? {
        match entry {
            Entry::Run(r) => runs.push(r),
            Entry::Corrupt { dir, why } if dir == query => corrupt = Some(why),
            Entry::Corrupt { .. } => {}
        }
    }
    match (find(&runs, query), corrupt) {
        (Ok(r), _) => Ok(r.clone()),
        // Naming a run whose record cannot be read deserves the reason, not "not found".
        (Err(_), Some(why)) => Err(Error::failed(format!(
            "run {query} is corrupt: {why} (moat destroy {query} removes it)"
        ))),
        (Err(e), None) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;

    fn run(id: &str, name: &str, created: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            workspace: "/".into(),
            image: "i".into(),
            command: vec![],
            runtime: "docker".into(),
            container_id: None,
            interactive: false,
            state: State::Stopped,
            exit_code: Some(0),
            moat_exit_code: None,
            outcome: None,
            error: None,
            stop_reason: None,
            signal: None,
            stop_timeout: None,
            logs_incomplete: None,
            timeout: None,
            deadline: None,
            created_at: created.into(),
            started_at: None,
            stopped_at: None,
            owner_pid: None,
            keep: false,
            env: vec![],
        }
    }

    fn runs() -> Vec<Record> {
        vec![
            run("run_aaaa00000002", "otter", "2026-01-02T00:00:00.000Z"),
            run("run_aaaa00000001", "otter", "2026-01-01T00:00:00.000Z"),
            run("run_bbbb00000001", "fox", "2025-01-01T00:00:00.000Z"),
        ]
    }

    #[test]
    fn full_id_prefix_and_name() {
        let runs = runs();
        assert_eq!(
            find(&runs, "run_aaaa00000001").unwrap().id,
            "run_aaaa00000001"
        );
        assert_eq!(find(&runs, "bbbb").unwrap().id, "run_bbbb00000001");
        assert_eq!(find(&runs, "run_bb").unwrap().id, "run_bbbb00000001");
        // The newest run with the name.
        assert_eq!(find(&runs, "otter").unwrap().id, "run_aaaa00000002");
    }

    #[test]
    fn ambiguous_prefix_lists_candidates() {
        let runs = runs();
        let e = find(&runs, "aaaa").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.message.contains("run_aaaa00000001"), "{}", e.message);
        assert!(e.message.contains("run_aaaa00000002"), "{}", e.message);
    }

    #[test]
    fn unknown_and_path_like_are_not_found() {
        let runs = runs();
        for q in ["zzz", "../x", "", "run_"] {
            let e = find(&runs, q).unwrap_err();
            assert!(
                e.message.starts_with("run not found") || q == "run_",
                "{q}: {}",
                e.message
            );
        }
    }
}
