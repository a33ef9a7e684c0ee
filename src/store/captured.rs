//! How much of a run's output its `logs.jsonl` holds, stream by stream: where a later
//! capture takes up (the output a run wrote after its `moat run` died).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::logs::Records;
use super::{Error, Result, Store};
use crate::stream::Stream;

/// Bytes of each stream that `logs.jsonl` holds (joined, with their newlines).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    pub stdout: u64,
    pub stderr: u64,
    pub tty: u64,
}

impl Captured {
    pub fn of(&mut self, stream: Stream) -> &mut u64 {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
            Stream::Tty => &mut self.tty,
        }
    }
}

impl Store {
    /// What the run's log holds. A log that does not exist holds nothing; a torn last
    /// record (its writer died mid-write) counts for nothing.
    pub fn captured(&self, id: &str) -> Result<Captured> {
        let path = self.logs_path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Captured::default()),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), &e)),
        };
        let mut captured = Captured::default();
        for record in Records::new(BufReader::new(file)).flatten() {
            let newline = u64::from(!record.partial && record.eol);
            *captured.of(record.stream) += record.data.len() as u64 + newline;
        }
        Ok(captured)
    }

    /// Open the run's log to append more records after what it holds. A last record
    /// without its newline (torn when its writer died) is ended first, so it stays one
    /// unreadable line and does not swallow the next record.
    pub fn append_log(&self, id: &str) -> Result<File> {
        let mut file = self.open_log(id)?;
        let path = self.logs_path(id);
        let what = || format!("appending to {}", path.display());
        let len = file.metadata().map_err(|e| Error::io(what(), &e))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            let mut reader = File::open(&path).map_err(|e| Error::io(what(), &e))?;
            reader
                .seek(SeekFrom::Start(len - 1))
                .and_then(|_| reader.read_exact(&mut last))
                .map_err(|e| Error::io(what(), &e))?;
            if last[0] != b'\n' {
                io::Write::write_all(&mut file, b"\n").map_err(|e| Error::io(what(), &e))?;
            }
        }
        Ok(file)
    }
}
