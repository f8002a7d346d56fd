//! A private `redis-server` for one test binary, on an ephemeral port, that dies with the test
//! process (PR_SET_PDEATHSIG from a thread that lives as long as the process).

use crate::ports::free_port;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    next_db: AtomicU32,
    child: Mutex<Option<Child>>,
}

const DATABASES: u32 = 1024;

fn spawn(port: u16) -> Child {
    // Spawned from a dedicated, never-ending thread: PDEATHSIG fires when the spawning *thread*
    // exits, and test threads come and go.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--databases", &DATABASES.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn();
        tx.send(child).expect("send child");
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("spawn thread")
        .unwrap_or_else(|e| panic!("cannot start redis-server (apt-get install redis-server): {e}"))
}

fn wait_ready(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(c) = redis::Client::open(format!("redis://127.0.0.1:{port}")) {
            if let Ok(mut conn) = c.get_connection() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    /// The binary's server, started on first use.
    pub fn shared() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(RedisServer::dedicated)
    }

    /// A server of its own for a test that stops or restarts Redis; killed when dropped.
    pub fn dedicated() -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(port);
            if wait_ready(port) {
                return RedisServer {
                    port,
                    next_db: AtomicU32::new(0),
                    child: Mutex::new(Some(child)),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    /// Kills the server without restarting it.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().expect("lock").take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A URL to a database no other test of this binary uses.
    pub fn fresh_db_url(&self) -> String {
        let db = self.next_db.fetch_add(1, Ordering::SeqCst);
        assert!(db < DATABASES, "more than {DATABASES} tests in one binary");
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Kills the server (data is lost, as on a restart without persistence) and starts it again
    /// on the same port. Every test of the binary sees the restart.
    pub fn restart(&self) {
        let mut g = self.child.lock().expect("lock");
        if let Some(mut c) = g.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        *g = Some(spawn(self.port));
        assert!(wait_ready(self.port), "redis-server did not come back");
    }
}
