//! Writing into the host's workspace, safely: only below its root, never through a
//! symbolic link (every directory on the way must be a real one, checked without
//! following links), and never half a file (a new version is written beside the old one
//! and renamed over it). Nothing here removes anything but its own temporary files.

use std::cell::Cell;
use std::fs::{File, Metadata, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a path's directory cannot be written into.
#[derive(Debug, PartialEq, Eq)]
pub enum Blocked {
    /// This directory on the way is something else on the host (a file, a link).
    NotADirectory(PathBuf),
    /// This directory on the way was there when the workspace was copied and has been
    /// removed on the host since.
    Removed(PathBuf),
}

pub struct Host {
    root: PathBuf,
    /// Numbers the temporary files.
    made: Cell<u64>,
}

/// The permissions copied back: setuid, setgid and sticky bits are dropped, so that
/// nothing from the container becomes a privileged program on the host.
fn permissions(mode: u32) -> Permissions {
    Permissions::from_mode(mode & 0o777)
}

impl Host {
    pub fn new(root: &Path) -> Host {
        Host {
            root: root.to_path_buf(),
            made: Cell::new(0),
        }
    }

    pub fn path(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// What is at `rel` on the host, without following a link; `None` when nothing.
    pub fn stat(&self, rel: &Path) -> io::Result<Option<Metadata>> {
        match std::fs::symlink_metadata(self.path(rel)) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Make sure each directory above `rel` is a real directory on the host, creating the
    /// missing ones that `was_sent` says were not there when the workspace was copied.
    pub fn parents(
        &self,
        rel: &Path,
        was_sent: impl Fn(&Path) -> bool,
    ) -> io::Result<Result<(), Blocked>> {
        let Some(parent) = rel.parent() else {
            return Ok(Ok(()));
        };
        let mut on_the_way = PathBuf::new();
        for part in parent.components() {
            on_the_way.push(part);
            match self.stat(&on_the_way)? {
                Some(m) if m.is_dir() => {}
                Some(_) => return Ok(Err(Blocked::NotADirectory(on_the_way))),
                None if was_sent(&on_the_way) => return Ok(Err(Blocked::Removed(on_the_way))),
                None => self.make_dir(&on_the_way, 0o755)?,
            }
        }
        Ok(Ok(()))
    }

    /// Create the directory `rel` (its parent exists). Its owner can always write into
    /// it, so what the run put below it can follow.
    pub fn make_dir(&self, rel: &Path, mode: u32) -> io::Result<()> {
        match std::fs::DirBuilder::new()
            .mode((mode & 0o777) | 0o700)
            .create(self.path(rel))
        {
            // Made meanwhile (by the host's user): a directory is all that is needed.
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && self.stat(rel)?.is_some_and(|m| m.is_dir()) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// A temporary name beside `dest`, for a new version to be renamed over it.
    fn temporary(&self, dest: &Path) -> PathBuf {
        let n = self.made.get();
        self.made.set(n + 1);
        let name = format!(".moat-copy-back-{}-{n}", std::process::id());
        dest.with_file_name(name)
    }

    /// Write the file `rel`: first the first `keep` bytes of the host's current version
    /// (when given), then `body`; with `mode` and modification time `mtime`.
    pub fn write_file(
        &self,
        rel: &Path,
        mode: u32,
        mtime: SystemTime,
        keep: Option<u64>,
        body: &mut dyn Read,
    ) -> io::Result<()> {
        let dest = self.path(rel);
        let temp = self.temporary(&dest);
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        let written = (|| {
            if let Some(keep) = keep {
                let old = File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&dest)?;
                io::copy(&mut old.take(keep), &mut file)?;
            }
            io::copy(body, &mut file)?;
            file.set_permissions(permissions(mode))?;
            file.set_modified(mtime)?;
            // rename(2) replaces a link at `dest` itself; it never writes through one.
            std::fs::rename(&temp, &dest)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// Make `rel` a symbolic link to `target` (replacing a file or link there).
    pub fn write_link(&self, rel: &Path, target: &Path) -> io::Result<()> {
        let dest = self.path(rel);
        let temp = self.temporary(&dest);
        std::os::unix::fs::symlink(target, &temp)?;
        let renamed = std::fs::rename(&temp, &dest);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        renamed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("moat-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn parents_are_made_but_never_through_a_link() {
        let dir = root("parents");
        let outside = root("parents-outside");
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        let host = Host::new(&dir);
        assert_eq!(
            host.parents(Path::new("link/x"), |_| false).unwrap(),
            Err(Blocked::NotADirectory("link".into()))
        );
        assert_eq!(
            host.parents(Path::new("gone/x"), |p| p == Path::new("gone"))
                .unwrap(),
            Err(Blocked::Removed("gone".into()))
        );
        assert_eq!(host.parents(Path::new("a/b/c"), |_| false).unwrap(), Ok(()));
        assert!(dir.join("a/b").is_dir());
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_file_replaces_a_link_without_writing_through_it() {
        let dir = root("replace");
        let outside = root("replace-outside");
        std::fs::write(outside.join("target"), "outside").unwrap();
        std::os::unix::fs::symlink(outside.join("target"), dir.join("f")).unwrap();
        let host = Host::new(&dir);
        let mtime = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        host.write_file(Path::new("f"), 0o4755, mtime, None, &mut &b"new"[..])
            .unwrap();
        assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"outside");
        let meta = std::fs::symlink_metadata(dir.join("f")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "no setuid bit");
        assert_eq!(meta.modified().unwrap(), mtime);
        // Keep a prefix of the current version.
        host.write_file(Path::new("f"), 0o644, mtime, Some(2), &mut &b"X"[..])
            .unwrap();
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"neX");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
