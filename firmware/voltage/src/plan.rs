//! Text rendering of the read plan for `voltage plan`: what goes on the wire per poll, and for
//! serial lines the estimated bus time of one cycle.

use std::collections::BTreeMap;
use std::fmt::Write;
use voltage_core::config::{Channel, Config, Protocol};
use voltage_core::plan::TCP_REQUEST_BYTES;
use voltage_core::rtu;

const HEADER: &str = "  slave  fc    addresses      count  points     req B    resp B";

pub fn render(cfg: &Config) -> String {
    let mut o = String::new();
    let mut lines: BTreeMap<String, (String, f64, Vec<u32>)> = BTreeMap::new();
    for ch in &cfg.channels {
        let c = &ch.config;
        let link = match c.protocol {
            Protocol::Virtual => {
                let _ = writeln!(
                    o,
                    "channel {} {:?} (virtual): {} points, no Modbus requests\n",
                    c.id,
                    c.name,
                    ch.points.len()
                );
                continue;
            }
            Protocol::Grpc => {
                let _ = writeln!(
                    o,
                    "channel {} {:?} (grpc plugin at {}): {} points in one BatchRead per poll, every {} ms, deadline {} ms\n",
                    c.id,
                    c.name,
                    c.parameters.endpoint.as_deref().unwrap_or(""),
                    ch.points.iter().filter(|p| p.source.is_some()).count(),
                    c.parameters.poll_interval().as_millis(),
                    c.parameters.timeout().as_millis()
                );
                continue;
            }
            Protocol::ModbusTcp => format!("modbus_tcp {}", c.tcp_address()),
            Protocol::ModbusRtu => {
                let s = ch.serial.as_ref().expect("resolved at load");
                format!("modbus_rtu {} {}", s.device, s.describe())
            }
        };
        let _ = writeln!(
            o,
            "channel {} {:?} ({link}){}: poll every {} ms, timeout {} ms",
            c.id,
            c.name,
            if c.enabled { "" } else { " [disabled]" },
            c.parameters.poll_interval().as_millis(),
            c.parameters.timeout().as_millis()
        );
        let _ = writeln!(o, "{HEADER}");
        let rtu_line = ch.serial.as_ref();
        let plan = comsrv::read_plan(ch);
        let (mut req, mut resp, mut points, mut bus) = (0usize, 0usize, 0usize, 0f64);
        for b in &plan {
            let (q, r) = if rtu_line.is_some() {
                (b.rtu_request_bytes(), b.rtu_response_bytes())
            } else {
                (TCP_REQUEST_BYTES, b.tcp_response_bytes())
            };
            let _ = writeln!(
                o,
                "  {:>5}  {:<4}  {:<13}  {:>5}  {:>6}  {:>8}  {:>8}",
                b.slave,
                b.function.to_string(),
                b.range(),
                b.count,
                b.points.len(),
                q,
                r
            );
            req += q;
            resp += r;
            points += b.points.len();
            if let Some(s) = rtu_line {
                bus += cycle_seconds(ch, q + r, s.bits_per_char(), s.baud_rate);
            }
        }
        let interval = c.parameters.poll_interval().as_secs_f64();
        let _ = writeln!(
            o,
            "  total: {} requests for {} points per poll ({} without merging), {} B sent + {} B received = {:.0} B/s",
            plan.len(),
            points,
            points,
            req,
            resp,
            (req + resp) as f64 / interval.max(0.001)
        );
        if let Some(s) = rtu_line {
            let _ = writeln!(
                o,
                "  estimated bus time per poll: {:.1} ms (frames + t3.5 gaps, device turnaround not included)",
                bus * 1000.0
            );
            let e = lines
                .entry(s.device.clone())
                .or_insert((s.describe(), 0.0, Vec::new()));
            e.1 += bus / interval.max(0.001);
            e.2.push(c.id);
        }
        o.push('\n');
    }
    for (device, (settings, load, chans)) in lines {
        let _ = writeln!(
            o,
            "line {device} ({settings}): channels {chans:?}, estimated bus utilisation {:.1} %{}",
            load * 100.0,
            if load > 0.8 {
                "  WARNING: the line cannot keep up with the poll intervals"
            } else {
                ""
            }
        );
    }
    o
}

/// Wire time of one transaction: both frames plus a t3.5 gap before each.
fn cycle_seconds(_ch: &Channel, bytes: usize, bits: u32, baud: u32) -> f64 {
    (rtu::wire_time(bytes, bits, baud) + rtu::t3_5(baud) * 2).as_secs_f64()
}
