//! `voltage.yaml`: what the daemon connects to (Redis), which services it runs and where they
//! listen, where its data lives, and which board file describes the hardware.

use serde::{Deserialize, Serialize};

/// Where data that must survive updates lives when neither `voltage.yaml` nor the board says.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/voltage";

/// `voltage.yaml`: what the daemon connects to and which services it runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoltageConfig {
    /// The schema the file is written in (absent: 1); see [`schema`].
    pub schema_version: Option<u32>,
    /// Absent: the board's `defaults.redis_url`, else `redis://127.0.0.1:6379`.
    pub redis: Option<RedisConfig>,
    pub services: Services,
    /// Board file that maps logical serial port names (`rs485-1`) to devices, relative to the
    /// configuration directory, e.g. `../board-configs/imx8mm-edge.toml`. `--board` wins.
    pub board: Option<String>,
    /// Data that must survive updates (the history log): relative data paths are relative to
    /// it; itself relative to the configuration directory. Absent: the board's
    /// `defaults.data_dir`, else [`DEFAULT_DATA_DIR`].
    pub data_dir: Option<String>,
}

impl VoltageConfig {
    /// The Redis URL of the file (or the default); `REDIS_URL` is applied by the daemon.
    pub fn redis_url(&self) -> String {
        self.redis.clone().unwrap_or_default().url
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `redis+unix:///path`. The `REDIS_URL` environment variable wins.
    pub url: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
        }
    }
}

/// One entry per service; a missing entry takes the service's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Services {
    pub comsrv: ServiceConfig,
    pub modsrv: ServiceConfig,
    pub alarmsrv: ServiceConfig,
    pub rulesrv: ServiceConfig,
    pub hissrv: ServiceConfig,
    pub gateway: ServiceConfig,
    pub netsrv: ServiceConfig,
}

impl Default for Services {
    fn default() -> Self {
        let s = |port| ServiceConfig {
            enabled: true,
            bind: "127.0.0.1".into(),
            port,
        };
        Services {
            comsrv: s(6000),
            modsrv: s(6001),
            alarmsrv: s(6002),
            rulesrv: s(6003),
            hissrv: s(6004),
            gateway: s(6005),
            netsrv: s(6006),
        }
    }
}

impl Services {
    /// `(name, config)` for every service, in port order.
    pub fn all(&self) -> [(&'static str, &ServiceConfig); 7] {
        [
            ("comsrv", &self.comsrv),
            ("modsrv", &self.modsrv),
            ("alarmsrv", &self.alarmsrv),
            ("rulesrv", &self.rulesrv),
            ("hissrv", &self.hissrv),
            ("gateway", &self.gateway),
            ("netsrv", &self.netsrv),
        ]
    }
}

/// Where a service listens. A partial entry keeps the other fields' defaults except `port`,
/// which must be given when `bind` is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default = "super::yes")]
    pub enabled: bool,
    #[serde(default = "localhost")]
    pub bind: String,
    pub port: u16,
}

fn localhost() -> String {
    "127.0.0.1".into()
}
