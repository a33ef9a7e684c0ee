//! RFC 3339 on arbitrary text and arbitrary instants: `time::parse_rfc3339` and
//! `time::rfc3339_ms` never panic, and whatever parses formats to a timestamp that parses
//! back to the same instant truncated to the millisecond.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use moat::time::{parse_rfc3339, rfc3339_ms};

/// Valid timestamps to edit: random bytes rarely spell one.
const TEMPLATES: [&str; 2] = [
    "2026-11-25T08:35:18Z",
    "1999-12-31t23:59:60.123456789-23:59",
];
/// What an edit writes: mostly digits, and the separators a timestamp has.
const EDITS: &[u8] = b"0123456789012345678901234567890123456789-:.Tt Zz+";

fuzz_target!(|data: &[u8]| {
    for text in [String::from_utf8_lossy(data).into_owned(), edited(data)] {
        if let Some(t) = parse_rfc3339(&text) {
            round_trips(t);
        }
    }
    // The same bytes as an instant: seconds either side of the epoch, and nanoseconds.
    if let Some(t) = instant(data) {
        round_trips(t);
    }
});

/// A template with bytes replaced: each pair of input bytes is (position, edit).
fn edited(data: &[u8]) -> String {
    let Some((&which, edits)) = data.split_first() else {
        return String::new();
    };
    let mut text = TEMPLATES[usize::from(which) % TEMPLATES.len()]
        .as_bytes()
        .to_vec();
    for pair in edits.chunks_exact(2) {
        let at = usize::from(pair[0]) % text.len();
        text[at] = EDITS[usize::from(pair[1]) % EDITS.len()];
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn instant(data: &[u8]) -> Option<SystemTime> {
    let secs = i64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let nanos = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?) % 1_000_000_000;
    let d = Duration::new(secs.unsigned_abs(), nanos);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// `t` formatted and parsed back is `t` floored to the millisecond; only years 0000-9999
/// fit the four digits a timestamp has, so the others need only format without a panic.
fn round_trips(t: SystemTime) {
    let text = rfc3339_ms(t);
    if text.len() != 24 || !text.as_bytes()[0].is_ascii_digit() {
        return;
    }
    let back = parse_rfc3339(&text).unwrap_or_else(|| panic!("{text:?} does not parse"));
    assert_eq!(rfc3339_ms(back), text);
    assert!(back <= t, "{text}: {back:?} > {t:?}");
    let lost = t.duration_since(back).expect("back <= t");
    assert!(lost < Duration::from_millis(1), "{text}: {lost:?} lost");
}
