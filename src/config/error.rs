//! What is wrong with a `moat.yaml`, and where.

use std::fmt;
use std::path::PathBuf;

/// An error in a `moat.yaml`: `FILE:LINE:COLUMN: message`. Line and column count from 1
/// (columns in characters); both are 0 when the error is about the whole file (it cannot
/// be read), and the text is then `FILE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for Error {}
