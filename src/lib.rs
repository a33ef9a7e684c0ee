//! moat: run one command in a fresh container, own its whole life, and tell the truth
//! about how it ended.
//!
//! The binary's `main` only calls [`cli::main`]. The modules are public so fuzz targets and
//! benchmarks can reach the pure parts (escape scanner, stream demuxer, record readers).

pub mod cli;
pub mod config;
pub mod digest;
pub mod error;
pub mod image;
pub mod io_reason;
pub mod logger;
pub mod outcome;
pub mod own_binary;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod signal;
pub mod store;
pub mod stream;
pub mod term;
pub mod time;
pub mod workspace;
