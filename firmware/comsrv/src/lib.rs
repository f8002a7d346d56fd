//! comsrv: reads field devices and writes their points to Redis.
//!
//! One tokio task per channel polls its devices (Modbus TCP/RTU, protocol plugins over gRPC,
//! virtual) on the channel's interval
//! and hands each poll to the store as one atomic batch. A supervisor owns the set of channel
//! tasks: it starts them from the loaded configuration, and on a configuration edit (file watch)
//! restarts only the channels whose configuration changed; a broken edit keeps the last good
//! channels running and reports the error. A small HTTP server answers `/health`, the channels
//! with their points and read plans, and the serial lines (see `http.rs`).
//!
//! Lifecycle: [`start`] returns a [`Running`] handle; [`Running::stop`] (or dropping the shutdown
//! sender in the daemon on SIGTERM) stops every task, waiting for in-flight polls to end.

mod commands;
mod driver;
mod grpc;
mod http;
pub use http::{parse_write_body, WriteBody};
mod modbus;
mod plan;
/// The Modbus link and its replies, for the fuzz checks (firmware/fuzzing).
pub use modbus::line::Priority;
pub use modbus::link::{CallError, Link, Op, Reply};
pub use modbus::read_plan;
pub use plan::{channel_plan, line_name, line_plans, ChannelPlan, LinePlan, PlannedRequest};
mod poll;
mod supervisor;
mod virt;
mod watch;
mod write;
pub use write::{WriteOutcome, WriteStatus};

use std::net::SocketAddr;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use voltage_core::config::Config;
use voltage_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ComsrvError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch {path}: {message}")]
    Watch { path: String, message: String },
}

/// A cloneable "stop now" signal shared by every task of the service.
#[derive(Clone)]
pub struct Shutdown(tokio_watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (tokio_watch::Sender<bool>, Shutdown) {
        let (tx, rx) = tokio_watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// The underlying watch receiver, for services that take a plain `watch::Receiver<bool>`.
    pub fn receiver(&self) -> tokio_watch::Receiver<bool> {
        self.0.clone()
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested. If the sender is dropped without requesting
    /// shutdown, this never resolves (nobody can ask any more).
    pub async fn wait(&mut self) {
        if self.0.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A running comsrv.
pub struct Running {
    local_addr: SocketAddr,
    stop: tokio_watch::Sender<bool>,
    task: JoinHandle<()>,
    handler: voltage_http::Handler,
}

impl Running {
    /// The address the HTTP server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// comsrv's routes, callable in-process (the gateway in the same daemon).
    pub fn handler(&self) -> voltage_http::Handler {
        self.handler.clone()
    }

    /// Stops every channel and the HTTP server, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the service ends on its own (after an external shutdown).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Starts comsrv with a loaded configuration. `addr` is where `/health` is served; `shutdown`
/// is an external stop signal (the daemon's SIGTERM) in addition to [`Running::stop`].
pub async fn start(
    config: Config,
    store: Store,
    addr: SocketAddr,
    mut shutdown: Shutdown,
) -> Result<Running, ComsrvError> {
    let (stop_tx, stop) = Shutdown::new();
    let sup = supervisor::Supervisor::new(store.clone(), stop.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ComsrvError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ComsrvError::Bind { addr, source })?;
    let watcher = if config.file_watch {
        Some(watch::ConfigWatcher::new(&config.dir)?)
    } else {
        None
    };
    let stop_on_external = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.wait().await;
        let _ = stop_on_external.send(true);
    });
    let router = sup.router();
    let commands = tokio::spawn(commands::run(store.clone(), router.clone(), stop.clone()));
    let (handler, http) = http::serve(
        listener,
        store,
        sup.status_view(),
        router,
        local_addr.port(),
        stop.clone(),
    );
    let task = tokio::spawn(async move {
        let http = tokio::spawn(http);
        sup.run(config, watcher).await;
        let _ = http.await;
        let _ = commands.await;
        tracing::info!("comsrv stopped");
    });
    Ok(Running {
        local_addr,
        stop: stop_tx,
        task,
        handler,
    })
}
