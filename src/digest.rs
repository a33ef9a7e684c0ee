//! The hex SHA-256 of some bytes: how moat names things by their content (a context's
//! directory, an image's recipe, an agent's state per workspace).

/// The hex SHA-256 of `parts` fed one after another, cut to its first `bytes` bytes
/// (twice as many hex digits).
pub fn sha256_hex(parts: &[&[u8]], bytes: usize) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let digest = ctx.finish();
    digest
        .as_ref()
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digests() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(super::sha256_hex(&[], 32), empty);
        assert_eq!(
            super::sha256_hex(&[b"ab", b"c"], 32),
            super::sha256_hex(&[b"abc"], 32)
        );
        assert_eq!(super::sha256_hex(&[], 6), &empty[..12]);
    }
}
