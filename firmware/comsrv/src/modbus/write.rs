//! Control and adjustment writes: validate against the point table, write, read back within
//! the request deadline, record the outcome (value + audit entry).
//!
//! A write is only `verified` when the device returns the written value on a read-back; a
//! device that acknowledges but does not apply it ("sent but never took effect") shows up as
//! `written: true, verified: false`. Writes are served between polls and go to the front of a
//! serial line's queue.

use super::line::Priority;
use super::link::{CallError, Op, Reply};
use super::{exception_name, Loop};
use crate::poll::Tally;
pub use crate::write::{WriteOutcome, WriteRequest, WriteStatus};
use crate::Shutdown;
use voltage_core::codec;
use voltage_core::config::ChannelParams;
use voltage_core::points::{ModbusMapping, Point, Source};
use voltage_core::types::{DataType, ReadFunction};

/// Reads the raw value of `m` from the device.
async fn read_raw(
    l: &mut Loop,
    m: &ModbusMapping,
    p: &ChannelParams,
    stop: &mut Shutdown,
) -> Result<f64, String> {
    let f = m.read_function();
    let op = Op::Read {
        function: f,
        start: m.register_address,
        count: m.width(),
    };
    let mut t = Tally::default();
    match l
        .call(&mut t, m.slave_id, &op, p, Priority::Write, stop)
        .await
    {
        None => Err("link down".into()),
        Some(Ok(Reply::Bits(b))) => b
            .first()
            .map(|v| if *v { 1.0 } else { 0.0 })
            .ok_or_else(|| "empty answer".into()),
        Some(Ok(Reply::Registers(r))) => {
            codec::decode(m.data_type, m.byte_order, &r, m.bit_position).map_err(|e| e.to_string())
        }
        Some(Ok(Reply::Done)) => Err("unexpected answer".into()),
        Some(Err(e)) => Err(call_error(e)),
    }
}

fn call_error(e: CallError) -> String {
    match e {
        CallError::Timeout => "no answer within the deadline".into(),
        CallError::Exception(c) => exception_name(c),
        CallError::Transport(s) | CallError::Protocol(s) => s,
    }
}

/// The write operation that puts `raw` into `m` (bits in a register: read-modify-write).
async fn write_op(
    l: &mut Loop,
    m: &ModbusMapping,
    raw: f64,
    p: &ChannelParams,
    stop: &mut Shutdown,
) -> Result<Op, String> {
    let addr = m.register_address;
    if m.read_function() == ReadFunction::Coils {
        return Ok(Op::WriteCoil {
            addr,
            value: raw != 0.0,
        });
    }
    if m.data_type == DataType::Bool {
        let Some(bit) = m.bit_position else {
            return Ok(Op::WriteRegister {
                addr,
                value: (raw != 0.0) as u16,
            });
        };
        let op = Op::Read {
            function: ReadFunction::HoldingRegisters,
            start: addr,
            count: 1,
        };
        let mut t = Tally::default();
        let current = match l
            .call(&mut t, m.slave_id, &op, p, Priority::Write, stop)
            .await
        {
            Some(Ok(Reply::Registers(r))) if !r.is_empty() => r[0],
            Some(Err(e)) => {
                return Err(format!(
                    "reading the register before setting bit {bit}: {}",
                    call_error(e)
                ))
            }
            _ => {
                return Err(format!(
                    "reading the register before setting bit {bit} failed"
                ))
            }
        };
        let mask = 1u16 << bit;
        let value = if raw != 0.0 {
            current | mask
        } else {
            current & !mask
        };
        return Ok(Op::WriteRegister { addr, value });
    }
    let regs = codec::encode(m.data_type, m.byte_order, raw).map_err(|e| e.to_string())?;
    Ok(if regs.len() == 1 && m.function_code != 16 {
        Op::WriteRegister {
            addr,
            value: regs[0],
        }
    } else {
        Op::WriteRegisters { addr, values: regs }
    })
}

fn same(m: &ModbusMapping, want: f64, got: f64) -> bool {
    match m.data_type {
        DataType::F32 => (want as f32) == (got as f32),
        DataType::F64 => want == got,
        DataType::Bool => (want != 0.0) == (got != 0.0),
        _ => want.round() == got,
    }
}

/// Writes `raw` and reads it back. Returns (written, verified, read-back raw, error).
async fn write_verified(
    l: &mut Loop,
    m: &ModbusMapping,
    raw: f64,
    p: &ChannelParams,
    stop: &mut Shutdown,
) -> (bool, bool, Option<f64>, Option<String>) {
    let op = match write_op(l, m, raw, p, stop).await {
        Ok(op) => op,
        Err(e) => return (false, false, None, Some(e)),
    };
    let mut t = Tally::default();
    match l
        .call(&mut t, m.slave_id, &op, p, Priority::Write, stop)
        .await
    {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            return (
                false,
                false,
                None,
                Some(format!("write refused: {}", call_error(e))),
            )
        }
        None => return (false, false, None, Some("link down".into())),
    }
    match read_raw(l, m, p, stop).await {
        Ok(got) if same(m, raw, got) => (true, true, Some(got), None),
        Ok(got) => (
            true,
            false,
            Some(got),
            Some(format!("read-back {got} differs from the written {raw}")),
        ),
        Err(e) => (true, false, None, Some(format!("read-back failed: {e}"))),
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
    let point: Option<Point> = l
        .channel
        .points
        .iter()
        .find(|pt| pt.kind == req.kind && pt.def.point_id == req.point_id)
        .cloned();
    let Some(point) = point else {
        let _ = req.reply.send(reject(
            WriteStatus::NotFound,
            format!("channel {ch} has no {} point {}", req.kind, req.point_id),
        ));
        return;
    };
    let Some(Source::Modbus(m)) = point.source.clone() else {
        let _ = req.reply.send(reject(
            WriteStatus::NotFound,
            format!("{} point {} has no Modbus mapping", req.kind, req.point_id),
        ));
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
    let (_keep, mut stop) = Shutdown::new();
    let mut target = Target {
        l: &mut *l,
        m: &m,
        p,
        stop: &mut stop,
    };
    let outcome = crate::write::perform(ch, &point, &req, plan, &mut target).await;
    crate::write::finish(l.store(), outcome, req.reply).await;
}

/// A Modbus point as the shared write sequence sees it.
struct Target<'a> {
    l: &'a mut Loop,
    m: &'a ModbusMapping,
    p: &'a ChannelParams,
    stop: &'a mut Shutdown,
}

impl crate::write::WriteTarget for Target<'_> {
    async fn read(&mut self) -> Result<f64, String> {
        read_raw(self.l, self.m, self.p, self.stop).await
    }

    async fn write_verified(&mut self, raw: f64) -> crate::write::Step {
        write_verified(self.l, self.m, raw, self.p, self.stop).await
    }
}
