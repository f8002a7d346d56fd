//! `GET /health`: every service this controller runs, asked in parallel, plus the gateway's own
//! Redis. 200 only when all are healthy; otherwise 503 with each one's status and reason, so a
//! probe and an operator see the same truth.

use crate::{raw, Gateway};
use bytes::Bytes;
use std::time::Duration;
use warp::http::{HeaderMap, Method, StatusCode};

static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);

const DEADLINE: Duration = Duration::from_secs(2);

pub(crate) async fn aggregate(gw: &Gateway) -> warp::reply::Response {
    let checks = gw.services.iter().map(|(name, s)| async move {
        let asked = s
            .upstream
            .send(Method::GET, "/health", &NO_HEADERS, Bytes::new());
        let (status, reason) = match tokio::time::timeout(DEADLINE, asked).await {
            Err(_) => ("unhealthy", Some(format!("no answer within {DEADLINE:?}"))),
            Ok(Err(e)) => ("unreachable", Some(e)),
            Ok(Ok(a)) => {
                let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
                if a.status == StatusCode::OK && v["status"] == "healthy" {
                    ("healthy", None)
                } else {
                    let why = v["reason"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("answered {}", a.status));
                    ("unhealthy", Some(why))
                }
            }
        };
        serde_json::json!({"name": name, "port": s.port, "status": status, "reason": reason,
            "via": s.upstream.describe()})
    });
    let own = async {
        match tokio::time::timeout(Duration::from_secs(1), gw.store.ping()).await {
            Ok(Ok(())) => ("healthy", None),
            Ok(Err(e)) => ("unhealthy", Some(format!("redis unreachable: {e}"))),
            Err(_) => ("unhealthy", Some("redis did not answer within 1 s".into())),
        }
    };
    let (mut list, (own_status, own_reason)) = tokio::join!(futures::future::join_all(checks), own);
    list.push(
        serde_json::json!({"name": "gateway", "port": gw.port, "status": own_status,
        "reason": own_reason, "via": "self"}),
    );
    let healthy = list.iter().all(|s| s["status"] == "healthy");
    let body = serde_json::json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "service": {"name": "gateway", "port": gw.port},
        "services": list,
    });
    raw(
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        "application/json",
        Bytes::from(body.to_string()),
    )
}
