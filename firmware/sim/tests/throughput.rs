//! Throwaway load measurement, ignored by default. Run with
//! `cargo test --release -p voltage-sim --test throughput -- --ignored --nocapture`
//! (env: SIM_BENCH_CONNS, SIM_BENCH_SECS). Client and server share the machine,
//! so the figure is a lower bound for the simulator alone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voltage_sim::{Bank, SimServer};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load measurement; run explicitly"]
async fn requests_per_second() {
    let conns = env_or("SIM_BENCH_CONNS", 64);
    let secs = env_or("SIM_BENCH_SECS", 5);
    let bank = Bank::new();
    for unit in 1..=100u8 {
        bank.set_holdings(unit, 0, &[unit.into(); 100]);
    }
    let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), bank.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let unit = (i % 100 + 1) as u8;
            // FC3, 10 registers from address 0.
            let mut req = [0, 0, 0, 0, 0, 6, unit, 3, 0, 0, 0, 10];
            let mut resp = [0u8; 9 + 20];
            let mut tid: u16 = 0;
            while !stop.load(Ordering::Relaxed) {
                tid = tid.wrapping_add(1);
                req[..2].copy_from_slice(&tid.to_be_bytes());
                s.write_all(&req).await.unwrap();
                s.read_exact(&mut resp).await.unwrap();
                assert_eq!(&resp[..2], &tid.to_be_bytes());
                assert_eq!(resp[10], unit, "value of first register");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // warm-up
    let (n0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (n1, dt) = (done.load(Ordering::Relaxed), t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    server.stop().await;
    let rate = (n1 - n0) as f64 / dt.as_secs_f64();
    println!(
        "{conns} connections: {rate:.0} requests/s ({} total handled)",
        bank.requests()
    );
    assert!(rate > 1000.0, "implausibly slow: {rate:.0}/s");
}
