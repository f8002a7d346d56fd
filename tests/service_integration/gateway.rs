//! The gateway in front of the daemon's services (seed 1.6): TC-GATEWAY-001, roles, the JSON
//! error shape, body limits, routes to services in other processes, metrics, live data and the
//! API description. Every test runs the real `voltage` binary on free ports.

use std::time::Duration;
use voltage_tests::daemon::{create_token, voltage_yaml, Daemon};
use voltage_tests::*;

pub(super) fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The product's error shape: `{"error":{"code":N,"message":"..."}}` with N the status.
pub(super) fn assert_error_shape(code: u16, body: &str) {
    let v = json(body);
    assert_eq!(v["error"]["code"], code, "{body}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The API description committed in the repository (firmware/gateway/openapi.json).
pub(super) fn committed_openapi() -> serde_json::Value {
    json(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../firmware/gateway/openapi.json"),
        )
        .unwrap(),
    )
}

fn virtual_channel(env: &TestEnv, id: u32, value: f64) {
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n  - {{id: {id}, name: v, protocol: virtual, parameters: {{poll_interval_ms: 100}}}}\n"),
    );
    env.write(
        &format!("comsrv/{id}/telemetry.csv"),
        "point_id,signal_name\n1,x\n",
    );
    env.write(
        &format!("comsrv/{id}/mapping/telemetry_mapping.csv"),
        &format!("point_id,pattern,params\n1,constant,value={value}\n"),
    );
}

/// TC-GATEWAY-001: `/comsrv/health` ... `/hissrv/health` through the gateway reach the service
/// itself (it reports its own port), and `/health` aggregates all of them.
#[tokio::test]
async fn tc_gateway_001_service_routing() {
    let env = TestEnv::new().await;
    let d = Daemon::start(&env, &[]).await;
    for svc in ["comsrv", "modsrv", "alarmsrv", "rulesrv", "hissrv"] {
        let (code, body) = d.call("GET", &format!("/{svc}/health"), None, "").await;
        assert_eq!(code, 200, "{svc}: {body}");
        let v = json(&body);
        assert_eq!(v["status"], "healthy", "{svc}: {body}");
        assert_eq!(v["service"]["name"], svc, "{body}");
        assert_eq!(v["service"]["port"], d.port(svc), "{svc} answered: {body}");
    }
    let (code, body) = d.call("GET", "/health", None, "").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    let listed: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for svc in [
        "comsrv", "modsrv", "alarmsrv", "rulesrv", "hissrv", "gateway",
    ] {
        assert!(listed.contains(&svc), "{svc} missing from {body}");
    }
    assert!(
        !listed.contains(&"netsrv"),
        "netsrv has no netsrv.yaml here, so it does not run: {body}"
    );
    assert!(v["services"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "healthy" && s["port"].as_u64().is_some()));
    assert_eq!(v["services"][0]["via"], "in-process", "{body}");
    assert!(d.stop().await.success());
}

/// With netsrv configured it runs, is in the aggregated health, and the gateway routes to it.
#[tokio::test]
async fn the_gateway_routes_to_netsrv_when_it_runs() {
    let env = TestEnv::new().await;
    history_config(&env, 61, None, 200);
    // An uplink nobody answers: netsrv runs and keeps the log's data for later.
    let closed = free_port();
    env.write(
        "netsrv/netsrv.yaml",
        &format!("device_id: site-61\nhttp: {{url: \"http://127.0.0.1:{closed}/ingest\"}}\n"),
    );
    let viewer = create_token(&env, "viewer", "noc");
    let d = Daemon::start(&env, &[]).await;
    let (code, body) = d.call("GET", "/netsrv/health", None, "").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["service"]["name"], "netsrv", "{body}");
    assert_eq!(v["service"]["port"], d.port("netsrv"), "{body}");
    let (code, body) = d.call("GET", "/netsrv/status", None, "").await;
    assert_eq!(code, 401, "status needs a token: {body}");
    let (code, body) = d.call("GET", "/netsrv/status", Some(&viewer), "").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("http"),
        "netsrv's status names its sink: {body}"
    );
    let (_, body) = d.call("GET", "/health", None, "").await;
    let listed: Vec<String> = json(&body)["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(listed.iter().any(|s| s == "netsrv"), "{body}");
    assert!(d.stop().await.success());
}

/// Every write route against every role: no token 401, a too-low role 403, enough role passes
/// to the service. Tokens created or revoked while the daemon runs take effect without restart.
#[tokio::test]
async fn roles_decide_who_may_write_and_tokens_change_without_a_restart() {
    let env = TestEnv::new().await;
    let viewer = create_token(&env, "viewer", "wall-display");
    let operator = create_token(&env, "operator", "hmi");
    let admin = create_token(&env, "admin", "commissioning");
    let d = Daemon::start(&env, &[]).await;
    let alarm = r#"{"title":"Door open","description":"cabinet","level":"Info","source":"test","metadata":{}}"#;
    let (code, body) = d
        .call("POST", "/alarmsrv/alarms", Some(&operator), alarm)
        .await;
    assert_eq!(code, 201, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    // (method, path, body, role needed)
    let rule = r#"{"id":"r_auth","name":"a","condition":{"expression":"comsrv:1:T:1 > 1"},"actions":[],"interval_ms":60000}"#;
    let routes: Vec<(&str, String, &str, &str)> = vec![
        ("GET", "/alarmsrv/alarms".into(), "", "viewer"),
        ("GET", "/comsrv/channels".into(), "", "viewer"),
        ("GET", "/rulesrv/rules".into(), "", "viewer"),
        ("POST", "/alarmsrv/alarms".into(), alarm, "operator"),
        (
            "POST",
            format!("/alarmsrv/alarms/{id}/acknowledge"),
            r#"{"acknowledged_by":"op"}"#,
            "operator",
        ),
        (
            "POST",
            "/comsrv/channels/1/control".into(),
            r#"{"point_id":1,"value":1}"#,
            "operator",
        ),
        (
            "POST",
            "/comsrv/channels/1/adjustment".into(),
            r#"{"point_id":1,"value":1}"#,
            "operator",
        ),
        (
            "POST",
            "/rulesrv/rules/r_none/evaluate".into(),
            "",
            "operator",
        ),
        (
            "POST",
            "/modsrv/models/m_none/actions/start".into(),
            "{}",
            "operator",
        ),
        ("POST", "/rulesrv/rules".into(), rule, "admin"),
        ("DELETE", "/rulesrv/rules/r_none".into(), "", "admin"),
        ("POST", "/modsrv/models".into(), "{}", "admin"),
        ("PUT", "/modsrv/models/m_none".into(), "{}", "admin"),
        ("DELETE", "/modsrv/models/m_none".into(), "", "admin"),
    ];
    let rank = |r: &str| {
        ["viewer", "operator", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (method, path, body, need) in &routes {
        let (code, resp) = d.call(method, path, None, body).await;
        assert_eq!(code, 401, "{method} {path} without a token: {resp}");
        assert_error_shape(401, &resp);
        for (role, token) in [
            ("viewer", &viewer),
            ("operator", &operator),
            ("admin", &admin),
        ] {
            let (code, resp) = d.call(method, path, Some(token), body).await;
            if rank(role) < rank(need) {
                assert_eq!(code, 403, "{role} {method} {path}: {resp}");
                assert_error_shape(403, &resp);
                assert!(resp.contains(&format!("needs the {need} role")), "{resp}");
            } else {
                assert!(
                    code != 401 && code != 403,
                    "{role} {method} {path} must reach the service: {code} {resp}"
                );
            }
        }
    }
    let (code, _) = d
        .call("GET", "/alarmsrv/alarms", Some("vt_made_up"), "")
        .await;
    assert_eq!(code, 401, "an unknown token");
    // A token created now works within seconds; revoked, it stops working.
    let late = create_token(&env, "viewer", "late");
    let ok = wait_until(
        Duration::from_secs(5),
        || async { d.call("GET", "/alarmsrv/alarms", Some(&late), "").await.0 },
        |c| *c == 200,
    )
    .await;
    assert!(ok, "a new token is picked up without a restart");
    let out = std::process::Command::new(workspace_bin("voltage"))
        .args(["token", "revoke", "--name", "late", "--config"])
        .arg(env.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let gone = wait_until(
        Duration::from_secs(5),
        || async { d.call("GET", "/alarmsrv/alarms", Some(&late), "").await.0 },
        |c| *c == 401,
    )
    .await;
    assert!(gone, "a revoked token stops working without a restart");
    let text = std::fs::read_to_string(env.path().join("gateway/tokens.yaml")).unwrap();
    for t in [&viewer, &operator, &admin] {
        assert!(!text.contains(t.as_str()), "secrets are never stored");
    }
    assert!(d.stop().await.success());
}

/// Malformed, oversized and unroutable requests get 4xx in the JSON error shape; the daemon
/// keeps serving.
#[tokio::test]
async fn bad_requests_get_json_errors_and_leave_the_daemon_healthy() {
    let env = TestEnv::new().await;
    let admin = create_token(&env, "admin", "root");
    let d = Daemon::start(&env, &[]).await;
    let t = Some(admin.as_str());
    let (code, body) = d.call("POST", "/alarmsrv/alarms", t, "{not json").await;
    assert_eq!(code, 400, "{body}");
    assert_error_shape(400, &body);
    let big = format!(r#"{{"title":"{}"}}"#, "x".repeat(100 * 1024));
    let (code, body) = d.call("POST", "/alarmsrv/alarms", t, &big).await;
    assert_eq!(code, 413, "{body}");
    assert_error_shape(413, &body);
    assert!(body.contains("65536"), "{body}");
    for path in ["/nope", "/comsrv/nope", "/alarmsrv/alarms/1/2/3/4"] {
        let (code, body) = d.call("GET", path, t, "").await;
        assert_eq!(code, 404, "{path}: {body}");
        assert_error_shape(404, &body);
    }
    let (code, body) = d.call("POST", "/health", t, "").await;
    assert_eq!(code, 405, "{body}");
    assert_error_shape(405, &body);
    let (code, body) = d.call("GET", "/events?channels=abc", t, "").await;
    assert_eq!(code, 400, "{body}");
    assert_error_shape(400, &body);
    d.wait_health(200, Duration::from_secs(2)).await;
    assert!(d.stop().await.success());
}

/// The gateway as a process of its own routes to services running in another process, over
/// HTTP, with the same answers.
#[tokio::test]
async fn a_gateway_process_routes_to_services_of_another_process() {
    let env = TestEnv::new().await;
    virtual_channel(&env, 31, 4.5);
    env.write("gateway/gateway.yaml", "request_timeout_ms: 800\n");
    let (yaml, ports) = voltage_yaml("");
    env.write("voltage.yaml", &yaml);
    let services = Daemon::spawn(
        &env,
        ports.clone(),
        &["--only", "comsrv,modsrv,alarmsrv,rulesrv,hissrv"],
    );
    let gw = Daemon::spawn(&env, ports, &["--only", "gateway"]);
    let body = gw.wait_health(200, Duration::from_secs(20)).await;
    let v = json(&body);
    let comsrv = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "comsrv")
        .unwrap()
        .clone();
    assert_eq!(
        comsrv["via"],
        format!("http://127.0.0.1:{}", gw.port("comsrv")),
        "{body}"
    );
    let admin = create_token(&env, "viewer", "v");
    let ok = wait_until(
        Duration::from_secs(5),
        || async { gw.call("GET", "/comsrv/channels", Some(&admin), "").await },
        |(c, b)| *c == 200 && b.contains("\"id\":31"),
    )
    .await;
    assert!(ok, "channels through a remote upstream");
    let ok = wait_until(
        Duration::from_secs(5),
        || async {
            gw.call("GET", "/comsrv/channels/31/points", Some(&admin), "")
                .await
        },
        |(c, b)| *c == 200 && b.contains("\"4.500000\""),
    )
    .await;
    assert!(ok, "point values through a remote upstream");
    let (code, body) = gw
        .call("GET", "/comsrv/channels/999/points", Some(&admin), "")
        .await;
    assert_eq!(code, 404, "{body}");
    assert_error_shape(404, &body);
    let (code, body) = gw.call("GET", "/comsrv/health", None, "").await;
    assert_eq!(code, 200);
    assert_eq!(json(&body)["service"]["port"], gw.port("comsrv"));
    // The services' process goes away: the gateway says so, in the error shape.
    let st = services.stop().await;
    assert!(st.success());
    let (code, body) = gw.call("GET", "/comsrv/channels", Some(&admin), "").await;
    assert_eq!(code, 502, "{body}");
    assert_error_shape(502, &body);
    gw.wait_health(503, Duration::from_secs(5)).await;
    // Something takes comsrv's port that accepts and never answers (a hung process): the
    // gateway gives up at its request timeout with 504, in the same shape, and stays up.
    let hung = tokio::net::TcpListener::bind(("127.0.0.1", gw.port("comsrv")))
        .await
        .expect("comsrv's port is free again");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = hung.accept().await {
            conns.push(c);
        }
    });
    let t = std::time::Instant::now();
    let (code, body) = gw.call("GET", "/comsrv/channels", Some(&admin), "").await;
    let took = t.elapsed();
    assert_eq!(code, 504, "{body}");
    assert_error_shape(504, &body);
    assert!(body.contains("800 ms"), "names the deadline: {body}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    let (code, _) = gw.call("GET", "/health", None, "").await;
    assert_eq!(code, 503, "the gateway itself still answers");
    held.abort();
    assert!(gw.stop().await.success());
}

/// `/metrics` is OpenMetrics with the channels' counters, alarms by state and Redis; open by
/// default, closed when the configuration says so.
#[tokio::test]
async fn metrics_expose_channel_counters_alarms_and_redis_in_openmetrics() {
    let env = TestEnv::new().await;
    virtual_channel(&env, 41, 1.0);
    let d = Daemon::start(&env, &[]).await;
    let ok = wait_until(
        Duration::from_secs(10),
        || async { d.call("GET", "/metrics", None, "").await.1 },
        |t| t.contains("voltage_channel_reads_total{channel=\"41\"}"),
    )
    .await;
    assert!(ok, "channel 41 in the metrics");
    let (code, text) = d.call("GET", "/metrics", None, "").await;
    assert_eq!(code, 200);
    let reads: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("voltage_channel_reads_total{channel=\"41\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(reads >= 1.0, "{text}");
    assert!(
        text.contains("voltage_channel_connected{channel=\"41\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("voltage_alarms{status=\"Active\",level=\"Critical\"} 0"),
        "{text}"
    );
    assert!(text.contains("voltage_redis_up 1"), "{text}");
    assert!(text.contains("voltage_history_log_bytes"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(d.stop().await.success());

    env.write("gateway/gateway.yaml", "auth: {open_metrics: false}\n");
    let d = Daemon::start(&env, &[]).await;
    assert_eq!(d.call("GET", "/metrics", None, "").await.0, 401);
    assert!(d.stop().await.success());
}

/// `/events` streams a snapshot of the subscribed channel, then its changes and alarm events,
/// as server-sent events; it needs a token.
#[tokio::test]
async fn live_events_stream_point_changes_and_alarms() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    virtual_channel(&env, 51, 7.25);
    env.write("gateway/gateway.yaml", "events_interval_ms: 100\n");
    let viewer = create_token(&env, "viewer", "v");
    let operator = create_token(&env, "operator", "o");
    let d = Daemon::start(&env, &[]).await;
    env.wait_value("comsrv:51:T", "1", "7.250000", Duration::from_secs(10))
        .await;
    assert_eq!(d.call("GET", "/events?channels=51", None, "").await.0, 401);
    let mut s = tokio::net::TcpStream::connect(d.gateway()).await.unwrap();
    let req = format!(
        "GET /events?channels=51 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {viewer}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event:points") && seen.contains("7.250000")) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("a points event within 10 s")
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("\"channel\":51"), "{seen}");
    let alarm =
        r#"{"title":"Live one","description":"d","level":"Major","source":"test","metadata":{}}"#;
    let (code, body) = d
        .call("POST", "/alarmsrv/alarms", Some(&operator), alarm)
        .await;
    assert_eq!(code, 201, "{body}");
    while !(seen.contains("event:alarm") && seen.contains("Live one")) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("an alarm event within 10 s")
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Shutdown ends open streams instead of waiting for them.
    assert!(d.stop().await.success());
}

/// Every operation of the API description routes to a real handler: none answers "no such
/// route" (404 without a service message) or 405.
#[tokio::test]
async fn the_openapi_description_matches_the_real_routes() {
    let env = TestEnv::new().await;
    let admin = create_token(&env, "admin", "root");
    let d = Daemon::start(&env, &[]).await;
    let (code, body) = d.call("GET", "/openapi.json", None, "").await;
    assert_eq!(code, 200);
    let spec = json(&body);
    let committed = committed_openapi();
    assert_eq!(spec, committed, "served = the file in the repository");
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "{} paths", paths.len());
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, _) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let concrete = path
                .replace("{channel_id}", "1")
                .replace("{kind}", "telemetry")
                .replace("{action}", "start")
                .replace("{id}", "no_such_id");
            let concrete = if path == "/events" {
                // A live stream never ends: ask with a parameter it refuses.
                "/events?channels=x".to_string()
            } else {
                concrete
            };
            let (code, body) = d
                .call(&method.to_uppercase(), &concrete, Some(&admin), "{}")
                .await;
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            assert!(
                code != 405
                    && !(code == 404
                        && (msg.ends_with(": Not Found") || msg.starts_with("no route"))),
                "{method} {path} ({concrete}) is not a real route: {code} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} operations");
    assert!(d.stop().await.success());
}

/// The shipped nginx configuration fronts the gateway: `/api/...` reaches every route with the
/// token passed through, errors keep their JSON shape, and `/api/events` streams unbuffered.
#[tokio::test]
async fn nginx_fronts_the_gateway_with_the_shipped_configuration() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    virtual_channel(&env, 61, 3.5);
    let viewer = create_token(&env, "viewer", "v");
    let operator = create_token(&env, "operator", "o");
    let d = Daemon::start(&env, &[]).await;
    let nginx = voltage_tests::nginx::Nginx::start(d.port("gateway"));
    let front = std::net::SocketAddr::from(([127, 0, 0, 1], nginx.port));
    let (code, body) = http_get(front, "/api/health").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["service"]["name"], "gateway");
    let (code, body) = http_get(front, "/api/comsrv/health").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["service"]["port"], d.port("comsrv"));
    let (code, body) = http_get(front, "/api/comsrv/channels").await;
    assert_eq!(code, 401, "{body}");
    assert_error_shape(401, &body);
    let auth = format!("Bearer {viewer}");
    let (code, _, body) = http_full(
        front,
        "GET",
        "/api/comsrv/channels",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"id\":61"), "{body}");
    let big = "x".repeat(200 * 1024);
    let op = format!("Bearer {operator}");
    let (code, _, body) = http_full(
        front,
        "POST",
        "/api/alarmsrv/alarms",
        &[("Authorization", &op)],
        &big,
    )
    .await;
    assert_eq!(code, 413, "{body}");
    assert_error_shape(413, &body);
    // Live data through nginx: the first event arrives while the stream stays open.
    let mut s = tokio::net::TcpStream::connect(front).await.unwrap();
    let req =
        format!("GET /api/events?channels=61 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("3.500000") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("an event through nginx within 10 s (unbuffered)")
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("event:points"), "{seen}");
    drop(s);
    drop(nginx);
    assert!(d.stop().await.success());
}

/// A control write through the gateway reaches the device, is verified, and the channel's audit
/// trail names the token that made it (a caller header sent by the client is not trusted).
#[tokio::test]
async fn writes_through_the_gateway_are_audited_with_the_tokens_name() {
    let env = TestEnv::new().await;
    let device =
        voltage_sim::SimServer::bind("127.0.0.1:0".parse().unwrap(), voltage_sim::Bank::new())
            .await
            .unwrap();
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", tcp_channel(71, device.local_addr(), "")),
    );
    env.write("comsrv/71/telemetry.csv", "point_id,signal_name\n1,P\n");
    env.write(
        "comsrv/71/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n"),
    );
    env.write(
        "comsrv/71/adjustment.csv",
        "point_id,signal_name,scale,offset,min_value,max_value\n1,P setpoint,1,0,0,500\n",
    );
    env.write(
        "comsrv/71/mapping/adjustment_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,6,40,u16,,\n"),
    );
    let operator = create_token(&env, "operator", "hmi");
    let d = Daemon::start(&env, &[]).await;
    env.wait_value(
        "comsrv:71:status",
        "connected",
        "1",
        Duration::from_secs(10),
    )
    .await;
    let auth = format!("Bearer {operator}");
    let (code, _, body) = http_full(
        d.gateway(),
        "POST",
        "/comsrv/channels/71/adjustment",
        &[
            ("Authorization", &auth),
            ("X-Voltage-Caller", "token:someone-else"),
        ],
        r#"{"point_id":1,"value":321,"requested_by":"alice"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["verified"], true, "{body}");
    assert_eq!(device.bank().holding(1, 40), 321);
    let mut c = env.redis().await;
    let audit: Vec<String> = redis::cmd("LRANGE")
        .arg("comsrv:71:audit")
        .arg(0)
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        audit
            .first()
            .is_some_and(|a| a.contains("\"token:hmi/alice\"")),
        "{audit:?}"
    );
    // The device's answers show in the response-time histogram of /metrics.
    let (_, text) = d.call("GET", "/metrics", None, "").await;
    let count: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("voltage_channel_response_seconds_count{channel=\"71\"} "))
        .unwrap_or_else(|| panic!("no histogram for channel 71:\n{text}"))
        .parse()
        .unwrap();
    assert!(count >= 1.0);
    assert!(
        text.contains(&format!(
            "voltage_channel_response_seconds_bucket{{channel=\"71\",le=\"+Inf\"}} {count}"
        )),
        "{text}"
    );
    assert!(d.stop().await.success());
}

/// The web console's routes on the real daemon: the page and its files open (gzip when asked),
/// `/auth/whoami` naming the token's role, and comsrv's `GET /channels/{id}` with the point
/// table and the poll counters the overview shows.
#[tokio::test]
async fn the_console_whoami_and_channel_detail_serve_what_the_pages_need() {
    let env = TestEnv::new().await;
    virtual_channel(&env, 62, 4.5);
    let viewer = create_token(&env, "viewer", "panel");
    let d = Daemon::start(&env, &[]).await;
    let (code, headers, body) = http_full(d.gateway(), "GET", "/", &[], "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("console/app.js"), "{body}");
    assert!(headers.to_lowercase().contains("text/html"), "{headers}");
    let (code, headers, _) = http_full(
        d.gateway(),
        "GET",
        "/console/app.js",
        &[("Accept-Encoding", "gzip")],
        "",
    )
    .await;
    assert_eq!(code, 200);
    let h = headers.to_lowercase();
    assert!(
        h.contains("content-encoding: gzip") && h.contains("etag:"),
        "{headers}"
    );
    let (code, body) = d.call("GET", "/console/missing.js", None, "").await;
    assert_eq!(code, 404, "{body}");
    assert_error_shape(404, &body);
    let (code, body) = d.call("GET", "/auth/whoami", None, "").await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = d.call("GET", "/auth/whoami", Some(&viewer), "").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        (v["name"].as_str(), v["role"].as_str()),
        (Some("panel"), Some("viewer"))
    );
    let ok = wait_until(
        Duration::from_secs(10),
        || async {
            d.call("GET", "/comsrv/channels/62", Some(&viewer), "")
                .await
        },
        |(c, b)| {
            *c == 200
                && json(b)["stats"]["total_reads"]
                    .as_f64()
                    .is_some_and(|n| n > 0.0)
        },
    )
    .await;
    let (code, body) = d
        .call("GET", "/comsrv/channels/62", Some(&viewer), "")
        .await;
    assert!(ok, "{code} {body}");
    let v = json(&body);
    assert_eq!(v["id"], 62, "{body}");
    assert_eq!(v["point_table"]["T"][0]["signal_name"], "x", "{body}");
    assert_eq!(v["status"]["connected"], 1, "{body}");
    let (code, body) = d
        .call("GET", "/comsrv/channels/63", Some(&viewer), "")
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(d.stop().await.success());
}
