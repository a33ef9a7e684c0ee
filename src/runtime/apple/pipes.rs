//! Reading a child's stdout and stderr together: one `poll(2)` over both pipes, so neither
//! can fill up and block the child while moat waits on the other, and no thread per pipe.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{ChildStderr, ChildStdout};
use std::time::Duration;

use crate::runtime::OutputSource;
use crate::stream::Stream;

/// What [`Pipes::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// `n` bytes from pipe `index` (0 = stdout, 1 = stderr).
    Chunk(usize, usize),
    /// Nothing arrived within the timeout.
    Idle,
    /// Both pipes have ended.
    End,
}

/// A child's stdout and stderr (either may be absent).
pub struct Pipes {
    pipes: [Option<File>; 2],
    /// The pipe to look at first next time, so a busy one cannot starve the other.
    first: usize,
}

impl Pipes {
    pub fn new(stdout: Option<ChildStdout>, stderr: Option<ChildStderr>) -> Pipes {
        Pipes {
            pipes: [
                stdout.map(|p| File::from(OwnedFd::from(p))),
                stderr.map(|p| File::from(OwnedFd::from(p))),
            ],
            first: 0,
        }
    }

    /// Read the next chunk from whichever pipe has one, waiting at most `timeout`
    /// (`None`: as long as it takes). A pipe that ends is dropped; `End` once both have.
    pub fn next(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<Next> {
        loop {
            let ready = match self.poll(timeout)? {
                None => return Ok(Next::End),
                Some(r) => r,
            };
            let Some(i) = [self.first, 1 - self.first].into_iter().find(|&i| ready[i]) else {
                return Ok(Next::Idle);
            };
            let Some(pipe) = self.pipes[i].as_mut() else {
                continue;
            };
            match pipe.read(buf) {
                Ok(0) => self.pipes[i] = None,
                Ok(n) => {
                    self.first = 1 - i;
                    return Ok(Next::Chunk(i, n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Which open pipes are readable (data or end of file); `None` when none is open.
    fn poll(&self, timeout: Option<Duration>) -> io::Result<Option<[bool; 2]>> {
        let mut fds = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        for (i, pipe) in self.pipes.iter().enumerate() {
            if let Some(pipe) = pipe {
                fds.push(libc::pollfd {
                    fd: pipe.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if fds.is_empty() {
            return Ok(None);
        }
        let timeout = match timeout {
            None => -1,
            // Round up so a short wait does not become a busy loop.
            Some(t) => i32::try_from(t.as_millis()).unwrap_or(i32::MAX).max(1),
        };
        let mut ready = [false; 2];
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries for the whole call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Some(ready))
            } else {
                Err(e)
            };
        }
        let readable = libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
        for (fd, &i) in fds.iter().zip(&which) {
            ready[i] = fd.revents & readable != 0;
        }
        Ok(Some(ready))
    }
}

/// The output of a non-TTY session: the attached CLI's stdout and stderr, tagged.
pub struct PipeOutput(pub Pipes);

impl OutputSource for PipeOutput {
    fn next_chunk(&mut self, buf: &mut [u8]) -> io::Result<Option<(Stream, usize)>> {
        loop {
            match self.0.next(buf, None)? {
                Next::Chunk(0, n) => return Ok(Some((Stream::Stdout, n))),
                Next::Chunk(_, n) => return Ok(Some((Stream::Stderr, n))),
                Next::End => return Ok(None),
                Next::Idle => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn both_streams_are_read_to_their_end_and_tagged() {
        let mut child = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; echo out2; echo err2 >&2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut output = PipeOutput(Pipes::new(child.stdout.take(), child.stderr.take()));
        let mut buf = [0u8; 64];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some((stream, n)) = output.next_chunk(&mut buf).expect("read") {
            match stream {
                Stream::Stdout => out.extend_from_slice(&buf[..n]),
                Stream::Stderr => err.extend_from_slice(&buf[..n]),
                Stream::Tty => panic!("no tty here"),
            }
        }
        assert_eq!(out, b"out\nout2\n");
        assert_eq!(err, b"err\nerr2\n");
        child.wait().expect("wait");
    }

    #[test]
    fn a_quiet_pipe_is_idle_until_the_timeout() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut pipes = Pipes::new(child.stdout.take(), None);
        let mut buf = [0u8; 8];
        assert_eq!(
            pipes
                .next(&mut buf, Some(Duration::from_millis(10)))
                .expect("poll"),
            Next::Idle
        );
        let _ = child.kill();
        child.wait().expect("wait");
        assert_eq!(pipes.next(&mut buf, None).expect("read"), Next::End);
    }
}
