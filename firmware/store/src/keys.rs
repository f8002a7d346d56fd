//! Every Redis key the firmware uses, in one place.
//!
//! The layout is the contract with every other service and with tools on site (`redis-cli`):
//!
//! | key | type | content |
//! |-----|------|---------|
//! | `comsrv:{ch}:T` / `:S` / `:C` / `:A` | hash | point_id -> value (`1234.000000`; signals `0`/`1`) |
//! | `comsrv:{ch}:T:ts` (and `:S:ts`, ...) | hash | point_id -> epoch ms of the last good read |
//! | `comsrv:{ch}:T:quality` (and `:S:quality`, ...) | hash | point_id -> `stale`, `uncertain` or `bad` for the points whose value is not a good current read (absent = good) |
//! | `comsrv:{ch}:config:telemetry` (signal, control, adjustment) | hash | point_id -> JSON of the point row and its mapping |
//! | `comsrv:{ch}:stats` | hash | `total_reads`, `total_errors`, `connection_errors`, `reconnect_count`, `timeouts`, `exceptions`, `last_poll_ms` |
//! | `comsrv:{ch}:status` | hash | `connected`, `error_count`, `consecutive_errors`, `last_error`, `last_success_at`, `config_error`, ... |
//! | `comsrv:channels` | set | ids of the channels the running comsrv serves |
//! | `comsrv:line:{port}:stats` | hash | per serial line: requests, timeouts, crc_errors, bus_utilisation_pct, slave avg response ms |
//! | `comsrv:{ch}:audit` | list | JSON of each control/adjustment write: who, when, old, new, verified |
//! | `comsrv:commands` | list | write commands from other services (JSON), consumed by comsrv |
//! | `comsrv:command:{request_id}` | string | JSON result of a queued command (1 h) |
//! | `alarmsrv:index:{Status}:{Level}` | zset | alarm ids by status and level (kept by the alarm functions) |
//! | `alarmsrv:events` | stream | every alarm event (appended by the alarm functions) |
//! | `netsrv:cursor:alarms:{sink}` | string | id of the last alarm event a northbound sink delivered |

use voltage_core::PointType;

pub fn values(channel: u32, kind: PointType) -> String {
    format!("comsrv:{channel}:{}", kind.letter())
}

pub fn timestamps(channel: u32, kind: PointType) -> String {
    format!("comsrv:{channel}:{}:ts", kind.letter())
}

/// The points of one type whose value is not a good current read: `stale` (the source is
/// unreachable; the value is the last good one), `uncertain` or `bad` (as the device or plugin
/// said). A point that is not listed is good.
pub fn quality(channel: u32, kind: PointType) -> String {
    format!("comsrv:{channel}:{}:quality", kind.letter())
}

pub fn point_config(channel: u32, kind: PointType) -> String {
    format!("comsrv:{channel}:config:{}", kind.name())
}

pub fn stats(channel: u32) -> String {
    format!("comsrv:{channel}:stats")
}

pub fn status(channel: u32) -> String {
    format!("comsrv:{channel}:status")
}

pub const CHANNELS: &str = "comsrv:channels";

/// Statistics of one serial line (shared by every RTU channel on it), keyed by its port name
/// or device path: `comsrv:line:rs485-1:stats`.
pub fn line_stats(line: &str) -> String {
    format!("comsrv:line:{line}:stats")
}

/// The audit trail of control/adjustment writes of a channel (newest first, capped).
pub fn audit(channel: u32) -> String {
    format!("comsrv:{channel}:audit")
}

/// The queue other services push write commands to (JSON, see `Store::pop_command`).
pub const COMMANDS: &str = "comsrv:commands";

/// The result of one queued command, kept for an hour: `comsrv:command:{request_id}`.
pub fn command_result(request_id: &str) -> String {
    format!("comsrv:command:{request_id}")
}

/// Alarm ids by status and level (a sorted set kept by the `voltage_alarm` functions), e.g.
/// `alarmsrv:index:Active:Critical`.
pub fn alarm_index(status: &str, level: &str) -> String {
    format!("alarmsrv:index:{status}:{level}")
}

/// Every alarm event (a stream appended by the alarm functions; capped at about 10000).
pub const ALARM_EVENTS: &str = "alarmsrv:events";

/// Where a forwarder keeps the id of the last alarm event the far end acknowledged.
pub fn alarm_events_cursor(sink: &str) -> String {
    format!("netsrv:cursor:alarms:{sink}")
}

pub const ALARM_STATUSES: [&str; 3] = ["Active", "Acknowledged", "Resolved"];
pub const ALARM_LEVELS: [&str; 4] = ["Info", "Warning", "Major", "Critical"];

/// All keys that belong to one channel (for removal of a channel from the config).
pub fn channel_keys(channel: u32) -> Vec<String> {
    let mut k = vec![stats(channel), status(channel)];
    for t in PointType::ALL {
        k.push(values(channel, t));
        k.push(timestamps(channel, t));
        k.push(quality(channel, t));
        k.push(point_config(channel, t));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_seed_layout() {
        assert_eq!(values(1001, PointType::Telemetry), "comsrv:1001:T");
        assert_eq!(values(7, PointType::Adjustment), "comsrv:7:A");
        assert_eq!(
            point_config(1001, PointType::Telemetry),
            "comsrv:1001:config:telemetry"
        );
        assert_eq!(stats(1), "comsrv:1:stats");
        assert_eq!(status(1), "comsrv:1:status");
        assert_eq!(timestamps(2, PointType::Signal), "comsrv:2:S:ts");
        assert_eq!(channel_keys(3).len(), 18);
        assert_eq!(quality(4, PointType::Telemetry), "comsrv:4:T:quality");
    }
}
