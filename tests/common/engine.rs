//! The engine a Docker-API test pass runs on: `MOAT_TEST_ENGINE`, one of
//!
//! - `local` (the default): the shared dockerd on its Unix socket;
//! - `tcp`, `tls`: a private dockerd in its own network namespace, reached over plain TCP
//!   or TLS with client certificates (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
//!   `DOCKER_CERT_PATH`); every `moat` of the pass enters that namespace;
//! - `context`: the same dockerd through a Docker context (`DOCKER_CONFIG` whose
//!   `currentContext` names it, with its TLS material in the context store);
//! - `ssh`: the shared dockerd through `ssh://root@127.0.0.1:PORT` (sshd on loopback,
//!   `docker system dial-stdio` on the far side), with an `ssh` wrapper first on `PATH`;
//! - `podman`: Podman's Docker-compatible API on its socket (`--runtime podman`).
//!
//! `scripts/setup` prepares all of them and writes their addresses to
//! [`ENGINES_ENV`]. The raw engine helpers ([`super::docker_socket`]) talk to the engine
//! under test over its Unix socket, so "what is left over" is asked of the right engine.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// Where `scripts/setup` writes the test engines' addresses (`KEY=VALUE` lines).
pub const ENGINES_ENV: &str = "/etc/moat-test/engines.env";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Local,
    Tcp,
    Tls,
    Context,
    Ssh,
    Podman,
}

/// This pass's engine: `$MOAT_TEST_ENGINE`, `local` when unset. Any other value fails the
/// test rather than silently testing the local engine.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    *ENGINE.get_or_init(|| match std::env::var("MOAT_TEST_ENGINE").as_deref() {
        Err(_) | Ok("") | Ok("local") => Engine::Local,
        Ok("tcp") => Engine::Tcp,
        Ok("tls") => Engine::Tls,
        Ok("context") => Engine::Context,
        Ok("ssh") => Engine::Ssh,
        Ok("podman") => Engine::Podman,
        Ok(other) => {
            panic!("MOAT_TEST_ENGINE={other:?}: expected local, tcp, tls, context, ssh or podman")
        }
    })
}

/// The test engines' addresses, from [`ENGINES_ENV`].
pub fn addresses() -> &'static HashMap<String, String> {
    static ADDRESSES: OnceLock<HashMap<String, String>> = OnceLock::new();
    ADDRESSES.get_or_init(|| {
        let text = std::fs::read_to_string(ENGINES_ENV).unwrap_or_else(|e| {
            panic!("{ENGINES_ENV}: {e}; run scripts/setup to prepare the test engines")
        });
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    })
}

/// One address from [`ENGINES_ENV`].
pub fn address(key: &str) -> String {
    addresses()
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("{ENGINES_ENV} has no {key}; run scripts/setup"))
}

impl Engine {
    /// The Unix socket of the engine under test, for the tests' own raw calls.
    pub fn socket(self) -> Option<PathBuf> {
        match self {
            Engine::Local | Engine::Ssh => None,
            Engine::Tcp | Engine::Tls | Engine::Context => {
                Some(address("MOAT_TEST_REMOTE_SOCK").into())
            }
            Engine::Podman => Some(address("MOAT_TEST_PODMAN_SOCK").into()),
        }
    }

    /// Point `cmd` (a `moat`, or a wrapper that starts one) at this engine.
    pub fn apply(self, cmd: &mut Command) {
        match self {
            Engine::Local => {}
            Engine::Tcp => {
                cmd.env("DOCKER_HOST", address("MOAT_TEST_TCP_HOST"));
                enter_remote_netns(cmd);
            }
            Engine::Tls => {
                cmd.env("DOCKER_HOST", address("MOAT_TEST_TLS_HOST"))
                    .env("DOCKER_TLS_VERIFY", "1")
                    .env("DOCKER_CERT_PATH", address("MOAT_TEST_TLS_CERT_PATH"));
                enter_remote_netns(cmd);
            }
            Engine::Context => {
                cmd.env_remove("DOCKER_HOST")
                    .env_remove("DOCKER_CONTEXT")
                    .env("DOCKER_CONFIG", address("MOAT_TEST_DOCKER_CONFIG"));
                enter_remote_netns(cmd);
            }
            Engine::Ssh => {
                let path = format!(
                    "{}:{}",
                    address("MOAT_TEST_SSH_PATH"),
                    std::env::var("PATH").unwrap_or_default()
                );
                cmd.env("DOCKER_HOST", address("MOAT_TEST_SSH_HOST"))
                    .env("PATH", path);
            }
            Engine::Podman => {
                cmd.env("MOAT_RUNTIME", "podman");
            }
        }
    }

    /// Whether moat counts this engine as seeing this machine's files: a Unix socket does,
    /// a tcp or ssh endpoint does not (moat copies the workspace there by default and
    /// refuses `-m`), even though every test engine happens to run on this machine.
    pub fn sees_host_files(self) -> bool {
        matches!(self, Engine::Local | Engine::Podman)
    }

    /// The `runtime` a record of this engine names.
    pub fn recorded_runtime(self) -> &'static str {
        match self {
            Engine::Podman => "podman",
            _ => "docker",
        }
    }
}

/// The child enters the private dockerd's network namespace before it runs: its
/// `127.0.0.1` is that namespace's loopback, where the engine listens.
fn enter_remote_netns(cmd: &mut Command) {
    let path = address("MOAT_TEST_REMOTE_NETNS_PATH");
    let netns = Arc::new(
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/setup")),
    );
    // SAFETY: setns is a single system call on a descriptor the closure keeps open; it
    // touches no memory of the parent between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
