//! The error a command ends with: one line for stderr and the exit code it means.

use std::fmt;

/// Exit code for bad flags or arguments.
pub const USAGE: i32 = 2;
/// Exit code of `moat run` when moat itself failed (runtime unreachable, image missing...).
pub const MOAT_FAILED: i32 = 125;

#[derive(Debug)]
pub struct Error {
    pub code: i32,
    pub message: String,
    /// For usage errors: the command whose `--help` to point at.
    pub usage_of: Option<&'static str>,
}

impl Error {
    /// Bad flags or arguments: exit 2 with a pointer to `--help`.
    pub fn usage(command: &'static str, message: impl Into<String>) -> Error {
        Error {
            code: USAGE,
            message: message.into(),
            usage_of: Some(command),
        }
    }

    /// A command that could not do its job: exit 1.
    pub fn failed(message: impl Into<String>) -> Error {
        Error {
            code: 1,
            message: message.into(),
            usage_of: None,
        }
    }

    /// `moat run` could not run the command: exit 125.
    pub fn moat(message: impl Into<String>) -> Error {
        Error {
            code: MOAT_FAILED,
            message: message.into(),
            usage_of: None,
        }
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
