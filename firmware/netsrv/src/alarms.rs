//! Alarm events northbound: the alarm functions append every event (created, acknowledged,
//! resolved) to one capped Redis stream in the same atomic change; this feed reads it from a
//! cursor kept in Redis beside it and moves the cursor only when the broker acknowledged the
//! message. A broker away for hours gets every event afterwards, in order, as long as the
//! stream (about 10000 events) still holds it; events trimmed before delivery are counted.
//!
//! A new installation starts at the newest event (no replay of history from before netsrv was
//! configured to forward alarms).

use voltage_store::{Store, StoreError};

const SINK: &str = "mqtt";

/// Stream ids (`ms-seq`) in order.
pub(crate) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Whether events after `cursor` were trimmed before delivery: the stream deleted an entry
/// newer than the cursor (Redis keeps the largest deleted id).
pub(crate) fn trimmed_past(cursor: &str, max_deleted: &str) -> bool {
    match (parse_id(cursor), parse_id(max_deleted)) {
        (Some(c), Some(d)) => d > c,
        _ => false,
    }
}

pub(crate) struct AlarmFeed {
    store: Store,
    cursor: Option<String>,
    pub gaps: u64,
    gap_seen_at: Option<String>,
}

impl AlarmFeed {
    pub fn new(store: Store) -> AlarmFeed {
        AlarmFeed {
            store,
            cursor: None,
            gaps: 0,
            gap_seen_at: None,
        }
    }

    /// Loads (or, on a first start, sets) the cursor now, so that events raised while the
    /// broker is still being connected to are not skipped; if Redis does not answer yet, the
    /// first send does it.
    pub async fn start(&mut self) {
        if let Err(e) = self.cursor().await {
            tracing::debug!(error = %e, "alarm cursor not loaded yet");
        }
    }

    async fn cursor(&mut self) -> Result<String, StoreError> {
        if let Some(c) = &self.cursor {
            return Ok(c.clone());
        }
        let c = match self.store.alarm_cursor(SINK).await? {
            Some(c) => c,
            None => {
                let start = self
                    .store
                    .alarm_events_bounds()
                    .await?
                    .map(|(_, newest)| newest)
                    .unwrap_or_else(|| "0".into());
                self.store.set_alarm_cursor(SINK, &start).await?;
                start
            }
        };
        self.cursor = Some(c.clone());
        Ok(c)
    }

    /// The next events to send: the id of the last one and the events (JSON objects).
    pub async fn next(
        &mut self,
        max: usize,
    ) -> Result<Option<(String, Vec<serde_json::Value>)>, StoreError> {
        let cur = self.cursor().await?;
        let ev = self.store.alarm_events_after(&cur, max).await?;
        let Some(last) = ev.last().map(|(id, _)| id.clone()) else {
            return Ok(None);
        };
        if let Some(deleted) = self.store.alarm_events_max_deleted().await? {
            if trimmed_past(&cur, &deleted) && self.gap_seen_at.as_deref() != Some(&cur) {
                self.gaps += 1;
                self.gap_seen_at = Some(cur.clone());
                tracing::warn!(cursor = %cur, trimmed_up_to = %deleted, "alarm events were trimmed before they could be forwarded");
            }
        }
        Ok(Some((last, ev.into_iter().map(|(_, v)| v).collect())))
    }

    /// The broker acknowledged everything up to `last`.
    pub async fn acknowledged(&mut self, last: &str) -> Result<(), StoreError> {
        self.store.set_alarm_cursor(SINK, last).await?;
        self.cursor = Some(last.to_string());
        Ok(())
    }

    /// Forget the cached cursor (Redis may have restarted without it).
    pub fn reset(&mut self) {
        self.cursor = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_by_time_then_sequence() {
        assert!(parse_id("1700000000000-1") > parse_id("1700000000000-0"));
        assert!(parse_id("1700000000001-0") > parse_id("1700000000000-9"));
        assert_eq!(parse_id("5"), Some((5, 0)));
        assert_eq!(parse_id("x-1"), None);
    }

    #[test]
    fn events_are_lost_only_when_an_entry_newer_than_the_cursor_was_deleted() {
        assert!(!trimmed_past("100-5", "0-0"), "nothing deleted");
        assert!(!trimmed_past("100-5", "100-5"), "the delivered one itself");
        assert!(trimmed_past("100-5", "100-6"));
        assert!(trimmed_past("0", "1-0"));
        assert!(!trimmed_past("100-5", "garbage"));
    }
}
