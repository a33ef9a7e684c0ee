//! Recorded text made safe to print on a terminal: a command, an image or a directory name
//! comes from a record anyone could have written, and a control character in it would act
//! on the terminal (`\e]0;pwned\a` retitles it) instead of being seen.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (and every invisible bidirectional override)
/// written out as an escape: `\e`, `\a`, `\x07`-style for other C0 codes and DEL,
/// `\u{9b}`-style beyond ASCII. Text without any is returned as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\x1b' => out.push_str("\\e"),
            '\x07' => out.push_str("\\a"),
            c if needs_escape(c) && c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // Bidirectional overrides and isolates reorder what follows them on screen.
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(printable("echo \x1b]0;pwned\x07"), "echo \\e]0;pwned\\a");
        assert_eq!(
            printable("a\tb\nc\rd\x7f\x00"),
            "a\\x09b\\x0ac\\x0dd\\x7f\\x00"
        );
        assert_eq!(printable("\u{9b}31m \u{202e}x"), "\\u{9b}31m \\u{202e}x");
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            printable("sh -c 'ls -l' é 日本"),
            Cow::Borrowed(_)
        ));
    }
}
