//! The escape scanner on arbitrary keystrokes split into arbitrary reads: it never panics,
//! never forwards more than it got, and passes through untouched any input that holds no
//! prefix (0x1f) and nothing of the kitty prefix form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::term::escape::Scanner;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read sizes (1..=16), the rest is the input.
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut scanner = Scanner::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut step = usize::from(seed % 16) + 1;
    let mut stopped = false;
    while pos < input.len() {
        let end = (pos + step).min(input.len());
        if scanner.feed(&input[pos..end], &mut out).is_some() {
            stopped = true;
            break;
        }
        pos = end;
        step = (step * 7 + 3) % 16 + 1;
    }
    if !stopped {
        scanner.flush(&mut out);
    }
    assert!(out.len() <= input.len());
    let has_prefix = input.contains(&0x1f) || input.windows(5).any(|w| w == b"[47;5");
    if !has_prefix {
        assert_eq!(out, input);
    }
});
