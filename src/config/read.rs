//! The node tree of a `moat.yaml` to a [`Config`]: every key is read or refused, every
//! value's YAML type checked; values themselves are the flag parsers' to judge.

use std::path::{Path, PathBuf};

use super::keys::{self, Keys, dotted};
use super::yaml::{At, Entry, Node, Value};
use super::{Config, Error, Sourced};

/// Read `root` (the file's document; `None` when it is empty) from `file`.
pub fn read(file: &Path, root: Option<Node>) -> Result<Config, Error> {
    let mut reader = Reader {
        file,
        config: Config {
            file: file.to_path_buf(),
            ..Config::default()
        },
    };
    match root {
        None => {}
        Some(Node {
            value: Value::Map(entries),
            ..
        }) => reader.top(&entries)?,
        Some(_) => {
            return Err(reader.error(
                At { line: 1, column: 1 },
                "the file must be a mapping of settings (key: value)",
            ));
        }
    }
    Ok(reader.config)
}

struct Reader<'a> {
    file: &'a Path,
    config: Config,
}

impl Reader<'_> {
    fn error(&self, at: At, message: impl Into<String>) -> Error {
        Error {
            file: self.file.to_path_buf(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }

    fn refuse(&self, keys: &Keys, entry: &Entry) -> Error {
        self.error(entry.at, keys::refuse(keys, &entry.key))
    }

    fn top(&mut self, entries: &[Entry]) -> Result<(), Error> {
        for e in entries {
            let v = &e.value;
            let key = e.key.as_str();
            match key {
                "name" => self.config.name = Some(self.text(v, key)?),
                "image" => self.config.image = Some(self.text(v, key)?),
                "workdir" => self.config.workdir = Some(self.text(v, key)?),
                "user" => self.config.user = Some(self.text(v, key)?),
                "timeout" => self.config.timeout = Some(self.text(v, key)?),
                "stop_timeout" => self.config.stop_timeout = Some(self.text(v, key)?),
                "runtime" => self.config.runtime = Some(self.text(v, key)?),
                "agent" => self.config.agent = Some(self.text(v, key)?),
                "interactive" => self.config.interactive = Some(self.boolean(v, key)?),
                "keep" => self.config.keep = Some(self.boolean(v, key)?),
                "command" => self.command(v)?,
                "env" => self.env(v)?,
                "env_file" => self.env_files(v)?,
                "mounts" => {
                    for item in self.list(v, key, "a list of SRC:DST[:ro] strings")? {
                        let mount = self.mount(item)?;
                        self.config.mounts.push(mount);
                    }
                }
                "ports" => self.ports(v)?,
                "network" => {
                    for e in self.map(v, &keys::NETWORK, "policy, allow")? {
                        self.network(e)?;
                    }
                }
                "resources" => {
                    for e in self.map(v, &keys::RESOURCES, "memory, cpus, pids")? {
                        self.resource(e)?;
                    }
                }
                "container" => {
                    for e in self.map(v, &keys::CONTAINER, "memory, cpus")? {
                        self.container(e)?;
                    }
                }
                _ => return Err(self.refuse(&keys::TOP, e)),
            }
        }
        Ok(())
    }

    /// A list of words. A string is refused rather than split or handed to a shell: which
    /// of the two it would mean is a guess.
    fn command(&mut self, v: &Node) -> Result<(), Error> {
        let items = match &v.value {
            Value::List(items) => items,
            Value::Str(_) => {
                return Err(self.error(
                    v.at,
                    "\"command\" must be a list of words, e.g. [\"npm\", \"test\"] \
                     (for a shell line: [\"sh\", \"-c\", \"npm test\"])",
                ));
            }
            _ => return Err(self.error(v.at, "\"command\" must be a list of words")),
        };
        let words = items
            .iter()
            .map(|i| self.item_text(i, "command").map(|s| s.value))
            .collect::<Result<Vec<_>, _>>()?;
        self.config.command = Some(sourced(words, v.at));
        Ok(())
    }

    /// `KEY: VALUE` pairs (a key without a value passes the host's, as `-e KEY`), or a
    /// list of `KEY=VALUE` and `KEY` strings. Scalar values are taken as written
    /// (`DEBUG: true` is `DEBUG=true`).
    fn env(&mut self, v: &Node) -> Result<(), Error> {
        match &v.value {
            Value::Map(entries) => {
                for e in entries {
                    if e.key.contains('=') {
                        return Err(self.error(
                            e.at,
                            format!("\"env\" key {:?} cannot contain \"=\"", e.key),
                        ));
                    }
                    let setting = match &e.value.value {
                        Value::Null => e.key.clone(),
                        Value::Bool(b) => format!("{}={b}", e.key),
                        _ => match text(&e.value) {
                            Some(value) => format!("{}={}", e.key, value.value),
                            None => {
                                return Err(self.error(
                                    e.value.at,
                                    format!("{:?} must be a string", dotted("env", &e.key)),
                                ));
                            }
                        },
                    };
                    self.config.env.push(sourced(setting, e.at));
                }
            }
            Value::List(items) => {
                for i in items {
                    let setting = self.item_text(i, "env")?;
                    self.config.env.push(setting);
                }
            }
            Value::Null => {}
            _ => {
                return Err(self.error(
                    v.at,
                    "\"env\" must be a mapping (KEY: VALUE) or a list of \"KEY=VALUE\" strings",
                ));
            }
        }
        Ok(())
    }

    /// One path or a list of paths.
    fn env_files(&mut self, v: &Node) -> Result<(), Error> {
        let files = match &v.value {
            Value::List(items) => items
                .iter()
                .map(|i| self.item_text(i, "env_file"))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Null => Vec::new(),
            _ => vec![self.want(text(v), v.at, || {
                "\"env_file\" must be a path or a list of paths".into()
            })?],
        };
        for f in files {
            let path = self.relative(&f.value, f.at())?;
            self.config.env_files.push(Sourced { value: path, ..f });
        }
        Ok(())
    }

    /// `SRC:DST[:ro]`, or Go moat's mapping (`source`, `target`, `mode`).
    fn mount(&self, item: &Node) -> Result<Sourced<String>, Error> {
        let entries = match &item.value {
            Value::Map(entries) => entries,
            _ => {
                let m = self.item_text(item, "mounts")?;
                let value = match m.value.split_once(':') {
                    Some((src, rest)) => format!("{}:{rest}", self.relative(src, m.at())?),
                    None => self.relative(&m.value, m.at())?,
                };
                return Ok(Sourced { value, ..m });
            }
        };
        let (mut source, mut target, mut mode) = (None, None, None);
        for e in entries {
            let slot = match e.key.as_str() {
                "source" => &mut source,
                "target" => &mut target,
                "mode" => &mut mode,
                _ => return Err(self.refuse(&keys::MOUNT, e)),
            };
            *slot = Some(self.text(&e.value, &dotted("mounts", &e.key))?);
        }
        let (Some(source), Some(target)) = (source, target) else {
            return Err(self.error(item.at, "a mount needs a \"source\" and a \"target\""));
        };
        let mut value = format!(
            "{}:{}",
            self.relative(&source.value, source.at())?,
            target.value
        );
        if let Some(mode) = mode {
            value = format!("{value}:{}", mode.value);
        }
        Ok(sourced(value, item.at))
    }

    /// A list of docker's `-p` values, or Go moat's mapping of endpoint names to container
    /// ports (the names are Go moat's hostname routing; each port is published as `-p
    /// PORT` would).
    fn ports(&mut self, v: &Node) -> Result<(), Error> {
        match &v.value {
            Value::List(items) => {
                for i in items {
                    let port = self.item_text(i, "ports")?;
                    self.config.ports.push(port);
                }
            }
            Value::Map(entries) => {
                for e in entries {
                    let port = self.whole(&e.value, &dotted("ports", &e.key), "a port number")?;
                    self.config.ports.push(port);
                }
            }
            Value::Null => {}
            _ => {
                return Err(
                    self.error(v.at, "\"ports\" must be a list of ports (as -p takes them)")
                );
            }
        }
        Ok(())
    }

    fn network(&mut self, e: &Entry) -> Result<(), Error> {
        let v = &e.value;
        match e.key.as_str() {
            "policy" => {
                let mut policy = self.text(v, "network.policy")?;
                // Go moat's word for what moat calls open.
                if policy.value == "permissive" {
                    policy.value = "open".into();
                }
                self.config.network_policy = Some(policy);
            }
            "allow" => {
                for i in self.list(v, "network.allow", "a list of hosts")? {
                    let host = self.item_text(i, "network.allow")?;
                    self.config.network_allow.push(host);
                }
            }
            // Go moat: a host, or a mapping of a host to request rules.
            "rules" => {
                for i in self.list(v, "network.rules", "a list of hosts")? {
                    if let Value::Map(_) = i.value {
                        return Err(self.error(
                            i.at,
                            "per-host request rules in \"network.rules\" are a Go moat \
                             feature that moat does not support; list the host alone",
                        ));
                    }
                    let host = self.item_text(i, "network.rules")?;
                    self.config.network_allow.push(host);
                }
            }
            _ => return Err(self.refuse(&keys::NETWORK, e)),
        }
        Ok(())
    }

    fn resource(&mut self, e: &Entry) -> Result<(), Error> {
        let v = &e.value;
        match e.key.as_str() {
            "memory" => {
                // A bare number would be bytes to docker and megabytes to Go moat.
                let Value::Str(size) = &v.value else {
                    return Err(self.error(
                        v.at,
                        "\"resources.memory\" must be a size with a unit, like \"512m\" or \"2g\"",
                    ));
                };
                let memory = sourced(size.clone(), v.at);
                self.once("memory", &self.config.memory, &memory)?;
                self.config.memory = Some(memory);
            }
            "cpus" => {
                let cpus = self.text(v, "resources.cpus")?;
                self.once("cpus", &self.config.cpus, &cpus)?;
                self.config.cpus = Some(cpus);
            }
            "pids" => self.config.pids = Some(self.whole(v, "resources.pids", "a whole number")?),
            _ => return Err(self.refuse(&keys::RESOURCES, e)),
        }
        Ok(())
    }

    /// Go moat's `container`: `memory` in megabytes, `cpus` a count.
    fn container(&mut self, e: &Entry) -> Result<(), Error> {
        let v = &e.value;
        match e.key.as_str() {
            "memory" => {
                let mut memory =
                    self.whole(v, "container.memory", "a whole number of megabytes")?;
                memory.value.push('m');
                self.once("memory", &self.config.memory, &memory)?;
                self.config.memory = Some(memory);
            }
            "cpus" => {
                let cpus = self.text(v, "container.cpus")?;
                self.once("cpus", &self.config.cpus, &cpus)?;
                self.config.cpus = Some(cpus);
            }
            _ => return Err(self.refuse(&keys::CONTAINER, e)),
        }
        Ok(())
    }

    /// A setting two keys can make (`resources.memory` and Go moat's `container.memory`)
    /// is made once.
    fn once(
        &self,
        what: &str,
        slot: &Option<Sourced<String>>,
        new: &Sourced<String>,
    ) -> Result<(), Error> {
        match slot {
            Some(first) => Err(self.error(
                new.at(),
                format!(
                    "the {what} limit is set twice (first at line {})",
                    first.line
                ),
            )),
            None => Ok(()),
        }
    }

    /// The entries of the mapping `v` (none when it is empty: `network:` alone).
    fn map<'n>(&self, v: &'n Node, keys: &Keys, known: &str) -> Result<&'n [Entry], Error> {
        match &v.value {
            Value::Map(entries) => Ok(entries),
            Value::Null => Ok(&[]),
            _ => Err(self.error(v.at, format!("{:?} must be a mapping ({known})", keys.path))),
        }
    }

    /// The items of the list `v` (none when it is empty: every item commented out).
    fn list<'n>(&self, v: &'n Node, key: &str, what: &str) -> Result<&'n [Node], Error> {
        match &v.value {
            Value::List(items) => Ok(items),
            Value::Null => Ok(&[]),
            _ => Err(self.error(v.at, format!("{key:?} must be {what}"))),
        }
    }

    fn text(&self, v: &Node, key: &str) -> Result<Sourced<String>, Error> {
        self.want(text(v), v.at, || format!("{key:?} must be a string"))
    }

    fn item_text(&self, v: &Node, key: &str) -> Result<Sourced<String>, Error> {
        self.want(text(v), v.at, || {
            format!("each entry of {key:?} must be a string")
        })
    }

    fn boolean(&self, v: &Node, key: &str) -> Result<Sourced<bool>, Error> {
        match v.value {
            Value::Bool(b) => Ok(sourced(b, v.at)),
            _ => Err(self.error(v.at, format!("{key:?} must be true or false"))),
        }
    }

    fn whole(&self, v: &Node, key: &str, what: &str) -> Result<Sourced<String>, Error> {
        match &v.value {
            Value::Int(n) => Ok(sourced(n.clone(), v.at)),
            _ => Err(self.error(v.at, format!("{key:?} must be {what}"))),
        }
    }

    fn want<T>(
        &self,
        found: Option<T>,
        at: At,
        message: impl FnOnce() -> String,
    ) -> Result<T, Error> {
        found.ok_or_else(|| self.error(at, message()))
    }

    /// `path` relative to the file's directory, unless it is absolute (or empty, which
    /// the flag parser refuses).
    fn relative(&self, path: &str, at: At) -> Result<String, Error> {
        if path.is_empty() || Path::new(path).is_absolute() {
            return Ok(path.to_string());
        }
        let dir = self.file.parent().unwrap_or(Path::new(""));
        let mut rest = path;
        while let Some(r) = rest.strip_prefix("./") {
            rest = r.trim_start_matches('/');
        }
        let joined = match rest {
            "" | "." if dir.as_os_str().is_empty() => PathBuf::from("."),
            "" | "." => dir.to_path_buf(),
            _ => dir.join(rest),
        };
        match joined.to_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(self.error(
                at,
                format!(
                    "{path:?} is relative to {}, which is not UTF-8: give an absolute path",
                    dir.display()
                ),
            )),
        }
    }
}

/// A scalar other than null or a boolean, as written.
fn text(v: &Node) -> Option<Sourced<String>> {
    match &v.value {
        Value::Str(s) | Value::Int(s) | Value::Float(s) => Some(sourced(s.clone(), v.at)),
        _ => None,
    }
}

fn sourced<T>(value: T, at: At) -> Sourced<T> {
    Sourced {
        value,
        line: at.line,
        column: at.column,
    }
}

impl<T> Sourced<T> {
    fn at(&self) -> At {
        At {
            line: self.line,
            column: self.column,
        }
    }
}
