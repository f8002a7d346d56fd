//! `GET /metrics` in the OpenMetrics text format, for a site's Prometheus or VictoriaMetrics:
//! per channel the counters comsrv keeps in Redis, per serial line its bus figures, alarms by
//! status and level, the history log's backlog per sink (from hissrv), and Redis itself as the
//! gateway sees it. Rendering is a pure function of a [`Snapshot`], tested apart from the I/O.

use crate::{raw, Gateway};
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use warp::http::{HeaderMap, Method, StatusCode};

static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Hash = HashMap<String, String>;

/// Everything one scrape shows.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// (channel, stats hash, status hash)
    pub channels: Vec<(u32, Hash, Hash)>,
    pub lines: Vec<(String, HashMap<String, String>)>,
    pub alarms: Vec<(&'static str, &'static str, u64)>,
    /// hissrv's `/status` (`{"log": {...}}`), when hissrv runs.
    pub history: Option<serde_json::Value>,
    pub redis_up: bool,
    pub redis_rtt: Option<Duration>,
}

pub(crate) async fn render(gw: &Gateway) -> warp::reply::Response {
    let snap = collect(gw).await;
    raw(StatusCode::OK, CONTENT_TYPE, Bytes::from(text(&snap)))
}

async fn collect(gw: &Gateway) -> Snapshot {
    let mut s = Snapshot::default();
    let t = Instant::now();
    s.redis_up = matches!(
        tokio::time::timeout(Duration::from_secs(1), gw.store.ping()).await,
        Ok(Ok(()))
    );
    if s.redis_up {
        s.redis_rtt = Some(t.elapsed());
        let mut ids = gw.store.registered_channels().await.unwrap_or_default();
        ids.sort_unstable();
        for id in ids {
            if let Ok((stats, status)) = gw.store.channel_counters(id).await {
                s.channels.push((id, stats, status));
            }
        }
        for l in &gw.lines {
            if let Ok(h) = gw.store.line_counters(l).await {
                if !h.is_empty() {
                    s.lines.push((l.clone(), h));
                }
            }
        }
        s.alarms = gw.store.alarm_counts().await.unwrap_or_default();
    }
    if let Some(h) = gw.services.get("hissrv") {
        let asked = h
            .upstream
            .send(Method::GET, "/status", &NO_HEADERS, Bytes::new());
        if let Ok(Ok(a)) = tokio::time::timeout(Duration::from_secs(2), asked).await {
            s.history = serde_json::from_slice(&a.body).ok();
        }
    }
    s
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let esc = val
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{esc}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

fn num(h: &HashMap<String, String>, k: &str) -> Option<f64> {
    h.get(k).and_then(|v| v.parse::<f64>().ok())
}

/// The OpenMetrics exposition of a snapshot (ends with `# EOF`).
pub(crate) fn text(s: &Snapshot) -> String {
    let mut o = Out(String::new());
    let counters: [(&str, &str, &str); 6] = [
        (
            "voltage_channel_reads",
            "total_reads",
            "Successful polls of a channel.",
        ),
        (
            "voltage_channel_errors",
            "total_errors",
            "Failed requests of a channel.",
        ),
        (
            "voltage_channel_timeouts",
            "timeouts",
            "Requests of a channel without an answer in time.",
        ),
        (
            "voltage_channel_exceptions",
            "exceptions",
            "Modbus exception answers of a channel.",
        ),
        (
            "voltage_channel_connection_errors",
            "connection_errors",
            "Failed connection attempts of a channel.",
        ),
        (
            "voltage_channel_reconnects",
            "reconnect_count",
            "Reconnections of a channel.",
        ),
    ];
    for (name, field, help) in counters {
        o.family(name, "counter", help);
        for (id, stats, _) in &s.channels {
            if let Some(v) = num(stats, field) {
                o.sample(&format!("{name}_total"), &[("channel", &id.to_string())], v);
            }
        }
    }
    o.family(
        "voltage_channel_response_seconds",
        "histogram",
        "Response time of a channel's answered requests.",
    );
    for (id, stats, _) in &s.channels {
        let counts: Vec<f64> = voltage_store::RESPONSE_FIELDS
            .iter()
            .map(|f| num(stats, f).unwrap_or(0.0))
            .collect();
        let total: f64 = counts.iter().sum();
        if total == 0.0 {
            continue;
        }
        let ch = id.to_string();
        let mut cum = 0.0;
        for (b, n) in voltage_store::RESPONSE_BUCKETS_MS.iter().zip(&counts) {
            cum += n;
            let le = format!("{}", *b as f64 / 1000.0);
            o.sample(
                "voltage_channel_response_seconds_bucket",
                &[("channel", &ch), ("le", &le)],
                cum,
            );
        }
        o.sample(
            "voltage_channel_response_seconds_bucket",
            &[("channel", &ch), ("le", "+Inf")],
            total,
        );
        o.sample(
            "voltage_channel_response_seconds_count",
            &[("channel", &ch)],
            total,
        );
        let sum = num(stats, voltage_store::RESPONSE_SUM_FIELD).unwrap_or(0.0) / 1e6;
        o.sample(
            "voltage_channel_response_seconds_sum",
            &[("channel", &ch)],
            sum,
        );
    }
    o.family(
        "voltage_channel_connected",
        "gauge",
        "1 while the channel's device answers.",
    );
    for (id, _, status) in &s.channels {
        let v = num(status, "connected").unwrap_or(0.0);
        o.sample(
            "voltage_channel_connected",
            &[("channel", &id.to_string())],
            v,
        );
    }
    o.family(
        "voltage_channel_poll_seconds",
        "gauge",
        "Duration of the channel's last poll cycle.",
    );
    for (id, stats, _) in &s.channels {
        if let Some(ms) = num(stats, "last_poll_ms") {
            o.sample(
                "voltage_channel_poll_seconds",
                &[("channel", &id.to_string())],
                ms / 1000.0,
            );
        }
    }
    let line_counters: [(&str, &str, &str); 5] = [
        (
            "voltage_line_requests",
            "requests",
            "Requests sent on a serial line.",
        ),
        (
            "voltage_line_timeouts",
            "timeouts",
            "Requests on a serial line without an answer in time.",
        ),
        (
            "voltage_line_crc_errors",
            "crc_errors",
            "Answers on a serial line with a bad CRC.",
        ),
        (
            "voltage_line_frame_errors",
            "frame_errors",
            "Malformed answers on a serial line.",
        ),
        (
            "voltage_line_exceptions",
            "exceptions",
            "Modbus exception answers on a serial line.",
        ),
    ];
    for (name, field, help) in line_counters {
        o.family(name, "counter", help);
        for (line, h) in &s.lines {
            if let Some(v) = num(h, field) {
                o.sample(&format!("{name}_total"), &[("line", line)], v);
            }
        }
    }
    o.family(
        "voltage_line_bus_utilisation_ratio",
        "gauge",
        "Share of time the line carried frames.",
    );
    for (line, h) in &s.lines {
        if let Some(p) = num(h, "bus_utilisation_pct") {
            o.sample(
                "voltage_line_bus_utilisation_ratio",
                &[("line", line)],
                p / 100.0,
            );
        }
    }
    let slave_fields = [
        (
            "voltage_slave_response_seconds",
            "gauge",
            "avg_response_ms",
            "Average response time of a slave on a serial line.",
        ),
        (
            "voltage_slave_requests",
            "counter",
            "requests",
            "Requests sent to a slave on a serial line.",
        ),
        (
            "voltage_slave_timeouts",
            "counter",
            "timeouts",
            "Requests a slave on a serial line did not answer in time.",
        ),
        (
            "voltage_slave_errors",
            "counter",
            "errors",
            "Answers of a slave on a serial line with a bad CRC, a broken frame or an exception.",
        ),
    ];
    for (name, kind, field, help) in slave_fields {
        o.family(name, kind, help);
        let sample = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        let suffix = format!("_{field}");
        for (line, h) in &s.lines {
            let mut slaves: Vec<(&str, f64)> = h
                .iter()
                .filter_map(|(k, v)| {
                    let slave = k.strip_prefix("slave_")?.strip_suffix(suffix.as_str())?;
                    Some((slave, v.parse::<f64>().ok()?))
                })
                .collect();
            slaves.sort_by_key(|(slave, _)| slave.parse::<u32>().unwrap_or(u32::MAX));
            for (slave, v) in slaves {
                let v = if field == "avg_response_ms" {
                    v / 1000.0
                } else {
                    v
                };
                o.sample(&sample, &[("line", line), ("slave", slave)], v);
            }
        }
    }
    o.family("voltage_alarms", "gauge", "Alarms by status and level.");
    for (st, lv, n) in &s.alarms {
        o.sample(
            "voltage_alarms",
            &[("status", st), ("level", lv)],
            *n as f64,
        );
    }
    if let Some(h) = &s.history {
        let log = &h["log"];
        o.family(
            "voltage_history_log_bytes",
            "gauge",
            "Size of the local history log on disk.",
        );
        if let Some(b) = log["bytes"].as_f64() {
            o.sample("voltage_history_log_bytes", &[], b);
        }
        o.family(
            "voltage_history_evicted_records",
            "counter",
            "Records dropped oldest-first when the log was full.",
        );
        if let Some(b) = log["evicted_records"].as_f64() {
            o.sample("voltage_history_evicted_records_total", &[], b);
        }
        o.family(
            "voltage_history_backlog_records",
            "gauge",
            "Records a sink has not delivered yet.",
        );
        for sink in log["sinks"].as_array().into_iter().flatten() {
            if let (Some(name), Some(n)) = (sink["sink"].as_str(), sink["records"].as_f64()) {
                o.sample("voltage_history_backlog_records", &[("sink", name)], n);
            }
        }
    }
    o.family(
        "voltage_redis_up",
        "gauge",
        "1 when Redis answered the gateway's ping.",
    );
    o.sample("voltage_redis_up", &[], if s.redis_up { 1.0 } else { 0.0 });
    o.family(
        "voltage_redis_roundtrip_seconds",
        "gauge",
        "The gateway's last ping round trip to Redis.",
    );
    if let Some(rtt) = s.redis_rtt {
        o.sample("voltage_redis_roundtrip_seconds", &[], rtt.as_secs_f64());
    }
    o.0.push_str("# EOF\n");
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_snapshot_renders_as_openmetrics_with_counters_gauges_and_eof() {
        let s = Snapshot {
            channels: vec![(
                1001,
                h(&[
                    ("total_reads", "42"),
                    ("timeouts", "3"),
                    ("last_poll_ms", "12"),
                    ("response_le_5ms", "30"),
                    ("response_le_10ms", "10"),
                    ("response_gt_1000ms", "2"),
                    ("response_us_sum", "2500000"),
                ]),
                h(&[("connected", "1")]),
            )],
            lines: vec![(
                "rs485-1".into(),
                h(&[
                    ("requests", "100"),
                    ("bus_utilisation_pct", "37.5"),
                    ("slave_2_avg_response_ms", "8.25"),
                    ("slave_2_requests", "60"),
                    ("slave_2_timeouts", "0"),
                    ("slave_2_errors", "1"),
                    ("slave_11_requests", "40"),
                    ("slave_11_timeouts", "40"),
                ]),
            )],
            alarms: vec![("Active", "Critical", 2)],
            history: Some(
                serde_json::json!({"log": {"bytes": 4096, "evicted_records": 0,
                "sinks": [{"sink": "influxdb", "records": 17}]}}),
            ),
            redis_up: true,
            redis_rtt: Some(Duration::from_micros(250)),
        };
        let t = text(&s);
        for want in [
            "# TYPE voltage_channel_reads counter\n",
            "voltage_channel_reads_total{channel=\"1001\"} 42\n",
            "voltage_channel_timeouts_total{channel=\"1001\"} 3\n",
            "voltage_channel_connected{channel=\"1001\"} 1\n",
            "# TYPE voltage_channel_response_seconds histogram\n",
            "voltage_channel_response_seconds_bucket{channel=\"1001\",le=\"0.005\"} 30\n",
            "voltage_channel_response_seconds_bucket{channel=\"1001\",le=\"0.01\"} 40\n",
            "voltage_channel_response_seconds_bucket{channel=\"1001\",le=\"1\"} 40\n",
            "voltage_channel_response_seconds_bucket{channel=\"1001\",le=\"+Inf\"} 42\n",
            "voltage_channel_response_seconds_count{channel=\"1001\"} 42\n",
            "voltage_channel_response_seconds_sum{channel=\"1001\"} 2.5\n",
            "voltage_channel_poll_seconds{channel=\"1001\"} 0.012\n",
            "voltage_line_requests_total{line=\"rs485-1\"} 100\n",
            "voltage_line_bus_utilisation_ratio{line=\"rs485-1\"} 0.375\n",
            "voltage_slave_response_seconds{line=\"rs485-1\",slave=\"2\"} 0.00825\n",
            "# TYPE voltage_slave_requests counter\n",
            "voltage_slave_requests_total{line=\"rs485-1\",slave=\"2\"} 60\n",
            "voltage_slave_requests_total{line=\"rs485-1\",slave=\"11\"} 40\n",
            "voltage_slave_timeouts_total{line=\"rs485-1\",slave=\"11\"} 40\n",
            "voltage_slave_errors_total{line=\"rs485-1\",slave=\"2\"} 1\n",
            "voltage_alarms{status=\"Active\",level=\"Critical\"} 2\n",
            "voltage_history_backlog_records{sink=\"influxdb\"} 17\n",
            "voltage_redis_up 1\n",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        assert!(t.ends_with("# EOF\n"));
        let pos = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(
            pos("requests_total{line=\"rs485-1\",slave=\"2\"}")
                < pos("requests_total{line=\"rs485-1\",slave=\"11\"}"),
            "slaves in numeric order"
        );
        // A counter without data renders its family but no sample.
        assert!(!t.contains("voltage_channel_errors_total{"));
    }

    #[test]
    fn label_values_are_escaped() {
        let s = Snapshot {
            lines: vec![("a\"b\\c".into(), h(&[("requests", "1")]))],
            ..Default::default()
        };
        assert!(text(&s).contains("voltage_line_requests_total{line=\"a\\\"b\\\\c\"} 1"));
    }
}
