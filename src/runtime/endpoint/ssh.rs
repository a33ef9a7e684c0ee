//! An engine over ssh, as the docker CLI reaches one: `ssh … -- HOST docker system
//! dial-stdio` for each connection, with HTTP spoken over the process's pipes. ssh's own
//! configuration, keys and agent apply; its error message is what the user sees when it
//! fails.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Address;

/// How long ssh may take to reach the host (its `ConnectTimeout`): the connect deadline
/// moat keeps for every endpoint.
pub const CONNECT_TIMEOUT: Duration = super::dialer::CONNECT_DEADLINE;

/// How long an ssh whose output ended is given to exit and say why.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The most of ssh's stderr kept: its message is a line or two.
const STDERR_KEPT: usize = 4096;

/// One ssh process carrying one connection.
#[derive(Debug)]
pub struct Process {
    child: Mutex<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Mutex<Option<JoinHandle<()>>>,
}

/// ssh's arguments for `address`, as the docker CLI builds them.
pub fn arguments(address: &Address) -> Vec<String> {
    let Address::Ssh {
        user,
        host,
        port,
        socket,
    } = address
    else {
        return Vec::new();
    };
    let mut args = Vec::new();
    if let Some(user) = user {
        args.extend(["-l".to_string(), user.clone()]);
    }
    if let Some(port) = port {
        args.extend(["-p".to_string(), port.to_string()]);
    }
    args.extend([
        "-o".to_string(),
        format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()),
        "-T".to_string(),
        "--".to_string(),
        host.clone(),
        "docker".to_string(),
    ]);
    if let Some(socket) = socket {
        args.push(format!("--host=unix://{socket}"));
    }
    args.extend(["system".to_string(), "dial-stdio".to_string()]);
    args
}

/// Start ssh for one connection to `address`.
pub fn spawn(address: &Address) -> io::Result<(ChildStdout, ChildStdin, Arc<Process>)> {
    let mut child = Command::new("ssh")
        .args(arguments(address))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at moat's terminal is moat's to forward to the
        // command, and must not cut moat off from the engine while it stops the run.
        .process_group(0)
        .spawn()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "ssh is not installed (an ssh:// engine needs the ssh client)",
                )
            } else {
                io::Error::new(e.kind(), format!("starting ssh: {e}"))
            }
        })?;
    let (Some(stdout), Some(stdin), Some(mut stderr)) =
        (child.stdout.take(), child.stdin.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("ssh started without its pipes"));
    };
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = kept.clone();
    let reader = std::thread::Builder::new()
        .name("ssh-stderr".into())
        .spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&buf[..n]);
                let excess = kept.len().saturating_sub(STDERR_KEPT);
                kept.drain(..excess);
            }
        })?;
    let process = Arc::new(Process {
        child: Mutex::new(child),
        stderr: kept,
        stderr_reader: Mutex::new(Some(reader)),
    });
    Ok((stdout, stdin, process))
}

impl Process {
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
    }

    /// After its output ended: ssh's own message if it failed, as the error to report (a
    /// failure to reach the engine: ssh fails before it carries anything).
    pub fn failure(&self) -> Option<io::Error> {
        let deadline = Instant::now() + EXIT_GRACE;
        let status = loop {
            let status = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait()
                .ok()?;
            match status {
                Some(status) => break status,
                None if Instant::now() >= deadline => return None,
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if status.success() {
            return None;
        }
        if let Some(reader) = self
            .stderr_reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = reader.join();
        }
        let stderr = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&stderr);
        let message = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("ssh ended with {status}"));
        // ssh's own messages mostly name it already.
        let message = if message.starts_with("ssh:") {
            message
        } else {
            format!("ssh: {message}")
        };
        Some(super::DialError::io(
            io::ErrorKind::ConnectionRefused,
            message,
        ))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_the_docker_clis() {
        let address = super::super::parse_url("ssh://me@build:2222").unwrap();
        assert_eq!(
            arguments(&address).join(" "),
            "-l me -p 2222 -o ConnectTimeout=5 -T -- build docker system dial-stdio"
        );
        let address = super::super::parse_url("ssh://build/run/d.sock").unwrap();
        assert_eq!(
            arguments(&address).join(" "),
            "-o ConnectTimeout=5 -T -- build docker --host=unix:///run/d.sock system dial-stdio"
        );
    }
}
