//! A crash-safe append-only log of samples, read by several sinks with their own cursors.
//!
//! Why: a controller's uplink (4G, site LAN) goes away for hours and its power goes away without
//! warning. Every sample is appended here first; hissrv's InfluxDB sink and netsrv's MQTT/HTTP
//! sinks each read from their own cursor and advance it only after the far end acknowledged, so
//! one copy on disk serves every sink and an outage of one does not hold back the others.
//! Whatever the log holds survives a crash (`kill -9`) and, within the fsync policy, a power cut.
//!
//! # On disk (in `dir`)
//!
//! - `{first_seq:020}.seg`: a segment. A 5-byte header, `VWAL` + format version `1`, then
//!   records, each `len: u32 LE`, `crc32: u32 LE` (IEEE, of the payload), `payload` (postcard of
//!   [`Record`], 10-29 bytes; 28 bytes per typical sample in all). Sequence numbers are implicit:
//!   the file name's, then consecutive. A new segment starts when the active one has reached
//!   `segment_bytes` (a batch is never split), and the finished one is fsynced first, so only
//!   the newest segment can end in a torn record.
//! - `cursors/{sink}`: `"{cursor} {lost_records}\n"`, the next sequence number the sink has to
//!   deliver and the records evicted before it did; replaced atomically (temp file, fsync,
//!   rename, fsync of the directory).
//! - `evicted`: `"{records} {bytes}\n"`, what eviction removed over the log's life.
//!
//! # Recovery ([`Wal::open`])
//!
//! Every record's checksum is checked. A torn tail of the newest segment (a write cut short, or
//! never-written zero blocks) is cut off and reported in `truncated_bytes`; a whole record that
//! fails its check there is cut off too and also counted in `corrupt_records`. In an older
//! segment a bad record ends what can be read of that segment (counted, logged with file and
//! offset); the next segment goes on at its own first sequence number. An unknown format
//! version is refused, not overwritten. Nothing read from disk can make the log panic.
//!
//! # Durability
//!
//! [`Fsync::Always`] fsyncs before `append` returns; [`Fsync::Interval`] when the last fsync is
//! older than the interval (and on [`Wal::sync`], [`Wal::sync_if_due`], segment rolls and drop);
//! [`Fsync::Never`] only on rolls and drop. A moved cursor is written as durably as the data: at
//! every commit under `Always`, else at most once per interval (1 s under `Never`) and on
//! `sync`/drop, so a crash or power cut makes a sink re-deliver at most that window, never skip
//! ([`Wal::set_cursor_persist_interval`] overrides it).
//!
//! # Disk budget
//!
//! After each append, whole oldest segments (never the active one) are deleted while the log is
//! over `max_bytes` ([`WalConfig::with_budget`] sizes segments to an eighth of it). What that
//! removes is counted (`evicted_records`/`evicted_bytes`) and, per sink, the records it had not
//! delivered are added to its persisted `lost_records`.
//!
//! The rules deciding reads, backlog, eviction and loss are pure ([`ledger`], unit-tested
//! without files); this file (open, append, commit, evict), `read`, `segment` and `cursor` do
//! the I/O they decide.

mod cursor;
pub mod ledger;
mod read;
mod segment;
mod shared;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_recovery;
mod types;

pub use ledger::{CursorBook, SinkCursor, Span};
pub use shared::SharedWal;
pub use types::{
    segment_bytes_for, Fsync, Record, Recovered, RecoveryReport, SinkBacklog, WalConfig, WalError,
    WalStats,
};

use cursor::{valid_sink, CursorFiles};
use segment::Segment;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::time::{Duration, Instant};
use types::{io, sync_dir, EVICTED};

/// The log. One per directory and process (two on one directory would corrupt it); `Send`, so
/// the services share it behind a mutex and call it from `spawn_blocking`.
pub struct Wal {
    cfg: WalConfig,
    segments: Vec<Segment>,
    /// The newest segment, open for appending.
    active: Option<File>,
    next_seq: u64,
    book: CursorBook,
    cursor_files: CursorFiles,
    evicted_records: u64,
    evicted_bytes: u64,
    last_sync: Instant,
    dirty: bool,
    /// A failed write could not be undone: the next append starts a new segment.
    roll_next: bool,
    syncs: u64,
    recovered: Recovered,
}

impl Wal {
    /// Opens or creates the log in `cfg.dir` and recovers it (see the crate docs).
    pub fn open(cfg: WalConfig) -> Result<(Wal, RecoveryReport), WalError> {
        fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
        let mut names = Vec::new();
        for e in fs::read_dir(&cfg.dir).map_err(io(&cfg.dir))? {
            let e = e.map_err(io(&cfg.dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            match Segment::parse_name(&name) {
                Some(first) => names.push((first, e.path())),
                None if name.ends_with(".seg") => {
                    tracing::warn!(file = %e.path().display(), "not a history log segment name: ignored")
                }
                None => {}
            }
        }
        names.sort();
        let mut report = RecoveryReport::default();
        let mut segments: Vec<Segment> = Vec::new();
        for (i, (first, path)) in names.iter().enumerate() {
            let next_first = names.get(i + 1).map(|n| n.0);
            let limit = next_first.map_or(u64::MAX, |n| n - first);
            let (seg, found) = Segment::recover(*first, path.clone(), next_first.is_none(), limit)?;
            report.truncated_bytes += found.truncated;
            report.corrupt_records += found.corrupt + found.surplus;
            if let Some(prev) = segments.last().filter(|p| p.span.end() < *first) {
                tracing::warn!(file = %path.display(), missing = first - prev.span.end(),
                    "history log: sequence numbers missing before this segment");
            }
            segments.push(seg);
        }
        let next_seq = segments.last().map_or(0, |s| s.span.end());
        let first_seq = segments.first().map_or(next_seq, |s| s.span.first_seq);
        let every = ledger::cursor_persist_every(cfg.fsync);
        let (cursor_files, stored) = CursorFiles::load(&cfg.dir.join("cursors"), first_seq, every)?;
        let (book, changed) = CursorBook::load(stored, first_seq, next_seq);
        let evicted = match fs::read_to_string(cfg.dir.join(EVICTED)) {
            Ok(t) => cursor::parse(&t).unwrap_or_else(|| {
                tracing::warn!(dir = %cfg.dir.display(), "unreadable eviction totals: counting from 0");
                SinkCursor::default()
            }),
            Err(_) => SinkCursor::default(),
        };
        let active = match segments.last() {
            Some(s) => Some(
                OpenOptions::new()
                    .append(true)
                    .open(&s.path)
                    .map_err(io(&s.path))?,
            ),
            None => None,
        };
        let mut wal = Wal {
            cfg,
            segments,
            active,
            next_seq,
            book,
            cursor_files,
            evicted_records: evicted.cursor,
            evicted_bytes: evicted.lost,
            last_sync: Instant::now(),
            dirty: false,
            roll_next: false,
            syncs: 0,
            recovered: Recovered {
                truncated_bytes: report.truncated_bytes,
                corrupt_records: report.corrupt_records,
            },
        };
        for sink in changed {
            if let Some(c) = wal.book.get(&sink) {
                wal.cursor_files.write(&sink, c)?;
            }
        }
        wal.evict();
        report.segments = wal.segments.len();
        report.records = wal.segments.iter().map(|s| s.span.count).sum();
        report.first_seq = wal.first_seq();
        report.next_seq = wal.next_seq;
        tracing::debug!(?report, "history log open");
        Ok((wal, report))
    }

    /// The oldest retained sequence number (`next_seq` if the log is empty).
    pub fn first_seq(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.next_seq, |s| s.span.first_seq)
    }

    /// The sequence number the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many data fsyncs this log did (for tests and benchmarks).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Overrides how long a moved cursor may wait in memory (default: from the fsync policy;
    /// `Duration::ZERO` writes every commit before `commit` returns).
    pub fn set_cursor_persist_interval(&mut self, every: Duration) {
        self.cursor_files.every = every;
    }

    fn spans(&self) -> Vec<Span> {
        self.segments.iter().map(|s| s.span).collect()
    }

    /// Appends `records` with consecutive sequence numbers from `next_seq`; returns the last
    /// one's (`next_seq - 1`, saturating, for an empty batch). On an error nothing of the batch
    /// is in the log, except when the fsync after a complete write failed.
    pub fn append(&mut self, records: &[Record]) -> Result<u64, WalError> {
        if records.is_empty() {
            return Ok(self.next_seq.saturating_sub(1));
        }
        let mut buf = Vec::with_capacity(records.len() * 40);
        let mut sizes = Vec::with_capacity(records.len());
        for r in records {
            sizes.push(segment::encode(r, &mut buf)?);
        }
        let full = self
            .segments
            .last()
            .is_none_or(|s| s.span.bytes >= self.cfg.segment_bytes);
        if full || self.roll_next || self.active.is_none() {
            self.roll()?;
        }
        let (Some(seg), Some(file)) = (self.segments.last_mut(), self.active.as_mut()) else {
            return Err(io(&self.cfg.dir)(std::io::ErrorKind::NotFound.into()));
        };
        if let Err(e) = file.write_all(&buf) {
            // Do not leave half a batch for the next append to write behind.
            if file.set_len(seg.span.bytes).is_err() {
                self.roll_next = true;
            }
            return Err(io(&seg.path)(e));
        }
        seg.note_appended(&sizes);
        self.next_seq += records.len() as u64;
        self.dirty = true;
        if ledger::sync_due(self.cfg.fsync, self.last_sync.elapsed()) {
            self.sync()?;
        }
        self.evict();
        Ok(self.next_seq - 1)
    }

    fn roll(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.sync()?;
        }
        if self.segments.last().is_some_and(|s| s.span.count == 0) {
            // An empty segment is replaced, not followed (it would have the same name).
            self.segments.pop();
        }
        self.active = None;
        let seg = Segment::create(&self.cfg.dir, self.next_seq)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&seg.path)
            .map_err(io(&seg.path))?;
        self.segments.push(seg);
        self.active = Some(file);
        self.roll_next = false;
        Ok(())
    }

    /// Flushes the active segment and every moved cursor to disk.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.cursor_files.flush(&self.book, true)?;
        if let (true, Some(f), Some(s)) = (self.dirty, &self.active, self.segments.last()) {
            f.sync_data().map_err(io(&s.path))?;
            self.syncs += 1;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// For a periodic timer: fsyncs if the policy's interval has passed since the last fsync and
    /// writes the cursors that are due, so the loss window holds when appends stop. Returns
    /// whether the data was fsynced.
    pub fn sync_if_due(&mut self) -> Result<bool, WalError> {
        let due = self.dirty && ledger::sync_due(self.cfg.fsync, self.last_sync.elapsed());
        if due {
            self.sync()?;
        } else {
            self.cursor_files.flush(&self.book, false)?;
        }
        Ok(due)
    }

    /// Deletes the oldest segments beyond the disk budget and counts what they held. Errors are
    /// logged, not returned: the append that triggered this has succeeded; the next one retries.
    fn evict(&mut self) {
        let n = ledger::evict_count(&self.spans(), self.cfg.max_bytes);
        let mut removed = 0;
        for seg in &self.segments[..n] {
            match fs::remove_file(&seg.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    tracing::error!(file = %seg.path.display(), error = %e, "cannot evict a history log segment");
                    break;
                }
            }
        }
        if removed == 0 {
            return;
        }
        let gone: Vec<Span> = self.segments.drain(..removed).map(|s| s.span).collect();
        let records: u64 = gone.iter().map(|s| s.count).sum();
        let bytes: u64 = gone.iter().map(|s| s.bytes).sum();
        self.evicted_records = self.evicted_records.saturating_add(records);
        self.evicted_bytes = self.evicted_bytes.saturating_add(bytes);
        let first = self.first_seq();
        tracing::warn!(
            segments = removed,
            records,
            bytes,
            first_seq = first,
            "history log over its disk budget: oldest records evicted"
        );
        let totals = format!("{} {}\n", self.evicted_records, self.evicted_bytes);
        if let Err(e) = cursor::write_atomic(&self.cfg.dir, EVICTED, &totals) {
            tracing::error!(error = %e, "cannot write the history log's eviction totals");
        }
        for (sink, lost) in self.book.evict(&gone, first) {
            if lost > 0 {
                tracing::warn!(%sink, lost, "records evicted before this sink delivered them");
            }
            if let Some(c) = self.book.get(&sink) {
                if let Err(e) = self.cursor_files.write(&sink, c) {
                    tracing::error!(%sink, error = %e, "cannot write a sink cursor after eviction");
                }
            }
        }
        // Cursors still waiting in memory may point past records now gone: written at once, a
        // crash cannot make a reopen count what they delivered as lost.
        if let Err(e) = self.cursor_files.flush(&self.book, true) {
            tracing::error!(error = %e, "cannot write the sink cursors after eviction");
        }
    }

    /// Registers `sink` if new (it starts at the current `first_seq`, so it delivers the whole
    /// retained history) and returns its cursor: the next sequence number it has to deliver.
    pub fn cursor(&mut self, sink: &str) -> Result<u64, WalError> {
        if !valid_sink(sink) {
            return Err(WalError::BadSink(sink.to_string()));
        }
        let (c, new) = self.book.register(sink, self.first_seq());
        if new {
            self.cursor_files.write(sink, c)?;
        }
        Ok(c.cursor)
    }

    /// Moves a sink's cursor to `next_seq` (>= its cursor, <= the log's `next_seq`) and persists
    /// it atomically (when: see the crate docs on durability).
    pub fn commit(&mut self, sink: &str, next_seq: u64) -> Result<(), WalError> {
        self.cursor(sink)?;
        let moved = self
            .book
            .commit(sink, next_seq, self.first_seq(), self.next_seq)
            .map_err(|valid| WalError::BadCursor {
                sink: sink.into(),
                requested: next_seq,
                valid,
            })?;
        if moved {
            self.cursor_files.moved(sink, &self.book)?;
        }
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "history log: final sync failed");
        }
    }
}
