//! `moat list` (`ls`): the entry point for listing runs.

use std::ffi::OsString;
use std::time::SystemTime;

use super::{no_values, parse_args, say, say_text};
use crate::error::{Error, Result};
use crate::run::reconcile::{self, Listed};
use crate::runtime::Connections;
use crate::store::{Record, Store};
use crate::{term, time};

const HELP: &str = "\
List runs, newest first

Usage: moat list [--json | -q]

Flags:
      --json     print an array of the runs' records (the metadata.json keys)
  -q, --quiet    print run IDs only
  -h, --help     show this help";

/// Entry point for `moat list`.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let mut json = false;
    let mut quiet = false;
    let Some(values) = parse_args("list", HELP, args, |key, _| {
        match key {
            "--json" => json = true,
            "-q" | "--quiet" => quiet = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?
    else {
        return Ok(0);
    };
    no_values("list", &values)?;
    if json && quiet {
        return Err(Error::usage(
            "list",
            "--json and -q cannot be used together",
        ));
    }
    let store = Store::open()?;
    // Live-looking runs are checked (and settled if their owner is gone); finished runs
    // cost no engine call.
    let mut conns = Connections::default();
    let entries = reconcile::check_all(&store, &mut conns)?;

    if json {
        let records: Vec<&Record> = entries
            .iter()
            .filter_map(|e| match e {
                Listed::Run(c) => Some(&c.record),
                Listed::Corrupt { .. } => None,
            })
            .collect();
        say(serde_json::to_string_pretty(&records).expect("records serialise"))?;
        report_corrupt(&entries);
        return Ok(0);
    }
    if quiet {
        let mut ids = String::new();
        for e in &entries {
            if let Listed::Run(c) = e {
                ids.push_str(&c.record.id);
                ids.push('\n');
            }
        }
        say_text(&ids)?;
        return Ok(0);
    }
    if entries.is_empty() {
        say("No runs")?;
        return Ok(0);
    }
    let now = SystemTime::now();
    let mut rows = vec![[
        "NAME".to_string(),
        "RUN ID".into(),
        "STATE".into(),
        "EXIT".into(),
        "AGE".into(),
        "IMAGE".into(),
        "COMMAND".into(),
        "PORTS".into(),
    ]];
    for e in &entries {
        let row = match e {
            Listed::Run(c) => {
                let r = &c.record;
                [
                    r.name.clone(),
                    r.id.clone(),
                    c.state_text(),
                    r.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    time::parse_rfc3339(&r.created_at)
                        .map(|t| time::age(t, now))
                        .unwrap_or_else(|| "?".into()),
                    r.image.clone(),
                    command_text(&r.command),
                    // Published ports are the live run's: they close with it.
                    if c.state_text() == "running" {
                        r.ports.join(", ")
                    } else {
                        String::new()
                    },
                ]
            }
            Listed::Corrupt { dir, why } => [
                "-".into(),
                dir.clone(),
                "corrupt".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                why.clone(),
                String::new(),
            ],
        };
        // Recorded text is shown, never acted on by the terminal.
        rows.push(row.map(|cell| term::printable(&cell).into_owned()));
    }
    say_text(&table(&rows))?;
    Ok(0)
}

/// Say on stderr which run directories could not be read (`--json` keeps stdout parseable).
fn report_corrupt(entries: &[Listed]) {
    for e in entries {
        if let Listed::Corrupt { dir, why } = e {
            term::warn(format_args!(
                "run {} is corrupt: {}",
                term::printable(dir),
                term::printable(why)
            ));
        }
    }
}

/// A command as a user would type it, shortened for the table.
pub fn command_text(argv: &[String]) -> String {
    if argv.is_empty() {
        return "(image default)".into();
    }
    let text = argv
        .iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.replace(['\n', '\r', '\t'], " ");
    // Escaped before it is cut, so the table shows at most 40 characters.
    let text = term::printable(&text).into_owned();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(37).collect::<String>())
    } else {
        text
    }
}

/// The rows as lines of columns two spaces apart.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
