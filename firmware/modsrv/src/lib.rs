//! modsrv (:6001): models of equipment (a station, a battery, a PCS) expanded from templates and
//! stored with the `voltage_model` Redis Functions, with their points' live values.
//!
//! Routes: `POST /models` (`{"model_id","name","template_id","parameters"}`: 201; 409 duplicate;
//! 400 unknown template or parameter, naming it), `GET /models`, `GET /models/{id}`,
//! `PUT /models/{id}` (`{"name"?, "parameters"?}`: re-expands the points, 200),
//! `DELETE /models/{id}`, `GET /models/{id}/points` (each point with `value` and `ts` when it is
//! mapped to a channel point such as `comsrv:1001:T:1`), `POST /models/{id}/actions/{point}`
//! (`{"value":V,"requested_by":..}`: a control/adjustment point's write, queued to comsrv's command
//! path; 202 with the `request_id` whose outcome appears in `comsrv:command:{request_id}`),
//! `GET /health`.

pub mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use template::Template;
use tokio::sync::watch;
use voltage_core::PointType;
pub use voltage_http::Running;
use voltage_http::{error, json, refusal, stopped, Reply};
use voltage_store::Store;
use warp::http::StatusCode;
use warp::Filter;

#[derive(Debug, thiserror::Error)]
pub enum ModsrvError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("templates: {0}")]
    Templates(String),
}

fn parse(text: Option<String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The body of `POST /models` (see [`parse_create`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    pub model_id: String,
    pub name: String,
    pub template_id: String,
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// Parses a `POST /models` body; the error is the 400 answer's message.
pub fn parse_create(body: &[u8]) -> Result<Create, String> {
    serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    name: Option<String>,
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

struct Ctx {
    store: Store,
    templates: BTreeMap<String, Template>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    value: f64,
    #[serde(default)]
    requested_by: Option<String>,
}

impl Ctx {
    /// Routes a model point's action to comsrv: only points mapped to a control (C) or
    /// adjustment (A) point can act.
    async fn action(&self, id: &str, point: &str, body: &[u8]) -> Reply {
        let a: ActionBody = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
        };
        let pts = match self.store.fcall("model_get_points", &[id], &[], true).await {
            Ok(r) => parse(r),
            Err(e) => return refusal(e),
        };
        let Some(p) = pts
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == point)
        else {
            return error(
                StatusCode::NOT_FOUND,
                format!("model {id} has no point {point:?}"),
            );
        };
        let mapping = p["mapping"].as_str().unwrap_or_default();
        let parts: Vec<&str> = mapping.split(':').collect();
        let (Some(ch), Some(kind @ ("C" | "A")), Some(pid)) = (
            parts.get(1).and_then(|c| c.parse::<u32>().ok()),
            parts.get(2).copied(),
            parts.get(3).and_then(|p| p.parse::<u32>().ok()),
        ) else {
            return error(StatusCode::CONFLICT, format!("point {point:?} is not mapped to a control or adjustment point (mapping {mapping:?})"));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let request_id = format!("model-{id}-{point}-{now}");
        let by = a.requested_by.unwrap_or_else(|| format!("modsrv:{id}"));
        let cmd = serde_json::json!({"request_id": request_id, "channel_id": ch, "point_type": kind, "point_id": pid, "value": a.value, "requested_by": by});
        match self.store.queue_command(&cmd.to_string()).await {
            Ok(()) => json(
                StatusCode::ACCEPTED,
                serde_json::json!({"request_id": request_id, "command": cmd}),
            ),
            Err(e) => refusal(e),
        }
    }

    /// The model document: request fields plus the expanded points.
    fn build(
        &self,
        id: &str,
        name: &str,
        template_id: &str,
        given: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, Reply> {
        let Some(t) = self.templates.get(template_id) else {
            let known: Vec<&str> = self.templates.keys().map(String::as_str).collect();
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown template_id {template_id:?}; templates: {}",
                    known.join(", ")
                ),
            ));
        };
        let params = t
            .resolve(given)
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
        let points = t
            .expand(&params)
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
        Ok(
            serde_json::json!({"id": id, "name": name, "template_id": template_id, "parameters": given, "points": points}),
        )
    }

    async fn create(&self, body: &[u8]) -> Reply {
        let c = match parse_create(body) {
            Ok(c) => c,
            Err(m) => return error(StatusCode::BAD_REQUEST, m),
        };
        let doc = match self.build(&c.model_id, &c.name, &c.template_id, &c.parameters) {
            Ok(d) => d,
            Err(r) => return r,
        };
        match self
            .store
            .fcall(
                "model_upsert",
                &[&c.model_id],
                &[&doc.to_string(), "create"],
                false,
            )
            .await
        {
            Ok(r) => json(StatusCode::CREATED, parse(r)),
            Err(e) => refusal(e),
        }
    }

    async fn update(&self, id: &str, body: &[u8]) -> Reply {
        let u: Update = match serde_json::from_slice(body) {
            Ok(u) => u,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
        };
        let cur = match self.store.fcall("model_get", &[id], &[], true).await {
            Ok(r) => parse(r),
            Err(e) => return refusal(e),
        };
        let name = u
            .name
            .unwrap_or_else(|| cur["name"].as_str().unwrap_or_default().to_string());
        let params = u
            .parameters
            .unwrap_or_else(|| cur["parameters"].as_object().cloned().unwrap_or_default());
        let template_id = cur["template_id"].as_str().unwrap_or_default().to_string();
        let doc = match self.build(id, &name, &template_id, &params) {
            Ok(d) => d,
            Err(r) => return r,
        };
        match self
            .store
            .fcall("model_upsert", &[id], &[&doc.to_string(), "update"], false)
            .await
        {
            Ok(_) => json(StatusCode::OK, doc),
            Err(e) => refusal(e),
        }
    }

    async fn points(&self, id: &str) -> Reply {
        let mut pts = match self.store.fcall("model_get_points", &[id], &[], true).await {
            Ok(r) => parse(r),
            Err(e) => return refusal(e),
        };
        for p in pts.as_array_mut().into_iter().flatten() {
            let Some(m) = p.get("mapping").and_then(|m| m.as_str()).map(String::from) else {
                continue;
            };
            // comsrv:{channel}:{T|S|C|A}:{point}
            let parts: Vec<&str> = m.split(':').collect();
            let (Some(ch), Some(kind), Some(pid)) = (
                parts.get(1).and_then(|c| c.parse::<u32>().ok()),
                parts
                    .get(2)
                    .and_then(|k| PointType::ALL.into_iter().find(|t| t.letter() == *k)),
                parts.get(3).and_then(|p| p.parse::<u32>().ok()),
            ) else {
                continue;
            };
            if let Ok(vals) = self.store.read_points(ch, kind).await {
                if let Some((_, v, ts)) = vals.into_iter().find(|(i, _, _)| *i == pid) {
                    p["value"] = v
                        .parse::<f64>()
                        .map(serde_json::Value::from)
                        .unwrap_or(serde_json::Value::String(v));
                    p["ts"] = ts
                        .map(serde_json::Value::from)
                        .unwrap_or(serde_json::Value::Null);
                }
            }
        }
        json(StatusCode::OK, pts)
    }
}

/// Starts modsrv with the templates of `config_dir/modsrv/templates`.
pub async fn start(
    config_dir: &std::path::Path,
    store: Store,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Running, ModsrvError> {
    let templates =
        template::load_dir(&config_dir.join("modsrv").join("templates")).map_err(|e| {
            ModsrvError::Templates(
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    tracing::info!(templates = templates.len(), "model templates loaded");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ModsrvError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ModsrvError::Bind { addr, source })?;
    let port = local_addr.port();
    let (stop_tx, mut stop) = watch::channel(false);
    let fwd = stop_tx.clone();
    tokio::spawn(async move {
        stopped(&mut shutdown).await;
        let _ = fwd.send(true);
    });
    let ctx = Arc::new(Ctx { store, templates });
    let with = move || {
        let c = ctx.clone();
        warp::any().map(move || c.clone())
    };
    let body = || warp::body::content_length_limit(256 * 1024).and(warp::body::bytes());
    let health =
        warp::path!("health")
            .and(warp::get())
            .and(with())
            .then(move |c: Arc<Ctx>| async move {
                voltage_http::health("modsrv", port, &c.store).await
            });
    let create = warp::path!("models")
        .and(warp::post())
        .and(with())
        .and(body())
        .then(|c: Arc<Ctx>, b: bytes::Bytes| async move { c.create(&b).await });
    let list = warp::path!("models")
        .and(warp::get())
        .and(with())
        .then(|c: Arc<Ctx>| async move {
            match c.store.fcall("model_list", &[], &[], true).await {
                Ok(r) => json(StatusCode::OK, parse(r)),
                Err(e) => refusal(e),
            }
        });
    let get = warp::path!("models" / String)
        .and(warp::get())
        .and(with())
        .then(|id: String, c: Arc<Ctx>| async move {
            match c.store.fcall("model_get", &[&id], &[], true).await {
                Ok(r) => json(StatusCode::OK, parse(r)),
                Err(e) => refusal(e),
            }
        });
    let put = warp::path!("models" / String)
        .and(warp::put())
        .and(with())
        .and(body())
        .then(|id: String, c: Arc<Ctx>, b: bytes::Bytes| async move { c.update(&id, &b).await });
    let delete = warp::path!("models" / String)
        .and(warp::delete())
        .and(with())
        .then(|id: String, c: Arc<Ctx>| async move {
            match c.store.fcall("model_delete", &[&id], &[], false).await {
                Ok(_) => json(StatusCode::OK, serde_json::json!({"deleted": id})),
                Err(e) => refusal(e),
            }
        });
    let points = warp::path!("models" / String / "points")
        .and(warp::get())
        .and(with())
        .then(|id: String, c: Arc<Ctx>| async move { c.points(&id).await });
    let action = warp::path!("models" / String / "actions" / String)
        .and(warp::post())
        .and(with())
        .and(body())
        .then(
            |id: String, point: String, c: Arc<Ctx>, b: bytes::Bytes| async move {
                c.action(&id, &point, &b).await
            },
        );
    let routes = health
        .or(create)
        .or(list)
        .or(points)
        .or(action)
        .or(get)
        .or(put)
        .or(delete);
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(async move { stopped(&mut stop).await })
        .run();
    Ok(Running::new(local_addr, stop_tx, tokio::spawn(server)).with_handler(handler))
}
