//! The Docker Engine API over the endpoint's connections: the negotiated API version, and
//! one request helper that puts a deadline on every call (on each read and write for the
//! calls that move a stream) and turns the daemon's `{"message": ...}` into the error text.

use crate::io_reason::io_reason;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use ureq::config::Config;
use ureq::{Agent, RequestBuilder, SendBody};

use super::transport::{EngineConnector, NoResolver};
use crate::runtime::endpoint::{Address, DialError, Dialer, Endpoint};
use crate::runtime::{Error, ErrorKind, Result};

/// The newest API version moat speaks. Older engines are spoken to in their own version;
/// newer ones accept this one (current engines' minimum is below it).
const MAX_API: (u32, u32) = (1, 47);

/// Deadline for ordinary calls (inspect, create, remove...).
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Longer than any call's deadline can usefully be (the flags stop at a year), and short
/// enough that ureq's `Instant + deadline` cannot overflow and panic on a saturated one.
const LONGEST_CALL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// What a request sends.
enum Payload<'a> {
    Empty,
    Json(&'a [u8]),
    Tar(Box<dyn Read + Send>),
}

/// How long a call may take: all of it (`None` only for the calls that wait for the run
/// itself), or each read and write of a stream.
#[derive(Clone, Copy)]
enum Deadline {
    Whole(Option<Duration>),
    Idle(Duration),
}

#[derive(Clone)]
pub struct Client {
    agent: Agent,
    dialer: Arc<Dialer>,
    /// e.g. `1.41`
    api: String,
}

#[derive(Deserialize)]
struct Version {
    #[serde(rename = "ApiVersion")]
    api_version: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

fn parse_api(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Client {
    /// Reach the engine and agree on an API version.
    pub fn connect(endpoint: Endpoint) -> Result<Client> {
        let url = endpoint.url();
        let dialer =
            Arc::new(Dialer::new(endpoint).map_err(|why| {
                Error::new(ErrorKind::Unreachable, format!("cannot use {url}"), why)
            })?);
        let config = Config::builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = Agent::with_parts(
            config,
            EngineConnector {
                dialer: dialer.clone(),
            },
            NoResolver,
        );
        let mut client = Client {
            agent,
            dialer,
            api: String::new(),
        };
        // `/_ping` names the engine's API version in a header and costs a fraction of
        // `/version`, which gathers kernel and component details moat does not need.
        let what = "asking Docker for its API version";
        let response = client.open(what, "GET", "/_ping", None, Some(Duration::from_secs(10)))?;
        let announced = response
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        drop(response);
        let announced = match announced {
            Some(v) => v,
            // An engine too old to say: ask the long way.
            None => {
                let (_, body) =
                    client.call(what, "GET", "/version", None, Some(Duration::from_secs(10)))?;
                serde_json::from_slice::<Version>(&body)
                    .map_err(|e| {
                        Error::new(ErrorKind::Other, what, format!("unexpected answer: {e}"))
                    })?
                    .api_version
            }
        };
        let server = parse_api(&announced).unwrap_or(MAX_API);
        let (major, minor) = server.min(MAX_API);
        client.api = format!("{major}.{minor}");
        log::debug!("docker API {} (server {announced})", client.api);
        Ok(client)
    }

    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    pub fn api_at_least(&self, major: u32, minor: u32) -> bool {
        parse_api(&self.api).is_some_and(|v| v >= (major, minor))
    }

    /// The request path with the API version prefix.
    pub fn versioned(&self, path: &str) -> String {
        if self.api.is_empty() {
            path.to_string()
        } else {
            format!("/v{}{}", self.api, path)
        }
    }

    /// Turn a transport failure into a moat error: an endpoint that cannot be dialled is
    /// "unreachable", a connection that breaks mid-call is "connection lost".
    pub fn transport_error(&self, what: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Io(io) => match DialError::of(&io) {
                Some(_) => self.unreachable(&io),
                None => Error::new(
                    ErrorKind::ConnectionLost,
                    what,
                    format!("connection to Docker lost: {}", io_reason(&io)),
                ),
            },
            ureq::Error::Timeout(_) => Error::new(
                ErrorKind::Timeout,
                what,
                "Docker did not answer in time".to_string(),
            ),
            other => Error::new(ErrorKind::ConnectionLost, what, other.to_string()),
        }
    }

    pub fn unreachable(&self, io: &std::io::Error) -> Error {
        unreachable_at(self.dialer.endpoint(), io)
    }

    /// Build a request and send it with `payload` under `deadline`.
    fn send(
        &self,
        method: &str,
        path: &str,
        payload: Payload,
        deadline: Deadline,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let url = format!("http://docker{}", self.versioned(path));
        let (whole, idle) = match deadline {
            Deadline::Whole(d) => (d.map(|d| d.min(LONGEST_CALL)), None),
            Deadline::Idle(d) => (None, Some(d.min(LONGEST_CALL))),
        };
        fn timed<B>(
            req: RequestBuilder<B>,
            whole: Option<Duration>,
            idle: Option<Duration>,
        ) -> RequestBuilder<B> {
            req.config()
                .timeout_global(whole)
                .timeout_per_read(idle)
                .timeout_per_write(idle)
                .build()
        }
        match method {
            "GET" => timed(self.agent.get(&url), whole, idle).call(),
            "DELETE" => timed(self.agent.delete(&url), whole, idle).call(),
            _ => {
                let req = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                let req = timed(req, whole, idle);
                match payload {
                    Payload::Empty => req.send_empty(),
                    Payload::Json(b) => req.header("Content-Type", "application/json").send(b),
                    // Sent as it is read, in chunks: it is never whole in memory.
                    Payload::Tar(r) => req
                        .header("Content-Type", "application/x-tar")
                        .send(SendBody::from_owned_reader(r)),
                }
            }
        }
    }

    /// Make a call and return the response, with 4xx/5xx turned into errors carrying the
    /// daemon's message. The body is left unread (for streams).
    pub fn open(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        deadline: Option<Duration>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let payload = body.map_or(Payload::Empty, Payload::Json);
        self.exchange(what, method, path, payload, Deadline::Whole(deadline))
    }

    /// Make a call that moves a stream (a tar archive in `tar`, or one in the answer,
    /// left unread): its deadline is for each read and write, not the whole, which lasts
    /// as long as the data does.
    pub fn stream(
        &self,
        what: &str,
        method: &str,
        path: &str,
        tar: Option<Box<dyn Read + Send>>,
        idle: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let payload = tar.map_or(Payload::Empty, Payload::Tar);
        self.exchange(what, method, path, payload, Deadline::Idle(idle))
    }

    fn exchange(
        &self,
        what: &str,
        method: &str,
        path: &str,
        payload: Payload,
        deadline: Deadline,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let response = self
            .send(method, path, payload, deadline)
            .map_err(|e| self.transport_error(what, e))?;
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(response);
        }
        let mut text = String::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(64 * 1024)
            .read_to_string(&mut text);
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.message)
            .unwrap_or_else(|_| format!("HTTP {status}: {}", text.trim()));
        let kind = if status == 404 {
            ErrorKind::NotFound
        } else {
            ErrorKind::Other
        };
        Err(Error::new(kind, what, message))
    }

    /// Make a call and read the whole answer: (status, body).
    pub fn call(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        deadline: Option<Duration>,
    ) -> Result<(u16, Vec<u8>)> {
        let response = self.open(what, method, path, body, deadline)?;
        let status = response.status().as_u16();
        let mut data = Vec::new();
        response
            .into_body()
            .into_reader()
            .read_to_end(&mut data)
            .map_err(|e| {
                Error::new(
                    ErrorKind::ConnectionLost,
                    what,
                    format!("reading Docker's answer: {}", io_reason(&e)),
                )
            })?;
        Ok((status, data))
    }
}

/// The error for an endpoint that cannot be dialled, with the advice that fits the cause:
/// a socket that is there but not ours to use is a permissions matter, not a dead daemon;
/// ssh and TLS speak for themselves.
fn unreachable_at(endpoint: &Endpoint, io: &std::io::Error) -> Error {
    let reason = match DialError::of(io) {
        Some(d) => d.message.clone(),
        None => io_reason(io).to_string(),
    };
    let kind = DialError::of(io).map_or(io.kind(), |d| d.kind);
    let advice = match (&endpoint.address, kind) {
        (_, std::io::ErrorKind::InvalidData) => None,
        (Address::Ssh { .. }, _) => None,
        (Address::Unix(_), std::io::ErrorKind::PermissionDenied) => {
            Some("join the docker group and log in again, or use sudo")
        }
        (Address::Unix(_), _) => Some("is the engine running? set DOCKER_HOST to point elsewhere"),
        (Address::Tcp { .. }, _) => Some("is the engine listening there?"),
    };
    let detail = match advice {
        Some(advice) => format!("{reason} ({advice})"),
        None => reason,
    };
    Error::new(
        ErrorKind::Unreachable,
        format!("cannot reach the engine at {}", endpoint.url()),
        detail,
    )
}

/// Percent-encode a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert_eq!(parse_api("1.41"), Some((1, 41)));
        assert!(parse_api("1.9") < parse_api("1.41"));
        assert_eq!(parse_api("x"), None);
    }

    #[test]
    fn a_socket_we_may_not_use_is_not_a_dead_daemon() {
        let socket = &Endpoint::unix("/var/run/docker.sock", "test");
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let text = unreachable_at(socket, &denied).to_string();
        assert!(
            text.contains("docker group") && text.contains("sudo"),
            "{text}"
        );
        assert!(!text.contains("engine running"), "{text}");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = unreachable_at(socket, &missing).to_string();
        assert!(text.contains("is the engine running?"), "{text}");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("a b/c:d"), "a%20b%2Fc%3Ad");
        assert_eq!(
            encode("{\"label\":[\"x=y\"]}"),
            "%7B%22label%22%3A%5B%22x%3Dy%22%5D%7D"
        );
    }
}
