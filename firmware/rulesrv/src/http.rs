//! rulesrv's HTTP routes (`/rules`, `/rules/{id}`, `/rules/{id}/evaluate`,
//! `/rules/{id}/executions`, `/health`) and the start of the service with its scheduler.
//!
//! `GET /rules/{id}/executions?limit=N` lists the rule's recorded firings, newest first (the
//! `rule_list_executions` function; default 100): what the console shows as a rule's last
//! executions. An unknown rule is 404, a limit outside 1..=10000 is 400.

use crate::{now_ms, parse_rule, scheduler, Engine, RulesrvError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use voltage_http::{error, json, refusal, stopped, Reply, Running};
use voltage_store::Store;
use warp::http::StatusCode;
use warp::Filter;

/// `GET /rules/{id}/executions`: `limit` is the only query parameter.
async fn executions(e: &Engine, id: &str, q: &HashMap<String, String>) -> Reply {
    if let Some(k) = q.keys().find(|k| k.as_str() != "limit") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown query parameter {k:?}; use limit"),
        );
    }
    let args: Vec<&str> = q.get("limit").map(String::as_str).into_iter().collect();
    match e
        .store
        .fcall("rule_list_executions", &[id], &args, true)
        .await
    {
        Ok(r) => json(
            StatusCode::OK,
            r.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_else(|| serde_json::json!([])),
        ),
        Err(err) => refusal(err),
    }
}

pub async fn start(
    store: Store,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Running, RulesrvError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RulesrvError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| RulesrvError::Bind { addr, source })?;
    let port = local_addr.port();
    let (stop_tx, stop) = watch::channel(false);
    let fwd = stop_tx.clone();
    tokio::spawn(async move {
        stopped(&mut shutdown).await;
        let _ = fwd.send(true);
    });
    let engine = Arc::new(Engine {
        store,
        edges: Mutex::default(),
    });
    let with = {
        let e = engine.clone();
        move || {
            let e = e.clone();
            warp::any().map(move || e.clone())
        }
    };
    let health =
        warp::path!("health")
            .and(warp::get())
            .and(with())
            .then(move |e: Arc<Engine>| async move {
                voltage_http::health("rulesrv", port, &e.store).await
            });
    let create = warp::path!("rules")
        .and(warp::post())
        .and(with())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .then(|e: Arc<Engine>, b: bytes::Bytes| async move {
            let mut r = match parse_rule(&b) {
                Ok(r) => r,
                Err(m) => return error(StatusCode::BAD_REQUEST, m),
            };
            let id = r.id.clone().unwrap_or_else(|| format!("rule_{}", now_ms()));
            r.id = Some(id.clone());
            let doc = serde_json::to_string(&r).unwrap_or_default();
            match e
                .store
                .fcall("rule_upsert", &[&id], &[&doc, "create"], false)
                .await
            {
                Ok(_) => json(StatusCode::CREATED, serde_json::json!({"id": id})),
                Err(err) => refusal(err),
            }
        });
    let list =
        warp::path!("rules")
            .and(warp::get())
            .and(with())
            .then(|e: Arc<Engine>| async move {
                match e.store.fcall("rule_list", &[], &[], true).await {
                    Ok(r) => json(
                        StatusCode::OK,
                        r.and_then(|t| serde_json::from_str(&t).ok())
                            .unwrap_or_default(),
                    ),
                    Err(err) => refusal(err),
                }
            });
    let get = warp::path!("rules" / String)
        .and(warp::get())
        .and(with())
        .then(|id: String, e: Arc<Engine>| async move {
            match e.store.fcall("rule_get", &[&id], &[], true).await {
                Ok(r) => json(
                    StatusCode::OK,
                    r.and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                ),
                Err(err) => refusal(err),
            }
        });
    let delete = warp::path!("rules" / String)
        .and(warp::delete())
        .and(with())
        .then(|id: String, e: Arc<Engine>| async move {
            match e.store.fcall("rule_delete", &[&id], &[], false).await {
                Ok(_) => json(StatusCode::OK, serde_json::json!({"deleted": id})),
                Err(err) => refusal(err),
            }
        });
    let evaluate = warp::path!("rules" / String / "evaluate")
        .and(warp::post())
        .and(with())
        .then(|id: String, e: Arc<Engine>| async move {
            match e.evaluate(&id).await {
                Ok(v) => json(StatusCode::OK, v),
                Err(r) => r,
            }
        });
    let executions = warp::path!("rules" / String / "executions")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with())
        .then(
            |id: String, q: HashMap<String, String>, e: Arc<Engine>| async move {
                executions(&e, &id, &q).await
            },
        );
    let routes = health
        .or(create)
        .or(list)
        .or(evaluate)
        .or(executions)
        .or(get)
        .or(delete);
    let mut s2 = stop.clone();
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(async move { stopped(&mut s2).await })
        .run();
    let sched = tokio::spawn(scheduler(engine, stop));
    let task = tokio::spawn(async move {
        server.await;
        let _ = sched.await;
    });
    Ok(Running::new(local_addr, stop_tx, task).with_handler(handler))
}
