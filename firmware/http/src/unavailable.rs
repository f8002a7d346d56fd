//! A service that could not start, standing in its place.
//!
//! One service's failure must not stop the others: when the history log cannot be opened (a
//! disk error, or segments in a format this build does not read, met after a firmware
//! rollback), the controller must keep polling its devices. Leaving the failed service's port
//! empty would make every probe and the gateway report "connection refused", which says
//! nothing about the cause. The stand-in answers on the service's port and in-process instead:
//! `GET /health` is 503 with the reason, and every other request gets the JSON error naming it.

use crate::{error, json, stop_following, stopped, Handler, Running};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::Filter as _;

/// Serves the stand-in of service `name` on `addr` until `shutdown` (see the module doc).
pub async fn serve_unavailable(
    name: &str,
    addr: SocketAddr,
    reason: &str,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let body = Arc::new(serde_json::json!({
        "status": "unhealthy",
        "service": {"name": name, "port": local_addr.port()},
        "reason": reason,
    }));
    let message = Arc::new(format!("{name} is not running: {reason}"));
    let health = warp::path!("health")
        .and(warp::get())
        .map(move || json(StatusCode::SERVICE_UNAVAILABLE, (*body).clone()));
    let rest = warp::any().map(move || error(StatusCode::SERVICE_UNAVAILABLE, message.as_str()));
    let routes = health.or(rest).unify();
    let handler = Handler::new(warp::service(routes.clone()));
    let (stop_tx, mut stop) = stop_following(shutdown);
    let task = tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stopped(&mut stop).await })
            .run()
            .await;
    });
    Ok(Running::new(local_addr, stop_tx, task).with_handler(handler))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn ask(h: &Handler, method: &str, path: &str) -> (u16, serde_json::Value) {
        let req = warp::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Bytes::new())
            .unwrap();
        let r = h.call(req).await;
        let code = r.status().as_u16();
        let b = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        (code, serde_json::from_slice(&b).unwrap())
    }

    #[tokio::test]
    async fn the_stand_in_says_why_on_health_and_on_every_other_route_until_stopped() {
        let (tx, rx) = watch::channel(false);
        let why = "history log /data/wal: format version 2 is not supported";
        let r = serve_unavailable("hissrv", "127.0.0.1:0".parse().unwrap(), why, rx)
            .await
            .unwrap();
        let h = r.handler().unwrap();
        let (code, v) = ask(&h, "GET", "/health").await;
        assert_eq!(code, 503);
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["reason"], why);
        assert_eq!(v["service"]["name"], "hissrv");
        assert_eq!(v["service"]["port"], r.local_addr().port());
        let (code, v) = ask(&h, "POST", "/data/telemetry").await;
        assert_eq!(code, 503);
        assert_eq!(
            v["error"]["message"],
            format!("hissrv is not running: {why}")
        );
        // The port answers too, and the stand-in ends with the daemon.
        assert!(tokio::net::TcpStream::connect(r.local_addr()).await.is_ok());
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), r.join())
            .await
            .expect("stopped with the daemon");
    }
}
