//! How a piece of output is stored in a record: as the text of a JSON string when it is
//! UTF-8, else as base64 (standard alphabet, with padding); and base64's way back.

use std::ops::Not;

/// Whether every byte is printable ASCII other than `"` and `\\`: valid UTF-8 that goes
/// into a JSON string as is. No early exit, so the compiler can do it many bytes at a time.
pub(super) fn is_plain_ascii(s: &[u8]) -> bool {
    s.iter()
        .fold(false, |bad, &b| {
            bad | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
        })
        .not()
}

/// For each byte: 0 if it goes into a JSON string as is, `u` if it is written as `\u00XX`,
/// else the letter that follows the backslash.
static JSON_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Append the valid UTF-8 `s` as the inside of a JSON string (what serde_json would write).
pub(super) fn escape_json(buf: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let e = JSON_ESCAPE[b as usize];
        if e == 0 {
            continue;
        }
        buf.extend_from_slice(&s[start..i]);
        if e == b'u' {
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]);
        } else {
            buf.extend_from_slice(&[b'\\', e]);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
}

const B64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static B64_DECODE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 64 {
        t[B64_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

pub(super) fn b64_encode(out: &mut Vec<u8>, data: &[u8]) {
    let a = |n: u32| B64_ALPHABET[(n & 63) as usize];
    out.reserve(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[a(n >> 18), a(n >> 12), a(n >> 6), a(n)]);
    }
    match *chunks.remainder() {
        [x] => {
            let n = u32::from(x) << 16;
            out.extend_from_slice(&[a(n >> 18), a(n >> 12), b'=', b'=']);
        }
        [x, y] => {
            let n = u32::from(x) << 16 | u32::from(y) << 8;
            out.extend_from_slice(&[a(n >> 18), a(n >> 12), a(n >> 6), b'=']);
        }
        _ => {}
    }
}

pub(super) fn b64_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(4) {
        return Err(format!("length {} is not a multiple of 4", s.len()));
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let quads = s.len() / 4;
    for (q, c) in s.chunks_exact(4).enumerate() {
        let pad = if q + 1 == quads {
            c.iter().rev().take_while(|&&b| b == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return Err("too much padding".to_string());
        }
        let mut n: u32 = 0;
        for (j, &b) in c[..4 - pad].iter().enumerate() {
            let v = B64_DECODE[b as usize];
            if v == 0xFF {
                return Err(format!("invalid character at offset {}", q * 4 + j));
            }
            n |= u32::from(v) << (18 - 6 * j);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::logs::LogWriter;
    use crate::store::logs::tests::{T0, records, t0, text, write_all};
    use crate::stream::Stream;

    #[test]
    fn base64_known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            b64_encode(&mut out, plain.as_bytes());
            assert_eq!(text(&out), enc);
            assert_eq!(b64_decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
        let mut out = Vec::new();
        b64_encode(&mut out, &[0xFB, 0xFF, 0xBF]);
        assert_eq!(text(&out), "+/+/");
    }

    #[test]
    fn base64_round_trips_all_bytes_and_lengths() {
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for len in 0..300 {
            let data = &all[len % 7..len % 7 + len];
            let mut enc = Vec::new();
            b64_encode(&mut enc, data);
            assert_eq!(enc.len(), len.div_ceil(3) * 4);
            assert_eq!(b64_decode(&enc).unwrap(), data);
        }
    }

    #[test]
    fn base64_rejects_bad_input() {
        for bad in [
            "Zg",
            "Zg=",
            "Z===",
            "====",
            "Zg==Zg==",
            "Zm9v!A==",
            "Zm 9",
            "Zm=v",
            "Zm9vYmFy=",
            "é===",
        ] {
            assert!(b64_decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn escapes_json() {
        let input = "q\"b\\s/\t\n".as_bytes();
        let mut w = LogWriter::new(Vec::new());
        w.write(Stream::Stdout, input, t0()).unwrap();
        w.write(
            Stream::Stdout,
            "c\x00\x01\x08\x0b\x0c\r\x1b[1m\x1f\x7f é ✓ 😀 \u{2028}\n".as_bytes(),
            t0(),
        )
        .unwrap();
        let log = w.into_inner();
        let want = concat!(
            r#""line":"q\"b\\s/\t"}"#,
            "\n",
            r#""line":"c\u0000\u0001\b\u000b\f\r\u001b[1m\u001f"#,
            "\x7f é ✓ 😀 \u{2028}\"}\n",
        );
        let got = text(&log);
        let stripped: String = got
            .lines()
            .map(|l| &l[l.find("\"line\"").unwrap()..])
            .flat_map(|l| [l, "\n"])
            .collect();
        assert_eq!(stripped, want);
        // serde_json agrees on every byte below 0x80.
        let all: Vec<u8> = (0..0x80u8).filter(|&b| b != b'\n').collect();
        let mut w = LogWriter::new(Vec::new());
        w.write(Stream::Stderr, &all, t0()).unwrap();
        w.write(Stream::Stderr, b"\n", t0()).unwrap();
        let mine = w.into_inner();
        let theirs = format!(
            "{{\"ts\":\"{T0}\",\"stream\":\"stderr\",\"line\":{}}}\n",
            serde_json::to_string(std::str::from_utf8(&all).unwrap()).unwrap()
        );
        assert_eq!(text(&mine), theirs);
        assert_eq!(records(&mine)[0].data, all);
    }

    #[test]
    fn invalid_utf8_becomes_b64() {
        let log = write_all(&[(Stream::Stdout, b"ab\xffcd\n\xc3\n\xc3\xa9\n")]);
        let t = text(&log);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].ends_with(r#""b64":"YWL/Y2Q="}"#), "{}", lines[0]);
        assert!(lines[1].ends_with(r#""b64":"ww=="}"#), "{}", lines[1]);
        assert!(lines[2].ends_with(r#""line":"é"}"#), "{}", lines[2]);
        let recs = records(&log);
        assert_eq!(recs[0].data, b"ab\xffcd");
        assert_eq!(recs[1].data, b"\xc3");
    }
}
