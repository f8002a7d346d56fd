//! gateway: the controller's one HTTP door (:6005 behind nginx on :80).
//!
//! Every request passes the same steps, in one handler rather than a tree of warp filters so
//! that each step's refusal has the product's JSON error shape and a log line:
//!
//! 1. **auth** ([`auth`]): the role the method and path need, against the bearer token's role
//!    (401 without a valid token, 403 with a too-low role; refused changes are logged);
//! 2. **body**: read up to `body_limit_bytes` (413 beyond, whatever `Content-Length` claims);
//! 3. **route**: `/health` (every service aggregated), `/metrics` (OpenMetrics), `/events` (live
//!    data, server-sent events), `/openapi.json`, `/auth/whoami` (the caller's token name and
//!    role), the web console at `/` and `/console/...` ([`console`]: embedded files, open), and
//!    `/{service}/...` to the service
//!    ([`upstream`]: in-process when it runs in this daemon, HTTP when it is its own process),
//!    under `request_timeout_ms` (504) — a service's non-JSON error becomes the JSON shape.
//!
//! The gateway reads Redis only through the store crate (metrics, live data) and never imports
//! a service: services reach it as [`voltage_http::Handler`]s handed over by the daemon.

pub mod auth;
mod console;
mod events;
mod health;
mod metrics;
pub mod ratelimit;
pub mod upstream;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use voltage_core::config::{GatewayConfig, ROUTED_SERVICES};
pub use voltage_http::Running;
use voltage_http::{error, stopped};
use voltage_store::Store;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::Filter;

pub use auth::{Role, TokenFile};
pub use upstream::Upstream;

/// The API description served at `/openapi.json` (kept in the repository, checked against the
/// real routes by the test suite).
pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gateway: {0}")]
    Tokens(#[from] auth::TokenError),
}

/// A service the gateway routes to: how to reach it and the port it reports.
#[derive(Clone)]
pub struct Service {
    pub upstream: Upstream,
    pub port: u16,
}

/// What the daemon hands the gateway.
pub struct Options {
    pub config: GatewayConfig,
    /// `gateway/tokens.yaml` of the configuration directory.
    pub tokens_path: PathBuf,
    /// The services this controller runs (enabled ones), by name.
    pub services: BTreeMap<String, Service>,
    /// Serial lines, for their metrics (`comsrv:line:{name}:stats`).
    pub lines: Vec<String>,
}

pub(crate) struct Gateway {
    cfg: GatewayConfig,
    services: BTreeMap<String, Service>,
    tokens: TokenFile,
    store: Store,
    lines: Vec<String>,
    port: u16,
    /// `None` when `rate_limit.enabled` is false.
    limiter: Option<ratelimit::Limiter>,
    /// Ends live-data streams on shutdown (they would hold the server open otherwise).
    stop: watch::Receiver<bool>,
}

pub async fn start(
    opts: Options,
    store: Store,
    addr: SocketAddr,
    external_stop: watch::Receiver<bool>,
) -> Result<Running, GatewayError> {
    let tokens = TokenFile::open(opts.tokens_path)?;
    if opts.config.auth.enabled && tokens.snapshot().is_empty() {
        tracing::warn!(
            file = %tokens.path().display(),
            "no API tokens yet: every protected route answers 401; create one with `voltage token create`"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let (stop_tx, stop) = voltage_http::stop_following(external_stop);
    let rl = &opts.config.rate_limit;
    let limiter = rl
        .enabled
        .then(|| ratelimit::Limiter::new(rl.per_second, rl.burst));
    let gw = Arc::new(Gateway {
        limiter,
        cfg: opts.config,
        services: opts.services,
        tokens: tokens.clone(),
        store,
        lines: opts.lines,
        port: local_addr.port(),
        stop: stop.clone(),
    });
    let mut s = stop.clone();
    tokio::spawn(tokens.follow(async move { stopped(&mut s).await }));
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let routes = warp::method()
        .and(warp::path::full())
        .and(warp::addr::remote())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method,
                  path: warp::path::FullPath,
                  client: Option<SocketAddr>,
                  query: String,
                  headers,
                  body| {
                let gw = gw.clone();
                async move {
                    if let Some(r) = limited(&gw, client) {
                        return r;
                    }
                    handle(gw, method, path.as_str().to_string(), query, headers, body).await
                }
            },
        );
    let handler = voltage_http::Handler::new(warp::service(routes.clone()));
    let mut s = stop.clone();
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(async move { stopped(&mut s).await })
        .run();
    let task = tokio::spawn(async move {
        server.await;
        tracing::info!("gateway stopped");
    });
    Ok(Running::new(local_addr, stop_tx, task).with_handler(handler))
}

type Resp = warp::reply::Response;

/// The 429 answer when `client` is over its rate (in-process calls have no address: not limited).
fn limited(gw: &Gateway, client: Option<SocketAddr>) -> Option<Resp> {
    let (limiter, client) = (gw.limiter.as_ref()?, client?);
    let wait = limiter
        .check(client.ip(), std::time::Instant::now())
        .err()?;
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    tracing::warn!(client = %client.ip(), retry_after_s = secs, "refused: request rate limit");
    let mut r = reply(error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests from {}; retry in {secs} s", client.ip()),
    ));
    r.headers_mut().insert(
        warp::http::header::RETRY_AFTER,
        warp::http::HeaderValue::from(secs),
    );
    Some(r)
}

async fn handle<S, B>(
    gw: Arc<Gateway>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: S,
) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let need = auth::required(&method, &segs, &gw.cfg.auth);
    let authz = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let who = match gw.tokens.decide(need, authz) {
        auth::Decision::Allow(who) => who,
        auth::Decision::Unauthenticated(why) => {
            if method != Method::GET && method != Method::HEAD {
                tracing::warn!(%method, %path, reason = why, "refused: not authenticated");
            }
            let mut r = reply(error(StatusCode::UNAUTHORIZED, why));
            r.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static("Bearer realm=\"voltage\""),
            );
            return r;
        }
        auth::Decision::Forbidden { name, role, need } => {
            tracing::warn!(%method, %path, token = %name, %role, %need, "refused: role too low");
            return reply(error(
                StatusCode::FORBIDDEN,
                format!("{method} {path} needs the {need} role; token {name:?} is {role}"),
            ));
        }
    };
    let body = match read_body(body, &headers, gw.cfg.body_limit_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let read = method == Method::GET || method == Method::HEAD;
    match segs.as_slice() {
        ["health"] if read => health::aggregate(&gw).await,
        ["metrics"] if read => metrics::render(&gw).await,
        ["openapi.json"] if read => raw(StatusCode::OK, "application/json", OPENAPI.into()),
        ["events"] if read => events::stream(gw.clone(), &query),
        ["auth", "whoami"] if read => whoami(&gw, authz),
        [] if read => console::serve(console::INDEX, &headers, method == Method::HEAD),
        ["console", file] if read => console::serve(file, &headers, method == Method::HEAD),
        ["health" | "metrics" | "openapi.json" | "events" | "console"]
        | ["auth", "whoami"]
        | ["console", _]
        | [] => reply(error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} answers GET only"),
        )),
        [svc, ..] if ROUTED_SERVICES.contains(svc) => {
            let rest = &path[1 + svc.len()..];
            let rest = if rest.is_empty() { "/" } else { rest };
            let target = if query.is_empty() {
                rest.to_string()
            } else {
                format!("{rest}?{query}")
            };
            if !read {
                tracing::info!(%method, %path, token = who.as_deref().unwrap_or("-"), "change routed");
            }
            let mut headers = headers;
            headers.remove(upstream::CALLER);
            if let Some(v) = who
                .as_deref()
                .and_then(|w| warp::http::HeaderValue::from_str(&format!("token:{w}")).ok())
            {
                headers.insert(upstream::CALLER, v);
            }
            route(&gw, svc, method, &target, &headers, body).await
        }
        _ => reply(error(
            StatusCode::NOT_FOUND,
            format!(
                "no route {path}: the gateway serves /health, /metrics, /events, /openapi.json, /auth/whoami, the console at / and /{{service}}/... for {}",
                ROUTED_SERVICES.join(", ")
            ),
        )),
    }
}

/// `GET /auth/whoami`: the name and role of the caller's token, so a page shows only the
/// controls that role may use (the server refuses the others anyway). With auth disabled
/// every caller may do everything: role admin, no name.
fn whoami(gw: &Gateway, authorization: Option<&str>) -> Resp {
    if !gw.cfg.auth.enabled {
        return reply(voltage_http::json(
            StatusCode::OK,
            serde_json::json!({"name": null, "role": Role::Admin, "auth": false}),
        ));
    }
    match gw.tokens.whoami(authorization) {
        Some((name, role)) => reply(voltage_http::json(
            StatusCode::OK,
            serde_json::json!({"name": name, "role": role, "auth": true}),
        )),
        // The auth step let the request through, so the token was valid a moment ago.
        None => reply(error(StatusCode::UNAUTHORIZED, "unknown or revoked token")),
    }
}

/// A refused body is still read (and dropped) up to this size before the 413 goes out: a
/// server that closes a connection with unread data makes the kernel reset it, and the client
/// (or nginx in front) then sees a reset instead of the answer.
const DRAIN_MAX: u64 = 1024 * 1024;

/// Reads the request body, refusing more than `limit` bytes whether or not the client
/// announced its length.
async fn read_body<S, B>(mut body: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, Resp>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let announced = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut over = announced.is_some_and(|n| n > limit);
    let mut total = 0u64;
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            reply(error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            ))
        })?;
        total += chunk.remaining() as u64;
        if over || total > limit {
            over = true;
            if total > DRAIN_MAX {
                break;
            }
            continue;
        }
        while chunk.has_remaining() {
            let c = chunk.chunk();
            let n = c.len();
            buf.extend_from_slice(c);
            chunk.advance(n);
        }
    }
    if over {
        return Err(reply(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes (gateway.yaml body_limit_bytes)"),
        )));
    }
    Ok(buf.freeze())
}

async fn route(
    gw: &Gateway,
    svc: &str,
    method: Method,
    target: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Resp {
    let Some(s) = gw.services.get(svc) else {
        return reply(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{svc} does not run on this controller (services.{svc} in voltage.yaml)"),
        ));
    };
    let deadline = Duration::from_millis(gw.cfg.request_timeout_ms);
    match tokio::time::timeout(deadline, s.upstream.send(method, target, headers, body)).await {
        Err(_) => reply(error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "{svc} did not answer within {} ms",
                gw.cfg.request_timeout_ms
            ),
        )),
        Ok(Err(e)) => reply(error(
            StatusCode::BAD_GATEWAY,
            format!("{svc} is unreachable: {e}"),
        )),
        Ok(Ok(a)) => {
            let json = a
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json"));
            if a.status.as_u16() >= 400 && !json {
                // warp's own refusals (no such route, wrong method, ...) are plain text.
                let text = String::from_utf8_lossy(&a.body).trim().to_string();
                let msg = if text.is_empty() {
                    a.status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text
                };
                return reply(error(a.status, format!("{svc}: {msg}")));
            }
            raw(
                a.status,
                a.content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
                a.body,
            )
        }
    }
}

fn reply(r: impl warp::Reply) -> Resp {
    r.into_response()
}

fn raw(status: StatusCode, content_type: &str, body: Bytes) -> Resp {
    let mut r = Resp::new(body.into());
    *r.status_mut() = status;
    if let Ok(v) = warp::http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(warp::http::header::CONTENT_TYPE, v);
    }
    r
}
