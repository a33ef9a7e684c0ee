//! Run addressing shared by every command: a full run ID, an exact name (the newest run
//! with it), or a unique prefix of an ID (`run_` and at least one digit, or at least
//! [`MIN_BARE_PREFIX`] digits without it), in that order.

use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::store::id::ID_PREFIX;
use crate::store::{Entry, Record, Store};
use crate::time;

/// The fewest hex digits a prefix without `run_` must have to be taken as part of an ID.
/// Shorter hex words (`1`, `a`, `b9`) are far more often names or typos than IDs, and with
/// 16 or 256 possible values they match several runs once a store holds a few dozen: a
/// typo would silently land on another run. Four digits are 65 536 prefixes, so one still
/// names a single run in a store of hundreds; `run_b9` stays available for short ones.
pub const MIN_BARE_PREFIX: usize = 4;

/// Which of several runs with the same name a name picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The newest (reading commands: `logs`, `destroy`...).
    Newest,
    /// The newest live one, else the newest (`stop`, `wait`: an older run of the name
    /// may still be running while a newer one has ended).
    NewestLive,
}

/// Find the one run `query` names among `runs` (newest first); a name picks the newest.
pub fn find<'a>(runs: &'a [Record], query: &str) -> Result<&'a Record> {
    find_by(runs, query, Pick::Newest)
}

/// Find the one run `query` names among `runs` (newest first); a name picks by `pick`.
pub fn find_by<'a>(runs: &'a [Record], query: &str, pick: Pick) -> Result<&'a Record> {
    if query.is_empty() {
        return Err(Error::failed("run not found: (empty name)"));
    }
    if let Some(r) = runs.iter().find(|r| r.id == query) {
        return Ok(r);
    }
    // An exact name beats an ID prefix: `-n cafe` stays addressable among many runs.
    let mut named = runs.iter().filter(|r| r.name == query);
    if let Some(newest) = named.clone().next() {
        return Ok(match pick {
            Pick::Newest => newest,
            Pick::NewestLive => named.find(|r| !r.state.is_final()).unwrap_or(newest),
        });
    }
    let (digits, explicit) = match query.strip_prefix(ID_PREFIX) {
        Some(digits) => (digits, true),
        None => (query, false),
    };
    // A prefix must look like part of an ID; anything else (`../x`) is only a name.
    let hex = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(Error::failed(format!("run not found: {query}")));
    }
    let prefix = format!("{ID_PREFIX}{digits}");
    let by_prefix: Vec<&Record> = runs.iter().filter(|r| r.id.starts_with(&prefix)).collect();
    if !explicit && digits.len() < MIN_BARE_PREFIX {
        // Too short to be taken as an ID: say how to, when it would have matched.
        let hint = if by_prefix.is_empty() {
            String::new()
        } else {
            format!(
                " (no run has that name; an ID prefix needs {MIN_BARE_PREFIX} digits or the {ID_PREFIX} form: {prefix})"
            )
        };
        return Err(Error::failed(format!("run not found: {query}{hint}")));
    }
    match by_prefix.as_slice() {
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

/// Resolve `query` against the store; a name picks the newest run with it.
pub fn resolve(store: &Store, query: &str) -> Result<Record> {
    resolve_by(store, query, Pick::Newest)
}

/// Resolve `query` against the store; a name picks by `pick`.
pub fn resolve_by(store: &Store, query: &str, pick: Pick) -> Result<Record> {
    let mut runs = Vec::new();
    let mut corrupt = None;
    for entry in store.list()? {
        match entry {
            Entry::Run(r) => runs.push(r),
            Entry::Corrupt { dir, why } if dir == query => corrupt = Some(why),
            Entry::Corrupt { .. } => {}
        }
    }
    match (find_by(&runs, query, pick), corrupt) {
        (Ok(r), _) => Ok(r.clone()),
        // Naming a run whose record cannot be read deserves the reason, not "not found".
        (Err(_), Some(why)) => Err(Error::failed(format!(
            "run {query} is corrupt: {} (moat destroy {query} removes it)",
            crate::term::printable(&why)
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
            workspace: "/".into(),
            image: "i".into(),
            runtime: "docker".into(),
            state: State::Stopped,
            exit_code: Some(0),
            ..Record::new(id.into(), name.into(), created.into())
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

    #[test]
    fn an_exact_name_beats_an_id_prefix() {
        // Hex-looking names among IDs that start with them.
        let runs = vec![
            run("run_cafe00000001", "x", "2026-01-03T00:00:00.000Z"),
            run("run_aaaa00000001", "cafe", "2026-01-02T00:00:00.000Z"),
            run("run_a00000000001", "a", "2026-01-01T00:00:00.000Z"),
            run("run_a00000000002", "y", "2026-01-01T00:00:00.000Z"),
        ];
        assert_eq!(find(&runs, "cafe").unwrap().id, "run_aaaa00000001");
        assert_eq!(find(&runs, "a").unwrap().id, "run_a00000000001");
        assert_eq!(find(&runs, "run_caf").unwrap().id, "run_cafe00000001");
    }

    #[test]
    fn a_short_bare_prefix_is_not_an_id() {
        let runs = runs();
        for q in ["b", "bb", "bbb"] {
            let e = find(&runs, q).unwrap_err();
            assert!(
                e.message.starts_with(&format!("run not found: {q} (")),
                "{q}: {}",
                e.message
            );
            assert!(e.message.contains(&format!("run_{q}")), "{}", e.message);
        }
        assert_eq!(find(&runs, "run_b").unwrap().id, "run_bbbb00000001");
        assert_eq!(find(&runs, "bbbb").unwrap().id, "run_bbbb00000001");
        // Nothing to hint at: the plain message.
        assert_eq!(find(&runs, "c9").unwrap_err().message, "run not found: c9");
    }

    #[test]
    fn a_name_picks_the_newest_live_run_when_asked() {
        let mut runs = runs();
        runs[1].state = State::Running;
        assert_eq!(find(&runs, "otter").unwrap().id, "run_aaaa00000002");
        assert_eq!(
            find_by(&runs, "otter", Pick::NewestLive).unwrap().id,
            "run_aaaa00000001"
        );
        runs[1].state = State::Failed;
        assert_eq!(
            find_by(&runs, "otter", Pick::NewestLive).unwrap().id,
            "run_aaaa00000002"
        );
    }
}
