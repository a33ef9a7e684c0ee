//! What a copy uploaded, kept so that the copy-back can tell who changed what: for each
//! path, a stamp of the host file's metadata when it was packed and a hash of what was
//! sent (its kind and mode and bytes, or its link target). Hashes, not copies: a few dozen
//! bytes a file, so a workspace of a hundred thousand files costs about 3 MB.
//!
//! The hashes are keyed at random for each run, so nothing in the container can aim at a
//! collision; and a collision could only make the copy-back write less (a changed file
//! taken for unchanged stays as the host has it), never overwrite anything.

use std::collections::HashMap;
use std::fs::Metadata;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::os::unix::fs::MetadataExt;

/// What was sent for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// [`Manifest::stamp`] of the host's file as it was packed.
    pub stamp: u64,
    /// [`Manifest::file`], [`Manifest::link`] or [`Manifest::dir`] of what was sent.
    pub content: u64,
}

pub struct Manifest {
    keys: RandomState,
    sent: HashMap<u64, Sent>,
}

/// The mode bits a copy carries: permissions, setuid, setgid, sticky.
pub fn mode_bits(mode: u32) -> u32 {
    mode & 0o7777
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest::new()
    }
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest {
            keys: RandomState::new(),
            sent: HashMap::new(),
        }
    }

    /// A short stand-in for `path`, for sets of paths.
    pub fn key(&self, path: &[u8]) -> u64 {
        self.keys.hash_one(path)
    }

    /// Record what was sent for `path` (relative to the workspace).
    pub fn insert(&mut self, path: &[u8], sent: Sent) {
        let key = self.key(path);
        self.sent.insert(key, sent);
    }

    /// What was sent for `path`, if it was.
    pub fn get(&self, path: &[u8]) -> Option<Sent> {
        self.sent.get(&self.key(path)).copied()
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// A host file's metadata, reduced to what changes whenever anyone changes the file:
    /// which file it is, its size, mode and owner, and its change and modification times
    /// (the change time moves on every write and cannot be set back).
    pub fn stamp(&self, meta: &Metadata) -> u64 {
        let mut h = self.keys.build_hasher();
        for value in [
            meta.dev(),
            meta.ino(),
            u64::from(meta.mode()),
            u64::from(meta.uid()),
            u64::from(meta.gid()),
            meta.size(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            h.write_u64(value);
        }
        h.finish()
    }

    /// A hash of a regular file with these mode bits, to be fed its bytes.
    pub fn file(&self, mode: u32) -> Content {
        let mut h = self.keys.build_hasher();
        h.write_u8(b'f');
        h.write_u32(mode_bits(mode));
        Content(h)
    }

    /// The hash of a symbolic link to `target`.
    pub fn link(&self, target: &[u8]) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u8(b'l');
        h.write(target);
        h.finish()
    }

    /// The hash of a directory (its contents are entries of their own).
    pub fn dir(&self) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u8(b'd');
        h.finish()
    }
}

/// A file's hash being computed as its bytes go by. The same bytes give the same hash
/// however they are cut into pieces.
pub struct Content(DefaultHasher);

impl Content {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_does_not_depend_on_how_the_bytes_were_cut() {
        let m = Manifest::new();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = m.file(0o644);
        whole.update(&data);
        let mut pieces = m.file(0o644);
        for chunk in data.chunks(333) {
            pieces.update(chunk);
        }
        assert_eq!(whole.finish(), pieces.finish());
        let mut other_mode = m.file(0o755);
        other_mode.update(&data);
        assert_ne!(whole.finish(), other_mode.finish());
        assert_ne!(m.link(b"a"), m.link(b"b"));
    }

    #[test]
    fn paths_are_found_again() {
        let mut m = Manifest::new();
        let sent = Sent {
            stamp: 1,
            content: 2,
        };
        m.insert(b"a/b", sent);
        assert_eq!(m.get(b"a/b"), Some(sent));
        assert_eq!(m.get(b"a"), None);
        assert_eq!(m.len(), 1);
    }
}
