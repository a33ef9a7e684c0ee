//! Images moat builds itself: an agent's image from its declaration. A [`Recipe`] says
//! everything that goes into the image; the Dockerfile and the build context are made from
//! it alone, and the tag is a hash of both, so an unchanged recipe finds its image and a
//! changed one (a new pinned version, another base, another CA bundle) builds a new one.
//! The build itself goes through the engine's API ([`build`]).

pub mod build;

use std::fmt::Write as _;

pub use build::{BuildFailed, ensure};

/// Where the agent's home is in the image, and where moat mounts its state at run time.
pub const AGENT_HOME: &str = "/home/agent";

/// The uid of the image's own non-root user (the official Node images' `node` user).
pub const AGENT_UID: u32 = 1000;

/// Where `MOAT_CA_CERTS` lands in the image; `update-ca-certificates` adds it to the
/// system bundle.
pub const CA_FILE: &str = "/usr/local/share/ca-certificates/moat-extra-ca.crt";

/// The system bundle, once `update-ca-certificates` has run (Debian's path).
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Everything that goes into an agent's image.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The agent's name: the image is `moat/NAME:<hash>`.
    pub name: String,
    /// The image it starts from (Debian with Node and npm).
    pub base: String,
    /// The agent CLI's npm package and its exact version.
    pub package: String,
    pub version: String,
    /// Debian packages the agent expects besides its CLI.
    pub tools: Vec<String>,
    /// A PEM bundle to trust, at build time and in the image (`MOAT_CA_CERTS`).
    pub ca_certs: Option<Vec<u8>>,
}

impl Recipe {
    /// The Dockerfile. Every value in it comes from the recipe; the CA bundle is a file of
    /// the context.
    pub fn dockerfile(&self) -> String {
        let mut f = String::new();
        let _ = writeln!(f, "# moat's image for {}: {}", self.name, self.spec());
        let _ = writeln!(f, "FROM {}", self.base);
        let _ = writeln!(f, "USER root");
        if self.ca_certs.is_some() {
            // Before the packages: ca-certificates' own set-up then adds it to the bundle,
            // and npm (Node) trusts it through NODE_EXTRA_CA_CERTS from here on.
            let _ = writeln!(f, "COPY ca.crt {CA_FILE}");
            let _ = writeln!(
                f,
                "ENV NODE_EXTRA_CA_CERTS={CA_FILE} SSL_CERT_FILE={SYSTEM_BUNDLE} \
                 REQUESTS_CA_BUNDLE={SYSTEM_BUNDLE} GIT_SSL_CAINFO={SYSTEM_BUNDLE}"
            );
        }
        let _ = writeln!(
            f,
            "RUN apt-get update \\\n \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} \\\n \
             && update-ca-certificates \\\n \
             && rm -rf /var/lib/apt/lists/*",
            self.tools.join(" ")
        );
        let _ = writeln!(
            f,
            "RUN npm install --global --no-fund --no-audit --no-update-notifier {} \\\n \
             && npm cache clean --force",
            self.spec()
        );
        // A user of its own, unless the base has one at that uid (Node's images do).
        let _ = writeln!(
            f,
            "RUN (getent passwd {AGENT_UID} >/dev/null \
             || useradd --uid {AGENT_UID} --user-group --no-create-home --shell /bin/bash agent) \\\n \
             && mkdir -p {AGENT_HOME} /workspace && chown {AGENT_UID}:{AGENT_UID} {AGENT_HOME} /workspace"
        );
        let _ = writeln!(f, "ENV HOME={AGENT_HOME}");
        let _ = writeln!(f, "USER {AGENT_UID}");
        let _ = writeln!(f, "WORKDIR /workspace");
        f
    }

    /// `PACKAGE@VERSION`, as npm takes it.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.package, self.version)
    }

    /// A hash of everything that goes into the image: the Dockerfile (which names the
    /// base, the package, its version and the tools) and the CA bundle.
    pub fn hash(&self) -> String {
        let ca = self.ca_certs.as_deref().unwrap_or_default();
        crate::digest::sha256_hex(&[self.dockerfile().as_bytes(), b"\0", ca], 6)
    }

    /// The image's tag: `moat/NAME:<hash>`.
    pub fn tag(&self) -> String {
        format!("moat/{}:{}", self.name, self.hash())
    }

    /// The labels the image carries: moat made it, from this recipe.
    pub fn labels(&self) -> Vec<(String, String)> {
        vec![
            ("moat.managed".into(), "true".into()),
            ("moat.recipe".into(), self.hash()),
            ("moat.agent".into(), self.name.clone()),
            ("moat.package".into(), self.spec()),
        ]
    }

    /// The build context: a tar of the Dockerfile and, when there is one, the CA bundle.
    pub fn context(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, data)
                .expect("appending to a tar in memory cannot fail");
        };
        add("Dockerfile", self.dockerfile().as_bytes());
        if let Some(ca) = &self.ca_certs {
            add("ca.crt", ca);
        }
        tar.into_inner()
            .expect("finishing a tar in memory cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            name: "claude".into(),
            base: "node:22-bookworm-slim".into(),
            package: "@anthropic-ai/claude-code".into(),
            version: "1.2.3".into(),
            tools: vec!["git".into(), "ca-certificates".into()],
            ca_certs: None,
        }
    }

    #[test]
    fn the_tag_follows_everything_that_goes_into_the_image() {
        let r = recipe();
        assert_eq!(r.tag(), recipe().tag(), "the same recipe, the same tag");
        assert!(r.tag().starts_with("moat/claude:"));
        assert_eq!(r.hash().len(), 12);
        let changed = [
            Recipe {
                version: "1.2.4".into(),
                ..recipe()
            },
            Recipe {
                base: "other:1".into(),
                ..recipe()
            },
            Recipe {
                tools: vec!["git".into()],
                ..recipe()
            },
            Recipe {
                ca_certs: Some(b"pem".to_vec()),
                ..recipe()
            },
        ];
        for c in changed {
            assert_ne!(c.tag(), r.tag(), "{c:?}");
        }
    }

    #[test]
    fn the_dockerfile_installs_the_pinned_package_and_trusts_the_ca() {
        let plain = recipe().dockerfile();
        assert!(plain.contains("FROM node:22-bookworm-slim\n"), "{plain}");
        assert!(plain.contains("@anthropic-ai/claude-code@1.2.3"), "{plain}");
        assert!(plain.contains("install -y --no-install-recommends git ca-certificates"));
        assert!(!plain.contains("ca.crt"), "{plain}");
        assert!(
            plain.ends_with("USER 1000\nWORKDIR /workspace\n"),
            "{plain}"
        );
        let with_ca = Recipe {
            ca_certs: Some(b"pem".to_vec()),
            ..recipe()
        };
        let text = with_ca.dockerfile();
        let copy = text.find("COPY ca.crt").expect("the CA is copied in");
        assert!(copy < text.find("npm install").unwrap(), "{text}");
        assert!(text.contains("NODE_EXTRA_CA_CERTS="), "{text}");

        let mut names: Vec<String> = tar::Archive::new(&with_ca.context()[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "ca.crt"]);
    }
}
