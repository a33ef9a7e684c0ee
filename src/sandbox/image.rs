//! The proxy's image, made from moat's own binary through the engine's build API (no
//! registry, no base image: `FROM scratch` and the binary), so every engine moat reaches
//! can run it. It is tagged by the binary's content: built once per moat build and
//! engine, found by its tag afterwards. Building it removes the images of earlier builds
//! that no container uses, so upgrades do not pile them up.

use std::fs;

use crate::digest::sha256_hex;
use crate::own_binary::{self, Elf};
use crate::runtime::Runtime;

/// The image's recipe. The proxy runs as nobody: it needs no privilege to listen on a
/// high port and to connect out.
const DOCKERFILE: &str = "FROM scratch\nCOPY moat /moat\nUSER 65534:65534\n\
                          ENTRYPOINT [\"/moat\", \"__proxy\"]\n";

/// The label every proxy image carries.
const LABEL: (&str, &str) = ("moat.proxy", "true");

/// The tag of the proxy's image for this moat binary, built when the engine lacks it.
pub fn ensure(rt: &dyn Runtime) -> Result<String, String> {
    let (exe, head) = own_binary::head()?;
    let unreadable = |e: std::io::Error| own_binary::unreadable(&exe, &e);
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

/// Whether `binary` can run alone in a container on `platform` (`linux/amd64`). If not,
/// strict is refused rather than run without its proxy.
pub fn runs_on(binary: &[u8], platform: &str) -> Result<(), String> {
    own_binary::runs_alone_on(binary, platform).map_err(|why| {
        format!(
            "--network-policy strict runs moat's own binary as the proxy on the engine \
             ({platform}), and {why}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::runs_on;

    #[test]
    fn a_binary_that_cannot_run_alone_refuses_strict_with_the_reason() {
        let err = runs_on(b"#!/bin/sh\n", "linux/amd64").unwrap_err();
        assert!(
            err.starts_with("--network-policy strict runs moat's own binary as the proxy")
                && err.ends_with("this moat is not a Linux executable"),
            "{err}"
        );
    }
}
