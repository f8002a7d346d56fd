//! Control and adjustment writes through a plugin: validated against the point table, sent with
//! Write, then read back with a BatchRead of the same point, with the same outcomes as a
//! Modbus write (`verified` only when the read-back equals the written value).

use super::client::{self, CallError};
use super::{check, Loop};
use crate::poll::{now_ms, Tally};
use crate::write::{WriteOutcome, WriteRequest, WriteStatus};
use crate::Shutdown;
use std::time::Duration;
use voltage_core::config::ChannelParams;
use voltage_core::points::{Point, Source};
use voltage_plugin::v1;

/// Whether a read-back `got` shows the written `want` (binary points by state; numbers equal
/// within a relative 1e-6, so a device that stores float32 still verifies).
fn same(point: &Point, want: f64, got: f64) -> bool {
    if point.kind.is_binary() || point.def.data_type == "bool" || point.def.data_type == "boolean" {
        return (want != 0.0) == (got != 0.0);
    }
    (want - got).abs() <= 1e-6 * want.abs().max(1.0)
}

impl Loop {
    /// Makes sure there is a connection (one attempt, within the deadline).
    async fn ensure_client(&mut self, p: &ChannelParams) -> Result<(), String> {
        if self.client.is_some() {
            return Ok(());
        }
        let mut t = Tally::default();
        let (_keep, mut stop) = Shutdown::new();
        if self.reconnect(&mut t, p, &mut stop).await {
            Ok(())
        } else {
            Err(t.last_error.unwrap_or_else(|| "plugin unreachable".into()))
        }
    }

    /// Reads one point's raw value.
    async fn read_one(
        &mut self,
        r: &v1::PointRef,
        point: &Point,
        timeout: Duration,
    ) -> Result<f64, String> {
        let answer = self
            .batch_read(vec![r.clone()], timeout)
            .await
            .map_err(|e| e.to_string())?;
        let c = check::check(&[(point.kind, point.def.point_id)], &answer, now_ms());
        match c.values.first() {
            Some((_, _, v)) => Ok(*v),
            None => Err(c.problems.join("; ")),
        }
    }

    /// Writes `raw` and reads it back. Returns (written, verified, read-back raw, error).
    async fn write_verified(
        &mut self,
        r: &v1::PointRef,
        point: &Point,
        raw: f64,
        by: &str,
        timeout: Duration,
    ) -> (bool, bool, Option<f64>, Option<String>) {
        let Some(c) = self.client.as_mut() else {
            return (false, false, None, Some("plugin unreachable".into()));
        };
        let req = v1::WriteRequest {
            channel_id: self.channel.id(),
            point: Some(r.clone()),
            value: raw,
            requested_by: by.to_string(),
        };
        let answer = client::with_deadline(timeout, c.rpc.write(client::request(req, timeout)))
            .await
            .map_err(|e| c.classify(e));
        match answer {
            Ok(a) if a.accepted => {}
            Ok(a) => {
                let why = if a.error.is_empty() {
                    "no reason given".into()
                } else {
                    check::clip(&a.error)
                };
                return (false, false, None, Some(format!("write refused: {why}")));
            }
            Err(e) => {
                if matches!(e, CallError::Transport(_)) {
                    self.client = None;
                }
                return (false, false, None, Some(format!("write failed: {e}")));
            }
        }
        match self.read_one(r, point, timeout).await {
            Ok(got) if same(point, raw, got) => (true, true, Some(got), None),
            Ok(got) => (
                true,
                false,
                Some(got),
                Some(format!("read-back {got} differs from the written {raw}")),
            ),
            Err(e) => (true, false, None, Some(format!("read-back failed: {e}"))),
        }
    }
}

pub async fn execute(l: &mut Loop, req: WriteRequest, p: &ChannelParams) {
    let ch = l.channel.id();
    let reject = |status, msg: String| {
        WriteOutcome::rejected(
            ch,
            req.kind,
            req.point_id,
            req.value,
            &req.requested_by,
            status,
            msg,
        )
    };
    let found = l
        .refs
        .iter()
        .find(|(i, _)| {
            let pt = &l.channel.points[*i];
            pt.kind == req.kind && pt.def.point_id == req.point_id
        })
        .map(|(i, r)| (l.channel.points[*i].clone(), r.clone()));
    let Some((point, r)) = found else {
        let msg = match l
            .channel
            .points
            .iter()
            .find(|pt| pt.kind == req.kind && pt.def.point_id == req.point_id)
        {
            Some(pt) if !matches!(pt.source, Some(Source::Plugin(_))) => {
                format!("{} point {} has no plugin address", req.kind, req.point_id)
            }
            _ => format!("channel {ch} has no {} point {}", req.kind, req.point_id),
        };
        let _ = req.reply.send(reject(WriteStatus::NotFound, msg));
        return;
    };
    let plan = match crate::write::plan(&point, &req) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel = ch, point = req.point_id, by = %req.requested_by, error = %e, "write refused");
            let _ = req.reply.send(reject(WriteStatus::Refused, e));
            return;
        }
    };
    if let Err(e) = l.ensure_client(p).await {
        let _ = req.reply.send(reject(WriteStatus::DeviceError, e));
        return;
    }
    let mut target = Target {
        l: &mut *l,
        r: &r,
        point: &point,
        by: &req.requested_by,
        t: p.timeout(),
    };
    let outcome = crate::write::perform(ch, &point, &req, plan, &mut target).await;
    crate::write::finish(&l.out.store, outcome, req.reply).await;
}

/// A plugin point as the shared write sequence sees it.
struct Target<'a> {
    l: &'a mut Loop,
    r: &'a v1::PointRef,
    point: &'a Point,
    by: &'a str,
    t: Duration,
}

impl crate::write::WriteTarget for Target<'_> {
    async fn read(&mut self) -> Result<f64, String> {
        self.l.read_one(self.r, self.point, self.t).await
    }

    async fn write_verified(&mut self, raw: f64) -> crate::write::Step {
        self.l
            .write_verified(self.r, self.point, raw, self.by, self.t)
            .await
    }
}
