//! The HTTP side every service shares, so that all of them answer the same way: one JSON error
//! shape (`{"error":{"code":..,"message":..}}`), one health reply (`{"status","service":{name,
//! port}}`, 503 while Redis does not answer), one mapping of Redis Function refusals to status
//! codes, and one lifecycle handle ([`Running`]). Services depend on this crate, never on each
//! other.

pub mod tls;
mod unavailable;

pub use unavailable::serve_unavailable;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use voltage_store::{Store, StoreError};
use warp::http::StatusCode;

pub type Reply = warp::reply::WithStatus<warp::reply::Json>;

/// The JSON error shape.
pub fn error(code: StatusCode, msg: impl Into<String>) -> Reply {
    warp::reply::with_status(
        warp::reply::json(
            &serde_json::json!({"error": {"code": code.as_u16(), "message": msg.into()}}),
        ),
        code,
    )
}

pub fn json(code: StatusCode, v: serde_json::Value) -> Reply {
    warp::reply::with_status(warp::reply::json(&v), code)
}

/// A Redis Function's refusal by its stable phrases: `not found` 404, `already exists` or an
/// illegal transition (`is X; only ...`) 409, anything else 400; Redis unreachable 503.
pub fn refusal(e: StoreError) -> Reply {
    match e {
        StoreError::Function(m) if m.contains("not found") => error(StatusCode::NOT_FOUND, m),
        StoreError::Function(m) if m.contains("already exists") || m.contains("; only ") => {
            error(StatusCode::CONFLICT, m)
        }
        StoreError::Function(m) => error(StatusCode::BAD_REQUEST, m),
        other => error(StatusCode::SERVICE_UNAVAILABLE, format!("redis: {other}")),
    }
}

/// `GET /health`: 200 healthy, or 503 with the reason when Redis does not answer within 1 s.
pub async fn health(name: &str, port: u16, store: &Store) -> Reply {
    let service = serde_json::json!({"name": name, "port": port});
    match tokio::time::timeout(Duration::from_secs(1), store.ping()).await {
        Ok(Ok(())) => json(
            StatusCode::OK,
            serde_json::json!({"status": "healthy", "service": service}),
        ),
        Ok(Err(e)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unhealthy", "service": service, "reason": format!("redis unreachable: {e}")}),
        ),
        Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unhealthy", "service": service, "reason": "redis did not answer within 1 s"}),
        ),
    }
}

/// Resolves once `stop` is set (never, if its sender is gone without setting it).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A stop signal for a service that also follows an external one (the daemon's SIGTERM).
pub fn stop_following(
    mut external: watch::Receiver<bool>,
) -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let fwd = tx.clone();
    tokio::spawn(async move {
        stopped(&mut external).await;
        let _ = fwd.send(true);
    });
    (tx, rx)
}

/// A service's HTTP routes callable in-process: what the gateway uses when the service runs in
/// the same daemon, so a routed request costs no socket, no second parse and no copy of the
/// response. Built from the very filter the service serves on its own port, so both paths
/// answer identically.
#[derive(Clone)]
pub struct Handler(Arc<HandlerFn>);

type HandlerFn =
    dyn Fn(warp::http::Request<Bytes>) -> BoxFuture<'static, warp::reply::Response> + Send + Sync;

impl Handler {
    /// From a service's routes: `Handler::new(warp::service(routes.clone()))`.
    pub fn new<S>(svc: S) -> Handler
    where
        S: tower_service::Service<
                warp::http::Request<Full<Bytes>>,
                Response = warp::reply::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
    {
        Handler(Arc::new(move |req: warp::http::Request<Bytes>| {
            let mut svc = svc.clone();
            let req = req.map(Full::new);
            // On a task of its own: warp keeps the request being routed in a thread-local while
            // it polls a filter, and the caller (the gateway) is itself a filter being polled.
            Box::pin(async move {
                let task = tokio::spawn(async move {
                    match tower_service::Service::call(&mut svc, req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                });
                match task.await {
                    Ok(r) => r,
                    Err(e) => {
                        let msg = format!("the service failed while handling the request: {e}");
                        warp::Reply::into_response(error(StatusCode::INTERNAL_SERVER_ERROR, msg))
                    }
                }
            })
        }))
    }

    /// Handles one request (path relative to the service, e.g. `/health`).
    pub async fn call(&self, req: warp::http::Request<Bytes>) -> warp::reply::Response {
        (self.0)(req).await
    }
}

/// A running service: where it listens, how to stop it, what to wait for, and its routes for
/// in-process callers.
pub struct Running {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    handler: Option<Handler>,
}

impl Running {
    pub fn new(local_addr: SocketAddr, stop: watch::Sender<bool>, task: JoinHandle<()>) -> Self {
        Running {
            local_addr,
            stop,
            task,
            handler: None,
        }
    }

    /// The same service, callable in-process through `handler`.
    pub fn with_handler(mut self, handler: Handler) -> Self {
        self.handler = Some(handler);
        self
    }

    pub fn handler(&self) -> Option<Handler> {
        self.handler.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Asks the service to stop and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the service ends (after an external stop).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}
