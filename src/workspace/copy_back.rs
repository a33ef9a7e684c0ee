//! The copy-back: reading the container's workspace as the engine's archive API gives it
//! and writing to the host what the run added or changed, as the archive streams by.
//!
//! For each path, what was sent (the [`Manifest`]) and what the host has now decide:
//! - nothing was sent and the host has nothing there: the run added it, it is written;
//! - the host's version is still the one sent: the container's is written if it differs;
//! - the host changed the path since (or made it): if the container's version is the one
//!   sent, the host's change stands; if it equals the host's, there is nothing to do;
//!   otherwise both changed it, a conflict, and the host's version is kept.
//!
//! Nothing on the host is deleted: a path the container removed stays, and a change that
//! would need a deletion (a directory become a file) is skipped and said. Paths
//! `.moatignore` excludes are not copied back. An archive path that is absolute, climbs
//! with `..` or lies outside the workspace is refused, links are never written through,
//! and a link the run made that points outside the workspace is not made on the host.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use super::host::{Blocked, Host};
use super::ignore::Ignore;
use super::manifest::{Content, Manifest, Sent, mode_bits};
use crate::io_reason::io_reason;

/// The size of the pieces compared and hashed.
const CHUNK: usize = 64 * 1024;

/// What a copy-back did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Files and links written to the host.
    pub written: u64,
    /// Paths changed both on the host and in the container: the host's version was kept.
    pub conflicts: Vec<String>,
    /// Paths not copied back for another reason, each followed by it.
    pub skipped: Vec<String>,
    /// Why the copy-back stopped before the end, if it did.
    pub error: Option<String>,
}

/// What became of one path.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Written,
    /// The host already has the container's version.
    Same,
    /// The container left it as it was sent; the host's change (or removal) stands.
    Kept,
    Conflict,
    Skipped(String),
}

impl Report {
    fn add(&mut self, name: String, fate: Fate) {
        match fate {
            Fate::Written => self.written += 1,
            Fate::Same | Fate::Kept => {}
            Fate::Conflict => self.conflicts.push(name),
            Fate::Skipped(why) => self.skipped.push(format!("{name}: {why}")),
        }
    }
}

/// A copy-back waiting for the run's end: the workspace and what was sent.
pub struct CopyBack {
    root: PathBuf,
    top: String,
    ignore: Ignore,
    manifest: Manifest,
}

/// What the walk through the archive remembers.
struct Walk {
    host: Host,
    /// Files whose host version now equals the container's, by [`Manifest::key`]: what
    /// a hard link may be made from.
    in_sync: HashSet<u64>,
    /// Directories that could not be made on the host: what is below them is skipped
    /// without a word each.
    refused: Vec<PathBuf>,
    buf: Vec<u8>,
    other: Vec<u8>,
}

impl CopyBack {
    /// The copy-back of the workspace at `root`, whose archive entries are under `top/`.
    pub fn new(root: &Path, top: &str, ignore: Ignore, manifest: Manifest) -> CopyBack {
        CopyBack {
            root: root.to_path_buf(),
            top: top.to_string(),
            ignore,
            manifest,
        }
    }

    /// Read `archive` (the container's workspace) and write back what the run added or
    /// changed. `stop` is asked as the archive streams in; a reason from it ends the
    /// copy-back there (every file written so far is whole).
    pub fn apply(&self, archive: impl Read, stop: &mut dyn FnMut() -> Option<String>) -> Report {
        let mut report = Report::default();
        let mut walk = Walk {
            host: Host::new(&self.root),
            in_sync: HashSet::new(),
            refused: Vec::new(),
            buf: vec![0; CHUNK],
            other: vec![0; CHUNK],
        };
        let mut archive = tar::Archive::new(Stoppable {
            inner: archive,
            stop,
        });
        let entries = match archive.entries() {
            Ok(entries) => entries,
            Err(e) => {
                report.error = Some(format!("reading the archive: {}", io_reason(&e)));
                return report;
            }
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    report.error = Some(format!("reading the archive: {}", io_reason(&e)));
                    break;
                }
            };
            let raw = entry.path_bytes().into_owned();
            let name = relative(&raw, &self.top).map_or_else(
                || String::from_utf8_lossy(&raw).into_owned(),
                |rel| rel.to_string_lossy().into_owned(),
            );
            match self.entry(&mut walk, &mut entry) {
                Ok(Some((name, fate))) => report.add(name, fate),
                Ok(None) => {}
                Err(e) => {
                    report.error = Some(format!("copying {name} back: {}", io_reason(&e)));
                    break;
                }
            }
        }
        report
    }

    /// One archive entry: its path in the workspace and what became of it, or nothing
    /// to report.
    fn entry(
        &self,
        walk: &mut Walk,
        entry: &mut tar::Entry<'_, impl Read>,
    ) -> io::Result<Option<(String, Fate)>> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(None);
        }
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = relative(&raw, &self.top) else {
            let name = String::from_utf8_lossy(&raw).into_owned();
            return Ok(Some((
                name,
                Fate::Skipped("not a path in the workspace".into()),
            )));
        };
        if rel.as_os_str().is_empty() {
            return Ok(None);
        }
        let name = rel.to_string_lossy().into_owned();
        if self.ignore.excludes(&name) || walk.refused.iter().any(|r| rel.starts_with(r)) {
            return Ok(None);
        }
        let header = entry.header();
        let mode = header.mode()?;
        // A time past what the clock can hold (a forged header) is taken as now.
        let mtime = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(header.mtime()?))
            .unwrap_or_else(SystemTime::now);
        let fate = match kind {
            EntryType::Directory => match self.dir(walk, &rel, mode)? {
                Some(fate) => fate,
                None => return Ok(None),
            },
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.link(walk, &rel, &target)?
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hard_link(walk, &rel, &target, mode, mtime)?
            }
            k if k.is_file() || k.is_gnu_sparse() || k.is_contiguous() => {
                let size = entry.size();
                self.file(walk, &rel, mode, mtime, size, entry)?
            }
            _ => Fate::Skipped("not a file, directory or link".into()),
        };
        Ok(Some((name, fate)))
    }

    /// Where the path stands on the host, given what was sent for it.
    fn plan(&self, walk: &Walk, rel: &Path) -> io::Result<Plan> {
        let sent = self.manifest.get(rel.as_os_str().as_bytes());
        let now = walk.host.stat(rel)?;
        Ok(match (sent, now) {
            (None, None) => Plan::New,
            (Some(s), Some(m)) if self.manifest.stamp(&m) == s.stamp => Plan::Untouched(m),
            (sent, now) => Plan::Changed(sent, now),
        })
    }

    /// Make sure the path's directories exist on the host: what to report if they
    /// cannot.
    fn parents(&self, walk: &Walk, rel: &Path) -> io::Result<Option<Fate>> {
        let sent = |p: &Path| self.manifest.get(p.as_os_str().as_bytes()).is_some();
        Ok(match walk.host.parents(rel, sent)? {
            Ok(()) => None,
            Err(Blocked::NotADirectory(p)) => Some(Fate::Skipped(format!(
                "{} is not a directory on the host",
                p.display()
            ))),
            // The host removed a directory the run wrote into.
            Err(Blocked::Removed(_)) => Some(Fate::Conflict),
        })
    }

    fn dir(&self, walk: &mut Walk, rel: &Path, mode: u32) -> io::Result<Option<Fate>> {
        match self.plan(walk, rel)? {
            Plan::Untouched(m) | Plan::Changed(_, Some(m)) if m.is_dir() => Ok(None),
            Plan::Untouched(_) | Plan::Changed(_, Some(_)) => {
                walk.refused.push(rel.to_path_buf());
                Ok(Some(Fate::Skipped(
                    "a directory in the container, not one on the host (copy-back never deletes)"
                        .into(),
                )))
            }
            // Removed on the host since the copy: it is not made again.
            Plan::Changed(_, None) => Ok(None),
            Plan::New => {
                if let Some(fate) = self.parents(walk, rel)? {
                    walk.refused.push(rel.to_path_buf());
                    return Ok(Some(fate));
                }
                walk.host.make_dir(rel, mode)?;
                Ok(None)
            }
        }
    }

    fn file(
        &self,
        walk: &mut Walk,
        rel: &Path,
        mode: u32,
        mtime: SystemTime,
        size: u64,
        body: &mut dyn Read,
    ) -> io::Result<Fate> {
        let fate = match self.plan(walk, rel)? {
            Plan::New => match self.parents(walk, rel)? {
                Some(fate) => fate,
                None => {
                    walk.host.write_file(rel, mode, mtime, None, body)?;
                    Fate::Written
                }
            },
            Plan::Untouched(m) if m.is_dir() => Fate::Skipped(
                "a file in the container, a directory on the host (copy-back never deletes)".into(),
            ),
            Plan::Untouched(m) if m.is_file() && m.len() == size && same_mode(&m, mode) => {
                self.replace_if_changed(walk, rel, mode, mtime, body)?
            }
            Plan::Untouched(_) => {
                walk.host.write_file(rel, mode, mtime, None, body)?;
                Fate::Written
            }
            Plan::Changed(sent, now) => {
                let host_file =
                    now.filter(|m| m.is_file() && m.len() == size && same_mode(m, mode));
                let (hash, equal) = self.scan(walk, rel, host_file.is_some(), mode, body)?;
                verdict(sent, hash, equal)
            }
        };
        if matches!(fate, Fate::Written | Fate::Same) {
            walk.in_sync
                .insert(self.manifest.key(rel.as_os_str().as_bytes()));
        }
        Ok(fate)
    }

    /// The host's file is the one that was sent and has the container's size and mode:
    /// compare the two, and write the container's version from the first difference on.
    fn replace_if_changed(
        &self,
        walk: &mut Walk,
        rel: &Path,
        mode: u32,
        mtime: SystemTime,
        body: &mut dyn Read,
    ) -> io::Result<Fate> {
        let mut old = open_file(&walk.host.path(rel))?;
        let mut offset = 0u64;
        loop {
            let n = read_full(body, &mut walk.buf)?;
            if n == 0 {
                return Ok(Fate::Same);
            }
            let same =
                read_full(&mut old, &mut walk.other[..n])? == n && walk.buf[..n] == walk.other[..n];
            if !same {
                let mut rest = (&walk.buf[..n]).chain(body);
                walk.host
                    .write_file(rel, mode, mtime, Some(offset), &mut rest)?;
                return Ok(Fate::Written);
            }
            offset += n as u64;
        }
    }

    /// Read the container's version to its end: its hash, and whether it equals the
    /// host's file (when `compare`, the host has a file of the same size and mode).
    fn scan(
        &self,
        walk: &mut Walk,
        rel: &Path,
        compare: bool,
        mode: u32,
        body: &mut dyn Read,
    ) -> io::Result<(u64, bool)> {
        let mut hash: Content = self.manifest.file(mode);
        let mut old = if compare {
            open_file(&walk.host.path(rel)).ok()
        } else {
            None
        };
        let mut equal = old.is_some();
        loop {
            let n = read_full(body, &mut walk.buf)?;
            if n == 0 {
                return Ok((hash.finish(), equal));
            }
            hash.update(&walk.buf[..n]);
            if let (true, Some(old)) = (equal, old.as_mut()) {
                equal =
                    read_full(old, &mut walk.other[..n])? == n && walk.buf[..n] == walk.other[..n];
            }
        }
    }

    fn link(&self, walk: &mut Walk, rel: &Path, target: &[u8]) -> io::Result<Fate> {
        if !stays_inside(rel, target) {
            return Ok(Fate::Skipped(format!(
                "a link to {}, outside the workspace",
                String::from_utf8_lossy(target)
            )));
        }
        let target_path = Path::new(OsStr::from_bytes(target));
        let is_ours = |m: &Metadata| {
            m.is_symlink()
                && std::fs::read_link(walk.host.path(rel)).is_ok_and(|t| t == target_path)
        };
        Ok(match self.plan(walk, rel)? {
            Plan::Untouched(m) if is_ours(&m) => Fate::Same,
            Plan::Untouched(m) if m.is_dir() => Fate::Skipped(
                "a link in the container, a directory on the host (copy-back never deletes)".into(),
            ),
            Plan::Untouched(_) => {
                walk.host.write_link(rel, target_path)?;
                Fate::Written
            }
            Plan::New => match self.parents(walk, rel)? {
                Some(fate) => fate,
                None => {
                    walk.host.write_link(rel, target_path)?;
                    Fate::Written
                }
            },
            Plan::Changed(sent, now) => {
                let equal = now.as_ref().is_some_and(is_ours);
                verdict(sent, self.manifest.link(target), equal)
            }
        })
    }

    /// A hard link in the container: a copy of its target, when the host has the
    /// container's version of that.
    fn hard_link(
        &self,
        walk: &mut Walk,
        rel: &Path,
        target: &[u8],
        mode: u32,
        mtime: SystemTime,
    ) -> io::Result<Fate> {
        let source = relative(target, &self.top).filter(|t| {
            walk.in_sync
                .contains(&self.manifest.key(t.as_os_str().as_bytes()))
        });
        let Some(source) = source else {
            return Ok(Fate::Skipped(format!(
                "a hard link to {}, which was not copied back",
                String::from_utf8_lossy(target)
            )));
        };
        let mut file = open_file(&walk.host.path(&source))?;
        let size = file.metadata()?.len();
        self.file(walk, rel, mode, mtime, size, &mut file)
    }
}

/// Where a path stands on the host.
enum Plan {
    /// Nothing was sent and the host has nothing there: the run added it.
    New,
    /// The host's version is still the one that was sent.
    Untouched(Metadata),
    /// The host changed, removed or made the path since the copy: what was sent (if
    /// anything) and what the host has now (if anything).
    Changed(Option<Sent>, Option<Metadata>),
}

/// A path the host changed: nothing to do when the container's version equals the
/// host's or is the one that was sent; else both changed it.
fn verdict(sent: Option<Sent>, container: u64, equals_host: bool) -> Fate {
    if equals_host {
        Fate::Same
    } else if sent.is_some_and(|s| s.content == container) {
        Fate::Kept
    } else {
        Fate::Conflict
    }
}

fn same_mode(meta: &Metadata, mode: u32) -> bool {
    mode_bits(meta.mode()) == mode_bits(mode)
}

/// A file of the host's workspace, for reading, never through a link.
fn open_file(path: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Read until `buf` is full or the stream ends; how much was read.
fn read_full(from: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The path of an archive entry relative to the workspace: below `top/`, made of plain
/// names only. `None` for anything else (absolute, with `..`, under another top).
fn relative(raw: &[u8], top: &str) -> Option<PathBuf> {
    if raw.starts_with(b"/") || raw.contains(&0) {
        return None;
    }
    let mut parts = raw
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".");
    if parts.next()? != top.as_bytes() {
        return None;
    }
    let mut rel = PathBuf::new();
    for part in parts {
        if part == b".." {
            return None;
        }
        rel.push(OsStr::from_bytes(part));
    }
    Some(rel)
}

/// Whether a link at `link` (relative to the workspace) to `target` points inside the
/// workspace, judged from the names alone.
fn stays_inside(link: &Path, target: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return false;
    }
    let mut depth = link.components().count().saturating_sub(1);
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if depth == 0 => return false,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    true
}

/// The archive stream, asking `stop` before each read: a reason from it fails the read.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a mut dyn FnMut() -> Option<String>,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = (self.stop)() {
            return Err(io::Error::other(why));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests;
