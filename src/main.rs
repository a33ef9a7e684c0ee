//! The `moat` binary: parse, dispatch, turn the result into an exit code. This is the one
//! place an error becomes an exit code and a line on stderr.

use std::io::Write;
use std::process::ExitCode;

use moat::error::Kind;
use moat::{cli, logger};

fn main() -> ExitCode {
    logger::init();
    let code = match cli::main(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            if !e.is_quiet() {
                let mut text = format!("moat: {e}\n");
                if let Kind::Usage(command) = e.kind {
                    if command == "moat" {
                        text.push_str("Run 'moat --help' for usage.\n");
                    } else {
                        text.push_str(&format!("Run 'moat {command} --help' for usage.\n"));
                    }
                }
                // A stderr nobody reads cannot be told anything; the exit code still is.
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            e.exit_code()
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
