//! The `docker run` flags CI users reach for (`--memory`, `-p`, `--cap-add`, `--env-file`
//! ...): read with docker's syntax and checked here, before anything is created, into the
//! runtime's [`ContainerOptions`]. Each parser names its flag in its error, as docker does.

use std::net::IpAddr;
use std::path::Path;

use crate::runtime::{ContainerOptions, Gpus, PortBinding, Ulimit};

/// The flags as typed; [`ContainerFlags::parse`] checks them.
#[derive(Debug, Default)]
pub struct ContainerFlags {
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub cpus: Option<String>,
    pub pids_limit: Option<String>,
    pub shm_size: Option<String>,
    pub ulimits: Vec<String>,
    pub publish: Vec<String>,
    pub publish_all: bool,
    pub entrypoint: Option<String>,
    pub labels: Vec<String>,
    pub hostname: Option<String>,
    pub add_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub read_only: bool,
    pub tmpfs: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    pub platform: Option<String>,
    pub gpus: Option<String>,
}

impl ContainerFlags {
    /// Take the flag `key` if it is one of these, reading its value from `parser`.
    /// Returns whether it was.
    pub fn take(
        &mut self,
        command: &'static str,
        key: &str,
        parser: &mut lexopt::Parser,
    ) -> crate::error::Result<bool> {
        let mut value = || super::string_value(command, parser);
        match key {
            "-P" | "--publish-all" => self.publish_all = true,
            "--read-only" => self.read_only = true,
            "--privileged" => self.privileged = true,
            "--memory" => self.memory = Some(value()?),
            "--memory-swap" => self.memory_swap = Some(value()?),
            "--cpus" => self.cpus = Some(value()?),
            "--pids-limit" => self.pids_limit = Some(value()?),
            "--shm-size" => self.shm_size = Some(value()?),
            "--entrypoint" => self.entrypoint = Some(value()?),
            "--hostname" => self.hostname = Some(value()?),
            "--platform" => self.platform = Some(value()?),
            "--gpus" => self.gpus = Some(value()?),
            "--ulimit" => self.ulimits.push(value()?),
            "-p" | "--publish" => self.publish.push(value()?),
            "-l" | "--label" => self.labels.push(value()?),
            "--add-host" => self.add_hosts.push(value()?),
            "--dns" => self.dns.push(value()?),
            "--tmpfs" => self.tmpfs.push(value()?),
            "--cap-add" => self.cap_add.push(value()?),
            "--cap-drop" => self.cap_drop.push(value()?),
            "--security-opt" => self.security_opt.push(value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The flags given, by name (for a runtime that takes none of them).
    pub fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let mut note = |on: bool, name: &'static str| {
            if on {
                given.push(name);
            }
        };
        note(self.memory.is_some(), "--memory");
        note(self.memory_swap.is_some(), "--memory-swap");
        note(self.cpus.is_some(), "--cpus");
        note(self.pids_limit.is_some(), "--pids-limit");
        note(self.shm_size.is_some(), "--shm-size");
        note(!self.ulimits.is_empty(), "--ulimit");
        note(!self.publish.is_empty(), "--publish");
        note(self.publish_all, "--publish-all");
        note(self.entrypoint.is_some(), "--entrypoint");
        note(!self.labels.is_empty(), "--label");
        note(self.hostname.is_some(), "--hostname");
        note(!self.add_hosts.is_empty(), "--add-host");
        note(!self.dns.is_empty(), "--dns");
        note(self.read_only, "--read-only");
        note(!self.tmpfs.is_empty(), "--tmpfs");
        note(!self.cap_add.is_empty(), "--cap-add");
        note(!self.cap_drop.is_empty(), "--cap-drop");
        note(!self.security_opt.is_empty(), "--security-opt");
        note(self.privileged, "--privileged");
        note(self.platform.is_some(), "--platform");
        note(self.gpus.is_some(), "--gpus");
        given
    }

    /// Check every flag; the first bad one is the error.
    pub fn parse(&self) -> Result<ContainerOptions, String> {
        let bytes =
            |flag: &str, v: &Option<String>| v.as_deref().map(|v| parse_bytes(flag, v)).transpose();
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            other => other.map(|v| parse_bytes("--memory-swap", v)).transpose()?,
        };
        Ok(ContainerOptions {
            memory: bytes("--memory", &self.memory)?,
            memory_swap,
            nano_cpus: self.cpus.as_deref().map(parse_cpus).transpose()?,
            pids_limit: self.pids_limit.as_deref().map(parse_pids).transpose()?,
            shm_size: bytes("--shm-size", &self.shm_size)?,
            ulimits: self
                .ulimits
                .iter()
                .map(|u| parse_ulimit(u))
                .collect::<Result<_, _>>()?,
            publish: self
                .publish
                .iter()
                .map(|p| parse_publish(p))
                .collect::<Result<_, _>>()?,
            publish_all: self.publish_all,
            // Docker takes `--entrypoint` as one word: the executable, not a command line.
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    vec![]
                } else {
                    vec![e.clone()]
                }
            }),
            labels: self
                .labels
                .iter()
                .map(|l| parse_label(l))
                .collect::<Result<_, _>>()?,
            hostname: self.hostname.as_deref().map(parse_hostname).transpose()?,
            extra_hosts: self
                .add_hosts
                .iter()
                .map(|h| parse_add_host(h))
                .collect::<Result<_, _>>()?,
            dns: self
                .dns
                .iter()
                .map(|d| parse_ip("--dns", d))
                .collect::<Result<_, _>>()?,
            read_only: self.read_only,
            tmpfs: self
                .tmpfs
                .iter()
                .map(|t| parse_tmpfs(t))
                .collect::<Result<_, _>>()?,
            cap_add: self
                .cap_add
                .iter()
                .map(|c| parse_capability("--cap-add", c))
                .collect::<Result<_, _>>()?,
            cap_drop: self
                .cap_drop
                .iter()
                .map(|c| parse_capability("--cap-drop", c))
                .collect::<Result<_, _>>()?,
            security_opt: self
                .security_opt
                .iter()
                .map(|o| non_empty("--security-opt", o))
                .collect::<Result<_, _>>()?,
            privileged: self.privileged,
            platform: self.platform.as_deref().map(parse_platform).transpose()?,
            gpus: self.gpus.as_deref().map(parse_gpus).transpose()?,
        })
    }
}

/// A size as docker reads it (`RAMInBytes`): a number, optionally a fraction, then an
/// optional `b`, `k`, `m`, `g`, `t` or `p` (powers of 1024), optionally followed by `b`
/// or `ib`. `512m`, `1.5g`, `1024`.
pub fn parse_bytes(flag: &str, value: &str) -> Result<i64, String> {
    let bad = || format!("invalid {flag} {value:?}: expected a size such as 512m or 2g");
    let lower = value.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let power = match unit {
        "" | "b" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(bad()),
    };
    let bytes = number * 1024f64.powi(power);
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// `--cpus 1.5`: billionths of a CPU, as the engine takes them.
pub fn parse_cpus(value: &str) -> Result<i64, String> {
    let bad = || format!("invalid --cpus {value:?}: expected a number of CPUs such as 1.5");
    let cpus: f64 = value.trim().parse().map_err(|_| bad())?;
    if !cpus.is_finite() || cpus <= 0.0 || cpus > 1e6 {
        return Err(bad());
    }
    Ok((cpus * 1e9).round() as i64)
}

/// `--pids-limit N`; -1 (or 0, as docker has it) is unlimited.
pub fn parse_pids(value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(n) if n >= -1 => Ok(if n == 0 { -1 } else { n }),
        _ => Err(format!(
            "invalid --pids-limit {value:?}: expected a number of processes (-1 for no limit)"
        )),
    }
}

/// The resource names `--ulimit` takes (setrlimit's, as docker names them).
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]`; `unlimited` (or -1) for no limit.
fn parse_ulimit(value: &str) -> Result<Ulimit, String> {
    let bad =
        |why: String| format!("invalid --ulimit {value:?}: {why} (expected NAME=SOFT[:HARD])");
    let (name, limits) = value.split_once('=').ok_or_else(|| bad("no '='".into()))?;
    if !ULIMITS.contains(&name) {
        return Err(bad(format!(
            "unknown resource {name:?}; known: {}",
            ULIMITS.join(", ")
        )));
    }
    let limit = |s: &str| match s {
        "unlimited" | "-1" => Ok(-1),
        _ => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(format!("{s:?} is not a limit"))),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (limit(soft)?, limit(hard)?),
        None => {
            let n = limit(limits)?;
            (n, n)
        }
    };
    if hard != -1 && (soft == -1 || soft > hard) {
        return Err(bad("the soft limit is above the hard one".into()));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `-p [IP:][HOST:]CONTAINER[/PROTO]`, IPv6 addresses in brackets. No host port (or an
/// empty one) is a random port.
pub fn parse_publish(value: &str) -> Result<PortBinding, String> {
    let bad = |why: &str| {
        format!(
            "invalid --publish {value:?}: {why} (expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp])"
        )
    };
    let (spec, proto) = match value.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto.to_ascii_lowercase()),
        None => (value, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(&format!("unknown protocol {proto:?}")));
    }
    // An IPv6 address is bracketed: `[::1]:8080:80`.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(rest) => {
            let (ip, rest) = rest
                .split_once("]:")
                .ok_or_else(|| bad("an unclosed '['"))?;
            (Some(ip), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host_port, container_port) = match (host_ip, parts.as_slice()) {
        (None, [c]) => ("", "", *c),
        (None, [h, c]) => ("", *h, *c),
        (None, [ip, h, c]) => (*ip, *h, *c),
        (Some(ip), [h, c]) => (ip, *h, *c),
        _ => return Err(bad("too many ':'")),
    };
    if !ip.is_empty() {
        ip.parse::<IpAddr>()
            .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
    }
    if host_port.contains('-') || container_port.contains('-') {
        return Err(bad(
            "port ranges are not supported; give each port its own -p",
        ));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(&format!("{p:?} is not a port")))
    };
    Ok(PortBinding {
        container_port: port(container_port)?,
        proto,
        host_ip: ip.to_string(),
        host_port: if host_port.is_empty() {
            None
        } else {
            Some(port(host_port)?)
        },
    })
}

/// `--label KEY=VALUE` (or `KEY`, an empty value). `moat.*` labels are moat's own: they
/// say which store owns the container, and a user's must not change that.
fn parse_label(value: &str) -> Result<(String, String), String> {
    let (key, v) = value.split_once('=').unwrap_or((value, ""));
    if key.is_empty() {
        return Err(format!("invalid --label {value:?}: the label needs a name"));
    }
    if key.starts_with("moat.") {
        return Err(format!(
            "invalid --label {value:?}: labels moat.* are moat's own"
        ));
    }
    Ok((key.to_string(), v.to_string()))
}

/// `--hostname NAME`: an RFC 1123 name.
fn parse_hostname(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "invalid --hostname {value:?}: not a valid host name"
        ))
    }
}

/// `--add-host HOST:IP` (or `HOST=IP`); `host-gateway` is the engine's own address.
fn parse_add_host(value: &str) -> Result<String, String> {
    let bad = || format!("invalid --add-host {value:?}: expected HOST:IP");
    let (host, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != "host-gateway" {
        ip.parse::<IpAddr>().map_err(|_| bad())?;
    }
    Ok(format!("{host}:{ip}"))
}

fn parse_ip(flag: &str, value: &str) -> Result<String, String> {
    value
        .parse::<IpAddr>()
        .map(|_| value.to_string())
        .map_err(|_| format!("invalid {flag} {value:?}: not an IP address"))
}

/// `--tmpfs PATH[:OPTIONS]`, PATH absolute.
fn parse_tmpfs(value: &str) -> Result<(String, String), String> {
    let (path, options) = value.split_once(':').unwrap_or((value, ""));
    if !Path::new(path).is_absolute() {
        return Err(format!(
            "invalid --tmpfs {value:?}: the path must be absolute (PATH[:OPTIONS])"
        ));
    }
    Ok((path.to_string(), options.to_string()))
}

/// `--cap-add NET_ADMIN`, `cap_net_admin` or `ALL`: the engine's spelling.
fn parse_capability(flag: &str, value: &str) -> Result<String, String> {
    let upper = value.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid {flag} {value:?}: not a capability name"));
    }
    Ok(if name == "ALL" {
        name.to_string()
    } else {
        format!("CAP_{name}")
    })
}

fn non_empty(flag: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("{flag} needs a value"))
    } else {
        Ok(value.to_string())
    }
}

/// `--platform OS[/ARCH[/VARIANT]]`.
fn parse_platform(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split('/').collect();
    let ok = (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid --platform {value:?}: expected OS[/ARCH[/VARIANT]] such as linux/amd64"
        ))
    }
}

/// `--gpus all`, `--gpus 2`, `--gpus count=2`, `--gpus device=0,1` (or `"device=0,1"`).
fn parse_gpus(value: &str) -> Result<Gpus, String> {
    let bad = || format!("invalid --gpus {value:?}: expected all, a count, or device=ID[,ID...]");
    let v = value.trim().trim_matches('"');
    let count = |s: &str| match s {
        "all" => Ok(Gpus::Count(-1)),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Gpus::Count)
            .ok_or_else(bad),
    };
    if let Some(n) = v.strip_prefix("count=") {
        return count(n);
    }
    if let Some(ids) = v.strip_prefix("device=") {
        let ids: Vec<String> = ids.split(',').map(str::trim).map(str::to_string).collect();
        if ids.iter().any(String::is_empty) {
            return Err(bad());
        }
        return Ok(Gpus::Devices(ids));
    }
    count(v)
}

/// The variables of `--env-file FILE`, as docker reads it: one `KEY=VALUE` a line (the
/// value as written, quotes and all), `KEY` alone passes the host's value (skipped when
/// the host has none), `#` starts a comment line, blank lines are skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "invalid --env-file {}: {}",
            path.display(),
            crate::io_reason::io_reason(&e)
        )
    })?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("invalid --env-file {}: not UTF-8 text", path.display()))?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line.trim_end(), None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!(
                "invalid --env-file {}:{}: variable {key:?} has white space or no name",
                path.display(),
                n + 1
            ));
        }
        match value {
            Some(v) => vars.push((key.to_string(), v.to_string())),
            None => {
                if let Ok(v) = std::env::var(key) {
                    vars.push((key.to_string(), v));
                }
            }
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_reads_them() {
        assert_eq!(parse_bytes("--memory", "512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("--memory", "1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("--memory", "1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("--memory", "64MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("--memory", "2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("--memory", "1024"), Ok(1024));
        for bad in ["", "m", "12x", "-1", "1..2g"] {
            let err = parse_bytes("--memory", bad).unwrap_err();
            assert!(err.starts_with("invalid --memory"), "{bad}: {err}");
        }
    }

    #[test]
    fn cpus_pids_and_ulimits() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.01"), Ok(10_000_000));
        assert!(parse_cpus("0").is_err() && parse_cpus("x").is_err());
        assert_eq!(parse_pids("64"), Ok(64));
        assert_eq!(parse_pids("-1"), Ok(-1));
        assert!(parse_pids("-2").is_err());
        assert_eq!(
            parse_ulimit("nofile=512:1024"),
            Ok(Ulimit {
                name: "nofile".into(),
                soft: 512,
                hard: 1024
            })
        );
        assert_eq!(
            parse_ulimit("nproc=100").map(|u| (u.soft, u.hard)),
            Ok((100, 100))
        );
        assert_eq!(parse_ulimit("core=unlimited").map(|u| u.soft), Ok(-1));
        assert!(
            parse_ulimit("nofile=2048:1024")
                .unwrap_err()
                .contains("above")
        );
        assert!(
            parse_ulimit("files=1")
                .unwrap_err()
                .contains("unknown resource")
        );
        assert!(parse_ulimit("nofile").is_err());
    }

    #[test]
    fn publish_takes_docker_forms() {
        let p = |ip: &str, h: Option<u16>, c: u16, proto: &str| PortBinding {
            container_port: c,
            proto: proto.into(),
            host_ip: ip.into(),
            host_port: h,
        };
        assert_eq!(parse_publish("80"), Ok(p("", None, 80, "tcp")));
        assert_eq!(parse_publish("8080:80"), Ok(p("", Some(8080), 80, "tcp")));
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp"),
            Ok(p("127.0.0.1", Some(8080), 80, "udp"))
        );
        assert_eq!(
            parse_publish("127.0.0.1::80"),
            Ok(p("127.0.0.1", None, 80, "tcp"))
        );
        assert_eq!(
            parse_publish("[::1]:8080:80"),
            Ok(p("::1", Some(8080), 80, "tcp"))
        );
        for bad in [
            "",
            "x:80",
            "8080:80/icmp",
            "1.2.3:80:80",
            "0",
            "70000",
            "8000-8010:80",
            "a:b:c:d",
        ] {
            assert!(
                parse_publish(bad)
                    .unwrap_err()
                    .starts_with("invalid --publish"),
                "{bad}"
            );
        }
    }

    #[test]
    fn labels_hosts_and_names() {
        assert_eq!(parse_label("team=a=b"), Ok(("team".into(), "a=b".into())));
        assert_eq!(parse_label("flag"), Ok(("flag".into(), String::new())));
        assert!(
            parse_label("moat.run_id=x")
                .unwrap_err()
                .contains("moat's own")
        );
        assert!(parse_label("=x").is_err());
        assert_eq!(parse_add_host("db:10.0.0.2"), Ok("db:10.0.0.2".into()));
        assert_eq!(parse_add_host("db=::1"), Ok("db:::1".into()));
        assert_eq!(
            parse_add_host("gw:host-gateway"),
            Ok("gw:host-gateway".into())
        );
        assert!(parse_add_host("db:nope").is_err() && parse_add_host("db").is_err());
        assert!(parse_hostname("build-1.local").is_ok());
        assert!(parse_hostname("-bad").is_err() && parse_hostname("a_b").is_err());
        assert_eq!(
            parse_capability("--cap-add", "net_admin"),
            Ok("CAP_NET_ADMIN".into())
        );
        assert_eq!(parse_capability("--cap-drop", "ALL"), Ok("ALL".into()));
        assert!(parse_capability("--cap-add", "net admin").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=1m"),
            Ok(("/run".into(), "size=1m".into()))
        );
        assert!(parse_tmpfs("run").is_err());
        assert_eq!(parse_platform("linux/amd64"), Ok("linux/amd64".into()));
        assert!(parse_platform("linux//amd64").is_err());
    }

    #[test]
    fn gpus() {
        assert_eq!(parse_gpus("all"), Ok(Gpus::Count(-1)));
        assert_eq!(parse_gpus("2"), Ok(Gpus::Count(2)));
        assert_eq!(parse_gpus("count=1"), Ok(Gpus::Count(1)));
        assert_eq!(
            parse_gpus("\"device=0,1\""),
            Ok(Gpus::Devices(vec!["0".into(), "1".into()]))
        );
        assert!(parse_gpus("0").is_err() && parse_gpus("device=").is_err());
    }

    #[test]
    fn env_files_read_as_docker_reads_them() {
        let dir = std::env::temp_dir().join(format!("moat-env-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("env");
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var("MOAT_ENV_FILE_TEST_HOST", "from-host") };
        std::fs::write(
            &file,
            "# a comment\n\nA=1\n  B=\"quoted\" kept\nMOAT_ENV_FILE_TEST_HOST\nMOAT_ENV_FILE_TEST_UNSET\nC=\n",
        )
        .unwrap();
        assert_eq!(
            read_env_file(&file).unwrap(),
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), "\"quoted\" kept".into()),
                ("MOAT_ENV_FILE_TEST_HOST".into(), "from-host".into()),
                ("C".into(), String::new()),
            ]
        );
        std::fs::write(&file, "A B=1\n").unwrap();
        assert!(read_env_file(&file).unwrap_err().contains(":1:"));
        assert!(read_env_file(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
