//! The error a command ends with. It keeps its kind until `main`, which alone decides the
//! exit code and how (or whether) to tell it.

use std::fmt;
use std::io;

/// Exit code for bad flags or arguments.
pub const USAGE: i32 = 2;
/// Exit code of `moat run` when moat itself failed (runtime unreachable, image missing...).
pub const MOAT_FAILED: i32 = 125;

/// What kind of failure ended the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad flags or arguments; the command whose `--help` to point at.
    Usage(&'static str),
    /// A command could not do its job (`run not found: X`).
    Failed,
    /// `moat run` could not run the command at all.
    MoatFailed,
    /// Writing moat's own output failed: a closed pipe is a quiet end (ripgrep's rule),
    /// anything else (a full disk) an error.
    Output(io::ErrorKind),
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    /// Bad flags or arguments: exit 2 with a pointer to `--help`.
    pub fn usage(command: &'static str, message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Usage(command),
            message: message.into(),
        }
    }

    /// A command that could not do its job.
    pub fn failed(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Failed,
            message: message.into(),
        }
    }

    /// `moat run` could not run the command.
    pub fn moat(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::MoatFailed,
            message: message.into(),
        }
    }

    /// Writing to stdout failed.
    pub fn output(e: io::Error) -> Error {
        Error {
            kind: Kind::Output(e.kind()),
            message: format!("writing output: {}", crate::io_reason::io_reason(&e)),
        }
    }

    /// The exit code this error ends moat with; `None` for a quiet end (a closed pipe).
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Usage(_) => USAGE,
            Kind::MoatFailed => MOAT_FAILED,
            Kind::Output(io::ErrorKind::BrokenPipe) => 0,
            Kind::Failed | Kind::Output(_) => 1,
        }
    }

    /// Whether the error is told at all: the reader of a pipe going away is not an error.
    pub fn is_quiet(&self) -> bool {
        self.kind == Kind::Output(io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::store::Error> for Error {
    fn from(e: crate::store::Error) -> Error {
        Error::failed(e.to_string())
    }
}

impl From<crate::runtime::Error> for Error {
    fn from(e: crate::runtime::Error) -> Error {
        Error::failed(e.to_string())
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        Error::usage("moat", e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
