//! The network sandbox of `--network-policy strict`: the run's container sits on an
//! internal network with no route out, and its only way out is an egress proxy (moat's
//! own binary, in an image made from it, [`image`]) that is on that network and on the
//! engine's default one. Nothing runs inside the run's container to enforce it, so there
//! is nothing to race at start, and raw TCP or UDP simply has no route.
//!
//! [`allow`] says which hosts a run may reach, [`proxy`] is the proxy itself (`moat
//! __proxy`). This module makes the topology before the run's container starts and takes
//! it down with the run: the proxy always, the network once no container is on it.

pub mod allow;
mod image;
pub mod proxy;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::runtime::{self, ContainerOptions, CreateSpec, Kind, Runtime, StartOptions};
use crate::stream::Stream;

/// The port the proxy listens on, on the run's network.
pub const PROXY_PORT: u16 = 3128;

/// The `moat.role` label of a run's proxy container.
pub const PROXY_ROLE: &str = "proxy";

/// How long the proxy may take to say it listens once started. It binds at once; only an
/// engine in trouble takes longer, and the run must not hang on it.
const PROXY_READY: Duration = Duration::from_secs(30);

/// What the sandbox is made of for one run.
pub struct Settings<'a> {
    pub run_id: &'a str,
    /// The run's labels (`moat.run_id`, `moat.managed`, `moat.home`).
    pub labels: &'a [(String, String)],
    pub allow: &'a [allow::Rule],
    /// `--add-host` and `--dns`: names are resolved by the proxy, so it gets them.
    pub extra_hosts: &'a [String],
    pub dns: &'a [String],
}

/// A strict run's sandbox, made and running.
pub struct Sandbox {
    /// The internal network the run's container joins (its name).
    pub network: String,
    network_id: String,
    proxy: String,
    /// The proxy variables the run's container gets (`KEY=VALUE`).
    pub env: Vec<String>,
    /// Writes the proxy's records to the run's `network.jsonl`; it ends with the proxy.
    log_pump: JoinHandle<()>,
}

/// The name of run `run_id`'s network.
fn network_name(run_id: &str) -> String {
    format!("moat-{run_id}")
}

/// Make the sandbox: the proxy's image (once per moat binary), the internal network, and
/// the proxy on both networks, listening. What was made is removed again on a failure.
/// The proxy's records are appended to `log` as they come.
pub fn set_up(rt: &dyn Runtime, s: &Settings, log: File) -> Result<Sandbox, String> {
    if rt.kind() == Kind::Apple {
        return Err(
            "--network-policy strict is not available on Apple's runtime: its CLI \
                    cannot make a network whose only way out is moat's proxy"
                .into(),
        );
    }
    let image = image::ensure(rt)?;
    let made = make(rt, s, image, log);
    if made.is_err() {
        let _ = tear_down(rt, s.run_id, false, None);
    }
    made
}

fn make(rt: &dyn Runtime, s: &Settings, image: String, log: File) -> Result<Sandbox, String> {
    let failed = |e: runtime::Error| e.to_string();
    let network = network_name(s.run_id);
    let (network_id, subnets) = rt
        .create_network(&network, true, s.labels)
        .map_err(failed)?;
    log::debug!("network {network} made");
    let mut command = vec!["--listen".to_string(), format!("0.0.0.0:{PROXY_PORT}")];
    // Only the run's own network may use the proxy: it listens on the outside one too.
    for subnet in &subnets {
        command.extend(["--client-net".to_string(), subnet.clone()]);
    }
    for rule in s.allow {
        command.extend(["--allow".to_string(), rule.to_string()]);
    }
    let mut labels = s.labels.to_vec();
    labels.push(("moat.role".into(), PROXY_ROLE.into()));
    let spec = CreateSpec {
        name: format!("{}-proxy", s.run_id),
        image,
        command,
        env: Vec::new(),
        mounts: Vec::new(),
        workdir: "/".into(),
        labels,
        init: false,
        tty: false,
        tty_size: None,
        stdin: false,
        // The engine's default network: the way out.
        network: None,
        user: None,
        options: ContainerOptions {
            extra_hosts: s.extra_hosts.to_vec(),
            dns: s.dns.to_vec(),
            read_only: true,
            cap_drop: vec!["ALL".into()],
            security_opt: vec!["no-new-privileges".into()],
            ..ContainerOptions::default()
        },
    };
    let proxy = rt.create(&spec).map_err(failed)?;
    log::debug!("proxy created");
    rt.connect_network(&network_id, &proxy).map_err(failed)?;
    log::debug!("proxy attached to {network}");
    let session = rt
        .start(
            &proxy,
            StartOptions {
                tty: false,
                stdin: false,
                size: None,
            },
        )
        .map_err(|e| format!("starting the proxy: {e}"))?;
    let (ready_tx, ready) = crossbeam_channel::bounded(1);
    let log_pump = std::thread::Builder::new()
        .name("proxy log".into())
        .spawn(move || pump(session.output, log, ready_tx))
        .map_err(|e| format!("starting the proxy's log pump: {e}"))?;
    match ready.recv_timeout(PROXY_READY) {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return Err(format!("the proxy did not start: {why}")),
        Err(_) => {
            return Err(format!(
                "the proxy did not say it listens within {}s",
                PROXY_READY.as_secs()
            ));
        }
    }
    log::debug!("proxy listening");
    let address = rt.address_on(&proxy, &network).map_err(failed)?;
    let url = format!("http://{address}:{PROXY_PORT}");
    let no_proxy = "localhost,127.0.0.1,::1";
    let env = [
        ("HTTP_PROXY", url.as_str()),
        ("HTTPS_PROXY", &url),
        ("http_proxy", &url),
        ("https_proxy", &url),
        ("NO_PROXY", no_proxy),
        ("no_proxy", no_proxy),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect();
    Ok(Sandbox {
        network,
        network_id,
        proxy,
        env,
        log_pump,
    })
}

/// Pass the proxy's output on: its first line says it listens (`ready`), every later line
/// of its stdout is a record for `network.jsonl`; its stderr goes to the debug log, and is
/// the reason given when it ends before it is ready.
fn pump(
    mut output: Box<dyn runtime::OutputSource>,
    mut log: File,
    ready: crossbeam_channel::Sender<Result<(), String>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    let mut errors = Vec::new();
    while let Ok(Some((stream, n))) = output.next_chunk(&mut buf) {
        let bytes = &buf[..n];
        match (stream, &mut head) {
            (Stream::Stderr, _) => {
                log::debug!("proxy: {}", String::from_utf8_lossy(bytes).trim_end());
                if head.is_some() {
                    errors.extend_from_slice(bytes);
                }
            }
            (_, Some(first)) => {
                first.extend_from_slice(bytes);
                if let Some(end) = first.iter().position(|&b| b == b'\n') {
                    let rest = first.split_off(end + 1);
                    head = None;
                    let _ = ready.send(Ok(()));
                    let _ = log.write_all(&rest);
                }
            }
            (_, None) => {
                if let Err(e) = log.write_all(bytes) {
                    log::debug!("writing network.jsonl: {e}");
                }
            }
        }
    }
    if head.is_some() {
        let why = String::from_utf8_lossy(&errors).trim().to_string();
        let _ = ready.send(Err(if why.is_empty() {
            "it exited".into()
        } else {
            why
        }));
    }
}

impl Sandbox {
    /// Take the sandbox down at the end of its run, beside `remove_container` (the run's
    /// container's removal, whose result comes back first): the proxy at the same time,
    /// since each removal is a round of the engine's work (about 0.2 s); once it is gone
    /// its last records are in `network.jsonl`. Then, with both gone, the network, unless
    /// a kept container is still on it.
    pub fn end<T>(
        self,
        rt: &dyn Runtime,
        keep_network: bool,
        remove_container: impl FnOnce() -> T,
    ) -> (T, runtime::Result<()>) {
        let (container_removed, proxy_removed) = std::thread::scope(|scope| {
            let proxy = scope.spawn(|| rt.remove(&self.proxy));
            let container_removed = remove_container();
            let proxy_removed = proxy.join().expect("removing the proxy panicked");
            (container_removed, proxy_removed)
        });
        // The proxy's output ends with the proxy.
        let _ = self.log_pump.join();
        let ended = proxy_removed.and_then(|()| {
            log::debug!("proxy removed");
            if keep_network {
                Ok(())
            } else {
                rt.remove_network(&self.network_id)
            }
        });
        (container_removed, ended)
    }
}

/// Take down what run `run_id`'s sandbox left, found by its labels (another process than
/// the run's owner: the watchdog, a settle, `destroy`): its proxy, and its network unless
/// `keep_network`. With `catch_up`, that network log is first rewritten whole from the
/// proxy's output as the engine kept it (the owner died before writing all of it).
pub fn tear_down(
    rt: &dyn Runtime,
    run_id: &str,
    keep_network: bool,
    catch_up: Option<&Path>,
) -> runtime::Result<()> {
    for c in rt.list_run(run_id)? {
        if c.role.as_deref() != Some(PROXY_ROLE) {
            continue;
        }
        if let Some(path) = catch_up
            && let Err(e) = recover_log(rt, &c.id, path)
        {
            log::debug!("recovering the network log: {e}");
        }
        rt.remove(&c.id)?;
    }
    if !keep_network {
        for n in rt.list_networks(Some(run_id))? {
            rt.remove_network(&n.id)?;
        }
    }
    Ok(())
}

/// Rewrite the network log at `path` from the proxy's output as the engine kept it.
fn recover_log(rt: &dyn Runtime, proxy: &str, path: &Path) -> Result<(), String> {
    let mut output = rt.output(proxy, false).map_err(|e| e.to_string())?;
    let mut stdout = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Some((stream, n)) = output.next_chunk(&mut buf).map_err(|e| e.to_string())? {
        if stream != Stream::Stderr {
            stdout.extend_from_slice(&buf[..n]);
        }
    }
    // The first line says the proxy listens; the records follow it.
    let records = match stdout.iter().position(|&b| b == b'\n') {
        Some(end) => &stdout[end + 1..],
        None => &[],
    };
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(records))
        .map_err(|e| crate::io_reason::io_reason(&e))
}
