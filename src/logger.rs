//! A tiny `log` backend: debug lines on stderr when `MOAT_LOG=debug`, nothing otherwise.
//! Each line carries the milliseconds since moat started, which is how a run's phases
//! are timed (`MOAT_LOG=debug moat run -- true`).

use std::sync::OnceLock;
use std::time::Instant;

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

static STARTED: OnceLock<Instant> = OnceLock::new();

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // ureq's own debug lines only at trace: they drown moat's phases otherwise.
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("moat") || log::max_level() == LevelFilter::Trace)
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let ms = STARTED
                .get()
                .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
            // A closed stderr must not panic moat in the middle of a run.
            let line = format!("moat[{} {ms:.1}ms]: {}\n", record.level(), record.args());
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        }
    }

    fn flush(&self) {}
}

pub fn init() {
    STARTED.get_or_init(Instant::now);
    let level = match std::env::var("MOAT_LOG").as_deref() {
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("info") => LevelFilter::Info,
        _ => LevelFilter::Warn,
    };
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
