//! What every protocol's write path shares: the request a channel task receives (from HTTP or
//! the Redis command queue), how it ended, and recording that outcome.
//!
//! Semantics (Modbus and plugin channels alike): validated against the point table (refused,
//! never clamped), written, **read back**, and only `verified` when the read-back equals the
//! written value; the read-back goes to `comsrv:{ch}:C|A` and every write to the audit list.

use crate::poll::{format_point, now_ms};
use serde::Serialize;
use std::future::Future;
use tokio::sync::oneshot;
use voltage_core::command::{self, WritePlan};
use voltage_core::points::Point;
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

/// One write to the device and its read-back: (written, verified, raw read-back, error).
pub type Step = (bool, bool, Option<f64>, Option<String>);

/// A point on a device as a write sees it; each protocol provides one per write.
pub trait WriteTarget: Send {
    /// The point's raw value now.
    fn read(&mut self) -> impl Future<Output = Result<f64, String>> + Send;
    /// Writes `raw` and reads it back.
    fn write_verified(&mut self, raw: f64) -> impl Future<Output = Step> + Send;
}

/// The raw values a request writes, or why it is refused (out of range, not writable).
pub fn plan(point: &Point, req: &WriteRequest) -> Result<WritePlan, String> {
    match req.kind {
        PointType::Control => command::plan_control(&point.def, req.value),
        PointType::Adjustment => {
            command::plan_adjustment(&point.def, req.value).map(|raw| WritePlan::Single { raw })
        }
        _ => Err(format!("{} points cannot be written", req.kind)),
    }
}

/// Reads the old value, carries out `plan` (a pulse: on, wait, off) through `target` and says
/// how it ended; the same sequence for every protocol.
pub async fn perform<T: WriteTarget>(
    channel_id: u32,
    point: &Point,
    req: &WriteRequest,
    plan: WritePlan,
    target: &mut T,
) -> WriteOutcome {
    let old = target.read().await.ok().map(|raw| format_point(point, raw));
    let (written, verified, back, error) = match plan {
        WritePlan::Single { raw } => target.write_verified(raw).await,
        WritePlan::Pulse { on, off, ms } => {
            let first = target.write_verified(on).await;
            if first.0 {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                let second = target.write_verified(off).await;
                (
                    first.0 && second.0,
                    first.1 && second.1,
                    second.2,
                    first.3.or(second.3),
                )
            } else {
                first
            }
        }
    };
    let status = match (written, verified) {
        (true, true) => WriteStatus::Verified,
        (true, false) => WriteStatus::Unverified,
        _ => WriteStatus::DeviceError,
    };
    WriteOutcome {
        status,
        channel_id,
        point_type: req.kind.letter(),
        point_id: req.point_id,
        requested: req.value,
        requested_by: req.requested_by.clone(),
        written,
        verified,
        old_value: old,
        read_back: back.map(|raw| format_point(point, raw)),
        error,
        at_ms: now_ms(),
    }
}
