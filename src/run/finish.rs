//! The run's end: copy the workspace back (`--copy-back`), write the final record (the
//! outcome decides its state and `moat run`'s exit code), give the terminal back, remove
//! the container once, and say what needs saying.

use super::Run;
use crate::error::{Error, Result};
use crate::outcome::{Ended, StopReason};
use crate::runtime::ErrorKind;
use crate::store::Record;
use crate::{term, time};

impl Run {
    /// Write the final record, then clean up (once); returns `moat run`'s exit code.
    pub(super) fn finish(mut self, ended: Ended) -> Result<i32> {
        let (ended, copied_back) = self.copy_back(ended);
        let error = match &ended {
            Ended::MoatFailed { error, .. } | Ended::CouldNotRun { error, .. } => {
                Some(error.clone()).filter(|_| !self.error_told)
            }
            _ => None,
        };
        let now = time::now_rfc3339();
        let logs_incomplete = self.logs_incomplete.take();
        let written = self.store.update(&self.id, |r| {
            r.logs_incomplete = r.logs_incomplete.take().or(logs_incomplete.clone());
            if copied_back.is_some() {
                r.copy_back = copied_back.clone();
            }
            r.finish(ended.clone(), now.clone());
            true
        });
        log::debug!("final record written");
        // The terminal comes back before anything else is printed.
        term::restore_now();
        let record = match written {
            Ok(record) => record,
            Err(e) => {
                // The ending is known here even if it cannot be written: moat exits with
                // it. The container stays, so the next moat command that looks at the run
                // finds it ended and records the truth.
                term::warn(format_args!(
                    "{e}; the run's container is kept for the next moat command to settle"
                ));
                let mut record = self
                    .store
                    .read(&self.id)
                    .map_err(|e| Error::moat(e.to_string()))?;
                record.finish(ended, now);
                return Ok(self.exit_code(&record, error));
            }
        };
        self.store.release_reserve(&self.id);
        // A lost engine is the run's own error, told below; one line is enough.
        let tell = |e: crate::runtime::Error| {
            let engine_lost = matches!(e.kind, ErrorKind::Unreachable | ErrorKind::ConnectionLost);
            if !(engine_lost && error.is_some()) {
                term::warn(e);
            }
        };
        let container = self.container.take();
        let remove_container = || match &container {
            Some(container) if !self.keep => self.runtime.remove(container),
            _ => Ok(()),
        };
        // The sandbox goes with its run; its network stays while a kept container is on it.
        let (removed, sandbox_ended) = match self.sandbox.take() {
            Some(sandbox) => {
                let keep_network = container.is_some() && self.keep;
                let (removed, ended) = sandbox.end(&*self.runtime, keep_network, remove_container);
                (removed, Some(ended))
            }
            None => (remove_container(), None),
        };
        if let Err(e) = removed {
            tell(e);
        }
        if let Some(Err(e)) = sandbox_ended {
            tell(e);
        }
        log::debug!("cleaned up");
        Ok(self.exit_code(&record, error))
    }

    /// Tell what is left to tell, and return the exit code the final record says.
    fn exit_code(&self, record: &Record, error: Option<String>) -> i32 {
        if let Some(error) = error {
            term::warn(error);
        }
        if record.stop_reason == Some(StopReason::Escape) {
            term::notice(format_args!("Run {} stopped", record.id));
        }
        record
            .moat_exit_code
            .expect("a finished record has moat's exit code")
    }
}
