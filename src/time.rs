//! Timestamps and durations without a date crate: RFC 3339 (UTC, milliseconds) formatting and
//! parsing, `--timeout` / `--older-than` style durations, and compact human ages for listings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// `t` as RFC 3339 in UTC with millisecond precision, e.g. `2026-11-25T08:35:18.123Z`.
/// Sub-millisecond precision is truncated (floored), also before 1970.
pub fn rfc3339_ms(t: SystemTime) -> String {
    let ms = unix_nanos(t).div_euclid(1_000_000);
    let secs = ms.div_euclid(1000) as i64;
    let milli = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// The current time as [`rfc3339_ms`] formats it.
pub fn now_rfc3339() -> String {
    rfc3339_ms(SystemTime::now())
}

/// Parse an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
/// Accepts what [`rfc3339_ms`] writes, any number of fractional digits (kept to the
/// nanosecond), a lowercase `t`/`z` or a space as the date/time separator, and any offset.
/// A leap second (`:60`) is accepted and counts as the first second of the next minute.
/// Returns `None` for anything else, including impossible dates like Feb 30.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }

    let mut i = 19;
    let mut frac_ns: i128 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        let mut scale = 100_000_000;
        while i < b.len() && b[i].is_ascii_digit() {
            frac_ns += i128::from(b[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_secs: i64 = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let secs = days * SECS_PER_DAY + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    from_unix_nanos(i128::from(secs) * NANOS_PER_SEC + frac_ns)
}

/// Parse a duration such as `90s`, `5m`, `2h`, `7d`, `1h30m`, `500ms` or `1.5h`; a bare number
/// means seconds. Units: `ms`, `s`, `m`, `h`, `d`. Components add up (`1h30m`). Exact to the
/// nanosecond; a value past what a `Duration` holds is an error, never a wrapped number.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration(s).map_err(|why| format!("invalid duration {s:?}: {why}"))
}

/// The longest `--timeout`: a year. A run meant to outlive that is a service, not a run, and
/// a larger number is a typo that would otherwise read as "no limit".
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * SECS_PER_DAY as u64);
/// The longest stop grace (`run --stop-timeout`, `stop -t`): a day. The engine takes it as an
/// int of seconds, and a command that needs more than a day to shut down should be killed.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(SECS_PER_DAY as u64);
/// The longest `clean --older-than`: 100 years (of 365.25 days). No run is that old, so a
/// larger value can only be a mistake.
pub const MAX_OLDER_THAN: Duration = Duration::from_secs(36_525 * SECS_PER_DAY as u64);

/// A duration flag's value (see [`parse_duration`]), at most `max`. The error names `flag`.
pub fn parse_flag_duration(flag: &str, value: &str, max: Duration) -> Result<Duration, String> {
    duration(value)
        // Past a Duration is past `max` too: say what the flag takes.
        .map_err(|why| {
            if why == TOO_LARGE {
                too_large(max)
            } else {
                why
            }
        })
        .and_then(|d| at_most(d, max))
        .map_err(|why| format!("invalid {flag} {value:?}: {why}"))
}

/// A flag's value in whole seconds (`10`), at most `max`. The error names `flag`.
pub fn parse_flag_seconds(flag: &str, value: &str, max: Duration) -> Result<Duration, String> {
    let bad = |why: String| format!("invalid {flag} {value:?}: {why}");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a whole number of seconds".into()));
    }
    let too_large = || bad(format!("too large; at most {} seconds", max.as_secs()));
    // Only digits: the one way the parse can fail is a number past u64.
    let secs = value.parse::<u64>().map_err(|_| too_large())?;
    if secs > max.as_secs() {
        return Err(too_large());
    }
    Ok(Duration::from_secs(secs))
}

fn at_most(d: Duration, max: Duration) -> Result<Duration, String> {
    if d > max { Err(too_large(max)) } else { Ok(d) }
}

fn too_large(max: Duration) -> String {
    format!("too large; at most {}", format_duration(max))
}

const TOO_LARGE: &str = "too large";

/// [`parse_duration`] without the value in its error.
fn duration(s: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a number with a unit ms, s, m, h or d, like 90s or 5m";
    let t = s.trim();
    if t.is_empty() {
        return Err(EXPECTED.into());
    }
    if t.starts_with('-') {
        return Err("must not be negative".into());
    }
    let b = t.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0; // nanoseconds
    while i < b.len() {
        // number: digits, optionally followed by '.' and more digits
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == int_start {
            return Err(EXPECTED.into());
        }
        let int_digits = &b[int_start..i];
        let mut frac_digits: &[u8] = &[];
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac_start {
                return Err(EXPECTED.into());
            }
            frac_digits = &b[frac_start..i];
        }
        // unit: a run of letters
        let unit_start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ns: u128 = match &t[unit_start..i] {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            "" if int_start == 0 && i == b.len() => 1_000_000_000, // bare number: seconds
            "" if i < b.len() => return Err(EXPECTED.into()),
            "" => return Err(format!("missing unit at the end; {EXPECTED}")),
            other => {
                return Err(format!(
                    "unknown unit {other:?}; expected ms, s, m, h or d, like 90s or 5m"
                ));
            }
        };
        let part = component_ns(int_digits, frac_digits, unit_ns).ok_or(TOO_LARGE)?;
        total = total.checked_add(part).ok_or(TOO_LARGE)?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| TOO_LARGE)?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// `INT.FRAC` units of `unit_ns` nanoseconds each, in nanoseconds; `None` past u128. The
/// fraction is truncated to the nanosecond.
fn component_ns(int_digits: &[u8], frac_digits: &[u8], unit_ns: u128) -> Option<u128> {
    let int = int_digits.iter().try_fold(0u128, |n, &d| {
        n.checked_mul(10)?.checked_add(u128::from(d - b'0'))
    })?;
    // Digits past the 18th are below a nanosecond for any unit: ignore them. 18 digits
    // times the largest unit stays far below u128::MAX, so this part cannot overflow.
    let kept = &frac_digits[..frac_digits.len().min(18)];
    let frac = kept
        .iter()
        .fold(0u128, |n, &d| n * 10 + u128::from(d - b'0'));
    let frac_ns = frac * unit_ns / 10u128.pow(kept.len() as u32);
    int.checked_mul(unit_ns)?.checked_add(frac_ns)
}

/// A compact human form that [`parse_duration`] reads back: `1m30s`, `2h`, `1d2h`, `500ms`,
/// `0s`. Precision below a millisecond is dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, len) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        let n = ms / len;
        ms %= len;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    out
}

/// How long ago `since` was at `now`, in its largest whole unit: `5s`, `3m`, `2h`, `4d`.
/// A `since` in the future gives `0s`.
pub fn age(since: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(since).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Nanoseconds since the Unix epoch, negative before it.
fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn from_unix_nanos(ns: i128) -> Option<SystemTime> {
    let abs = ns.unsigned_abs();
    let d = Duration::new(
        u64::try_from(abs / NANOS_PER_SEC as u128).ok()?,
        (abs % NANOS_PER_SEC as u128) as u32,
    );
    if ns >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// ASCII decimal digits to a number; `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, ms: u64) -> SystemTime {
        let base = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        base + Duration::from_millis(ms)
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(at(1_795_595_718, 123)),
            "2026-11-25T08:35:18.123Z"
        );
        assert_eq!(rfc3339_ms(at(951_782_400, 0)), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(at(1_709_164_800, 999)),
            "2024-02-29T00:00:00.999Z"
        );
        assert_eq!(rfc3339_ms(at(4_107_456_000, 0)), "2100-02-28T00:00:00.000Z");
        assert_eq!(rfc3339_ms(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(at(253_402_300_799, 999)),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_ms(at(-1, 999)), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_ms(at(-2_203_891_200, 0)),
            "1900-03-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_ms(at(-2_203_977_600, 0)),
            "1900-02-28T00:00:00.000Z"
        );
    }

    #[test]
    fn truncates_below_a_millisecond() {
        let t = at(0, 5) + Duration::from_nanos(999_999);
        assert_eq!(rfc3339_ms(t), "1970-01-01T00:00:00.005Z");
        let t = UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(rfc3339_ms(t), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn year_and_leap_boundaries() {
        assert_eq!(rfc3339_ms(at(946_684_799, 999)), "1999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(at(946_684_800, 0)), "2000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(at(1_798_761_599, 0)), "2026-12-31T23:59:59.000Z");
        assert_eq!(rfc3339_ms(at(1_798_761_600, 0)), "2027-01-01T00:00:00.000Z");
        // 2024 is a leap year: Feb 29 exists, Mar 1 follows it.
        assert_eq!(rfc3339_ms(at(1_709_251_199, 0)), "2024-02-29T23:59:59.000Z");
        assert_eq!(rfc3339_ms(at(1_709_251_200, 0)), "2024-03-01T00:00:00.000Z");
        // 2023 is not.
        assert_eq!(rfc3339_ms(at(1_677_628_800, 0)), "2023-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(at(1_677_628_799, 0)), "2023-02-28T23:59:59.000Z");
    }

    #[test]
    fn civil_days_round_trip_and_are_consecutive() {
        let mut prev = civil_from_days(-800_000);
        for z in -799_999..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            let (py, pm, pd) = prev;
            if d == 1 {
                assert_eq!(pd, days_in_month(py, pm));
                if m == 1 {
                    assert_eq!((py + 1, pm), (y, 12));
                } else {
                    assert_eq!((py, pm + 1), (y, m));
                }
            } else {
                assert_eq!((py, pm, pd + 1), (y, m, d));
            }
            prev = (y, m, d);
        }
    }

    #[test]
    fn parse_round_trips_what_we_write() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // From 1900 to about 2250, in milliseconds.
            let ms = (x % 11_000_000_000_000) as i64 - 2_208_988_800_000;
            let t = at(ms.div_euclid(1000), ms.rem_euclid(1000) as u64);
            let s = rfc3339_ms(t);
            assert_eq!(parse_rfc3339(&s), Some(t), "{s}");
        }
    }

    #[test]
    fn parse_accepts_variants() {
        let t = at(1_795_595_718, 0);
        assert_eq!(parse_rfc3339("2026-11-25T08:35:18Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-25t08:35:18z"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-25 08:35:18Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-25T08:35:18+00:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-25T08:35:18-00:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-25T10:05:18+01:30"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-24T23:35:18-09:00"), Some(t));
        assert_eq!(
            parse_rfc3339("2026-11-25T08:35:18.5Z"),
            Some(t + Duration::from_millis(500))
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T08:35:18.123456789Z"),
            Some(t + Duration::from_nanos(123_456_789))
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T08:35:18.1234567891Z"),
            Some(t + Duration::from_nanos(123_456_789))
        );
        // Offsets crossing a year boundary.
        assert_eq!(
            parse_rfc3339("2027-01-01T01:00:00+02:00"),
            Some(at(1_798_761_600 - 3600, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00Z"),
            Some(at(1_709_208_000, 0))
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(at(-1, 999)));
        // Leap second rolls into the next minute.
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            Some(at(1_483_228_800, 0))
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "",
            "2026-11-25",
            "2026-11-25T08:35:18",
            "2026-11-25T08:35:18.Z",
            "2026-11-25T08:35:18.123",
            "2026-11-25T08:35:18ZZ",
            "2026-11-25T08:35:18+0000",
            "2026-11-25T08:35:18+24:00",
            "2026-11-25T08:35:18+01:60",
            "2026-13-25T08:35:18Z",
            "2026-00-25T08:35:18Z",
            "2026-11-00T08:35:18Z",
            "2026-11-31T08:35:18Z",
            "2023-02-29T08:35:18Z",
            "2100-02-29T08:35:18Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T08:60:00Z",
            "2026-11-25T08:35:61Z",
            "2026/11/25T08:35:18Z",
            "2026-11-25X08:35:18Z",
            "+026-11-25T08:35:18Z",
            "2026-11-25T08:35:18Z ",
            "2026-11-25T08:35:1éZ",
            "२०२६-11-25T08:35:18Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn parses_durations() {
        let ok = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        assert_eq!(ok("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1d2h3m4s5ms"), Duration::from_millis(93_784_005));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok(" 90 "), Duration::from_secs(90));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2.5"), Duration::from_millis(2500));
        assert_eq!(ok("0.001s"), Duration::from_millis(1));
        assert_eq!(ok("1.5ms"), Duration::from_micros(1500));
        assert_eq!(ok("0.0000000000000000000001d"), Duration::ZERO);
        assert_eq!(ok("007s"), Duration::from_secs(7));
        assert_eq!(ok("18446744073709551615s"), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn rejects_bad_durations() {
        let err = |s: &str| parse_duration(s).expect_err(s);
        assert_eq!(
            err("x"),
            "invalid duration \"x\": expected a number with a unit ms, s, m, h or d, like 90s or 5m"
        );
        assert!(err("").contains("expected a number"));
        assert!(err("   ").contains("expected a number"));
        assert!(err("-5s").contains("must not be negative"));
        assert!(err("-5").contains("must not be negative"));
        assert!(err("5y").contains("unknown unit \"y\""));
        assert!(err("5S").contains("unknown unit"));
        assert!(err("5sec").contains("unknown unit"));
        assert!(err("1h30").contains("missing unit"));
        assert!(err("h").contains("expected a number"));
        assert!(err("1.s").contains("expected a number"));
        assert!(err(".5s").contains("expected a number"));
        assert!(err("1 h").contains("expected a number"));
        assert!(err("1h 30m").contains("expected a number"));
        assert!(err("+5s").contains("expected a number"));
        assert!(err("5s!").contains("expected a number"));
        assert!(err("١s").contains("expected a number"));
        assert!(err("18446744073709551616s").contains("too large"));
        assert!(err("999999999999999999999999999999999999999999d").contains("too large"));
        assert!(err("213503982334602d").contains("too large"));
    }

    #[test]
    fn huge_durations_are_errors_not_wrapped() {
        // Before: the fraction was added unchecked, and this wrapped to about 20 hours.
        let e = parse_duration("3938453320844195178974243.99999d").expect_err("wrapped");
        assert!(e.contains("too large"), "{e}");
        for s in [
            "340282366920938463463374607431768211456ms", // u128::MAX + 1
            "3938453320844195178974244d",
            "18446744073709551615s1s",
            "18446744073709551615.5s0.5s",
            "1d18446744073709551615s",
        ] {
            assert!(parse_duration(s).expect_err(s).contains("too large"), "{s}");
        }
        // The largest Duration still parses, exactly.
        assert_eq!(
            parse_duration("18446744073709551615.999999999s"),
            Ok(Duration::MAX)
        );
    }

    #[test]
    fn fractions_are_exact() {
        let ok = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("0.1s"), Duration::from_millis(100));
        assert_eq!(ok("0.3d"), Duration::from_secs(25_920));
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        assert_eq!(ok("1.0000000019s"), Duration::new(1, 1));
        assert_eq!(
            ok("0.999999999999999999999m"),
            Duration::new(59, 999_999_999)
        );
        assert_eq!(ok("1.5d1.5h"), Duration::from_secs(86_400 + 43_200 + 5400));
    }

    #[test]
    fn flag_durations_have_a_maximum_and_name_the_flag() {
        let year = 365 * 86_400;
        assert_eq!(
            parse_flag_duration("--timeout", "365d", MAX_TIMEOUT),
            Ok(Duration::from_secs(year))
        );
        assert_eq!(
            parse_flag_duration("--timeout", "366d", MAX_TIMEOUT),
            Err("invalid --timeout \"366d\": too large; at most 365d".into())
        );
        assert_eq!(
            parse_flag_duration("--timeout", "364.99999d1ms", MAX_TIMEOUT).map(|d| d < MAX_TIMEOUT),
            Ok(true)
        );
        for v in [
            "3938453320844195178974243.99999d",
            "99999999999999999999999999999999999999999d",
            "18446744073709551616",
            "365d1ms",
        ] {
            let e = parse_flag_duration("--timeout", v, MAX_TIMEOUT).expect_err(v);
            assert!(e.starts_with("invalid --timeout "), "{e}");
            assert!(e.ends_with("too large; at most 365d"), "{e}");
        }
        let e = parse_flag_duration("--older-than", "7y", MAX_OLDER_THAN).expect_err("7y");
        assert!(
            e.starts_with("invalid --older-than \"7y\": unknown unit"),
            "{e}"
        );
        assert_eq!(
            parse_flag_duration("--older-than", "36525d", MAX_OLDER_THAN),
            Ok(MAX_OLDER_THAN)
        );
        assert!(parse_flag_duration("--older-than", "36526d", MAX_OLDER_THAN).is_err());
    }

    #[test]
    fn flag_seconds_are_whole_and_bounded() {
        let secs = |v: &str| parse_flag_seconds("--stop-timeout", v, MAX_STOP_TIMEOUT);
        assert_eq!(secs("0"), Ok(Duration::ZERO));
        assert_eq!(secs("10"), Ok(Duration::from_secs(10)));
        assert_eq!(secs("86400"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            secs("86401"),
            Err("invalid --stop-timeout \"86401\": too large; at most 86400 seconds".into())
        );
        for v in [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert!(
                secs(v)
                    .expect_err(v)
                    .ends_with("too large; at most 86400 seconds"),
                "{v}"
            );
        }
        for v in ["", "-1", "+5", "1.5", "10s", " 10", "١"] {
            let e = secs(v).expect_err(v);
            assert!(
                e.ends_with("expected a whole number of seconds"),
                "{v}: {e}"
            );
        }
        let e = parse_flag_seconds("-t", "x", MAX_STOP_TIMEOUT).expect_err("x");
        assert_eq!(e, "invalid -t \"x\": expected a whole number of seconds");
    }

    #[test]
    fn formats_durations() {
        let f = |ms: u64| format_duration(Duration::from_millis(ms));
        assert_eq!(f(90_000), "1m30s");
        assert_eq!(f(7_200_000), "2h");
        assert_eq!(f(500), "500ms");
        assert_eq!(f(0), "0s");
        assert_eq!(f(1_500), "1s500ms");
        assert_eq!(f(86_400_000 + 7_200_000), "1d2h");
        assert_eq!(f(7 * 86_400_000), "7d");
        assert_eq!(f(93_784_005), "1d2h3m4s5ms");
        assert_eq!(format_duration(Duration::from_micros(999)), "0s");
        assert_eq!(format_duration(Duration::from_micros(1_999)), "1ms");
    }

    #[test]
    fn format_then_parse_round_trips() {
        let mut x: u64 = 12345;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = Duration::from_millis(x % 100_000_000_000);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        let big = Duration::from_millis(u64::MAX);
        assert_eq!(parse_duration(&format_duration(big)), Ok(big));
    }

    #[test]
    fn ages() {
        let now = at(1_795_595_718, 0);
        let ago = |secs: u64| age(now - Duration::from_secs(secs), now);
        assert_eq!(ago(0), "0s");
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(59), "59s");
        assert_eq!(ago(60), "1m");
        assert_eq!(ago(3 * 60 + 59), "3m");
        assert_eq!(ago(3599), "59m");
        assert_eq!(ago(3600), "1h");
        assert_eq!(ago(2 * 3600 + 3599), "2h");
        assert_eq!(ago(86_399), "23h");
        assert_eq!(ago(86_400), "1d");
        assert_eq!(ago(4 * 86_400 + 86_399), "4d");
        assert_eq!(ago(400 * 86_400), "400d");
        assert_eq!(age(now - Duration::from_millis(1999), now), "1s");
        assert_eq!(age(now + Duration::from_secs(30), now), "0s");
    }

    #[test]
    fn now_is_well_formed() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 24);
        let t = parse_rfc3339(&s).unwrap();
        assert_eq!(rfc3339_ms(t), s);
    }
}
