//! The readers of what moat keeps on disk, on arbitrary bytes: metadata.json and
//! logs.jsonl (one record, a whole file, and a follower reading it in pieces). A corrupt
//! or torn file must be an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::store::Record;
use moat::store::logs::{Follower, LogReader, parse_record};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Record>(data);
    let _ = parse_record(data);
    for line in LogReader::new(data) {
        if let Ok(line) = line {
            assert!(line.data.len() <= data.len() * 4 / 3 + 4);
        }
    }
    let mut follower = Follower::new(data);
    while let Ok(batch) = follower.poll() {
        if batch.is_empty() {
            break;
        }
    }
    let _ = follower.finish();
});
