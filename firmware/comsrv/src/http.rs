//! comsrv's HTTP endpoint: `GET /health` (200 healthy / 503 unhealthy with the reason),
//! `GET /channels` (each channel's name, protocol, point count, connection and last error),
//! `GET /channels/{id}` (one channel: its entry of `/channels`, its point table with names and
//! units, its poll counters and status from Redis, and how many of its points are marked stale,
//! uncertain or bad, for the web console), `GET /channels/{id}/points` (values with the time of
//! their last good read and the quality mark of those that are not good),
//! `GET /channels/{id}/plan` (the read plan of the configuration it runs: requests, bytes, bus
//! estimate), `GET /lines` (serial lines: their channels, the estimated and the measured bus
//! utilisation), and
//! `POST /channels/{id}/control` / `.../adjustment` with `{"point_id":N,"value":V,
//! "requested_by":"who"}` (through the gateway, the token's name is recorded with it, from the
//! `x-voltage-caller` header only the gateway sets): 200 verified, 202 written but not verified, 404 unknown channel or
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
) -> (
    voltage_http::Handler,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let store_for_points = store.clone();
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
    let view_one = view.clone();
    let store_one = store_for_points.clone();
    let view_all = view.clone();
    let channels = warp::path!("channels")
        .and(warp::get())
        .map(move || warp::reply::json(&view_all.snapshot()));
    let channel = warp::path!("channels" / u32)
        .and(warp::get())
        .then(move |id: u32| {
            let (view, store) = (view_one.clone(), store_one.clone());
            async move { channel(&view, &store, id).await }
        });
    let store_points = store_for_points.clone();
    let points = warp::path!("channels" / u32 / "points")
        .and(warp::get())
        .then(move |id: u32| {
            let store = store_points.clone();
            async move { points(&store, id).await }
        });
    let view_plan = view.clone();
    let plan = warp::path!("channels" / u32 / "plan")
        .and(warp::get())
        .map(move |id: u32| match view_plan.plan(id) {
            Some(p) => warp::reply::with_status(warp::reply::json(&p), StatusCode::OK),
            None => error(
                StatusCode::NOT_FOUND,
                format!("no running channel {id} in the configuration"),
            ),
        });
    let view_lines = view.clone();
    let store_lines = store_for_points;
    let lines = warp::path!("lines").and(warp::get()).then(move || {
        let (view, store) = (view_lines.clone(), store_lines.clone());
        async move { lines(&view, &store).await }
    });
    let write = warp::path!("channels" / u32 / String)
        .and(warp::post())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .and(warp::header::optional::<String>("x-voltage-caller"))
        .then(
            move |id: u32, what: String, body: bytes::Bytes, caller: Option<String>| {
                let router = router.clone();
                async move { write(router, id, &what, &body, caller).await }
            },
        );
    let routes = health
        .or(channels)
        .or(channel)
        .or(points)
        .or(plan)
        .or(lines)
        .or(write);
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let server = async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stop.wait().await })
            .run()
            .await;
    };
    (handler, server)
}

/// `GET /channels/{id}`: the channel's entry of `/channels`, its point table, its counters
/// (`stats`: total_reads, total_errors, timeouts, last_poll_ms, ...) and `status` hash, and
/// `quality`: how many points are marked `stale`, `uncertain` and `bad`.
async fn channel(
    view: &StatusView,
    store: &Store,
    id: u32,
) -> warp::reply::WithStatus<warp::reply::Json> {
    let Some(mut v) = view.channel(id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no channel {id} in the configuration"),
        );
    };
    let counters = async {
        Ok::<_, voltage_store::StoreError>((
            store.channel_counters(id).await?,
            store.quality_marks(id).await?,
        ))
    };
    match counters.await {
        Ok(((stats, status), marks)) => {
            v["stats"] = numbers(stats).into();
            v["status"] = numbers(status).into();
            let count = |q: &str| marks.iter().filter(|(_, _, m)| m == q).count();
            v["quality"] = serde_json::json!({
                "stale": count("stale"), "uncertain": count("uncertain"), "bad": count("bad"),
            });
        }
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("redis unreachable: {e}"),
            )
        }
    }
    warp::reply::with_status(warp::reply::json(&v), StatusCode::OK)
}

/// Hash fields as JSON numbers where they parse as numbers, text otherwise.
fn numbers(
    m: std::collections::HashMap<String, String>,
) -> serde_json::Map<String, serde_json::Value> {
    m.into_iter()
        .map(|(k, s)| {
            let v = match (s.parse::<i64>(), s.parse::<f64>()) {
                (Ok(i), _) => i.into(),
                (_, Ok(f)) if f.is_finite() => f.into(),
                _ => s.into(),
            };
            (k, v)
        })
        .collect()
}

/// `GET /channels/{id}/points`: every point's value as stored, with the time of its last good
/// read and, for a point whose value is not a good current read, its quality mark
/// (`{"T":{"1":{"value":"95.000000","ts":1700000000000,"quality":"stale"}},"S":{...},...}`).
/// A point marked before it ever had a value (a device that never answered) is listed with
/// `value` and `ts` null, so its mark shows.
async fn points(store: &Store, id: u32) -> warp::reply::WithStatus<warp::reply::Json> {
    let unreachable = |e: voltage_store::StoreError| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("redis unreachable: {e}"),
        )
    };
    let marks = match store.quality_marks(id).await {
        Ok(m) => m,
        Err(e) => return unreachable(e),
    };
    let mut out = serde_json::Map::new();
    for kind in PointType::ALL {
        let v = match store.read_points(id, kind).await {
            Ok(v) => v,
            Err(e) => return unreachable(e),
        };
        let mut m: serde_json::Map<String, serde_json::Value> = v
            .into_iter()
            .map(|(p, v, ts)| (p.to_string(), serde_json::json!({"value": v, "ts": ts})))
            .collect();
        for (_, p, q) in marks.iter().filter(|(k, _, _)| *k == kind) {
            m.entry(p.to_string())
                .or_insert_with(|| serde_json::json!({"value": null, "ts": null}))["quality"] =
                q.as_str().into();
        }
        out.insert(kind.letter().to_string(), serde_json::Value::Object(m));
    }
    if out
        .values()
        .all(|v| v.as_object().is_some_and(|m| m.is_empty()))
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("channel {id} has no values (unknown, or not polled yet)"),
        );
    }
    warp::reply::with_status(warp::reply::json(&out), StatusCode::OK)
}

/// `GET /lines`: every serial line of the running channels, with the estimate of the read plans
/// (`estimated_utilisation_pct`) and what the line's scheduler measured (`stats`, from
/// `comsrv:line:{name}:stats`: requests, timeouts, crc_errors, bus_utilisation_pct, ...; empty
/// until the line has run for a second).
async fn lines(view: &StatusView, store: &Store) -> warp::reply::WithStatus<warp::reply::Json> {
    let mut out = Vec::new();
    for l in view.lines() {
        let stats = match store.line_counters(&l.name).await {
            Ok(h) => numbers(h),
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("redis unreachable: {e}"),
                )
            }
        };
        let mut v = serde_json::to_value(&l).unwrap_or_default();
        v["stats"] = stats.into();
        out.push(v);
    }
    warp::reply::with_status(warp::reply::json(&out), StatusCode::OK)
}

/// The body of `POST /channels/{id}/control|adjustment` (see [`parse_write_body`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    pub point_id: u32,
    pub value: f64,
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// Parses a write body; the error is the 400 answer's message.
pub fn parse_write_body(body: &[u8]) -> Result<WriteBody, String> {
    serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))
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
    caller: Option<String>,
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
    let b = match parse_write_body(body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = WriteRequest {
        kind,
        point_id: b.point_id,
        value: b.value,
        // Through the gateway the authenticated token names the writer; a name in the body
        // is kept beside it (`token:hmi/alice`).
        requested_by: match (caller, b.requested_by) {
            (Some(c), Some(r)) => format!("{c}/{r}"),
            (Some(c), None) => c,
            (None, Some(r)) => r,
            (None, None) => "http".into(),
        },
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
