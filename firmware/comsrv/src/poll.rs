//! Turning raw reads into Redis values: decoding, scaling, formatting, and the per-poll tally
//! that becomes one store batch.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use voltage_core::codec;
use voltage_core::plan::ReadBlock;
use voltage_core::points::{Point, Source};
use voltage_core::PointType;
use voltage_store::{PollBatch, Quality, StatsDelta};

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
    /// The points whose value is not a good current read after this poll.
    pub marks: BTreeMap<(PointType, u32), Quality>,
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

/// The quality marks a channel last wrote to Redis (`comsrv:{ch}:{T}:quality`), so each poll
/// writes only what changed: a point back to good is cleared once. Marks that are not good are
/// written again every poll they hold (idempotent), which also restores them in a Redis that
/// restarted empty.
#[derive(Debug, Default)]
pub struct QualityMarks(BTreeMap<(PointType, u32), Quality>);

impl QualityMarks {
    /// The changes that take Redis from the written marks to `want`.
    pub fn changes(
        &self,
        want: &BTreeMap<(PointType, u32), Quality>,
    ) -> Vec<(PointType, u32, Quality)> {
        let cleared = self
            .0
            .keys()
            .filter(|k| !want.contains_key(k))
            .map(|(t, id)| (*t, *id, Quality::Good));
        let set = want
            .iter()
            .filter(|(_, q)| **q != Quality::Good)
            .map(|((t, id), q)| (*t, *id, *q));
        cleared.chain(set).collect()
    }

    /// Records that `want` is now in Redis.
    pub fn written(&mut self, want: BTreeMap<(PointType, u32), Quality>) {
        self.0 = want
            .into_iter()
            .filter(|(_, q)| *q != Quality::Good)
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_set_while_they_hold_and_cleared_once() {
        let mut m = QualityMarks::default();
        let stale = BTreeMap::from([
            ((PointType::Telemetry, 1), Quality::Stale),
            ((PointType::Signal, 2), Quality::Stale),
        ]);
        assert_eq!(m.changes(&BTreeMap::new()), []);
        assert_eq!(m.changes(&stale).len(), 2);
        m.written(stale.clone());
        // Still stale: written again (a restarted Redis gets them back).
        assert_eq!(m.changes(&stale).len(), 2);
        let one_back = BTreeMap::from([((PointType::Signal, 2), Quality::Stale)]);
        assert_eq!(
            m.changes(&one_back),
            [
                (PointType::Telemetry, 1, Quality::Good),
                (PointType::Signal, 2, Quality::Stale)
            ]
        );
        m.written(one_back);
        assert_eq!(
            m.changes(&BTreeMap::new()),
            [(PointType::Signal, 2, Quality::Good)]
        );
        m.written(BTreeMap::new());
        assert_eq!(m.changes(&BTreeMap::new()), []);
    }
}
