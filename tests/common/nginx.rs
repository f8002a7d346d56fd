//! A real nginx (Debian's, unprivileged) running the shipped `config/nginx/voltage.conf` on a
//! free port, in front of a gateway on another free port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("nginx is not installed (scripts/test installs nginx-light)");
}

impl Nginx {
    /// Starts nginx with the shipped site configuration, its `listen 80` and gateway address
    /// replaced by `port` and `gateway_port`.
    pub fn start(gateway_port: u16) -> Nginx {
        let site_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/nginx/voltage.conf");
        let site = std::fs::read_to_string(&site_path).expect("config/nginx/voltage.conf");
        assert!(
            site.contains("listen 80;") && site.contains("127.0.0.1:6005"),
            "{site}"
        );
        let port = crate::free_port();
        let site = site
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace("127.0.0.1:6005", &format!("127.0.0.1:{gateway_port}"));
        Nginx::with_site(port, &site)
    }

    /// Starts nginx with the `site` configuration (an `http` block's content) listening on `port`.
    pub fn with_site(port: u16, site: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display();
        std::fs::write(dir.path().join("site.conf"), site).unwrap();
        let main = format!(
            "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        // nginx with this prefix, configuration and error log (the config check, then the server).
        let nginx = || {
            let mut c = std::process::Command::new(binary());
            c.arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg(dir.path().join("error.log"));
            c
        };
        let test = nginx().arg("-t").output().expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = nginx()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nginx did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers too (SIGKILL would orphan them).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
