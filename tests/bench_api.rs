//! API latency benchmark (not a test; `scripts/bench-api` runs it in release): requests at a
//! fixed rate (open loop: latency counts from the scheduled send time, so a slow answer cannot
//! hide the queue behind it) through the gateway, and the same requests straight to the
//! service in the same run as the baseline; p50/p99/max and the gateway's overhead ratio, plus
//! the daemon's CPU and RSS over the run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use voltage_tests::daemon::{create_token, Daemon};
use voltage_tests::*;

const RATE: u64 = 500; // requests per second
const SECONDS: u64 = 10;
const CONNECTIONS: usize = 16;

/// One keep-alive HTTP/1.1 connection; returns the body length of each answer.
struct Conn {
    r: BufReader<tokio::net::TcpStream>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            r: BufReader::new(s),
        }
    }

    async fn get(&mut self, path: &str, auth: &str) -> u16 {
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n");
        self.r.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).await.unwrap();
        let code: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).await.unwrap();
        code
    }
}

struct Result {
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
}

/// RATE requests/s for SECONDS over CONNECTIONS connections (each request on the next free one).
async fn run(addr: SocketAddr, path: &str, token: &str) -> Result {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(100_000);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let rx = rx.clone();
        let (path, auth) = (path.to_string(), auth.clone());
        workers.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            let mut out = Vec::new();
            loop {
                let Some(due) = rx.lock().await.recv().await else {
                    return out;
                };
                let code = c.get(&path, &auth).await;
                out.push((due.elapsed(), code));
            }
        }));
    }
    let t0 = Instant::now();
    for i in 0..RATE * SECONDS {
        let due = t0 + Duration::from_micros(i * 1_000_000 / RATE);
        tokio::time::sleep_until(due.into()).await;
        tx.send(due).await.unwrap();
    }
    drop(tx);
    let mut lat = Vec::new();
    let mut errors = 0;
    for w in workers {
        for (d, code) in w.await.unwrap() {
            if code != 200 {
                errors += 1;
            }
            lat.push(d);
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Result {
        p50: pct(0.50),
        p99: pct(0.99),
        max: *lat.last().unwrap(),
        errors,
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kib / 1024.0
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_api_latency_at_a_fixed_rate() {
    let env = TestEnv::new().await;
    env.write(
        "comsrv/comsrv.yaml",
        "channels:\n  - {id: 1, name: v, protocol: virtual, parameters: {poll_interval_ms: 1000}}\n",
    );
    let rows: String = (1..=100).map(|i| format!("{i},p{i}\n")).collect();
    env.write(
        "comsrv/1/telemetry.csv",
        &format!("point_id,signal_name\n{rows}"),
    );
    let maps: String = (1..=100)
        .map(|i| format!("{i},constant,value={i}\n"))
        .collect();
    env.write(
        "comsrv/1/mapping/telemetry_mapping.csv",
        &format!("point_id,pattern,params\n{maps}"),
    );
    let token = create_token(&env, "operator", "bench");
    let d = Daemon::start(&env, &[]).await;
    let pid = d.child.id().unwrap();
    env.wait_value("comsrv:1:T", "100", "100.000000", Duration::from_secs(10))
        .await;
    for i in 0..50 {
        let a = format!(
            r#"{{"title":"bench {i}","description":"d","level":"Warning","source":"bench","metadata":{{}}}}"#
        );
        assert_eq!(
            d.call("POST", "/alarmsrv/alarms", Some(&token), &a).await.0,
            201
        );
    }
    let gw = d.gateway();
    let at = |svc: &str| SocketAddr::from(([127, 0, 0, 1], d.port(svc)));
    let cases: [(&str, &str, SocketAddr, &str); 3] = [
        ("health (all services)", "/health", at("comsrv"), "/health"),
        (
            "point read (100 points)",
            "/comsrv/channels/1/points",
            at("comsrv"),
            "/channels/1/points",
        ),
        (
            "alarm list (50 alarms)",
            "/alarmsrv/alarms?limit=50",
            at("alarmsrv"),
            "/alarms?limit=50",
        ),
    ];
    let hz = 100.0; // USER_HZ: the unit of /proc/PID/stat's CPU times on Linux
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    let mut rss_max: f64 = rss_mib(pid);
    println!(
        "| request | rate/s | gateway p50 ms | p99 ms | max ms | errors | direct p50 ms | direct p99 ms | ratio p50 (gateway/direct) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, via_gw, direct, direct_path) in cases {
        let g = run(gw, via_gw, &token).await;
        rss_max = rss_max.max(rss_mib(pid));
        let b = run(direct, direct_path, &token).await;
        println!(
            "| {name} | {RATE} | {} | {} | {} | {} | {} | {} | {:.2} |",
            ms(g.p50),
            ms(g.p99),
            ms(g.max),
            g.errors + b.errors,
            ms(b.p50),
            ms(b.p99),
            g.p50.as_secs_f64() / b.p50.as_secs_f64()
        );
    }
    let cpu = (cpu_ticks(pid) - c0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "| daemon over the run | | CPU {cpu:.1} % of one core | RSS max {rss_max:.1} MiB | | | | | |"
    );
    println!(
        "| (baseline for /health: comsrv's own health; the gateway's asks all 5 services and Redis in parallel) | | | | | | | | |"
    );
    assert!(d.stop().await.success());
}
