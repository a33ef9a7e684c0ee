//! The dead-man's switch: a run's container never outlives the `moat run` that owns it.
//!
//! Right after a run is recorded, its owner starts `moat __watchdog RUN_ID`: the same
//! binary, in a session of its own (a SIGKILL of the owner's process group, or a closed
//! terminal, does not reach it), its stdio on `/dev/null` (it holds no pipe of the
//! caller's open, so a CI log reader still sees the end). It blocks on the run's owner
//! lock, which the kernel releases when the owner exits, however it exits. Then:
//!
//! - the record is final: the owner ended the run itself; the watchdog exits, with no
//!   engine call;
//! - it is not: the owner died without settling it (SIGKILL, the OOM killer). The
//!   watchdog stops the container at once (a short grace, then a kill), records the run
//!   `failed` with the owner's death and the command's code as the engine tells it, and
//!   removes the container unless the run keeps it ([`reconcile::owner_died`]).
//!
//! What it does not survive: a kill of everything the owner started (a cgroup kill, as
//! systemd or a container engine does). Then the run is an orphan as before, and the
//! next `moat list`, `wait`, `stop` or `clean` settles it (SPEC section 4).

use std::process::{Command, Stdio};

use super::reconcile;
use crate::error::{Error, Result};
use crate::runtime::Connections;
use crate::store::Store;

/// The hidden command the watchdog runs as.
pub const COMMAND: &str = "__watchdog";

/// Start the watchdog of run `id`, whose owner lock this process holds. A watchdog that
/// cannot start is told and the run goes on: it still ends cleanly with its owner.
pub fn spawn(id: &str) {
    let started = std::env::current_exe().and_then(|exe| {
        let mut cmd = Command::new(exe);
        cmd.args([COMMAND, id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe and touches no memory of this process.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
    });
    match started {
        // Not waited for: it outlives this process by design, and exits on its own.
        Ok(child) => log::debug!("run {id}: watchdog pid {}", child.id()),
        Err(e) => crate::term::warn(format_args!(
            "cannot start the watchdog of run {id} ({}): if moat is killed, its container \
             stays until the next moat list, stop or clean",
            crate::io_reason::io_reason(&e)
        )),
    }
}

/// `moat __watchdog RUN_ID`: wait for the owner of run `id` to go, and end the run if it
/// went without doing so. Its exit code is read by nobody; errors go to the debug log.
pub fn watch(id: &str) -> Result<i32> {
    let store = Store::open().map_err(|e| Error::failed(e.to_string()))?;
    store
        .wait_owner(id)
        .map_err(|e| Error::failed(e.to_string()))?;
    let record = store.read(id).map_err(|e| Error::failed(e.to_string()))?;
    if record.state.is_final() {
        return Ok(0);
    }
    log::debug!("run {id}: its owner died without ending it");
    reconcile::owner_died(&store, &mut Connections::default(), &record)?;
    Ok(0)
}
