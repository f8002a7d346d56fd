//! Modbus RTU over serial lines (socat pty pairs), and control/adjustment writes with read-back.
//! These tests need real serial ioctls, which qemu-user does not translate: the cross run skips
//! every test whose name starts with `rtu_`.

use std::time::Duration;
use voltage_sim::{Bank, Corruption, RtuServer};
use voltage_tests::peers::PymodbusServer;
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

fn rtu_channel(id: u32, device: &str, extra: &str) -> String {
    let backoff = if extra.contains("slave_backoff_max_ms") {
        ""
    } else {
        "      slave_backoff_max_ms: 2000\n"
    };
    format!(
        "  - id: {id}\n    name: bus{id}\n    protocol: modbus_rtu\n    parameters:\n      device: {device}\n      baud_rate: 115200\n      poll_interval_ms: 100\n      timeout_ms: 200\n      retries: 0\n      slave_backoff_after: 2\n{backoff}{extra}"
    )
}

/// Telemetry point `s*10+a` on slave `s`, holding register `a`, for each `(slave, address)`.
fn points(env: &TestEnv, id: u32, regs: &[(u8, u16)]) {
    let mut t = String::from("point_id,signal_name\n");
    let mut m = String::from(MODBUS_MAPPING_HEADER);
    for (s, a) in regs {
        let pid = *s as u32 * 10 + *a as u32;
        t += &format!("{pid},s{s}r{a}\n");
        m += &format!("{pid},{s},3,{a},u16,,\n");
    }
    env.write(&format!("comsrv/{id}/telemetry.csv"), &t);
    env.write(&format!("comsrv/{id}/mapping/telemetry_mapping.csv"), &m);
}

fn three_slaves() -> Bank {
    let bank = Bank::new();
    for s in 1..=3u8 {
        bank.set_holdings(s, 0, &[s as u16 * 100, s as u16 * 100 + 1]);
    }
    bank
}

/// Three slaves on one line, served through two channels that share the line scheduler.
#[tokio::test]
async fn rtu_three_slaves_on_one_line_through_two_channels() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let bank = three_slaves();
    let _slave = RtuServer::open(&pty.b(), 115_200, bank.clone()).unwrap();
    env.write(
        "comsrv/comsrv.yaml",
        &format!(
            "channels:\n{}{}",
            rtu_channel(1, &pty.a(), ""),
            rtu_channel(2, &pty.a(), "")
        ),
    );
    points(&env, 1, &[(1, 0), (1, 1), (2, 0), (2, 1)]);
    points(&env, 2, &[(3, 0), (3, 1)]);
    let comsrv = env.start_comsrv().await;
    for (ch, pid, v) in [
        (1, 10, 100),
        (1, 11, 101),
        (1, 20, 200),
        (1, 21, 201),
        (2, 30, 300),
        (2, 31, 301),
    ] {
        env.wait_value(
            &format!("comsrv:{ch}:T"),
            &pid.to_string(),
            &format!("{v}.000000"),
            T,
        )
        .await;
    }
    bank.set_holding(3, 1, 999);
    env.wait_value("comsrv:2:T", "31", "999.000000", T).await;
    // One line, one set of statistics, fed by both channels.
    let line = format!("comsrv:line:{}:stats", pty.a());
    assert!(
        wait_until(T, || env.hget_i64(&line, "requests"), |n| *n >= 6).await,
        "line stats missing"
    );
    for s in 1..=3 {
        assert!(env.hget_i64(&line, &format!("slave_{s}_answers")).await > 0);
        assert!(env
            .hget(&line, &format!("slave_{s}_avg_response_ms"))
            .await
            .is_some());
    }
    assert!(env.hget(&line, "bus_utilisation_pct").await.is_some());
    assert_eq!(env.hget_i64(&line, "crc_errors").await, 0);
    comsrv.stop().await;
}

/// One slave unplugged: the others keep their poll rate within 20 %.
#[tokio::test]
async fn rtu_a_dead_slave_does_not_slow_the_rest_of_the_bus() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let bank = three_slaves();
    let _slave = RtuServer::open(&pty.b(), 115_200, bank.clone()).unwrap();
    // Probes of the dead slave every 5 s at most: each costs one 200 ms timeout of bus time.
    env.write(
        "comsrv/comsrv.yaml",
        &format!(
            "channels:\n{}",
            rtu_channel(1, &pty.a(), "      slave_backoff_max_ms: 5000\n")
        ),
    );
    points(&env, 1, &[(1, 0), (2, 0), (3, 0)]);
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1:T", "30", "300.000000", T).await;
    let line = format!("comsrv:line:{}:stats", pty.a());
    let healthy = answer_rate(&env, &line).await;
    bank.set_silent(2, true);
    env.wait_value("comsrv:1:status", "offline_slaves", "2", T)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // let the backoff reach its cap
    let degraded = answer_rate(&env, &line).await;
    eprintln!("answers/s of slaves 1+3: healthy {healthy:.1}, slave 2 dead {degraded:.1}");
    assert!(healthy > 5.0, "{healthy}");
    assert!(
        degraded >= 0.8 * healthy,
        "rate fell from {healthy:.1}/s to {degraded:.1}/s"
    );
    assert!(env.hget_i64(&line, "timeouts").await > 0);
    // The dead slave is named in the line's per-slave counters; the live ones are clean.
    assert!(env.hget_i64(&line, "slave_2_timeouts").await > 0);
    assert!(
        env.hget_i64(&line, "slave_2_requests").await
            >= env.hget_i64(&line, "slave_2_timeouts").await
    );
    assert_eq!(env.hget_i64(&line, "slave_1_timeouts").await, 0);
    assert!(env.hget_i64(&line, "slave_1_requests").await > 0);
    comsrv.stop().await;
}

/// Answers per second of slaves 1 and 3 over 4 s, from the line statistics.
async fn answer_rate(env: &TestEnv, line: &str) -> f64 {
    let count = || async {
        env.hget_i64(line, "slave_1_answers").await + env.hget_i64(line, "slave_3_answers").await
    };
    let a = count().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    (count().await - a) as f64 / 4.0
}

/// CRC-corrupted and truncated answers are counted, the line resynchronises, and good slaves
/// are unaffected; once the fault clears the slave is read again.
#[tokio::test]
async fn rtu_crc_errors_and_truncated_frames_are_counted_and_resynchronised() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let bank = three_slaves();
    bank.set_corruption(2, Corruption::BadCrc);
    bank.set_corruption(3, Corruption::Truncate);
    let _slave = RtuServer::open(&pty.b(), 115_200, bank.clone()).unwrap();
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", rtu_channel(1, &pty.a(), "")),
    );
    points(&env, 1, &[(1, 0), (2, 0), (3, 0)]);
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1:T", "10", "100.000000", T).await;
    let line = format!("comsrv:line:{}:stats", pty.a());
    assert!(
        wait_until(T, || env.hget_i64(&line, "crc_errors"), |n| *n > 0).await,
        "CRC errors not counted"
    );
    assert!(
        wait_until(T, || env.hget_i64(&line, "frame_errors"), |n| *n > 0).await,
        "truncated frames not counted"
    );
    // ... against the slaves that sent them.
    assert!(
        env.hget_i64(&line, "slave_2_errors").await > 0,
        "slave 2's bad CRCs"
    );
    assert!(
        env.hget_i64(&line, "slave_3_errors").await > 0,
        "slave 3's truncations"
    );
    assert_eq!(env.hget_i64(&line, "slave_1_errors").await, 0);
    assert_eq!(env.hget("comsrv:1:T", "20").await, None);
    assert_eq!(env.hget("comsrv:1:T", "30").await, None);
    bank.set_holding(1, 0, 111);
    env.wait_value("comsrv:1:T", "10", "111.000000", T).await;
    bank.set_corruption(2, Corruption::None);
    bank.set_corruption(3, Corruption::None);
    env.wait_value("comsrv:1:T", "20", "200.000000", Duration::from_secs(10))
        .await;
    env.wait_value("comsrv:1:T", "30", "300.000000", Duration::from_secs(10))
        .await;
    comsrv.stop().await;
}

/// Exception responses are answers: counted, reported with their name, the slave stays online.
#[tokio::test]
async fn rtu_exception_responses_are_reported_and_do_not_mark_the_slave_dead() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let bank = three_slaves();
    bank.add_exception(2, 3, 0, 1, 4);
    let _slave = RtuServer::open(&pty.b(), 115_200, bank.clone()).unwrap();
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", rtu_channel(1, &pty.a(), "")),
    );
    points(&env, 1, &[(1, 0), (2, 0)]);
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1:T", "10", "100.000000", T).await;
    assert!(
        wait_until(
            T,
            || env.hget_i64("comsrv:1:stats", "exceptions"),
            |n| *n >= 3
        )
        .await
    );
    let err = env
        .hget("comsrv:1:status", "last_error")
        .await
        .unwrap_or_default();
    assert!(
        err.contains("slave 2 FC03 0..=0: exception 04 (server device failure)"),
        "{err}"
    );
    assert_eq!(
        env.hget("comsrv:1:status", "offline_slaves")
            .await
            .as_deref(),
        Some("")
    );
    comsrv.stop().await;
}

fn write_tables(env: &TestEnv, id: u32) {
    env.write(
        &format!("comsrv/{id}/control.csv"),
        "point_id,signal_name,reverse,control_type,on_value,off_value,pulse_duration_ms\n1,Breaker,false,latching,1,0,\n2,Reset,false,momentary,1,0,200\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/control_mapping.csv"),
        &format!("{MODBUS_MAPPING_HEADER}1,1,5,0,bool,,\n2,1,6,20,bool,,3\n"),
    );
    env.write(
        &format!("comsrv/{id}/adjustment.csv"),
        "point_id,signal_name,scale,offset,unit,min_value,max_value,step\n1,Power Limit,0.1,0,kW,0,100,0.5\n2,Voltage Setpoint,1,0,V,0,1000,\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/adjustment_mapping.csv"),
        &format!("{MODBUS_MAPPING_HEADER}1,1,6,10,u16,,\n2,1,16,12,f32,CDAB,\n"),
    );
    env.write(
        &format!("comsrv/{id}/telemetry.csv"),
        "point_id,signal_name\n1,P\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/telemetry_mapping.csv"),
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n"),
    );
}

/// Writes over RTU: verified, refused by the device, not sticking, out of range; and the
/// Redis command path.
#[tokio::test]
async fn rtu_control_and_adjustment_writes_are_read_back() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let bank = Bank::new();
    bank.set_holding(1, 20, 0b0100_0001);
    let _slave = RtuServer::open(&pty.b(), 115_200, bank.clone()).unwrap();
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", rtu_channel(5, &pty.a(), "")),
    );
    write_tables(&env, 5);
    let comsrv = env.start_comsrv().await;
    let at = comsrv.local_addr();
    env.wait_value("comsrv:5:status", "connected", "1", T).await;

    // Adjustment: 50.5 kW -> raw 505 in holding register 10, verified by read-back.
    let (code, body) = http_post(
        at,
        "/channels/5/adjustment",
        r#"{"point_id":1,"value":50.5,"requested_by":"op1"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["verified"].as_bool(), v["read_back"].as_str()),
        (Some(true), Some("50.500000")),
        "{body}"
    );
    assert_eq!(bank.holding(1, 10), 505);
    assert_eq!(
        env.hget("comsrv:5:A", "1").await.as_deref(),
        Some("50.500000")
    );
    // f32 CDAB over FC16.
    let (code, body) = http_post(
        at,
        "/channels/5/adjustment",
        r#"{"point_id":2,"value":230.25}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (bank.holding(1, 12), bank.holding(1, 13)),
        (0x4000, 0x4366),
        "f32 230.25 = 0x43664000 in CDAB"
    );

    // Out of range: refused before the device is touched, with the limit named.
    let (code, body) = http_post(
        at,
        "/channels/5/adjustment",
        r#"{"point_id":1,"value":120}"#,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("value 120 is above max_value 100 of point 1 (Power Limit)"),
        "{body}"
    );
    assert_eq!(bank.holding(1, 10), 505);

    // Control on a coil, and a bit inside a register (read-modify-write keeps the other bits).
    let (code, body) = http_post(at, "/channels/5/control", r#"{"point_id":1,"value":1}"#).await;
    assert_eq!(code, 200, "{body}");
    assert!(bank.coil(1, 0));
    let (code, body) = http_post(at, "/channels/5/control", r#"{"point_id":2,"value":1}"#).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        bank.holding(1, 20),
        0b0100_0001,
        "momentary: bit 3 set for 200 ms, then cleared"
    );

    // The device acknowledges but does not apply: written, not verified (202).
    bank.set_ignore_writes(1, true);
    let (code, body) =
        http_post(at, "/channels/5/adjustment", r#"{"point_id":1,"value":60}"#).await;
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["written"].as_bool(), v["verified"].as_bool()),
        (Some(true), Some(false)),
        "{body}"
    );
    bank.set_ignore_writes(1, false);

    // The device refuses (exception): 502 with the exception named.
    bank.add_exception(1, 6, 10, 1, 3);
    let (code, body) =
        http_post(at, "/channels/5/adjustment", r#"{"point_id":1,"value":70}"#).await;
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("exception 03 (illegal data value)"), "{body}");
    bank.clear_faults();

    // Unknown point and bad JSON.
    let (code, _) = http_post(at, "/channels/5/adjustment", r#"{"point_id":9,"value":1}"#).await;
    assert_eq!(code, 404);
    let (code, body) = http_post(at, "/channels/5/adjustment", r#"{"point":1}"#).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown field `point`"), "{body}");

    // The Redis command path other services use.
    let mut c = env.redis().await;
    let cmd = r#"{"request_id":"r-42","channel_id":5,"point_type":"A","point_id":1,"value":80,"requested_by":"rulesrv"}"#;
    redis::cmd("RPUSH")
        .arg("comsrv:commands")
        .arg(cmd)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let mut result = None;
    assert!(
        wait_until(
            T,
            || async {
                redis::cmd("GET")
                    .arg("comsrv:command:r-42")
                    .query_async::<Option<String>>(&mut env.redis().await)
                    .await
                    .unwrap()
            },
            |r| {
                result = r.clone();
                r.is_some()
            }
        )
        .await
    );
    let v: serde_json::Value = serde_json::from_str(&result.unwrap()).unwrap();
    assert_eq!(v["status"], "verified");
    assert_eq!(bank.holding(1, 10), 800);
    // Every write is in the audit trail, newest first, with who asked.
    let audit: Vec<String> = redis::cmd("LRANGE")
        .arg("comsrv:5:audit")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(audit.len() >= 6, "{audit:?}");
    assert!(
        audit[0].contains("\"requested_by\":\"rulesrv\""),
        "{}",
        audit[0]
    );
    comsrv.stop().await;
}

/// pymodbus as an RTU slave on a pty (a peer the firmware did not write).
#[tokio::test]
async fn rtu_pymodbus_peer_serves_the_poller_over_a_pty() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let spec = serde_json::json!({"serial": {"port": pty.b(), "baudrate": 115200},
        "units": {"1": {"hr": {"0": [4321, 65535]}}, "2": {"hr": {"0": [17]}}}});
    let _peer = PymodbusServer::start(&spec).await;
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", rtu_channel(1, &pty.a(), "")),
    );
    env.write(
        "comsrv/1/telemetry.csv",
        "point_id,signal_name\n1,a\n2,b\n3,c\n",
    );
    env.write(
        "comsrv/1/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n2,1,3,1,i16,,\n3,2,3,0,u16,,\n"),
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1:T", "1", "4321.000000", Duration::from_secs(10))
        .await;
    env.wait_value("comsrv:1:T", "2", "-1.000000", T).await;
    env.wait_value("comsrv:1:T", "3", "17.000000", T).await;
    comsrv.stop().await;
}
