//! hissrv: records point history into the local crash-safe log and forwards it to InfluxDB.
//!
//! Data path: a sampler task per configured source reads the channel's values and their read
//! times from Redis (two HGETALLs, never KEYS) and appends new readings to the log
//! ([`voltage_wal`]) with the reading's own timestamp. The InfluxDB sink reads the log from its
//! own cursor and advances it only after InfluxDB acknowledged a batch, so an uplink outage, a
//! crash or a power cut loses nothing the log still holds (the disk budget evicts oldest first,
//! counted). Without an InfluxDB section, history is served from the log itself.
//!
//! HTTP (:6004): `/health`, `/status` (backlog, evictions, sink counters) and
//! `/data/{telemetry|signal|control|adjustment}?channel_id=&point_id=&duration=5m` (or
//! `start`/`end` in epoch ms) returning `[{"time": epoch_ms, "ts_ns": ..., "value": ...}]`,
//! oldest first.

mod http;
mod influx;
mod sampler;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use voltage_core::config::{Config, FsyncPolicy, HissrvConfig};
pub(crate) use voltage_http::stopped;
pub use voltage_http::Running;
use voltage_store::Store;
use voltage_wal::{Fsync, Wal, WalConfig};

pub use influx::{line_protocol, SinkStats};

#[derive(Debug, thiserror::Error)]
pub enum HissrvError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening the history log in {dir}: {message}")]
    Wal { dir: String, message: String },
}

/// The log, shared by the sampler (writer), the sinks and the query API.
pub use voltage_wal::SharedWal;

/// The log directory of a configuration (relative paths are relative to its data directory,
/// which schema-1 configurations keep at the configuration directory).
pub fn wal_dir(config: &Config, h: &HissrvConfig) -> PathBuf {
    config.data_dir.join(&h.wal.dir)
}

/// Opens (and recovers) the history log of a configuration. The daemon opens it once and hands
/// it to hissrv (writer, InfluxDB sink, queries) and netsrv (northbound sinks).
pub async fn open_wal(config: &Config) -> Result<SharedWal, HissrvError> {
    let h = config.hissrv.clone().unwrap_or_else(empty);
    let dir = wal_dir(config, &h);
    let mut wc = WalConfig::new(&dir).with_budget(h.wal.max_bytes);
    wc.fsync = match h.wal.fsync {
        FsyncPolicy::Always => Fsync::Always,
        FsyncPolicy::Interval => Fsync::Interval(Duration::from_millis(h.wal.fsync_interval_ms)),
        FsyncPolicy::Never => Fsync::Never,
    };
    let (wal, report) = tokio::task::spawn_blocking(move || Wal::open(wc))
        .await
        .expect("open task")
        .map_err(|e| HissrvError::Wal {
            dir: dir.display().to_string(),
            message: e.to_string(),
        })?;
    if report.truncated_bytes > 0 || report.corrupt_records > 0 {
        tracing::warn!(dir = %dir.display(), truncated_bytes = report.truncated_bytes, corrupt_records = report.corrupt_records,
            "history log recovered after an unclean stop");
    }
    tracing::info!(dir = %dir.display(), records = report.records, next_seq = report.next_seq, "history log open");
    Ok(SharedWal::new(wal))
}

fn empty() -> HissrvConfig {
    HissrvConfig {
        influxdb: None,
        sources: Vec::new(),
        wal: Default::default(),
    }
}

/// Starts hissrv with the `hissrv` section of `config` on the log `wal` (see [`open_wal`]); an
/// absent section records nothing and serves an empty history.
pub async fn start(
    config: &Config,
    store: Store,
    wal: SharedWal,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Running, HissrvError> {
    let h = config.hissrv.clone().unwrap_or_else(empty);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HissrvError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| HissrvError::Bind { addr, source })?;
    let (stop_tx, stop) = watch::channel(false);
    let fwd = stop_tx.clone();
    tokio::spawn(async move {
        stopped(&mut shutdown).await;
        let _ = fwd.send(true);
    });
    let appended = Arc::new(Notify::new());
    let sink_stats: Arc<Mutex<SinkStats>> = Arc::default();
    let mut tasks = Vec::new();
    for src in h.sources.clone() {
        tasks.push(tokio::spawn(sampler::run(
            src,
            store.clone(),
            wal.clone(),
            appended.clone(),
            stop.clone(),
        )));
    }
    let influx_client = h.influxdb.as_ref().and_then(|i| match influx::client(i) {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; the InfluxDB sink is off");
            None
        }
    });
    if let (Some(i), Some(client)) = (h.influxdb.clone(), influx_client.clone()) {
        tasks.push(tokio::spawn(influx::run(
            i,
            client,
            wal.clone(),
            appended.clone(),
            sink_stats.clone(),
            stop.clone(),
        )));
    }
    let (handler, http) = http::serve(
        listener,
        http::State {
            store,
            wal: wal.clone(),
            influx: h.influxdb.clone(),
            influx_client,
            sink: sink_stats,
        },
        local_addr.port(),
        stop.clone(),
    );
    let task = tokio::spawn(async move {
        let http = tokio::spawn(http);
        for t in tasks {
            let _ = t.await;
        }
        let _ = http.await;
        let _ = wal.with(|w| w.sync()).await;
        tracing::info!("hissrv stopped");
    });
    Ok(Running::new(local_addr, stop_tx, task).with_handler(handler))
}
