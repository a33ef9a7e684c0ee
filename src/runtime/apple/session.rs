//! A run's session on Apple's CLI: a foreground `container start --attach [-i] ID` child.
//! Its exit status is the command's exit code (the CLI exits with the init process's
//! code), which is why moat keeps the child instead of polling `inspect`, which has none.
//!
//! Non-TTY: the child's stdout and stderr are pipes read together with `poll`, and its
//! stdin is a pipe when stdin is forwarded. TTY: the child runs on a pseudo-terminal that
//! moat owns (see [`super::pty`]).

use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};

use crossbeam_channel::{Receiver, bounded};

use super::cli::Cli;
use super::pipes::{PipeOutput, Pipes};
use super::pty::Pty;
use crate::io_reason::io_reason;
use crate::runtime::{
    Error, ErrorKind, OutputSource, Resizer, Result, Session, StartOptions, StdinSink,
};

/// Start container `id` attached, with its streams subscribed (they are the child's own
/// stdio, so nothing the command prints can be missed) and its exit awaited by a thread.
pub fn start(cli: &Cli, id: &str, opts: StartOptions) -> Result<Session> {
    let mut args = vec!["start", "--attach"];
    if opts.stdin {
        args.push("-i");
    }
    args.push(id);
    let mut cmd = cli.command(&args);
    let failed = |e: io::Error| {
        Error::new(
            ErrorKind::Other,
            "starting the container",
            format!("setting up its terminal: {}", io_reason(&e)),
        )
    };

    if opts.tty {
        let pty = Pty::open(opts.size).map_err(failed)?;
        pty.attach(&mut cmd).map_err(failed)?;
        let child = cmd.spawn().map_err(|e| cli.spawn_error(&e))?;
        // The command holds moat's dups of the slave; they must be closed now.
        drop(cmd);
        let (output, stdin, resizer) = match pty.into_ends() {
            Ok(ends) => ends,
            Err(e) => {
                abandon(child);
                return Err(failed(e));
            }
        };
        let exit = wait_for_exit(child)?;
        return Ok(Session {
            output: Box::new(output),
            stdin: Some(Box::new(stdin)),
            exit,
            resizer: Some(Box::new(resizer) as Box<dyn Resizer>),
        });
    }

    cmd.stdin(if opts.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Its own group: moat handles Ctrl-C itself (a graceful stop, then a kill); the CLI
    // would forward the signal straight to the command.
    .process_group(0);
    let mut child = cmd.spawn().map_err(|e| cli.spawn_error(&e))?;
    let output = PipeOutput(Pipes::new(child.stdout.take(), child.stderr.take()));
    let stdin = child
        .stdin
        .take()
        .map(|s| Box::new(PipeStdin(Some(s))) as Box<dyn StdinSink>);
    let exit = wait_for_exit(child)?;
    Ok(Session {
        output: Box::new(output) as Box<dyn OutputSource>,
        stdin,
        exit,
        resizer: None,
    })
}

/// The command's exit code from the CLI's exit status: its code, or 128 + the signal
/// that killed the CLI, as a shell reports it.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 128,
    }
}

/// A thread that waits for the child and sends its exit code once.
fn wait_for_exit(mut child: Child) -> Result<Receiver<Result<i32>>> {
    let (tx, rx) = bounded(1);
    let pid = child.id();
    let spawned = std::thread::Builder::new()
        .name("exit-waiter".into())
        .spawn(move || {
            let result = child.wait().map(exit_code).map_err(|e| {
                Error::new(
                    ErrorKind::ConnectionLost,
                    "waiting for the container",
                    format!("waiting for `container start`: {}", io_reason(&e)),
                )
            });
            let _ = tx.send(result);
        });
    match spawned {
        Ok(_) => Ok(rx),
        Err(e) => {
            // The child was moved into the closure that never ran; kill it by pid.
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            Err(Error::new(
                ErrorKind::Other,
                "starting a thread",
                e.to_string(),
            ))
        }
    }
}

fn abandon(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The child's stdin pipe; closing it is the command's end of input.
struct PipeStdin(Option<ChildStdin>);

impl Write for PipeStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(pipe) => pipe.write(buf),
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Some(pipe) => pipe.flush(),
            None => Ok(()),
        }
    }
}

impl StdinSink for PipeStdin {
    fn close(&mut self) -> io::Result<()> {
        self.0 = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn exit_codes_follow_the_shell() {
        let status = Command::new("sh")
            .args(["-c", "exit 3"])
            .status()
            .expect("sh");
        assert_eq!(exit_code(status), 3);
        let status = Command::new("sh")
            .args(["-c", "kill -9 $$"])
            .status()
            .expect("sh");
        assert_eq!(exit_code(status), 137);
    }
}
