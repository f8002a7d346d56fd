//! The history log lives on the controller's flash, where a disk error or a firmware rollback
//! (older firmware meeting a newer log format) can leave it unreadable to this build. Devices
//! must be polled on regardless: only the services that need the log stop, and they say why.

use super::one_point_channel;
use std::net::SocketAddr;
use std::time::Duration;
use voltage_sim::{Bank, SimServer};
use voltage_tests::daemon::{voltage_yaml, Daemon};
use voltage_tests::*;

/// A log segment of format version 2 does not stop the daemon: comsrv polls on, hissrv answers
/// 503 naming the file and the version (on its port and through the gateway's `/health`), and
/// the segment is left byte for byte as it was.
#[tokio::test]
async fn an_unreadable_history_log_stops_only_the_history_services() {
    let env = TestEnv::new().await;
    let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .unwrap();
    server.bank().set_holding(1, 1, 42);
    one_point_channel(&env, 31, server.local_addr());
    env.write(
        "hissrv/hissrv.yaml",
        "sources:\n  - {channel: 31, types: [T], interval_ms: 100}\nwal: {dir: wal, fsync: always}\n",
    );
    let seg = env.path().join("wal/00000000000000000000.seg");
    std::fs::create_dir_all(seg.parent().unwrap()).unwrap();
    let bytes = b"VWAL\x02records of a newer firmware".to_vec();
    std::fs::write(&seg, &bytes).unwrap();
    let (yaml, ports) = voltage_yaml("");
    env.write("voltage.yaml", &yaml);

    let d = Daemon::spawn(&env, ports, &[]);
    let body = d.wait_health(503, Duration::from_secs(20) * slow()).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let service = |name: &str| {
        v["services"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in /health: {body}"))
    };
    let h = service("hissrv");
    assert_eq!(h["status"], "unhealthy", "{body}");
    let reason = h["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("version 2") && reason.contains("00000000000000000000.seg"),
        "the reason names the file and the version: {body}"
    );
    assert_eq!(service("comsrv")["status"], "healthy", "{body}");
    env.wait_value(
        "comsrv:31:T",
        "1",
        "42.000000",
        Duration::from_secs(5) * slow(),
    )
    .await;

    let hissrv = SocketAddr::from(([127, 0, 0, 1], d.port("hissrv")));
    let (code, body) = http_get(hissrv, "/health").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("version 2"), "{body}");
    let (code, body) = http_get(hissrv, "/data/telemetry?channel_id=31&point_id=1").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("hissrv is not running"), "{body}");

    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "the unreadable segment is left as it was"
    );
    assert!(d.stop().await.success(), "an orderly stop");
}
