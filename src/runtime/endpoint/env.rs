//! Which endpoint the environment names, read as the docker CLI reads it: `DOCKER_HOST`
//! (with `DOCKER_TLS_VERIFY`, `DOCKER_TLS`, `DOCKER_CERT_PATH`), else the context that
//! `DOCKER_CONTEXT` or the config file's `currentContext` names, else the default socket;
//! and when that does not answer, Podman's socket.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::{Address, DOCKER_SOCKET, Endpoint, PLAIN_PORT, TLS_PORT, Tls, context};
use crate::runtime::{Error, ErrorKind, Kind, Result};

/// Podman's rootful socket.
const PODMAN_ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";

/// The environment, one variable at a time; empty counts as unset, as for the docker CLI.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// This process's environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// The Docker endpoint the environment names. With none named and no engine answering on
/// the default socket, a Podman socket that answers is used: then the kind is Podman.
pub fn find_docker() -> Result<(Endpoint, Kind)> {
    if let Some(found) = named_docker(&ProcessEnv)? {
        return Ok((found, Kind::Docker));
    }
    let default = Endpoint::unix(DOCKER_SOCKET, "the default socket");
    match UnixStream::connect(DOCKER_SOCKET) {
        Ok(_) => Ok((default, Kind::Docker)),
        // There, but not ours to use: that is what the user must hear about.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok((default, Kind::Docker)),
        Err(_) => {
            let answering = podman_sockets(&ProcessEnv)
                .into_iter()
                .find(|s| UnixStream::connect(s).is_ok());
            match answering {
                Some(socket) => Ok((
                    Endpoint::unix(socket, "Podman's socket (no Docker engine answers)"),
                    Kind::Podman,
                )),
                None => Ok((default, Kind::Docker)),
            }
        }
    }
}

/// Podman's endpoint: `CONTAINER_HOST`, else its socket (rootless or rootful).
pub fn find_podman() -> Result<Endpoint> {
    find_podman_in(&ProcessEnv)
}

fn find_podman_in(env: &dyn Env) -> Result<Endpoint> {
    if let Some(host) = env.var("CONTAINER_HOST") {
        let address = super::parse_url(&host).map_err(|e| bad_endpoint("CONTAINER_HOST", e))?;
        if let Address::Ssh { .. } = address {
            return Err(bad_endpoint(
                "CONTAINER_HOST",
                "Podman's ssh connections are not Docker's dial-stdio; moat reaches Podman over \
                 a unix:// or tcp:// address",
            ));
        }
        return Ok(Endpoint {
            address,
            tls: None,
            source: "CONTAINER_HOST".into(),
        });
    }
    first_socket(&podman_sockets(env))
}

/// The first of `candidates` that is a socket, as Podman's endpoint.
fn first_socket(candidates: &[PathBuf]) -> Result<Endpoint> {
    match candidates.iter().find(|s| is_socket(s)) {
        Some(socket) => Ok(Endpoint::unix(socket, "Podman's socket")),
        None => Err(Error::new(
            ErrorKind::Unreachable,
            "cannot find Podman's socket",
            format!(
                "none of {} exists (start it with `systemctl --user start podman.socket` or \
                 `podman system service`, or set CONTAINER_HOST)",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Where Podman's socket may be, the likelier first: a user's own (rootless) service,
/// or the system's when moat runs as root.
fn podman_sockets(env: &dyn Env) -> Vec<PathBuf> {
    let rootless = env
        .var("XDG_RUNTIME_DIR")
        .map(|dir| Path::new(&dir).join("podman/podman.sock"));
    let rootful = PathBuf::from(PODMAN_ROOTFUL_SOCKET);
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    let mut sockets = Vec::new();
    if root {
        sockets.push(rootful);
        sockets.extend(rootless);
    } else {
        sockets.extend(rootless);
        sockets.push(rootful);
    }
    sockets
}

fn is_socket(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// The endpoint `DOCKER_HOST` or a context names, if any does.
fn named_docker(env: &dyn Env) -> Result<Option<Endpoint>> {
    let config_dir = config_dir(env);
    if let Some(host) = env.var("DOCKER_HOST") {
        return from_docker_host(env, &host, &config_dir).map(Some);
    }
    let (name, from) = match env.var("DOCKER_CONTEXT") {
        Some(name) => (name, "DOCKER_CONTEXT"),
        None => match context::current(&config_dir) {
            Some(name) => (name, "currentContext in config.json"),
            None => return Ok(None),
        },
    };
    if name == context::DEFAULT {
        return Ok(None);
    }
    context::load(&config_dir, &name, from).map(Some)
}

/// `$DOCKER_CONFIG`, else `~/.docker`.
fn config_dir(env: &dyn Env) -> PathBuf {
    match env.var("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(&env.var("HOME").unwrap_or_default()).join(".docker"),
    }
}

/// The endpoint `DOCKER_HOST` names, secured as `DOCKER_TLS_VERIFY`, `DOCKER_TLS` and
/// `DOCKER_CERT_PATH` say (they apply to TCP only).
fn from_docker_host(env: &dyn Env, host: &str, config_dir: &Path) -> Result<Endpoint> {
    // As the docker CLI: any non-empty value turns these on, "0" included.
    let verify = env.var("DOCKER_TLS_VERIFY").is_some();
    let tls = verify || env.var("DOCKER_TLS").is_some();
    let default_port = if tls { TLS_PORT } else { PLAIN_PORT };
    let address =
        super::parse_url_with(host, default_port).map_err(|e| bad_endpoint("DOCKER_HOST", e))?;
    let tls = match (&address, tls) {
        (Address::Tcp { .. }, true) => {
            let dir = env
                .var("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| config_dir.to_path_buf());
            Some(tls_files(&dir, verify))
        }
        _ => None,
    };
    Ok(Endpoint {
        address,
        tls,
        source: "DOCKER_HOST".into(),
    })
}

/// TLS from the files in `dir`, as the docker CLI takes them: a client certificate and key
/// only when both files exist; the CA whenever the server is verified (a missing one is
/// then an error when dialling).
pub fn tls_files(dir: &Path, verify: bool) -> Tls {
    let present = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
    let (cert, key) = match (present("cert.pem"), present("key.pem")) {
        (Some(cert), Some(key)) => (Some(cert), Some(key)),
        _ => (None, None),
    };
    Tls {
        ca: if verify {
            Some(dir.join("ca.pem"))
        } else {
            present("ca.pem")
        },
        cert,
        key,
        verify,
    }
}

pub fn bad_endpoint(variable: &str, why: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::Unreachable,
        format!("cannot use {variable}"),
        why.into(),
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::collections::HashMap;

    pub struct FakeEnv(pub HashMap<&'static str, String>);

    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned().filter(|v| !v.is_empty())
        }
    }

    pub fn env(vars: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(vars.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn docker_host_with_tls_verify_takes_the_cert_path() {
        let dir = std::env::temp_dir().join(format!("moat-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let found = named_docker(&env(&[
            ("DOCKER_HOST", "tcp://10.1.2.3"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", dir.to_str().unwrap()),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(found.url(), "tcp://10.1.2.3:2376");
        assert_eq!(
            found.tls,
            Some(Tls {
                ca: Some(dir.join("ca.pem")),
                cert: Some(dir.join("cert.pem")),
                key: Some(dir.join("key.pem")),
                verify: true
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn docker_tls_alone_is_tls_without_verification_or_client_certificate() {
        let found = named_docker(&env(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS", "1"),
            ("DOCKER_CERT_PATH", "/nonexistent"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            found.tls,
            Some(Tls {
                ca: None,
                cert: None,
                key: None,
                verify: false
            })
        );
    }

    #[test]
    fn plain_tcp_and_unix_hosts_have_no_tls() {
        let found = named_docker(&env(&[("DOCKER_HOST", "tcp://h:2375")]))
            .unwrap()
            .unwrap();
        assert_eq!(found.tls, None);
        let found = named_docker(&env(&[
            ("DOCKER_HOST", "unix:///x.sock"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(found.tls, None);
        assert_eq!(found.source, "DOCKER_HOST");
    }

    #[test]
    fn an_unknown_scheme_says_what_is_supported() {
        let e = named_docker(&env(&[("DOCKER_HOST", "npipe:////./pipe/x")])).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("cannot use DOCKER_HOST: "), "{text}");
        assert!(
            text.contains("unix://") && text.contains("ssh://"),
            "{text}"
        );
    }

    #[test]
    fn nothing_named_is_none_and_the_default_context_is_nothing() {
        let home = "/nonexistent-home";
        assert_eq!(named_docker(&env(&[("HOME", home)])).unwrap(), None);
        assert_eq!(
            named_docker(&env(&[("HOME", home), ("DOCKER_CONTEXT", "default")])).unwrap(),
            None
        );
    }

    #[test]
    fn podman_over_ssh_is_refused_and_tcp_is_plain() {
        let e = find_podman_in(&env(&[("CONTAINER_HOST", "ssh://h/run/podman.sock")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CONTAINER_HOST"), "{e}");
        let found = find_podman_in(&env(&[("CONTAINER_HOST", "tcp://h:8080")])).unwrap();
        assert_eq!(found.url(), "tcp://h:8080");
        assert_eq!(found.tls, None);
    }

    #[test]
    fn a_missing_podman_socket_names_where_it_looked() {
        let e = first_socket(&["/nonexistent-xdg/podman/podman.sock".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent-xdg/podman/podman.sock"), "{e}");
        assert!(e.contains("podman system service"), "{e}");
    }
}
