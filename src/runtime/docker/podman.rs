//! Where Podman's Docker-compatible API differs from Docker's, and how moat makes up for
//! it. (Podman reports `stopped` for a moment between a container's exit and `exited`:
//! [`super::Docker::inspect`] reads it as ended. An exec error without init arrives as the
//! attach answer rather than from start: [`super::Docker::start`] classifies both.)

use super::client::{CALL_DEADLINE, Client};
use crate::runtime::{Error, ErrorKind};

/// How many of the log's last lines are read after an exit 1.
const LOG_TAIL: usize = 20;

/// The exit code of a command Podman's init could not run, when that is why the container
/// exited 1. Podman's init, catatonit, exits 1 when it cannot exec the command, where
/// Docker's (tini) exits 127 or 126 as a shell does, and the compatible API ignores another
/// init; moat's promise of 127 and 126 holds on Podman by reading catatonit's message
/// (`ERROR (catatonit:6): failed to exec pid1: No such file or directory`) from the log.
pub fn init_could_not_run(client: &Client, id: &str) -> Option<Error> {
    let read = |tail: &str| {
        client
            .call(
                "reading the container's log",
                "GET",
                // Both streams: under a TTY the message is on the terminal's one.
                &format!("/containers/{id}/logs?stdout=1&stderr=1{tail}"),
                None,
                Some(CALL_DEADLINE),
            )
            .map_err(|e| log::debug!("reading the log after an exit 1: {e}"))
            .ok()
            .map(|(_, log)| log)
    };
    // The end of the log is enough, but Podman's `tail` drops a line written in pieces
    // (catatonit's complaint is): a log shorter than the tail asked for is small, and is
    // read whole.
    let mut log = read(&format!("&tail={LOG_TAIL}"))?;
    if log.iter().filter(|b| **b == b'\n').count() < LOG_TAIL {
        log = read("")?;
    }
    let log = String::from_utf8_lossy(&log);
    log::debug!("the log's end after an exit 1: {log:?}");
    let (kind, reason) = could_not_run(&log)?;
    // catatonit does not say which command: the container's config does.
    let command = client
        .call(
            "inspecting the container",
            "GET",
            &format!("/containers/{id}/json"),
            None,
            Some(CALL_DEADLINE),
        )
        .ok()
        .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|v| v["Config"]["Cmd"][0].as_str().map(str::to_string))
        .unwrap_or_else(|| "the command".into());
    Some(Error::new(
        kind,
        "starting the container",
        format!("exec {command} failed: {reason}"),
    ))
}

/// What catatonit's complaint in `log` says, if it is there: 127's kind or 126's, and
/// its reason.
fn could_not_run(log: &str) -> Option<(ErrorKind, &str)> {
    let line = log
        .lines()
        // catatonit writes its prefix (`ERROR (catatonit:6): `) apart from the rest.
        .find(|l| l.contains("failed to exec pid1:"))?;
    let reason = line.rsplit_once("failed to exec pid1:")?.1.trim();
    let lower = reason.to_ascii_lowercase();
    if lower.contains("no such file or directory") {
        Some((ErrorKind::CommandNotFound, reason))
    } else if lower.contains("permission denied") || lower.contains("exec format error") {
        Some((ErrorKind::CommandNotExecutable, reason))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catatonits_complaints_are_127_and_126() {
        // The multiplexed frame header precedes the text in the log.
        let missing = "\u{2}\0\0\0\0\0\0\u{45}ERROR (catatonit:6): failed to exec pid1: No such file or directory\n";
        assert_eq!(
            could_not_run(missing),
            Some((ErrorKind::CommandNotFound, "No such file or directory"))
        );
        let denied = "ERROR (catatonit:6): failed to exec pid1: Permission denied\n";
        assert_eq!(
            could_not_run(denied),
            Some((ErrorKind::CommandNotExecutable, "Permission denied"))
        );
        assert_eq!(
            could_not_run("failed to exec pid1: No such file or directory\n"),
            Some((ErrorKind::CommandNotFound, "No such file or directory"))
        );
        assert_eq!(could_not_run("ERROR: something else\n"), None);
        assert_eq!(could_not_run(""), None);
    }
}
