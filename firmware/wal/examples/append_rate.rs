//! Appends per second on this machine's disk, per fsync policy, in batches of 100 records (the
//! figure behind the default `Interval(1 s)`: `Always` pays one disk flush per batch).
//!
//! `TMPDIR=<a directory on the disk to measure> cargo run -p voltage-wal --release --example
//! append_rate [seconds per policy]`

use std::time::{Duration, Instant};
use voltage_wal::{Fsync, Record, Wal, WalConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let batch: Vec<Record> = (0..100)
        .map(|i| Record {
            ts_ns: 1_700_000_000_000_000_000 + i,
            channel: 1001,
            kind: b'T',
            point: i as u32,
            value: i as f64 * 0.25,
        })
        .collect();
    println!("| fsync, batches of 100 | appends/s | records/s | fsyncs/s | bytes/record |");
    println!("|---|---:|---:|---:|---:|");
    for (name, fsync) in [
        ("never", Fsync::Never),
        ("interval 1 s", Fsync::Interval(Duration::from_secs(1))),
        ("always", Fsync::Always),
    ] {
        let dir = tempfile::tempdir()?;
        let mut cfg = WalConfig::new(dir.path());
        cfg.fsync = fsync;
        cfg.max_bytes = 1 << 30;
        let (mut wal, _) = Wal::open(cfg)?;
        let t = Instant::now();
        let mut appends = 0u64;
        while t.elapsed() < Duration::from_secs(secs) {
            wal.append(&batch)?;
            appends += 1;
        }
        let s = t.elapsed().as_secs_f64();
        let records = appends * 100;
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.1} |",
            appends as f64 / s,
            records as f64 / s,
            wal.syncs() as f64 / s,
            wal.stats().bytes as f64 / records as f64
        );
    }
    Ok(())
}
