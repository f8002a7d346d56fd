//! Channel entries of `comsrv.yaml` and their protocol parameters.
//!
//! `parameters` is one flat map whose keys depend on the protocol. It is parsed strictly (an
//! unknown key is an error at its line), then [`ChannelConfig::validate`] checks that each key
//! belongs to the channel's protocol, so a `baud_rate` on a TCP channel is reported instead of
//! being ignored.

use crate::error::ConfigError;
use crate::plan::PlanLimits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    ModbusTcp,
    ModbusRtu,
    Virtual,
    /// A protocol plugin: a separate process serving the points over gRPC.
    Grpc,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::ModbusTcp => "modbus_tcp",
            Protocol::ModbusRtu => "modbus_rtu",
            Protocol::Virtual => "virtual",
            Protocol::Grpc => "grpc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub id: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub protocol: Protocol,
    #[serde(default = "super::yes")]
    pub enabled: bool,
    #[serde(default)]
    pub parameters: ChannelParams,
}

/// Per-slave overrides of the read planner (`parameters.slaves.{id}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveOverrides {
    /// This slave's request deadline (a slow meter behind a gateway), default the channel's.
    pub timeout_ms: Option<u64>,
    /// This slave's retries, default the channel's.
    pub retries: Option<u32>,
    pub max_registers_per_request: Option<u16>,
    pub max_bits_per_request: Option<u16>,
    pub max_gap: Option<u16>,
    #[serde(default)]
    pub no_cross: Vec<u16>,
}

/// Every parameter any protocol accepts. Defaults are applied by the accessors below.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelParams {
    // Modbus TCP
    pub host: Option<String>,
    pub port: Option<u16>,
    // Modbus RTU
    pub device: Option<String>,
    pub baud_rate: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<super::Parity>,
    pub stop_bits: Option<u8>,
    /// RS-485 direction control; overrides the board's setting for this port.
    pub rs485: Option<super::Rs485Config>,
    // gRPC plugin
    /// Where the plugin listens: `http://127.0.0.1:50051` or `unix:///run/voltage/meter.sock`.
    pub endpoint: Option<String>,
    // polling (all protocols)
    /// Time between the starts of two polls (default 1000 ms).
    pub poll_interval_ms: Option<u64>,
    // Modbus (both transports) and gRPC plugins
    /// Deadline of one request (default 1000 ms).
    pub timeout_ms: Option<u64>,
    // Modbus only
    /// Extra attempts of a failed request within one poll (default 1).
    pub retries: Option<u32>,
    /// Largest register read (default and maximum 125).
    pub max_registers_per_request: Option<u16>,
    /// Largest bit read (default and maximum 2000).
    pub max_bits_per_request: Option<u16>,
    /// Unused registers/bits a merged read may span between two points (default 8).
    pub max_gap: Option<u16>,
    /// Addresses no merged read may span across (a read may start at one, never run through it).
    pub no_cross: Option<Vec<u16>>,
    /// Per-slave planner overrides, keyed by slave id.
    pub slaves: Option<BTreeMap<u8, SlaveOverrides>>,
    /// First reconnect delay (default 500 ms), doubled per failure up to `reconnect_max_ms`.
    pub reconnect_initial_ms: Option<u64>,
    /// Longest reconnect delay (default 30000 ms).
    pub reconnect_max_ms: Option<u64>,
    /// Consecutive failed polls after which a slave is backed off (default 3).
    pub slave_backoff_after: Option<u32>,
    /// Longest time a failing slave is skipped (default 30000 ms).
    pub slave_backoff_max_ms: Option<u64>,
}

const TCP_ONLY: &[&str] = &["host", "port"];
const RTU_ONLY: &[&str] = &[
    "device",
    "baud_rate",
    "data_bits",
    "parity",
    "stop_bits",
    "rs485",
];
const GRPC_ONLY: &[&str] = &["endpoint"];
/// Modbus and gRPC channels (a request with a deadline over a connection that can be lost).
const CONNECTED: &[&str] = &["timeout_ms", "reconnect_initial_ms", "reconnect_max_ms"];
const MODBUS_ONLY: &[&str] = &[
    "retries",
    "max_registers_per_request",
    "max_bits_per_request",
    "max_gap",
    "no_cross",
    "slaves",
    "slave_backoff_after",
    "slave_backoff_max_ms",
];

impl ChannelParams {
    /// Names of the parameters that are set.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! k {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        k!(
            host,
            port,
            device,
            baud_rate,
            data_bits,
            parity,
            stop_bits,
            endpoint,
            poll_interval_ms,
            timeout_ms,
            retries,
            max_registers_per_request,
            max_bits_per_request,
            max_gap,
            no_cross,
            slaves,
            reconnect_initial_ms,
            reconnect_max_ms,
            slave_backoff_after,
            slave_backoff_max_ms
        );
        v
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.unwrap_or(1000))
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(1000))
    }
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(1)
    }
    fn slave(&self, slave: u8) -> Option<&SlaveOverrides> {
        self.slaves.as_ref().and_then(|s| s.get(&slave))
    }

    /// The deadline of a request to `slave`.
    pub fn timeout_for(&self, slave: u8) -> Duration {
        self.slave(slave)
            .and_then(|o| o.timeout_ms)
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.timeout())
    }

    /// The retries of a request to `slave`.
    pub fn retries_for(&self, slave: u8) -> u32 {
        self.slave(slave)
            .and_then(|o| o.retries)
            .unwrap_or_else(|| self.retries())
    }

    pub fn reconnect_initial(&self) -> Duration {
        Duration::from_millis(self.reconnect_initial_ms.unwrap_or(500))
    }
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms.unwrap_or(30_000))
    }
    pub fn slave_backoff_after(&self) -> u32 {
        self.slave_backoff_after.unwrap_or(3)
    }
    pub fn slave_backoff_max(&self) -> Duration {
        Duration::from_millis(self.slave_backoff_max_ms.unwrap_or(30_000))
    }

    /// The planner limits for one slave: channel defaults with the slave's overrides.
    pub fn plan_limits(&self, slave: u8) -> PlanLimits {
        let o = self
            .slaves
            .as_ref()
            .and_then(|s| s.get(&slave))
            .cloned()
            .unwrap_or_default();
        let mut no_cross = self.no_cross.clone().unwrap_or_default();
        no_cross.extend(o.no_cross);
        no_cross.sort_unstable();
        no_cross.dedup();
        PlanLimits {
            max_registers: o
                .max_registers_per_request
                .or(self.max_registers_per_request)
                .unwrap_or(125),
            max_bits: o
                .max_bits_per_request
                .or(self.max_bits_per_request)
                .unwrap_or(2000),
            max_gap: o.max_gap.or(self.max_gap).unwrap_or(8),
            no_cross,
        }
    }
}

impl ChannelConfig {
    /// Checks what serde cannot: parameters that belong to another protocol, required
    /// parameters, ranges. `line` is where the channel starts in `file`.
    pub fn validate(&self, file: &str, line: u64, errors: &mut Vec<ConfigError>) {
        let p = &self.parameters;
        let mut err = |m: String| {
            errors.push(ConfigError::at(
                file,
                line,
                1,
                format!("channel {} ({}): {m}", self.id, self.protocol.as_str()),
            ))
        };
        let foreign: &[&[&str]] = match self.protocol {
            Protocol::ModbusTcp => &[RTU_ONLY, GRPC_ONLY],
            Protocol::ModbusRtu => &[TCP_ONLY, GRPC_ONLY],
            Protocol::Virtual => &[TCP_ONLY, RTU_ONLY, MODBUS_ONLY, CONNECTED, GRPC_ONLY],
            Protocol::Grpc => &[TCP_ONLY, RTU_ONLY, MODBUS_ONLY],
        };
        for key in p.set_keys() {
            if foreign.iter().any(|set| set.contains(&key)) {
                err(format!("parameters.{key} does not apply to this protocol"));
            }
        }
        match self.protocol {
            Protocol::ModbusTcp => {
                if p.host.as_deref().unwrap_or("").is_empty() {
                    err("parameters.host is required".into());
                }
                if p.port == Some(0) {
                    err("parameters.port must be 1-65535".into());
                }
            }
            Protocol::ModbusRtu => {
                if p.device.as_deref().unwrap_or("").is_empty() {
                    err("parameters.device is required (a path such as /dev/ttyS1, or a port name of the board)".into());
                }
                if let Some(b) = p.baud_rate.filter(|b| !(300..=4_000_000).contains(b)) {
                    err(format!("parameters.baud_rate {b} is outside 300-4000000"));
                }
                if let Some(d) = p.data_bits.filter(|d| !(7..=8).contains(d)) {
                    err(format!("parameters.data_bits {d} must be 7 or 8"));
                }
                if let Some(s) = p.stop_bits.filter(|s| !(1..=2).contains(s)) {
                    err(format!("parameters.stop_bits {s} must be 1 or 2"));
                }
            }
            Protocol::Virtual => {}
            Protocol::Grpc => match p.endpoint.as_deref().map(parse_endpoint) {
                None => err(
                    "parameters.endpoint is required (http://host:port or unix:///path/to.sock)"
                        .into(),
                ),
                Some(Err(m)) => err(format!("parameters.endpoint: {m}")),
                Some(Ok(_)) => {}
            },
        }
        if p.poll_interval_ms == Some(0) {
            err("parameters.poll_interval_ms must be at least 1".into());
        }
        if p.timeout_ms == Some(0) {
            err("parameters.timeout_ms must be at least 1".into());
        }
        let mut limits = vec![(None, p.max_registers_per_request, p.max_bits_per_request)];
        for (s, o) in p.slaves.iter().flatten() {
            limits.push((
                Some(*s),
                o.max_registers_per_request,
                o.max_bits_per_request,
            ));
        }
        for (slave, regs, bits) in limits {
            let at = slave
                .map(|s| format!("parameters.slaves.{s}."))
                .unwrap_or("parameters.".into());
            if let Some(r) = regs.filter(|r| !(1..=125).contains(r)) {
                err(format!(
                    "{at}max_registers_per_request {r} is outside 1-125"
                ));
            }
            if let Some(b) = bits.filter(|b| !(1..=2000).contains(b)) {
                err(format!("{at}max_bits_per_request {b} is outside 1-2000"));
            }
        }
        if let (Some(a), Some(b)) = (p.reconnect_initial_ms, p.reconnect_max_ms) {
            if a > b {
                err(format!(
                    "parameters.reconnect_initial_ms {a} exceeds reconnect_max_ms {b}"
                ));
            }
        }
    }

    /// Where the plugin of a `grpc` channel listens (validated at load).
    pub fn plugin_endpoint(&self) -> Option<PluginEndpoint> {
        self.parameters
            .endpoint
            .as_deref()
            .and_then(|e| parse_endpoint(e).ok())
    }

    /// `host:port` of a Modbus TCP channel (port 502 by default).
    pub fn tcp_address(&self) -> String {
        let host = self.parameters.host.as_deref().unwrap_or("127.0.0.1");
        let port = self.parameters.port.unwrap_or(502);
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

/// Where a protocol plugin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginEndpoint {
    /// `http://host:port` (HTTP/2 without TLS: plugins run on the controller itself).
    Http(String),
    /// `unix:///path/to.sock`: the socket's path.
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for PluginEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginEndpoint::Http(u) => f.write_str(u),
            PluginEndpoint::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Parses `parameters.endpoint`: `http://host:port` or `unix:///absolute/path`.
pub fn parse_endpoint(s: &str) -> Result<PluginEndpoint, String> {
    if let Some(path) = s.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(format!(
                "{s:?}: a unix socket needs an absolute path (unix:///run/voltage/plugin.sock)"
            ));
        }
        return Ok(PluginEndpoint::Unix(path.into()));
    }
    if let Some(rest) = s.strip_prefix("http://") {
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let port_ok = authority
            .rsplit_once(':')
            .and_then(|(h, p)| (!h.is_empty()).then_some(p))
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|p| p != 0);
        if authority.contains('/') || !port_ok {
            return Err(format!(
                "{s:?}: expected http://host:port (no path), e.g. http://127.0.0.1:50051"
            ));
        }
        return Ok(PluginEndpoint::Http(format!("http://{authority}")));
    }
    if s.starts_with("https://") {
        return Err(format!(
            "{s:?}: TLS to plugins is not supported (plugins run on the controller: use http:// on loopback, or unix://)"
        ));
    }
    Err(format!(
        "{s:?}: expected http://host:port or unix:///path/to.sock"
    ))
}
