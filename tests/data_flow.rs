//! Data flow (seed section 2.2): CSV configuration loading, hot reload, and the configuration
//! errors a field engineer sees.

use std::time::Duration;
use voltage_sim::{Bank, SimServer};
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

fn virtual_dir(env: &TestEnv) {
    env.write("comsrv/comsrv.yaml", "file_watch: true\nchannels:\n  - {id: 1001, name: v, protocol: virtual, parameters: {poll_interval_ms: 100}}\n");
    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,Temperature,1.0,0.0,℃,false,float\n2,Pressure,0.1,0.0,bar,false,float\n",
    );
    env.write(
        "comsrv/1001/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=21\n2,constant,value=3\n3,constant,value=7\n",
    );
}

/// TC-CONFIG-001: a CSV edit is applied within 2 s without a restart.
#[tokio::test]
async fn tc_config_001_csv_hot_reload() {
    let env = TestEnv::new().await;
    virtual_dir(&env);
    // Point 3's mapping exists before its table row: not an error until the row appears.
    env.write(
        "comsrv/1001/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=21\n2,constant,value=3\n",
    );
    let comsrv = env.start_comsrv().await;
    assert!(wait_until(T, || env.hlen("comsrv:1001:config:telemetry"), |n| *n == 2).await);

    env.write(
        "comsrv/1001/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=21\n2,constant,value=3\n3,constant,value=7\n",
    );
    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,Temperature,1.0,0.0,℃,false,float\n2,Pressure,0.1,0.0,bar,false,float\n3,Flow Rate,0.01,0.0,L/min,false,float\n",
    );
    let started = std::time::Instant::now();
    assert!(
        wait_until(
            Duration::from_secs(2) * slow(),
            || env.hlen("comsrv:1001:config:telemetry"),
            |n| *n == 3
        )
        .await,
        "reload not seen within 2 s: config_error {:?}",
        env.hget("comsrv:1001:status", "config_error").await
    );
    eprintln!("reload applied after {:?}", started.elapsed());
    let flow: serde_json::Value =
        serde_json::from_str(&env.hget("comsrv:1001:config:telemetry", "3").await.unwrap())
            .unwrap();
    assert_eq!(flow["signal_name"], "Flow Rate");
    assert_eq!(flow["scale"], 0.01);
    // The new point is polled: scale applies to it (7 * 0.01).
    env.wait_value("comsrv:1001:T", "3", "0.070000", T).await;
    comsrv.stop().await;
}

/// A broken edit keeps the last good configuration running and reports the error.
#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_config_and_reports_where() {
    let env = TestEnv::new().await;
    virtual_dir(&env);
    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale\n1,Temperature,1\n2,Pressure,0.1\n3,Flow,0.01\n",
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1001:T", "2", "0.300000", T).await;

    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale\n1,Temperature,1\n2,Pressure,zero.1\n3,Flow,0.01\n",
    );
    let mut err = None;
    let seen = wait_until(
        T,
        || env.hget("comsrv:1001:status", "config_error"),
        |v| {
            err = v.clone();
            v.as_deref().is_some_and(|e| !e.is_empty())
        },
    )
    .await;
    assert!(seen, "config_error never set");
    let err = err.unwrap();
    assert!(
        err.contains("telemetry.csv:3:12: scale: \"zero.1\" is not a number"),
        "{err}"
    );
    // Still polling with the old table.
    let before = env.hget_i64("comsrv:1001:stats", "total_reads").await;
    assert!(
        wait_until(
            T,
            || env.hget_i64("comsrv:1001:stats", "total_reads"),
            |n| *n > before + 2
        )
        .await
    );
    assert_eq!(
        env.hget("comsrv:1001:T", "2").await.as_deref(),
        Some("0.300000")
    );
    let (code, body) = http_get(comsrv.local_addr(), "/health").await;
    assert_eq!(code, 200);
    assert!(body.contains("zero.1"), "{body}");

    // Fixing the file clears the error.
    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale\n1,Temperature,1\n2,Pressure,0.2\n3,Flow,0.01\n",
    );
    env.wait_value("comsrv:1001:T", "2", "0.600000", T).await;
    env.wait_value("comsrv:1001:status", "config_error", "", T)
        .await;
    comsrv.stop().await;
}

/// Editing one channel restarts that channel only; removing a channel removes its keys.
#[tokio::test]
async fn reload_restarts_only_changed_channels_and_removes_deleted_ones() {
    let env = TestEnv::new().await;
    let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .unwrap();
    server.bank().set_holding(1, 0, 10);
    let yaml = |with_virtual: bool| {
        let mut y = format!("channels:\n{}", tcp_channel(1, server.local_addr(), ""));
        if with_virtual {
            y += "  - {id: 2, name: v, protocol: virtual, parameters: {poll_interval_ms: 100}}\n";
        }
        y
    };
    env.write("comsrv/comsrv.yaml", &yaml(true));
    env.write("comsrv/1/telemetry.csv", "point_id,signal_name\n1,a\n");
    env.write(
        "comsrv/1/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n"),
    );
    env.write("comsrv/2/telemetry.csv", "point_id,signal_name\n1,b\n");
    env.write(
        "comsrv/2/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=5\n",
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1:T", "1", "10.000000", T).await;
    env.wait_value("comsrv:2:T", "1", "5.000000", T).await;

    env.write("comsrv/comsrv.yaml", &yaml(false));
    assert!(
        wait_until(T, || env.hlen("comsrv:2:T"), |n| *n == 0).await,
        "removed channel's values remain"
    );
    assert_eq!(env.hlen("comsrv:2:config:telemetry").await, 0);
    server.bank().set_holding(1, 0, 11);
    env.wait_value("comsrv:1:T", "1", "11.000000", T).await;
    comsrv.stop().await;
}

fn run_voltage(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = std::process::Command::new(workspace_bin("voltage"))
        .args(args)
        .arg(dir)
        .output()
        .expect("run voltage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn example_config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// `voltage check-config` and `voltage plan` work on the shipped example configuration.
#[test]
fn check_config_and_plan_accept_the_example_config() {
    let (ok, out, err) = run_voltage(&["check-config"], &example_config());
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("OK (3 channels, 20 points, 3 model templates, 2 threshold rules"),
        "{out}"
    );
    let (ok, out, err) = run_voltage(&["plan"], &example_config());
    assert!(ok, "{err}");
    assert!(out.contains("FC03  0..=10"), "{out}");
    assert!(
        out.contains("line /tmp/voltage-demo/rs485-1 (9600 8N1): channels [1003]"),
        "{out}"
    );
    assert!(
        out.contains("total: 5 requests for 12 points per poll"),
        "{out}"
    );
}

/// One test per kind of mistake: each names file, line and column (or field) of the problem.
#[tokio::test]
async fn check_config_names_file_line_and_column_of_each_kind_of_mistake() {
    let base = |env: &TestEnv| {
        env.write("comsrv/comsrv.yaml", "channels:\n  - id: 1\n    name: a\n    protocol: modbus_tcp\n    parameters: {host: 127.0.0.1, port: 502}\n");
        env.write(
            "comsrv/1/telemetry.csv",
            "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,P,1,0,W,false,float\n",
        );
        env.write(
            "comsrv/1/mapping/telemetry_mapping.csv",
            &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,ABCD,\n"),
        );
    };
    let cases: &[(&str, &str, &str)] = &[
        ("comsrv/comsrv.yaml", "channels:\n  - id: 1\n    name: a\n    protocol: modbus_tcp\n    parameters: {host: 127.0.0.1, prot: 502}\n", "comsrv.yaml:5:35: channels[0].parameters: unknown field `prot`"),
        ("comsrv/comsrv.yaml", "channels:\n  - id: 1\n    name: a\n    protocol: modbus\n", "comsrv.yaml:4:15: channels[0].protocol: unknown variant `modbus`"),
        ("comsrv/comsrv.yaml", "channels:\n  - id: 1\n    name: a\n    protocol: modbus_tcp\n", "comsrv.yaml:2:1: channel 1 (modbus_tcp): parameters.host is required"),
        ("voltage.yaml", "redis:\n  url: redis://x\nservice: {}\n", "voltage.yaml:3:1: unknown field `service`"),
        ("comsrv/1/telemetry.csv", "point_id,signal_name,scale\n1,P,x\n", "telemetry.csv:2:5: scale: \"x\" is not a number"),
        ("comsrv/1/telemetry.csv", "point_id,name\n1,P\n", "telemetry.csv:1:10: unknown column \"name\""),
        ("comsrv/1/telemetry.csv", "point_id,signal_name,data_type\n1,P,flaot\n", "telemetry.csv:2:5: data_type: unknown type \"flaot\""),
        ("comsrv/1/mapping/telemetry_mapping.csv", &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,uint17,ABCD,\n"), "telemetry_mapping.csv:2:9: data_type: unknown data type \"uint17\""),
        ("comsrv/1/mapping/telemetry_mapping.csv", &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,DBCA,\n"), "telemetry_mapping.csv:2:13: byte_order: unknown byte order \"DBCA\""),
        ("comsrv/1/mapping/telemetry_mapping.csv", &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,ABCD,\n2,1,3,1,u16,,\n"), "telemetry_mapping.csv:3:1: point_id 2 has no row in telemetry.csv"),
        ("modsrv/templates/t.yaml", "name: t\npoints: []\nparams: {}\n", "t.yaml:3:1: unknown field `params`"),
        ("alarmsrv/rules.yaml", "rules:\n  - {id: a, point: \"comsrv:1:T:1\", title: x, hihg: 3}\n", "rules.yaml:2:46: rules[0]: unknown field `hihg`"),
    ];
    for (file, text, want) in cases {
        let env = TestEnv::new().await;
        base(&env);
        env.write(file, text);
        let (ok, out, err) = run_voltage(&["check-config"], env.path());
        assert!(!ok, "{file} should be rejected: {out}");
        assert!(err.contains(want), "{file}: wanted {want:?} in:\n{err}");
    }
}

/// TC-E2E-001: a simulated device reads 9500 (scale 0.01 -> 95.00 °C); a rule created through
/// the gateway raises a Critical alarm, visible through `/alarmsrv/alarms?status=active`, and
/// the history through `/hissrv/data/telemetry` holds the reading. The whole daemon, as shipped.
#[tokio::test]
async fn tc_e2e_001_device_to_alarm_pipeline() {
    use voltage_tests::daemon::{create_token, Daemon};
    let env = TestEnv::new().await;
    let device = SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .expect("sim");
    device.bank().set_holding(1, 1, 9500);
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", tcp_channel(1001, device.local_addr(), "")),
    );
    env.write(
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,Temperature,0.01,0.0,℃,false,float\n",
    );
    env.write(
        "comsrv/1001/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,1,u16,,\n"),
    );
    env.write(
        "hissrv/hissrv.yaml",
        "sources:\n  - {channel: 1001, types: [T], interval_ms: 200}\nwal: {dir: wal, max_bytes: 8388608, fsync: always}\n",
    );
    let admin = create_token(&env, "admin", "commissioning");
    let viewer = create_token(&env, "viewer", "hmi");
    let d = Daemon::start(&env, &[]).await;
    let rule = r#"{"name":"Critical Temperature Monitor",
        "condition":{"expression":"comsrv:1001:T:1 > 90.0","data_sources":["comsrv:1001:T:1"]},
        "actions":[{"action_type":"create_alarm","parameters":{"title":"Critical Temperature Alert","level":"Critical","description":"Temperature critically high"}}],
        "enabled":true}"#;
    let (code, body) = d.call("POST", "/rulesrv/rules", Some(&admin), rule).await;
    assert_eq!(code, 201, "{body}");
    // The seed waits 5 s; the alarm must be there by then.
    let alarms = || async {
        let (_, b) = d
            .call("GET", "/alarmsrv/alarms?status=active", Some(&viewer), "")
            .await;
        serde_json::from_str::<Vec<serde_json::Value>>(&b).unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(5) * slow(), alarms, |a| a.iter().any(
            |a| a["title"]
                .as_str()
                .is_some_and(|t| t.contains("Critical Temperature"))
        ))
        .await,
        "no Critical Temperature alarm within 5 s: {:?}",
        alarms().await
    );
    let list = alarms().await;
    let critical = list
        .iter()
        .find(|a| {
            a["title"]
                .as_str()
                .unwrap()
                .contains("Critical Temperature")
        })
        .unwrap();
    assert_eq!(critical["level"], "Critical");
    assert_eq!(critical["status"], "Active");
    let history = || async {
        let (_, b) = d
            .call(
                "GET",
                "/hissrv/data/telemetry?channel_id=1001&point_id=1&duration=5m",
                Some(&viewer),
                "",
            )
            .await;
        serde_json::from_str::<Vec<serde_json::Value>>(&b).unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(5), history, |h| !h.is_empty()).await,
        "no history"
    );
    let h = history().await;
    let latest = h.last().unwrap()["value"].as_f64().unwrap();
    assert!(latest >= 95.0, "latest reading {latest}");
    assert!(
        (latest - 95.0).abs() < 1e-9,
        "9500 x 0.01 = 95.00, got {latest}"
    );
    assert!(d.stop().await.success());
}
#[path = "data_flow/tls.rs"]
mod tls;
