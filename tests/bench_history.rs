//! History benchmark (not a test; `scripts/bench-history` runs it): replay of a one-hour
//! backlog from the log into a real influxd, against POSTing the same line protocol directly in
//! the same run; and the log's append rate per fsync policy.

use std::time::{Duration, Instant};
use voltage_tests::influx::Influxd;
use voltage_tests::*;
use voltage_wal::{Fsync, Record, Wal, WalConfig};

const POINTS: u64 = 100;
const SECONDS: u64 = 3600;
const BATCH: usize = 5000;

fn record(i: u64, base_ns: i64) -> Record {
    Record {
        ts_ns: base_ns + (i / POINTS) as i64 * 1_000_000_000,
        channel: 1,
        kind: b'T',
        point: (i % POINTS) as u32,
        value: (i % 977) as f64 * 0.25,
    }
}

#[tokio::test]
#[ignore]
async fn bench_history_replay_and_log_append() {
    let n = POINTS * SECONDS;
    let base_ns = (now_ms() as i64 - SECONDS as i64 * 1000 - 60_000) * 1_000_000;
    let influx = Influxd::start().await;
    influx.query("", "CREATE DATABASE raw").await;
    influx.query("", "CREATE DATABASE ems").await;

    // Baseline: the same line protocol, POSTed directly in batches of 5000.
    let mut body = String::new();
    let t = Instant::now();
    for i in 0..n {
        hissrv::line_protocol(&record(i, base_ns), &mut body);
        if (i + 1) % BATCH as u64 == 0 || i + 1 == n {
            let (code, _) =
                http_request(influx.port, "POST", "/write?db=raw&precision=ns", &body).await;
            assert_eq!(code, 204);
            body.clear();
        }
    }
    let raw = n as f64 / t.elapsed().as_secs_f64();

    // The backlog in the log, then hissrv replays it.
    let env = TestEnv::new().await;
    env.write(
        "comsrv/comsrv.yaml",
        "channels:\n  - {id: 1, name: h, protocol: virtual}\n",
    );
    env.write(
        "hissrv/hissrv.yaml",
        &format!("influxdb: {{url: \"{}\", api: v1, database: ems, batch_size: {BATCH}, replay_points_per_s: 100000000}}\nwal: {{dir: wal, max_bytes: 67108864, fsync: never}}\n", influx.url()),
    );
    {
        let mut c = WalConfig::new(env.path().join("wal"));
        c.fsync = Fsync::Never;
        let (mut w, _) = Wal::open(c).unwrap();
        let mut batch = Vec::with_capacity(BATCH);
        for i in 0..n {
            batch.push(record(i, base_ns));
            if batch.len() == BATCH {
                w.append(&batch).unwrap();
                batch.clear();
            }
        }
        w.append(&batch).unwrap();
        w.sync().unwrap();
    }
    let t = Instant::now();
    let h = env.start_hissrv().await;
    let backlog = || async { http_get(h.local_addr(), "/status").await.1 };
    assert!(
        wait_until(Duration::from_secs(600), backlog, |b| b
            .contains(&format!("\"sent_points\":{n}")))
        .await,
        "replay did not finish"
    );
    let replay = n as f64 / t.elapsed().as_secs_f64();
    h.stop().await;
    let count = influx
        .query("ems", "SELECT count(value) FROM telemetry")
        .await;
    let stored = count["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(stored, n, "every point of the backlog is in InfluxDB");

    println!("\n| what | points/s | ratio |\n|---|---:|---:|");
    println!("| raw line-protocol POST, batches of {BATCH} (baseline) | {raw:.0} | 1.00 |");
    println!(
        "| hissrv replay of a 1 h backlog ({n} points) from the log | {replay:.0} | {:.2} |",
        replay / raw
    );

    println!("\n| log append, batches of 100 | records/s | fsyncs/s |\n|---|---:|---:|");
    for (name, f) in [
        ("fsync never", Fsync::Never),
        (
            "fsync interval 1 s",
            Fsync::Interval(Duration::from_secs(1)),
        ),
        ("fsync always", Fsync::Always),
    ] {
        let d = tempfile::tempdir().unwrap();
        let mut c = WalConfig::new(d.path());
        c.fsync = f;
        c.max_bytes = 1 << 30;
        let (mut w, _) = Wal::open(c).unwrap();
        let batch: Vec<Record> = (0..100).map(|i| record(i, base_ns)).collect();
        let t = Instant::now();
        let mut k = 0u64;
        while t.elapsed() < Duration::from_secs(2) {
            w.append(&batch).unwrap();
            k += 100;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "| {name} | {:.0} | {:.0} |",
            k as f64 / s,
            w.syncs() as f64 / s
        );
    }
}
