//! Run addressing (`cli::address::find`) over a small generated list of records and an
//! arbitrary query: never panics, and a match is the run the query names (its ID, its
//! name, or a run whose ID the query is a prefix of).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::cli::address::find;
use moat::store::{Record, State};

/// Few letters, so that IDs share prefixes and queries hit them.
const HEX: &[u8] = b"0ab1";
const NAMES: [&str; 4] = ["otter", "fox", "run_ab", "0ab"];
const TIMES: [&str; 3] = ["2026-01-02T00:00:00.000Z", "not a time", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8);
    let Some((spec, query)) = rest.split_at_checked(count * 3) else {
        return;
    };
    let runs: Vec<Record> = spec.chunks(3).map(record).collect();
    let query = String::from_utf8_lossy(query);
    match find(&runs, &query) {
        Ok(r) => {
            let prefix = if query.starts_with("run_") {
                query.to_string()
            } else {
                format!("run_{query}")
            };
            assert!(
                r.id == query || r.name == query || r.id.starts_with(&prefix),
                "{query:?} found {} ({})",
                r.id,
                r.name
            );
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            // A query that is some run's full ID always finds it.
            assert!(
                runs.iter().all(|r| r.id != query),
                "{query:?}: {}",
                e.message
            );
        }
    }
});

/// A record from three bytes: its ID's digits, its name and its creation time.
fn record(b: &[u8]) -> Record {
    let id: String = (0..12)
        .map(|i| char::from(HEX[usize::from(b[0] >> (i % 4 * 2)) & 3]))
        .collect();
    Record {
        state: State::Stopped,
        exit_code: Some(0),
        ..Record::new(
            format!("run_{id}"),
            NAMES[usize::from(b[1]) % NAMES.len()].into(),
            TIMES[usize::from(b[2]) % TIMES.len()].into(),
        )
    }
}
