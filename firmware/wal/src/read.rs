//! The read side of the log: a sink's batch, the backlog per sink, and the local history query.
//!
//! Why apart from the write side: reads take `&self` only and never change the log, so a
//! reader cannot disturb what appends and commits keep consistent.

use crate::ledger;
use crate::{Record, SinkBacklog, Wal, WalError, WalStats};

impl Wal {
    /// Up to `max` records with seq >= `from`, in order, as `(seq, record)`; from `first_seq`
    /// if `from` was evicted.
    pub fn read_from(&self, from: u64, max: usize) -> Result<Vec<(u64, Record)>, WalError> {
        let mut out = Vec::with_capacity(max.min(8192));
        if max == 0 {
            return Ok(out);
        }
        let start = ledger::locate(&self.spans(), from);
        for seg in &self.segments[start..] {
            seg.each_from(from, |seq, r| {
                out.push((seq, r));
                out.len() < max
            })?;
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    pub fn stats(&self) -> WalStats {
        let spans = self.spans();
        let sinks = self
            .book
            .iter()
            .map(|(name, c)| {
                let records = ledger::records_from(&spans, c.cursor);
                let oldest = match records {
                    0 => Ok(Vec::new()),
                    _ => self.read_from(c.cursor, 1),
                };
                SinkBacklog {
                    sink: name.clone(),
                    cursor: c.cursor,
                    records,
                    bytes: ledger::bytes_from(&spans, c.cursor),
                    oldest_ts_ns: oldest.ok().and_then(|v| v.first().map(|(_, r)| r.ts_ns)),
                    lost_records: c.lost,
                }
            })
            .collect();
        WalStats {
            first_seq: self.first_seq(),
            next_seq: self.next_seq,
            bytes: spans.iter().map(|s| s.bytes).sum(),
            segments: spans.len(),
            evicted_records: self.evicted_records,
            evicted_bytes: self.evicted_bytes,
            recovered: self.recovered,
            sinks,
        }
    }

    /// Every retained record of `(channel, kind, point)` with `start_ns <= ts_ns < end_ns`,
    /// oldest first. A scan of the whole log (fine for the few MiB of local history).
    pub fn query(
        &self,
        channel: u32,
        kind: u8,
        point: u32,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Record>, WalError> {
        let mut out = Vec::new();
        for seg in &self.segments {
            seg.each_from(0, |_, r| {
                if r.channel == channel
                    && r.kind == kind
                    && r.point == point
                    && (start_ns..end_ns).contains(&r.ts_ns)
                {
                    out.push(r);
                }
                true
            })?;
        }
        // Stable: samples with the same timestamp stay in log order.
        out.sort_by_key(|r| r.ts_ns);
        Ok(out)
    }
}
