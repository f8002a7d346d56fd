//! Fault tolerance (seed section 5): network interruptions and Redis restarts.

use std::time::Duration;
use voltage_sim::{Bank, SimServer};
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

fn one_point_channel(env: &TestEnv, id: u32, addr: std::net::SocketAddr) {
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", tcp_channel(id, addr, "")),
    );
    env.write(
        &format!("comsrv/{id}/telemetry.csv"),
        "point_id,signal_name\n1,V\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/telemetry_mapping.csv"),
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,1,u16,,\n"),
    );
}

/// TC-FAULT-002: the link is cut for 5 s; the last good value stays; after the link returns the
/// new value arrives and the outage is counted.
#[tokio::test]
async fn tc_fault_002_network_interruption_recovery() {
    let env = TestEnv::new().await;
    let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .unwrap();
    server.bank().set_holding(1, 1, 1000);
    let proxy = NetworkProxy::new(server.local_addr()).await;
    one_point_channel(&env, 1001, proxy.addr());
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1001:T", "1", "1000.000000", T).await;
    let ts_before = env.hget_i64("comsrv:1001:T:ts", "1").await;

    proxy.block_connections().await;
    server.bank().set_holding(1, 1, 2000);
    env.wait_value("comsrv:1001:status", "connected", "0", T)
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        env.hget_f64("comsrv:1001:T", "1").await,
        Some(1000.0),
        "value must not change during the outage"
    );
    let ts_during = env.hget_i64("comsrv:1001:T:ts", "1").await;
    assert!(
        ts_during < ts_before + 1500,
        "the timestamp shows the value is stale"
    );

    proxy.allow_connections().await;
    env.wait_value("comsrv:1001:T", "1", "2000.000000", Duration::from_secs(10))
        .await;
    assert!(env.hget_i64("comsrv:1001:stats", "connection_errors").await > 0);
    assert!(env.hget_i64("comsrv:1001:stats", "reconnect_count").await > 0);
    env.wait_value("comsrv:1001:status", "connected", "1", T)
        .await;
    comsrv.stop().await;
}

/// Redis goes away: /health says unhealthy (503) with the reason, polling goes on, and when
/// Redis is back (empty) values and channel configuration are written again.
#[tokio::test]
async fn redis_restart_makes_health_503_then_data_and_config_come_back() {
    let redis = RedisServer::dedicated();
    let env = TestEnv::on(&redis);
    let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .unwrap();
    server.bank().set_holding(1, 1, 42);
    one_point_channel(&env, 3, server.local_addr());
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:3:T", "1", "42.000000", T).await;
    let (code, _) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(code, 200);

    redis.kill();
    let (code, body) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("redis"),
        "{body}"
    );
    server.bank().set_holding(1, 1, 43);
    tokio::time::sleep(Duration::from_secs(1)).await;

    redis.restart();
    env.wait_value("comsrv:3:T", "1", "43.000000", Duration::from_secs(15))
        .await;
    assert!(
        wait_until(
            Duration::from_secs(10),
            || env.hlen("comsrv:3:config:telemetry"),
            |n| *n == 1
        )
        .await,
        "channel configuration was not published again after the restart"
    );
    let (code, _) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(code, 200);
    comsrv.stop().await;
}

/// The daemon reloads its Redis Functions after Redis restarts without them.
#[tokio::test]
async fn daemon_reloads_redis_functions_after_a_redis_restart() {
    let redis = RedisServer::dedicated();
    let env = TestEnv::on(&redis);
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.write(
        "voltage.yaml",
        &format!("services:\n  comsrv: {{port: {http_port}}}\n"),
    );
    env.write(
        "comsrv/comsrv.yaml",
        "channels:\n  - {id: 1, name: v, protocol: virtual, parameters: {poll_interval_ms: 100}}\n",
    );
    env.write("comsrv/1/telemetry.csv", "point_id,signal_name\n1,x\n");
    env.write(
        "comsrv/1/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=9\n",
    );
    let _child = tokio::process::Command::new(workspace_bin("voltage"))
        .args(["run", "--config"])
        .arg(env.path())
        .env("REDIS_URL", &env.redis_url)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn voltage");
    let version = || async {
        let Ok(mut c) = redis::Client::open(env.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
        else {
            return None;
        };
        redis::cmd("FCALL_RO")
            .arg("voltage_functions_version")
            .arg(0)
            .query_async::<String>(&mut c)
            .await
            .ok()
    };
    assert!(
        wait_until(Duration::from_secs(10), version, |v| v.is_some()).await,
        "functions not loaded at start"
    );
    env.wait_value("comsrv:1:T", "1", "9.000000", T).await;

    redis.restart();
    assert_eq!(version().await, None, "a restarted Redis has no functions");
    assert!(
        wait_until(Duration::from_secs(15), version, |v| v.is_some()).await,
        "functions not reloaded"
    );
    env.wait_value("comsrv:1:T", "1", "9.000000", T).await;
}
