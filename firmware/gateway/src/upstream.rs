//! Where a routed request goes: to a service in the same daemon (called in-process through its
//! [`Handler`], no socket) or to a service running as a process of its own (plain HTTP to its
//! base URL). Both answer with the same response, so the gateway cannot tell them apart.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::time::Duration;
use voltage_http::Handler;
use warp::http::{HeaderMap, Method, Request, Response, StatusCode};

#[derive(Clone)]
pub enum Upstream {
    InProcess(Handler),
    Http {
        base: String,
        client: reqwest::Client,
    },
}

/// A service's answer, body collected.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Headers a routed request carries over (the caller's token stays at the gateway).
/// `x-voltage-caller` is set by the gateway alone (the authenticated token's name, for the
/// services' audit trails); a client's own is dropped.
pub const CALLER: &str = "x-voltage-caller";
const FORWARDED: &[&str] = &[
    "content-type",
    "accept",
    "accept-encoding",
    "user-agent",
    CALLER,
];

impl Upstream {
    pub fn http(base: &str) -> Upstream {
        Upstream::Http {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Upstream::InProcess(_) => "in-process".into(),
            Upstream::Http { base, .. } => base.clone(),
        }
    }

    /// Sends `method path_and_query` with `body`; an error is the reason the service could
    /// not be reached.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, String> {
        match self {
            Upstream::InProcess(h) => {
                let mut b = Request::builder()
                    .method(method)
                    .uri(path_and_query)
                    .header("content-length", body.len());
                for name in FORWARDED {
                    if let Some(v) = headers.get(*name) {
                        b = b.header(*name, v);
                    }
                }
                let req = b.body(body).map_err(|e| format!("bad request: {e}"))?;
                let resp: Response<_> = h.call(req).await;
                let (parts, body) = resp.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| format!("reading the service's answer: {e}"))?
                    .to_bytes();
                Ok(Answer {
                    status: parts.status,
                    content_type: content_type(&parts.headers),
                    body,
                })
            }
            Upstream::Http { base, client } => {
                let url = format!("{base}{path_and_query}");
                let mut r = client.request(method, &url).body(body);
                for name in FORWARDED {
                    if let Some(v) = headers.get(*name) {
                        r = r.header(*name, v);
                    }
                }
                let resp = r.send().await.map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status();
                let content_type = content_type(resp.headers());
                let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
                Ok(Answer {
                    status,
                    content_type,
                    body,
                })
            }
        }
    }
}

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
