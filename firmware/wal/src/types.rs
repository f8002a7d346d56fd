//! The log's public data types and errors, apart from the [`crate::Wal`] that uses them, so
//! the sinks (hissrv, netsrv) can see the whole contract on one page.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// A segment is closed once it reaches this size (default 4 MiB; see
    /// [`WalConfig::with_budget`]).
    pub segment_bytes: u64,
    /// Disk budget; the oldest segments are evicted beyond it (default 64 MiB).
    pub max_bytes: u64,
    /// Default `Interval(1 s)`.
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

    /// Sets the disk budget and a segment size that fits it: an eighth of the budget, from
    /// 64 KiB to 4 MiB. Eviction deletes whole segments and never the active one, so the log
    /// holds up to its budget plus one segment, and each eviction frees one segment: with 4 MiB
    /// segments a 1 MiB budget would let the log grow to 5 MiB and then drop 4 MiB at once.
    pub fn with_budget(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self.segment_bytes = segment_bytes_for(max_bytes);
        self
    }
}

/// The segment size [`WalConfig::with_budget`] picks for a disk budget.
pub fn segment_bytes_for(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(64 << 10, 4 << 20)
}

/// What [`Wal::open`] found: the log as opened, and what recovery had to cut or skip.
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

/// What recovery cut when the log was last opened: a torn tail (bytes of a record a crash or
/// power cut left half-written) and records that failed their checksum. Kept for `/status`, so
/// an operator sees an unclean stop without reading the log of the boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Recovered {
    pub truncated_bytes: u64,
    pub corrupt_records: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WalStats {
    pub first_seq: u64,
    pub next_seq: u64,
    pub bytes: u64,
    pub segments: usize,
    pub evicted_records: u64,
    pub evicted_bytes: u64,
    /// What recovery cut at the last open.
    pub recovered: Recovered,
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
    #[error("{path}: history log format version {version} is not supported (this build reads 1)")]
    Version { path: String, version: u8 },
    #[error("{path}: the record at offset {offset} changed on disk since the log was opened")]
    Corrupt { path: String, offset: u64 },
}

/// The file holding the eviction totals.
pub(crate) const EVICTED: &str = "evicted";

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Makes a directory's entries (created, renamed files) durable; not every filesystem can.
pub(crate) fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "directory fsync failed");
    }
}
