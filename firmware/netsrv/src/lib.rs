//! netsrv: forwards the history log northbound, over MQTT (QoS 1) and/or HTTP POST.
//!
//! netsrv has no buffer of its own: each sink reads the shared crash-safe log (written by
//! hissrv's samplers) from its own cursor and advances it only when the far end acknowledged
//! (MQTT PUBACK, HTTP 2xx). A broker that is away for hours, or a power cut, loses nothing the
//! log still holds; on reconnection the backlog is sent in log order.
//!
//! Payload of a batch (topic `{prefix}/{device_id}/telemetry`, or the HTTP body):
//! `{"device_id":"site-1","first_seq":10,"points":[{"seq":10,"channel_id":1001,"type":"T",
//! "point_id":1,"value":100.5,"ts_ns":1700000000000000000},...]}`. The MQTT last will marks
//! `{prefix}/{device_id}/status` `offline` (retained); `online` is published on connection.
//! Alarm events go to `{prefix}/{device_id}/alarm` (`{"device_id":..,"events":[{"event_id":
//! "1700000000000-0","alarm_id":"7","event":"created","status":"Active","level":"Critical",
//! "title":..,"source":..,"at":..,"by":..}]}`), from their own cursor (see `alarms`).

mod alarms;
mod http_sink;
mod mqtt;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use voltage_core::config::Config;
pub(crate) use voltage_http::stopped;
pub use voltage_http::Running;
use voltage_wal::Record;
use warp::Filter;

pub use voltage_wal::SharedWal;

#[derive(Debug, thiserror::Error)]
pub enum NetsrvError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Counters of one sink, for `/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkState {
    pub connected: bool,
    pub sent_records: u64,
    pub messages: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Alarm events delivered (MQTT only).
    pub alarm_events: u64,
    /// Times alarm events were trimmed from Redis before they could be delivered.
    pub alarm_gaps: u64,
}

pub(crate) type Shared = Arc<Mutex<SinkState>>;

fn kind_letter(k: u8) -> String {
    (k as char).to_string()
}

/// The JSON payload of a batch.
pub fn payload(device_id: &str, recs: &[(u64, Record)]) -> String {
    let points: Vec<serde_json::Value> = recs
        .iter()
        .map(|(seq, r)| {
            serde_json::json!({"seq": seq, "channel_id": r.channel, "type": kind_letter(r.kind), "point_id": r.point,
                "value": if r.value.is_finite() { serde_json::json!(r.value) } else { serde_json::Value::Null }, "ts_ns": r.ts_ns})
        })
        .collect();
    serde_json::json!({"device_id": device_id, "first_seq": recs.first().map(|(s, _)| *s), "points": points}).to_string()
}

/// Starts netsrv on the shared log `wal` (the one hissrv writes); with `store`, MQTT also
/// forwards alarm events.
pub async fn start(
    config: &Config,
    wal: SharedWal,
    store: Option<voltage_store::Store>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Running, NetsrvError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NetsrvError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| NetsrvError::Bind { addr, source })?;
    let (stop_tx, stop) = watch::channel(false);
    let fwd = stop_tx.clone();
    tokio::spawn(async move {
        stopped(&mut shutdown).await;
        let _ = fwd.send(true);
    });
    let mut tasks = Vec::new();
    let mqtt_state: Shared = Arc::default();
    let http_state: Shared = Arc::default();
    let n = config.netsrv.clone();
    if let Some(c) = n.as_ref().and_then(|n| n.mqtt.clone()) {
        let id = n.as_ref().map(|n| n.device_id.clone()).unwrap_or_default();
        let mut feed = store
            .clone()
            .filter(|_| c.alarms)
            .map(alarms::AlarmFeed::new);
        if let Some(f) = feed.as_mut() {
            f.start().await;
        }
        tasks.push(tokio::spawn(mqtt::run(
            c,
            id,
            wal.clone(),
            mqtt_state.clone(),
            feed,
            stop.clone(),
        )));
    }
    if let Some(c) = n.as_ref().and_then(|n| n.http.clone()) {
        let id = n.as_ref().map(|n| n.device_id.clone()).unwrap_or_default();
        tasks.push(tokio::spawn(http_sink::run(
            c,
            id,
            wal.clone(),
            http_state.clone(),
            stop.clone(),
        )));
    }
    let port = local_addr.port();
    let health = warp::path!("health").and(warp::get()).map(move || {
        warp::reply::json(
            &serde_json::json!({"status": "healthy", "service": {"name": "netsrv", "port": port}}),
        )
    });
    let (m, h, w) = (mqtt_state.clone(), http_state.clone(), wal.clone());
    let status = warp::path!("status").and(warp::get()).then(move || {
        let (m, h, w) = (m.clone(), h.clone(), w.clone());
        async move {
            let log = w.with(|w| w.stats()).await;
            let m = m.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let h = h.lock().unwrap_or_else(|p| p.into_inner()).clone();
            warp::reply::json(&serde_json::json!({"log": log, "mqtt": m, "http": h}))
        }
    });
    let mut s2 = stop.clone();
    let routes = health.or(status);
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(async move { stopped(&mut s2).await })
        .run();
    let task = tokio::spawn(async move {
        let server = tokio::spawn(server);
        for t in tasks {
            let _ = t.await;
        }
        let _ = server.await;
        tracing::info!("netsrv stopped");
    });
    Ok(Running::new(local_addr, stop_tx, task).with_handler(handler))
}

/// Next batch for `sink`: `(records, next cursor)`; waits (polling the log) while empty.
pub(crate) async fn next_batch(
    wal: &SharedWal,
    sink: &'static str,
    max: usize,
    stop: &mut watch::Receiver<bool>,
) -> Option<(Vec<(u64, Record)>, u64)> {
    loop {
        let r = wal
            .with(move |w| {
                let c = w.cursor(sink)?;
                w.read_from(c, max)
            })
            .await;
        match r {
            Ok(recs) if !recs.is_empty() => {
                let next = recs.last().map(|(s, _)| s + 1).unwrap_or(0);
                return Some((recs, next));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(sink, error = %e, "cannot read the log"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopped(stop) => return None,
        }
    }
}
