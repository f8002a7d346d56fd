//! A throw-away PKI for the TLS tests: a site CA, a server certificate for `localhost`,
//! `127.0.0.1` and `broker.site.example`, a client certificate, and a second, unrelated CA (what
//! a controller provisioned for another site would trust). Written as PEM files to a temp dir.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::PathBuf;

pub struct Pki {
    dir: tempfile::TempDir,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let site = ca("voltage test site CA");
        w("ca.pem", site.pem());
        w("other-ca.pem", ca("another site CA").pem());

        let leaf = |names: Vec<String>, eku: ExtendedKeyUsagePurpose, file: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, file);
            p.extended_key_usages = vec![eku];
            let cert = p.signed_by(&key, &site).unwrap();
            w(&format!("{file}.pem"), cert.pem());
            w(&format!("{file}.key"), key.serialize_pem());
        };
        leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(
            vec!["broker.site.example".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "named-server",
        );
        leaf(
            vec!["controller-1".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );
        Pki { dir }
    }

    /// The path of one of the files: `ca.pem`, `other-ca.pem`, `server.pem`/`.key`,
    /// `named-server.pem`/`.key`, `client.pem`/`.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        assert!(p.exists(), "no {name} in the test PKI");
        p
    }

    pub fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}
