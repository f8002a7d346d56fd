//! Shared harness of the integration suites: an isolated `redis-server` per test binary (each
//! test gets its own database of it), configuration directories in temp dirs, comsrv started
//! in-process on an ephemeral port, a TCP proxy that can cut and restore a link, the pymodbus
//! peer, protocol plugin processes, and polling helpers. Nothing listens on a fixed port, so
//! suites run in parallel.

pub mod daemon;
pub mod influx;
pub mod mqtt;
pub mod nginx;
pub mod peers;
pub mod pki;
pub mod plugin;
pub mod ports;
pub mod proxy;
pub mod redis_server;
pub mod serial;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use voltage_store::Store;

pub use ports::free_port;
pub use proxy::NetworkProxy;
pub use redis_server::RedisServer;
pub use serial::PtyPair;

/// One test's world: its Redis database and its configuration directory.
pub struct TestEnv {
    pub redis_url: String,
    pub dir: tempfile::TempDir,
    client: redis::Client,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        Self::on(RedisServer::shared())
    }

    /// A test environment on a given server (e.g. a dedicated one the test may kill).
    pub fn on(server: &RedisServer) -> TestEnv {
        // Logs of the services under test, shown for failing tests (RUST_LOG=debug for more).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let redis_url = server.fresh_db_url();
        let client = redis::Client::open(redis_url.as_str()).expect("redis url");
        TestEnv {
            redis_url,
            dir: tempfile::tempdir().expect("temp dir"),
            client,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `rel` inside the configuration directory.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write config file");
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    pub async fn hget(&self, key: &str, field: &str) -> Option<String> {
        let mut c = self.redis().await;
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut c)
            .await
            .expect("HGET")
    }

    pub async fn hget_f64(&self, key: &str, field: &str) -> Option<f64> {
        self.hget(key, field).await.map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{key} {field} = {v:?} is not a number"))
        })
    }

    pub async fn hget_i64(&self, key: &str, field: &str) -> i64 {
        self.hget(key, field)
            .await
            .map(|v| v.parse().expect("integer"))
            .unwrap_or(0)
    }

    pub async fn hlen(&self, key: &str) -> i64 {
        let mut c = self.redis().await;
        redis::cmd("HLEN")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("HLEN")
    }

    /// Loads the directory and starts comsrv on an ephemeral port.
    pub async fn start_comsrv(&self) -> comsrv::Running {
        let cfg = voltage_core::config::load_dir(self.path())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let store = Store::connect(&self.redis_url, Duration::from_secs(2))
            .await
            .expect("store");
        let (_tx, shutdown) = comsrv::Shutdown::new(); // the test stops it with Running::stop
        comsrv::start(cfg, store, "127.0.0.1:0".parse().unwrap(), shutdown)
            .await
            .expect("comsrv starts")
    }

    /// Starts alarmsrv on this environment's directory (threshold rules) and database, with
    /// the Redis Functions loaded, on an ephemeral port.
    pub async fn start_alarmsrv(&self) -> alarmsrv::Running {
        let store = Store::connect(&self.redis_url, Duration::from_secs(2))
            .await
            .expect("store");
        store.load_functions().await.expect("functions load");
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx); // the test stops it with Running::stop
        alarmsrv::start(Some(self.path()), store, "127.0.0.1:0".parse().unwrap(), rx)
            .await
            .expect("alarmsrv starts")
    }

    /// Loads the directory, opens its history log and starts hissrv on an ephemeral port.
    pub async fn start_hissrv(&self) -> hissrv::Running {
        let cfg = voltage_core::config::load_dir(self.path())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let store = Store::connect(&self.redis_url, Duration::from_secs(2))
            .await
            .expect("store");
        let wal = hissrv::open_wal(&cfg).await.expect("history log opens");
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx); // the test stops it with Running::stop
        hissrv::start(&cfg, store, wal, "127.0.0.1:0".parse().unwrap(), rx)
            .await
            .expect("hissrv starts")
    }

    /// hissrv and netsrv on one history log, as the daemon runs them.
    pub async fn start_history_and_net(&self) -> (hissrv::Running, netsrv::Running) {
        let cfg = voltage_core::config::load_dir(self.path())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let store = Store::connect(&self.redis_url, Duration::from_secs(2))
            .await
            .expect("store");
        let wal = hissrv::open_wal(&cfg).await.expect("history log opens");
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        let h = hissrv::start(
            &cfg,
            store.clone(),
            wal.clone(),
            "127.0.0.1:0".parse().unwrap(),
            rx.clone(),
        )
        .await
        .expect("hissrv starts");
        let n = netsrv::start(&cfg, wal, Some(store), "127.0.0.1:0".parse().unwrap(), rx)
            .await
            .expect("netsrv starts");
        (h, n)
    }

    /// Waits until `HGET key field` equals `want` (as text), or panics after `timeout` with the
    /// last value seen.
    pub async fn wait_value(&self, key: &str, field: &str, want: &str, timeout: Duration) {
        let mut last = None;
        let ok = wait_until(
            timeout,
            || {
                let k = key.to_string();
                let f = field.to_string();
                async move { self.hget(&k, &f).await }
            },
            |v| {
                last = v.clone();
                v.as_deref() == Some(want)
            },
        )
        .await;
        assert!(
            ok,
            "{key} {field}: wanted {want:?} within {timeout:?}, last saw {last:?}"
        );
    }
}

/// Polls `probe` every 50 ms until `check` accepts its output or `timeout` passes.
pub async fn wait_until<T, F, Fut>(
    timeout: Duration,
    mut probe: F,
    mut check: impl FnMut(&T) -> bool,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let v = probe().await;
        if check(&v) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How much slower this test process runs than native: 5 under qemu-user emulation (the cross
/// runner in `.cargo/config.toml` sets `QEMU_LD_PREFIX`), 1 otherwise. Latency bounds and
/// device deadlines are multiplied by it, so native runs hold the spec's numbers exactly and
/// emulated runs check the same behaviour without failing on emulation speed.
pub fn slow() -> u32 {
    if std::env::var_os("QEMU_LD_PREFIX").is_some() {
        5
    } else {
        1
    }
}

/// A channel entry for comsrv.yaml pointing at `addr` (300 ms device deadline, times
/// [`slow`]).
pub fn tcp_channel(id: u32, addr: SocketAddr, extra: &str) -> String {
    format!(
        "  - id: {id}\n    name: ch{id}\n    protocol: modbus_tcp\n    parameters:\n      host: {}\n      port: {}\n      poll_interval_ms: 100\n      timeout_ms: {}\n      reconnect_initial_ms: 100\n      reconnect_max_ms: 500\n{extra}",
        addr.ip(),
        addr.port(),
        300 * slow()
    )
}

pub const MODBUS_MAPPING_HEADER: &str =
    "point_id,slave_id,function_code,register_address,data_type,byte_order,bit_position\n";

/// Minimal HTTP/1.1 GET: returns status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, "").await
}

/// Path of a workspace binary built next to the test executable (`scripts/test` builds them
/// with `cargo build --workspace --bins` before the suites run).
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// Any HTTP/1.1 request to 127.0.0.1:`port`: returns status code and body.
pub async fn http_request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    http(SocketAddr::from(([127, 0, 0, 1], port)), method, path, body).await
}

/// One HTTP/1.1 request (`Connection: close`): status code and (de-chunked) body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (code, _, body) = http_full(addr, method, path, &[], body).await;
    (code, body)
}

/// One HTTP/1.1 request with extra headers: status code, response head and (de-chunked) body.
pub async fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read response");
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let head = text.split_once("\r\n\r\n").map(|(h, _)| h).unwrap_or("");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (code, head.to_string(), body)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Minimal HTTP/1.1 POST of a JSON body: returns status code and body.
pub async fn http_post(addr: SocketAddr, path: &str, json: &str) -> (u16, String) {
    http(addr, "POST", path, json).await
}

/// Writes a reading the way comsrv does (value + read time) straight into Redis, for history
/// tests that need exact, known samples.
pub async fn put_reading(env: &TestEnv, channel: u32, point: u32, value: f64, ts_ms: u64) {
    let mut c = env.redis().await;
    redis::pipe()
        .atomic()
        .hset(format!("comsrv:{channel}:T"), point, format!("{value:.6}"))
        .hset(format!("comsrv:{channel}:T:ts"), point, ts_ms)
        .query_async::<()>(&mut c)
        .await
        .expect("write reading");
}

/// The number of records hissrv at `addr` has logged (`log.next_seq` of its `/status`).
pub async fn logged(addr: SocketAddr) -> u64 {
    let (_, b) = http_get(addr, "/status").await;
    serde_json::from_str::<serde_json::Value>(&b)
        .ok()
        .and_then(|v| v["log"]["next_seq"].as_u64())
        .unwrap_or(0)
}

/// Writes a reading and waits until hissrv at `addr` has logged it. hissrv samples the live
/// values every interval, so a reading overwritten before the sampler looked is never a record:
/// that is sampling, not loss, and a test that counts records must not race the sampler (on a
/// loaded 2-core machine or under qemu a fixed sleep between readings does).
pub async fn put_logged(
    env: &TestEnv,
    addr: SocketAddr,
    channel: u32,
    point: u32,
    value: f64,
    ts_ms: u64,
) {
    let before = logged(addr).await;
    put_reading(env, channel, point, value, ts_ms).await;
    assert!(
        wait_until(Duration::from_secs(15), || logged(addr), |n| *n > before).await,
        "hissrv at {addr} did not log reading {value} of {channel}/{point} (log at {before})"
    );
}

/// Epoch milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Writes a minimal hissrv configuration for `channel` (a virtual channel in comsrv.yaml so the
/// source is valid) recording telemetry into `influx_url`/`db` (v1), log in `wal_dir`.
pub fn history_config(env: &TestEnv, channel: u32, influx: Option<(&str, &str)>, interval_ms: u64) {
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n  - {{id: {channel}, name: h, protocol: virtual}}\n"),
    );
    let influx = influx
        .map(|(url, db)| format!("influxdb: {{url: \"{url}\", api: v1, database: {db}, batch_size: 500, flush_interval_ms: 200, timeout_ms: 2000}}\n"))
        .unwrap_or_default();
    env.write(
        "hissrv/hissrv.yaml",
        &format!("{influx}sources:\n  - {{channel: {channel}, types: [T], interval_ms: {interval_ms}}}\nwal: {{dir: wal, max_bytes: 8388608, fsync: always}}\n"),
    );
}
