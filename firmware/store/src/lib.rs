//! The store: the only code that knows Redis key strings and talks to Redis.
//!
//! Services never build keys or commands themselves; they hand typed updates to [`Store`], which
//! turns one poll into one atomic pipeline (values, timestamps, counters and status together), so
//! a reader never sees a value without its timestamp or counters from half a poll. The connection
//! is a [`redis::aio::ConnectionManager`], which reconnects by itself after a Redis restart; a
//! write that fails while Redis is away returns an error and the caller keeps polling.

pub mod functions;
pub mod keys;

pub use functions::FunctionsState;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::time::Duration;
use voltage_core::config::Channel;
use voltage_core::points::Point;
use voltage_core::PointType;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("loading Redis function library {library}: {message}")]
    Functions { library: String, message: String },
    #[error("{0}")]
    Function(String),
    #[error("encoding {what}: {message}")]
    Encode { what: String, message: String },
}

impl StoreError {
    /// Whether the error means Redis is unreachable (as opposed to a bad command).
    pub fn is_connection(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
            }
            _ => false,
        }
    }
}

/// A handle to Redis; cheap to clone, shared by every task.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    client: redis::Client,
    timeout: Duration,
}

/// Counter increments of one poll for `comsrv:{ch}:stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsDelta {
    pub total_reads: u64,
    pub total_errors: u64,
    pub connection_errors: u64,
    pub reconnect_count: u64,
    pub timeouts: u64,
    pub exceptions: u64,
    /// Response times of answered requests (answers and exceptions; not timeouts).
    pub response: ResponseHistogram,
}

/// Upper bounds of the response-time buckets, ms; one more bucket holds the rest.
pub const RESPONSE_BUCKETS_MS: [u64; 8] = [5, 10, 25, 50, 100, 250, 500, 1000];
/// `:stats` fields of the buckets (counts per bucket, not cumulative), then the sum in µs.
pub const RESPONSE_FIELDS: [&str; 9] = [
    "response_le_5ms",
    "response_le_10ms",
    "response_le_25ms",
    "response_le_50ms",
    "response_le_100ms",
    "response_le_250ms",
    "response_le_500ms",
    "response_le_1000ms",
    "response_gt_1000ms",
];
pub const RESPONSE_SUM_FIELD: &str = "response_us_sum";

/// Request response times in fixed buckets, so every consumer (metrics, the console) can show
/// a distribution without the channel keeping samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHistogram {
    pub counts: [u64; 9],
    pub sum_us: u64,
}

impl ResponseHistogram {
    pub fn record(&mut self, d: Duration) {
        let ms = d.as_micros() as u64;
        let i = RESPONSE_BUCKETS_MS
            .iter()
            .position(|b| ms <= b * 1000)
            .unwrap_or(RESPONSE_BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_us += ms;
    }

    pub fn merge(&mut self, o: &ResponseHistogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
        self.sum_us += o.sum_us;
    }
}

impl StatsDelta {
    fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut f = vec![
            ("total_reads", self.total_reads),
            ("total_errors", self.total_errors),
            ("connection_errors", self.connection_errors),
            ("reconnect_count", self.reconnect_count),
            ("timeouts", self.timeouts),
            ("exceptions", self.exceptions),
        ];
        f.extend(RESPONSE_FIELDS.iter().copied().zip(self.response.counts));
        f.push((RESPONSE_SUM_FIELD, self.response.sum_us));
        f
    }
}

/// Channel status fields written after a poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusUpdate {
    pub connected: bool,
    /// Errors of this poll, added to the cumulative `error_count`.
    pub new_errors: u64,
    pub consecutive_errors: u64,
    /// `None` leaves the previous `last_error` in place.
    pub last_error: Option<String>,
    /// Epoch ms of this poll when it read anything successfully.
    pub success_at_ms: Option<u64>,
    /// Slaves currently backed off, e.g. `"2,5"` (empty when none).
    pub offline_slaves: String,
}

/// How far a point's value in Redis can be trusted (`comsrv:{ch}:{T}:quality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// A current, good read (not stored: absence means good).
    Good,
    /// The source is unreachable; the value is the last good one (`:ts` says how old).
    Stale,
    /// The device answered but flags the value.
    Uncertain,
    /// The device or plugin said there is no valid value; the last one stays.
    Bad,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Stale => "stale",
            Quality::Uncertain => "uncertain",
            Quality::Bad => "bad",
        }
    }
}

/// One poll's worth of writes for one channel.
#[derive(Debug, Clone, Default)]
pub struct PollBatch {
    /// `(type, point_id, formatted value)`.
    pub values: Vec<(PointType, u32, String)>,
    /// Quality changes of this poll: `Good` clears a point's mark, anything else sets it.
    pub quality: Vec<(PointType, u32, Quality)>,
    pub at_ms: u64,
    pub poll_ms: u64,
    pub stats: StatsDelta,
    pub status: StatusUpdate,
}

impl Store {
    /// Connects to `url` once; fails when Redis does not answer within `timeout`. After that the
    /// handle reconnects by itself.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Store, StoreError> {
        let client = redis::Client::open(url)?;
        Self::from_client(client, timeout).await
    }

    async fn from_client(client: redis::Client, timeout: Duration) -> Result<Store, StoreError> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client.clone(), cfg).await?;
        Ok(Store {
            conn,
            client,
            timeout,
        })
    }

    /// A second, independent connection to the same Redis, for blocking commands (BLPOP) that
    /// must not hold up the shared one. Its response timeout leaves room for `block`.
    pub async fn dedicated(&self, block: Duration) -> Result<Store, StoreError> {
        Self::from_client(self.client.clone(), self.timeout + block).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }

    /// The Redis server's `run_id`, which changes whenever Redis restarts (and, without
    /// persistence, has lost everything that was published to it).
    pub async fn server_run_id(&self) -> Result<String, StoreError> {
        let mut c = self.conn.clone();
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap_or("")
            .trim()
            .to_string())
    }

    /// Writes one poll atomically: values, their timestamps, stats and status.
    pub async fn write_poll(&self, channel: u32, b: &PollBatch) -> Result<(), StoreError> {
        let mut p = redis::pipe();
        p.atomic();
        for kind in PointType::ALL {
            let vals: Vec<(u32, &str)> = b
                .values
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, id, v)| (*id, v.as_str()))
                .collect();
            if vals.is_empty() {
                continue;
            }
            p.hset_multiple(keys::values(channel, kind), &vals).ignore();
            let ts: Vec<(u32, u64)> = vals.iter().map(|(id, _)| (*id, b.at_ms)).collect();
            p.hset_multiple(keys::timestamps(channel, kind), &ts)
                .ignore();
        }
        for kind in PointType::ALL {
            let of_kind = || b.quality.iter().filter(move |(k, _, _)| *k == kind);
            let good: Vec<u32> = of_kind()
                .filter(|(_, _, q)| *q == Quality::Good)
                .map(|(_, id, _)| *id)
                .collect();
            if !good.is_empty() {
                p.hdel(keys::quality(channel, kind), &good).ignore();
            }
            let marked: Vec<(u32, &str)> = of_kind()
                .filter(|(_, _, q)| *q != Quality::Good)
                .map(|(_, id, q)| (*id, q.as_str()))
                .collect();
            if !marked.is_empty() {
                p.hset_multiple(keys::quality(channel, kind), &marked)
                    .ignore();
            }
        }
        let stats = keys::stats(channel);
        for (field, n) in b.stats.fields() {
            if n > 0 {
                p.hincr(&stats, field, n).ignore();
            }
        }
        p.hset(&stats, "last_poll_ms", b.poll_ms).ignore();
        let status = keys::status(channel);
        let s = &b.status;
        let mut fields: Vec<(&str, String)> = vec![
            ("connected", if s.connected { "1" } else { "0" }.into()),
            ("consecutive_errors", s.consecutive_errors.to_string()),
            ("offline_slaves", s.offline_slaves.clone()),
        ];
        if let Some(e) = &s.last_error {
            fields.push(("last_error", e.clone()));
        }
        if let Some(t) = s.success_at_ms {
            fields.push(("last_success_at", t.to_string()));
        }
        p.hset_multiple(&status, &fields).ignore();
        p.hincr(&status, "error_count", s.new_errors).ignore();
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Publishes a channel's configuration: replaces its `:config:*` hashes, registers it in
    /// `comsrv:channels` and resets its status to the given connection state and config error.
    pub async fn publish_channel(
        &self,
        ch: &Channel,
        config_error: &str,
    ) -> Result<(), StoreError> {
        let id = ch.id();
        let mut p = redis::pipe();
        p.atomic();
        for kind in PointType::ALL {
            let key = keys::point_config(id, kind);
            p.del(&key).ignore();
            let rows = point_rows(&ch.points, kind)?;
            if !rows.is_empty() {
                p.hset_multiple(&key, &rows).ignore();
            }
            // Values of points that left the table must not linger as if they were live.
            let ids: Vec<u32> = ch
                .points
                .iter()
                .filter(|pt| pt.kind == kind)
                .map(|pt| pt.def.point_id)
                .collect();
            prune_script(
                &mut p,
                &keys::values(id, kind),
                &keys::timestamps(id, kind),
                &ids,
            );
            // The channel's loop starts with every point unmarked.
            p.del(keys::quality(id, kind)).ignore();
        }
        p.sadd(keys::CHANNELS, id).ignore();
        let status = keys::status(id);
        p.hset_multiple(
            &status,
            &[
                ("name", ch.config.name.as_str()),
                ("protocol", ch.config.protocol.as_str()),
                ("config_error", config_error),
            ],
        )
        .ignore();
        p.hset_nx(&status, "error_count", 0).ignore();
        let stats = keys::stats(id);
        for (field, _) in StatsDelta::default().fields() {
            p.hset_nx(&stats, field, 0).ignore();
        }
        p.hset_nx(&status, "connected", 0).ignore();
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Replaces the statistics hash of a serial line.
    pub async fn write_line_stats(
        &self,
        line: &str,
        fields: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut p = redis::pipe();
        p.atomic();
        p.del(keys::line_stats(line)).ignore();
        p.hset_multiple(keys::line_stats(line), fields).ignore();
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Records the outcome of a control/adjustment write: the read-back value (when there is
    /// one) in `comsrv:{ch}:C|A` with its timestamp, and the audit entry (newest first, the last
    /// 1000 kept).
    pub async fn record_write(
        &self,
        channel: u32,
        kind: PointType,
        point_id: u32,
        value: Option<&str>,
        at_ms: u64,
        audit_json: &str,
    ) -> Result<(), StoreError> {
        let mut p = redis::pipe();
        p.atomic();
        if let Some(v) = value {
            p.hset(keys::values(channel, kind), point_id, v).ignore();
            p.hset(keys::timestamps(channel, kind), point_id, at_ms)
                .ignore();
        }
        p.lpush(keys::audit(channel), audit_json).ignore();
        p.ltrim(keys::audit(channel), 0, 999).ignore();
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Waits up to `timeout` for a queued write command (`comsrv:commands`). Use a store
    /// connected for this purpose only: the wait blocks its connection.
    pub async fn pop_command(&self, timeout: Duration) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        let r: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(keys::COMMANDS)
            .arg(timeout.as_secs_f64())
            .query_async(&mut c)
            .await?;
        Ok(r.map(|(_, v)| v))
    }

    /// Stores the result of a queued command for an hour.
    pub async fn set_command_result(&self, request_id: &str, json: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(keys::command_result(request_id))
            .arg(json)
            .arg("EX")
            .arg(3600)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Current values of one point type of a channel with their read times (epoch ms):
    /// `(point_id, value text, ts)`, in one round trip. Used by history sampling.
    pub async fn read_points(
        &self,
        channel: u32,
        kind: PointType,
    ) -> Result<Vec<(u32, String, Option<u64>)>, StoreError> {
        let mut p = redis::pipe();
        p.hgetall(keys::values(channel, kind))
            .hgetall(keys::timestamps(channel, kind));
        let mut c = self.conn.clone();
        type Fields<V> = Vec<(String, V)>;
        let (vals, ts): (Fields<String>, Fields<u64>) = p.query_async(&mut c).await?;
        let ts: std::collections::HashMap<String, u64> = ts.into_iter().collect();
        Ok(vals
            .into_iter()
            .filter_map(|(id, v)| {
                let t = ts.get(&id).copied();
                id.parse().ok().map(|id| (id, v, t))
            })
            .collect())
    }

    /// The quality marks of a channel's points (`comsrv:{ch}:{T}:quality`, every type in one
    /// round trip): `(type, point_id, mark)` for the points whose value is not a good read.
    pub async fn quality_marks(
        &self,
        channel: u32,
    ) -> Result<Vec<(PointType, u32, String)>, StoreError> {
        let mut p = redis::pipe();
        for kind in PointType::ALL {
            p.hgetall(keys::quality(channel, kind));
        }
        let mut c = self.conn.clone();
        let all: Vec<Vec<(String, String)>> = p.query_async(&mut c).await?;
        Ok(PointType::ALL
            .into_iter()
            .zip(all)
            .flat_map(|(kind, marks)| {
                marks
                    .into_iter()
                    .filter_map(move |(id, q)| id.parse().ok().map(|id| (kind, id, q)))
            })
            .collect())
    }

    /// Calls a Redis Function (`FCALL`, or `FCALL_RO` when `read_only`). A function's error reply
    /// comes back as [`StoreError::Function`] with its message, for the caller to map.
    pub async fn fcall(
        &self,
        name: &str,
        keys: &[&str],
        args: &[&str],
        read_only: bool,
    ) -> Result<Option<String>, StoreError> {
        let mut cmd = redis::cmd(if read_only { "FCALL_RO" } else { "FCALL" });
        cmd.arg(name).arg(keys.len()).arg(keys).arg(args);
        let mut c = self.conn.clone();
        let mut first = cmd.query_async::<Option<String>>(&mut c).await;
        // A Redis restarted without persistence has lost the libraries: load them and call
        // again, rather than failing requests until the periodic check notices.
        if matches!(&first, Err(e) if e.to_string().contains("Function not found")) {
            tracing::warn!(
                function = name,
                "redis lost the functions; loading them again"
            );
            self.ensure_functions().await?;
            first = cmd.query_async::<Option<String>>(&mut c).await;
        }
        match first {
            Ok(v) => Ok(v),
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                    || e.code() == Some("ERR") =>
            {
                Err(StoreError::Function(
                    e.detail().unwrap_or(&e.to_string()).to_string(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A channel's `:stats` and `:status` hashes, as stored (one round trip).
    pub async fn channel_counters(
        &self,
        channel: u32,
    ) -> Result<(HashMap<String, String>, HashMap<String, String>), StoreError> {
        let mut p = redis::pipe();
        p.hgetall(keys::stats(channel))
            .hgetall(keys::status(channel));
        let mut c = self.conn.clone();
        Ok(p.query_async(&mut c).await?)
    }

    /// A serial line's statistics hash (empty when the line never ran).
    pub async fn line_counters(&self, line: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(keys::line_stats(line))
            .query_async(&mut c)
            .await?)
    }

    /// Number of alarms per (status, level), every combination listed (one round trip).
    pub async fn alarm_counts(&self) -> Result<Vec<(&'static str, &'static str, u64)>, StoreError> {
        let mut p = redis::pipe();
        let mut combos = Vec::new();
        for st in keys::ALARM_STATUSES {
            for lv in keys::ALARM_LEVELS {
                p.zcard(keys::alarm_index(st, lv));
                combos.push((st, lv));
            }
        }
        let mut c = self.conn.clone();
        let n: Vec<u64> = p.query_async(&mut c).await?;
        Ok(combos
            .into_iter()
            .zip(n)
            .map(|((s, l), n)| (s, l, n))
            .collect())
    }

    /// Alarm events after stream id `after` (exclusive; `0` for all kept), at most `count`,
    /// each as its stream id and a JSON object of its fields.
    pub async fn alarm_events_after(
        &self,
        after: &str,
        count: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut c = self.conn.clone();
        let start = if after == "0" {
            "-".to_string()
        } else {
            format!("({after}")
        };
        let rows: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(keys::ALARM_EVENTS)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, f)| {
                let mut m: serde_json::Map<String, serde_json::Value> =
                    f.into_iter().map(|(k, v)| (k, v.into())).collect();
                m.insert("event_id".into(), id.clone().into());
                (id, serde_json::Value::Object(m))
            })
            .collect())
    }

    /// The ids of the oldest and newest alarm events kept (None: no events).
    pub async fn alarm_events_bounds(&self) -> Result<Option<(String, String)>, StoreError> {
        let mut c = self.conn.clone();
        let first: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(keys::ALARM_EVENTS)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(keys::ALARM_EVENTS)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        Ok(first
            .into_iter()
            .next()
            .zip(last.into_iter().next())
            .map(|(f, l)| (f.0, l.0)))
    }

    /// The largest id the alarm-event stream has trimmed (None: no stream yet).
    pub async fn alarm_events_max_deleted(&self) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        let info: Result<HashMap<String, redis::Value>, _> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(keys::ALARM_EVENTS)
            .query_async(&mut c)
            .await;
        match info {
            Ok(m) => Ok(m
                .get("max-deleted-entry-id")
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())),
            // No such key: no events yet.
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A forwarder's alarm-event cursor (None: never set).
    pub async fn alarm_cursor(&self, sink: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("GET")
            .arg(keys::alarm_events_cursor(sink))
            .query_async(&mut c)
            .await?)
    }

    pub async fn set_alarm_cursor(&self, sink: &str, id: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(keys::alarm_events_cursor(sink))
            .arg(id)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Publishes `message` on a Redis pub/sub channel; returns how many subscribers got it.
    pub async fn publish(&self, channel: &str, message: &str) -> Result<i64, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query_async(&mut c)
            .await?)
    }

    /// Queues a write command for comsrv (`comsrv:commands`, JSON as comsrv's command path
    /// documents it); its outcome appears under [`keys::command_result`].
    pub async fn queue_command(&self, json: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("RPUSH")
            .arg(keys::COMMANDS)
            .arg(json)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Records a configuration error on a channel's status without touching its data.
    pub async fn set_config_error(&self, channel: u32, message: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("HSET")
            .arg(keys::status(channel))
            .arg("config_error")
            .arg(message)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Removes every key of a channel that left the configuration.
    pub async fn remove_channel(&self, channel: u32) -> Result<(), StoreError> {
        let mut p = redis::pipe();
        p.atomic();
        p.del(keys::channel_keys(channel)).ignore();
        p.srem(keys::CHANNELS, channel).ignore();
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Channel ids registered by the last comsrv run.
    pub async fn registered_channels(&self) -> Result<Vec<u32>, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("SMEMBERS")
            .arg(keys::CHANNELS)
            .query_async(&mut c)
            .await?)
    }
}

/// Appends an HDEL of every field of `values`/`ts` that is not in `keep`, via a small EVAL so it
/// stays inside the MULTI.
fn prune_script(p: &mut redis::Pipeline, values: &str, ts: &str, keep: &[u32]) {
    const LUA: &str = "local keep = {} for i = 1, #ARGV do keep[ARGV[i]] = true end \
        for _, k in ipairs(KEYS) do for _, f in ipairs(redis.call('HKEYS', k)) do \
        if not keep[f] then redis.call('HDEL', k, f) end end end return 0";
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(LUA).arg(2).arg(values).arg(ts);
    for id in keep {
        cmd.arg(*id);
    }
    p.add_command(cmd).ignore();
}

/// The JSON rows of `:config:{type}`: the point table row, numbers as numbers, plus its source.
fn point_rows(points: &[Point], kind: PointType) -> Result<Vec<(u32, String)>, StoreError> {
    points
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| {
            let mut v = serde_json::to_value(&p.def).map_err(|e| StoreError::Encode {
                what: format!("point {}", p.def.point_id),
                message: e.to_string(),
            })?;
            if let (Some(src), Some(obj)) = (&p.source, v.as_object_mut()) {
                let s = serde_json::to_value(src).map_err(|e| StoreError::Encode {
                    what: format!("mapping of point {}", p.def.point_id),
                    message: e.to_string(),
                })?;
                obj.insert("mapping".into(), s);
            }
            Ok((p.def.point_id, v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_times_land_in_their_bucket_with_the_sum_in_microseconds() {
        let mut h = ResponseHistogram::default();
        h.record(Duration::from_micros(4_999));
        h.record(Duration::from_millis(5));
        h.record(Duration::from_micros(5_001));
        h.record(Duration::from_millis(999));
        h.record(Duration::from_secs(3));
        assert_eq!(h.counts, [2, 1, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(h.sum_us, 4_999 + 5_000 + 5_001 + 999_000 + 3_000_000);
        let mut m = h.clone();
        m.merge(&h);
        assert_eq!(m.counts[0], 4);
        let names: Vec<&str> = StatsDelta::default().fields().iter().map(|f| f.0).collect();
        assert!(names.contains(&"response_le_5ms") && names.contains(&RESPONSE_SUM_FIELD));
    }
}
