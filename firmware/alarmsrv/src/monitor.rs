//! The loop that feeds threshold rules (`DIR/alarmsrv/rules.yaml`) with live values and keeps
//! the alarm store in step with them: a rule that is open has one unresolved alarm
//! (`alarm_create`, deduplicated per rule), a rule that is not has none (`alarm_resolve`). An
//! operator resolving a latching alarm re-arms its rule.
//!
//! The store is made to match the rules, not just told about transitions, so that no failure
//! leaves an alarm missing, stale or counted twice:
//! - a call that fails (Redis down, a reply lost) is made again at the next tick; creating is
//!   idempotent through the dedup key, resolving checks first that the alarm is still the rule's;
//! - at start, unresolved threshold alarms a previous run left are taken over by their rules
//!   (resolved once the value shows the condition gone, kept while it holds), never raised twice;
//! - when Redis restarts (its `run_id` changes, checked every 2 s) it may have lost every alarm:
//!   the open rules raise theirs again (the dedup key returns the same alarm if Redis kept it),
//!   and an alarm id from before the restart is never resolved without checking whose it is.

use crate::threshold::{Threshold, ThresholdRule, Transition};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use voltage_core::time::rfc3339;
use voltage_core::PointType;
use voltage_store::{Store, StoreError};

/// How often the loop asks Redis whether it restarted.
const REDIS_CHECK: Duration = Duration::from_secs(2);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<ThresholdRule>,
}

/// A rule's state plus the id of its alarm in the store.
pub struct Monitored {
    pub threshold: Threshold,
    /// The unresolved alarm the store holds for the rule, as far as the loop knows (while the
    /// rule is not open: an alarm still to be resolved).
    pub alarm_id: Option<String>,
    pub last_value: Option<f64>,
    /// The last call about this rule's alarm failed (logged once, retried every tick).
    pub failing: bool,
}

impl Monitored {
    pub fn new(threshold: Threshold) -> Self {
        Monitored {
            threshold,
            alarm_id: None,
            last_value: None,
            failing: false,
        }
    }
}

fn dedup_key(rule: &str) -> String {
    format!("threshold:{rule}")
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
    // The Redis run_id the alarms were reconciled with (None: not yet, nothing is stepped).
    let mut run_id: Option<String> = None;
    let mut checked: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = stop.wait_for(|v| *v) => { if r.is_ok() { return; } }
        }
        if checked.is_none_or(|t| t.elapsed() >= REDIS_CHECK) {
            checked = Some(Instant::now());
            if let Ok(now) = store.server_run_id().await {
                if run_id.as_deref() != Some(now.as_str()) {
                    let done = match run_id {
                        None => take_over(&store, &state).await,
                        Some(_) => {
                            raise_again(&state);
                            true
                        }
                    };
                    if done {
                        run_id = Some(now);
                    }
                }
            }
        }
        if run_id.is_none() {
            continue;
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
            let (transition, open, rule, alarm_id) = {
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                let Some(m) = g.get_mut(&id) else { continue };
                m.last_value = value;
                let t = m.threshold.step(value, now);
                (
                    t,
                    m.threshold.is_open(),
                    m.threshold.rule.clone(),
                    m.alarm_id.clone(),
                )
            };
            match transition {
                Some(Transition::Raise) => {
                    tracing::warn!(rule = %rule.id, value, "threshold alarm raised")
                }
                Some(Transition::Clear) => {
                    tracing::info!(rule = %rule.id, value, "threshold alarm cleared")
                }
                None => {}
            }
            let synced = match (open, &alarm_id) {
                (true, None) => create(&store, &rule, value, now).await.map(Some),
                (false, Some(aid)) => resolve_own(&store, &rule.id, aid, now).await.map(|()| None),
                _ => Ok(alarm_id.clone()),
            };
            {
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                let Some(m) = g.get_mut(&id) else { continue };
                match synced {
                    // Only if nothing changed the rule meanwhile (the HTTP API shelves rules).
                    Ok(aid) if m.threshold.is_open() == open => {
                        m.alarm_id = aid;
                        m.failing = false;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !m.failing {
                            tracing::error!(rule = %rule.id, error = %e, "cannot update the threshold alarm; retrying");
                        }
                        m.failing = true;
                    }
                }
            }
            // A latching alarm the operator resolved re-arms its rule.
            if let Some(aid) = alarm_id.filter(|_| rule.latching && open) {
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

/// Creates the rule's alarm, or finds the unresolved one the store already holds for it (the
/// dedup key); returns its id.
async fn create(
    store: &Store,
    rule: &crate::threshold::ThresholdRule,
    value: Option<f64>,
    now: u64,
) -> Result<String, StoreError> {
    let alarm = serde_json::json!({"title": rule.title, "level": rule.level, "source": rule.point,
        "description": format!("threshold rule {}", rule.id), "dedup_key": dedup_key(&rule.id),
        "metadata": {"value": value, "high": rule.high, "low": rule.low, "rule": rule.id}});
    let r = store
        .fcall(
            "alarm_create",
            &[],
            &[&alarm.to_string(), &rfc3339(now as i64)],
            false,
        )
        .await?;
    let v = r
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .unwrap_or_default();
    let Some(aid) = v["id"].as_str() else {
        return Err(StoreError::Function(format!(
            "alarm_create answered without an id: {v}"
        )));
    };
    if v["created"] == false {
        tracing::info!(rule = %rule.id, alarm = aid, "threshold alarm already in the store: kept");
    } else {
        tracing::info!(rule = %rule.id, alarm = aid, "threshold alarm created");
    }
    Ok(aid.to_string())
}

/// Resolves alarm `aid` if it is still the rule's and unresolved. An id from before a Redis
/// restart may name another alarm by now, or none: then there is nothing to resolve.
async fn resolve_own(store: &Store, rule: &str, aid: &str, now: u64) -> Result<(), StoreError> {
    let alarm = match store.fcall("alarm_get", &[aid], &[], true).await {
        Ok(Some(t)) => serde_json::from_str::<serde_json::Value>(&t).unwrap_or_default(),
        Ok(None) | Err(StoreError::Function(_)) => return Ok(()), // gone
        Err(e) => return Err(e),
    };
    if alarm["dedup_key"] != dedup_key(rule).as_str() || alarm["status"] == "Resolved" {
        return Ok(());
    }
    store
        .fcall(
            "alarm_resolve",
            &[aid],
            &["alarmsrv", &rfc3339(now as i64), "condition cleared"],
            false,
        )
        .await?;
    tracing::info!(rule, alarm = aid, "threshold alarm resolved");
    Ok(())
}

/// At start: the unresolved threshold alarms in the store (left by a previous run) are taken over
/// by their rules, which then resolve them only once the value shows the condition gone.
/// Returns false when the store could not be read (tried again at the next check).
async fn take_over(store: &Store, state: &Shared) -> bool {
    let mut found = Vec::new();
    for status in ["Active", "Acknowledged"] {
        let list = match store
            .fcall(
                "alarm_list",
                &[],
                &["status", status, "limit", "10000"],
                true,
            )
            .await
        {
            Ok(t) => t.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the open alarms; trying again");
                return false;
            }
        };
        let alarms: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap_or_default();
        // Newest first: the oldest is taken over last, so it wins (there should be one).
        for a in alarms.iter().rev() {
            if let (Some(key), Some(aid)) = (a["dedup_key"].as_str(), a["id"].as_str()) {
                if let Some(rule) = key.strip_prefix("threshold:") {
                    found.push((rule.to_string(), aid.to_string()));
                }
            }
        }
    }
    let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
    for (rule, aid) in found {
        if let Some(m) = g.get_mut(&rule) {
            tracing::info!(rule = %rule, alarm = %aid, "open threshold alarm of a previous run taken over");
            m.threshold.adopt_open();
            m.alarm_id = Some(aid);
        }
    }
    true
}

/// Redis restarted: it may have lost every alarm. Open rules forget their alarm ids and raise
/// again at the next tick (the dedup key finds the alarm if Redis kept it).
fn raise_again(state: &Shared) {
    let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut n = 0;
    for m in g.values_mut() {
        if m.threshold.is_open() && m.alarm_id.take().is_some() {
            n += 1;
        }
    }
    tracing::warn!(
        open_rules = n,
        "redis restarted: the open threshold alarms are raised again"
    );
}
