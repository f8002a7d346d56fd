//! Protocol plugins as child processes: the example plugin (`httpjson-plugin`) with its
//! simulator (`httpjson-sim`), the Python plugin of `docs/plugins.md`, the misbehaving double
//! `tests/peers/bad_plugin.py`. Each announces `listening on ADDR` on stdout; nothing binds a
//! fixed port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running child process and the address it announced.
pub struct Announced {
    pub child: Child,
    /// `http://127.0.0.1:PORT` or `unix:///path`.
    pub addr: String,
}

impl Announced {
    /// Starts `cmd` (killed when dropped) and waits up to 30 s for its `listening on` line.
    pub async fn start(mut cmd: Command) -> Announced {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} announces its address within 30 s"))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("{what} exited before listening"));
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{what}: unexpected first line {line:?}"))
            .trim()
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Announced { child, addr }
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }
}

/// The repository's `proto/` directory.
pub fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto")
}

/// `httpjson-sim` with `args` (`--set k=v`, `--writable k=v`).
pub async fn httpjson_sim(args: &[&str]) -> Announced {
    let mut c = Command::new(crate::workspace_bin("httpjson-sim"));
    c.args(args);
    Announced::start(c).await
}

/// `httpjson-plugin` for the device at `device`, on `listen` (`--listen ADDR` or `--unix PATH`).
pub async fn httpjson_plugin(device: &str, listen: &[&str]) -> Announced {
    let mut c = Command::new(crate::workspace_bin("httpjson-plugin"));
    c.arg("--device").arg(device).args(listen);
    c.env("RUST_LOG", "warn");
    Announced::start(c).await
}

/// A Python plugin script run with `args`.
pub async fn python_plugin(script: &Path, args: &[&str]) -> Announced {
    let mut c = Command::new("python3");
    c.arg(script).args(args);
    Announced::start(c).await
}

/// A `protocol: grpc` channel entry for comsrv.yaml.
/// A deadline of 1 s per call: the plugin and its device run emulated under qemu-user in the
/// cross suites, where a write and its read-back took longer than 300 ms on a loaded machine.
pub fn grpc_channel(id: u32, endpoint: &str, extra: &str) -> String {
    format!(
        "  - id: {id}\n    name: plugin{id}\n    protocol: grpc\n    parameters:\n      endpoint: {endpoint}\n      poll_interval_ms: 100\n      timeout_ms: 1000\n      reconnect_initial_ms: 100\n      reconnect_max_ms: 500\n{extra}"
    )
}
