//! Service integration (seed section 1.1): comsrv -> Redis data persistence.

use std::time::Duration;
use voltage_sim::{Bank, SimServer};
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

async fn sim() -> SimServer {
    SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .expect("sim")
}

/// TC-COMSRV-001: Modbus TCP data collection into `comsrv:{ch}:T` / `:S` with 6 decimals.
#[tokio::test]
async fn tc_comsrv_001_modbus_tcp_to_redis_flow() {
    let env = TestEnv::new().await;
    let server = sim().await;
    server.bank().set_holding(1, 1, 1234);
    server.bank().set_coil(1, 2, true);
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", tcp_channel(1001, server.local_addr(), "")),
    );
    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,Voltage,1,0,V,false,float\n",
    );
    env.write(
        "comsrv/1001/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,1,u16,ABCD,\n"),
    );
    env.write(
        "comsrv/1001/signal.csv",
        "point_id,signal_name,reverse\n2,Pump,false\n",
    );
    env.write(
        "comsrv/1001/mapping/signal_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}2,1,1,2,bool,,\n"),
    );
    let comsrv = env.start_comsrv().await;

    env.wait_value("comsrv:1001:T", "1", "1234.000000", T).await;
    env.wait_value("comsrv:1001:S", "2", "1", T).await;
    assert_eq!(env.hget_f64("comsrv:1001:T", "1").await, Some(1234.0));
    // Every value carries the time it was read.
    let ts = env.hget_i64("comsrv:1001:T:ts", "1").await;
    assert!(ts > 1_700_000_000_000, "timestamp {ts}");
    assert!(env.hget_i64("comsrv:1001:stats", "total_reads").await > 0);
    assert_eq!(
        env.hget("comsrv:1001:status", "connected").await.as_deref(),
        Some("1")
    );
    comsrv.stop().await;
}

/// TC-COMSRV-002: a virtual channel's sine and random walk stay in bounds and move.
#[tokio::test]
async fn tc_comsrv_002_virtual_protocol_simulation() {
    let env = TestEnv::new().await;
    env.write("comsrv/comsrv.yaml", "channels:\n  - {id: 1002, name: virt, protocol: virtual, parameters: {poll_interval_ms: 50}}\n");
    env.write(
        "comsrv/1002/telemetry.csv",
        "point_id,signal_name\n1,Sine\n2,Walk\n",
    );
    env.write(
        "comsrv/1002/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,sine,amplitude=100;frequency=1;phase=0\n2,random_walk,initial=50;step=5;min=-100;max=100\n",
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1002:status", "connected", "1", T)
        .await;
    let mut sine = Vec::new();
    let mut walk = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sine.push(
            env.hget_f64("comsrv:1002:T", "1")
                .await
                .expect("sine value"),
        );
        walk.push(
            env.hget_f64("comsrv:1002:T", "2")
                .await
                .expect("walk value"),
        );
    }
    assert!(
        sine.iter()
            .chain(&walk)
            .all(|&x| (-100.0..=100.0).contains(&x)),
        "{sine:?} {walk:?}"
    );
    assert!(
        sine.windows(2).any(|w| w[0] != w[1]),
        "sine must move: {sine:?}"
    );
    assert!(
        walk.windows(2).any(|w| w[0] != w[1]),
        "walk must move: {walk:?}"
    );
    comsrv.stop().await;
}

/// TC-COMSRV-003: three channels poll three devices concurrently without cross-contamination.
#[tokio::test]
async fn tc_comsrv_003_multi_channel_concurrent_operations() {
    let env = TestEnv::new().await;
    let servers = [sim().await, sim().await, sim().await];
    let mut yaml = String::from("channels:\n");
    for (i, s) in servers.iter().enumerate() {
        let id = 1001 + i as u32;
        s.bank().set_holding(1, 1, 1111 * (i as u16 + 1));
        yaml += &tcp_channel(id, s.local_addr(), "");
        env.write(
            &format!("comsrv/{id}/telemetry.csv"),
            "point_id,signal_name\n1,V\n",
        );
        env.write(
            &format!("comsrv/{id}/mapping/telemetry_mapping.csv"),
            &format!("{MODBUS_MAPPING_HEADER}1,1,3,1,u16,,\n"),
        );
    }
    env.write("comsrv/comsrv.yaml", &yaml);
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1001:T", "1", "1111.000000", T).await;
    env.wait_value("comsrv:1002:T", "1", "2222.000000", T).await;
    env.wait_value("comsrv:1003:T", "1", "3333.000000", T).await;
    // Each channel is independent: changing one device changes one channel only.
    servers[1].bank().set_holding(1, 1, 4444);
    env.wait_value("comsrv:1002:T", "1", "4444.000000", T).await;
    assert_eq!(env.hget_f64("comsrv:1001:T", "1").await, Some(1111.0));
    assert_eq!(env.hget_f64("comsrv:1003:T", "1").await, Some(3333.0));
    comsrv.stop().await;
}

/// comsrv's `/health` and `/channels` answer with the service name, port and channel state.
#[tokio::test]
async fn comsrv_health_endpoint_reports_healthy_with_its_port() {
    let env = TestEnv::new().await;
    env.write(
        "comsrv/comsrv.yaml",
        "channels:\n  - {id: 5, name: v, protocol: virtual}\n",
    );
    env.write("comsrv/5/telemetry.csv", "point_id,signal_name\n1,x\n");
    env.write(
        "comsrv/5/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=3\n",
    );
    let comsrv = env.start_comsrv().await;
    let (code, body) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["service"]["name"], "comsrv");
    assert_eq!(v["service"]["port"], comsrv.local_addr().port());
    let (code, body) = http_get(comsrv.local_addr(), "/channels").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v[0]["id"], 5);
    assert_eq!(v[0]["protocol"], "virtual");
    let (code, _) = http_get(comsrv.local_addr(), "/nope").await;
    assert_eq!(code, 404);
    comsrv.stop().await;
}

/// The daemon binary polls, then stops cleanly on SIGTERM (exit code 0, within seconds).
#[tokio::test]
async fn voltage_run_stops_cleanly_on_sigterm() {
    let env = TestEnv::new().await;
    let server = sim().await;
    server.bank().set_holding(1, 0, 77);
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
        &format!("channels:\n{}", tcp_channel(9, server.local_addr(), "")),
    );
    env.write("comsrv/9/telemetry.csv", "point_id,signal_name\n1,V\n");
    env.write(
        "comsrv/9/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n"),
    );
    let mut child = tokio::process::Command::new(workspace_bin("voltage"))
        .args(["run", "--only", "comsrv", "--config"])
        .arg(env.path())
        .env("REDIS_URL", &env.redis_url)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn voltage");
    env.wait_value("comsrv:9:T", "1", "77.000000", Duration::from_secs(10))
        .await;
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("voltage exits within 5 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
