//! Text rendering of the read plan for `voltage plan`: what goes on the wire per poll.

use std::fmt::Write;
use voltage_core::config::{Config, Protocol};
use voltage_core::plan::TCP_REQUEST_BYTES;

pub fn render(cfg: &Config) -> String {
    let mut o = String::new();
    for ch in &cfg.channels {
        let c = &ch.config;
        if c.protocol != Protocol::ModbusTcp {
            let _ = writeln!(
                o,
                "channel {} {:?} ({}): {} points, no Modbus requests\n",
                c.id,
                c.name,
                c.protocol.as_str(),
                ch.points.len()
            );
            continue;
        }
        let plan = comsrv::read_plan(ch);
        let interval = c.parameters.poll_interval().as_secs_f64();
        let _ = writeln!(
            o,
            "channel {} {:?} (modbus_tcp {}){}: poll every {} ms, timeout {} ms",
            c.id,
            c.name,
            c.tcp_address(),
            if c.enabled { "" } else { " [disabled]" },
            c.parameters.poll_interval().as_millis(),
            c.parameters.timeout().as_millis()
        );
        let _ = writeln!(
            o,
            "  {:>5}  {:<4}  {:<13}  {:>5}  {:>6}  {:>8}  {:>8}",
            "slave", "fc", "addresses", "count", "points", "req B", "resp B"
        );
        let (mut req, mut resp, mut points) = (0usize, 0usize, 0usize);
        for b in &plan {
            let _ = writeln!(
                o,
                "  {:>5}  {:<4}  {:<13}  {:>5}  {:>6}  {:>8}  {:>8}",
                b.slave,
                b.function.to_string(),
                b.range(),
                b.count,
                b.points.len(),
                TCP_REQUEST_BYTES,
                b.tcp_response_bytes()
            );
            req += TCP_REQUEST_BYTES;
            resp += b.tcp_response_bytes();
            points += b.points.len();
        }
        let _ = writeln!(
            o,
            "  total: {} requests for {} points per poll ({} without merging), {} B sent + {} B received = {:.0} B/s\n",
            plan.len(),
            points,
            points,
            req,
            resp,
            (req + resp) as f64 / interval.max(0.001)
        );
    }
    o
}
