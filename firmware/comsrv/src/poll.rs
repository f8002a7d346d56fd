//! Turning raw reads into Redis values: decoding, scaling, formatting, and the per-poll tally
//! that becomes one store batch.

use std::time::{SystemTime, UNIX_EPOCH};
use voltage_core::codec;
use voltage_core::plan::ReadBlock;
use voltage_core::points::{Point, Source};
use voltage_core::PointType;
use voltage_store::{PollBatch, StatsDelta};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The Redis text of a point's value from its raw (decoded, unscaled) value.
pub fn format_point(point: &Point, raw: f64) -> String {
    match point.kind {
        PointType::Signal | PointType::Control => codec::format_binary(raw, point.def.reverse),
        PointType::Telemetry | PointType::Adjustment => {
            if point.def.data_type == "bool" || point.def.data_type == "boolean" {
                let on = (raw != 0.0) != point.def.reverse;
                codec::format_value(if on { 1.0 } else { 0.0 })
            } else {
                codec::format_value(codec::engineering(raw, point.def.scale, point.def.offset))
            }
        }
    }
}

/// What a block read returned.
pub enum BlockData {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// Decodes every point of `block` from `data` into `out`. A point that does not decode (a short
/// response) is skipped and counted in the returned error count.
pub fn decode_block(
    points: &[Point],
    block: &ReadBlock,
    data: &BlockData,
    out: &mut Vec<(PointType, u32, String)>,
) -> usize {
    let mut bad = 0;
    for pp in &block.points {
        let point = &points[pp.index];
        let Some(Source::Modbus(m)) = &point.source else {
            continue;
        };
        let off = (pp.address - block.start) as usize;
        let raw = match data {
            BlockData::Bits(bits) => bits.get(off).map(|b| if *b { 1.0 } else { 0.0 }).ok_or(()),
            BlockData::Registers(regs) => regs.get(off..).ok_or(()).and_then(|r| {
                codec::decode(m.data_type, m.byte_order, r, m.bit_position).map_err(|_| ())
            }),
        };
        match raw {
            Ok(raw) => out.push((point.kind, point.def.point_id, format_point(point, raw))),
            Err(()) => bad += 1,
        }
    }
    bad
}

/// Accumulates one poll.
#[derive(Default)]
pub struct Tally {
    pub batch: PollBatch,
    pub errors: u64,
    pub last_error: Option<String>,
    pub any_success: bool,
}

impl Tally {
    pub fn stats(&mut self) -> &mut StatsDelta {
        &mut self.batch.stats
    }

    pub fn error(&mut self, message: String) {
        self.errors += 1;
        self.batch.stats.total_errors += 1;
        self.last_error = Some(message);
    }
}
