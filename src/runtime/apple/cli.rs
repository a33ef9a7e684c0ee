//! Spawning Apple's `container` CLI. The CLI is known to hang (a stuck XPC call blocks it
//! forever), so every control call has a deadline: the child runs in its own process group,
//! its stdout and stderr are read with `poll` until the deadline, and on expiry the whole
//! group is killed and the call is a [`ErrorKind::Timeout`] error.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pipes::{Next, Pipes};
use crate::io_reason::io_reason;
use crate::runtime::{Error, ErrorKind, Result};

/// The CLI's name on PATH.
pub const CLI_NAME: &str = "container";

/// How often a call whose pipes stay open checks whether the CLI itself has exited (a
/// helper it left behind may hold the pipes).
const EXIT_CHECK: Duration = Duration::from_millis(100);

/// How long output may keep arriving after the CLI exited before moat stops reading.
const AFTER_EXIT: Duration = Duration::from_millis(500);

/// Longer than any call's deadline can usefully be (the flags stop at a year), and short
/// enough that `Instant + deadline` cannot overflow and panic on a saturated deadline.
const LONGEST_CALL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The path to Apple's `container` CLI.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: PathBuf,
}

/// What a finished call printed, and how it exited.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// The CLI's own message: its stderr on one line, else its exit status.
    pub fn message(&self) -> String {
        let text = one_line(&self.stderr);
        if !text.is_empty() {
            return text;
        }
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "failed".to_string(),
        }
    }
}

/// Whether the CLI's message says the object does not exist (`container not found: ID`,
/// `notFound: ...`).
pub fn says_not_found(message: &str) -> bool {
    message.contains("not found") || message.contains("notFound")
}

/// `text` without its `Error: ` prefixes and on one line, as moat's errors are.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `40s`, or `250ms` below a second.
pub fn seconds(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The command as a user would name it: `container stop`, `container image pull`.
fn verb<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut words = vec![CLI_NAME.to_string()];
    for arg in args.iter().take(2) {
        let arg = arg.as_ref().to_string_lossy();
        if arg.starts_with('-') {
            break;
        }
        words.push(arg.into_owned());
        if words.len() == 2 && words[1] != "image" && words[1] != "system" {
            break;
        }
    }
    words.join(" ")
}

impl Cli {
    /// `$MOAT_CONTAINER_BIN`, else `container` found on PATH.
    pub fn locate() -> Result<Cli> {
        if let Some(bin) = std::env::var_os("MOAT_CONTAINER_BIN").filter(|b| !b.is_empty()) {
            return Ok(Cli {
                bin: PathBuf::from(bin),
            });
        }
        match find_on_path() {
            Some(bin) => Ok(Cli { bin }),
            None => Err(Error::new(
                ErrorKind::Unreachable,
                "cannot run Apple's container CLI",
                "`container` is not on PATH (install apple/container, or set \
                 MOAT_CONTAINER_BIN to its path)",
            )),
        }
    }

    /// A command for the CLI with `args`, for callers that manage the child themselves.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        cmd
    }

    /// The error for a CLI that cannot be started at all.
    pub fn spawn_error(&self, e: &io::Error) -> Error {
        Error::new(
            ErrorKind::Unreachable,
            format!("cannot run Apple's container CLI at {}", self.bin.display()),
            io_reason(e),
        )
    }

    /// Run the CLI with `args` to its end or to `deadline`, whichever comes first.
    /// A non-zero exit is not an error here (see [`Cli::run`]); a failure to start it or a
    /// missed deadline is. With `progress`, the last line the CLI printed on stderr is
    /// told to it as it arrives (pull progress; the caller draws it).
    pub fn call<S: AsRef<OsStr>>(
        &self,
        what: &str,
        args: &[S],
        deadline: Duration,
        progress: Option<&mut crate::runtime::Progress>,
    ) -> Result<Output> {
        let started = Instant::now();
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a timeout kills whatever it started too, and a Ctrl-C meant
            // for moat does not reach it.
            .process_group(0);
        log::debug!(
            "{} {:?}",
            self.bin.display(),
            cmd.get_args().collect::<Vec<_>>()
        );
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(&e))?;
        let _in_flight = InFlight::register(&child);
        match collect(&mut child, started + deadline.min(LONGEST_CALL), progress) {
            Ok(Some((status, stdout, stderr))) => {
                log::debug!(
                    "{} answered {status} in {:?}",
                    verb(args),
                    started.elapsed()
                );
                Ok(Output {
                    status,
                    stdout,
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                })
            }
            Ok(None) => {
                kill_group(child);
                Err(Error::new(
                    ErrorKind::Timeout,
                    what,
                    format!("{} did not answer within {}", verb(args), seconds(deadline)),
                ))
            }
            Err(e) => {
                kill_group(child);
                Err(Error::new(
                    ErrorKind::ConnectionLost,
                    what,
                    format!("reading the output of {}: {}", verb(args), io_reason(&e)),
                ))
            }
        }
    }

    /// [`Cli::call`], with a non-zero exit turned into an error carrying the CLI's message
    /// (`NotFound` when it says the object does not exist). Returns stdout.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        what: &str,
        args: &[S],
        deadline: Duration,
    ) -> Result<Vec<u8>> {
        let out = self.call(what, args, deadline, None)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let message = out.message();
        let kind = if says_not_found(&message) {
            ErrorKind::NotFound
        } else {
            ErrorKind::Other
        };
        Err(Error::new(kind, what, message))
    }
}

fn find_on_path() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(CLI_NAME))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Process groups of the calls in flight, for [`kill_in_flight`].
static IN_FLIGHT: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// A call's entry in [`IN_FLIGHT`], removed when the call returns.
struct InFlight(Option<libc::pid_t>);

impl InFlight {
    fn register(child: &Child) -> InFlight {
        let pid = libc::pid_t::try_from(child.id()).ok();
        if let Some(pid) = pid {
            IN_FLIGHT
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(pid);
        }
        InFlight(pid)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut calls = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        calls.retain(|&pid| Some(pid) != self.0);
    }
}

/// SIGKILL every call still in flight (with what it started), for a run that ends while
/// another thread waits on one: a pull the run no longer wants must not outlive moat.
pub fn kill_in_flight() {
    let calls = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    for &pid in calls.iter() {
        // SAFETY: kill(2) on a process group whose leader is a child of ours that its call
        // has not finished with (an entry leaves the list right after the reap).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// SIGKILL the child's process group and reap the child without blocking the caller.
fn kill_group(mut child: Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the process group this child leads (it is not reaped yet, so
        // the id cannot have been reused).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || child.wait());
}

type Collected = (ExitStatus, Vec<u8>, Vec<u8>);

/// Read the child's stdout and stderr until both end, then wait for it, all before
/// `until`. `Ok(None)` when the deadline passed first.
fn collect(
    child: &mut Child,
    until: Instant,
    mut progress: Option<&mut crate::runtime::Progress>,
) -> io::Result<Option<Collected>> {
    let mut pipes = Pipes::new(child.stdout.take(), child.stderr.take());
    let mut bufs = [Vec::new(), Vec::new()];
    let mut chunk = vec![0u8; 16 * 1024];
    let mut exited: Option<(ExitStatus, Instant)> = None;

    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        if let Some((_, at)) = exited
            && now >= at + AFTER_EXIT
        {
            // The CLI is gone but something it started holds the pipes: stop reading.
            break;
        }
        match pipes.next(&mut chunk, Some((until - now).min(EXIT_CHECK)))? {
            Next::End => break,
            Next::Chunk(i, n) => {
                if let (Some(progress), 1) = (&mut progress, i) {
                    // A progress display redraws its line with `\r`: the newest text is
                    // the last piece.
                    let text = String::from_utf8_lossy(&chunk[..n]);
                    if let Some(last) = text.split(['\r', '\n']).rfind(|l| !l.trim().is_empty()) {
                        progress(last.trim());
                    }
                }
                bufs[i].extend_from_slice(&chunk[..n]);
            }
            Next::Idle => {
                if exited.is_none()
                    && let Some(status) = child.try_wait()?
                {
                    exited = Some((status, Instant::now()));
                }
            }
        }
    }

    let status = match exited {
        Some((status, _)) => status,
        None => match wait_until(child, until)? {
            Some(status) => status,
            None => return Ok(None),
        },
    };
    let [stdout, stderr] = bufs;
    Ok(Some((status, stdout, stderr)))
}

/// Wait for the child to exit, polling with a short growing interval (it has closed its
/// output, so it is about to), until `until`.
fn wait_until(child: &mut Child, until: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        std::thread::sleep(pause.min(until - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> Cli {
        Cli {
            bin: PathBuf::from("/bin/sh"),
        }
    }

    #[test]
    fn output_and_status_come_back() {
        let out = sh()
            .call(
                "x",
                &["-c", "echo out; echo err >&2; exit 3"],
                Duration::from_secs(10),
                None,
            )
            .expect("call");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn a_deadline_past_any_instant_is_no_panic() {
        let out = sh()
            .call("x", &["-c", "exit 0"], Duration::MAX, None)
            .expect("call");
        assert_eq!(out.status.code(), Some(0));
    }

    #[test]
    fn a_hung_call_is_killed_at_its_deadline() {
        let started = Instant::now();
        let e = sh()
            .call(
                "stopping",
                &["-c", "sleep 100"],
                Duration::from_millis(300),
                None,
            )
            .expect_err("must time out");
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(
            e.to_string(),
            "stopping: container did not answer within 300ms"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_helper_holding_the_pipes_does_not_hold_the_call() {
        let started = Instant::now();
        let out = sh()
            .call(
                "x",
                &["-c", "sleep 30 & echo done"],
                Duration::from_secs(20),
                None,
            )
            .expect("call");
        assert!(out.status.success());
        assert_eq!(out.stdout, b"done\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn failures_carry_the_clis_message() {
        let e = sh()
            .run(
                "inspecting",
                &["-c", "echo 'Error: container not found: c' >&2; exit 1"],
                Duration::from_secs(10),
            )
            .expect_err("fails");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.to_string(), "inspecting: container not found: c");
        let e = sh()
            .run(
                "x",
                &[
                    "-c",
                    "printf 'Error: XPC connection error\\n\\nmore\\n' >&2; exit 1",
                ],
                Duration::from_secs(10),
            )
            .expect_err("fails");
        assert_eq!(e.kind, ErrorKind::Other);
        assert_eq!(e.detail, "XPC connection error; more");
        let e = sh()
            .run("x", &["-c", "exit 4"], Duration::from_secs(10))
            .expect_err("fails");
        assert_eq!(e.detail, "exited with status 4");
    }

    #[test]
    fn a_missing_cli_is_unreachable() {
        let cli = Cli {
            bin: PathBuf::from("/nonexistent/container"),
        };
        let e = cli
            .call("x", &["list"], Duration::from_secs(1), None)
            .expect_err("cannot spawn");
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert_eq!(
            e.to_string(),
            "cannot run Apple's container CLI at /nonexistent/container: No such file or directory"
        );
    }

    #[test]
    fn verbs_name_the_subcommand() {
        assert_eq!(verb(&["stop", "-t", "3", "c"]), "container stop");
        assert_eq!(verb(&["image", "pull", "x"]), "container image pull");
        assert_eq!(verb(&["list", "--quiet"]), "container list");
        assert_eq!(seconds(Duration::from_secs(40)), "40s");
    }
}
