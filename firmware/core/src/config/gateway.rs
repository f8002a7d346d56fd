//! `gateway/gateway.yaml`: the one HTTP door of the controller (optional; every key has a
//! default, so a controller without the file gets a gateway with authentication on).
//!
//! Tokens are not here: they live in `gateway/tokens.yaml` (hashes only), managed by
//! `voltage token create|revoke` and picked up by a running gateway without a restart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Services the gateway can route to (`/{service}/...`).
pub const ROUTED_SERVICES: &[&str] = &[
    "comsrv", "modsrv", "alarmsrv", "rulesrv", "hissrv", "netsrv",
];

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub auth: AuthConfig,
    /// Largest request body accepted, in bytes (larger: 413). Default 64 KiB.
    #[serde(default = "body_limit")]
    pub body_limit_bytes: u64,
    /// Deadline for a routed request, in ms (exceeded: 504). Default 10 s, enough for a
    /// control write with its read-back on a slow RS-485 line.
    #[serde(default = "request_timeout")]
    pub request_timeout_ms: u64,
    /// Base URLs of services that run as processes of their own (`comsrv: http://10.0.0.2:6000`).
    /// A service running in the gateway's own daemon is called in-process; an enabled service
    /// that runs elsewhere and has no entry here is reached at its `services.*` bind and port.
    #[serde(default)]
    pub upstreams: BTreeMap<String, String>,
    /// Live data (`GET /events`): how often subscribed channels are checked for changes, ms.
    #[serde(default = "events_interval")]
    pub events_interval_ms: u64,
    /// Requests per client IP address (429 beyond it).
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

/// A token bucket per client IP: `burst` requests at once, refilled at `per_second`. The
/// default is far above what an HMI or a scraper sends and stops a flood.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "per_second")]
    pub per_second: f64,
    #[serde(default = "burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            per_second: per_second(),
            burst: burst(),
        }
    }
}

fn per_second() -> f64 {
    1000.0
}

fn burst() -> u32 {
    2000
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a bearer token for everything but the open routes below (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `GET /health` and `/{service}/health` without a token (default true: probes and nginx).
    #[serde(default = "yes")]
    pub open_health: bool,
    /// `GET /metrics` without a token (default true: scrapers on the site network).
    #[serde(default = "yes")]
    pub open_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            open_health: true,
            open_metrics: true,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            auth: AuthConfig::default(),
            body_limit_bytes: body_limit(),
            request_timeout_ms: request_timeout(),
            upstreams: BTreeMap::new(),
            events_interval_ms: events_interval(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Problems serde cannot see, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, url) in &self.upstreams {
            if !ROUTED_SERVICES.contains(&name.as_str()) {
                p.push(format!(
                    "upstreams.{name}: unknown service; services are {}",
                    ROUTED_SERVICES.join(", ")
                ));
            }
            if !url.starts_with("http://") {
                p.push(format!(
                    "upstreams.{name}: {url:?} must be an http:// URL (services speak plain HTTP on the controller's network; put TLS in nginx)"
                ));
            }
        }
        if self.body_limit_bytes == 0 {
            p.push("body_limit_bytes: must be greater than 0".into());
        }
        if self.request_timeout_ms == 0 {
            p.push("request_timeout_ms: must be greater than 0".into());
        }
        if !(self.rate_limit.per_second.is_finite() && self.rate_limit.per_second > 0.0) {
            p.push("rate_limit.per_second: must be a number greater than 0".into());
        }
        if self.rate_limit.burst == 0 {
            p.push("rate_limit.burst: must be at least 1".into());
        }
        if self.events_interval_ms < 50 {
            p.push("events_interval_ms: must be at least 50".into());
        }
        p
    }
}

fn yes() -> bool {
    true
}
fn body_limit() -> u64 {
    64 * 1024
}
fn request_timeout() -> u64 {
    10_000
}
fn events_interval() -> u64 {
    500
}
