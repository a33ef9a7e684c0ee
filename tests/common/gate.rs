//! A gate in front of the Docker engine: a Unix socket that passes every request through to
//! the engine, except the requests a test names (say, the container's start), which it
//! holds until the test opens the gate. A `moat run` pointed at it (`DOCKER_HOST`) then
//! stays in a given state (`created` while its create is held, `starting` while its start
//! is held) for exactly as long as the test needs, with no timing guess.
//!
//! Under Apple the stand-in's own `docker` calls honour `DOCKER_HOST` too, so the gate holds
//! the same engine requests behind the CLI.
//!
//! Requests are read one at a time per connection (head, then a `Content-Length` body); a
//! connection that upgrades (attach) or sends a chunked body is copied raw from then on.
//! Responses are copied raw.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Which requests to hold: `(method, path without the query)`.
type Hold = dyn Fn(&str, &str) -> bool + Send + Sync;

#[derive(Default)]
struct State {
    open: bool,
    /// Requests waiting at the gate now.
    held: usize,
    /// Requests that were held at some point.
    ever_held: usize,
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    hold: Box<Hold>,
    upstream: PathBuf,
}

/// The gate; opened (and its listener stopped) on drop.
pub struct Gate {
    socket: PathBuf,
    shared: Arc<Shared>,
}

impl Gate {
    /// A gate at `socket` that holds every `POST .../containers/create`.
    pub fn on_create(socket: &Path) -> Gate {
        Gate::new(socket, |method, path| {
            method == "POST" && path.ends_with("/containers/create")
        })
    }

    /// A gate at `socket` that holds every `POST .../containers/ID/start`.
    pub fn on_start(socket: &Path) -> Gate {
        Gate::new(socket, |method, path| {
            method == "POST" && path.contains("/containers/") && path.ends_with("/start")
        })
    }

    pub fn new(socket: &Path, hold: impl Fn(&str, &str) -> bool + Send + Sync + 'static) -> Gate {
        let listener = UnixListener::bind(socket)
            .unwrap_or_else(|e| panic!("bind the gate at {}: {e}", socket.display()));
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Condvar::new(),
            hold: Box::new(hold),
            upstream: super::docker_socket(),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.state.lock().expect("gate lock").closing {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || {
                    let _ = serve(&shared, client);
                });
            }
        });
        Gate {
            socket: socket.to_path_buf(),
            shared,
        }
    }

    /// The `DOCKER_HOST` value that points at the gate.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Waits (at most `timeout`, else panics) until a request is held at the gate.
    #[track_caller]
    pub fn wait_held(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().expect("gate lock");
        while state.held == 0 {
            let now = Instant::now();
            assert!(now < deadline, "no request reached the gate in {timeout:?}");
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .expect("gate lock")
                .0;
        }
    }

    /// How many requests were held so far.
    pub fn ever_held(&self) -> usize {
        self.shared.state.lock().expect("gate lock").ever_held
    }

    /// Lets the held requests, and every later one, through.
    pub fn open(&self) {
        self.shared.state.lock().expect("gate lock").open = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().expect("gate lock");
            state.open = true;
            state.closing = true;
        }
        self.shared.changed.notify_all();
        // Wake the accept loop so it sees `closing`.
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Passes one client connection through to the engine, holding the requests to hold.
fn serve(shared: &Shared, client: UnixStream) -> std::io::Result<()> {
    let mut upstream = UnixStream::connect(&shared.upstream)?;
    let mut down_from = upstream.try_clone()?;
    let mut down_to = client.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut down_from, &mut down_to);
        let _ = down_to.shutdown(Shutdown::Write);
    });
    let mut from = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let start = head.len();
            if from.read_until(b'\n', &mut head)? == 0 {
                // The client is done (or gave up while held: nothing is forwarded).
                let _ = upstream.shutdown(Shutdown::Write);
                return Ok(());
            }
            if &head[start..] == b"\r\n" || &head[start..] == b"\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_string();
        let header = |name: &str| {
            text.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_ascii_lowercase())
            })
        };
        let length: u64 = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let raw_after = header("upgrade").is_some()
            || header("transfer-encoding").is_some_and(|v| v.contains("chunked"));

        if (shared.hold)(&method, &path) {
            let mut state = shared.state.lock().expect("gate lock");
            if !state.open {
                state.held += 1;
                state.ever_held += 1;
                shared.changed.notify_all();
                while !state.open {
                    state = shared.changed.wait(state).expect("gate lock");
                }
                state.held -= 1;
            }
        }
        upstream.write_all(&head)?;
        if raw_after {
            std::io::copy(&mut from, &mut upstream)?;
            let _ = upstream.shutdown(Shutdown::Write);
            return Ok(());
        }
        std::io::copy(&mut (&mut from).take(length), &mut upstream)?;
    }
}
