//! The Docker Engine API runtime, for Docker and for Podman's compatible API: HTTP over
//! the endpoint's connections for control calls, a hijacked connection for the run's
//! streams.

mod attach;
mod build;
mod client;
mod create;
pub mod demux;
mod network;
mod podman;
mod pull;
mod transport;
pub mod tty_size;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crossbeam_channel::{Receiver, bounded};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::io_reason::io_reason;
use client::{CALL_DEADLINE, Client, encode};

use super::endpoint::Endpoint;
use super::{
    ContainerState, CreateSpec, Error, ErrorKind, Kind, ManagedContainer, Resizer, Result, Runtime,
    Session, StartOptions,
};

pub struct Docker {
    client: Client,
    /// Docker, or Podman behind its compatible API.
    kind: Kind,
}

impl Docker {
    pub fn connect(endpoint: Endpoint, kind: Kind) -> Result<Docker> {
        Ok(Docker {
            client: Client::connect(endpoint)?,
            kind,
        })
    }

    /// Copy the TTY step's binary into the created container `id` when the engine does
    /// not bind it. A container that would start a step that is not there is removed.
    fn install(&self, id: &str, step: &tty_size::Step) -> Result<()> {
        let copied = match step.archive() {
            Ok(None) => return Ok(()),
            Ok(Some(archive)) => self.upload(id, "/", archive),
            Err(e) => Err(Error::new(
                ErrorKind::Other,
                "copying moat's TTY step into the container",
                io_reason(&e),
            )),
        };
        if copied.is_err()
            && let Err(e) = self.remove(id)
        {
            log::debug!("removing the container without its TTY step: {e}");
        }
        copied
    }
}

/// How long a copy into or out of a container may go without moving a byte.
const STREAM_IDLE: Duration = Duration::from_secs(60);

/// Reading a container's whole log after the fact (a run whose owner died) may move a lot
/// of data; it still ends.
const OUTPUT_DEADLINE: Duration = Duration::from_secs(300);

/// How a start failure reads when the command cannot run: runc's messages for a missing
/// executable and for one it may not execute (only seen with `--no-init`; under init the
/// init process reports these as exit codes 127 and 126).
fn classify_start_error(e: Error) -> Error {
    let text = e.detail.to_ascii_lowercase();
    let kind = if text.contains("executable file not found")
        || text.contains("no such file or directory")
    {
        ErrorKind::CommandNotFound
    } else if text.contains("permission denied") || text.contains("is a directory") {
        ErrorKind::CommandNotExecutable
    } else {
        e.kind
    };
    Error { kind, ..e }
}

/// Image `image`'s inspect answer, or `None` when the engine does not have it.
fn inspect_image(client: &Client, image: &str) -> Result<Option<Vec<u8>>> {
    match client.call(
        &format!("looking up image {image}"),
        "GET",
        &format!("/images/{}/json", encode(image)),
        None,
        Some(CALL_DEADLINE),
    ) {
        Ok((_, body)) => Ok(Some(body)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a process's command line is not the command's yet: an engine's init (Docker's
/// `docker-init`, which is tini, or Podman's `catatonit`), or moat's TTY step before it
/// execs the command.
fn is_before_command(cmd: &str) -> bool {
    let program = cmd.split_whitespace().next().unwrap_or("");
    let name = program.rsplit('/').next().unwrap_or(program);
    matches!(name, "docker-init" | "tini" | "catatonit") || tty_size::is_step(cmd)
}

#[derive(Deserialize)]
struct WaitBody {
    #[serde(rename = "StatusCode")]
    status_code: i64,
    #[serde(rename = "Error")]
    error: Option<WaitError>,
}

#[derive(Deserialize)]
struct WaitError {
    #[serde(rename = "Message")]
    message: Option<String>,
}

struct DockerResizer {
    client: Client,
    id: String,
}

impl Resizer for DockerResizer {
    fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        resize(&self.client, &self.id, rows, cols)
    }
}

fn resize(client: &Client, id: &str, rows: u16, cols: u16) -> Result<()> {
    client.call(
        "resizing the container's terminal",
        "POST",
        &format!("/containers/{id}/resize?h={rows}&w={cols}"),
        None,
        Some(Duration::from_secs(10)),
    )?;
    Ok(())
}

/// Where the exit code (or the error that lost it) arrives.
type ExitReceiver = Receiver<Result<i32>>;

/// Send `wait?condition=next-exit` from a thread of its own. The first channel says when
/// the engine has registered the waiter (its answer's headers arrived); the second gets the
/// exit code, or the error that lost it.
///
/// `exited` is set as the exit arrives, before it is sent. On Podman, an exit of 1 that
/// was Podman's init failing to run the command becomes 127 or 126, as under Docker's.
fn spawn_exit_waiter(
    client: &Client,
    id: &str,
    kind: Kind,
    exited: Arc<AtomicBool>,
) -> Result<(Receiver<Result<()>>, ExitReceiver)> {
    let (registered_tx, registered_rx) = bounded::<Result<()>>(1);
    let (exit_tx, exit_rx) = bounded::<Result<i32>>(1);
    let client = client.clone();
    let wait_id = id.to_string();
    std::thread::Builder::new()
        .name("exit-waiter".into())
        .spawn(move || {
            let what = "waiting for the container";
            let response = match client.open(
                what,
                "POST",
                &format!("/containers/{wait_id}/wait?condition=next-exit"),
                None,
                None,
            ) {
                Ok(r) => {
                    let _ = registered_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = registered_tx.send(Err(e));
                    return;
                }
            };
            let mut body = Vec::new();
            let read =
                std::io::Read::read_to_end(&mut response.into_body().into_reader(), &mut body);
            let result = match read {
                Err(e) => Err(Error::new(
                    ErrorKind::ConnectionLost,
                    what,
                    format!("connection to Docker lost: {}", io_reason(&e)),
                )),
                Ok(_) => match serde_json::from_slice::<WaitBody>(&body) {
                    Ok(w) => match w.error.and_then(|e| e.message) {
                        Some(m) if !m.is_empty() => Err(Error::new(ErrorKind::Other, what, m)),
                        _ => Ok(w.status_code as i32),
                    },
                    Err(e) => Err(Error::new(
                        ErrorKind::ConnectionLost,
                        what,
                        format!("unexpected answer: {e}"),
                    )),
                },
            };
            let result = match result {
                Ok(1) if kind == Kind::Podman => {
                    podman::init_could_not_run(&client, &wait_id).map_or(Ok(1), Err)
                }
                other => other,
            };
            exited.store(true, Ordering::SeqCst);
            let _ = exit_tx.send(result);
        })
        .map_err(|e| Error::new(ErrorKind::Other, "starting a thread", e.to_string()))?;
    Ok((registered_rx, exit_rx))
}

impl Runtime for Docker {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn endpoint(&self) -> Option<&Endpoint> {
        Some(self.client.dialer().endpoint())
    }

    fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        progress: Option<super::Progress>,
    ) -> Result<()> {
        pull::pull(&self.client, image, platform, progress)
    }

    fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(inspect_image(&self.client, image)?.is_some())
    }

    fn build(
        &self,
        tag: &str,
        labels: &[(String, String)],
        context: Vec<u8>,
        output: &mut dyn FnMut(&str),
    ) -> Result<()> {
        build::build(&self.client, tag, labels, context, output)
    }

    fn create(&self, spec: &CreateSpec) -> Result<String> {
        let mut body = create::body(spec);
        let step = match self.kind {
            Kind::Docker => tty_size::plan(&self.client, spec),
            // Podman sizes a TTY before the start itself.
            _ => None,
        };
        if let Some(step) = &step {
            step.apply(&mut body);
        }
        let body = serde_json::to_vec(&body).expect("a JSON value always serialises");
        let (_, answer) = self
            .client
            .call(
                "creating the container",
                "POST",
                &match &spec.options.platform {
                    Some(platform) => format!(
                        "/containers/create?name={}&platform={}",
                        encode(&spec.name),
                        encode(platform)
                    ),
                    None => format!("/containers/create?name={}", encode(&spec.name)),
                },
                Some(&body),
                Some(CALL_DEADLINE),
            )
            .map_err(Error::image_missing_if_not_found)?;
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let created: Created = serde_json::from_slice(&answer).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                "creating the container",
                format!("unexpected answer: {e}"),
            )
        })?;
        if let Some(step) = &step {
            self.install(&created.id, step)?;
        }
        Ok(created.id)
    }

    fn start(&self, id: &str, opts: StartOptions) -> Result<Session> {
        // 1. Register for the exit before start; the wait is sent now and confirmed
        //    below, so it travels while the attach is set up.
        let exited = Arc::new(AtomicBool::new(false));
        let (registered_rx, exit_rx) =
            spawn_exit_waiter(&self.client, id, self.kind, exited.clone())?;

        // 2. Subscribe to the output before the container can write any.
        // Podman reports a command it cannot exec (without init) here, not at start.
        let (stream, writer, prefix) =
            attach::attach(&self.client, id, opts.stdin).map_err(classify_start_error)?;
        let write_half = opts.stdin.then_some(writer);
        let reader = attach::Prefixed {
            prefix,
            pos: 0,
            stream,
        };
        let output: Box<dyn super::OutputSource> = if opts.tty {
            Box::new(super::RawOutput(reader))
        } else {
            Box::new(demux::Demux::new(reader))
        };

        // The engine answers the wait's headers once the waiter is registered, so seeing
        // them means no exit can be missed.
        match registered_rx.recv_timeout(CALL_DEADLINE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "waiting for the container",
                    "Docker did not register the wait in time",
                ));
            }
        }

        // 3. A TTY gets its size before start, so the first prompt is drawn right.
        if let (true, Some((rows, cols))) = (opts.tty, opts.size) {
            // Docker refuses to resize a container that is not running on some versions;
            // it is resized again right after start.
            let _ = resize(&self.client, id, rows, cols);
        }

        // 4. Start.
        self.client
            .call(
                "starting the container",
                "POST",
                &format!("/containers/{id}/start"),
                None,
                Some(CALL_DEADLINE),
            )
            .map_err(classify_start_error)?;
        if let (true, Some((rows, cols))) = (opts.tty, opts.size) {
            // A command that already ended cannot be resized; its exit is what matters.
            if let Err(e) = resize(&self.client, id, rows, cols) {
                log::debug!("{e}");
            }
        }

        Ok(Session {
            output,
            stdin: write_half.map(|writer| {
                Box::new(attach::AttachStdin { writer, exited }) as Box<dyn super::StdinSink>
            }),
            exit: exit_rx,
            resizer: if opts.tty {
                Some(Box::new(DockerResizer {
                    client: self.client.clone(),
                    id: id.to_string(),
                }))
            } else {
                None
            },
        })
    }

    fn stop(&self, id: &str, signal: Option<&str>, timeout: Duration) -> Result<()> {
        let secs = timeout.as_secs();
        let mut path = format!("/containers/{id}/stop?t={secs}");
        if let Some(signal) = signal {
            if self.client.api_at_least(1, 42) {
                path.push_str(&format!("&signal={}", encode(signal)));
            } else {
                // API 1.41 has no stop signal: send it, then let stop escalate to a kill.
                match self.client.call(
                    "signalling the container",
                    "POST",
                    &format!("/containers/{id}/kill?signal={}", encode(signal)),
                    None,
                    Some(CALL_DEADLINE),
                ) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() || e.detail.contains("is not running") => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // The engine waits `t` seconds before it kills; the deadline leaves room for that.
        match self.client.call(
            "stopping the container",
            "POST",
            &path,
            None,
            Some(timeout.saturating_add(CALL_DEADLINE)),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn kill(&self, id: &str) -> Result<()> {
        match self.client.call(
            "killing the container",
            "POST",
            &format!("/containers/{id}/kill?signal=KILL"),
            None,
            Some(CALL_DEADLINE),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.detail.contains("is not running") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn published(&self, id: &str) -> Result<Vec<super::Published>> {
        let (_, answer) = self.client.call(
            "inspecting the container's ports",
            "GET",
            &format!("/containers/{id}/json"),
            None,
            Some(CALL_DEADLINE),
        )?;
        let inspect: Value = serde_json::from_slice(&answer).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                "inspecting the container's ports",
                format!("unexpected answer: {e}"),
            )
        })?;
        Ok(published_ports(&inspect["NetworkSettings"]["Ports"]))
    }

    fn inspect(&self, id: &str) -> Result<ContainerState> {
        let answer = match self.client.call(
            "inspecting the container",
            "GET",
            &format!("/containers/{id}/json"),
            None,
            Some(CALL_DEADLINE),
        ) {
            Ok((_, body)) => body,
            Err(e) if e.is_not_found() => return Ok(ContainerState::Gone),
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct Inspect {
            #[serde(rename = "State")]
            state: State,
        }
        #[derive(Deserialize)]
        struct State {
            #[serde(rename = "Status")]
            status: String,
            #[serde(rename = "ExitCode")]
            exit_code: Option<i64>,
        }
        let inspect: Inspect = serde_json::from_slice(&answer).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                "inspecting the container",
                format!("unexpected answer: {e}"),
            )
        })?;
        Ok(match inspect.state.status.as_str() {
            "created" => ContainerState::Created,
            // Podman says "stopped" for a moment after the exit, before "exited".
            "exited" | "dead" | "stopped" => {
                ContainerState::Exited(inspect.state.exit_code.map(|c| c as i32))
            }
            // "removing" means it has ended and is on its way out.
            "removing" => ContainerState::Exited(inspect.state.exit_code.map(|c| c as i32)),
            _ => ContainerState::Running,
        })
    }

    fn command_started(&self, id: &str) -> Result<bool> {
        let answer = match self.client.call(
            "listing the container's processes",
            "GET",
            &format!("/containers/{id}/top"),
            None,
            Some(CALL_DEADLINE),
        ) {
            Ok((_, body)) => body,
            Err(e) if e.is_not_found() || e.detail.contains("is not running") => return Ok(true),
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct Top {
            #[serde(rename = "Processes", default)]
            processes: Option<Vec<Vec<String>>>,
        }
        let top: Top = serde_json::from_slice(&answer).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                "listing the container's processes",
                format!("unexpected answer: {e}"),
            )
        })?;
        let processes = top.processes.unwrap_or_default();
        // The command runs once a process is neither an init that has not forked yet nor
        // the TTY step that has not exec'd it. The command line is the last column.
        Ok(processes
            .iter()
            .any(|p| !p.last().is_some_and(|cmd| is_before_command(cmd))))
    }

    fn output(&self, id: &str, follow: bool) -> Result<Box<dyn super::OutputSource>> {
        let what = "reading the container's output";
        let (_, answer) = self.client.call(
            what,
            "GET",
            &format!("/containers/{id}/json"),
            None,
            Some(CALL_DEADLINE),
        )?;
        #[derive(Deserialize)]
        struct Inspect {
            #[serde(rename = "Config")]
            config: Config,
        }
        #[derive(Deserialize)]
        struct Config {
            #[serde(rename = "Tty", default)]
            tty: bool,
        }
        let tty = serde_json::from_slice::<Inspect>(&answer)
            .map_err(|e| Error::new(ErrorKind::Other, what, format!("unexpected answer: {e}")))?
            .config
            .tty;
        // Following lasts as long as the container; a plain read gets a generous deadline
        // for a large log.
        let deadline = (!follow).then_some(OUTPUT_DEADLINE);
        let response = self.client.open(
            what,
            "GET",
            &format!(
                "/containers/{id}/logs?stdout=1&stderr=1&follow={}",
                u8::from(follow)
            ),
            None,
            deadline,
        )?;
        let reader = response.into_body().into_reader();
        Ok(if tty {
            Box::new(super::RawOutput(reader))
        } else {
            Box::new(demux::Demux::new(reader))
        })
    }

    fn upload(&self, id: &str, path: &str, archive: Box<dyn std::io::Read + Send>) -> Result<()> {
        let what = "copying into the container";
        // Without `copyUIDGID` the engine keeps the archive's owners (it would chown to
        // the container's user instead).
        let response = self.client.stream(
            what,
            "PUT",
            &format!("/containers/{id}/archive?path={}", encode(path)),
            Some(archive),
            STREAM_IDLE,
        )?;
        // The answer has no body worth reading; reading it frees the connection.
        std::io::copy(
            &mut response.into_body().into_reader(),
            &mut std::io::sink(),
        )
        .map_err(|e| Error::new(ErrorKind::ConnectionLost, what, io_reason(&e)))?;
        Ok(())
    }

    fn download(&self, id: &str, path: &str) -> Result<Box<dyn std::io::Read + Send>> {
        let response = self.client.stream(
            "copying from the container",
            "GET",
            &format!("/containers/{id}/archive?path={}", encode(path)),
            None,
            STREAM_IDLE,
        )?;
        Ok(Box::new(response.into_body().into_reader()))
    }

    fn remove(&self, id: &str) -> Result<()> {
        match self.client.call(
            "removing the container",
            "DELETE",
            &format!("/containers/{id}?force=1"),
            None,
            Some(CALL_DEADLINE),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.detail.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list_managed(&self) -> Result<Vec<ManagedContainer>> {
        self.list_labelled("moat.managed=true")
    }

    fn list_run(&self, run_id: &str) -> Result<Vec<ManagedContainer>> {
        self.list_labelled(&format!("moat.run_id={run_id}"))
    }

    fn platform(&self) -> Result<String> {
        network::platform(&self.client)
    }

    fn create_network(
        &self,
        name: &str,
        internal: bool,
        labels: &[(String, String)],
    ) -> Result<(String, Vec<String>)> {
        network::create(&self.client, self.kind, name, internal, labels)
    }

    fn connect_network(&self, network: &str, container: &str) -> Result<()> {
        network::connect(&self.client, network, container)
    }

    fn address_on(&self, container: &str, network: &str) -> Result<String> {
        network::address_on(&self.client, container, network)
    }

    fn remove_network(&self, id: &str) -> Result<()> {
        network::remove(&self.client, id)
    }

    fn images_labelled(&self, label: &str) -> Result<Vec<String>> {
        network::images_labelled(&self.client, label)
    }

    fn remove_image(&self, tag: &str) -> Result<()> {
        network::remove_image(&self.client, tag)
    }

    fn list_networks(&self, run_id: Option<&str>) -> Result<Vec<super::ManagedNetwork>> {
        match run_id {
            Some(id) => network::list(&self.client, &format!("moat.run_id={id}")),
            None => network::list(&self.client, "moat.managed=true"),
        }
    }
}

impl Docker {
    /// Every container (running or not) carrying `label` (`KEY=VALUE`), by the engine's
    /// own filter.
    fn list_labelled(&self, label: &str) -> Result<Vec<ManagedContainer>> {
        let filters = encode(&json!({ "label": [label] }).to_string());
        let (_, answer) = self.client.call(
            "listing containers",
            "GET",
            &format!("/containers/json?all=1&filters={filters}"),
            None,
            Some(CALL_DEADLINE),
        )?;
        #[derive(Deserialize)]
        struct Listed {
            #[serde(rename = "Id")]
            id: String,
            #[serde(rename = "Labels", default)]
            labels: Option<std::collections::HashMap<String, String>>,
            /// Seconds since the epoch.
            #[serde(rename = "Created", default)]
            created: Option<u64>,
        }
        let listed: Vec<Listed> = serde_json::from_slice(&answer).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                "listing containers",
                format!("unexpected answer: {e}"),
            )
        })?;
        Ok(listed
            .into_iter()
            .map(|c| {
                let mut labels = c.labels.unwrap_or_default();
                ManagedContainer {
                    run_id: labels.remove("moat.run_id"),
                    home: labels.remove("moat.home"),
                    role: labels.remove("moat.role"),
                    created: c.created.map(|secs| UNIX_EPOCH + Duration::from_secs(secs)),
                    id: c.id,
                }
            })
            .collect())
    }
}

/// The engine's `NetworkSettings.Ports` (`{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort":
/// "32768"}], "81/tcp": null}`): the ports bound on the host, in port order.
fn published_ports(ports: &Value) -> Vec<super::Published> {
    let mut out = Vec::new();
    let Some(ports) = ports.as_object() else {
        return out;
    };
    for (key, bindings) in ports {
        let Some((port, proto)) = key.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        for b in bindings.as_array().into_iter().flatten() {
            let host_port = b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok());
            if let Some(host_port) = host_port {
                out.push(super::Published {
                    port,
                    proto: proto.to_string(),
                    host_ip: b["HostIp"].as_str().unwrap_or_default().to_string(),
                    host_port,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.port, &a.proto, a.host_port).cmp(&(b.port, &b.proto, b.host_port)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_are_read_from_the_inspect() {
        let ports = json!({
            "80/tcp": [
                {"HostIp": "0.0.0.0", "HostPort": "32768"},
                {"HostIp": "::", "HostPort": "32768"}
            ],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            "81/tcp": null
        });
        let got: Vec<String> = published_ports(&ports)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:5353->53/udp",
                "0.0.0.0:32768->80/tcp",
                "[::]:32768->80/tcp"
            ]
        );
    }
}
