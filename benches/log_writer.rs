//! Throughput of the logs.jsonl writer and reader, apart from any container:
//! `cargo bench --bench log_writer`. Prints MB/s; asserts nothing.

use std::io;
use std::time::{Instant, SystemTime};

use moat::store::logs::{LogReader, LogWriter};
use moat::stream::Stream;

/// A small deterministic generator, so runs compare.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn main() {
    let mut rng = XorShift(7);
    // Typical output: lines of 0-160 printable chars, some escapes, the odd long line.
    let mut sample = Vec::new();
    while sample.len() < 8 * 1024 * 1024 {
        let n = rng.below(160);
        sample.extend((0..n).map(|_| b' ' + rng.below(95) as u8));
        if rng.below(50) == 0 {
            sample.extend_from_slice(b"\x1b[1;32m\t\"ok\"\x1b[0m");
        }
        if rng.below(2000) == 0 {
            sample.extend(std::iter::repeat_n(b'#', 200_000));
        }
        sample.push(b'\n');
    }
    let now = SystemTime::now();
    let total = 512 * 1024 * 1024;
    for (name, chunk) in [("32 KiB chunks", 32 * 1024), ("4 KiB chunks", 4096)] {
        let mut w = LogWriter::new(io::sink());
        let start = Instant::now();
        let mut done = 0;
        while done < total {
            for c in sample.chunks(chunk) {
                w.write(Stream::Stdout, c, now).expect("a sink never fails");
            }
            done += sample.len();
        }
        w.finish(now).expect("a sink never fails");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "writer, {name}: {} MiB in {secs:.2}s = {:.0} MB/s",
            done >> 20,
            done as f64 / secs / 1e6
        );
    }
    let mut log = Vec::new();
    let mut w = LogWriter::new(&mut log);
    w.write(Stream::Stdout, &sample, now)
        .expect("a Vec never fails");
    w.finish(now).expect("a Vec never fails");
    drop(w);
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..8 {
        for l in LogReader::new(&log[..]) {
            bytes += l.expect("the writer's own output parses").data.len() + 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("reader: {:.0} MB/s of output", bytes as f64 / secs / 1e6);
}
