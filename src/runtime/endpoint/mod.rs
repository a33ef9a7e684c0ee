//! How to reach an engine. [`find_docker`] and [`find_podman`] find the endpoint as the
//! docker CLI (and Podman) would: `DOCKER_HOST` (a Unix socket, TCP with or without TLS,
//! ssh through `docker system dial-stdio`), else the Docker context, else the default
//! socket, else Podman's. A [`Dialer`] turns an endpoint into a [`Conn`], the one byte
//! stream both the HTTP client and the attach stream use.

mod conn;
mod context;
mod dialer;
mod env;
mod ssh;
mod tls;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use conn::{Closer, Conn, Reader, Writer};
pub use dialer::{DialError, Dialer};
pub use env::{find_docker, find_podman};

/// The default Docker socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
    /// `ssh://[USER@]HOST[:PORT][/SOCKET]`: the far side runs `docker system dial-stdio`
    /// (against SOCKET when given).
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        socket: Option<String>,
    },
}

/// TLS for a TCP endpoint: the files that hold the CA, the client certificate and its key,
/// and whether the server's certificate is verified (`DOCKER_TLS=1` alone does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    pub verify: bool,
}

/// An engine's address, how to secure it, and why moat chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Address,
    pub tls: Option<Tls>,
    /// Why this endpoint: `DOCKER_HOST`, `context "NAME"`, `the default socket`...
    pub source: String,
}

/// An endpoint as a run's record keeps it, so later commands reach the same engine: its
/// URL and TLS files (paths only: no secret is written), and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub source: String,
}

impl Saved {
    /// The endpoint as the record holds it (JSON: the record does not know the type).
    pub fn from_record(value: &serde_json::Value) -> crate::runtime::Result<Saved> {
        serde_json::from_value(value.clone()).map_err(|e| {
            crate::runtime::Error::new(
                crate::runtime::ErrorKind::Unreachable,
                "reading the run's recorded endpoint",
                e.to_string(),
            )
        })
    }

    pub fn to_record(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an endpoint always serialises")
    }
}

impl Endpoint {
    pub fn unix(path: impl Into<PathBuf>, source: &str) -> Endpoint {
        Endpoint {
            address: Address::Unix(path.into()),
            tls: None,
            source: source.to_string(),
        }
    }

    /// The endpoint's URL, as `DOCKER_HOST` would name it.
    pub fn url(&self) -> String {
        match &self.address {
            Address::Unix(path) => format!("unix://{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => format!("tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Address::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                let mut url = String::from("ssh://");
                if let Some(user) = user {
                    url.push_str(user);
                    url.push('@');
                }
                if host.contains(':') {
                    url.push_str(&format!("[{host}]"));
                } else {
                    url.push_str(host);
                }
                if let Some(port) = port {
                    url.push_str(&format!(":{port}"));
                }
                if let Some(socket) = socket {
                    url.push_str(socket);
                }
                url
            }
        }
    }

    /// Whether a path on this machine names the same file on the engine's: only an engine
    /// on a local Unix socket shares the host's files (a bind mount works).
    pub fn sees_host_files(&self) -> bool {
        matches!(self.address, Address::Unix(_))
    }

    pub fn save(&self) -> Saved {
        Saved {
            url: self.url(),
            tls: self.tls.clone(),
            source: self.source.clone(),
        }
    }

    pub fn from_saved(saved: &Saved) -> Result<Endpoint, String> {
        let address = parse_url(&saved.url)?;
        Ok(Endpoint {
            address,
            tls: saved.tls.clone(),
            source: saved.source.clone(),
        })
    }
}

/// One line: the URL, its security and why, e.g.
/// `tcp://10.0.0.5:2376 (TLS, verified with ~/.docker/ca.pem; from DOCKER_HOST)`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.url())?;
        match &self.tls {
            Some(tls) => {
                f.write_str("TLS")?;
                match (&tls.ca, tls.verify) {
                    (_, false) => f.write_str(", server not verified")?,
                    (Some(ca), true) => write!(f, ", verified with {}", ca.display())?,
                    (None, true) => f.write_str(", verified with the system's CAs")?,
                }
                if let Some(cert) = &tls.cert {
                    write!(f, ", client certificate {}", cert.display())?;
                }
                f.write_str("; ")?;
            }
            None if matches!(self.address, Address::Tcp { .. }) => f.write_str("plain; ")?,
            None => {}
        }
        write!(f, "from {})", self.source)
    }
}

/// Parse an engine URL as `DOCKER_HOST` holds it.
pub fn parse_url(url: &str) -> Result<Address, String> {
    parse_url_with(url, PLAIN_PORT)
}

/// The ports the docker CLI gives a `tcp://HOST` without one: plain and with TLS.
pub const PLAIN_PORT: u16 = 2375;
pub const TLS_PORT: u16 = 2376;

/// [`parse_url`], with the port a `tcp://HOST` without one gets.
pub fn parse_url_with(url: &str, default_port: u16) -> Result<Address, String> {
    const SUPPORTED: &str = "moat supports unix://PATH, tcp://HOST:PORT and ssh://[USER@]HOST";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not an engine URL ({SUPPORTED})"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "unix" if rest.is_empty() => Ok(Address::Unix(PathBuf::from(DOCKER_SOCKET))),
        "unix" => Ok(Address::Unix(PathBuf::from(rest))),
        "tcp" | "http" | "https" => {
            let authority = rest.trim_end_matches('/');
            if authority.contains('/') {
                return Err(format!(
                    "{url:?}: a path after the address is not supported"
                ));
            }
            let (host, port) = split_host_port(authority)
                .ok_or_else(|| format!("{url:?} is not a valid tcp://HOST:PORT address"))?;
            let port = port.unwrap_or(default_port);
            let host = if host.is_empty() {
                "127.0.0.1".to_string()
            } else {
                host
            };
            Ok(Address::Tcp { host, port })
        }
        "ssh" => parse_ssh(url, rest),
        other => Err(format!(
            "unsupported scheme {other}:// in {url:?} ({SUPPORTED})"
        )),
    }
}

fn parse_ssh(url: &str, rest: &str) -> Result<Address, String> {
    let (authority, socket) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    if rest.contains('?') || rest.contains('#') {
        return Err(format!(
            "{url:?}: query and fragment are not allowed in an ssh URL"
        ));
    }
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => {
            if user.contains(':') {
                return Err(format!("{url:?}: a password in the URL is not supported"));
            }
            (Some(user.to_string()), hostport)
        }
        None => (None, authority),
    };
    let (host, port) =
        split_host_port(hostport).ok_or_else(|| format!("{url:?} is not a valid ssh URL"))?;
    if host.is_empty() || host.starts_with('-') {
        return Err(format!("{url:?} names no host"));
    }
    let socket = socket.filter(|s| s != "/");
    Ok(Address::Ssh {
        user: user.filter(|u| !u.is_empty()),
        host,
        port,
        socket,
    })
}

/// `HOST[:PORT]` or `[V6]:PORT`; `None` when the port is not a number.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host.to_string(), Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host.to_string(), None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_docker_host_names_them() {
        assert_eq!(
            parse_url("unix:///run/x.sock"),
            Ok(Address::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            parse_url("tcp://10.0.0.5:2376"),
            Ok(Address::Tcp {
                host: "10.0.0.5".into(),
                port: 2376
            })
        );
        assert_eq!(
            parse_url_with("tcp://h", TLS_PORT),
            Ok(Address::Tcp {
                host: "h".into(),
                port: 2376
            })
        );
        assert_eq!(
            parse_url("tcp://[::1]:2375"),
            Ok(Address::Tcp {
                host: "::1".into(),
                port: 2375
            })
        );
        assert_eq!(
            parse_url("ssh://me@build:2222"),
            Ok(Address::Ssh {
                user: Some("me".into()),
                host: "build".into(),
                port: Some(2222),
                socket: None
            })
        );
        assert_eq!(
            parse_url("ssh://build/run/user/1000/docker.sock"),
            Ok(Address::Ssh {
                user: None,
                host: "build".into(),
                port: None,
                socket: Some("/run/user/1000/docker.sock".into())
            })
        );
        for bad in [
            "npipe:////./pipe/docker_engine",
            "fd://",
            "10.0.0.5:2375",
            "tcp://host:port",
            "ssh://",
            "ssh://u:pw@host",
            "ssh://-oProxyCommand=x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn endpoints_round_trip_through_their_urls() {
        for url in [
            "unix:///var/run/docker.sock",
            "tcp://127.0.0.1:2376",
            "tcp://[::1]:2375",
            "ssh://root@127.0.0.1:2222",
            "ssh://h/run/docker.sock",
        ] {
            let e = Endpoint {
                address: parse_url(url).unwrap(),
                tls: None,
                source: "test".into(),
            };
            assert_eq!(e.url(), url);
            assert_eq!(Endpoint::from_saved(&e.save()), Ok(e));
        }
    }

    #[test]
    fn the_description_says_how_the_engine_is_secured_and_why() {
        let e = Endpoint {
            address: parse_url("tcp://h:2376").unwrap(),
            tls: Some(Tls {
                ca: Some("/c/ca.pem".into()),
                cert: Some("/c/cert.pem".into()),
                key: Some("/c/key.pem".into()),
                verify: true,
            }),
            source: "DOCKER_HOST".into(),
        };
        assert_eq!(
            e.to_string(),
            "tcp://h:2376 (TLS, verified with /c/ca.pem, client certificate /c/cert.pem; from DOCKER_HOST)"
        );
        let plain = Endpoint {
            tls: None,
            ..e.clone()
        };
        assert_eq!(plain.to_string(), "tcp://h:2376 (plain; from DOCKER_HOST)");
        assert!(!plain.sees_host_files());
        assert!(Endpoint::unix("/x", "default").sees_host_files());
    }
}
