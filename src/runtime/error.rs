//! The runtime layer's error: what failed, why, and what kind of failure it is so the run
//! lifecycle can pick the exit code (unreachable engine, missing command, gone container...).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The runtime cannot be reached at all.
    Unreachable,
    /// The object (container, image) does not exist.
    NotFound,
    /// Creating a container failed because its image is not present (pull it).
    ImageNotFound,
    /// The command to run does not exist in the image (exit 127).
    CommandNotFound,
    /// The command exists but cannot be executed (exit 126).
    CommandNotExecutable,
    /// A call did not answer within its deadline.
    Timeout,
    /// The connection to the runtime broke during a call.
    ConnectionLost,
    /// Anything else the runtime refused or failed at.
    Other,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// What moat was doing, e.g. `creating container`.
    pub context: String,
    /// Why it failed, with the runtime's own message where there is one.
    pub detail: String,
}

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>, detail: impl Into<String>) -> Error {
        Error {
            kind,
            context: context.into(),
            detail: detail.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// For a failed create: the one thing create can miss is its image, which moat then
    /// pulls.
    pub fn image_missing_if_not_found(self) -> Error {
        match self.kind {
            ErrorKind::NotFound => Error {
                kind: ErrorKind::ImageNotFound,
                ..self
            },
            _ => self,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            f.write_str(&self.detail)
        } else {
            write!(f, "{}: {}", self.context, self.detail)
        }
    }
}

impl std::error::Error for Error {}
