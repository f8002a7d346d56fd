//! Sink cursors: the next record each sink has to deliver, and what it lost to eviction.
//!
//! The rules are pure functions of (cursor, first_seq, next_seq) so they are tested without
//! files; [`Cursors`] only adds persistence (one small file per sink, replaced atomically).

use crate::{io, WalError};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCursor {
    /// The next sequence number to deliver.
    pub cursor: u64,
    /// Records evicted before this sink delivered them.
    pub lost: u64,
}

impl SinkCursor {
    /// After loading or eviction: a cursor below the first retained record moves up to it and
    /// counts the gap as lost; a cursor past the end (the log lost its tail) moves back.
    pub fn clamp(self, first_seq: u64, next_seq: u64) -> SinkCursor {
        if self.cursor < first_seq {
            SinkCursor {
                cursor: first_seq,
                lost: self.lost + (first_seq - self.cursor),
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

    /// A commit must move forward and stay within the log.
    pub fn advance(self, to: u64, next_seq: u64) -> Result<SinkCursor, String> {
        if to < self.cursor || to > next_seq {
            Err(format!("{}..={next_seq}", self.cursor))
        } else {
            Ok(SinkCursor {
                cursor: to,
                lost: self.lost,
            })
        }
    }
}

pub struct Cursors {
    dir: PathBuf,
    map: BTreeMap<String, SinkCursor>,
    /// When each sink's cursor was last written.
    written: BTreeMap<String, std::time::Instant>,
    /// Sinks whose cursor moved since it was last written.
    moved: std::collections::BTreeSet<String>,
}

/// A moving cursor is written at most this often (and on [`Cursors::flush`]): after a crash a
/// sink re-delivers at most this much, which its at-least-once contract allows, and a fast
/// replay does not pay two fsyncs per batch.
const PERSIST_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

fn valid(sink: &str) -> bool {
    !sink.is_empty()
        && sink.len() <= 64
        && sink
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Cursors {
    pub(crate) fn load(dir: &Path, first_seq: u64, next_seq: u64) -> Result<Cursors, WalError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut map = BTreeMap::new();
        for e in fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().to_string();
            if !valid(&name) {
                continue;
            }
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            let mut it = text.split_whitespace().map(|t| t.parse::<u64>().ok());
            let (Some(Some(cursor)), lost) = (it.next(), it.next().flatten()) else {
                tracing::warn!(sink = %name, "unreadable cursor file: the sink starts at the oldest record");
                map.insert(
                    name,
                    SinkCursor {
                        cursor: first_seq,
                        lost: 0,
                    },
                );
                continue;
            };
            map.insert(
                name,
                SinkCursor {
                    cursor,
                    lost: lost.unwrap_or(0),
                }
                .clamp(first_seq, next_seq),
            );
        }
        Ok(Cursors {
            dir: dir.to_path_buf(),
            map,
            written: BTreeMap::new(),
            moved: Default::default(),
        })
    }

    fn persist(&self, sink: &str) -> Result<(), WalError> {
        let c = self.map[sink];
        let path = self.dir.join(sink);
        let tmp = self.dir.join(format!(".{sink}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        writeln!(f, "{} {}", c.cursor, c.lost).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub(crate) fn get_or_register(
        &mut self,
        sink: &str,
        first_seq: u64,
    ) -> Result<SinkCursor, WalError> {
        if !valid(sink) {
            return Err(WalError::BadSink(sink.to_string()));
        }
        if let Some(c) = self.map.get(sink) {
            return Ok(*c);
        }
        self.map.insert(
            sink.to_string(),
            SinkCursor {
                cursor: first_seq,
                lost: 0,
            },
        );
        self.persist(sink)?;
        Ok(self.map[sink])
    }

    pub(crate) fn commit(
        &mut self,
        sink: &str,
        to: u64,
        first_seq: u64,
        next_seq: u64,
    ) -> Result<(), WalError> {
        let c = self.get_or_register(sink, first_seq)?;
        let n = c
            .advance(to, next_seq)
            .map_err(|valid| WalError::BadCursor {
                sink: sink.into(),
                requested: to,
                valid,
            })?;
        if n != c {
            self.map.insert(sink.to_string(), n);
            let due = self
                .written
                .get(sink)
                .is_none_or(|t| t.elapsed() >= PERSIST_EVERY);
            if due {
                self.persist(sink)?;
                self.moved.remove(sink);
                self.written
                    .insert(sink.to_string(), std::time::Instant::now());
            } else {
                self.moved.insert(sink.to_string());
            }
        }
        Ok(())
    }

    /// Writes every cursor that moved since it was last written.
    pub(crate) fn flush(&mut self) -> Result<(), WalError> {
        for n in std::mem::take(&mut self.moved) {
            self.persist(&n)?;
            self.written.insert(n, std::time::Instant::now());
        }
        Ok(())
    }

    pub(crate) fn evicted_below(&mut self, first_seq: u64) -> Result<(), WalError> {
        let names: Vec<String> = self.map.keys().cloned().collect();
        for n in names {
            let c = self.map[&n];
            let moved = c.clamp(first_seq, u64::MAX);
            if moved != c {
                tracing::warn!(sink = %n, lost = moved.lost - c.lost, "records evicted before this sink delivered them");
                self.map.insert(n.clone(), moved);
                self.persist(&n)?;
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &SinkCursor)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_behind_the_retained_records_moves_up_and_counts_the_gap_as_lost() {
        let c = SinkCursor {
            cursor: 10,
            lost: 2,
        }
        .clamp(25, 40);
        assert_eq!(
            c,
            SinkCursor {
                cursor: 25,
                lost: 17
            }
        );
    }

    #[test]
    fn a_cursor_past_the_end_moves_back_without_loss() {
        assert_eq!(
            SinkCursor {
                cursor: 50,
                lost: 0
            }
            .clamp(0, 40),
            SinkCursor {
                cursor: 40,
                lost: 0
            }
        );
    }

    #[test]
    fn commits_move_forward_within_the_log_only() {
        let c = SinkCursor { cursor: 5, lost: 0 };
        assert_eq!(c.advance(9, 10).unwrap().cursor, 9);
        assert_eq!(c.advance(10, 10).unwrap().cursor, 10);
        assert!(c.advance(4, 10).is_err());
        assert!(c.advance(11, 10).is_err());
    }
}
