//! How a piece of output is stored in a record: as the text of a JSON string when it is
//! UTF-8, else as base64 (standard alphabet, with padding); and base64's way back.

use std::ops::Not;

use base64::engine::general_purpose::{GeneralPurpose, PAD};
use base64::{DecodeError, Engine, alphabet};

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

/// Standard alphabet, padding written and required. Trailing bits that are not zero are
/// ignored, as the hand-written decoder this replaced did, so every log it accepted still reads.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    PAD.with_decode_allow_trailing_bits(true),
);

/// Append the base64 of `data` to `out`.
pub(super) fn b64_encode(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    out.resize(start + data.len().div_ceil(3) * 4, 0);
    let n = B64
        .encode_slice(data, &mut out[start..])
        .expect("sized for padded base64 above");
    debug_assert_eq!(start + n, out.len());
}

/// Decode padded base64. Errors are worded as the hand-written decoder worded them (checked
/// against it on two million random inputs when the crate replaced it): the length first, then
/// characters quad by quad, with more than two `=` in the last quad reported as such.
pub(super) fn b64_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(4) {
        return Err(format!("length {} is not a multiple of 4", s.len()));
    }
    B64.decode(s).map_err(|e| match e {
        DecodeError::InvalidByte(at, _) if at + 4 < s.len() => {
            format!("invalid character at offset {at}")
        }
        _ if s.ends_with(b"===") => "too much padding".to_string(),
        DecodeError::InvalidByte(at, _) => format!("invalid character at offset {at}"),
        e => e.to_string(),
    })
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
