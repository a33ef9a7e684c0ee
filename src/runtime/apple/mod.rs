//! Apple's `container` CLI runtime.

use super::{Error, ErrorKind, Result};

/// Whether a `container` executable is on PATH.
pub fn cli_on_path() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("container").is_file())
    })
}

pub fn connect() -> Result<Box<dyn super::Runtime>> {
    Err(Error::new(
        ErrorKind::Unreachable,
        "cannot use Apple's container runtime",
        "not supported by this build yet",
    ))
}
