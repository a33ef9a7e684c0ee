//! Container runtimes behind one trait. Nothing here knows about run records or terminals:
//! a runtime creates, starts, stops, inspects and removes containers, and hands the run
//! lifecycle a [`Session`] made of plain byte streams and an exit channel.

pub mod apple;
pub mod docker;
pub mod endpoint;
mod error;
pub mod reference;

use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;

pub use error::{Error, ErrorKind};

use crate::stream::Stream;

pub type Result<T> = std::result::Result<T, Error>;

/// Where a long call (a pull) reports its progress: one short line of text at a time.
pub type Progress = Box<dyn FnMut(&str) + Send>;

/// Which runtime a run uses. Stored in the run record so later commands use the run's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    /// Podman, through its Docker-compatible API.
    Podman,
    Apple,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
            Kind::Apple => "apple",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "docker" => Some(Kind::Docker),
            "podman" => Some(Kind::Podman),
            "apple" => Some(Kind::Apple),
            _ => None,
        }
    }

    /// The runtime to use when neither `--runtime` nor `$MOAT_RUNTIME` names one: Apple's
    /// `container` on macOS when it is installed, else Docker.
    pub fn auto() -> Kind {
        if cfg!(target_os = "macos") && apple::cli_on_path() {
            Kind::Apple
        } else {
            Kind::Docker
        }
    }
}

/// Whether the engine that `kind` selects from the environment sees this machine's files,
/// so that a bind mount of the workspace shows it: a local Unix socket does, a tcp or ssh
/// engine does not, and Apple's runtime shares the host's files with its VMs. Told without
/// an API call (`--dry-run` makes none). An environment that names no usable engine says
/// yes: the run then fails connecting, with the reason, before the workspace matters.
pub fn sees_host_files(kind: Kind) -> bool {
    match locate(kind) {
        Ok(Some((endpoint, _))) => endpoint.sees_host_files(),
        Ok(None) | Err(_) => true,
    }
}

/// Connect to the runtime of the given kind at the endpoint the environment names (for
/// Docker and Podman this negotiates the API version). Docker's may turn out to be
/// Podman's, when no Docker engine answers and Podman's socket does.
pub fn connect(kind: Kind) -> Result<Box<dyn Runtime>> {
    match locate(kind)? {
        Some((endpoint, kind)) => Ok(Box::new(docker::Docker::connect(endpoint, kind)?)),
        None => apple::connect(),
    }
}

/// Where the runtime of `kind` is, and which runtime answers there, without connecting:
/// `None` for Apple's, which has no endpoint.
pub fn locate(kind: Kind) -> Result<Option<(endpoint::Endpoint, Kind)>> {
    match kind {
        Kind::Docker => endpoint::find_docker().map(Some),
        Kind::Podman => Ok(Some((endpoint::find_podman()?, Kind::Podman))),
        Kind::Apple => Ok(None),
    }
}

/// Connect to the runtime of `kind` at an endpoint a run recorded.
pub fn connect_saved(kind: Kind, saved: &endpoint::Saved) -> Result<Box<dyn Runtime>> {
    let endpoint = endpoint::Endpoint::from_saved(saved).map_err(|why| {
        Error::new(
            ErrorKind::Unreachable,
            format!("cannot use the recorded endpoint {}", saved.url),
            why,
        )
    })?;
    match kind {
        Kind::Apple => apple::connect(),
        Kind::Docker | Kind::Podman => Ok(Box::new(docker::Docker::connect(endpoint, kind)?)),
    }
}

/// A bind mount from the host into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// Everything needed to create a run's container.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    /// The container's name; moat uses the run ID.
    pub name: String,
    pub image: String,
    /// Empty means the image's default command.
    pub command: Vec<String>,
    /// `KEY=VALUE` pairs (values only ever live in memory and in the engine).
    pub env: Vec<String>,
    pub mounts: Vec<Mount>,
    pub workdir: String,
    pub labels: Vec<(String, String)>,
    pub init: bool,
    /// Give the container a TTY (interactive mode with a terminal).
    pub tty: bool,
    /// The TTY's size (rows, cols) when the container is made, for an engine that cannot
    /// size it before the start (`docker/tty_size.rs`). Set by the run just before the
    /// create call, so a pull before it does not make it stale.
    pub tty_size: Option<(u16, u16)>,
    /// Keep the container's stdin open for the session to write to.
    pub stdin: bool,
    pub network: Option<String>,
    /// `UID[:GID]` or a user name; the image's user when unset.
    pub user: Option<String>,
    /// What `docker run`'s other flags ask of the container.
    pub options: ContainerOptions,
}

/// The container settings of `docker run`'s flags (`--memory`, `-p`, `--cap-add`...),
/// parsed and checked. Empty by default: the engine's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerOptions {
    /// Bytes (`--memory`), and memory plus swap (`--memory-swap`; -1 unlimited).
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    /// CPUs in billionths (`--cpus 1.5` is 1_500_000_000).
    pub nano_cpus: Option<i64>,
    /// `--pids-limit` (-1 unlimited).
    pub pids_limit: Option<i64>,
    /// `/dev/shm`'s size in bytes.
    pub shm_size: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    pub publish: Vec<PortBinding>,
    /// `-P`: every port the image exposes, on a random host port.
    pub publish_all: bool,
    /// `--entrypoint`: `Some(vec![])` resets the image's.
    pub entrypoint: Option<Vec<String>>,
    /// The user's `--label`s (moat's own are never among them).
    pub labels: Vec<(String, String)>,
    pub hostname: Option<String>,
    /// `--add-host` entries, `HOST:IP`.
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub read_only: bool,
    /// `--tmpfs PATH[:OPTIONS]`: (path, options).
    pub tmpfs: Vec<(String, String)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    /// `--platform os[/arch[/variant]]`.
    pub platform: Option<String>,
    /// `--gpus`: `count` (-1 all) or device IDs.
    pub gpus: Option<Gpus>,
}

/// One `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One `-p [IP:][HOST:]CONTAINER[/PROTO]`: no host port means a random one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    pub host_ip: String,
    pub host_port: Option<u16>,
}

/// `--gpus`: all of them, a number, or these devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpus {
    Count(i64),
    Devices(Vec<String>),
}

/// A port the engine published: `host_ip:host_port` on the host reaches `port/proto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
}

impl std::fmt::Display for Published {
    /// As `docker ps` shows it: `0.0.0.0:32768->80/tcp`, `[::]:32768->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = if self.host_ip.contains(':') {
            format!("[{}]", self.host_ip)
        } else {
            self.host_ip.clone()
        };
        write!(f, "{ip}:{}->{}/{}", self.host_port, self.port, self.proto)
    }
}

/// How to attach to the container when starting it.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    pub tty: bool,
    pub stdin: bool,
    /// The terminal size to set before any stdin byte flows (rows, cols), TTY only.
    pub size: Option<(u16, u16)>,
}

/// Where a container is in its life, as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created or running: it has not ended yet.
    Running,
    /// Created but never started.
    Created,
    /// It ended with this exit code (None when the runtime cannot tell).
    Exited(Option<i32>),
    /// The runtime does not know the container.
    Gone,
}

/// A container moat created, as found by listing the runtime.
#[derive(Debug, Clone)]
pub struct ManagedContainer {
    pub id: String,
    pub run_id: Option<String>,
    /// The store (`$MOAT_HOME`) that made it, from its `moat.home` label.
    pub home: Option<String>,
    /// When the runtime created it (by the runtime's clock), when it says.
    pub created: Option<SystemTime>,
    /// What it does for its run when it is not the run's own container: `proxy`, a
    /// strict run's egress proxy (its `moat.role` label).
    pub role: Option<String>,
}

/// A network moat made for a run (a strict run's internal network), as found by listing
/// the runtime.
#[derive(Debug, Clone)]
pub struct ManagedNetwork {
    pub id: String,
    pub run_id: Option<String>,
    /// The store (`$MOAT_HOME`) that made it, from its `moat.home` label.
    pub home: Option<String>,
}

/// The container's output, as chunks tagged with their stream.
pub trait OutputSource: Send {
    /// Read the next chunk into `buf`. `Ok(None)` is the end of the output.
    fn next_chunk(&mut self, buf: &mut [u8]) -> io::Result<Option<(Stream, usize)>>;

    /// Whether more output has already arrived, so the next chunk will not block. The
    /// output pump defers flushing the log while it has.
    fn pending(&self) -> bool {
        false
    }
}

/// A TTY session's output: raw bytes, one stream, until `R` ends.
pub struct RawOutput<R>(pub R);

impl<R: io::Read + Send> OutputSource for RawOutput<R> {
    fn next_chunk(&mut self, buf: &mut [u8]) -> io::Result<Option<(Stream, usize)>> {
        loop {
            match self.0.read(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some((Stream::Tty, n))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The container's stdin.
pub trait StdinSink: io::Write + Send {
    /// Close the container's stdin (the command sees end of file).
    fn close(&mut self) -> io::Result<()>;
}

/// Sets the TTY size of a running session.
pub trait Resizer: Send {
    fn resize(&self, rows: u16, cols: u16) -> Result<()>;
}

/// A started container with its streams attached. Output was subscribed to, and the exit
/// waiter registered, before the container started, so nothing it does can be missed.
pub struct Session {
    pub output: Box<dyn OutputSource>,
    pub stdin: Option<Box<dyn StdinSink>>,
    /// Receives the command's exit code once, or the error that lost it.
    pub exit: Receiver<Result<i32>>,
    pub resizer: Option<Box<dyn Resizer>>,
}

/// A container runtime. Every call has a deadline except the session's own exit wait and
/// output stream, which last as long as the command does.
pub trait Runtime: Send + Sync {
    /// Which runtime this is (Docker's API may be served by Podman).
    fn kind(&self) -> Kind;

    /// Where the engine is, for runtimes reached over an endpoint.
    fn endpoint(&self) -> Option<&endpoint::Endpoint> {
        None
    }

    /// Pull the image (for `platform`, when given), telling its progress to `progress`
    /// when there is one (the caller draws it).
    fn pull(&self, image: &str, platform: Option<&str>, progress: Option<Progress>) -> Result<()>;

    /// Whether an image with this reference is present (nothing is pulled).
    fn image_exists(&self, image: &str) -> Result<bool>;

    /// Build an image from `context` (a tar holding a `Dockerfile`), tagged `tag` and
    /// labelled `labels`, only once it is complete. Each line of the builder's output goes
    /// to `output`; the builder's error is the build's failure.
    fn build(
        &self,
        tag: &str,
        labels: &[(String, String)],
        context: Vec<u8>,
        output: &mut dyn FnMut(&str),
    ) -> Result<()>;

    /// Create the container; returns the runtime's container ID.
    fn create(&self, spec: &CreateSpec) -> Result<String>;

    /// Attach to the container, register for its exit, then start it. Returns once the
    /// container runs (or has already ended), so a stop sent afterwards reaches it.
    fn start(&self, id: &str, opts: StartOptions) -> Result<Session>;

    /// Ask the container to stop: `signal` (default: its stop signal), then kill after
    /// `timeout`. Returns once it has stopped. A container that is not running is fine.
    fn stop(&self, id: &str, signal: Option<&str>, timeout: Duration) -> Result<()>;

    /// Kill the container at once. A container that is not running is fine.
    fn kill(&self, id: &str) -> Result<()>;

    fn inspect(&self, id: &str) -> Result<ContainerState>;

    /// Whether the command's own process exists yet: under an init, the init has started
    /// it, and so has set up its signal handling. A stop sent before then can be lost (an
    /// init that has not blocked signals yet ignores them, as PID 1) or kill the init
    /// oddly. A container that is not running counts as started: there is nothing left to
    /// wait for. Runtimes that cannot tell say yes.
    fn command_started(&self, _id: &str) -> Result<bool> {
        Ok(true)
    }

    /// The ports the engine published for the running container.
    fn published(&self, _id: &str) -> Result<Vec<Published>> {
        Ok(Vec::new())
    }

    /// The container's output as the engine kept it, from its start: what it has written
    /// so far, or with `follow` everything until it ends. This is how the output of a run
    /// whose `moat run` died is recovered. Runtimes that keep no output cannot.
    fn output(&self, _id: &str, _follow: bool) -> Result<Box<dyn OutputSource>> {
        Err(Error::new(
            ErrorKind::Other,
            "reading the container's output",
            "this runtime cannot return a container's output after the fact",
        ))
    }

    /// Unpack the tar stream `archive` into the container's directory `path`, which must
    /// exist (`/` always does), keeping the owners, modes and times the archive gives. It
    /// works on a container that has not started yet. The stream is read as it is sent.
    fn upload(&self, _id: &str, _path: &str, _archive: Box<dyn io::Read + Send>) -> Result<()> {
        Err(Error::new(
            ErrorKind::Other,
            "copying into the container",
            "this runtime cannot copy files into a container",
        ))
    }

    /// The container's `path` as a tar stream, read as it arrives; its entries are named
    /// from the path's last component (`/workspace` gives `workspace/...`). It works on a
    /// container that has exited.
    fn download(&self, _id: &str, _path: &str) -> Result<Box<dyn io::Read + Send>> {
        Err(Error::new(
            ErrorKind::Other,
            "copying from the container",
            "this runtime cannot copy files out of a container",
        ))
    }

    /// Remove the container (forcefully). A container that is already gone is fine.
    fn remove(&self, id: &str) -> Result<()>;

    /// Containers labelled `moat.managed=true`.
    fn list_managed(&self) -> Result<Vec<ManagedContainer>>;

    /// The container labelled `moat.run_id=<run_id>`, if there is one: how a container
    /// is found whose ID never reached the run's record (its owner died between the
    /// create and the record). The run's helpers (a proxy) are not it.
    fn find_by_run_id(&self, run_id: &str) -> Result<Option<String>> {
        Ok(self
            .list_run(run_id)?
            .into_iter()
            .find(|c| c.role.is_none())
            .map(|c| c.id))
    }

    /// The platform containers run on here, `OS/ARCH` as images name it (`linux/amd64`).
    fn platform(&self) -> Result<String> {
        Err(unsupported("asking the engine for its platform"))
    }

    /// Create a bridge network named `name`, labelled `labels`; an `internal` one has no
    /// route out of it. Returns its ID and its subnets (CIDR).
    fn create_network(
        &self,
        _name: &str,
        _internal: bool,
        _labels: &[(String, String)],
    ) -> Result<(String, Vec<String>)> {
        Err(unsupported("creating a network"))
    }

    /// Attach the container (created or running) to the network too.
    fn connect_network(&self, _network: &str, _container: &str) -> Result<()> {
        Err(unsupported("connecting a container to a network"))
    }

    /// The container's IP address on the network, once it runs.
    fn address_on(&self, _container: &str, _network: &str) -> Result<String> {
        Err(unsupported("reading a container's address"))
    }

    /// Remove the network. One that is already gone is fine.
    fn remove_network(&self, _id: &str) -> Result<()> {
        Err(unsupported("removing a network"))
    }

    /// Networks labelled `moat.managed=true`, or only those of run `run_id`.
    fn list_networks(&self, _run_id: Option<&str>) -> Result<Vec<ManagedNetwork>> {
        Ok(Vec::new())
    }

    /// The tags of the images labelled `label` (`KEY=VALUE`).
    fn images_labelled(&self, _label: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Remove the image `tag` unless a container uses it (then it stays: the error says
    /// so). One that is gone is fine.
    fn remove_image(&self, _tag: &str) -> Result<()> {
        Err(unsupported("removing an image"))
    }

    /// Every container of run `run_id`: its own and its helpers (a proxy).
    fn list_run(&self, run_id: &str) -> Result<Vec<ManagedContainer>> {
        Ok(self
            .list_managed()?
            .into_iter()
            .filter(|c| c.run_id.as_deref() == Some(run_id))
            .collect())
    }

    /// End the calls other threads still wait on (a pull the run no longer wants), so
    /// none outlives moat. A runtime whose calls end with moat's connections needs
    /// nothing here.
    fn cancel_calls(&self) {}
}

/// The error of a call this runtime cannot make.
fn unsupported(what: &str) -> Error {
    Error::new(ErrorKind::Other, what, "this runtime cannot do it")
}

/// Runtimes connected on first use, so commands that touch only finished runs never make
/// an engine call; one connection per runtime and endpoint.
#[derive(Default)]
pub struct Connections {
    connected: std::collections::HashMap<String, Result<std::sync::Arc<dyn Runtime>>>,
}

impl Connections {
    /// The runtime of `kind` at the endpoint the environment names.
    pub fn get(&mut self, kind: Kind) -> Result<std::sync::Arc<dyn Runtime>> {
        self.connected
            .entry(kind.as_str().to_string())
            .or_insert_with(|| connect(kind).map(std::sync::Arc::from))
            .clone()
    }

    /// The runtime a record names, at the endpoint it recorded (runs recorded before
    /// runtimes were named are Docker's; before endpoints were, the environment's).
    pub fn for_record(
        &mut self,
        runtime: &str,
        endpoint: Option<&serde_json::Value>,
    ) -> Result<std::sync::Arc<dyn Runtime>> {
        let kind = Kind::parse(runtime).unwrap_or(Kind::Docker);
        match endpoint {
            None => self.get(kind),
            Some(saved) => {
                let saved = endpoint::Saved::from_record(saved)?;
                self.connect_saved(kind, &saved)
            }
        }
    }

    fn connect_saved(
        &mut self,
        kind: Kind,
        saved: &endpoint::Saved,
    ) -> Result<std::sync::Arc<dyn Runtime>> {
        self.connected
            .entry(format!("{} {}", kind.as_str(), saved.url))
            .or_insert_with(|| connect_saved(kind, saved).map(std::sync::Arc::from))
            .clone()
    }
}
