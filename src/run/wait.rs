//! Waiting, from any process, for a run to end (`moat wait`).

use std::time::Duration;

use super::reconcile;
use crate::error::Result;
use crate::runtime::Connections;
use crate::store::{Record, Store};

/// How often to look at an orphaned run (its owner is gone, so there is no lock to wait
/// on, and the runtime is the only one who can tell when it ends).
const ORPHAN_POLL: Duration = Duration::from_millis(500);

/// Block until the run has ended; its final record.
pub fn until_final(store: &Store, conns: &mut Connections, record: Record) -> Result<Record> {
    let mut checked = reconcile::check(store, conns, record);
    while !checked.record.state.is_final() {
        if checked.orphaned {
            std::thread::sleep(ORPHAN_POLL);
        } else {
            store.wait_owner(&checked.record.id)?;
        }
        let now = store.read(&checked.record.id)?;
        checked = reconcile::check(store, conns, now);
    }
    Ok(checked.record)
}
