//! hissrv and netsrv against real peers: TC-HISSRV-001 with InfluxDB 1.x (plain, and with
//! authentication and gzip), the v2 API on VictoriaMetrics, the local-log fallback, refused
//! batches, and netsrv's HTTP sink.

use std::time::Duration;
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

/// TC-HISSRV-001: values in Redis are collected into InfluxDB (queried back with InfluxQL), and
/// the history API answers from it.
#[tokio::test]
async fn tc_hissrv_001_historical_data_collection() {
    let env = TestEnv::new().await;
    let influx = voltage_tests::influx::Influxd::start().await;
    influx.query("", "CREATE DATABASE ems").await;
    history_config(&env, 1001, Some((&influx.url(), "ems")), 200);
    let t0 = now_ms() - 1000;
    put_reading(&env, 1001, 1, 100.5, t0).await;
    put_reading(&env, 1001, 2, 85.25, t0).await;
    put_reading(&env, 1001, 3, 1.0, t0).await;
    let h = env.start_hissrv().await;
    let q = "SELECT value FROM telemetry WHERE channel_id = '1001' AND point_id = '1' AND time >= now() - 5m";
    let mut got = Vec::new();
    assert!(
        wait_until(
            Duration::from_secs(10),
            || influx.values("ems", q),
            |v| {
                got = v.clone();
                !v.is_empty()
            }
        )
        .await,
        "point 1 never reached InfluxDB"
    );
    assert_eq!(
        got,
        vec![(t0 as i64 * 1_000_000, 100.5)],
        "value and the reading's own timestamp"
    );
    let all = influx
        .values(
            "ems",
            "SELECT value FROM telemetry WHERE channel_id = '1001' AND time >= now() - 5m",
        )
        .await;
    assert_eq!(all.len(), 3);
    let (code, body) = http_get(
        h.local_addr(),
        "/data/telemetry?channel_id=1001&point_id=2&duration=5m",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["value"], 85.25);
    assert_eq!(v[0]["time"], t0);
    let (code, body) = http_get(h.local_addr(), "/data/telemetry?channel_id=1001&point_id=x").await;
    assert_eq!(code, 400);
    assert!(body.contains("point_id"), "{body}");
    h.stop().await;
}

/// Without InfluxDB the history comes from the local log (the embedded default).
#[tokio::test]
async fn history_without_influxdb_is_served_from_the_local_log() {
    let env = TestEnv::new().await;
    history_config(&env, 7, None, 50);
    let h = env.start_hissrv().await;
    let t0 = now_ms() - 10_000;
    for i in 0..5u64 {
        put_logged(&env, h.local_addr(), 7, 1, i as f64 * 1.5, t0 + i * 1000).await;
    }
    let mut body = String::new();
    assert!(
        wait_until(
            T,
            || http_get(
                h.local_addr(),
                "/data/telemetry?channel_id=7&point_id=1&duration=1m"
            ),
            |(_, b)| {
                body = b.clone();
                serde_json::from_str::<serde_json::Value>(b)
                    .map(|v| v.as_array().map(|a| a.len()) == Some(5))
                    .unwrap_or(false)
            }
        )
        .await,
        "{body}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got: Vec<(u64, f64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["time"].as_u64().unwrap(), r["value"].as_f64().unwrap()))
        .collect();
    let want: Vec<(u64, f64)> = (0..5u64).map(|i| (t0 + i * 1000, i as f64 * 1.5)).collect();
    assert_eq!(got, want, "oldest first, with the readings' timestamps");
    h.stop().await;
}

/// A model source records the model's points through its mapping, under the comsrv points they
/// map to, and only the points it names; the model is created after hissrv started (sources
/// follow models as they come and change).
#[tokio::test]
async fn a_model_source_records_its_mapped_points() {
    let env = TestEnv::new().await;
    env.write(
        "comsrv/comsrv.yaml",
        "channels:\n  - {id: 8, name: pcs, protocol: virtual}\n",
    );
    env.write(
        "hissrv/hissrv.yaml",
        "sources:\n  - {model: pcs_8, points: [dc_voltage], interval_ms: 50}\nwal: {dir: wal, max_bytes: 8388608, fsync: always}\n",
    );
    let h = env.start_hissrv().await;
    let t0 = now_ms() - 10_000;
    put_reading(&env, 8, 1, 750.5, t0).await; // dc_voltage
    put_reading(&env, 8, 2, 12.0, t0).await; // power: in the model, not in the source
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        logged(h.local_addr()).await,
        0,
        "no model yet, nothing recorded"
    );
    let model = r#"{"name":"PCS 8","points":{"dc_voltage":{"mapping":"comsrv:8:T:1","unit":"V"},"power":{"mapping":"comsrv:8:T:2"}}}"#;
    let _: String = redis::cmd("FCALL")
        .arg("model_upsert")
        .arg(1)
        .arg("pcs_8")
        .arg(model)
        .query_async(&mut env.redis().await)
        .await
        .expect("model_upsert");
    assert!(
        wait_until(T, || logged(h.local_addr()), |n| *n == 1).await,
        "the model's dc_voltage is recorded once the model exists"
    );
    put_logged(&env, h.local_addr(), 8, 1, 751.25, t0 + 1000).await;
    let (_, body) = http_get(
        h.local_addr(),
        "/data/telemetry?channel_id=8&point_id=1&duration=1m",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![750.5, 751.25], "{body}");
    let (_, body) = http_get(
        h.local_addr(),
        "/data/telemetry?channel_id=8&point_id=2&duration=1m",
    )
    .await;
    assert_eq!(body.trim(), "[]", "power is not a point of the source");
    h.stop().await;
}

/// The v2 write API (`/api/v2/write?org=&bucket=`, `Authorization: Token`) against a real
/// VictoriaMetrics, which accepts it (it proves the request shape and delivery).
#[tokio::test]
async fn hissrv_writes_through_the_influxdb_v2_api() {
    let env = TestEnv::new().await;
    let port = voltage_tests::free_port();
    let data = tempfile::tempdir().unwrap();
    let _vm = tokio::process::Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", data.path().display()))
        .arg("-search.latencyOffset=0s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("victoria-metrics runs (scripts/test installs it)");
    let up = || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    };
    assert!(
        wait_until(Duration::from_secs(10), up, |u| *u).await,
        "victoria-metrics did not start"
    );
    history_config(&env, 41, None, 50);
    env.write(
        "hissrv/hissrv.yaml",
        &format!(
            "influxdb: {{url: \"http://127.0.0.1:{port}\", api: v2, org: site, bucket: ems, token: secret, flush_interval_ms: 100}}\nsources:\n  - {{channel: 41, types: [T], interval_ms: 50}}\nwal: {{dir: wal, max_bytes: 8388608}}\n"
        ),
    );
    let h = env.start_hissrv().await;
    let t0 = now_ms() - 5_000;
    put_reading(&env, 41, 9, 42.25, t0).await;
    let export = || async move {
        http_request(port, "GET", "/api/v1/export?match[]=telemetry_value", "")
            .await
            .1
    };
    let mut body = String::new();
    assert!(
        wait_until(Duration::from_secs(15), export, |b| {
            body = b.clone();
            b.contains("42.25")
        })
        .await,
        "not delivered: {body:?}"
    );
    assert!(
        body.contains("\"channel_id\":\"41\"") && body.contains("\"point_id\":\"9\""),
        "{body}"
    );
    assert!(
        body.contains(&t0.to_string()),
        "original timestamp (ms in VictoriaMetrics): {body}"
    );
    h.stop().await;
}

/// A batch InfluxDB refuses with 400 (a field type conflict) is logged, counted and skipped,
/// not retried forever: later samples still arrive.
#[tokio::test]
async fn a_batch_influxdb_rejects_is_counted_and_skipped() {
    let env = TestEnv::new().await;
    let influx = voltage_tests::influx::Influxd::start().await;
    influx.query("", "CREATE DATABASE ems").await;
    // `value` becomes an integer field of the measurement in the current shard: float writes
    // to the same shard now conflict.
    let line = format!(
        "telemetry,channel_id=42,point_id=1 value=1i {}",
        (now_ms() - 3000) * 1_000_000
    );
    let (code, _) = http_request(influx.port, "POST", "/write?db=ems", &line).await;
    assert_eq!(code, 204);
    history_config(&env, 42, Some((&influx.url(), "ems")), 50);
    let h = env.start_hissrv().await;
    put_reading(&env, 42, 1, 1.5, now_ms() - 1000).await;
    let status = || async { http_get(h.local_addr(), "/status").await.1 };
    let mut s = String::new();
    assert!(
        wait_until(Duration::from_secs(10), status, |b| {
            s = b.clone();
            b.contains("\"rejected_points\":1")
        })
        .await,
        "{s}"
    );
    assert!(
        s.contains("field type conflict"),
        "the server's reason is kept: {s}"
    );
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    let sink = v["log"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sink"] == "influxdb")
        .unwrap()
        .clone();
    assert_eq!(
        sink["records"], 0,
        "the cursor moved past the rejected batch"
    );
    h.stop().await;
}

/// netsrv's HTTP sink POSTs log batches as JSON and retries a batch the endpoint refused.
#[tokio::test]
async fn netsrv_http_sink_posts_batches_and_retries_refused_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let b2 = bodies.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let k = s.read(&mut chunk).await.unwrap_or(0);
                if k == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break Some(rest[..len].to_string());
                    }
                }
            };
            // The first request is refused: the batch must come again.
            let status = if n == 1 {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            if n > 1 {
                if let Some(b) = body {
                    b2.lock().unwrap().push(b);
                }
            }
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    history_config(&env, 51, None, 50);
    env.write(
        "netsrv/netsrv.yaml",
        &format!(
            "device_id: site-9\nhttp: {{url: \"http://127.0.0.1:{port}/ingest\", batch_size: 3}}\n"
        ),
    );
    let (h, n) = env.start_history_and_net().await;
    let t0 = now_ms() - 30_000;
    for i in 0..7u64 {
        put_logged(&env, h.local_addr(), 51, 3, i as f64, t0 + i * 1000).await;
    }
    let values = || {
        let mut v: Vec<(u64, f64)> = Vec::new();
        for b in bodies.lock().unwrap().iter() {
            let j: serde_json::Value = serde_json::from_str(b).unwrap();
            assert_eq!(j["device_id"], "site-9");
            for p in j["points"].as_array().unwrap() {
                v.push((p["seq"].as_u64().unwrap(), p["value"].as_f64().unwrap()));
            }
        }
        v
    };
    assert!(
        wait_until(
            Duration::from_secs(15),
            || async { values().len() },
            |n| *n >= 7
        )
        .await,
        "{:?}",
        values()
    );
    let got = values();
    assert_eq!(
        got.iter().map(|p| p.1).collect::<Vec<_>>(),
        (0..7).map(|i| i as f64).collect::<Vec<_>>(),
        "all, in order, after the refused batch was sent again"
    );
    let (_, st) = http_get(n.local_addr(), "/status").await;
    assert!(st.contains("\"failures\":1"), "{st}");
    h.stop().await;
    n.stop().await;
}

/// InfluxDB 1.x with authentication: hissrv signs in with its user and posts gzip bodies. With
/// a wrong password every write is refused (401) and retried, never dropped, however long it
/// lasts; once the password is right, every sample of that time arrives with its timestamp.
#[tokio::test]
async fn influxdb_v1_with_auth_and_gzip_and_a_wrong_password_in_between_loses_nothing() {
    let env = TestEnv::new().await;
    let influx = voltage_tests::influx::Influxd::start_with_auth("voltage", "s3cret").await;
    influx.query("", "CREATE DATABASE ems").await;
    history_config(&env, 5, None, 50);
    let config = |password: &str| {
        format!(
            "influxdb: {{url: \"{}\", api: v1, database: ems, username: voltage, password: \"{password}\", gzip: true, batch_size: 500, flush_interval_ms: 200, timeout_ms: 2000}}\nsources:\n  - {{channel: 5, types: [T], interval_ms: 50}}\nwal: {{dir: wal, max_bytes: 8388608, fsync: always}}\n",
            influx.url()
        )
    };
    env.write("hissrv/hissrv.yaml", &config("wrong"));
    let h = env.start_hissrv().await;
    let t0 = now_ms() - 30_000;
    let want: Vec<(i64, f64)> = (0..5u64)
        .map(|i| ((t0 + i * 1000) as i64 * 1_000_000, i as f64 + 0.25))
        .collect();
    for (i, (_, v)) in want.iter().enumerate() {
        put_logged(&env, h.local_addr(), 5, 1, *v, t0 + i as u64 * 1000).await;
    }
    // More refusals than the old give-up-after-5 rule allowed.
    let status = || async { http_get(h.local_addr(), "/status").await.1 };
    let mut s = String::new();
    let refused_often = wait_until(Duration::from_secs(30), status, |b| {
        s = b.clone();
        serde_json::from_str::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["influxdb"]["failed_requests"].as_u64())
            .is_some_and(|n| n >= 7)
    })
    .await;
    assert!(refused_often, "{s}");
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert!(
        v["influxdb"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("401"),
        "the refusal is shown: {s}"
    );
    assert_eq!(v["influxdb"]["rejected_points"], 0, "nothing dropped: {s}");
    assert_eq!(v["influxdb"]["sent_points"], 0, "{s}");
    let sink = v["log"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sink"] == "influxdb")
        .unwrap()
        .clone();
    assert_eq!(sink["records"], 5, "the backlog is kept: {s}");
    h.stop().await;

    env.write("hissrv/hissrv.yaml", &config("s3cret"));
    let h = env.start_hissrv().await;
    let q = "SELECT value FROM telemetry WHERE channel_id = '5' AND point_id = '1'";
    let mut got = Vec::new();
    let arrived = wait_until(
        Duration::from_secs(15),
        || influx.values("ems", q),
        |v| {
            got = v.clone();
            v.len() >= want.len()
        },
    )
    .await;
    assert!(arrived, "got {got:?}");
    assert_eq!(got, want, "every sample, once, with its own timestamp");
    h.stop().await;
}
