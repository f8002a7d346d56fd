//! Serial lines for tests: a socat pty pair (two connected pseudo-terminals), killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PtyPair {
    pub a: PathBuf,
    pub b: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl PtyPair {
    pub fn new() -> PtyPair {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(a.exists() && b.exists()) {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty pair"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PtyPair {
            a,
            b,
            _dir: dir,
            child,
        }
    }

    pub fn a(&self) -> String {
        self.a.display().to_string()
    }

    pub fn b(&self) -> String {
        self.b.display().to_string()
    }
}

impl Default for PtyPair {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
