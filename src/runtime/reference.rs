//! Image references as engines parse them (the grammar of docker's `distribution/reference`),
//! checked before a run exists: a bad `--image` is then a usage error naming the flag,
//! rather than the engine's wording after the run has been recorded as failed.
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path-component ( "/" path-component )*
//! domain    := host [ ":" port ]   (a first component with ".", ":" or uppercase, or "localhost")
//! path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
//! tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest    := algorithm ":" hex{32,}   (sha256: exactly 64 lowercase hex digits)
//! ```

/// The longest repository name engines accept, domain included.
const NAME_MAX: usize = 255;
/// The longest tag.
const TAG_MAX: usize = 128;

/// Why `image` is not a reference an engine would accept.
pub fn check(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("the image needs a name".into());
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // The tag is after the last ':' of the last component (a ':' before is a port).
    let last = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last..].rfind(':') {
        Some(i) => (&rest[..last + i], Some(&rest[last + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    check_name(name)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the image needs a name before its tag or digest".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "the repository name is longer than {NAME_MAX} characters"
        ));
    }
    let path = match name.split_once('/') {
        Some((first, path)) if is_domain_like(first) => {
            check_domain(first)?;
            path
        }
        _ => name,
    };
    for component in path.split('/') {
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("repository names must be lowercase".into());
        }
        if !is_path_component(component) {
            return Err(format!(
                "{component:?} is not a valid repository name component (lowercase letters and digits, separated by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

/// Whether the first component names a registry rather than a repository (docker's rule).
fn is_domain_like(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// `host[:port]`, the host a DNS name or a bracketed IPv6 address.
fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || Err(format!("{domain:?} is not a valid registry (HOST[:PORT])"));
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return bad();
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return bad();
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return bad(),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host
        && !host.split('.').all(is_domain_component)
    {
        return bad();
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    Ok(())
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

/// `[a-z0-9]+((?:[._]|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        // A run of letters and digits, never empty.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // One separator: `.`, `_`, `__` or any number of `-`.
        match b[i] {
            b'.' => i += 1,
            b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?} is not a valid tag (letters, digits, '_', '.' and '-', not starting with '.' or '-', at most {TAG_MAX})"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{digest:?} is not a valid digest (e.g. sha256:<64 hex digits>)"
        ))
    };
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return bad();
    };
    // Components `[A-Za-z][A-Za-z0-9]*` joined by one of `+._-`.
    let algorithm_ok = algorithm.split(['+', '.', '_', '-']).all(|c| {
        c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let hex_ok = if algorithm == "sha256" {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    } else {
        hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if algorithm_ok && hex_ok {
        Ok(())
    } else {
        bad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_what_engines_accept() {
        let with_digest = format!("ghcr.io/o/r@sha256:{SHA}");
        let tagged_digest = format!("ubuntu:22.04@sha256:{SHA}");
        for good in [
            "ubuntu",
            "ubuntu:22.04",
            "moat-test/busybox:latest",
            "library/ubuntu:Latest_1.x-y",
            "localhost/a",
            "localhost:5000/a/b:tag",
            "Registry.Example.com/x",
            "My-Registry/x",
            "[::1]:5000/a",
            "a__b",
            "a---b",
            "a.b_c-d",
            "127.0.0.1:5000/x/y",
            &with_digest,
            &tagged_digest,
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn refuses_what_engines_refuse() {
        for bad in [
            "",
            "UPPER",
            "ubuntU:22.04",
            "registry.io/Upper",
            "a b",
            "a:",
            ":tag",
            "a/",
            "/a",
            "a//b",
            "a_",
            "_a",
            "a___b",
            "a.-b",
            "a:.tag",
            "a:t@g",
            "a@sha256:abc",
            "a@sha256:",
            "a@",
            "-reg.io/a",
            "reg.io:port/a",
            "[::1/a",
            "a:b:c",
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check(&format!("a:{}", "t".repeat(129))).is_err());
        assert!(check(&"a".repeat(256)).is_err());
    }

    #[test]
    fn uppercase_says_lowercase() {
        assert_eq!(
            check("UPPER"),
            Err("repository names must be lowercase".into())
        );
    }
}
