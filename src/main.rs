//! moat: run one command in a fresh container, own its whole life, and tell the truth
//! about how it ended.

mod cli;
mod error;
mod logger;
mod run;
mod runtime;
mod store;
mod stream;
mod term;
mod time;

use std::process::ExitCode;

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
