//! The two byte pumps of a run: container output to the user's stdout/stderr and to
//! `logs.jsonl`, and the user's stdin to the container (through the escape scanner when
//! moat owns a terminal).

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::time::SystemTime;

use crossbeam_channel::Sender;

use super::Event;
use crate::runtime::{OutputSource, StdinSink};
use crate::store::logs::LogWriter;
use crate::stream::Stream;
use crate::term::OutputStream;
use crate::term::escape::{Action, Scanner};

const CHUNK: usize = 64 * 1024;

/// Copy the container's output to moat's stdout/stderr and to the log until it ends,
/// then send [`Event::OutputDone`]. A stdout that fails is told once
/// ([`Event::StdoutClosed`] or [`Event::OutputLost`]) and the capture goes on; a capture
/// that fails is told once ([`Event::CaptureFailed`]) and the output goes on.
pub fn spawn_output(
    mut output: Box<dyn OutputSource>,
    log: File,
    events: Sender<Event>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("output-pump".into())
        .spawn(move || {
            let result = pump_output(&mut *output, log, &events);
            let _ = events.send(Event::OutputDone(result.map_err(|e| e.to_string())));
        })?;
    Ok(())
}

fn pump_output(output: &mut dyn OutputSource, log: File, events: &Sender<Event>) -> io::Result<()> {
    let mut stdout = OutputStream::stdout();
    let mut stderr = OutputStream::stderr();
    let mut capture = Capture {
        log: Some(LogWriter::new(BufWriter::with_capacity(CHUNK, log))),
        events,
    };
    let mut buf = vec![0u8; CHUNK];
    while let Some((stream, n)) = output.next_chunk(&mut buf)? {
        let bytes = &buf[..n];
        match stream {
            Stream::Stderr => {
                if let Err(e) = stderr.write(bytes) {
                    log::debug!("writing the command's stderr: {e}");
                }
            }
            Stream::Stdout | Stream::Tty => {
                if let Err(e) = stdout.write(bytes) {
                    let event = if e.kind() == io::ErrorKind::BrokenPipe {
                        Event::StdoutClosed
                    } else {
                        Event::OutputLost(crate::io_reason::io_reason(&e))
                    };
                    let _ = events.send(event);
                }
            }
        }
        // Followers (`moat logs -f`) see output as it arrives: the log is flushed whenever
        // the pump has caught up with the stream, once per burst.
        capture.write(stream, bytes, !output.pending());
    }
    // Whatever ended the stream, the tail already received is kept.
    capture.finish();
    Ok(())
}

/// The capture to `logs.jsonl`. When it fails (a full disk), the run goes on without it:
/// the output still reaches the user, and the failure is told once.
struct Capture<'a> {
    log: Option<LogWriter<BufWriter<File>>>,
    events: &'a Sender<Event>,
}

impl Capture<'_> {
    fn write(&mut self, stream: Stream, bytes: &[u8], flush: bool) {
        let Some(log) = &mut self.log else { return };
        let written = log
            .write(stream, bytes, SystemTime::now())
            .and_then(|()| if flush { log.flush() } else { Ok(()) });
        if let Err(e) = written {
            self.failed(e);
        }
    }

    fn finish(&mut self) {
        if let Some(log) = &mut self.log
            && let Err(e) = log.finish(SystemTime::now())
        {
            self.failed(e);
        }
    }

    fn failed(&mut self, e: io::Error) {
        self.log = None;
        let _ = self
            .events
            .send(Event::CaptureFailed(crate::io_reason::io_reason(&e)));
    }
}

/// Forward moat's stdin to the container until it ends (then close the container's stdin)
/// or, with a terminal, until the escape key asks to stop.
pub fn spawn_stdin(
    mut sink: Box<dyn StdinSink>,
    scan_escape: bool,
    events: Sender<Event>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("stdin-pump".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = vec![0u8; CHUNK];
            let mut scanner = Scanner::new();
            let mut forward = Vec::with_capacity(CHUNK);
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::debug!("reading stdin: {e}");
                        break;
                    }
                };
                let bytes = if scan_escape {
                    forward.clear();
                    if scanner.feed(&buf[..n], &mut forward) == Some(Action::Stop) {
                        let _ = sink.write_all(&forward);
                        let _ = events.send(Event::Escape);
                        return;
                    }
                    &forward[..]
                } else {
                    &buf[..n]
                };
                if sink.write_all(bytes).is_err() {
                    // The container no longer reads its stdin; nothing more to do.
                    return;
                }
            }
            if scan_escape {
                forward.clear();
                scanner.flush(&mut forward);
                let _ = sink.write_all(&forward);
            }
            let _ = sink.close();
            let _ = events.send(Event::StdinClosed);
        })?;
    Ok(())
}
