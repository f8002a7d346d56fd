//! `netsrv/netsrv.yaml`: northbound forwarding of the history log (MQTT and/or HTTP POST).

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
    #[serde(default = "mqtt_port")]
    pub port: u16,
    /// Default `voltage-{device_id}`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topics are `{prefix}/{device_id}/telemetry`, `.../alarms` and `.../status`.
    #[serde(default = "prefix")]
    pub prefix: String,
    #[serde(default = "keep_alive")]
    pub keep_alive_s: u64,
    /// Records per message (default 100).
    #[serde(default = "batch")]
    pub batch_size: usize,
    /// Also forward every alarm event to `{prefix}/{device_id}/alarms` (default true).
    #[serde(default = "yes")]
    pub alarms: bool,
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
}

fn yes() -> bool {
    true
}
fn mqtt_port() -> u16 {
    1883
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
        }
        if let Some(h) = &self.http {
            if !h.url.starts_with("http://") {
                p.push(format!(
                    "http.url {:?} must start with http:// (TLS is not in this build)",
                    h.url
                ));
            }
        }
        p
    }
}
