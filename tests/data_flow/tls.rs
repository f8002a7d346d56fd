//! The uplinks over TLS: history to an MQTT broker that requires a client certificate, to an
//! InfluxDB behind an HTTPS proxy that requires one too, and the refusals a controller must
//! make (a server certificate from another CA; a server name that does not match).

use super::*;
use voltage_tests::mqtt::{subscribe, Mosquitto};
use voltage_tests::pki::Pki;

/// mosquitto.conf lines for a TLS listener with `cert`, trusting the test CA for clients.
fn tls_listener(pki: &Pki, cert: &str, require_client_cert: bool) -> String {
    format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_client_cert}\n",
        pki.file("ca.pem"),
        pki.file(&format!("{cert}.pem")),
        pki.file(&format!("{cert}.key")),
    )
}

/// A broker with a plain listener (for the test's subscriber) and a TLS one (its port).
async fn tls_broker(pki: &Pki, cert: &str, require_client_cert: bool) -> (Mosquitto, u16) {
    let broker = Mosquitto::start_with(Some(&tls_listener(pki, cert, require_client_cert))).await;
    let tls_port = broker.extra.as_ref().expect("a TLS listener").0;
    (broker, tls_port)
}

/// Waits until netsrv has failed to connect at least once (and, with `backlog`, the log holds a
/// record); returns whether it did and the last status seen.
async fn refused(n: &netsrv::Running, backlog: bool) -> (bool, serde_json::Value) {
    let mut last = serde_json::Value::Null;
    let ok = wait_until(
        T,
        || netsrv_status(n),
        |s| {
            last = s.clone();
            s["mqtt"]["failures"].as_u64().unwrap_or(0) >= 1
                && (!backlog || s["log"]["next_seq"].as_u64().unwrap_or(0) >= 1)
        },
    )
    .await;
    (ok, last)
}

fn last_error(status: &serde_json::Value) -> String {
    status["mqtt"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
}

/// netsrv's MQTT link to the broker's TLS listener on 127.0.0.1 with `tls` settings.
fn netsrv_over_tls(env: &TestEnv, port: u16, tls: &str) {
    env.write(
        "netsrv/netsrv.yaml",
        &format!("device_id: site-tls\nmqtt: {{host: 127.0.0.1, port: {port}, batch_size: 10, keep_alive_s: 5, alarms: false, tls: {tls}}}\n"),
    );
}

async fn netsrv_status(n: &netsrv::Running) -> serde_json::Value {
    let (code, body) = http_get(n.local_addr(), "/status").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Values of the telemetry messages received so far. Other messages on a wildcard
/// subscription (the retained `online`/`offline` status of an earlier link) carry no points.
fn values(got: &std::sync::Mutex<Vec<String>>) -> Vec<f64> {
    let mut out = Vec::new();
    for m in got.lock().unwrap().iter() {
        if m == "online" || m == "offline" {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(m).unwrap_or_else(|e| panic!("not JSON ({e}): {m:?}"));
        for p in v["points"].as_array().into_iter().flatten() {
            out.push(p["value"].as_f64().unwrap());
        }
    }
    out
}

#[tokio::test]
async fn history_reaches_an_mqtt_broker_that_requires_a_client_certificate() {
    let env = TestEnv::new().await;
    let pki = Pki::new();
    let (broker, tls_port) = tls_broker(&pki, "server", true).await;
    let got = subscribe(broker.port, "voltage/site-tls/telemetry").await;
    history_config(&env, 41, None, 50);
    netsrv_over_tls(
        &env,
        tls_port,
        &format!(
            "{{ca_file: {}, client_cert: {}, client_key: {}}}",
            pki.file("ca.pem"),
            pki.file("client.pem"),
            pki.file("client.key")
        ),
    );
    let (h, n) = env.start_history_and_net().await;
    let t0 = now_ms() - 10_000;
    for i in 0..5u64 {
        put_logged(&env, h.local_addr(), 41, 1, 10.0 + i as f64, t0 + i * 1000).await;
    }
    let ok = wait_until(T, || async { values(&got) }, |v| v.len() >= 5).await;
    assert!(ok, "over mutual TLS got {:?}", values(&got));
    let mut v = values(&got);
    v.dedup();
    assert_eq!(v, vec![10.0, 11.0, 12.0, 13.0, 14.0]);
    let s = netsrv_status(&n).await;
    assert_eq!(s["mqtt"]["connected"], true, "{s}");
    h.stop().await;
    n.stop().await;
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_is_refused_and_the_log_keeps_the_data() {
    let env = TestEnv::new().await;
    let pki = Pki::new();
    let (broker, tls_port) = tls_broker(&pki, "server", false).await;
    let got = subscribe(broker.port, "voltage/site-tls/telemetry").await;
    history_config(&env, 42, None, 50);
    netsrv_over_tls(
        &env,
        tls_port,
        &format!("{{ca_file: {}}}", pki.file("other-ca.pem")),
    );
    let (h, n) = env.start_history_and_net().await;
    put_reading(&env, 42, 1, 5.0, now_ms()).await;
    let (refused, last) = refused(&n, true).await;
    assert!(refused, "a failed handshake and a backlog: {last}");
    let err = last_error(&last);
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{last}"
    );
    assert_eq!(last["mqtt"]["connected"], false, "{last}");
    assert_eq!(
        last["mqtt"]["sent_records"], 0,
        "the sample stays in the log: {last}"
    );
    assert!(
        values(&got).is_empty(),
        "nothing crossed an unverified link"
    );
    h.stop().await;
    n.stop().await;
}

#[tokio::test]
async fn server_name_verifies_a_broker_reached_by_address() {
    let env = TestEnv::new().await;
    let pki = Pki::new();
    let (broker, tls_port) = tls_broker(&pki, "named-server", false).await;
    let got = subscribe(broker.port, "voltage/site-tls/telemetry").await;
    history_config(&env, 43, None, 50);
    netsrv_over_tls(
        &env,
        tls_port,
        &format!(
            "{{ca_file: {}, server_name: broker.site.example}}",
            pki.file("ca.pem")
        ),
    );
    let (h, n) = env.start_history_and_net().await;
    put_reading(&env, 43, 1, 7.25, now_ms()).await;
    let ok = wait_until(T, || async { values(&got) }, |v| !v.is_empty()).await;
    assert!(
        ok,
        "delivered with the certificate's name: {}",
        netsrv_status(&n).await
    );
    assert_eq!(values(&got)[0], 7.25);
    h.stop().await;
    n.stop().await;

    // The same broker without server_name: 127.0.0.1 is not in its certificate.
    let env = TestEnv::new().await;
    let got = subscribe(broker.port, "voltage/site-tls/+").await;
    history_config(&env, 44, None, 50);
    netsrv_over_tls(
        &env,
        tls_port,
        &format!("{{ca_file: {}}}", pki.file("ca.pem")),
    );
    let (h, n) = env.start_history_and_net().await;
    put_reading(&env, 44, 1, 1.0, now_ms()).await;
    let (refused, last) = refused(&n, false).await;
    assert!(refused, "{last}");
    assert!(last_error(&last).contains("not valid for name"), "{last}");
    assert!(values(&got).iter().all(|v| *v != 1.0), "nothing delivered");
    h.stop().await;
    n.stop().await;
}

/// InfluxDB behind nginx terminating HTTPS and requiring a client certificate: samples arrive,
/// and the history API reads them back over the same link.
#[tokio::test]
async fn history_reaches_influxdb_over_https_with_a_client_certificate() {
    let env = TestEnv::new().await;
    let pki = Pki::new();
    let influx = voltage_tests::influx::Influxd::start().await;
    influx.query("", "CREATE DATABASE ems").await;
    let port = voltage_tests::free_port();
    let site = format!(
        "server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {};\n  ssl_certificate_key {};\n  \
         ssl_client_certificate {};\n  ssl_verify_client on;\n  location / {{ proxy_pass {}; }}\n}}\n",
        pki.file("server.pem"),
        pki.file("server.key"),
        pki.file("ca.pem"),
        influx.url()
    );
    let _nginx = voltage_tests::nginx::Nginx::with_site(port, &site);
    env.write(
        "comsrv/comsrv.yaml",
        "channels:\n  - {id: 45, name: h, protocol: virtual}\n",
    );
    env.write(
        "hissrv/hissrv.yaml",
        &format!(
            "influxdb: {{url: \"https://127.0.0.1:{port}\", api: v1, database: ems, batch_size: 100, flush_interval_ms: 100, timeout_ms: 2000, \
             tls: {{ca_file: {}, client_cert: {}, client_key: {}}}}}\nsources:\n  - {{channel: 45, types: [T], interval_ms: 50}}\nwal: {{dir: wal, max_bytes: 8388608, fsync: always}}\n",
            pki.file("ca.pem"),
            pki.file("client.pem"),
            pki.file("client.key")
        ),
    );
    let t0 = now_ms() - 2000;
    put_reading(&env, 45, 1, 42.5, t0).await;
    let h = env.start_hissrv().await;
    let q = "SELECT value FROM telemetry WHERE channel_id = '45' AND time >= now() - 5m";
    let mut got = Vec::new();
    let ok = wait_until(
        T,
        || influx.values("ems", q),
        |v| {
            got = v.clone();
            !v.is_empty()
        },
    )
    .await;
    assert!(ok, "nothing reached InfluxDB over HTTPS");
    assert_eq!(got[0], (t0 as i64 * 1_000_000, 42.5));
    // A point only InfluxDB holds (never in the local log): the history API can only answer it
    // through the HTTPS link.
    let line = format!(
        "telemetry,channel_id=45,point_id=9 value=3.5 {}",
        t0 * 1_000_000
    );
    let (code, body) = http_request(influx.port, "POST", "/write?db=ems", &line).await;
    assert_eq!(code, 204, "{body}");
    let (code, body) = http_get(
        h.local_addr(),
        "/data/telemetry?channel_id=45&point_id=9&duration=5m",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v[0]["value"], 3.5,
        "read back from InfluxDB over HTTPS: {body}"
    );
    h.stop().await;
}
