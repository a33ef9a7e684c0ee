//! Duration flags on arbitrary text: `time::parse_duration` and the flag parsers never
//! panic, a flag's value is never above its maximum, every error is one line naming the
//! flag, and whatever parses formats back (to the millisecond) through `format_duration`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use moat::time::{
    MAX_OLDER_THAN, MAX_STOP_TIMEOUT, MAX_TIMEOUT, format_duration, parse_duration,
    parse_flag_duration, parse_flag_seconds,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_duration(&text);
    if let Ok(d) = parsed {
        round_trips(d);
    }
    for (flag, max) in [("--timeout", MAX_TIMEOUT), ("--older-than", MAX_OLDER_THAN)] {
        let flagged = parse_flag_duration(flag, &text, max);
        check_flag(flag, max, &flagged);
        // The flag parser is parse_duration plus a maximum, nothing else.
        match (&parsed, &flagged) {
            (Ok(d), Ok(f)) => assert_eq!(d, f),
            (Ok(d), Err(e)) => assert!(*d > max, "{text:?} ({d:?}) refused: {e}"),
            (Err(_), Ok(f)) => panic!("{text:?} is a bad duration but {flag} took {f:?}"),
            (Err(_), Err(_)) => {}
        }
    }
    let secs = parse_flag_seconds("-t", &text, MAX_STOP_TIMEOUT);
    check_flag("-t", MAX_STOP_TIMEOUT, &secs);
    if let Ok(d) = secs {
        assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
        assert_eq!(d.subsec_nanos(), 0);
    }
});

fn check_flag(flag: &str, max: Duration, result: &Result<Duration, String>) {
    match result {
        Ok(d) => {
            assert!(*d <= max, "{flag} took {d:?}");
            round_trips(*d);
        }
        Err(e) => {
            assert!(e.starts_with(&format!("invalid {flag} ")), "{e}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }
}

/// `format_duration` keeps whole milliseconds, and `parse_duration` reads them back.
fn round_trips(d: Duration) {
    let text = format_duration(d);
    let ms = Duration::new(d.as_secs(), d.subsec_millis() * 1_000_000);
    assert_eq!(parse_duration(&text), Ok(ms), "{d:?} formatted as {text:?}");
}
