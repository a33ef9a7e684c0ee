//! The two byte pumps of a run: container output to the user's stdout/stderr and to
//! `logs.jsonl`, and the user's stdin to the container (through the escape scanner when
//! moat owns a terminal).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::time::SystemTime;

use crossbeam_channel::Sender;

use super::Event;
use crate::runtime::{OutputSource, StdinSink};
use crate::store::logs::LogWriter;
use crate::stream::Stream;
use crate::term::escape::{Action, Scanner};

const CHUNK: usize = 64 * 1024;

/// moat's own stdout or stderr, written without Rust's buffering so output is live and
/// large outputs cost one write per chunk. A broken pipe (`moat run ... | head`) stops the
/// writes to that stream but not the capture.
struct Terminal {
    file: ManuallyDrop<File>,
    broken: bool,
}

impl Terminal {
    fn new(fd: i32) -> Terminal {
        // SAFETY: fds 1 and 2 are open for the life of the process; ManuallyDrop keeps
        // this File from closing them.
        Terminal {
            file: ManuallyDrop::new(unsafe { File::from_raw_fd(fd) }),
            broken: false,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        if let Err(e) = self.file.write_all(bytes) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                log::debug!("writing output: {e}");
            }
            self.broken = true;
        }
    }
}

/// Copy the container's output to moat's stdout/stderr and to the log until it ends,
/// then send [`Event::OutputDone`].
pub fn spawn_output(
    mut output: Box<dyn OutputSource>,
    log: File,
    events: Sender<Event>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("output-pump".into())
        .spawn(move || {
            let result = pump_output(&mut *output, log);
            let _ = events.send(Event::OutputDone(result.map_err(|e| e.to_string())));
        })?;
    Ok(())
}

fn pump_output(output: &mut dyn OutputSource, log: File) -> io::Result<()> {
    let mut stdout = Terminal::new(1);
    let mut stderr = Terminal::new(2);
    let mut log = LogWriter::new(BufWriter::with_capacity(CHUNK, log));
    let mut buf = vec![0u8; CHUNK];
    let result = loop {
        match output.next_chunk(&mut buf) {
            Ok(Some((stream, n))) => {
                let bytes = &buf[..n];
                match stream {
                    Stream::Stderr => stderr.write(bytes),
                    Stream::Stdout | Stream::Tty => stdout.write(bytes),
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
