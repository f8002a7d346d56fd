//! The loop that feeds threshold rules (`DIR/alarmsrv/rules.yaml`) with live values and turns
//! their transitions into alarms: raise -> `alarm_create` (deduplicated per rule), clear ->
//! `alarm_resolve`. An operator resolving a latching alarm re-arms its rule.

use crate::threshold::{Threshold, ThresholdRule, Transition};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use voltage_core::time::rfc3339;
use voltage_core::PointType;
use voltage_store::Store;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<ThresholdRule>,
}

/// A rule's state plus the id of its open alarm.
pub struct Monitored {
    pub threshold: Threshold,
    pub alarm_id: Option<String>,
    pub last_value: Option<f64>,
}

/// `(point_id, value, read time)` of one point type of a channel.
type Readings = Vec<(u32, String, Option<u64>)>;

pub type Shared = Arc<Mutex<BTreeMap<String, Monitored>>>;

/// Loads `DIR/alarmsrv/rules.yaml` (absent = no rules); errors name file, line and column.
pub fn load(dir: &std::path::Path) -> Result<Vec<ThresholdRule>, String> {
    let path = dir.join("alarmsrv").join("rules.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    parse_rules(&path.display().to_string(), &text)
}

/// Parses the text of a rules file named `file` (the name is used in errors).
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<ThresholdRule>, String> {
    let f: RulesFile = voltage_core::config::parse_yaml(file, text).map_err(|e| e.to_string())?;
    for r in &f.rules {
        if parse_point(&r.point).is_none() {
            return Err(format!(
                "{file}: rule {}: point {:?} is not like comsrv:1001:T:1",
                r.id, r.point
            ));
        }
        if r.high.is_none() && r.low.is_none() {
            return Err(format!("{file}: rule {}: give high, low or both", r.id));
        }
    }
    Ok(f.rules)
}

fn parse_point(p: &str) -> Option<(u32, PointType, u32)> {
    let parts: Vec<&str> = p.split(':').collect();
    if parts.len() != 4 || parts[0] != "comsrv" {
        return None;
    }
    let kind = PointType::ALL
        .into_iter()
        .find(|t| t.letter() == parts[2])?;
    Some((parts[1].parse().ok()?, kind, parts[3].parse().ok()?))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn run(store: Store, state: Shared, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = stop.wait_for(|v| *v) => { if r.is_ok() { return; } }
        }
        let points: Vec<(String, String)> = state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, m)| (id.clone(), m.threshold.rule.point.clone()))
            .collect();
        let mut cache: BTreeMap<(u32, PointType), Readings> = BTreeMap::new();
        for (id, point) in points {
            let Some((ch, kind, pid)) = parse_point(&point) else {
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(e) = cache.entry((ch, kind)) {
                e.insert(store.read_points(ch, kind).await.unwrap_or_default());
            }
            let value = cache[&(ch, kind)]
                .iter()
                .find(|(i, _, _)| *i == pid)
                .and_then(|(_, v, _)| v.parse::<f64>().ok());
            let now = now_ms();
            let (transition, rule, alarm_id) = {
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                let Some(m) = g.get_mut(&id) else { continue };
                m.last_value = value;
                (
                    m.threshold.step(value, now),
                    m.threshold.rule.clone(),
                    m.alarm_id.clone(),
                )
            };
            match transition {
                Some(Transition::Raise) => {
                    let alarm = serde_json::json!({"title": rule.title, "level": rule.level, "source": rule.point,
                        "description": format!("threshold rule {}", rule.id), "dedup_key": format!("threshold:{}", rule.id),
                        "metadata": {"value": value, "high": rule.high, "low": rule.low, "rule": rule.id}});
                    match store
                        .fcall(
                            "alarm_create",
                            &[],
                            &[&alarm.to_string(), &rfc3339(now as i64)],
                            false,
                        )
                        .await
                    {
                        Ok(r) => {
                            let aid = r
                                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                                .and_then(|v| v["id"].as_str().map(String::from));
                            tracing::warn!(rule = %rule.id, value, alarm = ?aid, "threshold alarm raised");
                            if let Some(m) =
                                state.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id)
                            {
                                m.alarm_id = aid;
                            }
                        }
                        Err(e) => {
                            tracing::error!(rule = %rule.id, error = %e, "cannot create the threshold alarm")
                        }
                    }
                }
                Some(Transition::Clear) => {
                    if let Some(aid) = alarm_id.clone() {
                        let r = store
                            .fcall(
                                "alarm_resolve",
                                &[&aid],
                                &["alarmsrv", &rfc3339(now as i64), "condition cleared"],
                                false,
                            )
                            .await;
                        tracing::info!(rule = %rule.id, alarm = %aid, ok = r.is_ok(), "threshold alarm cleared");
                    }
                    if let Some(m) = state.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                        m.alarm_id = None;
                    }
                }
                None => {}
            }
            // A latching alarm the operator resolved re-arms its rule.
            if let Some(aid) = alarm_id.filter(|_| rule.latching) {
                if let Ok(Some(t)) = store.fcall("alarm_get", &[&aid], &[], true).await {
                    if t.contains("\"status\":\"Resolved\"") {
                        if let Some(m) =
                            state.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id)
                        {
                            m.threshold.operator_resolved();
                            m.alarm_id = None;
                        }
                    }
                }
            }
        }
    }
}
