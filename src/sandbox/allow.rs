//! Which hosts a run may reach (`--allow-host HOST[:PORT]`).
//!
//! A rule names one host (`api.example.com`), every subdomain of one (`*.example.com`, at any
//! depth, not the apex itself), or an IP literal (`10.0.0.1`, `[::1]`), with an optional port.
//! Without a port a rule allows 80 and 443, the ports of plain and TLS web traffic. Hosts
//! compare case-insensitively with a trailing dot ignored, as DNS does. The egress proxy
//! decides with [`Allowlist::allows`]; the CLI checks `--allow-host` with [`parse`].

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// One allowlist rule; [`parse`] makes it, `Display` gives its canonical form back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Lowercase, no trailing dot, no brackets; for a wildcard the part after `*.`.
    host: String,
    /// `*.host`: any subdomain of `host`.
    wildcard: bool,
    /// `None`: ports 80 and 443.
    port: Option<u16>,
}

/// Parse a rule: `HOST[:PORT]`, `*.DOMAIN[:PORT]`, an IPv4 literal or a bracketed IPv6
/// literal (`[::1]:443`). The error says why, without the value or the flag (the caller
/// names both).
pub fn parse(s: &str) -> Result<Rule, String> {
    if s.is_empty() {
        return Err("empty host".into());
    }
    if s.contains("://") {
        return Err("a scheme is not allowed; give the host alone, like example.com".into());
    }
    if s.contains('/') {
        return Err("a path is not allowed; give the host alone, like example.com".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must not contain {c:?}"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs a closing ']'")?;
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{ip:?} is not an IPv6 address"));
        }
        match after {
            "" => (ip, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return Err("expected ':PORT' after ']'".into()),
            },
        }
    } else {
        match s.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("an IPv6 address must be in brackets, like [::1]:443".into());
            }
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or("the port must be a number from 1 to 65535")?),
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host.as_str()),
    };
    if name.contains('*') {
        return Err("'*' may only be the whole first label, like *.example.com".into());
    }
    if !name.contains(':') {
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err("empty host or empty label".into());
        }
        if let Some(c) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        {
            return Err(format!("{c:?} is not allowed in a host name"));
        }
    }
    Ok(Rule {
        wildcard,
        host: name.to_string(),
        port,
    })
}

/// A port from 1 to 65535, digits only.
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p != 0)
}

impl Rule {
    /// Whether a request to `host:port` falls under this rule. `host` is a name or an IP
    /// literal (brackets optional); IP literals match only a rule naming the same address.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        if !port_ok {
            return false;
        }
        let host = host.strip_prefix('[').unwrap_or(host);
        let host = host.strip_suffix(']').unwrap_or(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        if self.wildcard {
            // A subdomain: "x." in front of the domain, never the domain itself.
            let n = host.len();
            let m = self.host.len();
            return n > m + 1
                && host.as_bytes()[n - m - 1] == b'.'
                && host[n - m..].eq_ignore_ascii_case(&self.host);
        }
        // Two spellings of one IPv6 address (`::1`, `0::1`) are the same host.
        match (host.parse::<IpAddr>(), self.host.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => host.eq_ignore_ascii_case(&self.host),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// The rules of one run. Empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(pub Vec<Rule>);

impl Allowlist {
    /// Whether any rule allows `host:port` (see [`Rule::matches`]).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.0.iter().any(|r| r.matches(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_and_prints_canonical_forms() {
        for (input, canonical) in [
            ("example.com", "example.com"),
            ("Example.COM.", "example.com"),
            ("api.example.com:8443", "api.example.com:8443"),
            ("*.Example.com", "*.example.com"),
            ("*.example.com:443", "*.example.com:443"),
            ("10.0.0.1", "10.0.0.1"),
            ("10.0.0.1:5432", "10.0.0.1:5432"),
            ("[::1]", "[::1]"),
            ("[::1]:443", "[::1]:443"),
            ("[2001:DB8::1]:65535", "[2001:db8::1]:65535"),
            ("my_host-1", "my_host-1"),
        ] {
            let r = rule(input);
            assert_eq!(r.to_string(), canonical, "{input}");
            assert_eq!(rule(canonical), r, "{canonical} re-parses");
        }
    }

    #[test]
    fn rejects_bad_rules() {
        for (input, why) in [
            ("", "empty"),
            ("a b", "must not contain ' '"),
            ("a\tb", "must not contain"),
            ("*", "'*' may only"),
            ("*.", "'*' may only"),
            ("*foo.com", "'*' may only"),
            ("a.*.com", "'*' may only"),
            ("foo.*", "'*' may only"),
            ("*.*.com", "'*' may only"),
            ("example.com:0", "1 to 65535"),
            ("example.com:65536", "1 to 65535"),
            ("example.com:", "1 to 65535"),
            ("example.com:x", "1 to 65535"),
            ("example.com:+80", "1 to 65535"),
            ("https://example.com", "scheme"),
            ("example.com/path", "path"),
            ("::1", "brackets"),
            ("[::1", "closing"),
            ("[::1]443", "after ']'"),
            ("[example.com]", "not an IPv6"),
            ("a..b", "empty"),
            (".com", "empty"),
            (":80", "empty"),
            ("user@example.com", "'@'"),
        ] {
            let e = parse(input).expect_err(input);
            assert!(e.contains(why), "{input:?}: {e}");
            assert!(!e.contains('\n'), "{input:?}: one line");
        }
    }

    #[test]
    fn default_ports_are_80_and_443() {
        let r = rule("example.com");
        assert!(r.matches("example.com", 80));
        assert!(r.matches("example.com", 443));
        assert!(!r.matches("example.com", 8080));
        assert!(!r.matches("example.com", 22));
        let r = rule("example.com:8080");
        assert!(r.matches("example.com", 8080));
        assert!(!r.matches("example.com", 443));
    }

    #[test]
    fn hosts_compare_without_case_or_trailing_dot() {
        let r = rule("Example.com.");
        assert!(r.matches("EXAMPLE.com", 443));
        assert!(r.matches("example.com.", 443));
        assert!(!r.matches("www.example.com", 443));
        assert!(!r.matches("example.co", 443));
        assert!(!r.matches("notexample.com", 443));
    }

    #[test]
    fn wildcards_match_subdomains_at_any_depth_not_the_apex() {
        let r = rule("*.example.com");
        assert!(r.matches("a.example.com", 443));
        assert!(r.matches("A.B.Example.COM.", 80));
        assert!(!r.matches("example.com", 443));
        assert!(!r.matches(".example.com", 443));
        assert!(!r.matches("badexample.com", 443));
        assert!(!r.matches("a.example.com.evil", 443));
        assert!(!r.matches("a.example.com", 22));
        assert!(rule("*.example.com:22").matches("a.example.com", 22));
    }

    #[test]
    fn ip_literals_match_literally() {
        let r = rule("127.0.0.1:8080");
        assert!(r.matches("127.0.0.1", 8080));
        assert!(!r.matches("127.0.0.2", 8080));
        assert!(!r.matches("localhost", 8080));
        let r = rule("[::1]:443");
        assert!(r.matches("::1", 443));
        assert!(r.matches("[::1]", 443));
        assert!(r.matches("0:0::1", 443));
        assert!(!r.matches("::2", 443));
        assert!(rule("[::1]").matches("::1", 80));
    }

    #[test]
    fn an_empty_allowlist_allows_nothing() {
        assert!(!Allowlist::default().allows("example.com", 443));
        let list = Allowlist(vec![rule("a.test"), rule("*.b.test:8443")]);
        assert!(list.allows("a.test", 443));
        assert!(list.allows("x.b.test", 8443));
        assert!(!list.allows("x.b.test", 443));
        assert!(!list.allows("c.test", 443));
    }
}
