//! Pulling a missing image. The engine streams JSON progress messages; an `error` message
//! in the stream is the pull's failure even though the HTTP status was 200.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::Deserialize;

use super::client::{Client, encode};
use crate::io_reason::io_reason;
use crate::runtime::{Error, ErrorKind, Progress, Result};

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
struct Message {
    status: Option<String>,
    id: Option<String>,
    progress: Option<String>,
    error: Option<String>,
}

pub fn pull(
    client: &Client,
    image: &str,
    platform: Option<&str>,
    progress: Option<Progress>,
) -> Result<()> {
    let what = format!("pulling image {image}");
    let (repo, tag) = split_reference(image);
    let mut path = format!("/images/create?fromImage={}", encode(repo));
    if let Some(tag) = tag {
        path.push_str(&format!("&tag={}", encode(tag)));
    }
    if let Some(platform) = platform {
        path.push_str(&format!("&platform={}", encode(platform)));
    }
    let response = client.open(&what, "POST", &path, None, Some(PULL_DEADLINE))?;
    let reader = BufReader::new(response.into_body().into_reader());
    follow(reader, &what, progress)
}

/// Reads the engine's progress messages to the end, telling each to `progress`. An
/// `error` message is the pull's failure.
fn follow(reader: impl BufRead, what: &str, mut progress: Option<Progress>) -> Result<()> {
    for line in reader.lines() {
        let line = line.map_err(|e| {
            Error::new(
                ErrorKind::ConnectionLost,
                what,
                format!("connection to Docker lost: {}", io_reason(&e)),
            )
        })?;
        let Ok(msg) = serde_json::from_str::<Message>(&line) else {
            continue;
        };
        if let Some(error) = msg.error {
            return Err(Error::new(ErrorKind::NotFound, what, error));
        }
        if let Some(progress) = &mut progress {
            let text = [msg.id, msg.status, msg.progress]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            progress(&text);
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
