//! Escape-key scanner for the interactive stdin pump.
//!
//! moat forwards the bytes read from the user's raw-mode terminal to the
//! container, except for its own escape sequence. [`Scanner`] is the pure,
//! streaming state machine that makes that decision; it does no I/O.
//!
//! # The prefix
//!
//! The prefix key is Ctrl-/. Terminals send it either as the byte
//! [`PREFIX`] (0x1f), or, with the kitty keyboard protocol, as a CSI-u
//! sequence for key 47 (`/`) with modifier 5 (Ctrl):
//!
//! | bytes            | meaning                       |
//! |------------------|-------------------------------|
//! | `ESC [47;5u`     | press                         |
//! | `ESC [47;5:1u`   | press (explicit event type)   |
//! | `ESC [47;5:2u`   | repeat                        |
//! | `ESC [47;5:3u`   | release                       |
//!
//! # Rules
//!
//! 1. A prefix press (0x1f or a kitty press) with nothing armed *arms* the
//!    scanner. Nothing is forwarded yet.
//! 2. Armed, then `k`: [`feed`](Scanner::feed) returns [`Action::Stop`].
//!    `out` holds only the bytes that came before the prefix; the `k` and
//!    every byte after it in the same read are dropped. The scanner is reset.
//! 3. Armed, then another prefix press (either form): a single literal 0x1f
//!    is forwarded and the scanner disarms.
//! 4. Armed, then a kitty *repeat* or *release* event of the prefix key:
//!    swallowed, the scanner stays armed. (Unarmed, these events are ordinary
//!    input and are forwarded unchanged.)
//! 5. Armed, then any other byte: the prefix is forwarded exactly as it
//!    arrived (0x1f, or the original kitty bytes), followed by that byte, and
//!    the scanner disarms. The byte is just forwarded, not re-examined (it
//!    can't be `k` or a prefix, those are rules 2 and 3). If the other byte is
//!    an ESC that starts some other escape sequence (e.g. an arrow key), the
//!    prefix, the ESC and the rest of that sequence are forwarded unchanged.
//! 6. Everything else is forwarded unchanged, in order.
//!
//! # Reads, held bytes and lone ESC
//!
//! Any of the above may be split across reads: an armed prefix stays armed
//! across reads, and the kitty sequences are recognised whatever the split.
//! To do that the scanner holds back bytes, with these rules:
//!
//! * Inside one read, an ESC is held only while the bytes after it still
//!   match one of the kitty sequences above; on the first mismatch the held
//!   bytes are forwarded unchanged, in order.
//! * **An ESC that is the last byte of a read is forwarded at once**, so a
//!   lone Esc key press is never delayed. (If a prefix was armed, that ESC is
//!   "another byte" in the sense of rule 5: prefix and ESC are forwarded and
//!   the scanner disarms.) The scanner remembers that it has just sent that
//!   ESC: if the next read continues it into a kitty prefix *press*, the
//!   press is still recognised and arms the scanner (so prefix+`k` still
//!   stops), but the container has already received that one ESC byte. Should
//!   the prefix then be followed by another byte, only the rest of the
//!   sequence (`[47;5u`) is forwarded, so the concatenated output is still
//!   exactly the input.
//! * A partial kitty sequence of two or more bytes (`ESC [`, `ESC [4`, …,
//!   `ESC [47;5:3`) at the end of a read is held until the next read decides
//!   it. If the next bytes don't complete it, the held bytes are forwarded
//!   unchanged, in order, before the new ones. [`Scanner::has_pending`] tells
//!   whether bytes are held; [`Scanner::flush`] releases them (call it when
//!   stdin ends, or after a timeout of your choice).
//!
//! Consequently, a byte stream containing no 0x1f and no complete sequence
//! from the table above passes through byte-for-byte unchanged: the
//! concatenation of every `out` plus a final `flush` equals the input,
//! however the stream is cut into reads. The total output is never longer
//! than the total input.
//!
//! Known limitation: a kitty *release/repeat* event split right after its
//! ESC while armed cannot be swallowed (the ESC has already gone out as
//! "another byte"); it is then forwarded faithfully and the prefix is
//! disarmed. Terminals write each key event in one `write`, so reads splitting
//! a sequence are rare and splits right after the ESC rarer still.

/// The byte terminals send for Ctrl-/ (and Ctrl-_): moat's escape prefix.
pub const PREFIX: u8 = 0x1f;

const ESC: u8 = 0x1b;

/// What the pump must do besides forwarding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The user typed prefix + `k`: stop the session.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Press,
    Repeat,
    Release,
}

/// Kitty keyboard protocol encodings of Ctrl-/. No entry is a prefix of
/// another, and no byte after the leading ESC is an ESC or 0x1f.
const KITTY: [(&[u8], Event); 4] = [
    (b"\x1b[47;5u", Event::Press),
    (b"\x1b[47;5:1u", Event::Press),
    (b"\x1b[47;5:2u", Event::Repeat),
    (b"\x1b[47;5:3u", Event::Release),
];

enum Match {
    /// A proper prefix of a kitty sequence: keep holding.
    Partial,
    Complete(Event),
    /// Can't become a kitty sequence.
    No,
}

fn classify(seq: &[u8]) -> Match {
    let mut partial = false;
    for (kitty, event) in KITTY {
        if seq == kitty {
            return Match::Complete(event);
        }
        partial |= kitty.starts_with(seq);
    }
    if partial { Match::Partial } else { Match::No }
}

/// How an armed prefix arrived, i.e. what to forward if it turns out to be
/// followed by an ordinary byte.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Armed {
    Byte,
    /// The original kitty bytes (without the ESC if that was already sent).
    Kitty(Vec<u8>),
}

/// Streaming escape-key scanner; see the [module docs](self) for the rules.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    armed: Option<Armed>,
    /// Bytes of a possible kitty sequence: empty, or ESC followed by bytes
    /// that still match one of [`KITTY`].
    pending: Vec<u8>,
    /// `pending[0]` (the ESC) has already been forwarded: it ended a read.
    esc_sent: bool,
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scan one read's bytes; append what must be forwarded to `out`; return
    /// `Some(Action::Stop)` when prefix+`k` was seen (then `out` holds only
    /// bytes before the prefix, and the scanner is reset).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<Action> {
        for &b in input {
            if let Some(action) = self.step(b, out) {
                *self = Self::default();
                return Some(action);
            }
        }
        if self.pending == [ESC] && !self.esc_sent {
            // An ESC ending a read goes out at once: a lone Esc key press
            // must not wait for the next key.
            self.forward_armed(out);
            out.push(ESC);
            self.esc_sent = true;
        }
        None
    }

    /// Release the bytes held back waiting for the next read (a partial
    /// kitty sequence), as ordinary input: if a prefix is armed, it is
    /// forwarded before them and disarmed. Call it when stdin ends. An armed
    /// prefix with nothing held after it stays armed and is not forwarded.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.release_pending(out);
    }

    /// Whether a prefix is armed (waiting for the next key).
    #[cfg(test)]
    pub fn armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Whether bytes are held back that [`flush`](Self::flush) would release.
    #[cfg(test)]
    pub fn has_pending(&self) -> bool {
        self.pending.len() > usize::from(self.esc_sent)
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> Option<Action> {
        if !self.pending.is_empty() {
            self.pending.push(b);
            match classify(&self.pending) {
                Match::Partial => return None,
                Match::Complete(event) => {
                    let seq = self.pending[usize::from(self.esc_sent)..].to_vec();
                    self.pending.clear();
                    self.esc_sent = false;
                    self.on_kitty(event, seq, out);
                    return None;
                }
                Match::No => {
                    // Only a fresh ESC can start a kitty sequence, so the
                    // held bytes can all go; `b` is examined afresh below.
                    self.pending.pop();
                    self.release_pending(out);
                }
            }
        }
        match b {
            ESC => self.pending.push(ESC),
            PREFIX => self.on_press(Armed::Byte, out),
            b'k' if self.armed.is_some() => return Some(Action::Stop),
            _ => {
                self.forward_armed(out);
                out.push(b);
            }
        }
        None
    }

    fn on_press(&mut self, form: Armed, out: &mut Vec<u8>) {
        if self.armed.take().is_some() {
            out.push(PREFIX);
        } else {
            self.armed = Some(form);
        }
    }

    fn on_kitty(&mut self, event: Event, seq: Vec<u8>, out: &mut Vec<u8>) {
        match event {
            Event::Press => self.on_press(Armed::Kitty(seq), out),
            Event::Repeat | Event::Release => {
                if self.armed.is_none() {
                    out.extend_from_slice(&seq);
                }
            }
        }
    }

    /// Forward an armed prefix as it arrived, and disarm.
    fn forward_armed(&mut self, out: &mut Vec<u8>) {
        match self.armed.take() {
            None => {}
            Some(Armed::Byte) => out.push(PREFIX),
            Some(Armed::Kitty(seq)) => out.extend_from_slice(&seq),
        }
    }

    /// The held bytes are not a kitty sequence: forward them (after an armed
    /// prefix, which they follow) and forget them.
    fn release_pending(&mut self, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            return;
        }
        self.forward_armed(out);
        out.extend_from_slice(&self.pending[usize::from(self.esc_sent)..]);
        self.pending.clear();
        self.esc_sent = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KP: &[u8] = b"\x1b[47;5u"; // kitty press
    const KP1: &[u8] = b"\x1b[47;5:1u"; // kitty press, explicit event type
    const KREP: &[u8] = b"\x1b[47;5:2u"; // kitty repeat
    const KREL: &[u8] = b"\x1b[47;5:3u"; // kitty release

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Feed each read; returns the output of each read (stopping after Stop)
    /// and whether Stop was returned.
    fn feed_each(s: &mut Scanner, reads: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
        let mut outs = Vec::new();
        for r in reads {
            let mut out = Vec::new();
            let stop = s.feed(r, &mut out);
            outs.push(out);
            if stop == Some(Action::Stop) {
                return (outs, true);
            }
        }
        (outs, false)
    }

    /// Concatenated output of all reads (no flush) and whether Stop came.
    fn run(reads: &[&[u8]]) -> (Vec<u8>, bool, Scanner) {
        let mut s = Scanner::new();
        let (outs, stop) = feed_each(&mut s, reads);
        (outs.concat(), stop, s)
    }

    /// Like `run`, plus a final flush.
    fn run_flushed(reads: &[&[u8]]) -> (Vec<u8>, bool, Scanner) {
        let (mut out, stop, mut s) = run(reads);
        s.flush(&mut out);
        (out, stop, s)
    }

    // ---- plain input ----------------------------------------------------

    #[test]
    fn plain_bytes_pass_through() {
        let (out, stop, s) = run(&[b"hello, world\r\n\x00\x7f\xff"]);
        assert_eq!(out, b"hello, world\r\n\x00\x7f\xff");
        assert!(!stop);
        assert!(!s.armed());
        assert!(!s.has_pending());
    }

    #[test]
    fn k_without_prefix_is_forwarded() {
        assert_eq!(run(&[b"kkk"]).0, b"kkk");
    }

    #[test]
    fn empty_reads_change_nothing() {
        let (out, stop, s) = run(&[b"", b"a", b"", b"\x1f", b"", b"", b"k"]);
        assert_eq!(out, b"a");
        assert!(stop);
        assert!(!s.armed());
    }

    // ---- 0x1f prefix ----------------------------------------------------

    #[test]
    fn prefix_k_stops_with_only_bytes_before_prefix() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        assert_eq!(s.feed(b"ab\x1fk", &mut out), Some(Action::Stop));
        assert_eq!(out, b"ab");
    }

    #[test]
    fn bytes_after_k_are_dropped_and_scanner_resets() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        assert_eq!(s.feed(b"ab\x1fkcd\x1f\x1b[", &mut out), Some(Action::Stop));
        assert_eq!(out, b"ab");
        assert!(!s.armed());
        assert!(!s.has_pending());
        s.flush(&mut out);
        assert_eq!(out, b"ab");
    }

    #[test]
    fn prefix_prefix_sends_one_literal() {
        let (out, stop, s) = run(&[b"a\x1f\x1fb"]);
        assert_eq!(out, b"a\x1fb");
        assert!(!stop);
        assert!(!s.armed());
    }

    #[test]
    fn literal_prefix_does_not_rearm() {
        // 0x1f 0x1f -> literal, then k is ordinary.
        assert_eq!(run(&[b"\x1f\x1fk"]).0, b"\x1fk");
        // Three prefixes: literal, then armed again.
        let (out, _, s) = run(&[b"\x1f\x1f\x1f"]);
        assert_eq!(out, b"\x1f");
        assert!(s.armed());
    }

    #[test]
    fn prefix_other_sends_both_bytes() {
        let (out, stop, s) = run(&[b"\x1fx"]);
        assert_eq!(out, b"\x1fx");
        assert!(!stop);
        assert!(!s.armed());
        // The other byte is just forwarded; a following k is ordinary.
        assert_eq!(run(&[b"\x1fxk"]).0, b"\x1fxk");
        assert_eq!(run(&[b"\x1fK"]).0, b"\x1fK");
        assert_eq!(run(&[b"\x1f\x00"]).0, b"\x1f\x00");
    }

    #[test]
    fn prefix_at_end_of_read_is_held_and_armed() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        assert_eq!(s.feed(b"ab\x1f", &mut out), None);
        assert_eq!(out, b"ab");
        assert!(s.armed());
        // flush does not release a bare armed prefix.
        s.flush(&mut out);
        assert_eq!(out, b"ab");
        assert!(s.armed());
        assert!(!s.has_pending());
    }

    #[test]
    fn prefix_split_across_reads() {
        // 0x1f | k
        let (outs, stop) = feed_each(&mut Scanner::new(), &[b"ab\x1f", b"kcd"]);
        assert!(stop);
        assert_eq!(outs, [b"ab".to_vec(), vec![]]);
        // 0x1f | 0x1f
        let (outs, stop) = feed_each(&mut Scanner::new(), &[b"\x1f", b"\x1fz"]);
        assert!(!stop);
        assert_eq!(outs, [vec![], b"\x1fz".to_vec()]);
        // 0x1f | x
        let (outs, stop) = feed_each(&mut Scanner::new(), &[b"\x1f", b"xy"]);
        assert!(!stop);
        assert_eq!(outs, [vec![], b"\x1fxy".to_vec()]);
        // armed across an empty read
        let (outs, stop) = feed_each(&mut Scanner::new(), &[b"\x1f", b"", b"k"]);
        assert!(stop);
        assert!(outs.iter().all(Vec::is_empty));
    }

    // ---- kitty prefix ---------------------------------------------------

    #[test]
    fn kitty_prefix_k_stops() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        assert_eq!(
            s.feed(&cat(&[b"ab", KP, b"kcd"]), &mut out),
            Some(Action::Stop)
        );
        assert_eq!(out, b"ab");
    }

    #[test]
    fn kitty_prefix_alone_arms_without_output() {
        let (out, stop, s) = run(&[KP]);
        assert!(out.is_empty());
        assert!(!stop);
        assert!(s.armed());
        assert!(!s.has_pending());
    }

    #[test]
    fn kitty_prefix_other_forwards_original_bytes() {
        assert_eq!(run(&[&cat(&[KP, b"x"])]).0, cat(&[KP, b"x"]));
        assert_eq!(run(&[&cat(&[KP1, b"x"])]).0, cat(&[KP1, b"x"]));
    }

    #[test]
    fn kitty_prefix_then_prefix_in_either_form_sends_0x1f() {
        assert_eq!(run(&[&cat(&[KP, b"\x1f"])]).0, b"\x1f");
        assert_eq!(run(&[&cat(&[KP, KP])]).0, b"\x1f");
        assert_eq!(run(&[&cat(&[b"\x1f", KP])]).0, b"\x1f");
        assert_eq!(run(&[&cat(&[KP, KP1])]).0, b"\x1f");
        let (out, _, s) = run(&[&cat(&[KP, KP, b"k"])]);
        assert_eq!(out, b"\x1fk");
        assert!(!s.armed());
    }

    #[test]
    fn explicit_press_event_type_is_a_press() {
        let (out, stop, _) = run(&[&cat(&[b"a", KP1, b"k"])]);
        assert_eq!(out, b"a");
        assert!(stop);
    }

    #[test]
    fn kitty_prefix_split_at_every_point_then_k() {
        for split in 1..KP.len() {
            let mut s = Scanner::new();
            let (outs, stop) = feed_each(&mut s, &[&KP[..split], &cat(&[&KP[split..], b"kzz"])]);
            assert!(stop, "split {split}");
            // An ESC ending a read is forwarded at once; otherwise nothing.
            let first: &[u8] = if split == 1 { b"\x1b" } else { b"" };
            assert_eq!(outs[0], first, "split {split}");
            assert!(outs[1].is_empty(), "split {split}");
        }
    }

    #[test]
    fn kitty_prefix_split_at_every_pair_of_points() {
        for form in [KP, KP1] {
            for i in 1..form.len() {
                for j in i..form.len() {
                    let reads: [&[u8]; 4] = [&form[..i], &form[i..j], &form[j..], b"k"];
                    let (out, stop, _) = run(&reads);
                    assert!(stop, "{i} {j}");
                    let expected: &[u8] = if i == 1 { b"\x1b" } else { b"" };
                    assert_eq!(out, expected, "{i} {j}");
                }
            }
        }
    }

    #[test]
    fn kitty_prefix_split_then_other_or_prefix() {
        for split in 1..KP.len() {
            // prefix + other: concatenated output is exactly the input.
            let (out, stop, s) = run(&[&KP[..split], &KP[split..], b"x"]);
            assert!(!stop);
            assert!(!s.armed());
            assert_eq!(out, cat(&[KP, b"x"]), "split {split}");
            // prefix + prefix: a literal 0x1f (after the ESC already sent
            // when the read ended right after it).
            let (out, _, s) = run(&[&KP[..split], &KP[split..], b"\x1f"]);
            assert!(!s.armed());
            let expected: &[u8] = if split == 1 { b"\x1b\x1f" } else { b"\x1f" };
            assert_eq!(out, expected, "split {split}");
        }
    }

    #[test]
    fn kitty_events_swallowed_while_armed_then_k() {
        for prefix in [KP, KP1, b"\x1f"] {
            let input = cat(&[b"a", prefix, KREP, KREP, KREL, b"k", b"tail"]);
            let mut s = Scanner::new();
            let mut out = Vec::new();
            assert_eq!(s.feed(&input, &mut out), Some(Action::Stop));
            assert_eq!(out, b"a");
        }
    }

    #[test]
    fn kitty_events_swallowed_while_armed_across_reads() {
        let reads: [&[u8]; 4] = [KP, KREP, KREL, b"k"];
        let (out, stop, _) = run(&reads);
        assert!(stop);
        assert!(out.is_empty());
        // Release split at every point but right after its ESC.
        for split in 2..KREL.len() {
            let (out, stop, _) = run(&[KP, &KREL[..split], &KREL[split..], b"k"]);
            assert!(stop, "split {split}");
            assert!(out.is_empty(), "split {split}");
        }
    }

    #[test]
    fn kitty_events_swallowed_then_other_byte_or_prefix() {
        assert_eq!(run(&[&cat(&[KP, KREL, b"x"])]).0, cat(&[KP, b"x"]));
        assert_eq!(run(&[&cat(&[b"\x1f", KREP, KREL, b"x"])]).0, b"\x1fx");
        assert_eq!(run(&[&cat(&[KP, KREL, KP])]).0, b"\x1f");
    }

    #[test]
    fn release_split_after_esc_while_armed_is_forwarded_faithfully() {
        // Documented limitation: the ESC ending the read goes out at once,
        // as the key after the prefix.
        let (outs, stop) = feed_each(&mut Scanner::new(), &[KP, b"\x1b", &KREL[1..], b"k"]);
        assert!(!stop);
        assert_eq!(outs.concat(), cat(&[KP, KREL, b"k"]));
        assert_eq!(outs[1], cat(&[KP, b"\x1b"]));
    }

    #[test]
    fn kitty_events_forwarded_when_not_armed() {
        let input = cat(&[b"a", KREP, KREL, b"k"]);
        let (out, stop, s) = run(&[&input]);
        assert_eq!(out, input);
        assert!(!stop);
        assert!(!s.armed());
        // After a literal, the prefix key's release is ordinary input.
        assert_eq!(run(&[&cat(&[KP, KP, KREL])]).0, cat(&[b"\x1f", KREL]));
    }

    // ---- ESC handling ---------------------------------------------------

    #[test]
    fn lone_esc_at_end_of_read_is_forwarded_at_once() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        assert_eq!(s.feed(b"\x1b", &mut out), None);
        assert_eq!(out, b"\x1b");
        assert!(!s.has_pending());
        assert_eq!(s.feed(b"a\x1b", &mut out), None);
        assert_eq!(out, b"\x1ba\x1b");
        // Not sent twice, whatever follows.
        assert_eq!(s.feed(b"x", &mut out), None);
        assert_eq!(out, b"\x1ba\x1bx");
        s.flush(&mut out);
        assert_eq!(out, b"\x1ba\x1bx");
    }

    #[test]
    fn esc_at_end_of_read_followed_by_other_sequences() {
        for rest in [
            &b"[A"[..],
            b"\x1b",
            b"\x1b[A",
            b"[47;3u",
            b"[4",
            b"\x1f",
            b"[47;5:3u",
        ] {
            let (mut out, _, mut s) = run(&[b"\x1b", rest]);
            s.flush(&mut out);
            let mut expected = vec![ESC];
            expected.extend_from_slice(rest);
            if rest == b"\x1f" {
                expected.pop(); // armed, not forwarded
                assert!(s.armed());
            }
            assert_eq!(out, expected, "{rest:?}");
        }
    }

    #[test]
    fn esc_esc_and_alt_keys_in_one_read() {
        for input in [
            &b"\x1b\x1b"[..],
            b"\x1bx",
            b"\x1b\x1b[A",
            b"\x1bk",
            b"\x1b\x1b\x1b",
        ] {
            assert_eq!(run(&[input]).0, input, "{input:?}");
        }
    }

    #[test]
    fn other_csi_sequences_pass_unchanged() {
        for seq in [
            &b"\x1b[A"[..],
            b"\x1b[1;5A",
            b"\x1b[47;3u",
            b"\x1b[47;1u",
            b"\x1b[47u",
            b"\x1b[4;5u",
            b"\x1b[47;5;47u",
            b"\x1b[47;5:4u",
            b"\x1b[47;5:3;47u",
            b"\x1b[47;55u",
            b"\x1b[470;5u",
            b"\x1bO5",
        ] {
            assert_eq!(run(&[seq]).0, seq, "{seq:?}");
            // Also split at every point.
            for split in 1..seq.len() {
                let (out, stop, s) = run_flushed(&[&seq[..split], &seq[split..]]);
                assert_eq!(out, seq, "{seq:?} split {split}");
                assert!(!stop);
                assert!(!s.armed());
            }
        }
    }

    #[test]
    fn partial_kitty_at_end_of_read_is_held_then_released() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        s.feed(b"a\x1b[", &mut out);
        assert_eq!(out, b"a");
        assert!(s.has_pending());
        s.feed(b"A", &mut out);
        assert_eq!(out, b"a\x1b[A");
        assert!(!s.has_pending());

        let mut out = Vec::new();
        s.feed(b"\x1b[47;5", &mut out);
        assert!(out.is_empty());
        s.feed(b"\x1b[47", &mut out);
        // First partial released, second held.
        assert_eq!(out, b"\x1b[47;5");
        s.flush(&mut out);
        assert_eq!(out, b"\x1b[47;5\x1b[47");
        assert!(!s.has_pending());
    }

    #[test]
    fn held_partial_after_early_esc_is_released_without_the_esc() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        s.feed(b"\x1b", &mut out);
        s.feed(b"[47", &mut out);
        assert_eq!(out, b"\x1b");
        assert!(s.has_pending());
        s.flush(&mut out);
        assert_eq!(out, b"\x1b[47");
    }

    #[test]
    fn prefix_then_esc_arrow() {
        assert_eq!(run(&[b"\x1f\x1b[A"]).0, b"\x1f\x1b[A");
        assert_eq!(run(&[b"\x1f\x1b[1;5A"]).0, b"\x1f\x1b[1;5A");
        assert_eq!(run(&[&cat(&[KP, b"\x1b[A"])]).0, cat(&[KP, b"\x1b[A"]));
        // Split: prefix | arrow, and arrow cut after "ESC [".
        assert_eq!(run(&[b"\x1f", b"\x1b[A"]).0, b"\x1f\x1b[A");
        let (outs, _) = feed_each(&mut Scanner::new(), &[b"\x1f\x1b[", b"A"]);
        assert_eq!(outs, [vec![], b"\x1f\x1b[A".to_vec()]);
        // The key after an escaped arrow is ordinary.
        let (out, stop, s) = run(&[b"\x1f\x1b[Ak"]);
        assert_eq!(out, b"\x1f\x1b[Ak");
        assert!(!stop && !s.armed());
    }

    #[test]
    fn prefix_then_lone_esc_is_forwarded_at_once() {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        s.feed(b"\x1f", &mut out);
        s.feed(b"\x1b", &mut out);
        assert_eq!(out, b"\x1f\x1b");
        assert!(!s.armed());
        s.feed(b"k", &mut out);
        assert_eq!(out, b"\x1f\x1bk");
    }

    #[test]
    fn prefix_then_partial_kitty_then_mismatch_or_flush() {
        // Armed, partial held, mismatch: prefix + held + byte, disarmed.
        let (outs, stop) = feed_each(&mut Scanner::new(), &[b"\x1f\x1b[4", b"k"]);
        assert!(!stop);
        assert_eq!(outs, [vec![], b"\x1f\x1b[4k".to_vec()]);
        // Armed, partial held, flush: prefix + held.
        let (out, _, s) = run_flushed(&[&cat(&[KP, b"\x1b[47;5:"])]);
        assert_eq!(out, cat(&[KP, b"\x1b[47;5:"]));
        assert!(!s.armed());
    }

    #[test]
    fn stop_when_prefix_was_in_previous_read_outputs_nothing_new() {
        let (outs, stop) = feed_each(&mut Scanner::new(), &[b"xy", KP, b"k\x1f"]);
        assert!(stop);
        assert_eq!(outs, [b"xy".to_vec(), vec![], vec![]]);
    }

    // ---- property-style tests -------------------------------------------

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A random byte stream biased towards ESC, `[` and kitty-ish bytes,
    /// with fragments of the kitty sequences spliced in.
    fn gen_stream(rng: &mut XorShift, allow_prefix: bool) -> Vec<u8> {
        let len = rng.below(64);
        let mut v = Vec::new();
        while v.len() < len {
            match rng.below(10) {
                0 | 1 => v.push(ESC),
                2 => v.push(b'['),
                3 => v.push(b"47;5:123uk"[rng.below(10)]),
                4 => {
                    let (kitty, _) = KITTY[rng.below(KITTY.len())];
                    v.extend_from_slice(&kitty[..=rng.below(kitty.len())]);
                }
                5 if allow_prefix => v.push(PREFIX),
                _ => v.push(rng.below(256) as u8),
            }
        }
        if !allow_prefix {
            v.retain(|&b| b != PREFIX);
        }
        v
    }

    fn contains_kitty(v: &[u8]) -> bool {
        KITTY
            .iter()
            .any(|(k, _)| v.windows(k.len()).any(|w| w == *k))
    }

    /// Random read boundaries (empty reads included).
    fn chop<'a>(rng: &mut XorShift, v: &'a [u8]) -> Vec<&'a [u8]> {
        let mut reads = Vec::new();
        let mut rest = v;
        while !rest.is_empty() {
            let n = rng.below(9).min(rest.len());
            let (a, b) = rest.split_at(n);
            reads.push(a);
            rest = b;
        }
        reads
    }

    #[test]
    fn random_streams_without_prefix_pass_through_unchanged() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut tested = 0;
        for _ in 0..20_000 {
            let input = gen_stream(&mut rng, false);
            if contains_kitty(&input) {
                continue;
            }
            tested += 1;
            let mut s = Scanner::new();
            let mut out = Vec::new();
            let mut seen = 0;
            for read in chop(&mut rng, &input) {
                assert_eq!(s.feed(read, &mut out), None, "{input:?}");
                seen += read.len();
                assert!(!s.armed());
                // Nothing lost or reordered: output so far + held == input so far.
                let mut so_far = out.clone();
                so_far.extend_from_slice(&s.pending[usize::from(s.esc_sent)..]);
                assert_eq!(so_far, input[..seen], "{input:?}");
                // An ESC ending a read has been forwarded at once.
                if read.last() == Some(&ESC) {
                    assert_eq!(out, input[..seen], "{input:?}");
                }
            }
            s.flush(&mut out);
            assert_eq!(out, input, "{input:?}");
            assert!(!s.has_pending());
        }
        assert!(tested > 15_000, "{tested}");
    }

    /// Independent whole-input model of the rules (no streaming).
    fn oracle(input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut armed: Option<&[u8]> = None;
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            let kitty = KITTY.iter().find(|(k, _)| rest.starts_with(k));
            match (armed, kitty) {
                (Some(_), Some((k, Event::Press))) => {
                    out.push(PREFIX);
                    armed = None;
                    i += k.len();
                }
                (Some(_), Some((k, _))) => i += k.len(),
                (None, Some((k, Event::Press))) => {
                    armed = Some(k);
                    i += k.len();
                }
                (None, Some((k, _))) => {
                    out.extend_from_slice(k);
                    i += k.len();
                }
                (Some(_), None) if rest[0] == PREFIX => {
                    out.push(PREFIX);
                    armed = None;
                    i += 1;
                }
                (Some(_), None) if rest[0] == b'k' => return (out, true),
                (Some(p), None) => {
                    out.extend_from_slice(p);
                    armed = None;
                }
                (None, None) if rest[0] == PREFIX => {
                    armed = Some(b"\x1f");
                    i += 1;
                }
                (None, None) => {
                    out.push(rest[0]);
                    i += 1;
                }
            }
        }
        (out, false)
    }

    #[test]
    fn random_streams_match_model_whatever_the_read_boundaries() {
        // Cutting the input into reads changes nothing, as long as no read
        // but the last ends with an ESC (that ESC is forwarded at once).
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        for _ in 0..20_000 {
            let input = gen_stream(&mut rng, true);
            let (expected, expected_stop) = oracle(&input);
            let mut reads = chop(&mut rng, &input);
            // Merge reads so that none but the last ends with ESC.
            let mut merged: Vec<Vec<u8>> = Vec::new();
            let mut cur = Vec::new();
            for r in reads.drain(..) {
                cur.extend_from_slice(r);
                if cur.last() != Some(&ESC) {
                    merged.push(std::mem::take(&mut cur));
                }
            }
            merged.push(cur);
            let reads: Vec<&[u8]> = merged.iter().map(Vec::as_slice).collect();
            let (out, stop, _) = run_flushed(&reads);
            assert_eq!(stop, expected_stop, "{input:?}");
            assert_eq!(out, expected, "{input:?} {reads:?}");
        }
    }

    #[test]
    fn random_input_never_panics_or_grows() {
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        for round in 0..20_000 {
            let input: Vec<u8> = if round % 2 == 0 {
                gen_stream(&mut rng, true)
            } else {
                (0..rng.below(64)).map(|_| rng.next() as u8).collect()
            };
            let mut s = Scanner::new();
            let mut out = Vec::new();
            let mut seen = 0;
            for read in chop(&mut rng, &input) {
                let stop = s.feed(read, &mut out);
                seen += read.len();
                assert!(out.len() <= seen, "{input:?}");
                assert!(s.pending.len() <= 10);
                if stop.is_some() {
                    assert!(!s.armed() && !s.has_pending());
                    break;
                }
            }
            s.flush(&mut out);
            assert!(out.len() <= input.len(), "{input:?}");
        }
    }
}
