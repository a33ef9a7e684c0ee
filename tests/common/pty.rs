//! A small pseudo-terminal driver for the tests: run a program with a PTY as its
//! controlling terminal (stdin, stdout and stderr), type into it, wait for what it prints,
//! resize it, read its terminal settings, and wait for its exit.
//!
//! Linux only (`ptsname_r`, `TIOCSCTTY`), through `libc`; no external process.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Everything the program has written to the terminal so far.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    /// The master read EOF/EIO: every slave fd is closed (the program and its
    /// children have exited).
    closed: bool,
}

type Shared = Arc<(Mutex<Screen>, Condvar)>;

/// One program running on its own pseudo-terminal.
pub struct Pty {
    master: File,
    pid: libc::pid_t,
    screen: Shared,
    /// Where the next [`Pty::expect`] starts looking.
    cursor: usize,
    exit: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    /// The terminal's settings just before the program started.
    before: Settings,
}

/// The terminal settings of a PTY (what `stty -g` shows), compared field by field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub iflag: libc::tcflag_t,
    pub oflag: libc::tcflag_t,
    pub cflag: libc::tcflag_t,
    pub lflag: libc::tcflag_t,
    pub cc: [libc::cc_t; libc::NCCS],
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:x}:{:x}:{:x}:{:x}",
            self.iflag, self.oflag, self.cflag, self.lflag
        )?;
        for c in &self.cc {
            write!(f, ":{c:x}")?;
        }
        Ok(())
    }
}

fn cvt(r: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// Opens a new PTY pair, both ends close-on-exec (so no other test's child inherits
/// them), the slave without becoming anyone's controlling terminal.
fn open_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain libc calls on fds this function owns; ptsname_r writes into `name`.
    unsafe {
        let master = cvt(
            libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC),
            "posix_openpt",
        )?;
        let master = OwnedFd::from_raw_fd(master);
        cvt(libc::grantpt(master.as_raw_fd()), "grantpt")?;
        cvt(libc::unlockpt(master.as_raw_fd()), "unlockpt")?;
        let mut name = [0 as libc::c_char; 128];
        let r = libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len());
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
        let slave = cvt(
            libc::open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ),
            &format!("open {:?}", CStr::from_ptr(name.as_ptr())),
        )?;
        Ok((master, OwnedFd::from_raw_fd(slave)))
    }
}

fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    cvt(r, "TIOCSWINSZ").expect("set the PTY size");
}

/// The settings of the terminal whose master is `fd` (on Linux, `tcgetattr` on the master
/// reports the slave's termios).
fn settings(fd: RawFd) -> Settings {
    // SAFETY: tcgetattr fills a termios we own.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::tcgetattr(fd, &mut t) };
    cvt(r, "tcgetattr").expect("read the PTY settings");
    Settings {
        iflag: t.c_iflag,
        oflag: t.c_oflag,
        cflag: t.c_cflag,
        lflag: t.c_lflag,
        cc: t.c_cc,
    }
}

/// Shows bytes as text with control characters and non-ASCII bytes escaped.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

impl Pty {
    /// Starts `cmd` with a new PTY of `rows` x `cols` as its controlling terminal and its
    /// stdin, stdout and stderr (in a new session).
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        let (master, slave) = open_pair().expect("open a PTY");
        set_size(master.as_raw_fd(), rows, cols);
        let before = settings(master.as_raw_fd());
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the PTY slave"));
        cmd.stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn the program on the PTY");
        // Only the child holds the slave now: the master reads EIO once it is gone.
        drop(cmd);
        drop(slave);
        let pid = child.id() as libc::pid_t;

        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait().expect("wait for the program");
            let _ = exit_tx.send(status);
        });

        let screen: Shared = Arc::default();
        let mut reader = File::from(master.try_clone().expect("dup the PTY master"));
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: the last slave fd was closed.
                    Err(_) => 0,
                };
                let (lock, cond) = &*shared;
                let mut screen = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    screen.closed = true;
                } else {
                    screen.bytes.extend_from_slice(&buf[..n]);
                }
                cond.notify_all();
                if n == 0 {
                    return;
                }
            }
        });

        Pty {
            master: File::from(master),
            pid,
            screen,
            cursor: 0,
            exit,
            status: None,
            before,
        }
    }

    /// The program's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Everything written to the terminal so far.
    pub fn screen(&self) -> Vec<u8> {
        self.screen
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes
            .clone()
    }

    /// Waits until the output after the last match contains `pattern`, then moves past it
    /// and returns the output up to and including the match. Panics (showing the screen) after `timeout` or when the terminal closes first.
    #[track_caller]
    pub fn expect(&mut self, pattern: impl AsRef<[u8]>, timeout: Duration) -> Vec<u8> {
        let pattern = pattern.as_ref();
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.screen;
        let mut screen = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let tail = &screen.bytes[self.cursor..];
            if let Some(at) = tail.windows(pattern.len()).position(|w| w == pattern) {
                let seen = tail[..at + pattern.len()].to_vec();
                self.cursor += seen.len();
                return seen;
            }
            let now = Instant::now();
            if screen.closed || now >= deadline {
                let (closed, tail) = (screen.closed, show(tail));
                drop(screen);
                panic!(
                    "{} waiting for {:?}; screen after the last match: {:?}",
                    if closed {
                        "terminal closed"
                    } else {
                        "timed out"
                    },
                    show(pattern),
                    tail,
                );
            }
            screen = cond
                .wait_timeout(screen, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Types `bytes` into the terminal.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.master
            .write_all(bytes.as_ref())
            .expect("write to the PTY");
    }

    /// Changes the terminal's size; the kernel sends SIGWINCH to its foreground process
    /// group.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        set_size(self.master.as_raw_fd(), rows, cols);
    }

    /// Sends `signal` to the program.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill with our own child's pid.
        let r = unsafe { libc::kill(self.pid, signal) };
        cvt(r, "kill").expect("signal the program");
    }

    /// The terminal's current settings.
    pub fn stty_g(&self) -> Settings {
        settings(self.master.as_raw_fd())
    }

    /// The terminal's settings just before the program started.
    pub fn settings_before(&self) -> Settings {
        self.before
    }

    /// Waits up to `timeout` for the program to exit and for the terminal to close (so the
    /// screen holds everything it wrote). Kills it and panics on a timeout.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let status = match self.exit.recv_timeout(timeout) {
            Ok(status) => status,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                self.kill();
                panic!(
                    "the program did not exit within {timeout:?}; screen: {:?}",
                    show(&self.screen())
                );
            }
        };
        self.status = Some(status);
        // The output the program wrote just before its exit may still be in the PTY.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (lock, cond) = &*self.screen;
        let mut screen = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !screen.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            screen = cond
                .wait_timeout(screen, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        status
    }

    /// Like [`Pty::wait`], but returns `None` instead of panicking on a timeout (and does
    /// not kill the program).
    pub fn try_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.exit.recv_timeout(timeout).ok();
        }
        self.status
    }

    /// Asks the program to end (SIGTERM), then kills it.
    fn kill(&mut self) {
        for (signal, grace) in [(libc::SIGTERM, 3), (libc::SIGKILL, 5)] {
            // SAFETY: kill with our own child's pid; the waiter thread reaps it.
            unsafe { libc::kill(self.pid, signal) };
            if let Ok(status) = self.exit.recv_timeout(Duration::from_secs(grace)) {
                self.status = Some(status);
                return;
            }
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.status.is_none() && self.exit.try_recv().is_err() {
            self.kill();
        }
    }
}

/// A readable description of an exit status (`code 7`, `signal 9`).
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => format!("{status:?}"),
    }
}
