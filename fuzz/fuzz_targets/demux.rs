//! Docker's multiplexed stream on arbitrary bytes: the demuxer never panics, never hangs,
//! and never yields more payload than the input held.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use moat::runtime::OutputSource;
use moat::runtime::docker::demux::Demux;

/// Hands out the input a few bytes at a time, as a socket might.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(seed % 13) + 1;
    let mut demux = Demux::new(Trickle { data: input, step });
    let mut buf = vec![0u8; usize::from(seed % 7) + 1];
    let mut total = 0;
    while let Ok(Some((_, n))) = demux.next_chunk(&mut buf) {
        assert!(n > 0 && n <= buf.len());
        total += n;
    }
    assert!(total <= input.len());
});
