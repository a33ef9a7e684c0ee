//! The `moat` binary: parse, dispatch, turn the result into an exit code.

use std::process::ExitCode;

use moat::{cli, logger};

fn main() -> ExitCode {
    logger::init();
    let code = match cli::main(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("moat: {e}");
            if let Some(command) = e.usage_of {
                if command == "moat" {
                    eprintln!("Run 'moat --help' for usage.");
                } else {
                    eprintln!("Run 'moat {command} --help' for usage.");
                }
            }
            e.code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
