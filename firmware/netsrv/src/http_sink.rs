//! The HTTP POST sink: each batch is POSTed as JSON; any 2xx acknowledges it. Failures are
//! retried with backoff (the log keeps the data).

use crate::{next_batch, payload, stopped, Shared, SharedWal};
use std::time::Duration;
use tokio::sync::watch;
use voltage_core::config::HttpSinkConfig;

const SINK: &str = "http";

pub async fn run(
    c: HttpSinkConfig,
    device_id: String,
    wal: SharedWal,
    state: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let client = match voltage_http::tls::http_client(
        &c.url,
        Duration::from_millis(c.timeout_ms),
        c.tls.as_ref(),
    ) {
        Ok(cl) => cl,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; the HTTP sink is off");
            return;
        }
    };
    let mut backoff = Duration::from_millis(250);
    while let Some((recs, next)) = next_batch(&wal, SINK, c.batch_size, &mut stop).await {
        let body = payload(&device_id, &recs);
        let r = client
            .post(&c.url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        let err = match r {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!("POST {}: {}", c.url, resp.status())),
            Err(e) => Some(format!("POST {}: {e}", c.url)),
        };
        match err {
            None => {
                if let Err(e) = wal.with(move |w| w.commit(SINK, next)).await {
                    tracing::error!(error = %e, "cannot advance the http cursor");
                }
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.connected = true;
                s.sent_records += recs.len() as u64;
                s.messages += 1;
                backoff = Duration::from_millis(250);
            }
            Some(e) => {
                {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    if s.connected || s.failures == 0 {
                        tracing::warn!(error = %e, "http sink failed; the log keeps the data, retrying");
                    }
                    s.connected = false;
                    s.failures += 1;
                    s.last_error = Some(e);
                }
                tokio::select! { _ = tokio::time::sleep(backoff) => {}, _ = stopped(&mut stop) => return }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
