//! Client TLS for the outbound links (InfluxDB, the MQTT broker, the HTTP sink): one builder, so
//! every link verifies servers the same way and reports a bad file the same way.
//!
//! Why rustls on ring: no OpenSSL to cross-build or to keep patched on the device, and ring
//! builds with the plain Debian cross compilers for every target (aws-lc-rs, rustls' default,
//! needs cmake and a C toolchain per target). Trust is the `ca_file` when one is named (a site's
//! private CA: only it is trusted), else the system store; verification cannot be turned off.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use voltage_core::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{field} {path}: {reason}")]
    File {
        field: &'static str,
        path: String,
        reason: String,
    },
    #[error("no trusted CA certificates: the system store is empty and no ca_file is set")]
    NoRoots,
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("server_name {name:?}: {reason}")]
    Name { name: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

fn certs(field: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        field,
        path: path.to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn roots(tls: &TlsConfig) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &tls.ca_file {
        for c in certs("ca_file", path)? {
            store.add(c).map_err(|e| TlsError::File {
                field: "ca_file",
                path: path.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        return Ok(store);
    }
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "a certificate of the system store could not be read");
    }
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::NoRoots);
    }
    Ok(store)
}

/// The full WebPKI verification, against `name` instead of the host the link dialled (a broker
/// reached by IP address whose certificate names its DNS name). Only the name is replaced.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) from a link's settings;
/// `None` settings mean the system store and no client certificate.
pub fn client_config(tls: Option<&TlsConfig>) -> Result<Arc<ClientConfig>, TlsError> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = roots(tls)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.server_name {
        None => builder.with_root_certificates(roots),
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| TlsError::Name {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Client(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }))
        }
    };
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certs("client_cert", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                field: "client_key",
                path: key.clone(),
                reason: format!("no usable PEM private key: {e}"),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsError::File {
                    field: "client_key",
                    path: key.clone(),
                    reason: format!("does not fit client_cert {cert}: {e}"),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// An HTTP client with `timeout` per request; for an `https://` url it verifies the server with
/// [`client_config`] of `tls`.
pub fn http_client(
    url: &str,
    timeout: std::time::Duration,
    tls: Option<&TlsConfig>,
) -> Result<reqwest::Client, TlsError> {
    let mut b = reqwest::Client::builder().timeout(timeout);
    if url.starts_with("https://") {
        b = b.use_preconfigured_tls(Arc::unwrap_or_clone(client_config(tls)?));
    }
    b.build().map_err(|e| TlsError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_http_client_builds_without_tls_settings() {
        let c = http_client(
            "http://127.0.0.1:8086",
            std::time::Duration::from_secs(1),
            None,
        );
        assert!(c.is_ok(), "{:?}", c.err());
    }

    fn cfg(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsConfig {
        TlsConfig {
            ca_file: ca.map(String::from),
            client_cert: cert.map(String::from),
            client_key: key.map(String::from),
            server_name: None,
        }
    }

    #[test]
    fn a_missing_ca_file_is_named_with_its_field_and_path() {
        let e = client_config(Some(&cfg(Some("/nonexistent/ca.pem"), None, None))).unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("ca_file /nonexistent/ca.pem:"), "{m}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ca.pem");
        std::fs::write(&p, "this is not PEM\n").unwrap();
        let e = client_config(Some(&cfg(Some(p.to_str().unwrap()), None, None))).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn a_garbled_certificate_is_refused_as_a_ca() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ca.pem");
        std::fs::write(
            &p,
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = client_config(Some(&cfg(Some(p.to_str().unwrap()), None, None))).unwrap_err();
        assert!(e.to_string().contains("not a usable CA certificate"), "{e}");
    }
}
