//! The InfluxDB sink: line protocol over HTTP, v1 (`/write?db=`) or v2 (`/api/v2/write`), fed
//! from the log at its own cursor.
//!
//! Delivery rules: the cursor advances only after a 2xx. 5xx and connection errors are retried
//! with exponential backoff and jitter, forever (the log holds the data). A 400/413/422 is a
//! permanent error of that batch (a bad line, a field type conflict): it is logged with the
//! server's message (which names the offending line), counted, and skipped. 401/403/404
//! (credentials, unknown database or bucket) say nothing about the data: they are a
//! configuration to fix on one side or the other, so they are retried with backoff for as long
//! as it takes, with the server's answer in `/status` and the log; the batch waits in the log
//! (bounded by its disk budget, evictions counted) instead of being dropped. Replay after an
//! outage keeps the original timestamps and is limited to `replay_points_per_s`.
//!
//! Why not the influxdb2 crate: its last release is from 2024, it sits on reqwest 0.11 and
//! OpenSSL; our schema needs no escaping (measurement names are fixed, tags are integers, the
//! field is a float), so the encoder is 20 lines and the client is reqwest 0.12 with rustls on
//! ring for `https://` (see ARCHITECTURE.md).

use crate::{stopped, SharedWal};
use rand::Rng;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use voltage_core::config::{InfluxApi, InfluxConfig};
use voltage_wal::Record;

pub const SINK: &str = "influxdb";

/// Counters of the sink, shown by `/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkStats {
    pub sent_points: u64,
    pub rejected_points: u64,
    pub skipped_non_finite: u64,
    pub failed_requests: u64,
    pub connected: bool,
    pub last_error: Option<String>,
}

fn measurement(kind: u8) -> &'static str {
    match kind {
        b'S' => "signal",
        b'C' => "control",
        b'A' => "adjustment",
        _ => "telemetry",
    }
}

/// Appends one record as a line; `false` (nothing written) for NaN/infinite values, which line
/// protocol cannot carry.
pub fn line_protocol(r: &Record, out: &mut String) -> bool {
    if !r.value.is_finite() {
        return false;
    }
    // Rust's `{}` for f64 is the shortest text that round-trips; a value without a decimal
    // point is still a float field in line protocol (integers need an `i` suffix).
    let _ = writeln!(
        out,
        "{},channel_id={},point_id={} value={} {}",
        measurement(r.kind),
        r.channel,
        r.point,
        r.value,
        r.ts_ns
    );
    true
}

fn write_url(c: &InfluxConfig) -> String {
    let base = c.url.trim_end_matches('/');
    match c.api {
        InfluxApi::V1 => format!(
            "{base}/write?db={}&precision=ns",
            c.database.as_deref().unwrap_or("")
        ),
        InfluxApi::V2 => format!(
            "{base}/api/v2/write?org={}&bucket={}&precision=ns",
            c.org.as_deref().unwrap_or(""),
            c.bucket.as_deref().unwrap_or("")
        ),
    }
}

enum Outcome {
    Delivered,
    Rejected(String),
    Retry(String),
}

/// Whether an error answer says that *this batch* can never be written (a bad line, a field type
/// conflict, too large), so it is counted in `rejected_points` and skipped. Every other answer —
/// 401/403 (wrong or rotated credentials), 404 (database not created yet), 429, 5xx — is about
/// the server or its setup, not the data: the batch is retried with backoff for as long as it
/// takes, and the log keeps it (bounded by its budget; eviction is counted).
fn refused_for_good(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

async fn post(client: &reqwest::Client, c: &InfluxConfig, body: String) -> Outcome {
    let mut req = client
        .post(write_url(c))
        .header("Content-Type", "text/plain; charset=utf-8");
    match c.api {
        InfluxApi::V1 => {
            if let (Some(u), Some(p)) = (&c.username, &c.password) {
                req = req.basic_auth(u, Some(p));
            }
        }
        InfluxApi::V2 => {
            if let Some(t) = &c.token {
                req = req.header("Authorization", format!("Token {t}"));
            }
        }
    }
    let req = if c.gzip {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(body.as_bytes());
        match enc.finish() {
            Ok(gz) => req.header("Content-Encoding", "gzip").body(gz),
            Err(_) => req.body(body),
        }
    } else {
        req.body(body)
    };
    match req.send().await {
        Err(e) => Outcome::Retry(format!("POST {}: {e}", c.url)),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_success() {
                Outcome::Delivered
            } else if refused_for_good(status.as_u16()) {
                Outcome::Rejected(format!("{status}: {}", text.trim()))
            } else {
                Outcome::Retry(format!("{status}: {}", text.trim()))
            }
        }
    }
}

/// The one HTTP client of the InfluxDB link (writes and history queries share its connections
/// and its TLS settings, read once).
pub fn client(c: &InfluxConfig) -> Result<reqwest::Client, voltage_http::tls::TlsError> {
    voltage_http::tls::http_client(&c.url, Duration::from_millis(c.timeout_ms), c.tls.as_ref())
}

pub async fn run(
    c: InfluxConfig,
    client: reqwest::Client,
    wal: SharedWal,
    appended: Arc<Notify>,
    stats: Arc<Mutex<SinkStats>>,
    mut stop: watch::Receiver<bool>,
) {
    let flush = Duration::from_millis(c.flush_interval_ms);
    let mut backoff = Duration::from_millis(250);
    let mut outage = false;
    tracing::info!(url = %c.url, api = ?c.api, "influxdb sink started");
    loop {
        if *stop.borrow() {
            return;
        }
        let cursor = match wal.with(|w| w.cursor(SINK)).await {
            Ok(cur) => cur,
            Err(e) => {
                tracing::error!(error = %e, "history log cursor unavailable");
                tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => continue, _ = stopped(&mut stop) => return }
            }
        };
        let max = c.batch_size;
        let recs = wal
            .with(move |w| w.read_from(cursor, max))
            .await
            .unwrap_or_default();
        if recs.is_empty() || (recs.len() < c.batch_size && !outage && young(&recs, flush)) {
            // Wait for more records (a full batch) or until the oldest pending one is flush-old.
            let wait = if recs.is_empty() { flush } else { flush / 4 };
            tokio::select! {
                _ = appended.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
            continue;
        }
        let started = Instant::now();
        let mut body = String::with_capacity(recs.len() * 64);
        let mut skipped = 0;
        for (_, r) in &recs {
            if !line_protocol(r, &mut body) {
                skipped += 1;
            }
        }
        let next = recs.last().map(|(s, _)| s + 1).unwrap_or(cursor);
        let n = recs.len() as u64 - skipped;
        let outcome = if n == 0 {
            Outcome::Delivered
        } else {
            post(&client, &c, body).await
        };
        match outcome {
            Outcome::Delivered | Outcome::Rejected(_) => {
                if let Outcome::Rejected(m) = &outcome {
                    tracing::error!(points = n, error = %m, "influxdb rejected a batch; it is skipped (counted in rejected_points)");
                }
                if let Err(e) = wal.with(move |w| w.commit(SINK, next)).await {
                    tracing::error!(error = %e, "cannot advance the influxdb cursor");
                }
                {
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    s.skipped_non_finite += skipped;
                    match outcome {
                        Outcome::Rejected(m) => {
                            s.rejected_points += n;
                            s.last_error = Some(m);
                        }
                        _ => {
                            s.sent_points += n;
                            s.connected = true;
                        }
                    }
                }
                if outage {
                    tracing::info!("influxdb reachable again: replaying the backlog");
                }
                outage = false;
                backoff = Duration::from_millis(250);
                // Replay rate limit: a full batch means there is a backlog.
                if recs.len() == c.batch_size && c.replay_points_per_s > 0 {
                    let budget = Duration::from_secs_f64(n as f64 / c.replay_points_per_s as f64);
                    if let Some(rest) = budget.checked_sub(started.elapsed()) {
                        tokio::select! { _ = tokio::time::sleep(rest) => {}, _ = stopped(&mut stop) => return }
                    }
                }
            }
            Outcome::Retry(m) => {
                {
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    s.failed_requests += 1;
                    s.connected = false;
                    s.last_error = Some(m.clone());
                }
                if !outage {
                    tracing::warn!(error = %m, "influxdb write failed; the log keeps the data, retrying");
                }
                outage = true;
                // Jittered so that many controllers do not replay in lockstep after a shared outage.
                let delay = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
                backoff = (backoff * 2).min(Duration::from_secs(30));
                tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = stopped(&mut stop) => return }
            }
        }
    }
}

/// Whether the oldest record is younger than the flush interval (by its timestamp; old
/// timestamps from a replay never wait).
fn young(recs: &[(u64, Record)], flush: Duration) -> bool {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    recs.first()
        .is_some_and(|(_, r)| now_ns - r.ts_ns < flush.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_about_the_batch_itself_drop_it_credentials_and_missing_databases_are_retried() {
        for code in [400, 413, 422] {
            assert!(refused_for_good(code), "{code}");
        }
        for code in [401, 403, 404, 408, 429, 500, 502, 503, 504] {
            assert!(
                !refused_for_good(code),
                "{code} must be retried, never dropped"
            );
        }
    }

    #[test]
    fn records_become_line_protocol_with_ns_timestamps() {
        let mut s = String::new();
        assert!(line_protocol(
            &Record {
                ts_ns: 1_700_000_000_123_456_789,
                channel: 1001,
                kind: b'T',
                point: 1,
                value: 100.5
            },
            &mut s
        ));
        assert!(line_protocol(
            &Record {
                ts_ns: 5,
                channel: 2,
                kind: b'S',
                point: 3,
                value: 1.0
            },
            &mut s
        ));
        assert!(!line_protocol(
            &Record {
                ts_ns: 5,
                channel: 2,
                kind: b'T',
                point: 3,
                value: f64::NAN
            },
            &mut s
        ));
        assert_eq!(s, "telemetry,channel_id=1001,point_id=1 value=100.5 1700000000123456789\nsignal,channel_id=2,point_id=3 value=1 5\n");
    }

    #[test]
    fn write_urls_follow_the_api_version() {
        let mut c: InfluxConfig =
            serde_yaml_ng::from_str("url: http://h:8086/\napi: v1\ndatabase: ems\n").unwrap();
        assert_eq!(write_url(&c), "http://h:8086/write?db=ems&precision=ns");
        c.api = InfluxApi::V2;
        c.org = Some("o".into());
        c.bucket = Some("b".into());
        assert_eq!(
            write_url(&c),
            "http://h:8086/api/v2/write?org=o&bucket=b&precision=ns"
        );
    }
}
