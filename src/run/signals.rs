//! The signals thread: every signal that would end moat, and SIGWINCH, becomes an event on
//! the run's channel instead, so the run is always stopped, recorded and cleaned up first.

use crossbeam_channel::Sender;
use signal_hook::consts::SIGWINCH;
use signal_hook::iterator::Signals;

use super::Event;
use crate::signal::TERMINATING;

/// Start listening. From here on these signals no longer end the process by themselves.
pub fn start(events: Sender<Event>) -> std::io::Result<()> {
    let mut wanted: Vec<i32> = TERMINATING.iter().map(|(n, _)| *n).collect();
    wanted.push(SIGWINCH);
    let mut signals = Signals::new(wanted)?;
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
