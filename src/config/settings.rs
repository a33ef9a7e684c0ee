//! What a `moat.yaml` says, as plain data: one field per `moat run` flag, each value with
//! the place it was written.

use std::path::PathBuf;

use super::Error;

/// A value and where in the file it was written (line and column from 1), for
/// `--dry-run` (`image: x (moat.yaml:3)`) and for errors about the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

/// The settings of one `moat.yaml`. `None` or empty: the file does not set it.
///
/// Values are carried as written, checked only for their YAML shape and type: their
/// syntax (a duration, a memory size, a mount) is the flag parsers' to check, and an
/// error they find belongs at the value's place ([`Config::error`]). The strings are
/// what the flag of the same name takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The file read, as it was named (`WORKSPACE/moat.yaml` or `-f`'s path).
    pub file: PathBuf,
    /// `--name`.
    pub name: Option<Sourced<String>>,
    /// `--image`.
    pub image: Option<Sourced<String>>,
    /// The command and its arguments (what follows `--`); an empty list is the image's
    /// default command.
    pub command: Option<Sourced<Vec<String>>>,
    /// `-i`.
    pub interactive: Option<Sourced<bool>>,
    /// `-e`: `KEY=VALUE`, or `KEY` to pass the host's value, in file order.
    pub env: Vec<Sourced<String>>,
    /// `--env-file`, in file order. A relative path is relative to the file's directory.
    pub env_files: Vec<Sourced<String>>,
    /// `-m`: `SRC:DST[:ro]`. A relative `SRC` is relative to the file's directory.
    pub mounts: Vec<Sourced<String>>,
    /// `-w`.
    pub workdir: Option<Sourced<String>>,
    /// `-u`.
    pub user: Option<Sourced<String>>,
    /// `-p`: docker's `[IP:]HOST:CONTAINER[/PROTO]` or `CONTAINER`.
    pub ports: Vec<Sourced<String>>,
    /// The egress policy: `strict` or `open` (Go moat's `permissive` arrives as `open`).
    pub network_policy: Option<Sourced<String>>,
    /// Hosts the run may reach (`host[:port]`), from `network.allow` and Go moat's
    /// `network.rules`, in file order.
    pub network_allow: Vec<Sourced<String>>,
    /// `--memory`, e.g. `2g` (Go moat's `container.memory`, megabytes, arrives as `Nm`).
    pub memory: Option<Sourced<String>>,
    /// `--cpus`, e.g. `1.5`.
    pub cpus: Option<Sourced<String>>,
    /// `--pids-limit`: a whole number, as written.
    pub pids: Option<Sourced<String>>,
    /// `--timeout`, e.g. `90s`.
    pub timeout: Option<Sourced<String>>,
    /// `--stop-timeout`: seconds.
    pub stop_timeout: Option<Sourced<String>>,
    /// `--runtime`.
    pub runtime: Option<Sourced<String>>,
    /// The agent preset (`claude`, `codex`, `gemini`).
    pub agent: Option<Sourced<String>>,
    /// `--keep`.
    pub keep: Option<Sourced<bool>>,
}

impl Config {
    /// An error about a value found after loading (a flag parser refused it), placed
    /// where the value was written: `FILE:LINE:COLUMN: message`.
    pub fn error<T>(&self, at: &Sourced<T>, message: impl Into<String>) -> Error {
        Error {
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }
}
