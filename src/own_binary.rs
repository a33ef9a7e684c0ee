//! moat's own binary as something an engine runs: a strict run's proxy is moat alone in a
//! container, and a TTY run on Docker starts with moat's step that sizes the TTY. Either
//! works only if the binary can run there without this machine: a static Linux executable
//! for the engine's architecture. This reads what the ELF header says about that, and the
//! build ID that names the binary.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::io_reason::io_reason;

/// How much of the binary says what it is: the ELF header, the program headers and the
/// build-ID note all sit at its start.
pub const HEAD: u64 = 64 * 1024;

/// The binary's path and its first [`HEAD`] bytes.
pub fn head() -> Result<(PathBuf, Vec<u8>), String> {
    let exe = path()?;
    let mut head = Vec::new();
    fs::File::open(&exe)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .map_err(|e| unreadable(&exe, &e))?;
    Ok((exe, head))
}

/// Where the running moat's binary is.
pub fn path() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find moat's own binary: {e}"))
}

/// The one-line reason the binary at `exe` could not be read.
pub fn unreadable(exe: &Path, e: &std::io::Error) -> String {
    format!(
        "cannot read moat's own binary {}: {}",
        exe.display(),
        io_reason(e)
    )
}

/// Whether `binary` (its whole content or its [`HEAD`]) can run alone in a container on
/// `platform` (`linux/amd64`); if not, why, as the end of a sentence.
pub fn runs_alone_on(binary: &[u8], platform: &str) -> Result<(), String> {
    let Some(elf) = Elf::read(binary) else {
        return Err("this moat is not a Linux executable".into());
    };
    let arch = match elf.machine {
        62 => "amd64",
        183 => "arm64",
        _ => "an architecture moat does not know",
    };
    let (os, engine_arch) = platform.split_once('/').unwrap_or((platform, ""));
    if os != "linux" || arch != engine_arch {
        return Err(format!("this moat is built for linux/{arch}"));
    }
    if elf.dynamic {
        return Err(
            "this moat is dynamically linked, so it cannot run alone in a container \
                    (build a static one: scripts/build-static)"
                .into(),
        );
    }
    Ok(())
}

/// This machine's platform as an engine names one (`linux/amd64`): an engine on a local
/// socket runs here.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// What an ELF executable's header says: its machine, whether it needs a dynamic loader
/// (a `PT_INTERP` program header), and its build ID (a GNU note), when these are within
/// the bytes given.
pub struct Elf {
    pub machine: u16,
    pub dynamic: bool,
    pub build_id: Option<Vec<u8>>,
}

impl Elf {
    /// Read a 64-bit little-endian ELF header; `None` for anything else.
    pub fn read(b: &[u8]) -> Option<Elf> {
        const PT_INTERP: u32 = 3;
        const PT_NOTE: u32 = 4;
        const NT_GNU_BUILD_ID: u32 = 3;
        if b.get(..6)? != b"\x7fELF\x02\x01" {
            return None;
        }
        let u16_at = |at: usize| Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| {
            usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
        };
        let machine = u16_at(18)?;
        let phoff = u64_at(32)?;
        let (size, count) = (usize::from(u16_at(54)?), usize::from(u16_at(56)?));
        let mut elf = Elf {
            machine,
            dynamic: false,
            build_id: None,
        };
        for i in 0..count {
            let ph = phoff.checked_add(i.checked_mul(size)?)?;
            match u32_at(ph)? {
                PT_INTERP => elf.dynamic = true,
                PT_NOTE => {
                    let (mut at, len) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
                    let end = at.checked_add(len)?;
                    // Notes: name size, descriptor size, type, then both, 4-aligned.
                    while at + 12 <= end {
                        let (name, desc) = (u32_at(at)? as usize, u32_at(at + 4)? as usize);
                        let kind = u32_at(at + 8)?;
                        let desc_at = at + 12 + name.next_multiple_of(4);
                        if kind == NT_GNU_BUILD_ID && b.get(at + 12..at + 12 + name)? == b"GNU\0" {
                            elf.build_id = b.get(desc_at..desc_at + desc).map(<[u8]>::to_vec);
                        }
                        at = desc_at + desc.next_multiple_of(4);
                    }
                }
                _ => {}
            }
        }
        Some(elf)
    }
}

#[cfg(test)]
mod tests {
    use super::{Elf, HEAD, runs_alone_on};

    #[test]
    fn only_a_static_linux_binary_for_the_engines_arch_runs_alone() {
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let (arch, other) = if cfg!(target_arch = "x86_64") {
            ("amd64", "arm64")
        } else {
            ("arm64", "amd64")
        };
        let err = runs_alone_on(&own, &format!("linux/{other}")).unwrap_err();
        assert!(err.contains(&format!("built for linux/{arch}")), "{err}");
        assert!(runs_alone_on(&own, &format!("windows/{arch}")).is_err());
        assert!(
            runs_alone_on(b"#!/bin/sh\n", "linux/amd64")
                .unwrap_err()
                .contains("not a Linux executable")
        );
        let static_build = cfg!(target_feature = "crt-static");
        assert_eq!(
            runs_alone_on(&own, &format!("linux/{arch}")).is_ok(),
            static_build
        );
        // The head alone says as much as the whole binary.
        let head = &own[..own.len().min(HEAD as usize)];
        assert_eq!(
            runs_alone_on(head, &format!("linux/{arch}")).is_ok(),
            static_build
        );
    }

    #[test]
    fn the_build_id_is_read_from_the_binarys_start() {
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let head = &own[..own.len().min(HEAD as usize)];
        let id = Elf::read(head).and_then(|e| e.build_id);
        // rustc's linker writes a GNU build ID (20 bytes of SHA-1) near the start.
        assert_eq!(id.map(|i| i.len()), Some(20));
    }
}
