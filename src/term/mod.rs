//! The user's terminal and moat's own output: raw mode that is always undone, the window
//! size, the escape-key scanner, and every write moat makes to stdout and stderr. Nothing
//! here knows about containers.

pub mod escape;
mod output;
mod printable;
mod raw;

use std::os::fd::RawFd;

pub use output::{OutputStream, ProgressLine, notice, print, println, warn};
pub use printable::printable;
pub use raw::{RawGuard, install_panic_hook, restore_now};

/// The terminal's size as (rows, cols), or `None` when `fd` is not a terminal or reports
/// a size of zero (some terminals and PTYs do until they are sized).
pub fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; a failing ioctl leaves it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    if r != 0 || ws.ws_row == 0 || ws.ws_col == 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

/// The size to give a container's TTY: the terminal's, or the classic 24x80 when the
/// terminal does not say.
pub fn size_or_default(fd: RawFd) -> (u16, u16) {
    window_size(fd).unwrap_or((24, 80))
}
