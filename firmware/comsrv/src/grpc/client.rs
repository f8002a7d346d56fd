//! Connecting to a plugin and calling it with a deadline, errors sorted the way the channel
//! statistics count them.
//!
//! One plugin is one HTTP/2 connection. When it dies (the plugin exited or was restarted), the
//! channel loop drops it and reconnects under its own backoff, so that a crashed plugin shows in
//! `connection_errors`, `reconnect_count` and `connected` exactly like a lost Modbus device
//! (tonic's `Channel` would reconnect by itself, silently).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use voltage_core::config::PluginEndpoint;
use voltage_plugin::v1::protocol_plugin_client::ProtocolPluginClient;

/// One HTTP/2 connection to a plugin, as the service the generated client calls through.
///
/// tonic's `Channel` (load balancing, buffering, its own reconnects) is not needed for one
/// plugin on one socket and made the release daemon 238 KiB larger than this (measured on
/// x86_64); a bare hyper HTTP/2 connection is all a unary gRPC call needs. When the connection dies, every call fails with a transport
/// error and the channel loop reconnects.
#[derive(Clone)]
pub struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// Why a call did not return an answer.
#[derive(Debug)]
pub enum CallError {
    /// No answer within the deadline.
    Timeout,
    /// The connection is gone (plugin exited, socket closed): reconnect.
    Transport(String),
    /// The answer was larger than the channel allows.
    Oversized(String),
    /// The plugin answered with an error status (its device refused, it does not implement
    /// the call, ...).
    Plugin(tonic::Code, String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => write!(f, "no answer within the deadline"),
            CallError::Transport(m) => write!(f, "plugin unreachable: {m}"),
            CallError::Oversized(m) => write!(f, "oversized answer: {m}"),
            CallError::Plugin(code, m) => {
                write!(f, "plugin error {code:?}: {}", super::check::clip(m))
            }
        }
    }
}

/// A connected plugin: the generated client, and the connection to tell a dead one by.
pub struct Client {
    pub rpc: ProtocolPluginClient<H2>,
    conn: H2,
}

impl Client {
    /// Whether the connection is gone (the plugin exited or closed it).
    pub fn is_closed(&self) -> bool {
        self.conn.0.is_closed()
    }

    /// `e`, or a transport error when the connection is gone: a call on a dead connection
    /// surfaces as an `Unknown` status ("channel closed").
    pub fn classify(&self, e: CallError) -> CallError {
        match e {
            CallError::Plugin(_, m) if self.is_closed() => CallError::Transport(m),
            e => e,
        }
    }
}

/// The largest answer accepted from a plugin for a request of `points` points: generous for
/// honest values with error texts, small enough that a runaway plugin cannot exhaust memory.
pub fn max_answer_bytes(points: usize) -> usize {
    64 * 1024 + points * 1024
}

/// Opens a connection (socket and HTTP/2 handshake) within `timeout`.
pub async fn connect(
    endpoint: &PluginEndpoint,
    timeout: Duration,
    max_answer: usize,
) -> Result<Client, String> {
    let fut = async {
        let (origin, send) = match endpoint {
            PluginEndpoint::Http(url) => {
                let origin: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
                let authority = origin.authority().map(|a| a.as_str().to_string());
                let s = tokio::net::TcpStream::connect(authority.as_deref().unwrap_or_default())
                    .await
                    .map_err(|e| format!("connecting to {endpoint}: {e}"))?;
                let _ = s.set_nodelay(true);
                (origin, handshake(s).await?)
            }
            PluginEndpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| format!("connecting to {endpoint}: {e}"))?;
                // The :authority of requests on a socket; the plugin ignores it.
                (
                    http::Uri::from_static("http://localhost"),
                    handshake(s).await?,
                )
            }
        };
        Ok::<_, String>((origin, H2(send)))
    };
    let (origin, conn) = tokio::time::timeout(timeout, fut).await.map_err(|_| {
        format!(
            "no connection to {endpoint} within {} ms",
            timeout.as_millis()
        )
    })??;
    let rpc = ProtocolPluginClient::with_origin(conn.clone(), origin)
        .max_decoding_message_size(max_answer)
        .max_encoding_message_size(max_answer);
    Ok(Client { rpc, conn })
}

async fn handshake<S>(
    s: S,
) -> Result<hyper::client::conn::http2::SendRequest<tonic::body::Body>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(s))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {}", source_chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "plugin connection ended");
        }
    });
    Ok(send)
}

/// An error with its causes ("transport error: connection refused").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A request carrying `timeout` as its gRPC deadline.
pub fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

/// Awaits `call` for at most `timeout` (the plugin may ignore the deadline header).
pub async fn with_deadline<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(CallError::Timeout),
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(classify(&s)),
    }
}

fn classify(s: &tonic::Status) -> CallError {
    let msg = match s.source() {
        Some(src) => format!("{}: {}", s.message(), source_chain(src)),
        None => s.message().to_string(),
    };
    match s.code() {
        tonic::Code::DeadlineExceeded => CallError::Timeout,
        tonic::Code::Unavailable => CallError::Transport(msg),
        // A broken connection surfaces as Unknown/Internal with a transport source.
        tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
            if s.source().is_some() =>
        {
            CallError::Transport(msg)
        }
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
            if s.message().contains("message length too large") =>
        {
            CallError::Oversized(msg)
        }
        code => CallError::Plugin(code, msg),
    }
}

use std::error::Error as _;
