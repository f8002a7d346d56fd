//! TLS settings of the outbound links (InfluxDB, MQTT broker, HTTP sink).
//!
//! Why a section of its own: a site's uplink often ends at a private CA (the utility's or the
//! integrator's), and brokers in the field commonly require a client certificate. Each link
//! names its trust anchor and, optionally, its client identity; without `ca_file` the system's
//! certificate store (`/etc/ssl/certs`) is trusted. Certificate verification can never be
//! switched off: a controller that talks to whoever answers is worse than one that does not talk.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) to trust instead of the system store.
    pub ca_file: Option<String>,
    /// PEM client certificate chain, for servers that require one (mutual TLS).
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<String>,
    /// Name to verify the server certificate against when it differs from the URL's host
    /// (e.g. a broker reached by IP address whose certificate names its DNS name).
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Problems serde cannot see; `at` names the section (e.g. `mqtt.tls`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => p.push(format!("{at}.client_cert needs {at}.client_key")),
            (None, Some(_)) => p.push(format!("{at}.client_key needs {at}.client_cert")),
            _ => {}
        }
        for (field, v) in [
            ("ca_file", &self.ca_file),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
            ("server_name", &self.server_name),
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                p.push(format!("{at}.{field} is empty"));
            }
        }
        p
    }
}

/// Problems of an HTTP(S) link's `{at}.url` and `{at}.tls` (InfluxDB, the HTTP sink): the scheme,
/// TLS settings only with `https://`, and the TLS settings themselves.
pub(crate) fn http_link_problems(at: &str, url: &str, tls: Option<&TlsConfig>) -> Vec<String> {
    let mut p = Vec::new();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        p.push(format!(
            "{at}.url {url:?} must start with http:// or https://"
        ));
    }
    if let Some(t) = tls {
        if !url.starts_with("https://") {
            p.push(format!(
                "{at}.tls is set but {at}.url {url:?} is not https://"
            ));
        }
        p.extend(t.problems(&format!("{at}.tls")));
    }
    p
}
