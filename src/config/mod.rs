//! `moat.yaml`: a project's `moat run` settings, read into plain data that remembers where
//! each value was written. Every key is a `moat run` flag; flags override the file (the
//! caller merges). A key moat does not read is an error, never ignored: a typo names the
//! nearest key, and a Go moat key for something moat does not do says so (`keys.rs` has
//! both lists). Only the YAML shape and types are checked here; the values go to the flag
//! parsers, and their errors belong at the value's place ([`Config::error`]).
//!
//! - `command` is a list of words only: a string is refused, neither split nor given to
//!   a shell.
//! - `env` is a mapping (`KEY: VALUE`; `KEY:` alone passes the host's value, as `-e KEY`)
//!   or a list of `KEY=VALUE`/`KEY`.
//! - Relative paths in `mounts` and `env_file` are relative to the file's directory.
//! - A key whose list or mapping is empty (`env:` with every entry commented out) sets
//!   nothing.
//! - Go moat's `container.memory` is megabytes (`4096` becomes `4096m`); `resources.memory`
//!   wants a unit (`2g`). Go moat's `ports` mapping (`web: 3000`) publishes each port as
//!   `-p 3000` would; its `network.rules` hosts join `network.allow`, and its policy
//!   `permissive` is moat's `open`.

mod error;
mod keys;
mod read;
mod settings;
mod suggest;
mod yaml;

use std::path::Path;

pub use error::Error;
pub use settings::{Config, Sourced};

use crate::io_reason::io_reason;

/// The file, in the workspace root.
pub const FILE: &str = "moat.yaml";

/// Read `explicit` (`-f PATH`) or, without it, `WORKSPACE/moat.yaml` when there is one.
/// `Ok(None)`: no file was asked for and the workspace has none.
pub fn load(workspace: &Path, explicit: Option<&Path>) -> Result<Option<Config>, Error> {
    let file = match explicit {
        Some(path) => path.to_path_buf(),
        None => workspace.join(FILE),
    };
    let whole = |message: String| Error {
        file: file.clone(),
        line: 0,
        column: 0,
        message,
    };
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(None);
        }
        Err(e) => return Err(whole(format!("cannot read it: {}", io_reason(&e)))),
    };
    let text = String::from_utf8(bytes).map_err(|_| whole("not UTF-8 text".into()))?;
    parse(&file, &text).map(Some)
}

/// The settings in `text`, read from `file` (named in errors; relative paths in the file
/// are relative to its directory).
pub fn parse(file: &Path, text: &str) -> Result<Config, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = yaml::parse(text).map_err(|f| Error {
        file: file.to_path_buf(),
        line: f.at.line,
        column: f.at.column,
        message: f.message,
    })?;
    read::read(file, root)
}

#[cfg(test)]
mod tests;
