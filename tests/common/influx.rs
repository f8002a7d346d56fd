//! A real InfluxDB 1.x (Debian's `influxdb` package) for tests: `influxd` in the foreground with
//! a temp config, data directories and free ports; stopped (and restartable) by the test.

use crate::ports::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Influxd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// With `auth-enabled`: the admin user the harness created, used by [`Influxd::query`].
    admin: Option<(String, String)>,
}

impl Influxd {
    pub async fn start() -> Influxd {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut i = Influxd {
            port: free_port(),
            dir,
            child: None,
            admin: None,
        };
        i.restart().await;
        i
    }

    /// With `[http] auth-enabled = true` and an admin user `user`/`password` (created the way an
    /// installer does: the first `CREATE USER ... WITH ALL PRIVILEGES` is allowed without auth).
    pub async fn start_with_auth(user: &str, password: &str) -> Influxd {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut i = Influxd {
            port: free_port(),
            dir,
            child: None,
            admin: Some((user.into(), password.into())),
        };
        i.restart().await;
        let created = crate::http_request(
            i.port,
            "POST",
            &format!(
                "/query?q={}",
                urlencode(&format!(
                    "CREATE USER {user} WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
                ))
            ),
            "",
        )
        .await;
        assert_eq!(created.0, 200, "creating the admin user: {created:?}");
        i
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and data directory.
    pub async fn restart(&mut self) {
        let d = self.dir.path();
        let conf = d.join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n[monitor]\n  store-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{}\"\n  log-enabled = false\n  auth-enabled = {}\n",
                free_port(),
                self.port,
                self.admin.is_some(),
                d = d.display()
            ),
        )
        .expect("write influxdb.conf");
        let child = Command::new("influxd")
            .arg("-config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("influxd runs (scripts/test installs the influxdb package)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest_free_ping(self.port);
        while !client() {
            assert!(Instant::now() < deadline, "influxd did not answer /ping");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs an InfluxQL statement; returns the JSON answer.
    pub async fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let body = crate::http_request(
            self.port,
            "POST",
            &format!(
                "/query?db={db}&epoch=ns&q={}{}",
                urlencode(q),
                self.credentials()
            ),
            "",
        )
        .await;
        serde_json::from_str(&body.1).unwrap_or_else(|e| panic!("influx answer {body:?}: {e}"))
    }

    fn credentials(&self) -> String {
        self.admin
            .as_ref()
            .map(|(u, p)| format!("&u={}&p={}", urlencode(u), urlencode(p)))
            .unwrap_or_default()
    }

    /// `[(time_ns, value)]` of the `value` column of a query's first series.
    pub async fn values(&self, db: &str, q: &str) -> Vec<(i64, f64)> {
        let v = self.query(db, q).await;
        v["results"][0]["series"][0]["values"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| Some((r.get(0)?.as_i64()?, r.get(1)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn reqwest_free_ping(port: u16) -> impl Fn() -> bool {
    move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 204")
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
