//! The Redis command path: other services (rulesrv, modsrv, the gateway) push write commands
//! to the `comsrv:commands` list; comsrv executes each on its channel and stores the outcome
//! under `comsrv:command:{request_id}` for an hour.
//!
//! Command JSON: `{"request_id":"r1","channel_id":1001,"point_type":"A","point_id":3,
//! "value":50.0,"requested_by":"rulesrv"}` (`point_type` `C` or `A`). A malformed command gets
//! a result with the parse error when it has a request id, and is logged either way.

use crate::supervisor::WriteRouter;
use crate::{Shutdown, WriteOutcome, WriteStatus};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::oneshot;
use voltage_core::PointType;
use voltage_store::Store;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    request_id: String,
    channel_id: u32,
    point_type: String,
    point_id: u32,
    value: f64,
    #[serde(default)]
    requested_by: String,
}

pub fn parse_kind(s: &str) -> Option<PointType> {
    match s {
        "C" | "control" => Some(PointType::Control),
        "A" | "adjustment" => Some(PointType::Adjustment),
        _ => None,
    }
}

/// Runs until shutdown, executing queued commands one at a time per arrival order.
pub async fn run(store: Store, router: WriteRouter, mut stop: Shutdown) {
    let block = Duration::from_secs(1);
    let queue = loop {
        match store.dedicated(block).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "command queue: cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait() => return,
                }
            }
        }
    };
    loop {
        let next = tokio::select! {
            r = queue.pop_command(block) => r,
            _ = stop.wait() => return,
        };
        let text = match next {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "command queue unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.wait() => return,
                }
            }
        };
        let cmd: Command = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, command = %text, "malformed command ignored");
                if let Some(id) = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["request_id"].as_str().map(String::from))
                {
                    let r = serde_json::json!({"status": "refused", "error": format!("malformed command: {e}")});
                    let _ = store.set_command_result(&id, &r.to_string()).await;
                }
                continue;
            }
        };
        let outcome = match parse_kind(&cmd.point_type) {
            None => WriteOutcome::rejected(
                cmd.channel_id,
                PointType::Control,
                cmd.point_id,
                cmd.value,
                &cmd.requested_by,
                WriteStatus::Refused,
                format!("point_type {:?} is not C or A", cmd.point_type),
            ),
            Some(kind) => {
                let (tx, rx) = oneshot::channel();
                let req = crate::write::WriteRequest {
                    kind,
                    point_id: cmd.point_id,
                    value: cmd.value,
                    requested_by: if cmd.requested_by.is_empty() {
                        "redis".into()
                    } else {
                        cmd.requested_by.clone()
                    },
                    reply: tx,
                };
                router.route(cmd.channel_id, req).await;
                match rx.await {
                    Ok(o) => o,
                    Err(_) => continue,
                }
            }
        };
        let json = serde_json::to_string(&outcome).unwrap_or_default();
        if let Err(e) = store.set_command_result(&cmd.request_id, &json).await {
            tracing::warn!(error = %e, "cannot store command result");
        }
    }
}
