//! The run's end: write the final record (the outcome decides its state and `moat run`'s
//! exit code), give the terminal back, remove the container once, and say what needs
//! saying.

use super::Run;
use crate::error::{Error, Result};
use crate::outcome::{Ended, StopReason};
use crate::runtime::ErrorKind;
use crate::{term, time};

impl Run {
    /// Write the final record, then clean up (once); returns `moat run`'s exit code.
    pub(super) fn finish(mut self, ended: Ended) -> Result<i32> {
        let error = match &ended {
            Ended::MoatFailed { error, .. } | Ended::CouldNotRun { error, .. } => {
                Some(error.clone()).filter(|_| !self.error_told)
            }
            _ => None,
        };
        let now = time::now_rfc3339();
        let record = self.store.update(&self.id, |r| {
            r.finish(ended, now);
            true
        });
        log::debug!("final record written");
        // The terminal comes back before anything else is printed.
        term::restore_now();
        if let Some(container) = self.container.take()
            && !self.keep
            && let Err(e) = self.runtime.remove(&container)
        {
            // A lost engine is the run's own error, told below; one line is enough.
            let engine_lost = matches!(e.kind, ErrorKind::Unreachable | ErrorKind::ConnectionLost);
            if !(engine_lost && error.is_some()) {
                term::warn(e);
            }
        }
        log::debug!("cleaned up");
        let record = record.map_err(|e| Error::moat(e.to_string()))?;
        if let Some(error) = error {
            term::warn(error);
        }
        if record.stop_reason == Some(StopReason::Escape) {
            term::notice(format_args!("Run {} stopped", record.id));
        }
        Ok(record
            .moat_exit_code
            .expect("a finished record has moat's exit code"))
    }
}
