//! Sampling: turns the live values of one source (a channel's point types, or a model's points)
//! into log records.
//!
//! A reading is recorded when it is new: its read time (`comsrv:{ch}:{T}:ts`) or its value
//! changed since the last record. With `interval_ms > 0` the source is looked at every interval
//! (so at most one record per point per interval); with 0 it is looked at every 250 ms and
//! records every change. Timestamps are the readings' own, not the sampling time. A model
//! source is resolved through the model's mapping at every look (models change while the
//! daemon runs) and its points are recorded under the comsrv points they map to.

use crate::{stopped, SharedWal};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use voltage_core::config::HistorySource;
use voltage_core::expr::{self, Expr, PointRef};
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

/// What one look reads: the points of one channel and type; `None` = all of them.
pub type Targets = BTreeMap<(u32, PointType), Option<BTreeSet<u32>>>;

/// The comsrv points a model's points map to (`model_get_points` JSON), limited to `wanted`
/// names unless it is empty. Points without a comsrv mapping are skipped.
pub fn model_targets(points_json: &str, wanted: &[String]) -> Targets {
    let points: serde_json::Value = serde_json::from_str(points_json).unwrap_or_default();
    let mut out = Targets::new();
    for p in points.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mapping = p["mapping"].as_str().unwrap_or_default();
        if let Ok(Expr::Point(PointRef::Comsrv {
            channel,
            kind: k,
            point,
        })) = expr::parse(mapping)
        {
            if let Some(t) = kind(&k.to_string()) {
                if let Some(set) = out
                    .entry((channel, t))
                    .or_insert_with(|| Some(BTreeSet::new()))
                {
                    set.insert(point);
                }
            }
        }
    }
    out
}

/// The source's targets now; `Err` with the reason when they cannot be known (Redis down, no
/// such model).
async fn targets(
    src: &HistorySource,
    kinds: &[PointType],
    store: &Store,
) -> Result<Targets, String> {
    if let Some(ch) = src.channel {
        return Ok(kinds.iter().map(|k| ((ch, *k), None)).collect());
    }
    let model = src.model.as_deref().unwrap_or_default();
    match store.fcall("model_get_points", &[model], &[], true).await {
        Ok(Some(json)) => Ok(model_targets(&json, &src.points)),
        Ok(None) => Ok(Targets::new()),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn run(
    src: HistorySource,
    store: Store,
    wal: SharedWal,
    appended: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let kinds: Vec<PointType> = src.types.iter().filter_map(|t| kind(t)).collect();
    let source = match (&src.channel, &src.model) {
        (Some(ch), _) => format!("channel {ch}"),
        (None, m) => format!("model {}", m.as_deref().unwrap_or_default()),
    };
    let period = if src.interval_ms == 0 {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(src.interval_ms)
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: HashMap<(u32, PointType, u32), (Option<u64>, String)> = HashMap::new();
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let targets = match targets(&src, &kinds, &store).await {
            Ok(t) => t,
            Err(e) => {
                if !warned {
                    tracing::warn!(%source, error = %e, "history sampling paused: cannot resolve the source");
                    warned = true;
                }
                continue;
            }
        };
        let mut batch = Vec::new();
        let mut seen = Vec::new();
        for ((channel, k), only) in &targets {
            let points = match store.read_points(*channel, *k).await {
                Ok(p) => {
                    warned = false;
                    p
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(%source, error = %e, "history sampling paused: redis unavailable");
                        warned = true;
                    }
                    continue;
                }
            };
            for (point, value, ts) in points {
                if only.as_ref().is_some_and(|o| !o.contains(&point)) {
                    continue;
                }
                let key = (*channel, *k, point);
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
                    channel: *channel,
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
                tracing::error!(%source, records = n, error = %e, "cannot append to the history log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCS: &str = r#"[
        {"name":"dc_voltage","mapping":"comsrv:1001:T:1","unit":"V"},
        {"name":"power","mapping":"comsrv:1001:T:3"},
        {"name":"running","mapping":"comsrv:1001:S:2"},
        {"name":"setpoint","mapping":"comsrv:1002:A:7"},
        {"name":"note","mapping":""}
    ]"#;

    #[test]
    fn a_model_resolves_to_the_comsrv_points_of_its_mapping() {
        let t = model_targets(PCS, &[]);
        let want: Targets = [
            ((1001, PointType::Telemetry), Some([1, 3].into())),
            ((1001, PointType::Signal), Some([2].into())),
            ((1002, PointType::Adjustment), Some([7].into())),
        ]
        .into();
        assert_eq!(t, want);
    }

    #[test]
    fn named_model_points_limit_what_is_recorded() {
        let t = model_targets(PCS, &["power".into(), "missing".into()]);
        assert_eq!(t, [((1001, PointType::Telemetry), Some([3].into()))].into());
    }

    #[test]
    fn garbage_from_redis_resolves_to_nothing() {
        assert!(model_targets("not json", &[]).is_empty());
        assert!(model_targets(r#"{"name":"x"}"#, &[]).is_empty());
    }
}
