//! moat's own writes to stdout and stderr. Every command prints through here, so a closed
//! pipe is handled in one place: `moat list | head` ends quietly (ripgrep's rule), any
//! other write error (a full disk) becomes the command's error, and nothing panics the
//! way `println!` does.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set while moat owns the terminal in raw mode: its lines then need a carriage return.
static RAW: AtomicBool = AtomicBool::new(false);

pub(super) fn set_raw(raw: bool) {
    RAW.store(raw, Ordering::SeqCst);
}

/// The end of a line on stderr: `\r\n` while the terminal is raw.
fn newline() -> &'static str {
    if RAW.load(Ordering::SeqCst) {
        "\r\n"
    } else {
        "\n"
    }
}

/// Write `text` to stdout as it is, flushed. The error (a closed pipe, a full disk) is
/// the caller's to return; `main` turns it into a quiet end or one line.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Write `line` and a newline to stdout; see [`print`].
pub fn println(line: impl fmt::Display) -> io::Result<()> {
    print(&format!("{line}\n"))
}

/// One of moat's own notices on stderr (`Started ...`, `Stopping run ...`), a line of its
/// own. A stderr nobody reads is no reason to fail the run, so errors are dropped.
pub fn notice(line: impl fmt::Display) {
    let text = format!("{line}{}", newline());
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// A warning or an error that does not end the command: `moat: <what>` on stderr. The
/// only place besides `main` that writes the `moat:` prefix.
pub fn warn(what: impl fmt::Display) {
    notice(format_args!("moat: {what}"));
}

/// moat's stdout or stderr carrying a command's output: written without Rust's buffering
/// so output is live and a large chunk costs one write. After a failed write the stream
/// takes no more (the run decides what the failure means: a closed stdout ends it).
pub struct OutputStream {
    file: std::mem::ManuallyDrop<std::fs::File>,
    failed: bool,
}

impl OutputStream {
    pub fn stdout() -> OutputStream {
        OutputStream::from_fd(1)
    }

    pub fn stderr() -> OutputStream {
        OutputStream::from_fd(2)
    }

    fn from_fd(fd: i32) -> OutputStream {
        use std::os::fd::FromRawFd;
        // SAFETY: fds 1 and 2 are open for the life of the process; ManuallyDrop keeps
        // this File from closing them.
        OutputStream {
            file: std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) }),
            failed: false,
        }
    }

    /// Write all of `bytes`. The first failure is returned; later writes are skipped and
    /// return `Ok`, so the caller hears of it once.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        self.file
            .write_all(bytes)
            .inspect_err(|_| self.failed = true)
    }
}

/// A progress line on stderr (an image pull's), drawn over itself and ended with its
/// newline once, however the work it follows ended. Clones draw the same line, so the
/// thread doing the work draws and the thread that waits for it ends it.
#[derive(Clone, Default)]
pub struct ProgressLine {
    drawn: std::sync::Arc<AtomicBool>,
}

impl ProgressLine {
    pub fn new() -> ProgressLine {
        ProgressLine::default()
    }

    /// Replace the line with `text`.
    pub fn draw(&self, text: &str) {
        self.drawn.store(true, Ordering::SeqCst);
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
    }

    /// End the line, so that what follows (an error, the command's output) starts a line
    /// of its own.
    pub fn end(&self) {
        if self.drawn.swap(false, Ordering::SeqCst) {
            let _ = io::stderr().lock().write_all(newline().as_bytes());
        }
    }
}
