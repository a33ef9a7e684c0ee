//! Raw mode for the user's terminal, restored on every way out: the guard's `Drop` on
//! normal ends and errors, a panic hook for panics (which under `panic = "abort"` skip
//! `Drop`), and [`restore_now`] for the signal path.

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;

use termios::{TCSANOW, Termios, cfmakeraw, tcsetattr};

/// The settings to restore, shared with the panic hook and the signal path.
static SAVED: Mutex<Option<(RawFd, Termios)>> = Mutex::new(None);

/// Puts a terminal in raw mode until dropped.
pub struct RawGuard {
    _private: (),
}

impl RawGuard {
    pub fn enter(fd: RawFd) -> io::Result<RawGuard> {
        let original = Termios::from_fd(fd)?;
        let mut raw = original;
        cfmakeraw(&mut raw);
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((fd, original));
        tcsetattr(fd, TCSANOW, &raw)?;
        super::output::set_raw(true);
        Ok(RawGuard { _private: () })
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        restore_now();
    }
}

/// Restore the terminal if moat changed it. Safe to call any number of times.
pub fn restore_now() {
    let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((fd, original)) = saved {
        let _ = tcsetattr(fd, TCSANOW, &original);
        super::output::set_raw(false);
    }
}

/// Restore the terminal before a panic message is printed.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_now();
        previous(info);
    }));
}
