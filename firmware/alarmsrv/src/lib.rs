//! alarmsrv (:6002): the alarm API. Every state change is one call of a `voltage_alarm` Redis
//! Function, so a transition (Active -> Acknowledged -> Resolved) is atomic and checked next to
//! the data, whichever service or operator triggers it.
//!
//! Routes: `POST /alarms` (201 `{"id":..}`), `GET /alarms?status=active|acknowledged|resolved&
//! level=info|warning|major|critical&limit=N`, `GET /alarms/{id}`, `POST /alarms/{id}/acknowledge`
//! (`{"acknowledged_by","notes"}`), `POST /alarms/{id}/resolve` (`{"resolved_by","notes"}`),
//! `GET /health`. Errors: `{"error":{"code":..,"message":..}}`; a function's `not found` is 404,
//! an illegal transition 409, any other refusal 400, Redis unreachable 503.
//! Threshold rules on points (`DIR/alarmsrv/rules.yaml`: high/low, deadband, on/off delays,
//! latching) raise and clear alarms by themselves; `GET /thresholds` shows their states (with
//! `shelved_until`, epoch ms, while shelved) and `POST /thresholds/{id}/shelve`
//! (`{"duration_ms":N}`, at most 30 days; 0 ends a shelving) shelves one. `GET /alarms/{id}` carries the alarm's
//! event history (`events`: created, acknowledged, resolved; who, when, notes).

use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::sync::watch;
pub use voltage_http::Running;
use voltage_http::{error, json, refusal, stopped, Reply};
use voltage_store::Store;
use warp::http::StatusCode;

fn json_reply(code: StatusCode, text: Option<String>) -> Reply {
    json(
        code,
        text.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null),
    )
}
use warp::Filter;

pub mod monitor;
pub mod threshold;

pub use voltage_core::time::rfc3339_now;

#[derive(Debug, thiserror::Error)]
pub enum AlarmsrvError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("threshold rules: {0}")]
    Rules(String),
}

/// `active` -> `Active`: the API takes lower case, the functions the canonical spelling.
fn canonical(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    acknowledged_by: String,
    #[serde(default)]
    notes: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    resolved_by: String,
    #[serde(default)]
    notes: String,
}

/// The Redis function, operator and notes of `POST /alarms/{id}/{action}`, or the refusal.
pub fn parse_transition(
    action: &str,
    body: &[u8],
) -> Result<(&'static str, String, String), (StatusCode, String)> {
    let bad = |e: serde_json::Error| (StatusCode::BAD_REQUEST, format!("request body: {e}"));
    match action {
        "acknowledge" => serde_json::from_slice::<Ack>(body)
            .map(|a| ("alarm_acknowledge", a.acknowledged_by, a.notes))
            .map_err(bad),
        "resolve" => serde_json::from_slice::<Resolve>(body)
            .map(|r| ("alarm_resolve", r.resolved_by, r.notes))
            .map_err(bad),
        _ => Err((
            StatusCode::NOT_FOUND,
            format!("no action {action:?}; use acknowledge or resolve"),
        )),
    }
}

/// The longest shelving: a rule silenced for longer is a configuration change, not a shelve.
pub const MAX_SHELVE_MS: u64 = 30 * 24 * 3600 * 1000;

/// The duration of `POST /thresholds/{id}/shelve` (`{"duration_ms": N}`, 0 ends a shelving), or
/// the refusal naming the field.
pub fn parse_shelve(body: &[u8]) -> Result<u64, String> {
    let ms = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["duration_ms"].as_u64())
        .ok_or_else(|| {
            "body must be {\"duration_ms\": N} (milliseconds, 0 ends a shelving)".to_string()
        })?;
    if ms > MAX_SHELVE_MS {
        return Err(format!(
            "duration_ms {ms} is longer than {MAX_SHELVE_MS} (30 days)"
        ));
    }
    Ok(ms)
}

/// Starts alarmsrv; `config_dir` supplies `alarmsrv/rules.yaml` (threshold rules), if any.
pub async fn start(
    config_dir: Option<&std::path::Path>,
    store: Store,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Running, AlarmsrvError> {
    let rules = match config_dir {
        Some(d) => monitor::load(d).map_err(AlarmsrvError::Rules)?,
        None => Vec::new(),
    };
    let monitored: monitor::Shared = std::sync::Arc::new(std::sync::Mutex::new(
        rules
            .into_iter()
            .map(|r| {
                (
                    r.id.clone(),
                    monitor::Monitored::new(threshold::Threshold::new(r)),
                )
            })
            .collect(),
    ));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AlarmsrvError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| AlarmsrvError::Bind { addr, source })?;
    let port = local_addr.port();
    let (stop_tx, mut stop) = watch::channel(false);
    let fwd = stop_tx.clone();
    tokio::spawn(async move {
        stopped(&mut shutdown).await;
        let _ = fwd.send(true);
    });
    let body = warp::body::content_length_limit(64 * 1024).and(warp::body::bytes());
    let s = store.clone();
    let health = warp::path!("health").and(warp::get()).then(move || {
        let s = s.clone();
        async move { voltage_http::health("alarmsrv", port, &s).await }
    });
    let s = store.clone();
    let create = warp::path!("alarms")
        .and(warp::post())
        .and(body)
        .then(move |b: bytes::Bytes| {
            let s = s.clone();
            async move {
                let Ok(text) = std::str::from_utf8(&b) else {
                    return error(StatusCode::BAD_REQUEST, "body is not UTF-8");
                };
                if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
                    return error(StatusCode::BAD_REQUEST, format!("request body: {e}"));
                }
                match s
                    .fcall("alarm_create", &[], &[text, &rfc3339_now()], false)
                    .await
                {
                    Ok(r) => json_reply(StatusCode::CREATED, r),
                    Err(e) => refusal(e),
                }
            }
        });
    let s = store.clone();
    let list = warp::path!("alarms")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .then(move |q: HashMap<String, String>| {
            let s = s.clone();
            async move {
                let mut args: Vec<String> = Vec::new();
                for k in q.keys() {
                    if !["status", "level", "limit"].contains(&k.as_str()) {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("unknown query parameter {k:?}; use status, level, limit"),
                        );
                    }
                }
                for (k, v) in [
                    ("status", q.get("status").map(|v| canonical(v))),
                    ("level", q.get("level").map(|v| canonical(v))),
                    ("limit", q.get("limit").cloned()),
                ] {
                    if let Some(v) = v {
                        args.push(k.into());
                        args.push(v);
                    }
                }
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                match s.fcall("alarm_list", &[], &a, true).await {
                    Ok(r) => json_reply(StatusCode::OK, r),
                    Err(e) => refusal(e),
                }
            }
        });
    let s = store.clone();
    let get = warp::path!("alarms" / String)
        .and(warp::get())
        .then(move |id: String| {
            let s = s.clone();
            async move {
                match s.fcall("alarm_get", &[&id], &[], true).await {
                    Ok(r) => json_reply(StatusCode::OK, r),
                    Err(e) => refusal(e),
                }
            }
        });
    let s = store.clone();
    let act = warp::path!("alarms" / String / String)
        .and(warp::post())
        .and(body)
        .then(move |id: String, action: String, b: bytes::Bytes| {
            let s = s.clone();
            async move {
                let now = rfc3339_now();
                let (func, who, notes) = match parse_transition(&action, &b) {
                    Ok(t) => t,
                    Err((code, m)) => return error(code, m),
                };
                tracing::info!(alarm = %id, action = %action, by = %who, "alarm transition");
                match s.fcall(func, &[&id], &[&who, &now, &notes], false).await {
                    Ok(r) => json_reply(StatusCode::OK, r),
                    Err(e) => refusal(e),
                }
            }
        });
    let m1 = monitored.clone();
    let thresholds = warp::path!("thresholds").and(warp::get()).map(move || {
        let now = monitor::now_ms();
        let g = m1.lock().unwrap_or_else(|p| p.into_inner());
        let v: Vec<serde_json::Value> = g
            .values()
            .map(|m| serde_json::json!({"rule": m.threshold.rule, "state": m.threshold.state(), "open": m.threshold.is_open(),
                "alarm_id": m.alarm_id, "value": m.last_value, "shelved_until": m.threshold.shelved_until(now)}))
            .collect();
        warp::reply::with_status(warp::reply::json(&v), StatusCode::OK)
    });
    let m2 = monitored.clone();
    let shelve = warp::path!("thresholds" / String / "shelve")
        .and(warp::post())
        .and(body)
        .map(move |id: String, b: bytes::Bytes| {
            let ms = match parse_shelve(&b) {
                Ok(ms) => ms,
                Err(m) => return error(StatusCode::BAD_REQUEST, m),
            };
            let mut g = m2.lock().unwrap_or_else(|p| p.into_inner());
            let Some(m) = g.get_mut(&id) else {
                return error(StatusCode::NOT_FOUND, format!("no threshold rule {id:?}"));
            };
            let until = monitor::now_ms().saturating_add(ms);
            m.threshold.shelve(until);
            tracing::info!(rule = %id, until, "threshold rule shelved");
            warp::reply::with_status(
                warp::reply::json(&serde_json::json!({"shelved_until": until})),
                StatusCode::OK,
            )
        });
    tokio::spawn(monitor::run(store.clone(), monitored, stop.clone()));
    let routes = health
        .or(create)
        .or(list)
        .or(thresholds)
        .or(shelve)
        .or(get)
        .or(act)
        .recover(|r: warp::Rejection| async move {
            let (code, msg) = if r.is_not_found() {
                (StatusCode::NOT_FOUND, "no such route".to_string())
            } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body over 64 KiB".to_string(),
                )
            } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed".to_string(),
                )
            } else {
                (StatusCode::BAD_REQUEST, format!("{r:?}"))
            };
            Ok::<_, std::convert::Infallible>(error(code, msg))
        });
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(async move { stopped(&mut stop).await })
        .run();
    let task = tokio::spawn(server);
    Ok(Running::new(local_addr, stop_tx, task).with_handler(handler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shelve_body_is_a_bounded_duration() {
        assert_eq!(parse_shelve(br#"{"duration_ms": 900000}"#), Ok(900_000));
        assert_eq!(parse_shelve(br#"{"duration_ms": 0}"#), Ok(0));
        let e = parse_shelve(br#"{"duration_ms": 18446744073709551615}"#).unwrap_err();
        assert!(
            e.starts_with("duration_ms 18446744073709551615 is longer than"),
            "{e}"
        );
        for bad in [&br#"{"duration_ms": -1}"#[..], b"{}", b"[1]", b"\xff"] {
            assert!(parse_shelve(bad).unwrap_err().contains("duration_ms"));
        }
    }
}
