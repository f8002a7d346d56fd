//! `netsrv/netsrv.yaml`: northbound forwarding of the history log (MQTT and/or HTTP POST).

use super::tls::http_link_problems;
use super::TlsConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetsrvConfig {
    /// Identifies this controller in topics and payloads.
    pub device_id: String,
    pub mqtt: Option<MqttConfig>,
    pub http: Option<HttpSinkConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub host: String,
    /// Default 1883, or 8883 with `tls`.
    pub port: Option<u16>,
    /// Default `voltage-{device_id}`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topics are `{prefix}/{device_id}/telemetry`, `.../alarm` (the seed's topic) and `.../status`.
    #[serde(default = "prefix")]
    pub prefix: String,
    #[serde(default = "keep_alive")]
    pub keep_alive_s: u64,
    /// Records per message (default 100).
    #[serde(default = "batch")]
    pub batch_size: usize,
    /// Also forward every alarm event to `{prefix}/{device_id}/alarm` (default true).
    #[serde(default = "yes")]
    pub alarms: bool,
    /// Connect over TLS (MQTTS) with this trust anchor and optional client certificate.
    pub tls: Option<TlsConfig>,
}

impl MqttConfig {
    /// The broker port: the configured one, else 8883 with TLS and 1883 without.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls.is_some() { 8883 } else { 1883 })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Receives `POST` of a JSON batch; any 2xx acknowledges it.
    pub url: String,
    #[serde(default = "batch")]
    pub batch_size: usize,
    #[serde(default = "timeout")]
    pub timeout_ms: u64,
    /// Trust anchor and client identity for an `https://` url (default: the system store).
    pub tls: Option<TlsConfig>,
}

fn yes() -> bool {
    true
}
fn prefix() -> String {
    "voltage".into()
}
fn keep_alive() -> u64 {
    30
}
fn batch() -> usize {
    100
}
fn timeout() -> u64 {
    10_000
}

impl NetsrvConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.device_id.is_empty() || self.device_id.contains(['/', '+', '#']) {
            p.push(format!(
                "device_id {:?} must be non-empty and contain no / + #",
                self.device_id
            ));
        }
        if let Some(m) = &self.mqtt {
            if m.batch_size == 0 || m.batch_size > 10_000 {
                p.push("mqtt.batch_size must be 1-10000".into());
            }
            if let Some(t) = &m.tls {
                p.extend(t.problems("mqtt.tls"));
            }
        }
        if let Some(h) = &self.http {
            p.extend(http_link_problems("http", &h.url, h.tls.as_ref()));
        }
        p
    }
}
