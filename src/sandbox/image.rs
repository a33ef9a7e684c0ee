//! The proxy's image, made from moat's own binary through the engine's build API (no
//! registry, no base image: `FROM scratch` and the binary), so every engine moat reaches
//! can run it. It is tagged by the binary's content: built once per moat build and
//! engine, found by its tag afterwards. Building it removes the images of earlier builds
//! that no container uses, so upgrades do not pile them up.

use std::fs;
use std::io::Read;

use crate::digest::sha256_hex;
use crate::runtime::Runtime;

/// The image's recipe. The proxy runs as nobody: it needs no privilege to listen on a
/// high port and to connect out.
const DOCKERFILE: &str = "FROM scratch\nCOPY moat /moat\nUSER 65534:65534\n\
                          ENTRYPOINT [\"/moat\", \"__proxy\"]\n";

/// The label every proxy image carries.
const LABEL: (&str, &str) = ("moat.proxy", "true");

/// How much of moat's binary names it: the ELF header, program headers and the build-ID
/// note all sit at its start.
const HEAD: u64 = 64 * 1024;

/// The tag of the proxy's image for this moat binary, built when the engine lacks it.
pub fn ensure(rt: &dyn Runtime) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find moat's own binary: {e}"))?;
    let unreadable = |e: std::io::Error| {
        format!(
            "cannot read moat's own binary {}: {}",
            exe.display(),
            crate::io_reason::io_reason(&e)
        )
    };
    let mut head = Vec::new();
    fs::File::open(&exe)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .map_err(unreadable)?;
    // The linker's build ID names the binary without hashing all of it (a debug build is
    // 50 MB, and every strict run asks); without one, its whole content does.
    let mut binary = None;
    let name = match Elf::read(&head).and_then(|elf| elf.build_id) {
        Some(id) => sha256_hex(&[DOCKERFILE.as_bytes(), b"build-id", &id], 8),
        None => {
            let whole = binary.insert(fs::read(&exe).map_err(unreadable)?);
            sha256_hex(&[DOCKERFILE.as_bytes(), whole], 8)
        }
    };
    let tag = format!("moat-proxy:{name}");
    if rt.image_exists(&tag).map_err(|e| e.to_string())? {
        return Ok(tag);
    }
    let binary = match binary {
        Some(b) => b,
        None => fs::read(&exe).map_err(unreadable)?,
    };
    let platform = rt.platform().map_err(|e| e.to_string())?;
    runs_on(&binary, &platform)?;
    let labels = [
        ("moat.managed".to_string(), "true".to_string()),
        (LABEL.0.to_string(), LABEL.1.to_string()),
    ];
    rt.build(&tag, &labels, context(&binary), &mut |line| {
        log::debug!("proxy image: {}", line.trim_end());
    })
    .map_err(|e| format!("building the proxy's image {tag}: {e}"))?;
    remove_older(rt, &tag);
    Ok(tag)
}

/// Remove the proxy images of other moat builds; one a container uses stays.
fn remove_older(rt: &dyn Runtime, current: &str) {
    let older = match rt.images_labelled(&format!("{}={}", LABEL.0, LABEL.1)) {
        Ok(tags) => tags,
        Err(e) => return log::debug!("listing older proxy images: {e}"),
    };
    // Podman names the image `docker.io/library/moat-proxy:...` or `localhost/...`.
    for tag in older.iter().filter(|t| !t.ends_with(current)) {
        if let Err(e) = rt.remove_image(tag) {
            log::debug!("keeping proxy image {tag}: {e}");
        }
    }
}

/// The build context: the recipe and the binary.
fn context(binary: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        ("Dockerfile", DOCKERFILE.as_bytes(), 0o644),
        ("moat", binary, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
            .expect("appending to a tar in memory cannot fail");
    }
    tar.into_inner()
        .expect("finishing a tar in memory cannot fail")
}

/// Whether `binary` can run alone in a container on `platform` (`linux/amd64`): a static
/// Linux executable for its architecture. If not, strict is refused rather than run
/// without its proxy.
pub fn runs_on(binary: &[u8], platform: &str) -> Result<(), String> {
    let cannot = |why: String| {
        Err(format!(
            "--network-policy strict runs moat's own binary as the proxy on the engine \
             ({platform}), and {why}"
        ))
    };
    let Some(elf) = Elf::read(binary) else {
        return cannot("this moat is not a Linux executable".into());
    };
    let arch = match elf.machine {
        62 => "amd64",
        183 => "arm64",
        _ => "an architecture moat does not know",
    };
    let (os, engine_arch) = platform.split_once('/').unwrap_or((platform, ""));
    if os != "linux" || arch != engine_arch {
        return cannot(format!("this moat is built for linux/{arch}"));
    }
    if elf.dynamic {
        return cannot(
            "this moat is dynamically linked, so it cannot run alone in the proxy's image \
             (build a static one: scripts/build-static)"
                .into(),
        );
    }
    Ok(())
}

/// What an ELF executable's header says: its machine, whether it needs a dynamic loader
/// (a `PT_INTERP` program header), and its build ID (a GNU note), when these are within
/// the bytes given.
struct Elf {
    machine: u16,
    dynamic: bool,
    build_id: Option<Vec<u8>>,
}

impl Elf {
    /// Read a 64-bit little-endian ELF header; `None` for anything else.
    fn read(b: &[u8]) -> Option<Elf> {
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
    use super::runs_on;

    #[test]
    fn only_a_static_linux_binary_for_the_engines_arch_runs_as_the_proxy() {
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let arch = if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        };
        let err = runs_on(
            &own,
            &format!("linux/{}", if arch == "amd64" { "arm64" } else { "amd64" }),
        )
        .unwrap_err();
        assert!(err.contains(&format!("built for linux/{arch}")), "{err}");
        assert!(runs_on(&own, &format!("windows/{arch}")).is_err());
        assert!(
            runs_on(b"#!/bin/sh\n", "linux/amd64")
                .unwrap_err()
                .contains("not a Linux executable")
        );
        let static_build = cfg!(target_feature = "crt-static");
        assert_eq!(
            runs_on(&own, &format!("linux/{arch}")).is_ok(),
            static_build
        );
    }

    #[test]
    fn the_build_id_is_read_from_the_binarys_start() {
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let head = &own[..own.len().min(super::HEAD as usize)];
        let id = super::Elf::read(head).and_then(|e| e.build_id);
        // rustc's linker writes a GNU build ID (20 bytes of SHA-1) near the start.
        assert_eq!(id.map(|i| i.len()), Some(20));
    }
}
