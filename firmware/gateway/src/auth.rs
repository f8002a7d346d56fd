//! Who may do what: bearer tokens with a role, and the policy that says which role a request
//! needs. Both are pure (no I/O) so the whole matrix is unit-tested; [`TokenFile`] adds the file
//! and its reload.
//!
//! Roles are ordered: a viewer reads; an operator also acknowledges alarms, writes control and
//! adjustment points, raises manual alarms, shelves thresholds, runs model actions and evaluates
//! rules; an admin also changes configuration (models, rules). Only SHA-256 hashes of tokens
//! are stored, so a leaked `tokens.yaml` gives nobody access.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use voltage_core::config::AuthConfig;
use warp::http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Open,
    Role(Role),
}

/// The role a request needs, from its method and path segments (`["comsrv", "channels",
/// "1001", "control"]`). Reads need a viewer; the operator's actions are listed; every other
/// change is an admin's.
pub fn required(method: &Method, segments: &[&str], cfg: &AuthConfig) -> Need {
    if !cfg.enabled {
        return Need::Open;
    }
    let read = method == Method::GET || method == Method::HEAD;
    match segments {
        ["health"] | [_, "health"] if read && cfg.open_health => return Need::Open,
        ["metrics"] if read && cfg.open_metrics => return Need::Open,
        ["openapi.json"] if read => return Need::Open,
        // The console's files: the page signs in with a token and asks the API with it.
        [] | ["console", _] if read => return Need::Open,
        _ if read => return Need::Role(Role::Viewer),
        _ => {}
    }
    let operator = method == Method::POST
        && matches!(
            segments,
            ["comsrv", "channels", _, "control" | "adjustment"]
                | ["alarmsrv", "alarms"]
                | ["alarmsrv", "alarms", _, _]
                | ["alarmsrv", "thresholds", _, "shelve"]
                | ["rulesrv", "rules", _, "evaluate"]
                | ["modsrv", "models", _, "actions", _]
        );
    Need::Role(if operator {
        Role::Operator
    } else {
        Role::Admin
    })
}

/// One stored token: its name, role and the SHA-256 of the secret (hex).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub sha256: String,
    #[serde(default)]
    pub created: String,
}

/// `gateway/tokens.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokensDoc {
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// The hashes, indexed for lookup.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<String, (String, Role)>,
}

impl Tokens {
    pub fn from_doc(doc: &TokensDoc) -> Tokens {
        Tokens {
            by_hash: doc
                .tokens
                .iter()
                .map(|t| (t.sha256.to_ascii_lowercase(), (t.name.clone(), t.role)))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The name and role of a presented secret.
    pub fn lookup(&self, secret: &str) -> Option<(&str, Role)> {
        self.by_hash
            .get(&hash(secret))
            .map(|(n, r)| (n.as_str(), *r))
    }
}

pub fn hash(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The outcome of checking a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the caller's token name (None on open routes).
    Allow(Option<String>),
    /// 401: no or unknown token.
    Unauthenticated(&'static str),
    /// 403: a valid token whose role is too low.
    Forbidden {
        name: String,
        role: Role,
        need: Role,
    },
}

pub fn decide(need: Need, authorization: Option<&str>, tokens: &Tokens) -> Decision {
    let Need::Role(need) = need else {
        return Decision::Allow(None);
    };
    let Some(h) = authorization else {
        return Decision::Unauthenticated("a bearer token is required (Authorization: Bearer ...)");
    };
    let Some(secret) = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
    else {
        return Decision::Unauthenticated("the Authorization header must be `Bearer <token>`");
    };
    match tokens.lookup(secret.trim()) {
        None => Decision::Unauthenticated("unknown or revoked token"),
        Some((name, role)) if role >= need => Decision::Allow(Some(name.to_string())),
        Some((name, role)) => Decision::Forbidden {
            name: name.to_string(),
            role,
            need,
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |source| TokenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a tokens file; a missing file is an empty one.
pub fn read_doc(path: &Path) -> Result<TokensDoc, TokenError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TokensDoc::default()),
        Err(e) => return Err(io(path)(e)),
    };
    let file = path.display().to_string();
    voltage_core::config::parse_yaml::<TokensDoc>(&file, &text)
        .map_err(|e| TokenError::Parse(e.to_string()))
}

/// Writes a tokens file atomically (a reader sees the old or the new file, never half).
pub fn write_doc(path: &Path, doc: &TokensDoc) -> Result<(), TokenError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let body = serde_yaml_ng::to_string(doc).map_err(|e| TokenError::Parse(e.to_string()))?;
    let text = format!(
        "# Bearer tokens of the gateway: SHA-256 hashes only, the secrets are shown once by\n\
         # `voltage token create`. Managed by `voltage token create|revoke|list`.\n{body}"
    );
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A new secret: `vt_` and 64 hex digits of the kernel's randomness.
pub fn new_secret() -> Result<String, TokenError> {
    use std::io::Read;
    let mut b = [0u8; 32];
    let p = Path::new("/dev/urandom");
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io(p))?;
    Ok(format!(
        "vt_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// Adds a token to the file and returns its secret (the only time it is seen).
pub fn create(
    path: &Path,
    name: &str,
    role: Role,
    now_rfc3339: &str,
) -> Result<String, TokenError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(TokenError::Invalid(format!(
            "token name {name:?}: use letters, digits and - _ . @"
        )));
    }
    let mut doc = read_doc(path)?;
    if doc.tokens.iter().any(|t| t.name == name) {
        return Err(TokenError::Invalid(format!(
            "a token named {name:?} exists already in {}; revoke it first",
            path.display()
        )));
    }
    let secret = new_secret()?;
    doc.tokens.push(TokenEntry {
        name: name.to_string(),
        role,
        sha256: hash(&secret),
        created: now_rfc3339.to_string(),
    });
    write_doc(path, &doc)?;
    Ok(secret)
}

/// Removes a token by name.
pub fn revoke(path: &Path, name: &str) -> Result<(), TokenError> {
    let mut doc = read_doc(path)?;
    let before = doc.tokens.len();
    doc.tokens.retain(|t| t.name != name);
    if doc.tokens.len() == before {
        return Err(TokenError::Invalid(format!(
            "no token named {name:?} in {}",
            path.display()
        )));
    }
    write_doc(path, &doc)
}

/// The tokens file of a running gateway, re-read when it changes on disk (checked every
/// second), so `voltage token create|revoke` takes effect without a restart. A file that
/// fails to parse keeps the previous tokens in force, and says so in the log.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    tokens: Arc<RwLock<Tokens>>,
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl TokenFile {
    pub fn open(path: PathBuf) -> Result<TokenFile, TokenError> {
        let tokens = Tokens::from_doc(&read_doc(&path)?);
        Ok(TokenFile {
            path,
            tokens: Arc::new(RwLock::new(tokens)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn snapshot(&self) -> Tokens {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn decide(&self, need: Need, authorization: Option<&str>) -> Decision {
        let t = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        decide(need, authorization, &t)
    }

    /// The name and role of the token in an `Authorization` header.
    pub fn whoami(&self, authorization: Option<&str>) -> Option<(String, Role)> {
        let secret = authorization?
            .strip_prefix("Bearer ")
            .or_else(|| authorization?.strip_prefix("bearer "))?;
        let t = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        t.lookup(secret.trim()).map(|(n, r)| (n.to_string(), r))
    }

    /// Follows the file until `stop` resolves.
    pub async fn follow(self, stop: impl std::future::Future<Output = ()>) {
        let mut last = stamp(&self.path);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = &mut stop => return,
            }
            let now = stamp(&self.path);
            if now == last {
                continue;
            }
            last = now;
            match read_doc(&self.path) {
                Ok(doc) => {
                    let t = Tokens::from_doc(&doc);
                    tracing::info!(file = %self.path.display(), tokens = t.len(), "tokens reloaded");
                    *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = t;
                }
                Err(e) => {
                    tracing::error!(error = %e, "tokens file not reloaded; the previous tokens stay in force")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig::default()
    }

    fn need(m: Method, path: &str) -> Need {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        required(&m, &segs, &cfg())
    }

    #[test]
    fn reads_need_a_viewer_and_health_metrics_and_the_api_description_are_open() {
        assert_eq!(
            need(Method::GET, "/comsrv/channels"),
            Need::Role(Role::Viewer)
        );
        assert_eq!(
            need(Method::GET, "/alarmsrv/alarms"),
            Need::Role(Role::Viewer)
        );
        assert_eq!(need(Method::GET, "/health"), Need::Open);
        assert_eq!(need(Method::GET, "/hissrv/health"), Need::Open);
        assert_eq!(need(Method::GET, "/metrics"), Need::Open);
        assert_eq!(need(Method::GET, "/openapi.json"), Need::Open);
        assert_eq!(required(&Method::GET, &[], &cfg()), Need::Open);
        assert_eq!(need(Method::GET, "/console/app.js"), Need::Open);
        assert_eq!(need(Method::GET, "/auth/whoami"), Need::Role(Role::Viewer));
        assert_eq!(
            need(Method::POST, "/console/app.js"),
            Need::Role(Role::Admin)
        );
        let closed = AuthConfig {
            open_health: false,
            open_metrics: false,
            ..cfg()
        };
        assert_eq!(
            required(&Method::GET, &["health"], &closed),
            Need::Role(Role::Viewer)
        );
        assert_eq!(
            required(&Method::GET, &["metrics"], &closed),
            Need::Role(Role::Viewer)
        );
        // A POST to a health path is not a health check.
        assert_eq!(
            need(Method::POST, "/comsrv/health"),
            Need::Role(Role::Admin)
        );
    }

    #[test]
    fn operator_actions_are_the_listed_ones_and_every_other_change_is_an_admins() {
        for p in [
            "/comsrv/channels/1001/control",
            "/comsrv/channels/7/adjustment",
            "/alarmsrv/alarms",
            "/alarmsrv/alarms/3/acknowledge",
            "/alarmsrv/alarms/3/resolve",
            "/alarmsrv/thresholds/t1/shelve",
            "/rulesrv/rules/r1/evaluate",
            "/modsrv/models/m1/actions/start",
        ] {
            assert_eq!(need(Method::POST, p), Need::Role(Role::Operator), "{p}");
        }
        for (m, p) in [
            (Method::POST, "/rulesrv/rules"),
            (Method::DELETE, "/rulesrv/rules/r1"),
            (Method::POST, "/modsrv/models"),
            (Method::PUT, "/modsrv/models/m1"),
            (Method::DELETE, "/modsrv/models/m1"),
            (Method::DELETE, "/comsrv/channels/1001/control"),
            (Method::POST, "/comsrv/channels/1001/other"),
        ] {
            assert_eq!(need(m.clone(), p), Need::Role(Role::Admin), "{m} {p}");
        }
    }

    #[test]
    fn with_auth_disabled_everything_is_open() {
        let off = AuthConfig {
            enabled: false,
            ..cfg()
        };
        assert_eq!(
            required(&Method::DELETE, &["rulesrv", "rules", "x"], &off),
            Need::Open
        );
    }

    fn tokens() -> (Tokens, String, String) {
        let (op, ad) = ("vt_operator_secret", "vt_admin_secret");
        let doc = TokensDoc {
            tokens: vec![
                TokenEntry {
                    name: "hmi".into(),
                    role: Role::Operator,
                    sha256: hash(op),
                    created: String::new(),
                },
                TokenEntry {
                    name: "root".into(),
                    role: Role::Admin,
                    sha256: hash(ad).to_uppercase(),
                    created: String::new(),
                },
            ],
        };
        (Tokens::from_doc(&doc), op.into(), ad.into())
    }

    #[test]
    fn a_token_grants_its_role_and_every_role_below_it() {
        let (t, op, ad) = tokens();
        let bearer = |s: &str| format!("Bearer {s}");
        assert_eq!(
            decide(Need::Role(Role::Viewer), Some(&bearer(&op)), &t),
            Decision::Allow(Some("hmi".into()))
        );
        assert_eq!(
            decide(Need::Role(Role::Operator), Some(&bearer(&op)), &t),
            Decision::Allow(Some("hmi".into()))
        );
        assert_eq!(
            decide(Need::Role(Role::Admin), Some(&bearer(&op)), &t),
            Decision::Forbidden {
                name: "hmi".into(),
                role: Role::Operator,
                need: Role::Admin
            }
        );
        assert_eq!(
            decide(Need::Role(Role::Admin), Some(&bearer(&ad)), &t),
            Decision::Allow(Some("root".into()))
        );
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
        let (t, op, _) = tokens();
        assert!(matches!(
            decide(Need::Role(Role::Viewer), None, &t),
            Decision::Unauthenticated(_)
        ));
        assert!(matches!(
            decide(Need::Role(Role::Viewer), Some(&format!("Basic {op}")), &t),
            Decision::Unauthenticated(m) if m.contains("Bearer")
        ));
        assert!(matches!(
            decide(Need::Role(Role::Viewer), Some("Bearer vt_nope"), &t),
            Decision::Unauthenticated("unknown or revoked token")
        ));
        assert_eq!(decide(Need::Open, None, &t), Decision::Allow(None));
    }

    #[test]
    fn create_stores_only_the_hash_and_revoke_removes_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway/tokens.yaml");
        let secret = create(&path, "hmi", Role::Operator, "2026-01-01T00:00:00Z").unwrap();
        assert!(secret.starts_with("vt_") && secret.len() == 67, "{secret}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret), "the secret itself is never stored");
        assert!(text.contains(&hash(&secret)));
        let t = Tokens::from_doc(&read_doc(&path).unwrap());
        assert_eq!(t.lookup(&secret), Some(("hmi", Role::Operator)));
        let again = create(&path, "hmi", Role::Admin, "x").unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        let other = create(&path, "cloud", Role::Viewer, "x").unwrap();
        assert_ne!(other, secret);
        revoke(&path, "hmi").unwrap();
        let t = Tokens::from_doc(&read_doc(&path).unwrap());
        assert_eq!(t.lookup(&secret), None);
        assert_eq!(t.len(), 1);
        assert!(revoke(&path, "hmi")
            .unwrap_err()
            .to_string()
            .contains("no token"));
        assert!(create(&path, "bad name", Role::Viewer, "x").is_err());
    }

    #[test]
    fn a_broken_tokens_file_is_reported_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(
            &path,
            "tokens:\n  - name: a\n    role: superuser\n    sha256: x\n",
        )
        .unwrap();
        let e = read_doc(&path).unwrap_err().to_string();
        assert!(e.contains("tokens.yaml:3:"), "{e}");
        assert!(e.contains("superuser"), "{e}");
    }
}
