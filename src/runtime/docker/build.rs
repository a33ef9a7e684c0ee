//! Building an image with the engine's classic builder (`POST /build` with a tar
//! context): it runs on Engine 20.10 and on Podman's compatible API alike. The engine
//! streams JSON messages; `stream` holds the builder's output, an `error` message is the
//! build's failure even though the HTTP status was 200. The image is tagged only when the
//! build completed; its intermediate containers are removed either way (`forcerm`).

use std::io::{BufRead, BufReader, Cursor};
use std::time::Duration;

use serde::Deserialize;

use super::client::{Client, encode};
use crate::io_reason::io_reason;
use crate::runtime::{Error, ErrorKind, Result};

/// A step (an `npm install`) may print nothing for minutes; a build silent for longer
/// than this is stalled.
const BUILD_IDLE: Duration = Duration::from_secs(15 * 60);

#[derive(Deserialize)]
struct Message {
    stream: Option<String>,
    error: Option<String>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

pub fn build(
    client: &Client,
    tag: &str,
    labels: &[(String, String)],
    context: Vec<u8>,
    output: &mut dyn FnMut(&str),
) -> Result<()> {
    let what = format!("building image {tag}");
    let labels = super::create::labels(labels).to_string();
    let path = format!(
        "/build?t={}&labels={}&rm=1&forcerm=1",
        encode(tag),
        encode(&labels)
    );
    let response = client.stream(
        &what,
        "POST",
        &path,
        Some(Box::new(Cursor::new(context))),
        BUILD_IDLE,
    )?;
    follow(
        BufReader::new(response.into_body().into_reader()),
        &what,
        output,
    )
}

/// Reads the builder's messages to the end, handing each line of its output to `output`.
/// A `stream` message may hold several lines, or part of one.
fn follow(reader: impl BufRead, what: &str, output: &mut dyn FnMut(&str)) -> Result<()> {
    let mut partial = String::new();
    for line in reader.lines() {
        let line = line.map_err(|e| {
            Error::new(
                ErrorKind::ConnectionLost,
                what,
                format!("connection to the engine lost: {}", io_reason(&e)),
            )
        })?;
        let Ok(msg) = serde_json::from_str::<Message>(&line) else {
            continue;
        };
        if let Some(text) = msg.stream {
            partial.push_str(&text);
            while let Some(end) = partial.find('\n') {
                output(&without_colours(&partial[..end]));
                partial.drain(..=end);
            }
        }
        let error = msg.error.or(msg.error_detail.and_then(|d| d.message));
        if let Some(error) = error {
            if !partial.is_empty() {
                output(&without_colours(&partial));
            }
            return Err(Error::new(ErrorKind::Other, what, error.trim().to_string()));
        }
    }
    if !partial.is_empty() {
        output(&without_colours(&partial));
    }
    Ok(())
}

/// The classic builder wraps what a step writes to stderr in colour codes (`ESC[91m`
/// ... `ESC[0m`); a log line is plain text.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: `ESC [` parameters, then one final byte in `@`..=`~`.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(stream: &str) -> (Vec<String>, Result<()>) {
        let mut lines = Vec::new();
        let result = follow(stream.as_bytes(), "building", &mut |l: &str| {
            lines.push(l.to_string())
        });
        (lines, result)
    }

    #[test]
    fn output_is_split_into_lines_across_messages() {
        let stream = concat!(
            r#"{"stream":"Step 1/2 : FROM x\n"}"#,
            "\n",
            r#"{"stream":" ---> abc\nStep 2/2 : RUN "}"#,
            "\n",
            r#"{"stream":"make\n"}"#,
            "\n",
            r#"{"aux":{"ID":"sha256:1"}}"#,
            "\n",
        );
        let (lines, result) = lines_of(stream);
        assert!(result.is_ok());
        assert_eq!(
            lines,
            ["Step 1/2 : FROM x", " ---> abc", "Step 2/2 : RUN make"]
        );
    }

    #[test]
    fn colour_codes_are_left_out() {
        assert_eq!(without_colours("\x1b[91mnot found\x1b[0m"), "not found");
        assert_eq!(without_colours("plain"), "plain");
    }

    #[test]
    fn an_error_message_fails_the_build() {
        let stream = concat!(
            r#"{"stream":"npm ERR! 404"}"#,
            "\n",
            r#"{"errorDetail":{"code":1,"message":"returned a non-zero code: 1"},"error":"returned a non-zero code: 1"}"#,
            "\n",
        );
        let (lines, result) = lines_of(stream);
        assert_eq!(lines, ["npm ERR! 404"]);
        assert_eq!(result.unwrap_err().detail, "returned a non-zero code: 1");
    }
}
