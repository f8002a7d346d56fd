//! Text rendering of the read plan for `voltage plan`: what goes on the wire per poll, and for
//! serial lines the estimated bus time of one cycle. The numbers come from comsrv's plan
//! (`comsrv::channel_plan`), the same the web console shows.

use std::fmt::Write;
use voltage_core::config::{Config, Protocol};

const HEADER: &str = "  slave  fc    addresses      count  points     req B    resp B";

pub fn render(cfg: &Config) -> String {
    let mut o = String::new();
    for ch in &cfg.channels {
        let c = &ch.config;
        let p = comsrv::channel_plan(ch);
        let link = match c.protocol {
            Protocol::Virtual => {
                let _ = writeln!(
                    o,
                    "channel {} {:?} (virtual): {} points, no Modbus requests\n",
                    c.id, c.name, p.points
                );
                continue;
            }
            Protocol::Grpc => {
                let _ = writeln!(
                    o,
                    "channel {} {:?} (grpc plugin at {}): {} points in one BatchRead per poll, every {} ms, deadline {} ms\n",
                    c.id, c.name, p.link, p.points, p.poll_interval_ms, p.timeout_ms
                );
                continue;
            }
            Protocol::ModbusTcp | Protocol::ModbusRtu => format!("{} {}", p.protocol, p.link),
        };
        let _ = writeln!(
            o,
            "channel {} {:?} ({link}){}: poll every {} ms, timeout {} ms",
            c.id,
            c.name,
            if c.enabled { "" } else { " [disabled]" },
            p.poll_interval_ms,
            p.timeout_ms
        );
        let _ = writeln!(o, "{HEADER}");
        for r in &p.requests {
            let _ = writeln!(
                o,
                "  {:>5}  {:<4}  {:<13}  {:>5}  {:>6}  {:>8}  {:>8}",
                r.slave,
                r.function,
                format!("{}..={}", r.start, r.end),
                r.count,
                r.points,
                r.request_bytes,
                r.response_bytes
            );
        }
        let _ = writeln!(
            o,
            "  total: {} requests for {} points per poll ({} without merging), {} B sent + {} B received = {:.0} B/s",
            p.requests.len(),
            p.points,
            p.points,
            p.request_bytes,
            p.response_bytes,
            p.bytes_per_second
        );
        if let Some(bus) = p.estimated_bus_ms {
            let _ = writeln!(
                o,
                "  estimated bus time per poll: {bus:.1} ms (frames + t3.5 gaps, device turnaround not included)"
            );
        }
        o.push('\n');
    }
    for l in comsrv::line_plans(&cfg.channels) {
        let _ = writeln!(
            o,
            "line {} ({}): channels {:?}, estimated bus utilisation {:.1} %{}",
            l.device,
            l.settings,
            l.channels,
            l.estimated_utilisation_pct,
            if l.estimated_utilisation_pct > 80.0 {
                "  WARNING: the line cannot keep up with the poll intervals"
            } else {
                ""
            }
        );
    }
    o
}
