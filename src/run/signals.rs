//! The signals thread: SIGINT, SIGTERM, SIGHUP and SIGWINCH become events on the run's
//! channel instead of killing moat, so the run is always stopped and recorded first.

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
use signal_hook::iterator::Signals;

use super::Event;

/// Start listening. From here on these signals no longer end the process by themselves.
pub fn start(events: Sender<Event>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGWINCH])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGWINCH {
                    Event::WindowChanged
                } else {
                    Event::Signal(signal)
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}
