//! The terminal of an interactive Apple session. The `container start --attach -i` child
//! runs on a pseudo-terminal that moat opens: the child gets the slave as its stdin,
//! stdout, stderr and controlling terminal (so it sees a TTY, sets it raw and forwards its
//! size), and moat keeps the master: output is read from it, stdin is written to it, and a
//! resize is `TIOCSWINSZ` on it (the kernel then sends the child SIGWINCH).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::runtime::{Error, ErrorKind, RawOutput, Resizer, Result, StdinSink};

/// A pseudo-terminal pair, both ends close-on-exec (the child gets dups of the slave).
pub struct Pty {
    pub master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    /// Open a pseudo-terminal of `size` (rows, cols) when given.
    pub fn open(size: Option<(u16, u16)>) -> io::Result<Pty> {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let mut ws = winsize(size.unwrap_or((24, 80)));
        // SAFETY: openpty writes two descriptors into the given ints; the name and termios
        // pointers may be null; `ws` outlives the call.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                // A raw pointer: the parameter is `*mut` on macOS and `*const` on Linux.
                std::ptr::addr_of_mut!(ws),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: openpty succeeded, so both are open descriptors that nothing else owns.
        let pty = unsafe {
            Pty {
                master: OwnedFd::from_raw_fd(master),
                slave: OwnedFd::from_raw_fd(slave),
            }
        };
        cloexec(pty.master.as_raw_fd())?;
        cloexec(pty.slave.as_raw_fd())?;
        Ok(pty)
    }

    /// Make `cmd` run on the slave: as its stdin, stdout and stderr, and as the controlling
    /// terminal of a new session that it leads.
    pub fn attach(&self, cmd: &mut Command) -> io::Result<()> {
        cmd.stdin(Stdio::from(self.slave.try_clone()?))
            .stdout(Stdio::from(self.slave.try_clone()?))
            .stderr(Stdio::from(self.slave.try_clone()?));
        // SAFETY: the closure only makes async-signal-safe system calls (setsid, ioctl).
        // It runs after the slave was put on fds 0-2.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                #[allow(clippy::useless_conversion)] // the request's type differs by platform
                if libc::ioctl(0, libc::TIOCSCTTY.into(), 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// Moat's ends of the session, each on its own dup of the master.
    pub fn into_ends(self) -> io::Result<(RawOutput<PtyMaster>, PtyStdin, PtyResizer)> {
        let Pty { master, slave } = self;
        // moat's copy of the slave must go, or reads of the master never see its end.
        drop(slave);
        let input = PtyStdin(File::from(master.try_clone()?));
        let resizer = PtyResizer(master.try_clone()?);
        Ok((RawOutput(PtyMaster(File::from(master))), input, resizer))
    }
}

fn winsize((rows, cols): (u16, u16)) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the terminal size of the pseudo-terminal behind `fd`.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = winsize((rows, cols));
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
    #[allow(clippy::useless_conversion)] // the request's type differs by platform
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ.into(), &ws) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The master, read for the session's output. When the child and everything that shares
/// its terminal have exited, reads fail with EIO (Linux) or return 0 (macOS): both are
/// its end.
pub struct PtyMaster(File);

impl Read for PtyMaster {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            other => other,
        }
    }
}

/// The session's input: bytes written to the master reach the child as typed keys.
pub struct PtyStdin(File);

impl Write for PtyStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl StdinSink for PtyStdin {
    /// A terminal has no end of input but the EOF key: send ^D.
    fn close(&mut self) -> io::Result<()> {
        self.0.write_all(&[0x04])
    }
}

pub struct PtyResizer(OwnedFd);

impl Resizer for PtyResizer {
    fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        set_size(self.0.as_raw_fd(), rows, cols).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                "resizing the container's terminal",
                crate::io_reason::io_reason(&e),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::OutputSource;
    use crate::stream::Stream;

    #[test]
    fn a_child_on_the_pty_sees_a_terminal_of_the_given_size() {
        let pty = Pty::open(Some((33, 101))).expect("openpty");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "test -t 0 && test -t 1 && stty size; read line; echo got $line",
        ]);
        pty.attach(&mut cmd).expect("attach");
        let mut child = cmd.spawn().expect("spawn");
        drop(cmd);
        let (mut output, mut input, _resizer) = pty.into_ends().expect("ends");
        input.write_all(b"hello\n").expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Some((stream, n)) = output.next_chunk(&mut buf).expect("read") {
            assert_eq!(stream, Stream::Tty);
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("33 101"), "{text:?}");
        assert!(text.contains("got hello"), "{text:?}");
        assert!(child.wait().expect("wait").success());
    }

    #[test]
    fn resize_reaches_the_child() {
        let pty = Pty::open(Some((24, 80))).expect("openpty");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read line; stty size"]);
        pty.attach(&mut cmd).expect("attach");
        let mut child = cmd.spawn().expect("spawn");
        drop(cmd);
        let (mut output, mut input, resizer) = pty.into_ends().expect("ends");
        resizer.resize(50, 132).expect("resize");
        input.write_all(b"go\n").expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Some((_, n)) = output.next_chunk(&mut buf).expect("read") {
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("50 132"), "{text:?}");
        child.wait().expect("wait");
    }
}
