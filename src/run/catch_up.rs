//! The output a run wrote after its `moat run` died: nobody captured it, but the engine
//! kept it. Before an orphan's container is removed, what its log lacks is fetched from
//! the engine and appended to `logs.jsonl`, so nothing is lost; `moat logs -f` on an
//! orphan follows the same output through the engine.

use std::io::BufWriter;
use std::time::SystemTime;

use crate::runtime::{OutputSource, Runtime};
use crate::store::logs::LogWriter;
use crate::store::{Captured, Store};
use crate::stream::Stream;

const CHUNK: usize = 64 * 1024;

/// Append to run `id`'s log what `container` wrote beyond what the log holds. The error
/// says why the log stays incomplete.
pub fn catch_up(store: &Store, rt: &dyn Runtime, id: &str, container: &str) -> Result<(), String> {
    let skip = store.captured(id).map_err(|e| e.to_string())?;
    let output = rt.output(container, false).map_err(|e| e.to_string())?;
    let log = store.append_log(id).map_err(|e| e.to_string())?;
    let mut log = LogWriter::new(BufWriter::with_capacity(CHUNK, log));
    let mut appended = 0u64;
    let left = beyond(output, skip, |stream, bytes| {
        appended += bytes.len() as u64;
        log.write(stream, bytes, SystemTime::now())
    })?;
    log.finish(SystemTime::now()).map_err(|e| e.to_string())?;
    log::debug!("caught up {appended} bytes of run {id}'s output");
    if left != Captured::default() {
        // The engine kept less than moat captured: its log was rotated or cut.
        return Err("the engine kept only part of the output".into());
    }
    Ok(())
}

/// Pass to `sink` what `container` writes beyond what run `id`'s log holds, until the
/// container ends (`moat logs -f` on a run whose owner died).
pub fn follow(
    store: &Store,
    rt: &dyn Runtime,
    id: &str,
    container: &str,
    sink: impl FnMut(Stream, &[u8]) -> std::io::Result<()>,
) -> Result<(), String> {
    let skip = store.captured(id).map_err(|e| e.to_string())?;
    log::debug!("following run {id} through the engine after {skip:?}");
    let output = rt.output(container, true).map_err(|e| e.to_string())?;
    beyond(output, skip, sink).map(|_| ())
}

/// Read `output` to its end, passing to `sink` what comes after the first `skip` bytes of
/// each stream. Returns what was left to skip (nothing, when the engine kept it all).
fn beyond(
    mut output: Box<dyn OutputSource>,
    mut skip: Captured,
    mut sink: impl FnMut(Stream, &[u8]) -> std::io::Result<()>,
) -> Result<Captured, String> {
    let mut buf = vec![0u8; CHUNK];
    while let Some((stream, n)) = output.next_chunk(&mut buf).map_err(|e| e.to_string())? {
        let already = skip.of(stream);
        let known = (*already).min(n as u64) as usize;
        *already -= known as u64;
        if known < n {
            sink(stream, &buf[known..n]).map_err(|e| e.to_string())?;
        }
    }
    Ok(skip)
}
