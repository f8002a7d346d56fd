//! The gateway's security pass (issue 11, part 4): every write route in the API description
//! refuses a request without a token (401) and a viewer's (403); tokens never reach the logs;
//! the per-client rate limit answers 429 in the JSON error shape with Retry-After.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use voltage_tests::daemon::{create_token, voltage_yaml, Daemon};
use voltage_tests::*;

use super::gateway::{assert_error_shape, committed_openapi};

/// Every POST/PUT/DELETE/PATCH of the committed API description, with its path made concrete.
fn write_routes() -> Vec<(String, String)> {
    let spec = committed_openapi();
    let mut out = Vec::new();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for method in ops.as_object().unwrap().keys() {
            if ["post", "put", "delete", "patch"].contains(&method.as_str()) {
                let concrete = path
                    .replace("{channel_id}", "1")
                    .replace("{action}", "start")
                    .replace("{id}", "x1");
                out.push((method.to_uppercase(), concrete));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_write_route_needs_a_token_and_more_than_a_viewer() {
    let env = TestEnv::new().await;
    let viewer = create_token(&env, "viewer", "wall");
    let d = Daemon::start(&env, &[]).await;
    let routes = write_routes();
    let services: std::collections::BTreeSet<&str> = routes
        .iter()
        .filter_map(|(_, p)| p.split('/').nth(1))
        .collect();
    assert!(routes.len() >= 13, "{routes:?}");
    for svc in ["comsrv", "modsrv", "alarmsrv", "rulesrv"] {
        assert!(
            services.contains(svc),
            "no write route of {svc} in {routes:?}"
        );
    }
    for (method, path) in &routes {
        let (code, body) = d.call(method, path, None, "{}").await;
        assert_eq!(code, 401, "{method} {path} without a token: {body}");
        assert_error_shape(401, &body);
        let (code, body) = d.call(method, path, Some(&viewer), "{}").await;
        assert_eq!(code, 403, "{method} {path} as viewer: {body}");
        assert_error_shape(403, &body);
    }
    assert!(d.stop().await.success());
}

#[tokio::test]
async fn tokens_never_appear_in_the_daemons_log() {
    let env = TestEnv::new().await;
    let viewer = create_token(&env, "viewer", "wall");
    let operator = create_token(&env, "operator", "hmi");
    let admin = create_token(&env, "admin", "root");
    let (yaml, ports) = voltage_yaml("");
    env.write("voltage.yaml", &yaml);
    // Everything the daemon logs, at debug level, on both streams.
    let mut child = tokio::process::Command::new(workspace_bin("voltage"))
        .args(["run", "--config"])
        .arg(env.path())
        .env("REDIS_URL", &env.redis_url)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn voltage");
    // Read both streams while the daemon runs (a full pipe would block its logging).
    let drain = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s).await;
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let d = Daemon { child, ports };
    d.wait_health(200, Duration::from_secs(20)).await;
    let made_up = format!("vt_{}", "q".repeat(40));
    let alarm = r#"{"title":"t","description":"d","level":"Info","source":"test","metadata":{}}"#;
    for token in [&viewer, &operator, &admin, &made_up] {
        d.call("GET", "/alarmsrv/alarms", Some(token), "").await;
        d.call("POST", "/alarmsrv/alarms", Some(token), alarm).await;
        d.call(
            "POST",
            "/comsrv/channels/1/control",
            Some(token),
            r#"{"point_id":1,"value":1}"#,
        )
        .await;
        d.call("DELETE", "/rulesrv/rules/x1", Some(token), "").await;
    }
    // A token sent as a raw header value (no "Bearer ") and in a query string.
    http_full(
        d.gateway(),
        "GET",
        "/alarmsrv/alarms",
        &[("Authorization", &admin)],
        "",
    )
    .await;
    http_full(
        d.gateway(),
        "GET",
        &format!("/alarmsrv/alarms?token={admin}"),
        &[],
        "",
    )
    .await;
    assert!(d.stop().await.success());
    let log = out.await.unwrap() + &err.await.unwrap();
    // The capture works: the refusals and the audited writes are in it.
    assert!(log.contains("refused"), "no refusal logged: {log}");
    assert!(log.lines().count() > 20, "{log}");
    for t in [&viewer, &operator, &admin, &made_up] {
        assert!(!log.contains(t.as_str()), "a token is in the log");
        // Nor a long enough part of it to replay or guess.
        let tail = &t[t.len() - 16..];
        assert!(!log.contains(tail), "part of a token is in the log");
    }
}

#[tokio::test]
async fn a_client_over_its_request_rate_gets_429_with_retry_after() {
    let env = TestEnv::new().await;
    env.write(
        "gateway/gateway.yaml",
        "rate_limit: {per_second: 0.5, burst: 3}\n",
    );
    let (yaml, ports) = voltage_yaml("");
    env.write("voltage.yaml", &yaml);
    let d = Daemon::spawn(&env, ports, &[]);
    // Waiting for health spends tokens: wait for the bucket to be spent, then for a refill.
    let t = std::time::Instant::now();
    while tokio::net::TcpStream::connect(d.gateway()).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut codes = Vec::new();
    let mut refused = None;
    // A route the gateway answers itself (404), so the burst is spent faster than a refill
    // even on a slow machine; the limiter runs before routing.
    for _ in 0..5 {
        let (code, headers, body) = http_full(d.gateway(), "GET", "/nope", &[], "").await;
        codes.push(code);
        if code == 429 {
            refused = Some((headers, body));
            break;
        }
    }
    assert_eq!(
        codes.iter().filter(|c| **c != 429).count(),
        3,
        "a burst of 3: {codes:?}"
    );
    let (headers, body) = refused.expect("the fourth request is refused");
    assert_error_shape(429, &body);
    let retry = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Retry-After in {headers}"));
    let secs: u64 = retry.parse().expect("Retry-After in seconds");
    assert!((1..=2).contains(&secs), "Retry-After {secs}");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (code, _, body) = http_full(d.gateway(), "GET", "/health", &[], "").await;
    assert_ne!(
        code, 429,
        "after Retry-After the client is served again: {body}"
    );
    assert!(d.stop().await.success());
}
