//! Sampling: turns the live values of one source (channel and point types) into log records.
//!
//! A reading is recorded when it is new: its read time (`comsrv:{ch}:{T}:ts`) or its value
//! changed since the last record. With `interval_ms > 0` the source is looked at every interval
//! (so at most one record per point per interval); with 0 it is looked at every 250 ms and
//! records every change. Timestamps are the readings' own, not the sampling time.

use crate::{stopped, SharedWal};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use voltage_core::config::HistorySource;
use voltage_core::PointType;
use voltage_store::Store;
use voltage_wal::Record;

fn kind(t: &str) -> Option<PointType> {
    PointType::ALL.into_iter().find(|k| k.letter() == t)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses a stored value (`1234.000000`, `0`/`1`, `nan`); `None` for anything else.
pub fn parse_value(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok()
}

pub async fn run(
    src: HistorySource,
    store: Store,
    wal: SharedWal,
    appended: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let kinds: Vec<PointType> = src.types.iter().filter_map(|t| kind(t)).collect();
    let period = if src.interval_ms == 0 {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(src.interval_ms)
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: HashMap<(PointType, u32), (Option<u64>, String)> = HashMap::new();
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let mut batch = Vec::new();
        let mut seen = Vec::new();
        for k in &kinds {
            let points = match store.read_points(src.channel, *k).await {
                Ok(p) => {
                    warned = false;
                    p
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(channel = src.channel, error = %e, "history sampling paused: redis unavailable");
                        warned = true;
                    }
                    continue;
                }
            };
            for (point, value, ts) in points {
                let key = (*k, point);
                let fresh = match last.get(&key) {
                    Some((t, v)) => *t != ts || *v != value,
                    None => true,
                };
                if !fresh {
                    continue;
                }
                let Some(x) = parse_value(&value) else {
                    continue;
                };
                let ts_ms = ts.unwrap_or_else(now_ms);
                batch.push(Record {
                    ts_ns: ts_ms as i64 * 1_000_000,
                    channel: src.channel,
                    kind: k.letter().as_bytes()[0],
                    point,
                    value: x,
                });
                seen.push((key, (ts, value)));
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len();
        match wal.with(move |w| w.append(&batch)).await {
            Ok(_) => {
                // Only readings that are in the log count as recorded: a failed append is
                // retried with the next look.
                last.extend(seen);
                appended.notify_waiters();
            }
            Err(e) => {
                tracing::error!(channel = src.channel, records = n, error = %e, "cannot append to the history log")
            }
        }
    }
}
