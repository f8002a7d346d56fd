//! Connecting to a plugin and calling it with a deadline, errors sorted the way the channel
//! statistics count them.
//!
//! tonic's `Channel` would reconnect by itself, silently. comsrv drops it instead on a transport
//! error and reconnects under its own backoff, so that a crashed plugin shows in
//! `connection_errors`, `reconnect_count` and `connected` exactly like a lost Modbus device.

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use voltage_core::config::PluginEndpoint;
use voltage_plugin::v1::protocol_plugin_client::ProtocolPluginClient;

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

pub type Client = ProtocolPluginClient<Channel>;

/// The largest answer accepted from a plugin for a request of `points` points: generous for
/// honest values with error texts, small enough that a runaway plugin cannot exhaust memory.
pub fn max_answer_bytes(points: usize) -> usize {
    64 * 1024 + points * 1024
}

/// Opens a connection within `timeout`.
pub async fn connect(
    endpoint: &PluginEndpoint,
    timeout: Duration,
    max_answer: usize,
) -> Result<Client, String> {
    let fut = async {
        match endpoint {
            PluginEndpoint::Http(url) => Endpoint::from_shared(url.clone())
                .map_err(|e| e.to_string())?
                .connect_timeout(timeout)
                .connect()
                .await
                .map_err(|e| source_chain(&e)),
            PluginEndpoint::Unix(path) => {
                let path = path.clone();
                // The URI is required by the API but unused: the connector dials the socket.
                Endpoint::from_static("http://plugin.invalid")
                    .connect_timeout(timeout)
                    .connect_with_connector(tower::service_fn(move |_| {
                        let path = path.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(&path).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    }))
                    .await
                    .map_err(|e| source_chain(&e))
            }
        }
    };
    let channel = tokio::time::timeout(timeout, fut).await.map_err(|_| {
        format!(
            "no connection to {endpoint} within {} ms",
            timeout.as_millis()
        )
    })??;
    Ok(ProtocolPluginClient::new(channel)
        .max_decoding_message_size(max_answer)
        .max_encoding_message_size(max_answer))
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
