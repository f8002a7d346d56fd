//! A channel's read plan as data: the requests one poll sends, their bytes, and for serial lines
//! the estimated bus time. One computation serves `voltage plan` (text) and comsrv's
//! `GET /channels/{id}/plan` and `GET /lines` (JSON for the web console), so the engineer sees
//! the same numbers on the command line and in the browser.
//!
//! The estimate counts the frames and the t3.5 silence before each of them; the device's
//! turnaround is not included (it is measured: `comsrv:line:{port}:stats`).

use crate::modbus::read_plan;
use serde::Serialize;
use std::collections::BTreeMap;
use voltage_core::config::{Channel, Protocol};
use voltage_core::plan::TCP_REQUEST_BYTES;
use voltage_core::rtu;

/// One read request of a poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRequest {
    pub slave: u8,
    /// `FC01` ... `FC04`.
    pub function: String,
    pub start: u16,
    pub end: u32,
    /// Registers (FC03/04) or bits (FC01/02).
    pub count: u16,
    pub points: usize,
    pub request_bytes: usize,
    pub response_bytes: usize,
}

/// What one poll of a channel sends and receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelPlan {
    pub channel: u32,
    pub name: String,
    pub protocol: &'static str,
    /// `host:port`, the serial device with its settings, or the plugin's endpoint.
    pub link: String,
    /// The serial line's name (as in `comsrv:line:{name}:stats`), for RTU channels.
    pub line: Option<String>,
    pub enabled: bool,
    pub poll_interval_ms: u64,
    pub timeout_ms: u64,
    pub requests: Vec<PlannedRequest>,
    /// Points the poll reads.
    pub points: usize,
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub bytes_per_second: f64,
    /// RTU: bus time of one poll (frames and gaps), ms.
    pub estimated_bus_ms: Option<f64>,
    /// RTU: this channel's share of its line, percent.
    pub estimated_utilisation_pct: Option<f64>,
    /// Why there are no requests (virtual and plugin channels).
    pub note: Option<String>,
}

/// A serial line and the estimated load of the channels on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinePlan {
    /// The port name, or the device path when the channel gives a path.
    pub name: String,
    pub device: String,
    /// `9600 8N1`.
    pub settings: String,
    pub channels: Vec<u32>,
    pub estimated_utilisation_pct: f64,
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The plan of one channel.
pub fn channel_plan(ch: &Channel) -> ChannelPlan {
    let c = &ch.config;
    let interval = c.parameters.poll_interval();
    let mut p = ChannelPlan {
        channel: c.id,
        name: c.name.clone(),
        protocol: c.protocol.as_str(),
        link: String::new(),
        line: None,
        enabled: c.enabled,
        poll_interval_ms: interval.as_millis() as u64,
        timeout_ms: c.parameters.timeout().as_millis() as u64,
        requests: Vec::new(),
        points: 0,
        request_bytes: 0,
        response_bytes: 0,
        bytes_per_second: 0.0,
        estimated_bus_ms: None,
        estimated_utilisation_pct: None,
        note: None,
    };
    match c.protocol {
        Protocol::Virtual => {
            p.points = ch.points.len();
            p.note = Some("virtual channel: values are computed, nothing goes on a wire".into());
            return p;
        }
        Protocol::Grpc => {
            p.link = c.parameters.endpoint.clone().unwrap_or_default();
            p.points = ch.points.iter().filter(|x| x.source.is_some()).count();
            p.note = Some(format!(
                "protocol plugin: {} points in one BatchRead per poll",
                p.points
            ));
            return p;
        }
        Protocol::ModbusTcp => p.link = c.tcp_address(),
        Protocol::ModbusRtu => {}
    }
    let serial = ch.serial.as_ref();
    if let Some(s) = serial {
        p.link = format!("{} {}", s.device, s.describe());
        p.line = Some(line_name(s));
    }
    let mut bus = 0f64;
    for b in read_plan(ch) {
        let (q, r) = match serial {
            Some(_) => (b.rtu_request_bytes(), b.rtu_response_bytes()),
            None => (TCP_REQUEST_BYTES, b.tcp_response_bytes()),
        };
        if let Some(s) = serial {
            let wire = rtu::wire_time(q + r, s.bits_per_char(), s.baud_rate);
            bus += (wire + rtu::t3_5(s.baud_rate) * 2).as_secs_f64();
        }
        p.requests.push(PlannedRequest {
            slave: b.slave,
            function: b.function.to_string(),
            start: b.start,
            end: b.start as u32 + b.count as u32 - 1,
            count: b.count,
            points: b.points.len(),
            request_bytes: q,
            response_bytes: r,
        });
        p.points += b.points.len();
        p.request_bytes += q;
        p.response_bytes += r;
    }
    let secs = interval.as_secs_f64().max(0.001);
    p.bytes_per_second = round1((p.request_bytes + p.response_bytes) as f64 / secs);
    if serial.is_some() {
        p.estimated_bus_ms = Some(round1(bus * 1000.0));
        p.estimated_utilisation_pct = Some(round1(100.0 * bus / secs));
    }
    p
}

/// The name a serial line goes by in Redis and the logs: its port name, or its device path.
pub fn line_name(s: &voltage_core::config::SerialSettings) -> String {
    s.port_name.clone().unwrap_or_else(|| s.device.clone())
}

/// The serial lines of `channels`, by device, with the summed estimated load of their
/// channels (unrounded sums, so many small channels do not round away).
pub fn line_plans<'a>(channels: impl IntoIterator<Item = &'a Channel>) -> Vec<LinePlan> {
    let mut lines: BTreeMap<String, (LinePlan, f64)> = BTreeMap::new();
    for ch in channels {
        let Some(s) = ch.serial.as_ref() else {
            continue;
        };
        let p = channel_plan(ch);
        let e = lines.entry(s.device.clone()).or_insert_with(|| {
            (
                LinePlan {
                    name: line_name(s),
                    device: s.device.clone(),
                    settings: s.describe(),
                    channels: Vec::new(),
                    estimated_utilisation_pct: 0.0,
                },
                0.0,
            )
        });
        e.0.channels.push(ch.id());
        e.1 += p.estimated_bus_ms.unwrap_or(0.0) / p.poll_interval_ms.max(1) as f64;
    }
    lines
        .into_values()
        .map(|(mut l, load)| {
            l.estimated_utilisation_pct = round1(load * 100.0);
            l
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use voltage_core::config::{ChannelConfig, SerialSettings};
    use voltage_core::points::{ModbusMapping, Point, PointDef, Source};
    use voltage_core::types::{ByteOrder, DataType};
    use voltage_core::PointType;

    /// A channel from its configuration (JSON) and `(slave, function, address)` u16 points.
    fn channel(config: &str, rows: &[(u8, u8, u16)], serial: Option<SerialSettings>) -> Channel {
        let config: ChannelConfig = serde_json::from_str(config).unwrap();
        let points = rows
            .iter()
            .enumerate()
            .map(|(i, &(slave_id, function_code, register_address))| Point {
                kind: PointType::Telemetry,
                def: PointDef {
                    point_id: i as u32 + 1,
                    signal_name: format!("p{i}"),
                    scale: 1.0,
                    offset: 0.0,
                    unit: String::new(),
                    reverse: false,
                    data_type: "float".into(),
                    description: String::new(),
                    control: None,
                    limits: None,
                },
                source: Some(Source::Modbus(ModbusMapping {
                    slave_id,
                    function_code,
                    register_address,
                    data_type: DataType::U16,
                    byte_order: ByteOrder::ABCD,
                    bit_position: None,
                })),
            })
            .collect();
        Channel {
            config,
            points,
            serial,
        }
    }

    #[test]
    fn tcp_requests_bytes_and_rate_follow_the_merged_blocks() {
        let ch = channel(
            r#"{"id": 7, "name": "m", "protocol": "modbus_tcp", "parameters": {"host": "10.0.0.2", "port": 502, "poll_interval_ms": 500}}"#,
            &[(1, 3, 0), (1, 3, 1), (1, 3, 40), (2, 4, 0)],
            None,
        );
        let p = channel_plan(&ch);
        assert_eq!(p.link, "10.0.0.2:502");
        assert_eq!(p.requests.len(), 3, "{p:?}");
        let r = &p.requests[0];
        assert_eq!(
            (r.slave, r.function.as_str(), r.start, r.end, r.count),
            (1, "FC03", 0, 1, 2)
        );
        assert_eq!((r.points, r.request_bytes, r.response_bytes), (2, 12, 13));
        assert_eq!(p.points, 4);
        assert_eq!(p.request_bytes, 36);
        assert_eq!(p.bytes_per_second, (36 + p.response_bytes) as f64 * 2.0);
        assert_eq!(p.estimated_bus_ms, None, "TCP has no bus estimate");
        assert_eq!(p.line, None);
    }

    #[test]
    fn rtu_channels_get_a_bus_estimate_and_share_their_line() {
        let serial = SerialSettings {
            device: "/dev/ttyS1".into(),
            port_name: Some("rs485-1".into()),
            baud_rate: 9600,
            data_bits: 8,
            parity: voltage_core::config::Parity::None,
            stop_bits: 1,
            rs485: None,
        };
        let a = channel(
            r#"{"id": 1, "name": "a", "protocol": "modbus_rtu", "parameters": {"device": "/dev/ttyS1", "poll_interval_ms": 1000}}"#,
            &[(11, 3, 0), (11, 3, 1)],
            Some(serial.clone()),
        );
        let b = channel(
            r#"{"id": 2, "name": "b", "protocol": "modbus_rtu", "parameters": {"device": "/dev/ttyS1", "poll_interval_ms": 100}}"#,
            &[(12, 3, 0)],
            Some(serial),
        );
        let pa = channel_plan(&a);
        assert_eq!(pa.line.as_deref(), Some("rs485-1"));
        assert_eq!(pa.link, "/dev/ttyS1 9600 8N1");
        // 8 B request + 9 B response at 10 bits per character, 9600 Bd: 17.7 ms, plus two
        // t3.5 gaps of 4.0 ms.
        let bus = pa.estimated_bus_ms.unwrap();
        assert!((25.0..26.5).contains(&bus), "{bus}");
        assert_eq!(
            pa.estimated_utilisation_pct,
            Some((bus / 10.0 * 10.0).round() / 10.0)
        );
        let lines = line_plans([&a, &b]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "rs485-1");
        assert_eq!(lines[0].channels, vec![1, 2]);
        let pb = channel_plan(&b);
        let want = round1(100.0 * (bus / 1000.0 + pb.estimated_bus_ms.unwrap() / 100.0));
        assert!(
            (lines[0].estimated_utilisation_pct - want).abs() <= 0.1,
            "{} vs {want}",
            lines[0].estimated_utilisation_pct
        );
    }

    #[test]
    fn virtual_channels_say_why_they_have_no_requests() {
        let ch = channel(
            r#"{"id": 3, "name": "v", "protocol": "virtual"}"#,
            &[],
            None,
        );
        let p = channel_plan(&ch);
        assert!(p.requests.is_empty());
        assert!(p.note.unwrap().contains("virtual"));
        assert!(line_plans([&ch]).is_empty());
    }
}
