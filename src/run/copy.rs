//! Moving a copied workspace between the host and the container: in before the command
//! starts ([`Run::copy_in`]), and back once it has ended ([`Run::copy_back`], with
//! `--copy-back`) on every ending where the container is still there: a normal exit, a
//! signal, `moat stop`, a timeout. The copy-back comes before the final record, so
//! whoever waits for the run (`moat wait`, `moat stop`) finds what it did recorded; it
//! adds only its own time to a stop.

use super::start::moat_failed;
use super::{Event, Run, Workspace};
use crate::io_reason::io_reason;
use crate::outcome::Ended;
use crate::workspace::pack::{self, Failed};
use crate::workspace::{self, CopyBack, Report};
use crate::{signal, store, term};

/// The name the workspace has at the top of the archives: the last part of its path in
/// the container, as the engine names a downloaded directory.
fn top() -> &'static str {
    workspace::TARGET.trim_start_matches('/')
}

impl Run {
    /// Copy the workspace into the created container, as a tar stream through the
    /// runtime (beside the signal handling: a large workspace takes a while). With
    /// `--copy-back`, keep what was sent for the end.
    pub(super) fn copy_in(&mut self, container: &str, ws: &Workspace) -> Result<(), Ended> {
        let (stream, packing) = pack::start(&ws.path, top(), &ws.ignore, ws.copy_back)
            .map_err(|e| moat_failed(format!("copying the workspace: {}", io_reason(&e))))?;
        let rt = self.runtime.clone();
        let id = container.to_string();
        // Into `/`: the archive holds the workspace directory itself, so nothing needs
        // to exist in the container beforehand.
        let uploaded = self.beside_stops(move || rt.upload(&id, "/", Box::new(stream)))?;
        let manifest = match (uploaded, packing.finish()) {
            // A workspace that cannot be read is the error, not the upload it cut short.
            (_, Err(Failed::Reading(why))) => Err(format!("copying the workspace: {why}")),
            (Some(Err(e)), _) => Err(e.to_string()),
            (Some(Ok(())), Ok(manifest)) => Ok(manifest),
            (Some(Ok(())), Err(Failed::Abandoned)) | (None, _) => {
                Err("copying the workspace: the upload stopped".into())
            }
        }
        .map_err(moat_failed)?;
        if let Some(manifest) = manifest {
            let back = CopyBack::new(&ws.path, top(), ws.ignore.clone(), manifest);
            self.copy_back = Some(back);
        }
        Ok(())
    }

    /// Write back what the run added or changed (`--copy-back`), if the command ran.
    /// Conflicts and skipped paths are told, a line each. A copy-back that did not finish
    /// keeps the container (the run's files are still in it) and, when the command had
    /// exited by itself, makes the run moat's failure (exit 125): the caller must not
    /// take the workspace for complete. Returns the ending and what to record.
    pub(super) fn copy_back(&mut self, ended: Ended) -> (Ended, Option<store::CopyBack>) {
        let Some(back) = self.copy_back.take() else {
            return (ended, None);
        };
        let Some(container) = self.container.clone().filter(|_| self.started) else {
            return (ended, None);
        };
        let events = &self.events;
        // A signal now ends the copy-back (every file written so far is whole).
        let mut interrupted = || {
            while let Ok(event) = events.try_recv() {
                if let Event::Signal(s) = event {
                    let name = signal::name(s).unwrap_or("a signal");
                    return Some(format!("interrupted by {name}"));
                }
            }
            None
        };
        let report = match self.runtime.download(&container, workspace::TARGET) {
            Ok(archive) => back.apply(archive, &mut interrupted),
            Err(e) => Report {
                error: Some(e.to_string()),
                ..Report::default()
            },
        };
        for path in &report.conflicts {
            term::warn(format_args!(
                "copy-back: {path} changed on the host and in the container; the host's version is kept"
            ));
        }
        for skipped in &report.skipped {
            term::warn(format_args!("copy-back: not copied back: {skipped}"));
        }
        let ended = match &report.error {
            None => ended,
            Some(why) => {
                self.keep = true;
                let error = format!(
                    "copying the workspace back: {why}; the container {} is kept with the run's files",
                    self.id
                );
                match ended {
                    Ended::Exited(code) => Ended::MoatFailed {
                        error,
                        code: Some(code),
                    },
                    other => {
                        term::warn(error);
                        other
                    }
                }
            }
        };
        let record = store::CopyBack {
            written: report.written,
            conflicts: report.conflicts,
            skipped: report.skipped,
            error: report.error,
        };
        (ended, Some(record))
    }
}
