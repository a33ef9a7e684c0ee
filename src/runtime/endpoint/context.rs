//! Docker contexts, read from the docker CLI's context store as it lays it out:
//! `$DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json` holds the endpoint, and
//! `contexts/tls/<sha256>/docker/{ca,cert,key}.pem` its TLS material.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Endpoint, PLAIN_PORT, TLS_PORT, Tls};
use crate::runtime::{Error, ErrorKind, Result};

/// The context that means "no context": `DOCKER_HOST` or the default socket.
pub const DEFAULT: &str = "default";

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "currentContext", default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Endpoints", default)]
    endpoints: std::collections::HashMap<String, EndpointMeta>,
}

#[derive(Deserialize)]
struct EndpointMeta {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The context `config.json` makes current, if it names one. A config file that cannot be
/// read names none (the docker CLI, too, goes on without it).
pub fn current(config_dir: &Path) -> Option<String> {
    let text = std::fs::read(config_dir.join("config.json")).ok()?;
    match serde_json::from_slice::<ConfigFile>(&text) {
        Ok(config) => Some(config.current_context).filter(|c| !c.is_empty()),
        Err(e) => {
            log::debug!("ignoring {}: {e}", config_dir.join("config.json").display());
            None
        }
    }
}

/// The endpoint of context `name`; `from` says what named it.
pub fn load(config_dir: &Path, name: &str, from: &str) -> Result<Endpoint> {
    let what = format!("cannot use Docker context {name:?} (from {from})");
    let dir = digest_dir(name);
    let meta_file = config_dir
        .join("contexts/meta")
        .join(&dir)
        .join("meta.json");
    let text = match std::fs::read(&meta_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                ErrorKind::Unreachable,
                what,
                format!(
                    "no such context in {} (`docker context ls` lists them; `default` is \
                     DOCKER_HOST or the default socket)",
                    config_dir.join("contexts").display()
                ),
            ));
        }
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Unreachable,
                what,
                format!(
                    "reading {}: {}",
                    meta_file.display(),
                    crate::io_reason::io_reason(&e)
                ),
            ));
        }
    };
    let meta: Meta = serde_json::from_slice(&text).map_err(|e| {
        Error::new(
            ErrorKind::Unreachable,
            &what,
            format!("{} is not a context: {e}", meta_file.display()),
        )
    })?;
    let Some(docker) = meta.endpoints.get("docker") else {
        return Err(Error::new(
            ErrorKind::Unreachable,
            what,
            "the context has no docker endpoint",
        ));
    };
    let tls_dir = config_dir.join("contexts/tls").join(&dir).join("docker");
    let tls = tls_in(&tls_dir, docker.skip_tls_verify);
    let host = if docker.host.is_empty() {
        format!("unix://{}", super::DOCKER_SOCKET)
    } else {
        docker.host.clone()
    };
    let default_port = if tls.is_some() { TLS_PORT } else { PLAIN_PORT };
    let address = super::parse_url_with(&host, default_port)
        .map_err(|e| Error::new(ErrorKind::Unreachable, &what, e))?;
    let tls = tls.filter(|_| matches!(address, super::Address::Tcp { .. }));
    Ok(Endpoint {
        address,
        tls,
        source: format!("context {name:?} ({from})"),
    })
}

/// The context's TLS, as the docker CLI takes it: on when it stores any TLS file or skips
/// verification; a client certificate only with its key.
fn tls_in(dir: &Path, skip_verify: bool) -> Option<Tls> {
    let present = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
    let (ca, cert, key) = (present("ca.pem"), present("cert.pem"), present("key.pem"));
    if ca.is_none() && cert.is_none() && key.is_none() && !skip_verify {
        return None;
    }
    let (cert, key) = match (cert, key) {
        (Some(cert), Some(key)) => (Some(cert), Some(key)),
        _ => (None, None),
    };
    Some(Tls {
        ca,
        cert,
        key,
        verify: !skip_verify,
    })
}

/// The directory name the context store gives a context: the hex SHA-256 of its name.
fn digest_dir(name: &str) -> PathBuf {
    PathBuf::from(crate::digest::sha256_hex(&[name.as_bytes()], 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("moat-ctx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_directory_is_the_names_sha256() {
        // `printf remote | sha256sum`
        assert_eq!(
            digest_dir("remote"),
            PathBuf::from("b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a")
        );
    }

    #[test]
    fn a_context_with_tls_files_is_a_verified_tls_endpoint() {
        let config = scratch("tls");
        std::fs::write(
            config.join("config.json"),
            r#"{"auths":{},"currentContext":"remote"}"#,
        )
        .unwrap();
        assert_eq!(current(&config).as_deref(), Some("remote"));
        let meta = config.join("contexts/meta").join(digest_dir("remote"));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.9:2376","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let tls = config
            .join("contexts/tls")
            .join(digest_dir("remote"))
            .join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(tls.join(f), "x").unwrap();
        }
        let e = load(&config, "remote", "config.json").unwrap();
        assert_eq!(e.url(), "tcp://10.0.0.9:2376");
        assert_eq!(
            e.tls,
            Some(Tls {
                ca: Some(tls.join("ca.pem")),
                cert: Some(tls.join("cert.pem")),
                key: Some(tls.join("key.pem")),
                verify: true
            })
        );
        assert!(e.source.contains("\"remote\""), "{}", e.source);
        std::fs::remove_dir_all(&config).unwrap();
    }

    #[test]
    fn a_missing_context_is_named_with_where_it_was_looked_for() {
        let config = scratch("missing");
        let e = load(&config, "nope", "DOCKER_CONTEXT")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nope\"") && e.contains("DOCKER_CONTEXT"),
            "{e}"
        );
        assert!(e.contains("docker context ls"), "{e}");
        std::fs::remove_dir_all(&config).unwrap();
    }
}
