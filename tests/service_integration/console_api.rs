//! The service routes the web console reads beyond the basics: a channel's read plan and its
//! points' quality marks (comsrv), the serial lines with their bus utilisation (comsrv), a
//! rule's executions (rulesrv), a threshold's shelving expiry and an alarm's event history
//! (alarmsrv). Each against a real Redis and, where it polls, a real Modbus peer.

use super::start_rulesrv;
use std::time::Duration;
use voltage_sim::{Bank, RtuServer, SimServer};
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Four telemetry points on holding registers 0, 1, 40 (one u32: two registers) and input
/// register 5: with the default gap of 8 they take three requests.
fn modbus_points(env: &TestEnv, id: u32) {
    env.write(
        &format!("comsrv/{id}/telemetry.csv"),
        "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,a,1,0,V,false,float\n2,b,1,0,V,false,float\n3,c,1,0,kWh,false,float\n4,d,1,0,A,false,float\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/telemetry_mapping.csv"),
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,ABCD,\n2,1,3,1,u16,ABCD,\n3,1,3,40,u32,ABCD,\n4,1,4,5,u16,ABCD,\n"),
    );
}

/// `GET /channels/{id}/plan` gives the requests, bytes and rate of the configuration comsrv
/// runs; `GET /channels/{id}/points` and `GET /channels/{id}` show which values are stale: none
/// of a channel that polls, every one of a channel whose device never answered.
#[tokio::test]
async fn comsrv_serves_the_read_plan_and_the_quality_of_each_point() {
    let env = TestEnv::new().await;
    let bank = Bank::new();
    bank.set_holdings(1, 0, &[11, 12]);
    bank.set_holdings(1, 40, &[0, 13]);
    let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), bank)
        .await
        .unwrap();
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    env.write(
        "comsrv/comsrv.yaml",
        &format!(
            "channels:\n{}{}  - {{id: 3, name: v, protocol: virtual}}\n",
            tcp_channel(1, server.local_addr(), ""),
            tcp_channel(2, dead, "")
        ),
    );
    modbus_points(&env, 1);
    modbus_points(&env, 2);
    env.write("comsrv/3/telemetry.csv", "point_id,signal_name\n1,x\n");
    env.write(
        "comsrv/3/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,constant,value=3\n",
    );
    let comsrv = env.start_comsrv().await;
    let addr = comsrv.local_addr();

    // The channels register as the supervisor applies the configuration, just after start.
    let plan = || async { http_get(addr, "/channels/1/plan").await };
    assert!(wait_until(T, plan, |(c, _)| *c == 200).await);
    let (code, body) = plan().await;
    assert_eq!(code, 200, "{body}");
    let p = json(&body);
    assert_eq!(p["channel"], 1);
    assert_eq!(p["protocol"], "modbus_tcp");
    assert_eq!(p["link"], server.local_addr().to_string());
    assert_eq!(p["poll_interval_ms"], 100);
    let reqs = p["requests"].as_array().expect("requests");
    let got: Vec<(u64, &str, u64, u64, u64)> = reqs
        .iter()
        .map(|r| {
            (
                r["slave"].as_u64().unwrap(),
                r["function"].as_str().unwrap(),
                r["start"].as_u64().unwrap(),
                r["end"].as_u64().unwrap(),
                r["points"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "FC03", 0, 1, 2),
            (1, "FC03", 40, 41, 1),
            (1, "FC04", 5, 5, 1)
        ],
        "{body}"
    );
    // MBAP 7 + PDU 5 per request; answers 9 + 2 per register.
    assert_eq!(reqs[0]["request_bytes"], 12);
    assert_eq!(reqs[0]["response_bytes"], 13);
    assert_eq!(p["points"], 4);
    assert_eq!(p["request_bytes"], 36);
    assert_eq!(p["response_bytes"], 13 + 13 + 11);
    assert_eq!(p["bytes_per_second"], 730.0, "(36 + 37) B every 100 ms");
    assert!(p["estimated_bus_ms"].is_null(), "no bus on TCP: {body}");
    let (code, body) = http_get(addr, "/channels/3/plan").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["requests"], serde_json::json!([]));
    assert!(v["note"].as_str().unwrap().contains("virtual"), "{body}");
    let (code, body) = http_get(addr, "/channels/9/plan").await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no running channel 9"), "{body}");
    // TCP only: no serial line.
    let (code, body) = http_get(addr, "/lines").await;
    assert_eq!((code, body.as_str()), (200, "[]"));

    // Channel 2's device never answers: its points are listed stale, without a value.
    let stale = || async { http_get(addr, "/channels/2").await.1 };
    assert!(
        wait_until(T, stale, |b| json(b)["quality"]["stale"] == 4).await,
        "{}",
        stale().await
    );
    let (code, body) = http_get(addr, "/channels/2/points").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        v["T"]["3"],
        serde_json::json!({"value": null, "ts": null, "quality": "stale"}),
        "{body}"
    );
    // Channel 1 polls: values without a mark, no stale point.
    env.wait_value("comsrv:1:T", "3", "13.000000", T).await;
    let (_, body) = http_get(addr, "/channels/1/points").await;
    let v = json(&body);
    assert_eq!(v["T"]["3"]["value"], "13.000000", "{body}");
    assert!(v["T"]["3"].get("quality").is_none(), "{body}");
    let (_, body) = http_get(addr, "/channels/1").await;
    assert_eq!(
        json(&body)["quality"],
        serde_json::json!({"stale": 0, "uncertain": 0, "bad": 0}),
        "{body}"
    );
    // The device goes away: the last values stay, marked stale.
    server.stop().await;
    let marked = || async { http_get(addr, "/channels/1/points").await.1 };
    assert!(
        wait_until(T, marked, |b| json(b)["T"]["3"]["quality"] == "stale").await,
        "{}",
        marked().await
    );
    assert_eq!(json(&marked().await)["T"]["3"]["value"], "13.000000");
    comsrv.stop().await;
}

/// `GET /lines`: a serial line with its channels, the plan's estimate of its load and what the
/// line measured. Named `rtu_` because it needs a pty (the cross run skips those).
#[tokio::test]
async fn rtu_lines_show_each_serial_line_with_estimated_and_measured_utilisation() {
    let env = TestEnv::new().await;
    let pty = PtyPair::new();
    let bank = Bank::new();
    bank.set_holdings(1, 0, &[5, 6]);
    let _slave = RtuServer::open(&pty.b(), 9600, bank).unwrap();
    env.write(
        "comsrv/comsrv.yaml",
        &format!(
            "channels:\n  - id: 4\n    name: bus\n    protocol: modbus_rtu\n    parameters:\n      device: {}\n      baud_rate: 9600\n      poll_interval_ms: 200\n      timeout_ms: 300\n",
            pty.a()
        ),
    );
    env.write("comsrv/4/telemetry.csv", "point_id,signal_name\n1,a\n2,b\n");
    env.write(
        "comsrv/4/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n2,1,3,1,u16,,\n"),
    );
    let comsrv = env.start_comsrv().await;
    let addr = comsrv.local_addr();
    env.wait_value("comsrv:4:T", "2", "6.000000", T).await;
    let lines = || async { http_get(addr, "/lines").await };
    let mut last = (0, String::new());
    let measured = wait_until(T, lines, |(c, b)| {
        last = (*c, b.clone());
        *c == 200
            && json(b)[0]["stats"]["requests"]
                .as_u64()
                .is_some_and(|n| n > 0)
    })
    .await;
    assert!(measured, "{last:?}");
    let v = json(&last.1);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let l = &v[0];
    assert_eq!(l["name"], pty.a());
    assert_eq!(l["settings"], "9600 8N1");
    assert_eq!(l["channels"], serde_json::json!([4]));
    // One request of 8 B and an answer of 9 B at 9600 8N1 (17.7 ms) plus two t3.5 gaps
    // (8.0 ms) every 200 ms: 12.9 %.
    let est = l["estimated_utilisation_pct"].as_f64().unwrap();
    assert!((12.0..14.0).contains(&est), "{l}");
    let util = l["stats"]["bus_utilisation_pct"].as_f64();
    assert!(util.is_some_and(|u| (0.0..=100.0).contains(&u)), "{l}");
    let (_, body) = http_get(addr, "/channels/4/plan").await;
    let p = json(&body);
    assert_eq!(p["line"], pty.a());
    assert_eq!(p["estimated_utilisation_pct"], est, "{body}");
    comsrv.stop().await;
}

/// `GET /rules/{id}/executions`: every firing, newest first, with the values it saw; `limit`
/// cuts the list; an unknown rule is 404 and an unknown parameter 400.
#[tokio::test]
async fn rule_executions_are_listed_newest_first() {
    let env = TestEnv::new().await;
    put_reading(&env, 8, 1, 10.0, now_ms()).await;
    let r = start_rulesrv(&env).await;
    let addr = r.local_addr();
    let rule = r#"{"id":"r_exec","name":"over 50","condition":{"expression":"comsrv:8:T:1 > 50"},"actions":[],"interval_ms":60000}"#;
    assert_eq!(http_post(addr, "/rules", rule).await.0, 201);
    let (code, body) = http_get(addr, "/rules/r_exec/executions").await;
    assert_eq!((code, body.as_str()), (200, "[]"), "never fired yet");
    // Two rising edges: 60, back to 10, then 70.
    for v in [60.0, 10.0, 70.0] {
        put_reading(&env, 8, 1, v, now_ms()).await;
        let (code, body) = http_post(addr, "/rules/r_exec/evaluate", "").await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = http_get(addr, "/rules/r_exec/executions").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    let seen: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["triggered"], true, "{e}");
            assert!(e["executed_at"].is_string(), "{e}");
            e["values"]["comsrv:8:T:1"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(seen, vec![70.0, 60.0], "{body}");
    let (_, body) = http_get(addr, "/rules/r_exec/executions?limit=1").await;
    assert_eq!(json(&body).as_array().unwrap().len(), 1, "{body}");
    let (code, body) = http_get(addr, "/rules/nope/executions").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_get(addr, "/rules/r_exec/executions?since=1").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = http_get(addr, "/rules/r_exec/executions?limit=0").await;
    assert_eq!(code, 400, "{body}");
    r.stop().await;
}

/// A shelved threshold shows until when (`shelved_until`), and a shelving of 0 ms ends it; an
/// alarm's history (`events` of `GET /alarms/{id}`) lists each step with who and the notes.
#[tokio::test]
async fn thresholds_show_their_shelving_and_alarms_their_history() {
    let env = TestEnv::new().await;
    env.write(
        "alarmsrv/rules.yaml",
        "rules:\n  - {id: hot, point: \"comsrv:9:T:1\", title: Hot, level: Major, high: 45.0}\n",
    );
    let a = env.start_alarmsrv().await;
    let addr = a.local_addr();
    let shelved =
        || async { json(&http_get(addr, "/thresholds").await.1)[0]["shelved_until"].clone() };
    assert!(shelved().await.is_null());
    let before = now_ms();
    let (code, body) = http_post(addr, "/thresholds/hot/shelve", r#"{"duration_ms":600000}"#).await;
    assert_eq!(code, 200, "{body}");
    let until = shelved().await.as_u64().expect("shelved_until");
    assert!(
        (before + 600_000..=now_ms() + 600_000).contains(&until),
        "{until}"
    );
    assert_eq!(json(&body)["shelved_until"], until);
    // While shelved, a value over the limit raises nothing.
    put_reading(&env, 9, 1, 50.0, now_ms()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!http_get(addr, "/alarms?status=active")
        .await
        .1
        .contains("Hot"));
    // Shelving ended: the condition still holds, so the alarm comes.
    let (code, _) = http_post(addr, "/thresholds/hot/shelve", r#"{"duration_ms":0}"#).await;
    assert_eq!(code, 200);
    assert!(shelved().await.is_null());
    let active = || async { http_get(addr, "/alarms?status=active").await.1 };
    assert!(wait_until(T, active, |b| b.contains("Hot")).await);
    let (code, body) = http_post(addr, "/thresholds/nope/shelve", r#"{"duration_ms":1}"#).await;
    assert_eq!(code, 404, "{body}");

    let (code, body) = http_post(
        addr,
        "/alarms",
        r#"{"title":"Door","description":"","level":"Info","source":"t","metadata":{}}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let (code, body) = http_post(
        addr,
        &format!("/alarms/{id}/acknowledge"),
        r#"{"acknowledged_by":"op","notes":"on my way"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (_, body) = http_get(addr, &format!("/alarms/{id}")).await;
    let ev = json(&body)["events"].clone();
    let steps: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(steps, vec!["created", "acknowledged"], "{body}");
    assert_eq!(ev[1]["by"], "op");
    assert_eq!(ev[1]["notes"], "on my way");
    assert!(ev[1]["at"].is_string(), "{body}");
    a.stop().await;
}
