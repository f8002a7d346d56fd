//! The WAL cursor state machine: which records are retained, where each sink stands, what it
//! has left to deliver and what eviction took from it.
//!
//! Why a separate, pure part: these rules decide whether a sample is delivered, re-delivered or
//! counted as lost, so they are tested on their own with plain numbers, without files, clocks or
//! fsync (the project keeps every state machine free of I/O). [`crate::Wal`] feeds them the
//! segments' spans and does the I/O they ask for.

use crate::Fsync;
use std::collections::BTreeMap;
use std::time::Duration;

/// What one segment holds: `count` records with consecutive sequence numbers from `first_seq`,
/// in `bytes` bytes on disk (header included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub first_seq: u64,
    pub count: u64,
    pub bytes: u64,
}

impl Span {
    /// One past the last sequence number.
    pub fn end(&self) -> u64 {
        self.first_seq.saturating_add(self.count)
    }

    /// Records with seq >= `from`.
    pub fn records_from(&self, from: u64) -> u64 {
        self.end().saturating_sub(from.max(self.first_seq))
    }
}

/// The index of the first span holding a record with seq >= `from` (`spans.len()` if none):
/// reads seek straight to that segment.
pub fn locate(spans: &[Span], from: u64) -> usize {
    spans.partition_point(|s| s.end() <= from)
}

/// Records with seq >= `from`. Counted per span, so gaps left by corrupt segments are not
/// counted as backlog.
pub fn records_from(spans: &[Span], from: u64) -> u64 {
    spans.iter().map(|s| s.records_from(from)).sum()
}

/// Bytes of the records with seq >= `from`; within a span estimated from its average record.
pub fn bytes_from(spans: &[Span], from: u64) -> u64 {
    spans
        .iter()
        .map(|s| match s.records_from(from) {
            n if n == s.count => s.bytes,
            n => (u128::from(s.bytes) * u128::from(n) / u128::from(s.count.max(1))) as u64,
        })
        .sum()
}

/// How many of the oldest spans to delete to fit in `max_bytes`. Never the newest (active) one,
/// so the log can exceed its budget by at most one segment.
pub fn evict_count(spans: &[Span], max_bytes: u64) -> usize {
    let mut total: u64 = spans.iter().map(|s| s.bytes).sum();
    let mut n = 0;
    while total > max_bytes && n + 1 < spans.len() {
        total -= spans[n].bytes;
        n += 1;
    }
    n
}

/// Whether an append has to fsync now, `since_sync` after the last fsync.
pub fn sync_due(policy: Fsync, since_sync: Duration) -> bool {
    match policy {
        Fsync::Always => true,
        Fsync::Interval(d) => since_sync >= d,
        Fsync::Never => false,
    }
}

/// How long a moved cursor may wait in memory before it is written, for a data fsync policy:
/// a cursor is made as durable as the data it points into, so a power cut costs at most that
/// window of re-delivery (sinks are at-least-once), and a fast replay does not pay two fsyncs
/// per batch. `Always` writes every commit before `commit` returns.
pub fn cursor_persist_every(policy: Fsync) -> Duration {
    match policy {
        Fsync::Always => Duration::ZERO,
        Fsync::Interval(d) => d,
        Fsync::Never => Duration::from_secs(1),
    }
}

/// Whether a moved cursor last written `since_written` ago (None: never) is due to be written.
pub fn persist_due(since_written: Option<Duration>, every: Duration) -> bool {
    since_written.is_none_or(|t| t >= every)
}

/// One sink's position: the next sequence number it has to deliver, and how many records were
/// evicted before it delivered them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCursor {
    pub cursor: u64,
    pub lost: u64,
}

impl SinkCursor {
    /// After loading: a cursor below the first retained record (its records were evicted while
    /// it was stored) moves up and counts the gap as lost; a cursor past the end (the log lost an
    /// unsynced tail in a power cut) moves back to the end, losing nothing: the sink delivered
    /// those records, and new ones will get those numbers.
    pub fn clamp(self, first_seq: u64, next_seq: u64) -> SinkCursor {
        if self.cursor < first_seq {
            SinkCursor {
                cursor: first_seq,
                lost: self.lost.saturating_add(first_seq - self.cursor),
            }
        } else if self.cursor > next_seq {
            SinkCursor {
                cursor: next_seq,
                lost: self.lost,
            }
        } else {
            self
        }
    }

    /// A commit moves forward and stays within the log; the error names the valid range.
    pub fn advance(self, to: u64, next_seq: u64) -> Result<SinkCursor, String> {
        if to < self.cursor || to > next_seq {
            Err(format!("{}..={next_seq}", self.cursor))
        } else {
            Ok(SinkCursor { cursor: to, ..self })
        }
    }

    /// The spans `gone` were evicted and `new_first` is the oldest retained record: what the
    /// sink had not delivered from them is lost, and its cursor moves up to `new_first`.
    pub fn evict(self, gone: &[Span], new_first: u64) -> SinkCursor {
        let lost = records_from(gone, self.cursor);
        SinkCursor {
            cursor: self.cursor.max(new_first),
            lost: self.lost.saturating_add(lost),
        }
    }
}

/// Every sink's cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorBook {
    sinks: BTreeMap<String, SinkCursor>,
}

impl CursorBook {
    /// The cursors as stored, clamped to the retained log. Returns the book and the sinks whose
    /// cursor changed (to be written back).
    pub fn load(
        stored: impl IntoIterator<Item = (String, SinkCursor)>,
        first_seq: u64,
        next_seq: u64,
    ) -> (CursorBook, Vec<String>) {
        let mut changed = Vec::new();
        let sinks = stored
            .into_iter()
            .map(|(name, c)| {
                let k = c.clamp(first_seq, next_seq);
                if k != c {
                    changed.push(name.clone());
                }
                (name, k)
            })
            .collect();
        (CursorBook { sinks }, changed)
    }

    pub fn get(&self, sink: &str) -> Option<SinkCursor> {
        self.sinks.get(sink).copied()
    }

    /// The sink's cursor; a new sink starts at `first_seq` (it delivers the whole retained
    /// history). The flag says whether it is new.
    pub fn register(&mut self, sink: &str, first_seq: u64) -> (SinkCursor, bool) {
        match self.sinks.get(sink) {
            Some(c) => (*c, false),
            None => {
                let c = SinkCursor {
                    cursor: first_seq,
                    lost: 0,
                };
                self.sinks.insert(sink.to_string(), c);
                (c, true)
            }
        }
    }

    /// Moves a sink's cursor to `to` (registering it first if new). `Ok(true)` if it moved.
    pub fn commit(
        &mut self,
        sink: &str,
        to: u64,
        first_seq: u64,
        next_seq: u64,
    ) -> Result<bool, String> {
        let (c, _) = self.register(sink, first_seq);
        let n = c.advance(to, next_seq)?;
        self.sinks.insert(sink.to_string(), n);
        Ok(n != c)
    }

    /// The spans `gone` were evicted. Returns each sink whose cursor moved, with the records it
    /// lost (0 if it only had a gap left by a corrupt segment to skip).
    pub fn evict(&mut self, gone: &[Span], new_first: u64) -> Vec<(String, u64)> {
        let mut moved = Vec::new();
        for (name, c) in self.sinks.iter_mut() {
            let n = c.evict(gone, new_first);
            if n != *c {
                moved.push((name.clone(), n.lost - c.lost));
            }
            *c = n;
        }
        moved
    }

    /// The slowest sink's cursor: everything from here on is still owed to someone.
    pub fn min_cursor(&self) -> Option<u64> {
        self.sinks.values().map(|c| c.cursor).min()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &SinkCursor)> {
        self.sinks.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cursor: u64, lost: u64) -> SinkCursor {
        SinkCursor { cursor, lost }
    }

    fn span(first_seq: u64, count: u64) -> Span {
        Span {
            first_seq,
            count,
            bytes: count * 100,
        }
    }

    /// Three segments: seqs 0..10, 10..25, 25..40, 100 bytes per record.
    fn spans() -> Vec<Span> {
        vec![span(0, 10), span(10, 15), span(25, 15)]
    }

    #[test]
    fn a_cursor_behind_the_retained_records_moves_up_and_counts_the_gap_as_lost() {
        assert_eq!(c(10, 2).clamp(25, 40), c(25, 17));
    }

    #[test]
    fn a_cursor_past_the_end_moves_back_without_loss() {
        assert_eq!(c(50, 3).clamp(0, 40), c(40, 3));
        assert_eq!(c(30, 3).clamp(0, 40), c(30, 3));
    }

    #[test]
    fn commits_move_forward_within_the_log_only() {
        assert_eq!(c(5, 0).advance(9, 10), Ok(c(9, 0)));
        assert_eq!(c(5, 1).advance(10, 10), Ok(c(10, 1)));
        assert_eq!(c(5, 0).advance(4, 10), Err("5..=10".to_string()));
        assert!(c(5, 0).advance(11, 10).is_err());
    }

    #[test]
    fn reads_seek_to_the_segment_holding_the_requested_record() {
        let s = spans();
        assert_eq!(locate(&s, 0), 0);
        assert_eq!(locate(&s, 9), 0);
        assert_eq!(locate(&s, 10), 1);
        assert_eq!(locate(&s, 39), 2);
        assert_eq!(locate(&s, 40), 3);
        assert_eq!(locate(&[], 0), 0);
    }

    #[test]
    fn backlog_counts_records_and_bytes_from_a_cursor() {
        let s = spans();
        assert_eq!(records_from(&s, 0), 40);
        assert_eq!(records_from(&s, 12), 28);
        assert_eq!(records_from(&s, 40), 0);
        assert_eq!(bytes_from(&s, 12), 1300 + 1500);
        assert_eq!(bytes_from(&s, 99), 0);
    }

    #[test]
    fn a_gap_left_by_a_corrupt_segment_is_not_counted_as_backlog() {
        let s = [span(0, 4), span(10, 5)];
        assert_eq!(records_from(&s, 2), 7);
        assert_eq!(
            locate(&s, 6),
            1,
            "a read in the gap goes on at the next segment"
        );
    }

    #[test]
    fn eviction_drops_the_oldest_segments_until_the_budget_fits_but_never_the_active_one() {
        let s = spans();
        assert_eq!(evict_count(&s, 4000), 0);
        assert_eq!(evict_count(&s, 3999), 1);
        assert_eq!(evict_count(&s, 3000), 1);
        assert_eq!(evict_count(&s, 2999), 2);
        assert_eq!(evict_count(&s, 0), 2, "the active segment stays");
        assert_eq!(evict_count(&s[2..], 0), 0);
    }

    #[test]
    fn eviction_counts_only_the_records_a_sink_had_not_delivered() {
        let gone = &spans()[..2];
        assert_eq!(c(0, 0).evict(gone, 25), c(25, 25));
        assert_eq!(c(12, 1).evict(gone, 25), c(25, 14));
        assert_eq!(c(25, 0).evict(gone, 25), c(25, 0));
        assert_eq!(c(30, 0).evict(gone, 25), c(30, 0));
    }

    #[test]
    fn the_book_registers_new_sinks_at_the_oldest_record_and_reports_who_lost_what() {
        let mut b = CursorBook::default();
        assert_eq!(b.register("influxdb", 0), (c(0, 0), true));
        assert_eq!(b.register("influxdb", 7), (c(0, 0), false));
        assert_eq!(b.commit("mqtt", 20, 0, 40), Ok(true), "commit registers");
        assert_eq!(b.commit("mqtt", 20, 0, 40), Ok(false));
        assert!(b.commit("mqtt", 41, 0, 40).is_err());
        assert_eq!(
            b.get("mqtt"),
            Some(c(20, 0)),
            "a refused commit changes nothing"
        );
        b.commit("http", 30, 0, 40).unwrap();
        assert_eq!(b.min_cursor(), Some(0));
        let moved = b.evict(&spans()[..2], 25);
        assert_eq!(moved, vec![("influxdb".into(), 25), ("mqtt".into(), 5)]);
        assert_eq!(b.get("influxdb"), Some(c(25, 25)));
        assert_eq!(b.get("http"), Some(c(30, 0)));
        assert_eq!(b.min_cursor(), Some(25));
    }

    #[test]
    fn loading_clamps_stored_cursors_and_names_the_ones_to_write_back() {
        let stored = [
            ("a".to_string(), c(3, 0)),
            ("b".to_string(), c(12, 0)),
            ("c".to_string(), c(10, 1)),
        ];
        let (b, changed) = CursorBook::load(stored, 10, 11);
        assert_eq!(changed, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(b.get("a"), Some(c(10, 7)));
        assert_eq!(b.get("b"), Some(c(11, 0)));
        assert_eq!(b.get("c"), Some(c(10, 1)));
    }

    #[test]
    fn fsync_and_cursor_writes_follow_the_policy() {
        let s = Duration::from_secs(1);
        assert!(sync_due(Fsync::Always, Duration::ZERO));
        assert!(!sync_due(Fsync::Never, Duration::MAX));
        assert!(!sync_due(Fsync::Interval(s), s / 2));
        assert!(sync_due(Fsync::Interval(s), s));
        assert!(persist_due(None, s));
        let always = cursor_persist_every(Fsync::Always);
        assert!(persist_due(Some(Duration::ZERO), always));
        assert!(!persist_due(
            Some(s / 2),
            cursor_persist_every(Fsync::Interval(s))
        ));
        assert!(!persist_due(
            Some(s / 2),
            cursor_persist_every(Fsync::Never)
        ));
        assert!(persist_due(Some(s), cursor_persist_every(Fsync::Never)));
    }
}
