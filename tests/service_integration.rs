//! Service integration (seed section 1): each service against Redis, history and northbound
//! (`service_integration/history.rs`), the gateway in front of them
//! (`service_integration/gateway.rs`), and the routes the web console reads
//! (`service_integration/console_api.rs`).

#[path = "service_integration/console_api.rs"]
mod console_api;
#[path = "service_integration/gateway.rs"]
mod gateway;
#[path = "service_integration/gateway_security.rs"]
mod gateway_security;
#[path = "service_integration/history.rs"]
mod history;

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
    let http_port = voltage_tests::free_port();
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

async fn fcall_get(env: &TestEnv, f: &str, key: &str) -> serde_json::Value {
    let mut c = env.redis().await;
    let s: String = redis::cmd("FCALL")
        .arg(f)
        .arg(1)
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

/// TC-ALARMSRV-001: an alarm created over HTTP is stored by the Lua function, Active.
#[tokio::test]
async fn tc_alarmsrv_001_alarm_creation_and_storage() {
    let env = TestEnv::new().await;
    let a = env.start_alarmsrv().await;
    let req = r#"{"title":"High Temperature Alert","description":"Temperature exceeded threshold","level":"Warning","source":"sensor_001","metadata":{"current_value":85.5,"threshold":80.0,"unit":"°C"}}"#;
    let (code, body) = http_post(a.local_addr(), "/alarms", req).await;
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alarm = fcall_get(&env, "alarm_get", &id).await;
    assert_eq!(alarm["title"], "High Temperature Alert");
    assert_eq!(alarm["level"], "Warning");
    assert_eq!(alarm["status"], "Active");
    assert_eq!(alarm["metadata"]["threshold"], 80.0);
    // A bad level is refused with the function's message, as a 400 in the JSON error shape.
    let (code, body) = http_post(
        a.local_addr(),
        "/alarms",
        r#"{"title":"x","level":"Severe","source":"s"}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("must be one of Info, Warning, Major, Critical"),
        "{body}"
    );
    let (code, _) = http_get(a.local_addr(), "/alarms/999").await;
    assert_eq!(code, 404);
    a.stop().await;
}

/// TC-ALARMSRV-002: acknowledgment sets status, who and when; illegal transitions are 409.
#[tokio::test]
async fn tc_alarmsrv_002_alarm_acknowledgment_flow() {
    let env = TestEnv::new().await;
    let a = env.start_alarmsrv().await;
    let (_, body) = http_post(
        a.local_addr(),
        "/alarms",
        r#"{"title":"Door open","level":"Major","source":"door_1"}"#,
    )
    .await;
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http_post(
        a.local_addr(),
        &format!("/alarms/{id}/acknowledge"),
        r#"{"acknowledged_by":"operator_001","notes":"Investigating temperature sensor"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let alarm = fcall_get(&env, "alarm_get", &id).await;
    assert_eq!(alarm["status"], "Acknowledged");
    assert_eq!(alarm["acknowledged_by"], "operator_001");
    assert!(
        alarm["acknowledged_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{alarm}"
    );
    let (code, body) = http_get(a.local_addr(), "/alarms?status=acknowledged&level=major").await;
    assert_eq!(code, 200);
    assert!(body.contains(&format!("\"id\":\"{id}\"")), "{body}");
    let (code, body) = http_post(
        a.local_addr(),
        &format!("/alarms/{id}/acknowledge"),
        r#"{"acknowledged_by":"x"}"#,
    )
    .await;
    assert_eq!(
        code, 409,
        "acknowledging twice is an illegal transition: {body}"
    );
    let (code, _) = http_post(
        a.local_addr(),
        &format!("/alarms/{id}/resolve"),
        r#"{"resolved_by":"operator_001"}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = http_post(
        a.local_addr(),
        &format!("/alarms/{id}/acknowledge"),
        r#"{"who":"x"}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    a.stop().await;
}

async fn start_modsrv(env: &TestEnv) -> modsrv::Running {
    env.write(
        "modsrv/templates/power_station_template.yaml",
        include_str!("../config/modsrv/templates/power_station_template.yaml"),
    );
    let store = voltage_store::Store::connect(&env.redis_url, Duration::from_secs(2))
        .await
        .unwrap();
    store.load_functions().await.unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    modsrv::start(env.path(), store, "127.0.0.1:0".parse().unwrap(), rx)
        .await
        .unwrap()
}

/// TC-MODSRV-001: a model created from the shipped power station template is stored by the Lua
/// function, and the expansion created its voltage points; mapped points carry live values.
#[tokio::test]
async fn tc_modsrv_001_model_creation_and_template_expansion() {
    let env = TestEnv::new().await;
    let m = start_modsrv(&env).await;
    let req = r#"{"model_id":"model_001","name":"Test Power Station","template_id":"power_station_template","parameters":{"capacity_mw":100,"voltage_kv":35,"location":"Site A"}}"#;
    let (code, body) = http_post(m.local_addr(), "/models", req).await;
    assert_eq!(code, 201, "{body}");
    let model = fcall_get(&env, "model_get", "model_001").await;
    assert_eq!(model["name"], "Test Power Station");
    assert_eq!(model["parameters"]["capacity_mw"], 100);
    let points = fcall_get(&env, "model_get_points", "model_001").await;
    let pts = points.as_array().unwrap();
    assert!(
        pts.iter()
            .any(|p| p["name"].as_str().unwrap().contains("voltage")),
        "{points}"
    );
    let va = pts.iter().find(|p| p["name"] == "voltage_a").unwrap();
    assert_eq!(va["description"], "Phase A voltage (35 kV nominal)");
    assert_eq!(va["mapping"], "comsrv:1001:T:1");
    // Live value of a mapped point.
    put_reading(&env, 1001, 1, 35.2, now_ms()).await;
    let (code, body) = http_get(m.local_addr(), "/models/model_001/points").await;
    assert_eq!(code, 200);
    assert!(body.contains("\"value\":35.2"), "{body}");
    // Duplicate id, unknown template, missing and unknown parameters.
    assert_eq!(http_post(m.local_addr(), "/models", req).await.0, 409);
    let (code, body) = http_post(
        m.local_addr(),
        "/models",
        r#"{"model_id":"m2","name":"x","template_id":"wind_farm","parameters":{}}"#,
    )
    .await;
    assert!(
        code == 400 && body.contains("unknown template_id \\\"wind_farm\\\""),
        "{code} {body}"
    );
    let (code, body) = http_post(
        m.local_addr(),
        "/models",
        r#"{"model_id":"m3","name":"x","template_id":"power_station_template","parameters":{}}"#,
    )
    .await;
    assert!(
        code == 400 && body.contains("missing parameter \\\"capacity_mw\\\""),
        "{code} {body}"
    );
    m.stop().await;
}

/// TC-MODSRV-002: an update changes name and parameters and re-expands the points.
#[tokio::test]
async fn tc_modsrv_002_model_update_operations() {
    let env = TestEnv::new().await;
    let m = start_modsrv(&env).await;
    let req = r#"{"model_id":"model_002","name":"Station","template_id":"power_station_template","parameters":{"capacity_mw":100,"voltage_kv":35,"location":"Site A"}}"#;
    assert_eq!(http_post(m.local_addr(), "/models", req).await.0, 201);
    let (code, body) = http_request(
        m.local_addr().port(),
        "PUT",
        "/models/model_002",
        r#"{"name":"Updated Power Station","parameters":{"capacity_mw":150,"voltage_kv":110,"location":"Site B"}}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let model = fcall_get(&env, "model_get", "model_002").await;
    assert_eq!(model["name"], "Updated Power Station");
    assert_eq!(model["parameters"]["capacity_mw"], 150);
    assert_eq!(model["parameters"]["location"], "Site B");
    let points = fcall_get(&env, "model_get_points", "model_002").await;
    assert!(
        points
            .to_string()
            .contains("Phase A voltage (110 kV nominal)"),
        "{points}"
    );
    let (code, _) = http_request(
        m.local_addr().port(),
        "PUT",
        "/models/nope",
        r#"{"name":"x"}"#,
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = http_request(m.local_addr().port(), "DELETE", "/models/model_002", "").await;
    assert_eq!(code, 200);
    assert_eq!(http_get(m.local_addr(), "/models/model_002").await.0, 404);
    m.stop().await;
}

async fn start_rulesrv(env: &TestEnv) -> rulesrv::Running {
    let store = voltage_store::Store::connect(&env.redis_url, Duration::from_secs(2))
        .await
        .unwrap();
    store.load_functions().await.unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    rulesrv::start(store, "127.0.0.1:0".parse().unwrap(), rx)
        .await
        .unwrap()
}

/// TC-RULESRV-001: a threshold rule evaluated on request records a triggered execution and
/// raises its alarm; a bad expression is refused with its column.
#[tokio::test]
async fn tc_rulesrv_001_rule_creation_and_evaluation() {
    let env = TestEnv::new().await;
    put_reading(&env, 1001, 1, 75.5, now_ms()).await;
    let r = start_rulesrv(&env).await;
    let rule = r#"{"name":"Temperature Threshold Rule","description":"Trigger when temperature > 80°C",
        "condition":{"expression":"comsrv:1001:T:1 > 80.0","data_sources":["comsrv:1001:T:1"]},
        "actions":[{"action_type":"create_alarm","parameters":{"title":"High Temperature","level":"Warning","description":"Temperature threshold exceeded"}}],
        "enabled":true,"interval_ms":60000}"#;
    let (code, body) = http_post(r.local_addr(), "/rules", rule).await;
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http_post(r.local_addr(), &format!("/rules/{id}/evaluate"), "").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"triggered\":false"),
        "75.5 is below the threshold: {body}"
    );
    put_reading(&env, 1001, 1, 85.75, now_ms()).await;
    let (code, body) = http_post(r.local_addr(), &format!("/rules/{id}/evaluate"), "").await;
    assert_eq!(code, 200, "{body}");
    let exec = fcall_get(&env, "rule_get_execution", &id).await;
    assert_eq!(exec["triggered"], true);
    assert!(exec["executed_at"].is_string());
    assert_eq!(exec["values"]["comsrv:1001:T:1"], 85.75);
    assert_eq!(exec["actions"][0]["ok"], true, "{exec}");
    // The alarm exists, Active, from this rule.
    let mut c = env.redis().await;
    let list: String = redis::cmd("FCALL_RO")
        .arg("alarm_list")
        .arg(0)
        .arg("status")
        .arg("Active")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        list.contains("High Temperature") && list.contains(&format!("rule:{id}")),
        "{list}"
    );
    // Still true: no second firing (rising edge only).
    let (_, body) = http_post(r.local_addr(), &format!("/rules/{id}/evaluate"), "").await;
    assert!(
        body.contains("\"triggered\":false") && body.contains("\"condition\":true"),
        "{body}"
    );
    // A bad expression: 400 naming the column.
    let bad = r#"{"name":"x","condition":{"expression":"comsrv:1001:T:1 > "},"actions":[]}"#;
    let (code, body) = http_post(r.local_addr(), "/rules", bad).await;
    assert_eq!(code, 400);
    assert!(body.contains("condition.expression: column 19"), "{body}");
    // A missing point makes the condition unknown and is reported.
    let m = r#"{"id":"r_missing","name":"m","condition":{"expression":"comsrv:7:T:7 > 1"},"actions":[],"interval_ms":60000}"#;
    assert_eq!(http_post(r.local_addr(), "/rules", m).await.0, 201);
    let (_, body) = http_post(r.local_addr(), "/rules/r_missing/evaluate", "").await;
    assert!(
        body.contains("\"missing\":[\"comsrv:7:T:7\"]") && body.contains("\"condition\":null"),
        "{body}"
    );
    r.stop().await;
}

/// Rules are also evaluated periodically; a write_point action reaches comsrv's command queue.
#[tokio::test]
async fn rules_are_evaluated_on_their_interval_and_write_points_through_comsrv() {
    let env = TestEnv::new().await;
    put_reading(&env, 5, 1, 10.0, now_ms()).await;
    let r = start_rulesrv(&env).await;
    let rule = r#"{"id":"limit","name":"limit","condition":{"expression":"comsrv:5:T:1 >= 50"},
        "actions":[{"action_type":"write_point","parameters":{"channel_id":5,"point_type":"A","point_id":1,"value":0}}],"interval_ms":100}"#;
    assert_eq!(http_post(r.local_addr(), "/rules", rule).await.0, 201);
    put_reading(&env, 5, 1, 55.0, now_ms()).await;
    let queued = || async {
        let mut c = env.redis().await;
        redis::cmd("LRANGE")
            .arg("comsrv:commands")
            .arg(0)
            .arg(-1)
            .query_async::<Vec<String>>(&mut c)
            .await
            .unwrap()
    };
    let mut got = Vec::new();
    assert!(
        wait_until(Duration::from_secs(5), queued, |v| {
            got = v.clone();
            !v.is_empty()
        })
        .await
    );
    assert!(
        got[0].contains("\"channel_id\":5") && got[0].contains("\"requested_by\":\"rule:limit\""),
        "{got:?}"
    );
    r.stop().await;
}

/// A threshold rule raises an alarm after its on-delay, once, and clears it when the value is
/// back inside the deadband.
#[tokio::test]
async fn threshold_rules_raise_once_and_clear_with_the_deadband() {
    let env = TestEnv::new().await;
    env.write(
        "alarmsrv/rules.yaml",
        "rules:\n  - {id: pcs_hot, point: \"comsrv:1001:T:5\", title: PCS hot, level: Major, high: 45.0, deadband: 2.0, on_delay_ms: 300, off_delay_ms: 300}\n",
    );
    put_reading(&env, 1001, 5, 40.0, now_ms()).await;
    let a = env.start_alarmsrv().await;
    put_reading(&env, 1001, 5, 46.0, now_ms()).await;
    let active = || async { http_get(a.local_addr(), "/alarms?status=active").await.1 };
    let mut body = String::new();
    assert!(
        wait_until(Duration::from_secs(5), active, |b| {
            body = b.clone();
            b.contains("PCS hot")
        })
        .await
    );
    assert_eq!(
        body.matches("PCS hot").count(),
        1,
        "one alarm while it stays active: {body}"
    );
    put_reading(&env, 1001, 5, 44.0, now_ms()).await; // inside the deadband: stays active
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(active().await.contains("PCS hot"));
    put_reading(&env, 1001, 5, 42.0, now_ms()).await;
    assert!(
        wait_until(Duration::from_secs(5), active, |b| !b.contains("PCS hot")).await,
        "cleared"
    );
    let (_, t) = http_get(a.local_addr(), "/thresholds").await;
    assert!(t.contains("\"state\":\"normal\""), "{t}");
    a.stop().await;
}

/// A model point mapped to an adjustment point acts through comsrv's command queue; a point
/// without a writable mapping is refused.
#[tokio::test]
async fn model_actions_route_to_comsrv_writes() {
    let env = TestEnv::new().await;
    env.write(
        "modsrv/templates/pcs_template.yaml",
        include_str!("../config/modsrv/templates/pcs_template.yaml"),
    );
    let m = start_modsrv(&env).await;
    let req = r#"{"model_id":"pcs_1","name":"PCS 1","template_id":"pcs_template","parameters":{"rated_kw":500,"channel":11}}"#;
    assert_eq!(http_post(m.local_addr(), "/models", req).await.0, 201);
    let (code, body) = http_post(
        m.local_addr(),
        "/models/pcs_1/actions/power_setpoint",
        r#"{"value":42,"requested_by":"op1"}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let mut c = env.redis().await;
    let q: Vec<String> = redis::cmd("LRANGE")
        .arg("comsrv:commands")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        q[0].contains("\"channel_id\":11")
            && q[0].contains("\"point_type\":\"A\"")
            && q[0].contains("\"requested_by\":\"op1\""),
        "{q:?}"
    );
    let (code, body) = http_post(
        m.local_addr(),
        "/models/pcs_1/actions/dc_voltage",
        r#"{"value":1}"#,
    )
    .await;
    assert_eq!(code, 409, "{body}");
    m.stop().await;
}

/// A rule may read a model's point: `model:{id}:{point}` resolves through the model's mapping.
#[tokio::test]
async fn rules_read_model_points_through_their_mapping() {
    let env = TestEnv::new().await;
    let r = start_rulesrv(&env).await;
    let mut c = env.redis().await;
    redis::cmd("FCALL")
        .arg("model_upsert")
        .arg(1)
        .arg("pcs_1")
        .arg(r#"{"name":"PCS 1","points":[{"name":"dc_voltage","mapping":"comsrv:1001:T:1"}]}"#)
        .query_async::<String>(&mut c)
        .await
        .unwrap();
    put_reading(&env, 1001, 1, 752.0, now_ms()).await;
    let rule = r#"{"id":"hv","name":"hv","condition":{"expression":"model:pcs_1:dc_voltage > 700"},"actions":[],"interval_ms":60000}"#;
    assert_eq!(http_post(r.local_addr(), "/rules", rule).await.0, 201);
    let (_, body) = http_post(r.local_addr(), "/rules/hv/evaluate", "").await;
    assert!(
        body.contains("\"condition\":true") && body.contains("\"model:pcs_1:dc_voltage\":752.0"),
        "{body}"
    );
    r.stop().await;
}
