//! comsrv's HTTP endpoint: `GET /health` (200 healthy / 503 unhealthy with the reason) and
//! `GET /channels` (each channel's name, protocol, point count, connection and last error).

use crate::supervisor::StatusView;
use crate::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use voltage_store::Store;
use warp::http::StatusCode;
use warp::Filter;

pub fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    (view, config_error): (StatusView, Arc<Mutex<Option<String>>>),
    port: u16,
    mut stop: Shutdown,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let health = warp::path!("health").and(warp::get()).then(move || {
        let store = store.clone();
        let config_error = config_error.clone();
        async move {
            let service = serde_json::json!({ "name": "comsrv", "port": port });
            let ping = tokio::time::timeout(Duration::from_secs(1), store.ping()).await;
            let cfg_err = config_error.lock().expect("lock").clone();
            let (code, body) = match ping {
                Ok(Ok(())) => (
                    StatusCode::OK,
                    serde_json::json!({ "status": "healthy", "service": service, "config_error": cfg_err }),
                ),
                Ok(Err(e)) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "status": "unhealthy", "service": service, "reason": format!("redis unreachable: {e}") }),
                ),
                Err(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "status": "unhealthy", "service": service, "reason": "redis did not answer within 1 s" }),
                ),
            };
            warp::reply::with_status(warp::reply::json(&body), code)
        }
    });
    let channels = warp::path!("channels")
        .and(warp::get())
        .map(move || warp::reply::json(&view.snapshot()));
    let routes = health.or(channels);
    async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stop.wait().await })
            .run()
            .await;
    }
}
