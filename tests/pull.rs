//! moat's Docker pull path against a real registry: `tests/registry` serves one image on
//! 127.0.0.1 (which dockerd pulls from over plain HTTP), so a run of an image the engine
//! lacks goes create → 404 → `POST /images/create` → create again for real, and a pull
//! can be made to hang to stop the run while it is still pulling.
//!
//! Docker only: Apple's path has its own pull test in tests/apple.rs. Each test starts its
//! own registry (own port, own image: see the script's header) and pulls a tag of its own,
//! so they run in parallel with each other and with the other suites on the shared engine.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::live::Live;
use common::pty::{Pty, show};
use common::{Env, Runtime, assert_code, containers_for, inspect_container, stderr, stdout};

const REGISTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registry");

/// The repository every test pulls (any name works: the registry serves its one image
/// under every name and tag).
const REPOSITORY: &str = "moat-test/pulled";

/// How long the registry may take to export its image from the engine and listen, and a
/// pull of it (about 2 MB, from this machine) may take.
const SLOW: Duration = Duration::from_secs(15);

fn docker() -> Env {
    common::moat_on(Runtime::Docker)
}

/// A `tests/registry` process, killed on drop (and, should the test binary die without
/// dropping it, ended by the close of its stdin: it runs with `--exit-on-eof`).
struct Registry {
    child: Child,
    _lifeline: Option<ChildStdin>,
    port: u16,
    /// The digest of the image's config: the ID the engine gives the pulled image.
    config: String,
    /// The digests of its layers as served (gzipped).
    layers: Vec<String>,
    /// Every event line the registry printed after its ready line.
    events: Arc<Mutex<Vec<String>>>,
}

impl Registry {
    fn start(switches: &[&str]) -> Registry {
        let mut child = Command::new(REGISTRY)
            .arg("--exit-on-eof")
            .args(switches)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/registry");
        let lifeline = child.stdin.take();
        let out = child.stdout.take().expect("registry stdout piped");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = mpsc::channel();
        let shared = Arc::clone(&events);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = ready_tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                shared.lock().expect("events lock").push(line);
            }
        });
        let mut registry = Registry {
            child,
            _lifeline: lifeline,
            port: 0,
            config: String::new(),
            layers: Vec::new(),
            events,
        };
        // Dropped (so killed) if anything below panics.
        let first = ready.recv_timeout(SLOW).unwrap_or_else(|e| {
            panic!("tests/registry did not say it listens ({e}); its stderr is above")
        });
        let info: Value = serde_json::from_str(&first).expect("registry ready line is JSON");
        registry.port = info["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("registry port");
        registry.config = info["config"].as_str().expect("config digest").to_string();
        registry.layers = info["layers"]
            .as_array()
            .expect("layer digests")
            .iter()
            .map(|d| d.as_str().expect("layer digest").to_string())
            .collect();
        assert!(!registry.layers.is_empty(), "{info}");
        registry
    }

    /// `127.0.0.1:PORT/moat-test/pulled:TAG`, with a tag of this test's own.
    fn reference(&self, env: &Env) -> String {
        let tag = env
            .root
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 test dir");
        format!("127.0.0.1:{}/{REPOSITORY}:{tag}", self.port)
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().expect("events lock").clone()
    }

    /// Waits for the registry to tell `event`. It tells of an answer just before sending
    /// it, so an event the engine acted on is at most this reader's latency away.
    #[track_caller]
    fn expect(&self, event: &str) {
        let deadline = Instant::now() + SLOW;
        loop {
            let events = self.events();
            if events.iter().any(|e| e == event) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {event:?} from the registry within {SLOW:?}: {events:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An image reference this test pulls: absent from the engine when the test starts, and
/// removed from it again when the test ends, however it ends.
struct Pulled(String);

impl Pulled {
    fn new(reference: String) -> Pulled {
        remove_image(&reference);
        assert_eq!(image_id(&reference), None, "{reference} is still there");
        Pulled(reference)
    }
}

impl Drop for Pulled {
    fn drop(&mut self) {
        // No assertion here: a panic while a failing test unwinds would abort the binary.
        let path = format!("/images/{}?force=1", common::url_encode(&self.0));
        let _ = common::docker_request("DELETE", &path);
    }
}

/// The engine's ID of image `reference`, or `None` when it has no such image.
fn image_id(reference: &str) -> Option<String> {
    let path = format!("/images/{}/json", common::url_encode(reference));
    let (status, body) = common::docker_request("GET", &path).expect("inspect image");
    match status {
        200 => {
            let image: Value = serde_json::from_slice(&body).expect("image inspect is JSON");
            Some(image["Id"].as_str().expect("image Id").to_string())
        }
        404 => None,
        _ => panic!(
            "inspect image {reference}: {status} {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// Removes image `reference` (untags it; deletes it when no other tag is left).
fn remove_image(reference: &str) {
    let path = format!("/images/{}?force=1", common::url_encode(reference));
    let (status, body) = common::docker_request("DELETE", &path).expect("remove image");
    assert!(
        status == 200 || status == 404,
        "remove image {reference}: {status} {}",
        String::from_utf8_lossy(&body)
    );
}

/// A run of an image the engine lacks pulls it from the registry, then runs the command
/// as if the image had been there; with stderr not a terminal, moat says nothing of it.
#[test]
fn a_missing_image_is_pulled_then_run() {
    let env = docker();
    let registry = Registry::start(&[]);
    let image = Pulled::new(registry.reference(&env));

    let out = env.run(&["run", "--image", &image.0, "--", "echo", "pulled"]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "pulled\n");
    assert_eq!(
        stderr(&out),
        "",
        "no progress when stderr is not a terminal"
    );

    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["exit_code"], 0, "{record:#}");
    assert_eq!(record["image"], image.0.as_str(), "{record:#}");
    // The engine has the very image this registry served (its config is unique to it),
    // and got it by downloading every blob.
    assert_eq!(image_id(&image.0), Some(registry.config.clone()));
    for blob in registry.layers.iter().chain([&registry.config]) {
        registry.expect(&format!("GET /v2/{REPOSITORY}/blobs/{blob} 200"));
    }
}

/// On a terminal, moat tells of the pull (`Pulling image REF...`, then the engine's
/// progress) before the command's output.
#[test]
fn a_pull_shows_progress_on_a_terminal() {
    let env = docker();
    let registry = Registry::start(&[]);
    let image = Pulled::new(registry.reference(&env));

    let mut cmd = env.cmd();
    cmd.args(["run", "--image", &image.0, "--", "echo", "pulled"]);
    let mut pty = Pty::spawn(cmd, 24, 200);
    pty.expect(format!("Pulling image {}...\r\n", image.0), SLOW);
    // The engine's progress, each message over the last (`\r`, erase line); its last
    // word on a pull that fetched something ends the line.
    let last = format!("\r\x1b[KStatus: Downloaded newer image for {}\r\n", image.0);
    pty.expect(last, SLOW);
    pty.expect("Started ", SLOW);
    pty.expect("pulled\r\n", SLOW);
    let status = pty.wait(SLOW);
    assert_eq!(status.code(), Some(0), "screen {:?}", show(&pty.screen()));
    assert_eq!(image_id(&image.0), Some(registry.config.clone()));
}

/// On a terminal, a pull that fails once progress is drawn ends that line first: the
/// error is a line of its own, as every moat error is.
#[test]
fn a_pull_failing_on_a_terminal_tells_its_error_on_a_line_of_its_own() {
    let env = docker();
    let registry = Registry::start(&["--missing-blobs"]);
    let image = Pulled::new(registry.reference(&env));

    let mut cmd = env.cmd();
    cmd.args(["run", "--image", &image.0, "--", "true"]);
    let mut pty = Pty::spawn(cmd, 24, 200);
    pty.expect(format!("Pulling image {}...\r\n", image.0), SLOW);
    // The engine tells of the pull (`Pulling from...`) before it fetches the blobs.
    pty.expect("\r\x1b[K", SLOW);
    let status = pty.wait(SLOW);
    let screen = pty.screen();
    assert_eq!(status.code(), Some(125), "screen {:?}", show(&screen));
    let text = String::from_utf8_lossy(&screen);
    let error = format!("\r\nmoat: pulling image {}: ", image.0);
    let at = text
        .find(&error)
        .unwrap_or_else(|| panic!("no line starting {error:?} in {:?}", show(&screen)));
    let line = &text[at + 2..];
    assert!(
        line.ends_with("\r\n") && line.matches("\r\n").count() == 1,
        "the error is not the last line, or not one line: {:?}",
        show(&screen)
    );
}

/// A registry whose blobs hang, the image to pull from it, and the command of a run named
/// `pulling` of that image: the run stays pulling until it is stopped.
fn hanging_pull(env: &Env) -> (Registry, Pulled, Command) {
    let registry = Registry::start(&["--hang-blobs"]);
    let image = Pulled::new(registry.reference(env));
    let mut cmd = env.cmd();
    cmd.args([
        "run", "-n", "pulling", "--image", &image.0, "--", "sleep", "60",
    ]);
    (registry, image, cmd)
}

/// `moat stop` from elsewhere ends a run whose image is still downloading (the registry
/// sends half of each blob, then nothing) at once (the owner looks at its record every
/// 200 ms while it pulls), the way a stop before the start does: 143, `stopped` by
/// `moat stop`, no container, and no image tagged.
#[test]
fn moat_stop_ends_a_run_that_is_still_pulling() {
    let env = docker();
    let (registry, image, cmd) = hanging_pull(&env);
    let mut live = Live::spawn(cmd);
    // The pull is under way once the engine is downloading the layer.
    registry.expect(&format!("hang {}", registry.layers[0]));
    let record = env.record_named("pulling").expect("the run is recorded");
    let id = record["id"].as_str().expect("run id").to_string();
    assert_eq!(record["state"], "created", "still pulling: {record:#}");
    assert!(record["container_id"].is_null(), "{record:#}");
    assert!(live.running(), "moat ended before the stop");

    let sent = Instant::now();
    let stop = env.run(&["stop", "pulling"]);
    let took = sent.elapsed();
    assert_code(&stop, 0);
    assert_eq!(stdout(&stop), format!("Run {id} stopped\n"));
    assert!(took < Duration::from_secs(5), "moat stop took {took:?}");

    // No container ever ran, so moat exits as a stop before the start does: 128 + SIGTERM.
    let (status, out, err) = live.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "stdout {out:?}, stderr {err:?}");
    assert!(
        out.is_empty() && err.is_empty(),
        "stdout {out:?}, stderr {err:?}"
    );
    let record = env.record(&id);
    assert_eq!(record["state"], "stopped", "{record:#}");
    assert_eq!(record["stop_reason"], "moat stop", "{record:#}");
    assert!(record["exit_code"].is_null(), "{record:#}");
    assert!(record["error"].is_null(), "{record:#}");
    assert!(record["container_id"].is_null(), "{record:#}");
    assert!(record["stopped_at"].is_string(), "{record:#}");
    assert_eq!(containers_for(&id), Vec::<String>::new());
    assert_eq!(
        inspect_container(&id),
        None,
        "a container named {id} exists"
    );
    // The engine never got the whole image, so it tagged nothing.
    assert_eq!(image_id(&image.0), None, "the half-pulled image is tagged");
}

/// On a terminal, a run stopped while its pull is drawing progress ends that line, so the
/// shell's next prompt starts on a line of its own.
#[test]
fn a_stop_during_a_pull_on_a_terminal_ends_the_progress_line() {
    let env = docker();
    let (registry, image, cmd) = hanging_pull(&env);
    let mut pty = Pty::spawn(cmd, 24, 200);
    pty.expect(format!("Pulling image {}...\r\n", image.0), SLOW);
    registry.expect(&format!("hang {}", registry.layers[0]));
    pty.expect("\r\x1b[K", SLOW);
    assert_code(&env.run(&["stop", "pulling"]), 0);
    let status = pty.wait(SLOW);
    let screen = pty.screen();
    assert_eq!(status.code(), Some(143), "screen {:?}", show(&screen));
    assert!(
        screen.ends_with(b"\r\n"),
        "the progress line is left open: {:?}",
        show(&screen)
    );
}

/// A pull the registry refuses before the engine answers (no such manifest: the engine
/// answers 404) fails the run like a missing image does: 125 and one line with the
/// daemon's own message.
#[test]
fn an_image_the_registry_lacks_exits_125_with_the_daemons_message() {
    refused_pull_exits_125("--missing-manifest", "manifest unknown");
}

/// So does a pull that fails once the engine's streamed answer has begun (the blobs are
/// missing): the failure is an `error` message in a 200 answer.
#[test]
fn a_pull_failing_mid_stream_exits_125_with_the_daemons_message() {
    refused_pull_exits_125("--missing-blobs", "unknown blob");
}

/// Runs an image whose pull fails because the registry runs with `switch`. The daemon's
/// message for that failure must pass on the registry's own `words`.
fn refused_pull_exits_125(switch: &str, words: &str) {
    let env = docker();
    let registry = Registry::start(&[switch]);
    let image = Pulled::new(registry.reference(&env));
    let daemon = common::pull_error(&image.0).expect("the registry's 404 fails the pull");
    assert!(daemon.contains(words), "{daemon:?} lacks {words:?}");

    let out = env.run(&["run", "--image", &image.0, "--", "true"]);
    assert_code(&out, 125);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with(&format!("moat: pulling image {}: ", image.0)),
        "{err:?}"
    );
    assert!(
        err.contains(&daemon),
        "{err:?} lacks the daemon's {daemon:?}"
    );
    let record = env.record(&env.only_run_id());
    assert_eq!(record["state"], "failed", "{record:#}");
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains(&daemon)),
        "{record:#}"
    );
    assert!(record["container_id"].is_null(), "{record:#}");
    assert_eq!(image_id(&image.0), None);
}
