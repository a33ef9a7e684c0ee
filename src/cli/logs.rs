//! `moat logs [-f] [-n N] [-t] [--stdout|--stderr] [RUN]`: the entry point for printing a
//! run's captured output.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::time::Duration;

use super::{address, at_most_one, parse_args, string_value};
use crate::error::{Error, Result};
use crate::run::{catch_up, reconcile};
use crate::runtime::Connections;
use crate::store::logs::{Follower, LogError, LogLine, LogReader};
use crate::store::{Record, Store};
use crate::stream::Stream;
use crate::term;
use crossbeam_channel::{bounded, select, tick};

const HELP: &str = "\
Print a run's captured output

Usage: moat logs [-f] [-n N] [-t] [--stdout | --stderr] [RUN]
       moat logs --network [-n N] [RUN]

RUN defaults to the newest run. Stdout lines go to stdout and stderr lines to
stderr, byte for byte as the command wrote them. Works without the engine.

Flags:
  -f, --follow      keep printing while the run is live; exit when it ends
  -n, --tail N      print only the last N lines
  -t, --timestamps  start each line with the time it was captured
      --stdout      only the stdout lines
      --stderr      only the stderr lines
      --network     the requests a strict run's proxy saw instead, one a line:
                    time, allowed or denied, method, host:port, status, bytes
                    up and down, duration (the raw records: network.jsonl in
                    the run's directory)
  -h, --help        show this help";

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

struct Options {
    tail: Option<usize>,
    timestamps: bool,
    only: Option<Stream>,
}

/// Entry point for `moat logs`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut follow = false;
    let mut network = false;
    let mut opts = Options {
        tail: None,
        timestamps: false,
        only: None,
    };
    let Some(values) = parse_args("logs", HELP, args, |key, parser| {
        match key {
            "-f" | "--follow" => follow = true,
            "-n" | "--tail" => {
                let v = string_value("logs", parser)?;
                opts.tail = Some(v.parse().map_err(|_| {
                    Error::usage(
                        "logs",
                        format!("invalid -n {v:?}: expected a number of lines (0 or more)"),
                    )
                })?);
            }
            "-t" | "--timestamps" => opts.timestamps = true,
            "--stdout" => opts.only = Some(Stream::Stdout),
            "--stderr" => opts.only = Some(Stream::Stderr),
            "--network" => network = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?
    else {
        return Ok(0);
    };
    let query = at_most_one("logs", values, "")?.map(|v| v.to_string_lossy().into_owned());
    let store = Store::open()?;
    let record = match &query {
        Some(q) => address::resolve(&store, q)?,
        None => store
            .runs()?
            .into_iter()
            .next()
            .ok_or_else(|| Error::failed("no runs yet"))?,
    };
    if network && (follow || opts.only.is_some() || opts.timestamps) {
        return Err(Error::usage(
            "logs",
            "--network takes only -n (its lines carry their own times)",
        ));
    }
    // A run whose owner died is settled first, so what follows is the truth.
    let mut conns = Connections::default();
    let checked = reconcile::check(&store, &mut conns, record);
    if network {
        return print_network(&store, &checked.record, opts.tail);
    }
    let mut printer = Printer::new();
    if follow && !checked.record.state.is_final() && !checked.orphaned {
        follow_run(&store, checked.record, &opts, &mut printer)?;
    } else {
        print_all(&store, &checked.record, &opts, &mut printer)?;
        if follow && checked.orphaned {
            follow_orphan(&store, &mut conns, &checked.record, &opts)?;
        }
    }
    Ok(0)
}

/// `--network`: the proxy's records of a strict run, one line each.
fn print_network(store: &Store, record: &Record, tail: Option<usize>) -> Result<i32> {
    if !record.is_strict() {
        return Err(Error::failed(format!(
            "run {} has no network log: its network policy was {}",
            record.id, record.network_policy
        )));
    }
    let path = store.network_log_path(&record.id);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::failed(format!(
                "reading {}: {}",
                path.display(),
                crate::io_reason::io_reason(&e)
            )));
        }
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[skip..] {
        super::say(network_line(line))?;
    }
    Ok(0)
}

/// One proxy record as a line: `TIME allowed CONNECT host:443 200 12/3456 B 15 ms`, and
/// the reason of a denial or failure; a line that is not a record, as it is.
fn network_line(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    let text = |key: &str| v[key].as_str().unwrap_or("?").to_string();
    let number = |key: &str| v[key].as_u64().map_or("?".into(), |n| n.to_string());
    let mut out = format!(
        "{} {} {} {}:{} {} {}/{} B {} ms",
        text("time"),
        text("decision"),
        text("method"),
        text("host"),
        number("port"),
        number("status"),
        number("bytes_up"),
        number("bytes_down"),
        number("duration_ms"),
    );
    if let Some(reason) = v["reason"].as_str() {
        out.push_str(" - ");
        out.push_str(reason);
    }
    out
}

/// A run whose `moat run` died captures nothing more: follow its output through the
/// engine until it ends, then settle it (which appends that output to its log).
fn follow_orphan(
    store: &Store,
    conns: &mut Connections,
    record: &Record,
    opts: &Options,
) -> Result<()> {
    let Some(container) = &record.container_id else {
        return Ok(());
    };
    term::warn(format_args!(
        "run {}'s moat run is gone; following its output through the engine",
        record.id
    ));
    let rt = conns.for_record(&record.runtime, record.endpoint.as_ref())?;
    let mut stdout = term::OutputStream::stdout();
    let mut stderr = term::OutputStream::stderr();
    let mut write_failed = None;
    let followed = catch_up::follow(store, &*rt, &record.id, container, |stream, bytes| {
        let written = match (stream, opts.only) {
            (Stream::Stderr, None | Some(Stream::Stderr)) => stderr.write(bytes),
            (Stream::Stdout | Stream::Tty, None | Some(Stream::Stdout)) => stdout.write(bytes),
            _ => Ok(()),
        };
        written.map_err(|e| {
            let kind = e.kind();
            write_failed = Some(e);
            io::Error::from(kind)
        })
    });
    if let Some(e) = write_failed {
        // The same end as every other failed write: quiet for a closed pipe.
        return Err(Error::output(e));
    }
    if let Err(why) = followed {
        term::warn(format_args!(
            "following run {} through the engine: {why}",
            record.id
        ));
    }
    let now = store.read(&record.id)?;
    reconcile::check(store, conns, now);
    Ok(())
}

fn open_log(store: &Store, record: &Record) -> Result<Option<File>> {
    let path = store.logs_path(&record.id);
    match File::open(&path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::failed(format!(
            "reading {}: {}",
            path.display(),
            crate::io_reason::io_reason(&e)
        ))),
    }
}

fn print_all(store: &Store, record: &Record, opts: &Options, out: &mut Printer) -> Result<()> {
    let Some(file) = open_log(store, record)? else {
        return Ok(());
    };
    let lines = LogReader::new(BufReader::new(file));
    match opts.tail {
        None => {
            for line in lines {
                out.item(line, opts)?;
            }
        }
        Some(n) => {
            let mut last: VecDeque<LogLine> = VecDeque::with_capacity(n.min(4096));
            for line in lines {
                match line {
                    Ok(l) if opts.only.is_none_or(|s| s == l.stream) => {
                        if n > 0 {
                            if last.len() == n {
                                last.pop_front();
                            }
                            last.push_back(l);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => report(&e, record),
                }
            }
            for l in last {
                out.line(&l, opts)?;
            }
        }
    }
    out.flush()
}

/// Print what exists, then what arrives, until the run has ended.
fn follow_run(store: &Store, record: Record, opts: &Options, out: &mut Printer) -> Result<()> {
    // The owner releases its lock once the log is complete and the record final.
    let (ended_tx, ended) = bounded(1);
    let waiter = store.clone();
    let id = record.id.clone();
    std::thread::spawn(move || {
        let _ = ended_tx.send(waiter.wait_owner(&id));
    });

    // The log file appears when the command starts.
    let file = loop {
        if let Some(f) = open_log(store, &record)? {
            break f;
        }
        select! {
            recv(ended) -> _ => return print_all(store, &record, opts, out),
            default(FOLLOW_POLL) => {}
        }
    };
    let mut follower = Follower::new(file);
    // -n applies to what exists when following starts.
    let mut backlog: Vec<std::result::Result<LogLine, LogError>> = Vec::new();
    loop {
        let batch = follower
            .poll()
            .map_err(|e| Error::failed(format!("reading logs: {e}")))?;
        if batch.is_empty() {
            break;
        }
        backlog.extend(batch);
    }
    if let Some(n) = opts.tail {
        let lines: Vec<LogLine> = backlog
            .into_iter()
            .filter_map(|l| l.ok())
            .filter(|l| opts.only.is_none_or(|s| s == l.stream))
            .collect();
        for l in &lines[lines.len().saturating_sub(n)..] {
            out.line(l, opts)?;
        }
    } else {
        for item in backlog {
            out.item(item, opts)?;
        }
    }
    out.flush()?;

    let ticker = tick(FOLLOW_POLL);
    loop {
        select! {
            recv(ended) -> _ => {
                let rest = follower.finish().map_err(|e| Error::failed(format!("reading logs: {e}")))?;
                for item in rest {
                    out.item(item, opts)?;
                }
                return out.flush();
            }
            recv(ticker) -> _ => {
                let batch = follower.poll().map_err(|e| Error::failed(format!("reading logs: {e}")))?;
                for item in batch {
                    out.item(item, opts)?;
                }
                out.flush()?;
            }
        }
    }
}

fn report(e: &LogError, record: &Record) {
    term::warn(format_args!("logs of run {}: {e}", record.id));
}

/// Writes lines to stdout or stderr by stream. A log can be large, so stdout is buffered;
/// it is flushed before anything goes to stderr, so that the two keep their order when
/// they share a terminal. A failed write is the command's error: `main` ends quietly when
/// the reader went away (`moat logs | head`) and says why otherwise.
struct Printer {
    out: BufWriter<io::StdoutLock<'static>>,
    err: io::StderrLock<'static>,
}

impl Printer {
    fn new() -> Printer {
        Printer {
            out: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            err: io::stderr().lock(),
        }
    }

    fn item(&mut self, item: std::result::Result<LogLine, LogError>, opts: &Options) -> Result<()> {
        match item {
            Ok(line) => self.line(&line, opts),
            Err(e) => {
                self.flush()?;
                term::warn(format_args!("logs: {e}"));
                Ok(())
            }
        }
    }

    fn line(&mut self, line: &LogLine, opts: &Options) -> Result<()> {
        if opts.only.is_some_and(|s| s != line.stream) {
            return Ok(());
        }
        let w: &mut dyn Write = match line.stream {
            Stream::Stderr => {
                self.flush()?;
                &mut self.err
            }
            Stream::Stdout | Stream::Tty => &mut self.out,
        };
        let mut r = Ok(());
        if opts.timestamps {
            r = w
                .write_all(line.ts.as_bytes())
                .and_then(|_| w.write_all(b" "));
        }
        r = r.and_then(|_| w.write_all(&line.data));
        if line.eol {
            r = r.and_then(|_| w.write_all(b"\n"));
        }
        r.map_err(Error::output)
    }

    /// Write out what stdout holds (at the end, after each batch a follower prints, and
    /// before a line goes to stderr).
    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::output)
    }
}
