//! The keys a `moat.yaml` may hold, mapping by mapping, and the ones it may not.
//!
//! Go moat (majorcontext/moat) reads a `moat.yaml` too. Its keys that mean what a moat
//! key means are read (`container.memory`, `network.rules`, a mount written as a
//! `source`/`target` mapping, `ports` as a map of names to ports...); its keys for
//! things moat does not do are refused by name, from its `moat.yaml` reference
//! (docs/content/reference/02-moat-yaml.md and internal/config/config.go there).

/// The keys of one mapping.
pub struct Keys {
    /// Where the mapping sits, for messages: `""` at the top, else `resources` and so on.
    pub path: &'static str,
    /// The keys read: moat's own, and Go moat's that mean the same.
    pub known: &'static [&'static str],
    /// Go moat's keys for what moat does not do.
    pub go_only: &'static [&'static str],
}

pub const TOP: Keys = Keys {
    path: "",
    known: &[
        "name",
        "image",
        "command",
        "interactive",
        "env",
        "env_file",
        "mounts",
        "workdir",
        "user",
        "ports",
        "network",
        "resources",
        "timeout",
        "stop_timeout",
        "runtime",
        "agent",
        "keep",
        // Go moat's home for resource limits.
        "container",
    ],
    go_only: &[
        "version",
        "dependencies",
        "base_image",
        "grants",
        "secrets",
        "workspace",
        "volumes",
        "services",
        "hooks",
        "sandbox",
        "clipboard",
        "claude",
        "codex",
        "copilot",
        "gemini",
        "pi",
        "language_servers",
        "mcp",
        "snapshots",
        "tracing",
    ],
};

pub const NETWORK: Keys = Keys {
    path: "network",
    // `rules` is Go moat's allowlist.
    known: &["policy", "allow", "rules"],
    go_only: &["keep_policy", "host"],
};

pub const RESOURCES: Keys = Keys {
    path: "resources",
    known: &["memory", "cpus", "pids"],
    go_only: &[],
};

/// Go moat's `container:` mapping.
pub const CONTAINER: Keys = Keys {
    path: "container",
    known: &["memory", "cpus"],
    go_only: &["dns", "ulimits"],
};

/// Go moat's mapping form of one `mounts` entry.
pub const MOUNT: Keys = Keys {
    path: "mounts",
    known: &["source", "target", "mode"],
    go_only: &["exclude"],
};

/// `path.key`, or `key` at the top.
pub fn dotted(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Why `key` is not read here: Go moat's and not done by moat, or a typo with the
/// nearest known key.
pub fn refuse(keys: &Keys, key: &str) -> String {
    let full = dotted(keys.path, key);
    if keys.go_only.contains(&key) {
        return format!("{full:?} is a Go moat key that moat does not support");
    }
    if key == "<<" {
        return "YAML merge keys (<<) are not supported: write the keys out".into();
    }
    if let Some(near) = super::suggest::closest(key, keys.known) {
        return format!(
            "unknown key {full:?} (did you mean {:?}?)",
            dotted(keys.path, near)
        );
    }
    // `cpus:` at the top belongs in `resources:`.
    if keys.path.is_empty() {
        for inner in [&RESOURCES, &NETWORK] {
            if inner.known.contains(&key) {
                return format!(
                    "unknown key {full:?} (did you mean {:?}?)",
                    dotted(inner.path, key)
                );
            }
        }
    }
    format!("unknown key {full:?}")
}
