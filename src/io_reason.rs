//! An I/O error's reason as a user reads it. Every layer (store, runtimes, the command
//! line) reports I/O failures with it, so it lives at the bottom of the graph.

/// The error's text without Rust's `(os error N)` suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
