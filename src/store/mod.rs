//! Run records on disk: `$MOAT_HOME/runs/<run_id>/` (0700) holding `metadata.json` and
//! `logs.jsonl` (0600), plus two lock files:
//!
//! - `owner.lock` is held exclusively by the `moat run` process for the run's whole life.
//!   The kernel drops it when that process dies, however it dies, so "can I take it?" is an
//!   exact test of whether the owner is gone, and taking it shared is how other processes
//!   wait for the run to end without polling.
//! - `lock` serialises read-modify-write of `metadata.json` between processes.

mod captured;
pub mod id;
pub mod logs;
pub mod record;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

pub use captured::Captured;
pub use record::{CopyBack, Record, State, StopReason};

#[derive(Debug)]
pub struct Error {
    pub what: String,
    pub why: String,
}

impl Error {
    fn io(what: impl Into<String>, e: &io::Error) -> Error {
        Error {
            what: what.into(),
            why: crate::io_reason::io_reason(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// One directory under `runs/`: a readable record, or something that is not.
// Nearly every entry is a run; boxing it would cost an allocation per run for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Entry {
    Run(Record),
    /// A run directory whose record cannot be read. Shown, never silently deleted.
    Corrupt {
        dir: String,
        why: String,
    },
}

#[derive(Clone)]
pub struct Store {
    runs: PathBuf,
}

/// Held by the `moat run` process for the run's life; dropping it tells every waiter the
/// run is over.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
}

const METADATA: &str = "metadata.json";
const LOGS: &str = "logs.jsonl";
/// A strict run's proxy records, one JSON line per request.
const NETWORK_LOG: &str = "network.jsonl";
const OWNER_LOCK: &str = "owner.lock";
const META_LOCK: &str = "lock";
/// Space set aside for the run's last records (see [`Store::reserve_space`]).
const RESERVE: &str = ".reserve";
/// A record is well under a kilobyte; this leaves room for a long command line too.
const RESERVE_BYTES: usize = 16 * 1024;
/// The name prefix of a run directory being created: hidden, so `list` never sees a run
/// before its first record is written.
const CREATING: &str = ".creating-";

fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl Store {
    /// The store at `$MOAT_HOME` (else `~/.moat`) as it is: nothing is created, and a
    /// store that does not exist yet has no runs. For every command but `moat run`.
    pub fn open() -> Result<Store> {
        let root = home()?;
        // Canonical when it exists, as `create` made it; absolute when it does not.
        let root = fs::canonicalize(&root).unwrap_or(root);
        Ok(Store {
            runs: root.join("runs"),
        })
    }

    /// The store at `$MOAT_HOME` (else `~/.moat`), created (0700) if missing. For the
    /// commands that make runs.
    pub fn create() -> Result<Store> {
        let root = home()?;
        let runs = root.join("runs");
        create_private_dir(&runs)
            .map_err(|e| Error::io(format!("creating {}", runs.display()), &e))?;
        // One spelling per store (no `..`, no symlinks): the root is the containers'
        // `moat.home` label, which says which store owns them.
        let root = fs::canonicalize(&root)
            .map_err(|e| Error::io(format!("resolving {}", root.display()), &e))?;
        Ok(Store {
            runs: root.join("runs"),
        })
    }

    /// The store's root directory (`$MOAT_HOME`); containers are labelled with it so each
    /// store reaps only its own.
    pub fn root(&self) -> &Path {
        self.runs.parent().unwrap_or(&self.runs)
    }

    /// Where agent `agent` keeps its state (its home) for `workspace`:
    /// `agents/AGENT/<workspace's name>-<hash of its path>`, one per workspace so that a
    /// session continued in one project is that project's. Nothing is created here.
    pub fn agent_state_dir(&self, agent: &str, workspace: &Path) -> PathBuf {
        let hash = crate::digest::sha256_hex(&[workspace.as_os_str().as_encoded_bytes()], 6);
        let name: String = workspace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = if name.is_empty() { "root".into() } else { name };
        self.root()
            .join("agents")
            .join(agent)
            .join(format!("{name}-{hash}"))
    }

    /// The directory of run `id`. Callers pass only validated IDs ([`id::is_run_id`]).
    pub fn dir(&self, id: &str) -> PathBuf {
        debug_assert!(id::is_run_id(id), "not a run id: {id}");
        self.runs.join(id)
    }

    pub fn logs_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(LOGS)
    }

    pub fn network_log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(NETWORK_LOG)
    }

    /// Open a strict run's `network.jsonl` for appending (created 0600, empty for a run
    /// that has made no request yet).
    pub fn open_network_log(&self, id: &str) -> Result<File> {
        open_append(&self.network_log_path(id))
    }

    /// Create the run's directory, take its owner lock and write its first record, so that
    /// the run appears whole or not at all: everything is made under a temporary name that
    /// [`Store::list`] skips, then renamed into place. The owner lock survives the rename
    /// (a lock belongs to the open file, not to its path).
    pub fn create_run(&self, record: &Record) -> Result<OwnerLock> {
        let dir = self.dir(&record.id);
        let tmp = self.runs.join(format!("{CREATING}{}", record.id));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), &e))?;
        let made = (|| {
            let file = open_lock_file(&tmp.join(OWNER_LOCK))?;
            file.lock()
                .map_err(|e| Error::io("locking the new run", &e))?;
            write_record(&tmp, record)
                .map_err(|e| Error::io(format!("writing {}", dir.join(METADATA).display()), &e))?;
            // IDs are random: an existing directory of this ID is all but impossible, and
            // a non-empty one makes the rename fail rather than be replaced.
            fs::rename(&tmp, &dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
            Ok(OwnerLock { _file: file })
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        made
    }

    /// Open the run's log for appending (created 0600).
    pub fn open_log(&self, id: &str) -> Result<File> {
        open_append(&self.logs_path(id))
    }

    pub fn read(&self, id: &str) -> Result<Record> {
        self.read_with(id, &mut Vec::new())
    }

    /// [`Store::read`] into a buffer the caller reuses (listing thousands of runs).
    fn read_with(&self, id: &str, data: &mut Vec<u8>) -> Result<Record> {
        let path = self.dir(id).join(METADATA);
        data.clear();
        File::open(&path)
            .and_then(|mut f| io::Read::read_to_end(&mut f, data))
            .map_err(|e| Error::io(format!("reading {}", path.display()), &e))?;
        let mut record: Record = serde_json::from_slice(data).map_err(|e| Error {
            what: format!("reading {}", path.display()),
            why: format!("malformed record: {e}"),
        })?;
        record.fill_outcome();
        Ok(record)
    }

    /// Write the record atomically (see [`write_record`]). Callers hold the metadata lock
    /// (see [`Store::update`]).
    fn write(&self, record: &Record) -> Result<()> {
        let dir = self.dir(&record.id);
        match write_record(&dir, record) {
            // A full disk: the run's reserve makes room for its record.
            Err(e)
                if e.kind() == io::ErrorKind::StorageFull && self.release_reserve(&record.id) =>
            {
                write_record(&dir, record)
            }
            result => result,
        }
        .map_err(|e| Error::io(format!("writing {}", dir.join(METADATA).display()), &e))
    }

    /// Set aside a little space in the run's directory, so that its final record can be
    /// written even if its output fills the disk (the log's capture stops then, the
    /// record must not). Without it the run still works: this is best effort.
    pub fn reserve_space(&self, id: &str) {
        let path = self.dir(id).join(RESERVE);
        let reserved = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&[0u8; RESERVE_BYTES]));
        if let Err(e) = reserved {
            log::debug!("reserving space for run {id}'s record: {e}");
            let _ = fs::remove_file(&path);
        }
    }

    /// Give the run's reserved space back; whether there was any.
    pub fn release_reserve(&self, id: &str) -> bool {
        fs::remove_file(self.dir(id).join(RESERVE)).is_ok()
    }

    /// Read-modify-write the record under the run's metadata lock, so two processes never
    /// lose each other's change. `change` returns whether it changed anything.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record) -> bool) -> Result<Record> {
        let _guard = self.lock_metadata(id)?;
        let mut record = self.read(id)?;
        if change(&mut record) {
            self.write(&record)?;
        }
        Ok(record)
    }

    /// Take the run's metadata lock until the file given back is dropped: what
    /// [`Store::update`] holds, and what removing a run holds so that nobody rewrites the
    /// record meanwhile.
    pub fn lock_metadata(&self, id: &str) -> Result<File> {
        let file = open_lock_file(&self.dir(id).join(META_LOCK))?;
        file.lock()
            .map_err(|e| Error::io("locking the run's record", &e))?;
        Ok(file)
    }

    /// Whether the `moat run` process that owns the run is still alive.
    pub fn owner_alive(&self, record: &Record) -> bool {
        let Ok(file) = File::open(self.dir(&record.id).join(OWNER_LOCK)) else {
            return false;
        };
        match file.try_lock() {
            // We could take it: nobody holds it, so the owner is gone.
            Ok(()) => false,
            // Held. By the owner, or for an instant by a waiter taking it shared; a dead
            // owner pid settles the second case.
            Err(_) => record.owner_pid.is_none_or(pid_alive),
        }
    }

    /// Block until the run's owner has finished (released its lock).
    pub fn wait_owner(&self, id: &str) -> Result<()> {
        let Ok(file) = File::open(self.dir(id).join(OWNER_LOCK)) else {
            return Ok(());
        };
        file.lock_shared()
            .map_err(|e| Error::io("waiting for the run", &e))?;
        Ok(())
    }

    /// Every run directory, newest first; none when the store does not exist yet.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let read = match fs::read_dir(&self.runs) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("reading {}", self.runs.display()), &e)),
        };
        let mut entries = Vec::new();
        let mut buf = Vec::with_capacity(4096);
        for dirent in read {
            let dirent =
                dirent.map_err(|e| Error::io(format!("reading {}", self.runs.display()), &e))?;
            let dir = dirent.file_name().to_string_lossy().into_owned();
            // Hidden entries are moat's own work in progress (a run being created).
            if dir.starts_with('.') {
                continue;
            }
            if !id::is_run_id(&dir) {
                if dirent.path().is_dir() {
                    entries.push(Entry::Corrupt {
                        dir,
                        why: "not a run ID".into(),
                    });
                }
                continue;
            }
            // The reason names the file, so the user knows what to look at.
            let file = || self.dir(&dir).join(METADATA).display().to_string();
            match self.read_with(&dir, &mut buf) {
                Ok(record) if record.id == dir => entries.push(Entry::Run(record)),
                Ok(record) => entries.push(Entry::Corrupt {
                    why: format!("{}: record says it is {}", file(), record.id),
                    dir,
                }),
                Err(e) => entries.push(Entry::Corrupt {
                    why: format!("{}: {}", file(), e.why),
                    dir,
                }),
            }
        }
        // Newest first; the keys are borrowed, so sorting thousands of runs copies nothing.
        entries.sort_unstable_by(|a, b| sort_key(b).cmp(&sort_key(a)));
        Ok(entries)
    }

    /// Readable records only, newest first.
    pub fn runs(&self) -> Result<Vec<Record>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Run(r) => Some(r),
                Entry::Corrupt { .. } => None,
            })
            .collect())
    }

    /// Delete the run's directory and everything in it.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("removing {}", dir.display()), &e))
    }

    /// Delete a directory that is not a readable run (only when the user asks by name).
    pub fn remove_dir_named(&self, dir: &str) -> Result<()> {
        let path = self.runs.join(dir);
        if dir.contains('/') || dir == ".." || dir == "." {
            return Err(Error {
                what: format!("removing {}", path.display()),
                why: "not a directory of the store".into(),
            });
        }
        fs::remove_dir_all(&path).map_err(|e| Error::io(format!("removing {}", path.display()), &e))
    }
}

/// Write `record` as `dir/metadata.json` atomically: temp file, fsync, rename.
/// Open a run's file for appending, created private (0600).
fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))
}

fn write_record(dir: &Path, record: &Record) -> io::Result<()> {
    let path = dir.join(METADATA);
    let tmp = dir.join(format!(".{METADATA}.{}.tmp", std::process::id()));
    let mut data = serde_json::to_vec_pretty(record).expect("a record always serialises");
    data.push(b'\n');
    let result = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&data)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The store's root: `$MOAT_HOME`, else `~/.moat`, as an absolute path. A relative
/// `MOAT_HOME` (`.moat`, a per-project store) is taken from the current directory, as a
/// shell would; a leading `~/` (written literally in an env file, where no shell expands
/// it) is the home directory.
fn home() -> Result<PathBuf> {
    let user_home = || match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home)),
        _ => Err(Error {
            what: "finding moat's home".into(),
            why: "neither MOAT_HOME nor HOME is set".into(),
        }),
    };
    let root = match std::env::var_os("MOAT_HOME") {
        Some(home) if !home.is_empty() => expand_tilde(PathBuf::from(home), user_home)?,
        _ => user_home()?.join(".moat"),
    };
    if root.is_absolute() {
        return Ok(root);
    }
    let cwd = std::env::current_dir().map_err(|e| {
        Error::io(
            format!("resolving MOAT_HOME={} (relative)", root.display()),
            &e,
        )
    })?;
    Ok(cwd.join(root))
}

/// `~` and `~/x` as the home directory; `~user/x` is refused rather than taken as a
/// directory named `~user` under the current one.
fn expand_tilde(path: PathBuf, user_home: impl Fn() -> Result<PathBuf>) -> Result<PathBuf> {
    let mut parts = path.components();
    let Some(Component::Normal(first)) = parts.next() else {
        return Ok(path);
    };
    let first = first.as_encoded_bytes();
    if first == b"~" {
        let rest = parts.as_path();
        let home = user_home().map_err(|e| Error {
            what: format!("expanding MOAT_HOME={}", path.display()),
            why: e.why,
        })?;
        return Ok(if rest.as_os_str().is_empty() {
            home
        } else {
            home.join(rest)
        });
    }
    if first.starts_with(b"~") {
        return Err(Error {
            what: format!("using MOAT_HOME={}", path.display()),
            why: "moat expands only ~/ (the current user's home); write the path out".into(),
        });
    }
    Ok(path)
}

fn sort_key(e: &Entry) -> (&str, &str) {
    match e {
        Entry::Run(r) => (&r.created_at, &r.id),
        Entry::Corrupt { dir, .. } => ("", dir),
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))
}

/// Whether a process with this pid exists (EPERM means it does, owned by someone else).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(path: &str) -> Result<PathBuf> {
        expand_tilde(PathBuf::from(path), || Ok(PathBuf::from("/home/me")))
    }

    #[test]
    fn a_leading_tilde_is_the_home_directory() {
        assert_eq!(expand("~").unwrap(), Path::new("/home/me"));
        assert_eq!(expand("~/").unwrap(), Path::new("/home/me"));
        assert_eq!(expand("~/.moat").unwrap(), Path::new("/home/me/.moat"));
        assert_eq!(expand("~/a/b").unwrap(), Path::new("/home/me/a/b"));
        // Only a leading one.
        assert_eq!(expand("a/~/b").unwrap(), Path::new("a/~/b"));
        assert_eq!(expand("/~/b").unwrap(), Path::new("/~/b"));
        assert_eq!(expand(".moat").unwrap(), Path::new(".moat"));
    }

    #[test]
    fn another_users_tilde_is_refused() {
        let e = expand("~bob/.moat").unwrap_err();
        assert!(e.to_string().contains("~/"), "{e}");
    }

    #[test]
    fn a_tilde_without_home_says_so() {
        let e = expand_tilde(PathBuf::from("~/x"), || {
            Err(Error {
                what: "w".into(),
                why: "HOME is not set".into(),
            })
        })
        .unwrap_err();
        assert!(e.to_string().contains("MOAT_HOME=~/x"), "{e}");
    }
}
