//! `.moatignore` on arbitrary patterns and paths: parsing and matching never panic (nor
//! blow up on backtracking), an error is one line naming its line, a hidden path is
//! always excluded, and the walk's pruning is sound: below an excluded directory that no
//! `!` pattern may reach into, everything is excluded too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::workspace::Ignore;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Patterns, then a NUL, then paths a line each.
    let (patterns, paths) = text.split_once('\0').unwrap_or((&text, "a/b/c"));
    let mut ignore = match Ignore::parse(patterns) {
        Ok(i) => i,
        Err(e) => {
            assert!(e.starts_with("line "), "{e}");
            assert!(!e.contains('\n') || patterns.contains('\r'), "{e:?}");
            return;
        }
    };
    for path in paths.lines().filter(|p| !p.is_empty()).take(16) {
        let excluded = ignore.excludes(path);
        if excluded && !ignore.may_include_below(path) {
            for child in ["x", "x/y", ".hidden"] {
                let below = format!("{path}/{child}");
                assert!(ignore.excludes(&below), "{below:?} escapes {path:?}");
            }
        }
    }
    if let Some(path) = paths.lines().find(|p| !p.is_empty()) {
        ignore.hide(path);
        assert!(ignore.excludes(path), "hidden {path:?} is not excluded");
        assert!(ignore.excludes(&format!("{path}/below")));
    }
});
