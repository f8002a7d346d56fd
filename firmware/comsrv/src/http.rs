//! comsrv's HTTP endpoint: `GET /health` (200 healthy / 503 unhealthy with the reason),
//! `GET /channels` (each channel's name, protocol, point count, connection and last error), and
//! `POST /channels/{id}/control` / `.../adjustment` with `{"point_id":N,"value":V,
//! "requested_by":"who"}`: 200 verified, 202 written but not verified, 404 unknown channel or
//! point, 422 refused (out of range), 502 the device refused or did not answer, 400 bad JSON.

use crate::supervisor::{StatusView, WriteRouter};
use crate::write::WriteRequest;
use crate::Shutdown;
use crate::WriteStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use voltage_core::PointType;
use voltage_store::Store;
use warp::http::StatusCode;
use warp::Filter;

pub fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    (view, config_error): (StatusView, Arc<Mutex<Option<String>>>),
    router: WriteRouter,
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
    let write = warp::path!("channels" / u32 / String)
        .and(warp::post())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .then(move |id: u32, what: String, body: bytes::Bytes| {
            let router = router.clone();
            async move { write(router, id, &what, &body).await }
        });
    let routes = health.or(channels).or(write);
    async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stop.wait().await })
            .run()
            .await;
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    point_id: u32,
    value: f64,
    #[serde(default)]
    requested_by: Option<String>,
}

fn error(code: StatusCode, msg: String) -> warp::reply::WithStatus<warp::reply::Json> {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({"error": {"code": code.as_u16(), "message": msg}})),
        code,
    )
}

async fn write(
    router: WriteRouter,
    id: u32,
    what: &str,
    body: &[u8],
) -> warp::reply::WithStatus<warp::reply::Json> {
    let kind = match what {
        "control" => PointType::Control,
        "adjustment" => PointType::Adjustment,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint /channels/{id}/{what}"),
            )
        }
    };
    let b: WriteBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = WriteRequest {
        kind,
        point_id: b.point_id,
        value: b.value,
        requested_by: b.requested_by.unwrap_or_else(|| "http".into()),
        reply: tx,
    };
    router.route(id, req).await;
    let Ok(outcome) = rx.await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "channel stopped during the write".into(),
        );
    };
    let code = match outcome.status {
        WriteStatus::Verified => StatusCode::OK,
        WriteStatus::Unverified => StatusCode::ACCEPTED,
        WriteStatus::NotFound => {
            return error(StatusCode::NOT_FOUND, outcome.error.unwrap_or_default())
        }
        WriteStatus::Refused => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                outcome.error.unwrap_or_default(),
            )
        }
        WriteStatus::DeviceError => StatusCode::BAD_GATEWAY,
    };
    warp::reply::with_status(warp::reply::json(&outcome), code)
}
