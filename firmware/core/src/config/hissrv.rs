//! `hissrv/hissrv.yaml`: what history is recorded, where the local log lives, and the InfluxDB
//! it is forwarded to (none = local history only, the embedded default).

use super::tls::http_link_problems;
use super::TlsConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HissrvConfig {
    /// Forward history to InfluxDB (omit for local history only).
    pub influxdb: Option<InfluxConfig>,
    /// What to record.
    #[serde(default)]
    pub sources: Vec<HistorySource>,
    #[serde(default)]
    pub wal: WalSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    pub api: InfluxApi,
    /// v1: database (required), optional username/password.
    pub database: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// v2: org and bucket (required), token.
    pub org: Option<String>,
    pub bucket: Option<String>,
    pub token: Option<String>,
    /// Points per write request (default 5000).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest time a point waits for its batch (default 1000 ms).
    #[serde(default = "default_flush")]
    pub flush_interval_ms: u64,
    /// Compress request bodies (default false).
    #[serde(default)]
    pub gzip: bool,
    /// Deadline of one write request (default 10000 ms).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Upper bound of the replay rate after an outage, points per second (default 50000).
    #[serde(default = "default_replay")]
    pub replay_points_per_s: u64,
    /// Trust anchor and client identity for an `https://` url (default: the system store).
    pub tls: Option<TlsConfig>,
}

fn default_batch() -> usize {
    5000
}
fn default_flush() -> u64 {
    1000
}
fn default_timeout() -> u64 {
    10_000
}
fn default_replay() -> u64 {
    50_000
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySource {
    /// Record a channel's points ...
    #[serde(default)]
    pub channel: Option<u32>,
    /// ... or a model's (modsrv): each model point is recorded through its mapping, under the
    /// comsrv channel and point it maps to, so a model's history is its points' history and
    /// the same reading is never stored twice under two names. The model is looked up at
    /// every sampling, so a model created or changed later is followed.
    #[serde(default)]
    pub model: Option<String>,
    /// With `model`: the model points to record (default: every point with a mapping).
    #[serde(default)]
    pub points: Vec<String>,
    /// Point types to record of a channel: `T`, `S`, `C`, `A` (default `[T, S]`).
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    /// Record every new reading at most every `interval_ms`; 0 = on change of value.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

fn default_types() -> Vec<String> {
    vec!["T".into(), "S".into()]
}
fn default_interval() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSettings {
    /// Directory of the log; a relative path (the default `wal`) is relative to the data
    /// directory (`data_dir` of voltage.yaml, else the board's, else `/var/lib/voltage`).
    pub dir: String,
    /// Disk budget; the oldest records are evicted (and counted) beyond it.
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
    /// With `fsync: interval`, how often (default 1000 ms).
    pub fsync_interval_ms: u64,
}

impl Default for WalSettings {
    fn default() -> Self {
        WalSettings {
            dir: "wal".into(),
            max_bytes: 64 * 1024 * 1024,
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
        }
    }
}

impl HissrvConfig {
    /// Problems serde cannot see; each message names the field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(i) = &self.influxdb {
            p.extend(http_link_problems("influxdb", &i.url, i.tls.as_ref()));
            match i.api {
                InfluxApi::V1 if i.database.is_none() => {
                    p.push("influxdb.database is required with api: v1".into())
                }
                InfluxApi::V2 if i.org.is_none() || i.bucket.is_none() => {
                    p.push("influxdb.org and influxdb.bucket are required with api: v2".into())
                }
                _ => {}
            }
            if i.batch_size == 0 {
                p.push("influxdb.batch_size must be at least 1".into());
            }
        }
        for (n, s) in self.sources.iter().enumerate() {
            match (&s.channel, &s.model) {
                (Some(_), Some(_)) | (None, None) => {
                    p.push(format!("sources[{n}]: give either channel or model"))
                }
                (Some(_), None) if !s.points.is_empty() => p.push(format!(
                    "sources[{n}].points names model points: it needs model, not channel"
                )),
                (None, Some(m)) if m.is_empty() => {
                    p.push(format!("sources[{n}].model must not be empty"))
                }
                _ => {}
            }
            for t in &s.types {
                if !["T", "S", "C", "A"].contains(&t.as_str()) {
                    p.push(format!(
                        "sources[{n}].types: {t:?} is not one of T, S, C, A"
                    ));
                }
            }
        }
        if self.wal.max_bytes < 1024 * 1024 {
            p.push(format!(
                "wal.max_bytes {} is below the 1 MiB minimum",
                self.wal.max_bytes
            ));
        }
        p
    }
}
