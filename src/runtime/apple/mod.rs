//! Apple's `container` CLI runtime (apple/container). moat spawns the CLI for every
//! operation, each with a deadline, because the CLI is known to hang; the run's own session
//! is a foreground `container start --attach` child whose exit status is the exit code.
//!
//! What the CLI cannot provide: an exit code after the fact (`inspect` has none, so a run
//! whose `moat run` died is recorded with "exit code unknown"), a `wait`, an `attach` to a
//! running container, and ID prefixes. A created but never started container shows as
//! `stopped`.

mod cli;
mod inspect;
mod pipes;
mod pty;
mod session;

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};

use super::{
    ContainerState, CreateSpec, Error, ErrorKind, ManagedContainer, Result, Runtime, Session,
    StartOptions,
};
use cli::{Cli, one_line, says_not_found};

/// Deadline for checking that the CLI answers at all.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline for ordinary calls (image inspect, kill, list...).
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// `container create` prepares the container's root filesystem, which takes a while for
/// a large image.
const CREATE_DEADLINE: Duration = Duration::from_secs(120);
/// `container rm --force` stops a running container first.
const REMOVE_DEADLINE: Duration = Duration::from_secs(60);
/// A pull may be large; it still gets a deadline so a stalled registry cannot hang moat.
const PULL_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How long `container stop` may take beyond its own timeout.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// One `container inspect`; a hung one counts as a transient failure.
const INSPECT_DEADLINE: Duration = Duration::from_secs(10);
/// Pauses between retries of a transiently failing inspect.
const INSPECT_BACKOFF: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];
/// No retry starts after this much time has gone into one inspect.
const INSPECT_BUDGET: Duration = Duration::from_secs(15);
/// How long `start` waits to see the container running before it goes on regardless.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Pauses between inspects while waiting for the container to run.
const START_POLL: [Duration; 4] = [
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
];

/// Whether a `container` executable is on PATH.
pub fn cli_on_path() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join(cli::CLI_NAME).is_file())
    })
}

/// Find the CLI (`$MOAT_CONTAINER_BIN`, else PATH) and check that it answers.
pub fn connect() -> Result<Box<dyn Runtime>> {
    Ok(Box::new(Apple::connect()?))
}

pub struct Apple {
    cli: Cli,
}

impl Apple {
    pub fn connect() -> Result<Apple> {
        let cli = Cli::locate()?;
        let what = "cannot reach Apple's container system";
        let out = match cli.call(what, &["list", "--quiet"], CONNECT_DEADLINE, None) {
            Ok(out) => out,
            Err(e) if e.kind == ErrorKind::Timeout => {
                return Err(Error::new(
                    ErrorKind::Unreachable,
                    what,
                    format!(
                        "{} (is it running? `container system start` starts it)",
                        e.detail
                    ),
                ));
            }
            Err(e) => {
                return Err(Error {
                    kind: ErrorKind::Unreachable,
                    ..e
                });
            }
        };
        if !out.status.success() {
            let message = out.message();
            let advice = if message.contains("kernel not configured")
                || message.contains("default kernel")
            {
                "run `container system kernel set --recommended`"
            } else {
                "is it running? `container system start` starts it"
            };
            return Err(Error::new(
                ErrorKind::Unreachable,
                what,
                format!("{message} ({advice})"),
            ));
        }
        Ok(Apple { cli })
    }

    /// One `container inspect`. `Err(Ok(e))` is a failure worth retrying, `Err(Err(e))`
    /// one that is not.
    fn inspect_once(&self, id: &str) -> std::result::Result<ContainerState, Result<Error>> {
        let what = "inspecting the container";
        let out = match self
            .cli
            .call(what, &["inspect", id], INSPECT_DEADLINE, None)
        {
            Ok(out) => out,
            // A hung CLI may answer next time.
            Err(e) if e.kind == ErrorKind::Timeout => return Err(Ok(e)),
            Err(e) => return Err(Err(e)),
        };
        if !out.status.success() {
            let message = out.message();
            if says_not_found(&message) {
                return Ok(ContainerState::Gone);
            }
            // XPC errors, an apiserver restarting...: never an exit.
            return Err(Ok(Error::new(ErrorKind::Other, what, message)));
        }
        inspect::inspect_state(&out.stdout, id)
            .map_err(|e| Err(Error::new(ErrorKind::Other, what, e)))
    }

    /// Wait until the container runs, or the attached `container start` has ended (then
    /// its exit is handed on in a new channel, since it was taken from `exit`).
    ///
    /// The CLI returns nothing when the start is done, and until then a stop finds the
    /// container only created (shown as `stopped`) and does nothing: the command would
    /// then run on as if no one had asked. A transient inspect failure is just another
    /// poll; after [`START_DEADLINE`] moat goes on without knowing.
    fn wait_until_running(&self, id: &str, exit: Receiver<Result<i32>>) -> Receiver<Result<i32>> {
        let started = Instant::now();
        // Pause first: the CLI has only just been spawned, so an inspect now would only
        // find the container not started yet.
        for attempt in 0.. {
            let pause = START_POLL[attempt.min(START_POLL.len() - 1)];
            match exit.recv_timeout(pause) {
                Ok(result) => {
                    log::debug!("`container start` ended before it was seen running");
                    let (tx, rx) = bounded(1);
                    let _ = tx.send(result);
                    return rx;
                }
                Err(RecvTimeoutError::Disconnected) => return exit,
                Err(RecvTimeoutError::Timeout) => {}
            }
            match self.inspect_once(id) {
                Ok(ContainerState::Running) => {
                    log::debug!("container {id} runs after {:?}", started.elapsed());
                    return exit;
                }
                Ok(state) => log::debug!("container {id} not running yet: {state:?}"),
                Err(Ok(e) | Err(e)) => log::debug!("inspect while starting {id}: {e}"),
            }
            if started.elapsed() > START_DEADLINE {
                break;
            }
        }
        log::debug!("container {id} not seen running within {START_DEADLINE:?}");
        exit
    }
}

/// `container create`'s arguments for `spec`.
fn create_args(spec: &CreateSpec) -> Vec<String> {
    let mut args = vec!["create".to_string(), "--name".into(), spec.name.clone()];
    if spec.init {
        args.push("--init".into());
    }
    if spec.stdin {
        args.push("-i".into());
    }
    if spec.tty {
        args.push("-t".into());
    }
    for (key, value) in &spec.labels {
        args.push("--label".into());
        args.push(format!("{key}={value}"));
    }
    for pair in &spec.env {
        args.push("--env".into());
        args.push(pair.clone());
    }
    for mount in &spec.mounts {
        let mut volume = format!("{}:{}", mount.source.to_string_lossy(), mount.target);
        if mount.read_only {
            volume.push_str(":ro");
        }
        args.push("--volume".into());
        args.push(volume);
    }
    if !spec.workdir.is_empty() {
        args.push("--workdir".into());
        args.push(spec.workdir.clone());
    }
    if let Some(network) = &spec.network {
        args.push("--network".into());
        args.push(network.clone());
    }
    if let Some(user) = &spec.user {
        args.push("--user".into());
        args.push(user.clone());
    }
    args.push(spec.image.clone());
    args.extend(spec.command.iter().cloned());
    args
}

/// `container stop`'s arguments.
fn stop_args(id: &str, signal: Option<&str>, timeout: Duration) -> Vec<String> {
    let mut args = vec!["stop".to_string()];
    if let Some(signal) = signal {
        args.push("-s".into());
        args.push(signal.to_string());
    }
    args.push("-t".into());
    args.push(timeout.as_secs().to_string());
    args.push(id.to_string());
    args
}

/// A failure that means "there is nothing to stop or remove".
fn already_gone(e: &Error) -> bool {
    e.kind == ErrorKind::NotFound || e.detail.contains("not running")
}

impl Runtime for Apple {
    fn kind(&self) -> super::Kind {
        super::Kind::Apple
    }

    fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        mut progress: Option<super::Progress>,
    ) -> Result<()> {
        let what = format!("pulling image {image}");
        let mut args = vec!["image", "pull"];
        if let Some(platform) = platform {
            args.extend(["--platform", platform]);
        }
        args.push(image);
        let out = self
            .cli
            .call(&what, &args, PULL_DEADLINE, progress.as_mut())?;
        if out.status.success() {
            Ok(())
        } else {
            let kind = if says_not_found(&out.stderr) {
                ErrorKind::NotFound
            } else {
                ErrorKind::Other
            };
            Err(Error::new(kind, what, out.message()))
        }
    }

    fn image_exists(&self, image: &str) -> Result<bool> {
        let found = self.cli.call(
            &format!("looking up image {image}"),
            &["image", "inspect", image],
            CALL_DEADLINE,
            None,
        )?;
        Ok(found.status.success())
    }

    /// Through the CLI's `build`, from the context unpacked into a private directory.
    /// Its output is handed on once it has ended.
    fn build(
        &self,
        tag: &str,
        labels: &[(String, String)],
        context: Vec<u8>,
        output: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let what = format!("building image {tag}");
        let dir = BuildDir::unpack(&context)
            .map_err(|e| Error::new(ErrorKind::Other, &what, format!("the build context: {e}")))?;
        let dockerfile = dir.0.join("Dockerfile");
        let mut args: Vec<std::ffi::OsString> = vec!["build".into(), "--tag".into(), tag.into()];
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}").into()]);
        }
        args.extend([
            "--file".into(),
            dockerfile.into_os_string(),
            dir.0.clone().into(),
        ]);
        let out = self.cli.call(&what, &args, PULL_DEADLINE, None)?;
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines().chain(out.stderr.lines()) {
            output(line);
        }
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Other, what, out.message()))
        }
    }

    fn create(&self, spec: &CreateSpec) -> Result<String> {
        let stdout = self
            .cli
            .run(
                "creating the container",
                &create_args(spec),
                CREATE_DEADLINE,
            )
            // The CLI fetches a missing image itself; one it cannot find is reported as
            // not found, and moat then pulls it (with progress).
            .map_err(Error::image_missing_if_not_found)?;
        let text = String::from_utf8_lossy(&stdout);
        // The CLI prints the new container's ID, which is the name it was given.
        Ok(text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or(&spec.name)
            .to_string())
    }

    fn start(&self, id: &str, opts: StartOptions) -> Result<Session> {
        let mut session = session::start(&self.cli, id, opts)?;
        session.exit = self.wait_until_running(id, session.exit);
        Ok(session)
    }

    fn stop(&self, id: &str, signal: Option<&str>, timeout: Duration) -> Result<()> {
        let what = "stopping the container";
        match self.cli.run(
            what,
            &stop_args(id, signal, timeout),
            timeout.saturating_add(STOP_GRACE),
        ) {
            Ok(_) => Ok(()),
            Err(e) if already_gone(&e) => Ok(()),
            Err(e) if e.kind == ErrorKind::Timeout => {
                // A stop that hangs must not leave the container running (the contract
                // is a kill after the timeout): kill it beside, and report the hang now,
                // at its deadline.
                let apple = Apple {
                    cli: self.cli.clone(),
                };
                let id = id.to_string();
                let _ = std::thread::Builder::new()
                    .name("kill-after-hung-stop".into())
                    .spawn(move || {
                        if let Err(k) = apple.kill(&id) {
                            log::debug!("killing after a hung stop: {k}");
                        }
                    });
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn kill(&self, id: &str) -> Result<()> {
        match self
            .cli
            .run("killing the container", &["kill", id], CALL_DEADLINE)
        {
            Ok(_) => Ok(()),
            Err(e) if already_gone(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn inspect(&self, id: &str) -> Result<ContainerState> {
        let started = Instant::now();
        let mut pauses = INSPECT_BACKOFF.iter();
        loop {
            match self.inspect_once(id) {
                Ok(state) => return Ok(state),
                Err(Err(e)) => return Err(e),
                Err(Ok(e)) => match pauses.next() {
                    Some(&pause) if started.elapsed() + pause < INSPECT_BUDGET => {
                        log::debug!("inspect {id} failed ({e}); retrying in {pause:?}");
                        std::thread::sleep(pause);
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    fn remove(&self, id: &str) -> Result<()> {
        match self.cli.run(
            "removing the container",
            &["rm", "--force", id],
            REMOVE_DEADLINE,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn cancel_calls(&self) {
        cli::kill_in_flight();
    }

    fn list_managed(&self) -> Result<Vec<ManagedContainer>> {
        let what = "listing containers";
        let stdout = self
            .cli
            .run(what, &["list", "--all", "--format", "json"], CALL_DEADLINE)?;
        let snapshots = inspect::parse(&stdout)
            .map_err(|e| Error::new(ErrorKind::Other, what, one_line(&e)))?;
        Ok(snapshots
            .into_iter()
            .filter(|s| s.labels.get("moat.managed").is_some_and(|v| v == "true"))
            .map(|mut s| ManagedContainer {
                run_id: s.labels.remove("moat.run_id"),
                home: s.labels.remove("moat.home"),
                role: s.labels.remove("moat.role"),
                created: s.created,
                id: s.id,
            })
            .collect())
    }
}

/// A private directory holding a build context, removed when dropped.
struct BuildDir(std::path::PathBuf);

impl BuildDir {
    fn unpack(context: &[u8]) -> std::io::Result<BuildDir> {
        use std::os::unix::fs::DirBuilderExt;
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("moat-build-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let dir = BuildDir(path);
        tar::Archive::new(context).unpack(&dir.0)?;
        Ok(dir)
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Mount;

    fn spec() -> CreateSpec {
        CreateSpec {
            name: "run_0123456789ab".into(),
            image: "moat-test/busybox:latest".into(),
            command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["FOO=bar".into()],
            mounts: vec![
                Mount {
                    source: "/home/me/ws".into(),
                    target: "/workspace".into(),
                    read_only: false,
                },
                Mount {
                    source: "/etc/cfg".into(),
                    target: "/cfg".into(),
                    read_only: true,
                },
            ],
            workdir: "/workspace".into(),
            labels: vec![
                ("moat.run_id".into(), "run_0123456789ab".into()),
                ("moat.managed".into(), "true".into()),
            ],
            init: true,
            tty: false,
            tty_size: None,
            stdin: true,
            network: Some("none".into()),
            user: None,
            options: Default::default(),
        }
    }

    #[test]
    fn create_arguments_follow_the_cli() {
        assert_eq!(
            create_args(&spec()),
            [
                "create",
                "--name",
                "run_0123456789ab",
                "--init",
                "-i",
                "--label",
                "moat.run_id=run_0123456789ab",
                "--label",
                "moat.managed=true",
                "--env",
                "FOO=bar",
                "--volume",
                "/home/me/ws:/workspace",
                "--volume",
                "/etc/cfg:/cfg:ro",
                "--workdir",
                "/workspace",
                "--network",
                "none",
                "moat-test/busybox:latest",
                "sh",
                "-c",
                "echo hi",
            ]
        );
    }

    #[test]
    fn create_arguments_for_a_tty_without_init_or_command() {
        let mut s = spec();
        s.init = false;
        s.tty = true;
        s.command.clear();
        s.network = None;
        let args = create_args(&s);
        assert!(!args.contains(&"--init".to_string()));
        assert!(args.contains(&"-t".to_string()));
        assert!(!args.contains(&"--network".to_string()));
        assert_eq!(
            args.last().map(String::as_str),
            Some("moat-test/busybox:latest")
        );
    }

    #[test]
    fn stop_arguments() {
        assert_eq!(
            stop_args("c", Some("SIGHUP"), Duration::from_secs(10)),
            ["stop", "-s", "SIGHUP", "-t", "10", "c"]
        );
        assert_eq!(
            stop_args("c", None, Duration::from_secs(0)),
            ["stop", "-t", "0", "c"]
        );
    }

    #[test]
    fn not_found_and_not_running_are_already_gone() {
        for detail in [
            "container not found: c",
            "notFound: \"container c not found\"",
        ] {
            let kind = if says_not_found(detail) {
                ErrorKind::NotFound
            } else {
                ErrorKind::Other
            };
            assert!(already_gone(&Error::new(kind, "x", detail)), "{detail}");
        }
        assert!(already_gone(&Error::new(
            ErrorKind::Other,
            "x",
            "container c is not running"
        )));
        assert!(!already_gone(&Error::new(
            ErrorKind::Other,
            "x",
            "XPC connection error: Connection interrupted"
        )));
    }
}
