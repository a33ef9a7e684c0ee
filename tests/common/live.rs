//! A program (usually `moat`) running in the background with both outputs captured, as
//! raw bytes readable while they grow ([`Spawned`]) or as lines on channels ([`Live`]):
//! for tests that act on a run at a given point of its output (signal it, stop it, kill
//! its engine) and then check everything it printed.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Everything a pipe delivers, gathered by a thread.
pub struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Capture {
    pub fn of(mut pipe: impl Read + Send + 'static) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&buf);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => shared
                        .lock()
                        .expect("capture lock")
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        Capture { buf, reader }
    }

    /// How many bytes have arrived so far.
    pub fn len(&self) -> usize {
        self.buf.lock().expect("capture lock").len()
    }

    /// A copy of what has arrived so far.
    pub fn snapshot(&self) -> Vec<u8> {
        self.buf.lock().expect("capture lock").clone()
    }

    /// The whole output, once the pipe has closed.
    pub fn finish(self) -> Vec<u8> {
        self.reader.join().expect("capture thread");
        Arc::try_unwrap(self.buf)
            .expect("capture owned")
            .into_inner()
            .expect("capture lock")
    }
}

/// A child that is stopped and reaped if the test drops it while it still runs, so a
/// failing test leaves no blocked moat behind: SIGTERM first, so that moat removes its
/// container, then SIGKILL if it has not exited after 15 s.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.0.id()).expect("pid fits")
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, not yet waited for, so the pid is still ours.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// SIGKILLs the watchdog this `moat run` started: moat alone is then killed as a
    /// cgroup kill would kill it, watchdog and all.
    pub fn kill_watchdog(&self) {
        let watchdog = watchdog_of(self.pid()).expect("moat run has started its watchdog");
        // SAFETY: kill(2) of a process this test's moat started; SIGKILL touches nothing here.
        unsafe { libc::kill(watchdog, libc::SIGKILL) };
    }

    /// SIGKILLs the watchdog this `moat run` started, then moat itself, and reaps moat:
    /// what a kill of everything the run's owner started (a cgroup kill) does. The run is
    /// left an orphan, for the paths that settle one.
    pub fn kill_with_watchdog(&mut self) {
        self.kill_watchdog();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Its exit status, once it exits before `deadline`; `None` (after killing and
    /// reaping it) when it has not.
    pub fn exit_by(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) on our own child, not yet waited for.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(None) = self.0.try_wait() {
            if Instant::now() > deadline {
                let _ = self.0.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.wait();
    }
}

/// The pid of the watchdog `moat run` (pid `owner`) started: its child running
/// `moat __watchdog`.
pub fn watchdog_of(owner: libc::pid_t) -> Option<libc::pid_t> {
    watchdogs()
        .into_iter()
        .find(|w| w.parent == owner)
        .map(|w| w.pid)
}

/// A `moat __watchdog RUN_ID` process.
pub struct Watchdog {
    pub pid: libc::pid_t,
    pub parent: libc::pid_t,
    pub run_id: String,
}

/// Every `moat __watchdog` process on the machine, read from /proc.
pub fn watchdogs() -> Vec<Watchdog> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.get(1) != Some(&&b"__watchdog"[..]) {
                return None;
            }
            // `pid (comm) state ppid ...`; comm may hold spaces, so read after its `)`.
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let run_id = String::from_utf8_lossy(args.get(2)?).into_owned();
            Some(Watchdog {
                pid,
                parent,
                run_id,
            })
        })
        .collect()
}

/// A running program with stdout and stderr captured.
pub struct Spawned {
    pub child: Reaped,
    pub out: Capture,
    pub err: Capture,
}

impl Spawned {
    /// Spawns `cmd` with both outputs piped (stdin as `cmd` says).
    pub fn spawn(mut cmd: Command) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn program");
        let out = Capture::of(child.stdout.take().expect("stdout piped"));
        let err = Capture::of(child.stderr.take().expect("stderr piped"));
        Spawned {
            child: Reaped(child),
            out,
            err,
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.pid()
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.child.signal(signal);
    }

    /// Waits (at most `timeout`, else panics) until stdout has at least `bytes` bytes.
    #[track_caller]
    pub fn wait_stdout_len(&self, bytes: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.out.len() < bytes {
            assert!(
                Instant::now() < deadline,
                "stdout reached {} of {bytes} bytes in {timeout:?}: {:?}; stderr {:?}",
                self.out.len(),
                String::from_utf8_lossy(&self.out.snapshot()),
                String::from_utf8_lossy(&self.err.snapshot())
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `deadline` for the program to exit (else kills it and panics);
    /// returns its status and everything it printed.
    pub fn wait(self, deadline: Instant) -> (ExitStatus, Vec<u8>, Vec<u8>) {
        let Spawned {
            mut child,
            out,
            err,
        } = self;
        let Some(status) = child.exit_by(deadline) else {
            panic!(
                "pid {} did not exit in time; stdout {:?}, stderr {:?}",
                child.0.id(),
                String::from_utf8_lossy(&out.snapshot()),
                String::from_utf8_lossy(&err.snapshot())
            );
        };
        (status, out.finish(), err.finish())
    }
}

/// How long [`Live::expect_stdout`] and [`Live::expect_stderr`] wait for a line.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// A `moat` process whose stdout and stderr lines arrive on channels as it runs. If the
/// test fails while it still runs, [`Reaped`] stops it, so moat removes its container.
pub struct Live {
    child: Reaped,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Live {
    pub fn spawn(mut cmd: Command) -> Live {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moat");
        let stdout = lines_of(child.stdout.take().expect("stdout piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr piped"));
        Live {
            child: Reaped(child),
            stdout,
            stderr,
        }
    }

    /// Waits for the next stdout line, which must be `line`.
    #[track_caller]
    pub fn expect_stdout(&self, line: &str) {
        let got = self
            .stdout
            .recv_timeout(LINE_WAIT)
            .unwrap_or_else(|e| panic!("no stdout line {line:?} from moat: {e}"));
        assert_eq!(got, line);
    }

    /// Waits for a stderr line containing `text`; returns it.
    #[track_caller]
    pub fn expect_stderr(&self, text: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let got = self
                .stderr
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no stderr line with {text:?} from moat: {e}"));
            if got.contains(text) {
                return got;
            }
        }
    }

    /// moat's stdin, for a `cmd` spawned with it piped.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.0.stdin.take().expect("stdin piped")
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.pid()
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.child.signal(signal);
    }

    pub fn running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }

    /// [`Live::wait_until`] `timeout` from now.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>, Vec<String>) {
        self.wait_until(Instant::now() + timeout)
    }

    /// Waits until `deadline` (else kills moat and panics) for moat to exit; returns its
    /// status and the rest of its stdout and stderr lines.
    pub fn wait_until(&mut self, deadline: Instant) -> (ExitStatus, Vec<String>, Vec<String>) {
        let Some(status) = self.child.exit_by(deadline) else {
            panic!("moat (pid {}) did not exit in time", self.child.0.id());
        };
        // The pipes close with moat; a moment more in case something it left holds them.
        let rest = Instant::now() + Duration::from_secs(5);
        (
            status,
            lines_until(&self.stdout, rest),
            lines_until(&self.stderr, rest),
        )
    }

    /// SIGKILLs moat and its watchdog (no cleanup, no final record, as a cgroup kill
    /// does) and reaps moat, leaving an orphan.
    pub fn kill_owner_and_watchdog(mut self) {
        self.child.kill_with_watchdog();
    }
}

/// The lines of `reader`, sent on a channel by a thread as they arrive.
fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The lines `rx` still delivers before its sender is gone or `deadline` passes.
fn lines_until(rx: &Receiver<String>, deadline: Instant) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    lines
}
