//! What every protocol's write path shares: the request a channel task receives (from HTTP or
//! the Redis command queue), how it ended, and recording that outcome.
//!
//! Semantics (Modbus and plugin channels alike): validated against the point table (refused,
//! never clamped), written, **read back**, and only `verified` when the read-back equals the
//! written value; the read-back goes to `comsrv:{ch}:C|A` and every write to the audit list.

use crate::poll::now_ms;
use serde::Serialize;
use tokio::sync::oneshot;
use voltage_core::PointType;
use voltage_store::Store;

pub struct WriteRequest {
    pub kind: PointType,
    pub point_id: u32,
    pub value: f64,
    pub requested_by: String,
    pub reply: oneshot::Sender<WriteOutcome>,
}

/// How a write ended, for the HTTP status and the command result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteStatus {
    /// Written and read back equal.
    Verified,
    /// Written, but the read-back differs or failed.
    Unverified,
    /// Refused before touching the device (out of range, bad value).
    Refused,
    /// No such point (or it cannot be written).
    NotFound,
    /// The device refused or did not answer.
    DeviceError,
}

#[derive(Debug, Clone, Serialize)]
pub struct WriteOutcome {
    pub status: WriteStatus,
    pub channel_id: u32,
    pub point_type: &'static str,
    pub point_id: u32,
    pub requested: f64,
    pub requested_by: String,
    pub written: bool,
    pub verified: bool,
    pub old_value: Option<String>,
    pub read_back: Option<String>,
    pub error: Option<String>,
    pub at_ms: u64,
}

impl WriteOutcome {
    pub fn rejected(
        channel_id: u32,
        kind: PointType,
        point_id: u32,
        value: f64,
        by: &str,
        status: WriteStatus,
        error: String,
    ) -> Self {
        WriteOutcome {
            status,
            channel_id,
            point_type: kind.letter(),
            point_id,
            requested: value,
            requested_by: by.to_string(),
            written: false,
            verified: false,
            old_value: None,
            read_back: None,
            error: Some(error),
            at_ms: now_ms(),
        }
    }
}

/// Logs `outcome`, records it in Redis (value and audit) and answers the requester.
pub async fn finish(store: &Store, outcome: WriteOutcome, reply: oneshot::Sender<WriteOutcome>) {
    let ch = outcome.channel_id;
    tracing::info!(channel = ch, point_type = outcome.point_type, point = outcome.point_id, value = outcome.requested,
        by = %outcome.requested_by, status = ?outcome.status, "write");
    let audit = serde_json::to_string(&outcome).unwrap_or_default();
    let kind = match outcome.point_type {
        "C" => PointType::Control,
        _ => PointType::Adjustment,
    };
    if let Err(e) = store
        .record_write(
            ch,
            kind,
            outcome.point_id,
            outcome.read_back.as_deref(),
            outcome.at_ms,
            &audit,
        )
        .await
    {
        tracing::warn!(channel = ch, error = %e, "cannot record write in redis");
    }
    let _ = reply.send(outcome);
}
