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
/// ([`Event::StdoutClosed`] or [`Event::OutputLost`]); the capture goes on regardless.
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
    let mut log = LogWriter::new(BufWriter::with_capacity(CHUNK, log));
    let mut buf = vec![0u8; CHUNK];
    let result = loop {
        match output.next_chunk(&mut buf) {
            Ok(Some((stream, n))) => {
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
                log.write(stream, bytes, SystemTime::now())?;
                // Followers (`moat logs -f`) see output as it arrives: the log is flushed
                // whenever the pump has caught up with the stream, once per burst.
                if !output.pending() {
                    log.flush()?;
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // Whatever ended the stream, the tail already received is kept.
    log.finish(SystemTime::now())?;
    result
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
