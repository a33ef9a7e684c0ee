//! Packing the workspace as the tar stream an engine's archive API unpacks: the
//! workspace directory itself (`workspace/`, so the upload needs no directory in the
//! container but `/`) and everything below it that `.moatignore` does not exclude, with
//! modes, owners and modification times. Symbolic links go as links, never followed;
//! sockets, FIFOs and devices are left out.
//!
//! A thread of its own writes the stream into a pipe while the upload reads the other
//! end, so no more than a pipe's and a tar block's worth of the workspace is ever in
//! memory. With `track`, it also keeps the [`Manifest`] the copy-back needs.

use std::fs::{File, Metadata};
use std::io::{self, BufWriter, PipeReader, PipeWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tar::{EntryType, Header, HeaderMode};

use super::ignore::Ignore;
use super::manifest::{Content, Manifest, Sent};
use crate::io_reason::io_reason;

/// How much of the stream is gathered before it goes into the pipe.
const BUFFER: usize = 64 * 1024;

/// The packing thread; [`Packing::finish`] tells how it went.
pub struct Packing {
    thread: JoinHandle<Result<Option<Manifest>, Failed>>,
}

/// Why packing did not finish.
#[derive(Debug, PartialEq, Eq)]
pub enum Failed {
    /// The stream was dropped before its end: the upload stopped, and its own error
    /// says why.
    Abandoned,
    /// Reading the workspace failed: what and why, in one line.
    Reading(String),
}

/// Start packing the workspace at `root` (absolute) as entries under `top/`. Returns the
/// stream to upload; the packing ends when it has been read to its end, or fails when it
/// is dropped before.
pub fn start(
    root: &Path,
    top: &str,
    ignore: &Ignore,
    track: bool,
) -> io::Result<(PipeReader, Packing)> {
    let (reader, writer) = io::pipe()?;
    let packer = Packer {
        out: tar::Builder::new(BufWriter::with_capacity(BUFFER, writer)),
        root: root.to_path_buf(),
        top: PathBuf::from(top),
        ignore: ignore.clone(),
        manifest: track.then(Manifest::new),
    };
    let thread = std::thread::Builder::new()
        .name("workspace-pack".into())
        .spawn(move || packer.run())?;
    Ok((reader, Packing { thread }))
}

impl Packing {
    /// Wait for the packing to end: the manifest (with `track`), or what went wrong.
    pub fn finish(self) -> Result<Option<Manifest>, Failed> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(Failed::Reading("the packing thread panicked".into())))
    }
}

struct Packer {
    out: tar::Builder<BufWriter<PipeWriter>>,
    root: PathBuf,
    top: PathBuf,
    ignore: Ignore,
    manifest: Option<Manifest>,
}

/// Why packing failed.
fn failed(what: &str, path: &Path, e: &io::Error) -> Failed {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Failed::Abandoned;
    }
    let hint = if e.kind() == io::ErrorKind::PermissionDenied {
        format!(" (leave it out with {})", super::ignore::FILE)
    } else {
        String::new()
    };
    Failed::Reading(format!("{what} {}: {}{hint}", path.display(), io_reason(e)))
}

impl Packer {
    fn run(mut self) -> Result<Option<Manifest>, Failed> {
        let root = self.root.clone();
        let meta = std::fs::symlink_metadata(&root).map_err(|e| failed("reading", &root, &e))?;
        self.append_dir(Path::new(""), &meta)
            .map_err(|e| failed("packing", &root, &e))?;
        self.walk(&root, Path::new(""))?;
        self.out
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| failed("packing", &root, &e))?;
        Ok(self.manifest)
    }

    /// Pack what is below the directory `dir`, which is `rel` in the workspace. Entries
    /// go in name order, so the same workspace always gives the same stream.
    fn walk(&mut self, dir: &Path, rel: &Path) -> Result<(), Failed> {
        let mut entries = std::fs::read_dir(dir)
            .and_then(|d| d.collect::<io::Result<Vec<_>>>())
            .map_err(|e| failed("reading", dir, &e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = rel.join(entry.file_name());
            let name = rel.to_string_lossy();
            // The entry's own metadata: a symbolic link is not followed.
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Gone since the directory was read: nothing to copy.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failed("reading", &path, &e)),
            };
            let excluded = self.ignore.excludes(&name);
            let kind = meta.file_type();
            if kind.is_dir() {
                if !excluded {
                    self.append_dir(&rel, &meta)
                        .map_err(|e| failed("packing", &path, &e))?;
                }
                if !excluded || self.ignore.may_include_below(&name) {
                    self.walk(&path, &rel)?;
                }
            } else if excluded {
                continue;
            } else if kind.is_file() {
                self.append_file(&path, &rel)?;
            } else if kind.is_symlink() {
                self.append_link(&path, &rel, &meta)?;
            } else {
                log::debug!("not copying {name}: not a file, directory or link");
            }
        }
        Ok(())
    }

    fn header(meta: &Metadata) -> Header {
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        header
    }

    fn append_dir(&mut self, rel: &Path, meta: &Metadata) -> io::Result<()> {
        let mut header = Packer::header(meta);
        header.set_entry_type(EntryType::Directory);
        header.set_size(0);
        self.out
            .append_data(&mut header, self.top.join(rel), io::empty())?;
        if let Some(m) = &mut self.manifest
            && !rel.as_os_str().is_empty()
        {
            let sent = Sent {
                stamp: m.stamp(meta),
                content: m.dir(),
            };
            m.insert(rel.as_os_str().as_bytes(), sent);
        }
        Ok(())
    }

    fn append_file(&mut self, path: &Path, rel: &Path) -> Result<(), Failed> {
        // Never block on something that became a FIFO, nor follow what became a link,
        // since the directory was read; the header describes what is open.
        let file = match File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
            Err(e) => return Err(failed("reading", path, &e)),
        };
        let meta = file.metadata().map_err(|e| failed("reading", path, &e))?;
        if !meta.is_file() {
            return Ok(());
        }
        let mut header = Packer::header(&meta);
        let mut content = self
            .manifest
            .as_ref()
            .map(|m| m.file(std::os::unix::fs::PermissionsExt::mode(&meta.permissions())));
        let mut body = Exact {
            file,
            left: meta.len(),
            content: content.as_mut(),
            error: None,
        };
        let appended = self
            .out
            .append_data(&mut header, self.top.join(rel), &mut body);
        if let Some(e) = body.error.take() {
            return Err(failed("reading", path, &e));
        }
        appended.map_err(|e| failed("packing", path, &e))?;
        if let (Some(m), Some(content)) = (&mut self.manifest, content) {
            let sent = Sent {
                stamp: m.stamp(&meta),
                content: content.finish(),
            };
            m.insert(rel.as_os_str().as_bytes(), sent);
        }
        Ok(())
    }

    fn append_link(&mut self, path: &Path, rel: &Path, meta: &Metadata) -> Result<(), Failed> {
        let target = match std::fs::read_link(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(failed("reading", path, &e)),
        };
        let mut header = Packer::header(meta);
        header.set_entry_type(EntryType::Symlink);
        header.set_size(0);
        self.out
            .append_link(&mut header, self.top.join(rel), &target)
            .map_err(|e| failed("packing", path, &e))?;
        if let Some(m) = &mut self.manifest {
            let sent = Sent {
                stamp: m.stamp(meta),
                content: m.link(target.as_os_str().as_bytes()),
            };
            m.insert(rel.as_os_str().as_bytes(), sent);
        }
        Ok(())
    }
}

/// A file's bytes, exactly as many as its header announced: a file that shrank meanwhile
/// is padded with zeros, one that grew is cut, so the stream stays a valid archive.
/// What it reads is hashed into `content`; a read error is kept in `error` (the archive
/// writer would only see a short entry).
struct Exact<'a> {
    file: File,
    left: u64,
    content: Option<&'a mut Content>,
    error: Option<io::Error>,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.file.read(&mut buf[..want]) {
            Ok(0) => {
                buf[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                return Err(copy);
            }
        };
        if let Some(content) = self.content.as_deref_mut() {
            content.update(&buf[..n]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(stream: impl Read) -> Vec<(String, EntryType)> {
        let mut archive = tar::Archive::new(stream);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn packs_what_is_not_ignored_with_links_as_links() {
        let root = std::env::temp_dir().join(format!("moat-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        std::fs::write(root.join("src/deep/a.rs"), "fn a() {}\n").unwrap();
        std::fs::write(root.join("target/debug/moat"), "binary").unwrap();
        std::fs::write(root.join("secret.env"), "KEY=1").unwrap();
        std::fs::write(root.join(".moatignore"), "target\n*.env\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        std::fs::set_permissions(
            root.join("src/deep/a.rs"),
            std::fs::Permissions::from_mode(0o751),
        )
        .unwrap();
        let ignore = Ignore::load(&root).unwrap();
        let (reader, packing) = start(&root, "workspace", &ignore, true).unwrap();
        let got = names(reader);
        let manifest = packing.finish().unwrap().unwrap();
        let expected = [
            ("workspace/", EntryType::Directory),
            ("workspace/.moatignore", EntryType::Regular),
            ("workspace/link", EntryType::Symlink),
            ("workspace/src", EntryType::Directory),
            ("workspace/src/deep", EntryType::Directory),
            ("workspace/src/deep/a.rs", EntryType::Regular),
        ];
        let expected: Vec<(String, EntryType)> =
            expected.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        assert_eq!(got, expected);
        assert_eq!(manifest.len(), 5);
        let mut hash = manifest.file(0o751);
        hash.update(b"fn a() {}\n");
        assert_eq!(
            manifest.get(b"src/deep/a.rs").map(|s| s.content),
            Some(hash.finish())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_dropped_stream_ends_the_packing_with_an_error() {
        let root = std::env::temp_dir().join(format!("moat-pack-drop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("big"), vec![7u8; 4 << 20]).unwrap();
        let (reader, packing) = start(&root, "workspace", &Ignore::default(), false).unwrap();
        drop(reader);
        assert_eq!(packing.finish().err(), Some(Failed::Abandoned));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
