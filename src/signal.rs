//! The signals moat handles, by number and by name. moat forwards the signal it receives
//! to the command by name (the engines take names), and records it by name.

use libc::c_int;

/// Every signal whose default action ends a process and that a process can catch, with
/// its name. moat catches all of them so that none ends it before the run is recorded and
/// its container removed. Left out: SIGKILL and SIGSTOP (they cannot be caught), and the
/// ones that mean moat itself is broken (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS,
/// SIGTRAP), and SIGPIPE, which Rust ignores from the start so that a write to a closed
/// pipe fails with EPIPE where moat can handle it (a closed stdout ends a run with 141).
pub const TERMINATING: &[(c_int, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGIO, "SIGIO"),
];

/// The name of a signal moat handles (`SIGINT`), or `None`.
pub fn name(signal: c_int) -> Option<&'static str> {
    TERMINATING
        .iter()
        .find(|(n, _)| *n == signal)
        .map(|(_, name)| *name)
}

/// The number of a signal moat handles, by name.
pub fn number(name: &str) -> Option<c_int> {
    TERMINATING
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(number, _)| *number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for (n, s) in TERMINATING {
            assert_eq!(number(name(*n).unwrap()), Some(*n), "{s}");
        }
        assert_eq!(name(libc::SIGINT), Some("SIGINT"));
        assert_eq!(number("SIGKILL"), None);
    }
}
