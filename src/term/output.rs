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
