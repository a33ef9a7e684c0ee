//! Pulling a missing image. The engine streams JSON progress messages; an `error` message
//! in the stream is the pull's failure even though the HTTP status was 200.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde::Deserialize;

use super::client::{Client, encode};
use crate::io_reason::io_reason;
use crate::runtime::{Error, ErrorKind, Result};

/// A pull may be large; it still gets a deadline so a stalled registry cannot hang moat.
const PULL_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Split `repo[:tag]` (or `repo@digest`) into what `/images/create` takes.
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, Some("latest")),
    }
}

#[derive(Deserialize)]
struct Progress {
    status: Option<String>,
    id: Option<String>,
    progress: Option<String>,
    error: Option<String>,
}

pub fn pull(client: &Client, image: &str, show_progress: bool) -> Result<()> {
    let what = format!("pulling image {image}");
    let (repo, tag) = split_reference(image);
    let mut path = format!("/images/create?fromImage={}", encode(repo));
    if let Some(tag) = tag {
        path.push_str(&format!("&tag={}", encode(tag)));
    }
    if show_progress {
        eprintln!("Pulling image {image}...");
    }
    let response = client.open(&what, "POST", &path, None, Some(PULL_DEADLINE))?;
    let reader = BufReader::new(response.into_body().into_reader());
    let mut drawn = false;
    let result = follow(reader, &what, show_progress, &mut drawn);
    // A progress line is drawn without its newline: end it however the pull ended, so
    // that an error, like the command's output, starts a line of its own.
    if drawn {
        eprintln!();
    }
    result
}

/// Reads the engine's progress messages to the end, drawing each over the last when
/// `show_progress` (and then setting `drawn`). An `error` message is the pull's failure.
fn follow(reader: impl BufRead, what: &str, show_progress: bool, drawn: &mut bool) -> Result<()> {
    let stderr = std::io::stderr();
    for line in reader.lines() {
        let line = line.map_err(|e| {
            Error::new(
                ErrorKind::ConnectionLost,
                what,
                format!("connection to Docker lost: {}", io_reason(&e)),
            )
        })?;
        let Ok(msg) = serde_json::from_str::<Progress>(&line) else {
            continue;
        };
        if let Some(error) = msg.error {
            return Err(Error::new(ErrorKind::NotFound, what, error));
        }
        if show_progress {
            *drawn = true;
            let mut err = stderr.lock();
            let text = [msg.id, msg.status, msg.progress]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let _ = write!(err, "\r\x1b[K{text}");
            let _ = err.flush();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn splits_references() {
        assert_eq!(split_reference("ubuntu"), ("ubuntu", Some("latest")));
        assert_eq!(split_reference("ubuntu:22.04"), ("ubuntu", Some("22.04")));
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b", Some("latest"))
        );
        assert_eq!(
            split_reference("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b", Some("v1"))
        );
        assert_eq!(split_reference("a@sha256:00"), ("a@sha256:00", None));
    }
}
