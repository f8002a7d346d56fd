//! hissrv's HTTP API: `/health`, `/status`, `/data/{type}` (history of one point).

use crate::influx::SinkStats;
use crate::{stopped, SharedWal};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use voltage_core::config::{InfluxApi, InfluxConfig};
use voltage_store::Store;
use warp::http::StatusCode;
use warp::Filter;

#[derive(Clone)]
pub struct State {
    pub store: Store,
    pub wal: SharedWal,
    pub influx: Option<InfluxConfig>,
    /// The InfluxDB link's client (None when it could not be built: history from the local log).
    pub influx_client: Option<reqwest::Client>,
    pub sink: Arc<Mutex<SinkStats>>,
}

type Reply = warp::reply::WithStatus<warp::reply::Json>;

fn error(code: StatusCode, msg: String) -> Reply {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({"error": {"code": code.as_u16(), "message": msg}})),
        code,
    )
}

fn ok(v: serde_json::Value) -> Reply {
    warp::reply::with_status(warp::reply::json(&v), StatusCode::OK)
}

/// `5m`, `30s`, `2h`, `1d`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" | "" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

pub fn serve(
    listener: tokio::net::TcpListener,
    st: State,
    port: u16,
    mut stop: watch::Receiver<bool>,
) -> (
    voltage_http::Handler,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let s1 = st.clone();
    let health = warp::path!("health").and(warp::get()).then(move || {
        let st = s1.clone();
        async move {
            let service = serde_json::json!({"name": "hissrv", "port": port});
            match tokio::time::timeout(Duration::from_secs(1), st.store.ping()).await {
                Ok(Ok(())) => ok(serde_json::json!({"status": "healthy", "service": service})),
                _ => warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({"status": "unhealthy", "service": service,
                        "reason": "redis unreachable: sampling is paused (the log and the sinks keep working)"})),
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
            }
        }
    });
    let s2 = st.clone();
    let status = warp::path!("status").and(warp::get()).then(move || {
        let st = s2.clone();
        async move {
            let wal = st.wal.with(|w| w.stats()).await;
            let sink = st.sink.lock().unwrap_or_else(|p| p.into_inner()).clone();
            ok(serde_json::json!({"log": wal, "influxdb": st.influx.as_ref().map(|_| sink)}))
        }
    });
    let s3 = st.clone();
    let data = warp::path!("data" / String)
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .then(move |kind: String, q: HashMap<String, String>| {
            let st = s3.clone();
            async move { query(st, &kind, q).await }
        });
    let routes = health.or(status).or(data);
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let server = async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stopped(&mut stop).await })
            .run()
            .await;
    };
    (handler, server)
}

async fn query(st: State, kind: &str, q: HashMap<String, String>) -> Reply {
    let k = match kind {
        "telemetry" => b'T',
        "signal" => b'S',
        "control" => b'C',
        "adjustment" => b'A',
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no history type {kind:?}; use telemetry, signal, control or adjustment"),
            )
        }
    };
    let num = |name: &str| -> Result<Option<u64>, Reply> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: {v:?} is not a whole number"),
                )
            }),
        }
    };
    let (channel, point) = match (num("channel_id"), num("point_id")) {
        (Ok(Some(c)), Ok(Some(p))) => (c as u32, p as u32),
        (Err(e), _) | (_, Err(e)) => return e,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "channel_id and point_id are required".into(),
            )
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let end = match num("end") {
        Ok(e) => e.unwrap_or(now + 1),
        Err(e) => return e,
    };
    let start = match (num("start"), q.get("duration")) {
        (Err(e), _) => return e,
        (Ok(Some(s)), _) => s,
        (Ok(None), Some(d)) => match parse_duration(d) {
            Some(d) => end.saturating_sub(d.as_millis() as u64),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("duration: {d:?} is not like 30s, 5m, 2h, 1d"),
                )
            }
        },
        (Ok(None), None) => end.saturating_sub(300_000),
    };
    let (s_ns, e_ns) = (start as i64 * 1_000_000, end as i64 * 1_000_000);
    if let (Some(c), Some(client)) = (
        st.influx.as_ref().filter(|c| c.api == InfluxApi::V1),
        st.influx_client.as_ref(),
    ) {
        match influx_query(c, client, k, channel, point, s_ns, e_ns).await {
            Ok(rows) => return ok(serde_json::Value::Array(rows)),
            Err(e) => {
                tracing::warn!(error = %e, "influxdb query failed; answering from the local log")
            }
        }
    }
    match st
        .wal
        .with(move |w| w.query(channel, k, point, s_ns, e_ns))
        .await
    {
        Ok(recs) => {
            // As in InfluxDB, one value per timestamp (a restart may log the last reading again).
            let by_time: std::collections::BTreeMap<i64, f64> =
                recs.iter().map(|r| (r.ts_ns, r.value)).collect();
            ok(serde_json::Value::Array(
                by_time
                    .iter()
                    .map(
                        |(t, v)| serde_json::json!({"time": t / 1_000_000, "ts_ns": t, "value": v}),
                    )
                    .collect(),
            ))
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("history log: {e}"),
        ),
    }
}

async fn influx_query(
    c: &InfluxConfig,
    client: &reqwest::Client,
    kind: u8,
    channel: u32,
    point: u32,
    s_ns: i64,
    e_ns: i64,
) -> Result<Vec<serde_json::Value>, String> {
    let m = match kind {
        b'S' => "signal",
        b'C' => "control",
        b'A' => "adjustment",
        _ => "telemetry",
    };
    let q = format!(
        "SELECT value FROM {m} WHERE channel_id = '{channel}' AND point_id = '{point}' AND time >= {s_ns} AND time < {e_ns} ORDER BY time ASC"
    );
    let mut req = client
        .get(format!("{}/query", c.url.trim_end_matches('/')))
        .query(&[
            ("db", c.database.as_deref().unwrap_or("")),
            ("epoch", "ns"),
            ("q", q.as_str()),
        ]);
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("{}", r.status()));
    }
    let v: serde_json::Value = serde_json::from_str(&r.text().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let values = v["results"][0]["series"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(values
        .iter()
        .filter_map(|row| {
            let t = row.get(0)?.as_i64()?;
            let val = row.get(1)?.as_f64()?;
            Some(serde_json::json!({"time": t / 1_000_000, "ts_ns": t, "value": val}))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_in_the_usual_units() {
        use super::parse_duration as p;
        assert_eq!(p("5m").unwrap().as_secs(), 300);
        assert_eq!(p("30s").unwrap().as_secs(), 30);
        assert_eq!(p("2h").unwrap().as_secs(), 7200);
        assert_eq!(p("500ms").unwrap().as_millis(), 500);
        assert!(p("5 minutes").is_none());
        assert!(p("m").is_none());
    }
}
