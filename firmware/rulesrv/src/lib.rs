//! rulesrv (:6003): rules over live points, evaluated periodically (per-rule `interval_ms`) and on
//! `POST /rules/{id}/evaluate`; actions `create_alarm`, `write_point` (through comsrv's command
//! queue) and `publish` (Redis pub/sub) fire on the rising edge of the condition, with an optional
//! `cooldown_ms`. Every firing is recorded with `rule_record_execution`:
//! `{"triggered":true,"executed_at":..,"values":{..},"actions":[..results]}`.
//! A bad expression is refused at `POST /rules` with 400 and its column; a point without a value
//! makes the condition unknown (false), reported in the evaluation's `missing`.

mod edge;
mod http;
pub use http::start;

use edge::Edge;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use voltage_core::expr::{self, PointRef};
use voltage_core::time::rfc3339;
use voltage_core::PointType;
pub use voltage_http::Running;
use voltage_http::{error, refusal, stopped, Reply};
use voltage_store::Store;
use warp::http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum RulesrvError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const ACTIONS: &[&str] = &["create_alarm", "write_point", "publish"];

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    expression: String,
    #[serde(default)]
    data_sources: Vec<String>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action_type: String,
    #[serde(default)]
    parameters: serde_json::Value,
}

/// A rule as `POST /rules` takes it (see [`parse_rule`]).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    condition: Condition,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "second")]
    interval_ms: u64,
    #[serde(default)]
    cooldown_ms: u64,
}

fn yes() -> bool {
    true
}
fn second() -> u64 {
    1000
}

/// Checks a rule; the message names the field (and the expression's column).
/// Parses and validates a `POST /rules` body; the error is the 400 answer's message.
pub fn parse_rule(body: &[u8]) -> Result<Rule, String> {
    let r: Rule = serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))?;
    validate(&r)?;
    Ok(r)
}

fn validate(r: &Rule) -> Result<(), String> {
    expr::parse(&r.condition.expression).map_err(|e| format!("condition.expression: {e}"))?;
    for (i, a) in r.actions.iter().enumerate() {
        if !ACTIONS.contains(&a.action_type.as_str()) {
            return Err(format!(
                "actions[{i}].action_type {:?} is not one of {}",
                a.action_type,
                ACTIONS.join(", ")
            ));
        }
    }
    if r.interval_ms < 100 {
        return Err("interval_ms must be at least 100".into());
    }
    Ok(())
}

struct Engine {
    store: Store,
    edges: Mutex<HashMap<String, Edge>>,
}

impl Engine {
    /// Current values of `refs` (model points through their mapping), keyed by their text.
    async fn values(&self, refs: &[PointRef]) -> BTreeMap<String, f64> {
        let mut groups: BTreeMap<(u32, char), Vec<(String, u32)>> = BTreeMap::new();
        for r in refs {
            match r {
                PointRef::Comsrv {
                    channel,
                    kind,
                    point,
                } => groups
                    .entry((*channel, *kind))
                    .or_default()
                    .push((r.to_string(), *point)),
                PointRef::Model { model, point } => {
                    let pts = self
                        .store
                        .fcall("model_get_points", &[model], &[], true)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    let pts: serde_json::Value = serde_json::from_str(&pts).unwrap_or_default();
                    let mapping = pts
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|p| p["name"] == point.as_str())
                        .and_then(|p| p["mapping"].as_str())
                        .unwrap_or_default()
                        .to_string();
                    if let Ok(expr::Expr::Point(PointRef::Comsrv {
                        channel,
                        kind,
                        point: pid,
                    })) = expr::parse(&mapping)
                    {
                        groups
                            .entry((channel, kind))
                            .or_default()
                            .push((r.to_string(), pid));
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for ((ch, k), rs) in groups {
            let Some(kind) = PointType::ALL
                .into_iter()
                .find(|t| t.letter().starts_with(k))
            else {
                continue;
            };
            if let Ok(vals) = self.store.read_points(ch, kind).await {
                for (name, pid) in rs {
                    if let Some((_, v, _)) = vals.iter().find(|(id, _, _)| *id == pid) {
                        if let Ok(x) = v.parse::<f64>() {
                            out.insert(name, x);
                        }
                    }
                }
            }
        }
        out
    }

    /// Evaluates a rule; fires its actions on a rising edge and records the execution.
    async fn evaluate(&self, id: &str) -> Result<serde_json::Value, Reply> {
        let text = self
            .store
            .fcall("rule_get", &[id], &[], true)
            .await
            .map_err(refusal)?
            .unwrap_or_default();
        let rule: Rule = serde_json::from_str(&text).map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("stored rule {id}: {e}"),
            )
        })?;
        let e = expr::parse(&rule.condition.expression).map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("stored rule {id}: {e}"),
            )
        })?;
        let mut refs = Vec::new();
        e.points(&mut refs);
        let values = self.values(&refs).await;
        let missing: Vec<String> = refs
            .iter()
            .map(|r| r.to_string())
            .filter(|r| !values.contains_key(r))
            .collect();
        let result = e
            .eval(&|p: &PointRef| values.get(&p.to_string()).copied())
            .map(|v| v != 0.0);
        let now = now_ms();
        let fire = self
            .edges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .step(result, now, rule.cooldown_ms);
        let mut out = serde_json::json!({"rule_id": id, "condition": result, "triggered": fire, "values": values, "missing": missing});
        if !fire {
            return Ok(out);
        }
        let mut results = Vec::new();
        for a in &rule.actions {
            results.push(self.act(id, &rule, a, &values, now).await);
        }
        let exec = serde_json::json!({"triggered": true, "executed_at": rfc3339(now as i64), "values": values, "actions": results});
        if let Err(e) = self
            .store
            .fcall("rule_record_execution", &[id], &[&exec.to_string()], false)
            .await
        {
            tracing::warn!(rule = id, error = %e, "cannot record the rule execution");
        }
        tracing::info!(rule = id, actions = results.len(), "rule fired");
        out["actions"] = serde_json::Value::Array(results);
        out["executed_at"] = exec["executed_at"].clone();
        Ok(out)
    }

    async fn act(
        &self,
        id: &str,
        rule: &Rule,
        a: &Action,
        values: &BTreeMap<String, f64>,
        now: u64,
    ) -> serde_json::Value {
        let p = &a.parameters;
        let r = match a.action_type.as_str() {
            "create_alarm" => {
                let alarm = serde_json::json!({
                    "title": p["title"].as_str().unwrap_or(&rule.name),
                    "level": p["level"].as_str().unwrap_or("Warning"),
                    "description": p["description"].as_str().unwrap_or(&rule.description),
                    "source": format!("rule:{id}"),
                    "dedup_key": format!("rule:{id}"),
                    "metadata": {"values": values},
                });
                self.store
                    .fcall(
                        "alarm_create",
                        &[],
                        &[&alarm.to_string(), &rfc3339(now as i64)],
                        false,
                    )
                    .await
                    .map(|r| {
                        serde_json::from_str::<serde_json::Value>(&r.unwrap_or_default())
                            .unwrap_or_default()
                    })
            }
            "write_point" => {
                let request_id = format!("rule-{id}-{now}");
                let cmd = serde_json::json!({"request_id": request_id, "channel_id": p["channel_id"], "point_type": p["point_type"],
                    "point_id": p["point_id"], "value": p["value"], "requested_by": format!("rule:{id}")});
                self.store
                    .queue_command(&cmd.to_string())
                    .await
                    .map(|()| serde_json::json!({"queued": request_id}))
            }
            _ => {
                let channel = p["channel"].as_str().unwrap_or("rulesrv:events");
                let msg = serde_json::json!({"rule_id": id, "name": rule.name, "values": values, "at": rfc3339(now as i64)});
                self.store
                    .publish(channel, &msg.to_string())
                    .await
                    .map(|n| serde_json::json!({"subscribers": n}))
            }
        };
        match r {
            Ok(v) => serde_json::json!({"action_type": a.action_type, "ok": true, "result": v}),
            Err(e) => {
                serde_json::json!({"action_type": a.action_type, "ok": false, "error": e.to_string()})
            }
        }
    }
}

/// Evaluates every enabled rule on its interval; the rule list is re-read every 2 s.
async fn scheduler(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let mut rules: Vec<(String, u64)> = Vec::new();
    let mut next_due: HashMap<String, Instant> = HashMap::new();
    let mut refreshed = Instant::now() - Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! { _ = tick.tick() => {}, _ = stopped(&mut stop) => return }
        if refreshed.elapsed() >= Duration::from_secs(2) {
            refreshed = Instant::now();
            if let Ok(Some(list)) = engine.store.fcall("rule_list", &[], &[], true).await {
                let parsed: Vec<Rule> = serde_json::from_str::<Vec<serde_json::Value>>(&list)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| serde_json::from_value(v).ok())
                    .collect();
                rules = parsed
                    .into_iter()
                    .filter(|r| r.enabled)
                    .filter_map(|r| r.id.clone().map(|id| (id, r.interval_ms)))
                    .collect();
            }
        }
        let now = Instant::now();
        for (id, interval) in &rules {
            if next_due.get(id).is_some_and(|t| *t > now) {
                continue;
            }
            next_due.insert(id.clone(), now + Duration::from_millis(*interval));
            let _ = engine.evaluate(id).await;
        }
    }
}
