//! TC-REDIS-001 as a benchmark (not a test; `scripts/bench-functions` runs it): 1000 concurrent
//! `model_upsert`, then 1000 concurrent `model_get`, with p50/p99 latency, against raw HSET/HGET
//! issued the same way on the same Redis in the same run; and rule evaluation throughput with
//! 1000 rules over 10,000 points.

use std::time::{Duration, Instant};
use voltage_tests::*;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6
}

/// Runs `n` concurrent commands built by `cmd(i)`; returns (ops/s, p50 µs, p99 µs).
async fn concurrent(env: &TestEnv, n: usize, cmd: impl Fn(usize) -> redis::Cmd) -> (f64, f64, f64) {
    let conn = env.redis().await;
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut c = conn.clone();
            let cmd = cmd(i);
            tokio::spawn(async move {
                let s = Instant::now();
                cmd.query_async::<redis::Value>(&mut c)
                    .await
                    .expect("command");
                s.elapsed()
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.push(t.await.unwrap());
    }
    let secs = t.elapsed().as_secs_f64();
    (n as f64 / secs, pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_model_functions_and_rules() {
    let env = TestEnv::new().await;
    let store = voltage_store::Store::connect(&env.redis_url, Duration::from_secs(2))
        .await
        .unwrap();
    store.load_functions().await.unwrap();
    let n = 1000;
    let model = r#"{"name":"Performance Test Model","template_id":"test_template","parameters":{"capacity":1000,"efficiency":0.95},"points":[]}"#;
    let hset = concurrent(&env, n, |i| {
        redis::cmd("HSET")
            .arg(format!("raw:model:{i}"))
            .arg("doc")
            .arg(model)
            .clone()
    })
    .await;
    let upsert = concurrent(&env, n, |i| {
        redis::cmd("FCALL")
            .arg("model_upsert")
            .arg(1)
            .arg(format!("perf_model_{i:04}"))
            .arg(model)
            .clone()
    })
    .await;
    let hget = concurrent(&env, n, |i| {
        redis::cmd("HGET")
            .arg(format!("raw:model:{i}"))
            .arg("doc")
            .clone()
    })
    .await;
    let get = concurrent(&env, n, |i| {
        redis::cmd("FCALL_RO")
            .arg("model_get")
            .arg(1)
            .arg(format!("perf_model_{i:04}"))
            .clone()
    })
    .await;
    println!("\n| operation (1000 concurrent) | ops/s | p50 µs | p99 µs | ratio to raw |\n|---|---:|---:|---:|---:|");
    println!(
        "| raw HSET (baseline) | {:.0} | {:.0} | {:.0} | 1.00 |",
        hset.0, hset.1, hset.2
    );
    println!(
        "| FCALL model_upsert | {:.0} | {:.0} | {:.0} | {:.2} |",
        upsert.0,
        upsert.1,
        upsert.2,
        upsert.0 / hset.0
    );
    println!(
        "| raw HGET (baseline) | {:.0} | {:.0} | {:.0} | 1.00 |",
        hget.0, hget.1, hget.2
    );
    println!(
        "| FCALL_RO model_get | {:.0} | {:.0} | {:.0} | {:.2} |",
        get.0,
        get.1,
        get.2,
        get.0 / hget.0
    );

    // 10,000 points in 100 channels, 1000 rules reading two points each.
    let mut c = env.redis().await;
    for ch in 0..100u32 {
        let mut p = redis::pipe();
        for pt in 0..100u32 {
            p.hset(
                format!("comsrv:{ch}:T"),
                pt,
                format!("{:.6}", (ch * 100 + pt) as f64),
            )
            .ignore();
        }
        p.query_async::<()>(&mut c).await.unwrap();
    }
    let r = {
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        rulesrv::start(store, "127.0.0.1:0".parse().unwrap(), rx)
            .await
            .unwrap()
    };
    for i in 0..1000u32 {
        let body = format!(
            r#"{{"id":"r{i}","name":"r{i}","condition":{{"expression":"comsrv:{}:T:{} > 5000 && comsrv:{}:T:{} < 9000"}},"actions":[],"interval_ms":60000}}"#,
            i % 100,
            i % 97,
            (i + 1) % 100,
            i % 89
        );
        assert_eq!(http_post(r.local_addr(), "/rules", &body).await.0, 201);
    }
    let t = Instant::now();
    for i in 0..1000u32 {
        let (code, _) = http_post(r.local_addr(), &format!("/rules/r{i}/evaluate"), "").await;
        assert_eq!(code, 200);
    }
    let secs = t.elapsed().as_secs_f64();
    println!("\n| rule evaluation | rules/s | ms per rule |\n|---|---:|---:|");
    println!("| 1000 rules over 10,000 points, via POST /rules/{{id}}/evaluate (sequential, incl. HTTP) | {:.0} | {:.2} |", 1000.0 / secs, secs * 1000.0 / 1000.0);
    r.stop().await;
}
