//! A crash-safe append-only log of samples, read by several sinks with their own cursors.
//!
//! Why: a controller's uplink (4G, site LAN) goes away for hours and its power goes away without
//! warning. Every sample is appended here first; hissrv's InfluxDB sink and netsrv's MQTT/HTTP
//! sinks each read from their own cursor and advance it only after the far end acknowledged.
//! Whatever the log holds survives a crash (`kill -9`) and, within the fsync policy, a power cut.
//!
//! On disk (in `dir`):
//! - `{first_seq:020}.seg`: a segment; a 5-byte header (`VWAL` + format version 1), then records,
//!   each `len: u32 LE`, `crc32: u32 LE` (of the payload), `payload` (postcard of [`Record`]).
//!   Sequence numbers are implicit: the file name's first one, then consecutive.
//! - `cursors/{sink}`: `cursor lost_records` as text, replaced atomically (write, fsync, rename);
//!   a moving cursor is written at most every 0.5 s and on `sync`/drop, so after a crash a sink
//!   re-delivers at most that much (its contract is at-least-once; InfluxDB writes are idempotent).
//!
//! Recovery reads every record and checks its checksum. A torn or corrupt tail of the newest
//! segment (a power cut in the middle of a write) is cut off and reported; a bad record inside an
//! older segment ends what can be read of that segment, and is reported with file and offset.
//! The disk budget (`max_bytes`) is kept by deleting whole oldest segments; what that removes is
//! counted, per sink too (`lost_records`), never silent.

mod cursor;
mod segment;

pub use cursor::{Cursors, SinkCursor};

use segment::Segment;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub ts_ns: i64,
    pub channel: u32,
    /// `b'T'`, `b'S'`, `b'C'` or `b'A'`.
    pub kind: u8,
    pub point: u32,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// fsync before `append` returns: survives a power cut, costs a disk flush per batch.
    Always,
    /// fsync when the last one is older than this: at most this much is lost on a power cut.
    Interval(Duration),
    /// Leave it to the OS (survives a crash, not a power cut).
    Never,
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub max_bytes: u64,
    pub fsync: Fsync,
}

impl WalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalConfig {
            dir: dir.into(),
            segment_bytes: 4 << 20,
            max_bytes: 64 << 20,
            fsync: Fsync::Interval(Duration::from_secs(1)),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    pub truncated_bytes: u64,
    pub corrupt_records: u64,
    pub first_seq: u64,
    pub next_seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SinkBacklog {
    pub sink: String,
    pub cursor: u64,
    pub records: u64,
    pub bytes: u64,
    pub oldest_ts_ns: Option<i64>,
    pub lost_records: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WalStats {
    pub first_seq: u64,
    pub next_seq: u64,
    pub bytes: u64,
    pub segments: usize,
    pub evicted_records: u64,
    pub evicted_bytes: u64,
    pub sinks: Vec<SinkBacklog>,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("sink {sink}: cursor {requested} is outside {valid}")]
    BadCursor {
        sink: String,
        requested: u64,
        valid: String,
    },
    #[error("sink name {0:?} must be 1-64 characters of [A-Za-z0-9_-]")]
    BadSink(String),
    #[error("encoding a record: {0}")]
    Encode(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub struct Wal {
    cfg: WalConfig,
    segments: Vec<Segment>,
    active: Option<File>,
    next_seq: u64,
    cursors: Cursors,
    evicted_records: u64,
    evicted_bytes: u64,
    last_sync: Instant,
    dirty: bool,
    syncs: u64,
}

impl Wal {
    pub fn open(cfg: WalConfig) -> Result<(Wal, RecoveryReport), WalError> {
        fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(&cfg.dir)
            .map_err(io(&cfg.dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let stem = p.file_stem()?.to_str()?.to_string();
                (p.extension()? == "seg").then(|| stem.parse::<u64>().ok().map(|s| (s, p)))?
            })
            .collect();
        names.sort();
        let mut report = RecoveryReport::default();
        let mut segments = Vec::new();
        let n = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let last = i + 1 == n;
            let (seg, torn, corrupt) = Segment::recover(first, path, last)?;
            report.truncated_bytes += torn;
            report.corrupt_records += corrupt;
            report.records += seg.count;
            segments.push(seg);
        }
        let next_seq = segments.last().map(|s| s.first_seq + s.count).unwrap_or(0);
        let first_seq = segments.first().map(|s| s.first_seq).unwrap_or(next_seq);
        let cursors = Cursors::load(&cfg.dir.join("cursors"), first_seq, next_seq)?;
        report.segments = segments.len();
        report.first_seq = first_seq;
        report.next_seq = next_seq;
        let active = match segments.last() {
            Some(s) => Some(
                OpenOptions::new()
                    .append(true)
                    .open(&s.path)
                    .map_err(io(&s.path))?,
            ),
            None => None,
        };
        let wal = Wal {
            cfg,
            segments,
            active,
            next_seq,
            cursors,
            evicted_records: 0,
            evicted_bytes: 0,
            last_sync: Instant::now(),
            dirty: false,
            syncs: 0,
        };
        Ok((wal, report))
    }

    pub fn first_seq(&self) -> u64 {
        self.segments
            .first()
            .map(|s| s.first_seq)
            .unwrap_or(self.next_seq)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many fsyncs this log did (for tests and benchmarks).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    pub fn append(&mut self, records: &[Record]) -> Result<u64, WalError> {
        if records.is_empty() {
            return Ok(self.next_seq.saturating_sub(1));
        }
        let needs_roll = self
            .segments
            .last()
            .is_none_or(|s| s.bytes >= self.cfg.segment_bytes);
        if needs_roll {
            self.roll()?;
        }
        let mut buf = Vec::with_capacity(records.len() * 32);
        let mut sizes = Vec::with_capacity(records.len());
        for r in records {
            sizes.push(segment::encode(r, &mut buf)?);
        }
        let seg = self.segments.last_mut().expect("rolled");
        let file = self.active.as_mut().expect("active segment");
        if let Err(e) = file.write_all(&buf) {
            // Do not leave half a batch for the next append to write behind.
            let _ = file.set_len(seg.bytes);
            return Err(io(&seg.path)(e));
        }
        seg.note_appended(&sizes);
        self.next_seq += records.len() as u64;
        self.dirty = true;
        match self.cfg.fsync {
            Fsync::Always => self.sync()?,
            Fsync::Interval(d) if self.last_sync.elapsed() >= d => self.sync()?,
            _ => {}
        }
        self.evict()?;
        Ok(self.next_seq - 1)
    }

    fn roll(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.sync()?;
        }
        let seg = Segment::create(&self.cfg.dir, self.next_seq)?;
        self.active = Some(
            OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .map_err(io(&seg.path))?,
        );
        self.segments.push(seg);
        Ok(())
    }

    /// Flushes the active segment and every moved cursor to disk.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.cursors.flush()?;
        if let (Some(f), Some(s)) = (self.active.as_ref(), self.segments.last()) {
            f.sync_data().map_err(io(&s.path))?;
            self.syncs += 1;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn evict(&mut self) -> Result<(), WalError> {
        while self.total_bytes() > self.cfg.max_bytes && self.segments.len() > 1 {
            let old = self.segments.remove(0);
            fs::remove_file(&old.path).map_err(io(&old.path))?;
            self.evicted_records += old.count;
            self.evicted_bytes += old.bytes;
            let first = self.first_seq();
            tracing::warn!(
                records = old.count,
                bytes = old.bytes,
                "history log over its disk budget: oldest segment evicted"
            );
            self.cursors.evicted_below(first)?;
        }
        Ok(())
    }

    pub fn cursor(&mut self, sink: &str) -> Result<u64, WalError> {
        let first = self.first_seq();
        Ok(self.cursors.get_or_register(sink, first)?.cursor)
    }

    pub fn read_from(&self, from: u64, max: usize) -> Result<Vec<(u64, Record)>, WalError> {
        let from = from.max(self.first_seq());
        let mut out = Vec::new();
        let start = self
            .segments
            .partition_point(|s| s.first_seq + s.count <= from);
        for seg in &self.segments[start..] {
            if out.len() >= max {
                break;
            }
            seg.read(from, max - out.len(), &mut out)?;
        }
        Ok(out)
    }

    pub fn commit(&mut self, sink: &str, next_seq: u64) -> Result<(), WalError> {
        let first = self.first_seq();
        let limit = self.next_seq;
        self.cursors.commit(sink, next_seq, first, limit)
    }

    pub fn stats(&self) -> WalStats {
        let first = self.first_seq();
        let sinks = self
            .cursors
            .iter()
            .map(|(name, c)| {
                let from = c.cursor.max(first);
                let records = self.next_seq.saturating_sub(from);
                let bytes = self.segments.iter().map(|s| s.bytes_from(from)).sum();
                let oldest_ts_ns = self
                    .read_from(from, 1)
                    .ok()
                    .and_then(|v| v.first().map(|(_, r)| r.ts_ns));
                SinkBacklog {
                    sink: name.clone(),
                    cursor: c.cursor,
                    records,
                    bytes,
                    oldest_ts_ns,
                    lost_records: c.lost,
                }
            })
            .collect();
        WalStats {
            first_seq: first,
            next_seq: self.next_seq,
            bytes: self.total_bytes(),
            segments: self.segments.len(),
            evicted_records: self.evicted_records,
            evicted_bytes: self.evicted_bytes,
            sinks,
        }
    }

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
            seg.scan(|_, r| {
                if r.channel == channel
                    && r.kind == kind
                    && r.point == point
                    && r.ts_ns >= start_ns
                    && r.ts_ns < end_ns
                {
                    out.push(*r);
                }
            })?;
        }
        Ok(out)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "history log: final sync failed");
        }
    }
}

#[cfg(test)]
mod tests;
