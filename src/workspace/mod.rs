//! The workspace and how it reaches the container. `bind` mounts it (the engine sees this
//! machine's files); `copy` uploads it through the engine's archive API before the command
//! starts, leaving out what `.moatignore` excludes ([`ignore`]), and with `--copy-back`
//! writes the files the run added or changed back at the end ([`copy_back`]); `none` gives
//! the command an empty `/workspace`.
//!
//! Nothing here knows about engines or runs: [`pack`] makes the tar stream an engine
//! takes, [`copy_back`] reads the one it gives back, and the run lifecycle moves them.

pub mod copy_back;
mod host;
pub mod ignore;
mod manifest;
pub mod pack;
mod pattern;

pub use copy_back::{CopyBack, Report};
pub use ignore::Ignore;
pub use manifest::Manifest;

/// Where the workspace is in the container, and its working directory by default.
pub const TARGET: &str = "/workspace";

/// How the workspace reaches the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bind-mounted read-write: the command works on the host's files.
    Bind,
    /// Copied in before the command starts: the host's files are untouched unless
    /// `--copy-back` writes the run's changes back.
    Copy,
    /// No workspace: `/workspace` is an empty directory.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bind => "bind",
            Mode::Copy => "copy",
            Mode::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "bind" => Some(Mode::Bind),
            "copy" => Some(Mode::Copy),
            "none" => Some(Mode::None),
            _ => None,
        }
    }

    /// The mode when `--workspace` does not say. A bind mount names a path on the
    /// engine's machine, so it is right only when that machine is this one (a local
    /// socket); an engine elsewhere (tcp, ssh) would mount the wrong or an empty
    /// directory, so it gets a copy.
    pub fn default_for(engine_sees_host_files: bool) -> Mode {
        if engine_sees_host_files {
            Mode::Bind
        } else {
            Mode::Copy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_default_by_engine() {
        for mode in [Mode::Bind, Mode::Copy, Mode::None] {
            assert_eq!(Mode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(Mode::parse("Copy"), None);
        assert_eq!(Mode::default_for(true), Mode::Bind);
        assert_eq!(Mode::default_for(false), Mode::Copy);
    }
}
