//! The `voltage` daemon as a child process with every service on free ports, for the suites
//! that test the product as it ships: the gateway in front, services in-process behind it.

use crate::{http_full, workspace_bin, TestEnv};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const SERVICES: [&str; 7] = [
    "comsrv", "modsrv", "alarmsrv", "rulesrv", "hissrv", "gateway", "netsrv",
];

use crate::ports::free_port;

/// `voltage.yaml` text with every service on a free port; returns it and the ports.
pub fn voltage_yaml(extra: &str) -> (String, BTreeMap<String, u16>) {
    let ports: BTreeMap<String, u16> = SERVICES
        .iter()
        .map(|s| (s.to_string(), free_port()))
        .collect();
    let mut y = String::from("services:\n");
    for (s, p) in &ports {
        y.push_str(&format!("  {s}: {{port: {p}}}\n"));
    }
    y.push_str(extra);
    (y, ports)
}

pub struct Daemon {
    pub child: tokio::process::Child,
    pub ports: BTreeMap<String, u16>,
}

impl Daemon {
    /// Starts `voltage run --config DIR [args]` on the environment (its `voltage.yaml` written
    /// here with free ports) and waits until the gateway answers `/health` with 200.
    pub async fn start(env: &TestEnv, args: &[&str]) -> Daemon {
        let (yaml, ports) = voltage_yaml("");
        env.write("voltage.yaml", &yaml);
        let d = Self::spawn(env, ports, args);
        d.wait_health(200, Duration::from_secs(20)).await;
        d
    }

    /// Spawns with the given ports (the caller wrote voltage.yaml), without waiting.
    pub fn spawn(env: &TestEnv, ports: BTreeMap<String, u16>, args: &[&str]) -> Daemon {
        let child = tokio::process::Command::new(workspace_bin("voltage"))
            .arg("run")
            .args(args)
            .arg("--config")
            .arg(env.path())
            .env("REDIS_URL", &env.redis_url)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .expect("spawn voltage");
        Daemon { child, ports }
    }

    pub fn port(&self, service: &str) -> u16 {
        self.ports[service]
    }

    pub fn gateway(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port("gateway")))
    }

    /// Waits until the gateway's `/health` answers `code`; panics with the last answer.
    pub async fn wait_health(&self, code: u16, within: Duration) -> String {
        let t = Instant::now();
        let mut last = String::new();
        while t.elapsed() < within {
            if tokio::net::TcpStream::connect(self.gateway()).await.is_ok() {
                let (c, _, body) = http_full(self.gateway(), "GET", "/health", &[], "").await;
                if c == code {
                    return body;
                }
                last = format!("{c} {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gateway /health did not answer {code} within {within:?}; last: {last}");
    }

    /// A request through the gateway with an optional bearer token: (status, body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let (c, _, b) = http_full(self.gateway(), method, path, &headers, body).await;
        (c, b)
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("pid") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("voltage exits within 10 s of SIGTERM")
            .expect("wait")
    }
}

/// `voltage token create --config DIR --role ROLE --name NAME`: the printed token.
pub fn create_token(env: &TestEnv, role: &str, name: &str) -> String {
    let out = std::process::Command::new(workspace_bin("voltage"))
        .args([
            "token", "create", "--role", role, "--name", name, "--config",
        ])
        .arg(env.path())
        .output()
        .expect("voltage token create");
    assert!(
        out.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
