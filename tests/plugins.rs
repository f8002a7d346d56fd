//! Protocol plugins over gRPC (`protocol: grpc`, docs/plugins.md): the example plugin and its
//! device simulator run as separate processes, as on a controller; the Python plugin of the
//! documentation; a misbehaving test double.

use std::net::SocketAddr;
use std::time::Duration;
use voltage_tests::plugin::{self, grpc_channel, Announced};
use voltage_tests::*;

const T: Duration = Duration::from_secs(10);
/// For the misbehaving plugin, polled every 0.6 s.
const SLOW: Duration = Duration::from_secs(20);

fn socket(addr: &str) -> SocketAddr {
    addr.trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|_| panic!("{addr} is not http://ip:port"))
}

/// The inverter's simulator with power 12.5 kW, DC 752.3 V, running, a writable power limit
/// and a read-only setpoint.
async fn inverter() -> Announced {
    plugin::httpjson_sim(&[
        "--set",
        "ac.power=12.5",
        "--set",
        "dc.voltage=752.3",
        "--set",
        "running=true",
        "--set",
        "fixed_setpoint=5",
        "--writable",
        "power_limit_pct=100",
        "--sticky",
        "reactive_pct=0",
    ])
    .await
}

/// Channel `id` over `endpoint` with telemetry 1 (ac.power, scale 1000: W), 2 (dc.voltage),
/// signal 1 (running), adjustments 1 (power_limit_pct, 0-100), 2 (fixed_setpoint, read-only)
/// and 3 (reactive_pct, accepts writes but never applies them).
fn inverter_channel(env: &TestEnv, id: u32, endpoint: &str, more_channels: &str) {
    env.write(
        "comsrv/comsrv.yaml",
        &format!(
            "channels:\n{}{more_channels}",
            grpc_channel(id, endpoint, "")
        ),
    );
    env.write(
        &format!("comsrv/{id}/telemetry.csv"),
        "point_id,signal_name,scale,offset,unit\n1,AC power,1000,0,W\n2,DC voltage,1,0,V\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/telemetry_mapping.csv"),
        "point_id,address\n1,ac.power\n2,dc.voltage\n",
    );
    env.write(
        &format!("comsrv/{id}/signal.csv"),
        "point_id,signal_name\n1,Running\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/signal_mapping.csv"),
        "point_id,address\n1,running\n",
    );
    env.write(
        &format!("comsrv/{id}/adjustment.csv"),
        "point_id,signal_name,min_value,max_value\n1,Power limit,0,100\n2,Fixed,0,10\n3,Reactive,-100,100\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/adjustment_mapping.csv"),
        "point_id,address\n1,power_limit_pct\n2,fixed_setpoint\n3,reactive_pct\n",
    );
}

async fn sim_value(sim: &Announced, name: &str) -> Option<f64> {
    let (code, body) = http_get(socket(&sim.addr), "/api/v1/values").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v[name].as_f64()
}

async fn sim_put(sim: &Announced, name: &str, value: f64) {
    let (code, body) = http_request(
        socket(&sim.addr).port(),
        "PUT",
        &format!("/api/v1/values/{name}"),
        &format!(r#"{{"value":{value}}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// Values polled through the example plugin arrive in comsrv:{ch}:T/S/A with the table's
/// scale, counted as reads, without errors or quality marks.
#[tokio::test]
async fn values_from_a_plugin_process_arrive_in_redis() {
    let env = TestEnv::new().await;
    let sim = inverter().await;
    let plug = plugin::httpjson_plugin(&sim.addr, &["--listen", "127.0.0.1:0"]).await;
    inverter_channel(&env, 21, &plug.addr, "");
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:21:T", "1", "12500.000000", T).await;
    // Errors before the first good poll (a first GetInfo slower than its deadline on a loaded or
    // emulated machine) are not what this test is about: from here on, none may happen.
    let (errors0, count0) = (
        env.hget_i64("comsrv:21:stats", "total_errors").await,
        env.hget_i64("comsrv:21:status", "error_count").await,
    );
    assert_eq!(
        env.hget("comsrv:21:T", "2").await.as_deref(),
        Some("752.300000")
    );
    assert_eq!(env.hget("comsrv:21:S", "1").await.as_deref(), Some("1"));
    assert_eq!(
        env.hget("comsrv:21:A", "1").await.as_deref(),
        Some("100.000000")
    );
    assert!(env.hget("comsrv:21:T:ts", "1").await.is_some());
    // The device changes; the next polls show it.
    sim_put(&sim, "power_limit_pct", 60.0).await;
    env.wait_value("comsrv:21:A", "1", "60.000000", T).await;
    let reads = env.hget_i64("comsrv:21:stats", "total_reads").await;
    assert!(
        wait_until(
            T,
            || env.hget_i64("comsrv:21:stats", "total_reads"),
            |n| *n >= reads + 5
        )
        .await
    );
    assert_eq!(
        env.hget_i64("comsrv:21:stats", "total_errors").await,
        errors0
    );
    assert_eq!(
        env.hget_i64("comsrv:21:status", "error_count").await,
        count0
    );
    assert_eq!(
        env.hget("comsrv:21:status", "connected").await.as_deref(),
        Some("1")
    );
    assert_eq!(
        env.hget("comsrv:21:status", "protocol").await.as_deref(),
        Some("grpc")
    );
    assert_eq!(env.hlen("comsrv:21:T:quality").await, 0);
    // The point configuration carries the plugin address.
    let cfg = env
        .hget("comsrv:21:config:telemetry", "1")
        .await
        .expect("config row");
    assert!(cfg.contains(r#""mapping":{"address":"ac.power"}"#), "{cfg}");
    let (code, body) = http_get(comsrv.local_addr(), "/channels").await;
    assert_eq!(code, 200);
    assert!(body.contains(r#""protocol":"grpc""#), "{body}");
    comsrv.stop().await;
}

/// The plugin process is killed: status shows it, values stay with `stale` marks; restarted on
/// the same Unix socket: comsrv reconnects by itself, new values flow, marks are cleared.
#[tokio::test]
async fn a_killed_plugin_shows_in_status_keeps_stale_values_and_recovers() {
    let env = TestEnv::new().await;
    let sim = inverter().await;
    let sock = env.path().join("inverter.sock");
    let sock_arg = sock.display().to_string();
    let plug = plugin::httpjson_plugin(&sim.addr, &["--unix", &sock_arg]).await;
    assert_eq!(plug.addr, format!("unix://{sock_arg}"));
    inverter_channel(&env, 22, &plug.addr, "");
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:22:T", "2", "752.300000", T).await;
    let ts_before = env.hget("comsrv:22:T:ts", "2").await;

    plug.kill().await;
    env.wait_value("comsrv:22:status", "connected", "0", T)
        .await;
    env.wait_value("comsrv:22:T:quality", "2", "stale", T).await;
    assert_eq!(
        env.hget("comsrv:22:S:quality", "1").await.as_deref(),
        Some("stale")
    );
    assert_eq!(
        env.hget("comsrv:22:T", "2").await.as_deref(),
        Some("752.300000"),
        "the last good value stays"
    );
    let last_error = env.hget("comsrv:22:status", "last_error").await;
    assert!(
        last_error.as_deref().unwrap_or("").contains("unreachable")
            || last_error.as_deref().unwrap_or("").contains("connect"),
        "{last_error:?}"
    );
    assert!(
        wait_until(
            T,
            || env.hget_i64("comsrv:22:stats", "connection_errors"),
            |n| *n >= 2
        )
        .await,
        "failed reconnects are counted"
    );
    // Polls between the first value and the kill may have renewed the read time; from the
    // moment the loss is seen, it must stand still.
    let ts_at_loss = env.hget("comsrv:22:T:ts", "2").await;
    assert!(
        env.hget_i64("comsrv:22:T:ts", "2").await
            >= ts_before.as_deref().unwrap_or("0").parse::<i64>().unwrap(),
        "read time went backwards"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.hget("comsrv:22:T:ts", "2").await,
        ts_at_loss,
        "no read time without a read"
    );
    assert!(env.hget_i64("comsrv:22:status", "error_count").await > 0);
    let (code, _) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(
        code, 200,
        "a lost plugin is a channel problem, not comsrv's"
    );

    // Restart with a new value on the device.
    sim_put(&sim, "power_limit_pct", 42.0).await;
    let _plug = plugin::httpjson_plugin(&sim.addr, &["--unix", &sock_arg]).await;
    env.wait_value("comsrv:22:A", "1", "42.000000", T).await;
    env.wait_value("comsrv:22:status", "connected", "1", T)
        .await;
    assert!(
        wait_until(T, || env.hlen("comsrv:22:T:quality"), |n| *n == 0).await,
        "stale marks are cleared by good reads"
    );
    assert_eq!(env.hlen("comsrv:22:S:quality").await, 0);
    assert!(env.hget_i64("comsrv:22:stats", "reconnect_count").await >= 1);
    assert_ne!(env.hget("comsrv:22:T:ts", "2").await, ts_at_loss);
    comsrv.stop().await;
}

/// A plugin that answers garbage, oversized messages, late, or with error statuses: every kind
/// is counted, the good point still arrives, the bad one is marked, and comsrv with its other
/// channel stays healthy.
#[tokio::test]
async fn a_misbehaving_plugin_is_counted_and_contained() {
    let env = TestEnv::new().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/bad_plugin.py");
    let proto = plugin::proto_dir().display().to_string();
    let bad = plugin::python_plugin(&script, &[&proto]).await;
    env.write(
        "comsrv/comsrv.yaml",
        // Polls 0.6 s apart: each misbehaviour stays in last_error long enough to be seen.
        &format!(
            "channels:\n  - {{id: 23, name: bad, protocol: grpc, parameters: {{endpoint: \"{}\", poll_interval_ms: 600, timeout_ms: 300}}}}\n  - {{id: 24, name: v, protocol: virtual, parameters: {{poll_interval_ms: 100}}}}\n",
            bad.addr
        ),
    );
    env.write(
        "comsrv/23/telemetry.csv",
        "point_id,signal_name\n1,Nan point\n2,Good point\n3,No quality\n",
    );
    env.write(
        "comsrv/23/mapping/telemetry_mapping.csv",
        "point_id,address\n1,nan\n2,good\n3,unspecified\n",
    );
    env.write("comsrv/24/telemetry.csv", "point_id,signal_name\n1,C\n");
    env.write(
        "comsrv/24/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=3\n",
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:23:T", "2", "7.000000", T).await;
    // A full round of misbehaviour, twice over.
    let stat = |f: &'static str| {
        let env = &env;
        move || env.hget_i64("comsrv:23:stats", f)
    };
    assert!(
        wait_until(SLOW, stat("timeouts"), |n| *n >= 2).await,
        "late answers"
    );
    assert!(
        wait_until(SLOW, stat("exceptions"), |n| *n >= 2).await,
        "error statuses"
    );
    let mut seen = std::collections::BTreeSet::new();
    assert!(
        wait_until(
            SLOW,
            || env.hget("comsrv:23:status", "last_error"),
            |e| {
                let e = e.clone().unwrap_or_default();
                for (key, needle) in [
                    ("oversized", "oversized answer"),
                    ("deadline", "no answer within the deadline"),
                    ("status", "device exploded"),
                    ("garbage", "BatchRead: "),
                ] {
                    if e.contains(needle) {
                        seen.insert(key);
                    }
                }
                seen.len() == 4
            }
        )
        .await,
        "every kind of misbehaviour is reported in last_error, saw {seen:?}"
    );
    assert!(env.hget_i64("comsrv:23:stats", "total_errors").await >= 8);
    assert!(env.hget_i64("comsrv:23:status", "error_count").await >= 8);
    // Garbage never reaches Redis: no NaN, no point 999, no value for the unspecified quality.
    assert_eq!(env.hget("comsrv:23:T", "1").await, None);
    assert_eq!(env.hget("comsrv:23:T", "999").await, None);
    assert_eq!(env.hget("comsrv:23:T", "3").await, None);
    assert_eq!(env.hlen("comsrv:23:T").await, 1);
    assert_eq!(
        env.hget("comsrv:23:T", "2").await.as_deref(),
        Some("7.000000"),
        "the duplicate (8.0) is dropped"
    );
    assert!(
        wait_until(
            SLOW,
            || env.hget("comsrv:23:T:quality", "1"),
            |q| q.as_deref() == Some("bad")
        )
        .await
    );
    // comsrv and its other channel are fine.
    let (code, body) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(code, 200, "{body}");
    let reads = env.hget_i64("comsrv:24:stats", "total_reads").await;
    assert!(
        wait_until(
            SLOW,
            || env.hget_i64("comsrv:24:stats", "total_reads"),
            |n| *n >= reads + 5
        )
        .await
    );
    assert_eq!(
        env.hget("comsrv:23:status", "connected").await.as_deref(),
        Some("1"),
        "the plugin answers: it is connected, just wrong"
    );
    comsrv.stop().await;
}

/// Adjustment writes through the plugin: validated, written, read back; refusals by the table
/// never reach the device, refusals by the device are reported.
#[tokio::test]
async fn writes_through_a_plugin_are_verified_by_read_back() {
    let env = TestEnv::new().await;
    let sim = inverter().await;
    let plug = plugin::httpjson_plugin(&sim.addr, &["--listen", "127.0.0.1:0"]).await;
    inverter_channel(&env, 25, &plug.addr, "");
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:25:status", "connected", "1", T)
        .await;
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/25/adjustment",
        r#"{"point_id":1,"value":37.5,"requested_by":"op1"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "verified", "{body}");
    assert_eq!(v["old_value"], "100.000000", "{body}");
    assert_eq!(v["read_back"], "37.500000", "{body}");
    assert_eq!(sim_value(&sim, "power_limit_pct").await, Some(37.5));
    assert_eq!(
        env.hget("comsrv:25:A", "1").await.as_deref(),
        Some("37.500000")
    );
    // Outside the table's range: refused by comsrv, the device keeps its value.
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/25/adjustment",
        r#"{"point_id":1,"value":140}"#,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("max_value 100"), "{body}");
    assert_eq!(sim_value(&sim, "power_limit_pct").await, Some(37.5));
    // The device refuses (read-only): 502 with the device's reason, nothing written.
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/25/adjustment",
        r#"{"point_id":2,"value":6}"#,
    )
    .await;
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("read-only"), "{body}");
    assert_eq!(sim_value(&sim, "fixed_setpoint").await, Some(5.0));
    // Accepted but not applied: written, not verified (202), the read-back shows the truth.
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/25/adjustment",
        r#"{"point_id":3,"value":-20}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["written"].as_bool(),
            v["verified"].as_bool()
        ),
        (Some("unverified"), Some(true), Some(false)),
        "{body}"
    );
    assert_eq!(v["read_back"], "0.000000", "{body}");
    // The same through the Redis command queue, and the audit trail.
    let mut c = env.redis().await;
    redis::cmd("RPUSH")
        .arg("comsrv:commands")
        .arg(r#"{"request_id":"p1","channel_id":25,"point_type":"A","point_id":1,"value":12,"requested_by":"rulesrv"}"#)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let got = wait_until(
        T,
        || async {
            let mut c = env.redis().await;
            redis::cmd("GET")
                .arg("comsrv:command:p1")
                .query_async::<Option<String>>(&mut c)
                .await
                .unwrap()
        },
        |v| v.is_some(),
    )
    .await;
    assert!(got, "command result appears");
    assert_eq!(sim_value(&sim, "power_limit_pct").await, Some(12.0));
    let audit: Vec<String> = redis::cmd("LRANGE")
        .arg("comsrv:25:audit")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    // Refusals by the table never reach the device and are not audited; the device's refusal is.
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(
        audit[0].contains(r#""requested_by":"rulesrv""#) && audit[0].contains(r#""verified":true"#)
    );
    comsrv.stop().await;
}

/// The Python plugin of docs/plugins.md, taken from the page and run: its values arrive and a
/// write through it is verified.
#[tokio::test]
async fn the_python_plugin_of_the_documentation_serves_a_channel() {
    let env = TestEnv::new().await;
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plugins.md"),
    )
    .expect("docs/plugins.md");
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a python block in docs/plugins.md");
    let script = env.path().join("battery_plugin.py");
    std::fs::write(&script, code).unwrap();
    let proto = plugin::proto_dir().display().to_string();
    let plug =
        plugin::python_plugin(&script, &["--proto-dir", &proto, "--listen", "127.0.0.1:0"]).await;
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", grpc_channel(26, &plug.addr, "")),
    );
    env.write(
        "comsrv/26/telemetry.csv",
        "point_id,signal_name,unit\n1,SOC,%\n2,Missing,\n",
    );
    env.write(
        "comsrv/26/mapping/telemetry_mapping.csv",
        "point_id,address\n1,soc\n2,nothing\n",
    );
    env.write(
        "comsrv/26/adjustment.csv",
        "point_id,signal_name,min_value,max_value\n1,Power setpoint,-500,500\n",
    );
    env.write(
        "comsrv/26/mapping/adjustment_mapping.csv",
        "point_id,address\n1,power_setpoint\n",
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:26:T", "1", "57.500000", T).await;
    env.wait_value("comsrv:26:T:quality", "2", "bad", T).await;
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/26/adjustment",
        r#"{"point_id":1,"value":-250}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""read_back":"-250.000000""#), "{body}");
    env.wait_value("comsrv:26:A", "1", "-250.000000", T).await;
    comsrv.stop().await;
}

/// The Rust code shown in docs/plugins.md is the shipped example plugin's, verbatim.
#[test]
fn the_rust_code_in_the_documentation_is_the_example_plugin() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/plugins.md")).unwrap();
    let src = ["service.rs", "main.rs"]
        .map(|f| std::fs::read_to_string(root.join("plugins/httpjson/src").join(f)).unwrap())
        .concat();
    let blocks: Vec<&str> = doc
        .split("```rust\n")
        .skip(1)
        .filter_map(|s| s.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2);
    for b in blocks {
        assert!(
            src.contains(b),
            "docs/plugins.md shows code that is not in plugins/httpjson:\n{b}"
        );
    }
}
