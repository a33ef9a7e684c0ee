//! The command line: one file per command. `main` dispatches on the first word; each
//! command parses its own flags with lexopt and prints its own `--help`.

pub mod address;
mod agents;
mod clean;
mod container_flags;
mod destroy;
mod list;
mod logs;
mod moat_yaml;
mod run;
mod stop;
mod wait;

use std::ffi::OsString;
use std::fmt::Display;

use crate::error::{Error, Result};
use crate::term;

const HELP: &str = "\
moat: run one command in a fresh container, own its whole life, tell how it ended

Usage: moat <COMMAND> [ARGS]

Commands:
  run [PATH] [-- CMD...]   run CMD in a new container around workspace PATH; block until it ends
  stop [RUN...]            stop runs from any process (the newest running run by default)
  logs [RUN]               print a run's captured output (-f follows a live run)
  list, ls                 list runs, newest first (--json for scripts)
  wait RUN...              block until runs end; exit with the last one's exit code
  destroy RUN...           remove runs' records, logs and leftover containers
  clean                    remove finished runs and orphaned moat containers
  claude, codex, gemini    run an AI coding agent around a workspace (presets over run)
  help [COMMAND]           show help for moat or a command

Options:
  -h, --help               show this help
  -V, --version            show moat's version

A RUN is a run ID, a run name (the newest run with it; for stop and wait the newest
live one), or a unique prefix of an ID (run_b9, or at least 4 hex digits: b9f0).
Run 'moat <COMMAND> --help' for a command's flags.";

/// Parse the command line and run the command; returns moat's exit code.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        say(HELP)?;
        return Ok(0);
    };
    let rest: Vec<OsString> = args.collect();
    let command = first
        .into_string()
        .map_err(|_| Error::usage("moat", "the command is not valid UTF-8"))?;
    match command.as_str() {
        "run" => run::main(rest),
        "stop" => stop::main(rest),
        "logs" => logs::main(rest),
        "list" | "ls" => list::main(rest),
        "wait" => wait::main(rest),
        "destroy" | "rm" => destroy::main(rest),
        "clean" => clean::main(rest),
        name if agents::find(name).is_some() => {
            agents::main(agents::find(name).expect("just found"), rest)
        }
        "help" => help(rest),
        // Started by `moat run` only; not in the help (run/watchdog.rs).
        crate::run::watchdog::COMMAND => match rest.as_slice() {
            [id] => crate::run::watchdog::watch(&id.to_string_lossy()),
            _ => Err(Error::usage("moat", "usage: moat __watchdog RUN_ID")),
        },
        // Run by the engine as a strict run's egress proxy; not in the help (sandbox/).
        crate::sandbox::proxy::COMMAND => crate::sandbox::proxy::main(rest),
        // Run in a TTY container before its command; not in the help (runtime/docker/).
        crate::runtime::docker::tty_size::COMMAND => crate::runtime::docker::tty_size::main(rest),
        "-h" | "--help" => {
            say(HELP)?;
            Ok(0)
        }
        "-V" | "--version" => {
            say(format_args!("moat {}", env!("CARGO_PKG_VERSION")))?;
            Ok(0)
        }
        other if other.starts_with('-') => {
            Err(Error::usage("moat", format!("unknown option '{other}'")))
        }
        other => Err(Error::usage("moat", format!("unknown command '{other}'"))),
    }
}

/// `moat help [COMMAND]`: the same text as `moat COMMAND --help`.
fn help(args: Vec<OsString>) -> Result<i32> {
    match args.first().and_then(|a| a.to_str()) {
        None => {
            say(HELP)?;
            Ok(0)
        }
        Some(command) => main(vec![command.into(), "--help".into()]),
    }
}

/// Print a line of a command's output to stdout. A failed write is the command's error:
/// `main` ends quietly when the reader went away and says why otherwise.
pub fn say(line: impl Display) -> Result<()> {
    term::println(line).map_err(Error::output)
}

/// Print text as it is (it carries its own newlines); see [`say`].
pub fn say_text(text: &str) -> Result<()> {
    term::print(text).map_err(Error::output)
}

/// The lines of a command that does work target by target (`stop`, `destroy`, `clean`).
///
/// The rule for such commands: the work asked for is done in full, whatever happens to
/// stdout. Ending at the first failed write (ripgrep's rule, right for a command that only
/// prints) would leave `moat stop a b | true` with one run stopped and the other still
/// running. So a failed write only ends the printing: the lines after it are dropped, and
/// [`Report::finish`] makes the failure the command's end once the work is done. A closed
/// pipe is still a quiet end (the work's own exit code stands), any other write error
/// (a full disk) still one line and exit 1.
#[derive(Default)]
pub struct Report {
    failed: Option<Error>,
}

impl Report {
    /// Print a line, unless an earlier one could not be written.
    pub fn say(&mut self, line: impl Display) {
        if self.failed.is_none()
            && let Err(e) = say(line)
        {
            self.failed = Some(e);
        }
    }

    /// The command's end after its work, which ended with `code`.
    pub fn finish(self, code: i32) -> Result<i32> {
        match self.failed {
            Some(e) if !e.is_quiet() => Err(e),
            _ => Ok(code),
        }
    }
}

/// Parse a command's arguments: positional values are collected; `-h`/`--help` prints
/// `help` and gives `None`; every other flag goes to `flag`, which takes it (reading its
/// value from the parser) and returns true, or returns false for a flag the command does
/// not have (a usage error).
pub fn parse_args(
    command: &'static str,
    help: &str,
    args: Vec<OsString>,
    mut flag: impl FnMut(&str, &mut lexopt::Parser) -> Result<bool>,
) -> Result<Option<Vec<OsString>>> {
    let mut values = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(usage(command))? {
        let key = match arg {
            lexopt::Arg::Value(v) => {
                values.push(v);
                continue;
            }
            lexopt::Arg::Short(c) => format!("-{c}"),
            lexopt::Arg::Long(l) => format!("--{l}"),
        };
        if key == "-h" || key == "--help" {
            say(help)?;
            return Ok(None);
        }
        if !flag(&key, &mut parser)? {
            return Err(Error::usage(command, format!("unknown flag '{key}'")));
        }
    }
    Ok(Some(values))
}

/// At most one positional argument; `hint` follows the error for a second one.
pub fn at_most_one(
    command: &'static str,
    values: Vec<OsString>,
    hint: &str,
) -> Result<Option<OsString>> {
    let mut values = values.into_iter();
    let first = values.next();
    match values.next() {
        None => Ok(first),
        Some(extra) => Err(Error::usage(
            command,
            format!("unexpected argument {:?}{hint}", extra.to_string_lossy()),
        )),
    }
}

/// No positional arguments at all.
pub fn no_values(command: &'static str, values: &[OsString]) -> Result<()> {
    match values.first() {
        None => Ok(()),
        Some(v) => Err(Error::usage(
            command,
            format!("unexpected argument {:?}", v.to_string_lossy()),
        )),
    }
}

/// Positional arguments as run names or IDs.
pub fn run_queries(values: Vec<OsString>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect()
}

/// Map a lexopt error to a usage error of `command`.
pub fn usage(command: &'static str) -> impl Fn(lexopt::Error) -> Error {
    move |e| Error::usage(command, e.to_string())
}

/// A flag's value as a UTF-8 string.
pub fn string_value(command: &'static str, parser: &mut lexopt::Parser) -> Result<String> {
    let value = parser.value().map_err(usage(command))?;
    value
        .into_string()
        .map_err(|v| Error::usage(command, format!("{v:?} is not valid UTF-8")))
}
