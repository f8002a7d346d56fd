//! Modbus peers the firmware did not write: a pymodbus TCP slave run as a child process.

use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct PymodbusServer {
    pub port: u16,
    _child: Child,
}

impl PymodbusServer {
    /// Starts `tests/peers/pymodbus_server.py` with `spec` (see the script's docstring). A TCP
    /// slave is given its port from [`crate::free_port`] (below the ephemeral range, unique in
    /// this test binary) unless `spec` names one.
    pub async fn start(spec: &serde_json::Value) -> PymodbusServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/pymodbus_server.py");
        let mut spec = spec.clone();
        if let Some(obj) = spec.as_object_mut() {
            if !obj.contains_key("serial") && !obj.contains_key("port") {
                obj.insert("port".into(), crate::free_port().into());
            }
        }
        let mut child = Command::new("python3")
            .arg(script)
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs pymodbus)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("pymodbus server announces its port within 20 s")
            .expect("read stdout")
            .expect("pymodbus server exited early (is pymodbus<4 installed?)");
        if line.trim() == "SERIAL READY" {
            return PymodbusServer {
                port: 0,
                _child: child,
            };
        }
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from pymodbus server: {line:?}"));
        PymodbusServer {
            port,
            _child: child,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().expect("addr")
    }
}
