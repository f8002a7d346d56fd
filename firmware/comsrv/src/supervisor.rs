//! The set of running channel tasks, and applying a (re)loaded configuration to it.
//!
//! Only channels whose configuration changed are restarted on reload; the others keep polling
//! without a gap. A channel that leaves the configuration (or is disabled) is stopped and its
//! keys are removed, so no reader mistakes its frozen values for live ones. A reload that fails
//! validation changes nothing but the reported `config_error`.

use crate::modbus::line::LineHandle;
use crate::modbus::link::Link;
use crate::plan::{channel_plan, line_plans, ChannelPlan, LinePlan};
use crate::watch::ConfigWatcher;
use crate::write::{WriteOutcome, WriteRequest, WriteStatus};
use crate::{grpc, modbus, virt, Shutdown};
use std::collections::BTreeMap;
use std::sync::Weak;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use voltage_core::config::{self, Channel, Config, Protocol};
use voltage_store::Store;

/// What `/channels` shows, kept in memory so the HTTP server does not need Redis for it, each
/// channel's point table (name, unit, limits) for `/channels/{id}`, and the configuration the
/// channel runs with, for its read plan and the serial lines (`/channels/{id}/plan`, `/lines`).
#[derive(Clone, Default)]
pub struct StatusView {
    status: Arc<Mutex<BTreeMap<u32, serde_json::Value>>>,
    tables: Arc<Mutex<BTreeMap<u32, serde_json::Value>>>,
    configs: Arc<Mutex<BTreeMap<u32, Channel>>>,
}

impl StatusView {
    pub fn update(&self, id: u32, connected: bool, last_error: Option<&str>) {
        let mut m = self.status.lock().expect("status view lock");
        let e = m
            .entry(id)
            .or_insert_with(|| serde_json::json!({ "id": id }));
        e["connected"] = connected.into();
        if let Some(err) = last_error {
            e["last_error"] = err.into();
        }
    }

    fn register(&self, ch: &Channel) {
        let mut m = self.status.lock().expect("status view lock");
        m.insert(
            ch.id(),
            serde_json::json!({ "id": ch.id(), "name": ch.config.name, "protocol": ch.config.protocol.as_str(),
                "points": ch.points.len(), "connected": false }),
        );
        let mut defs = serde_json::Map::new();
        for kind in voltage_core::PointType::ALL {
            let rows: Vec<serde_json::Value> = ch
                .points
                .iter()
                .filter(|p| p.kind == kind)
                .filter_map(|p| serde_json::to_value(&p.def).ok())
                .collect();
            defs.insert(kind.letter().to_string(), rows.into());
        }
        self.tables
            .lock()
            .expect("status view lock")
            .insert(ch.id(), defs.into());
        self.configs
            .lock()
            .expect("status view lock")
            .insert(ch.id(), ch.clone());
    }

    fn remove(&self, id: u32) {
        self.status.lock().expect("status view lock").remove(&id);
        self.tables.lock().expect("status view lock").remove(&id);
        self.configs.lock().expect("status view lock").remove(&id);
    }

    pub fn snapshot(&self) -> Vec<serde_json::Value> {
        self.status
            .lock()
            .expect("status view lock")
            .values()
            .cloned()
            .collect()
    }

    /// One channel's entry of `/channels` with its point table under `point_table`.
    pub fn channel(&self, id: u32) -> Option<serde_json::Value> {
        let mut v = self
            .status
            .lock()
            .expect("status view lock")
            .get(&id)?
            .clone();
        v["point_table"] = self
            .tables
            .lock()
            .expect("status view lock")
            .get(&id)
            .cloned()
            .unwrap_or_default();
        Some(v)
    }

    /// The read plan of a running channel.
    pub fn plan(&self, id: u32) -> Option<ChannelPlan> {
        self.configs
            .lock()
            .expect("status view lock")
            .get(&id)
            .map(channel_plan)
    }

    /// The serial lines of the running channels.
    pub fn lines(&self) -> Vec<LinePlan> {
        line_plans(self.configs.lock().expect("status view lock").values())
    }
}

/// Routes write requests (from HTTP and the Redis command queue) to the channel tasks.
#[derive(Clone, Default)]
pub struct WriteRouter(Arc<Mutex<BTreeMap<u32, mpsc::Sender<WriteRequest>>>>);

impl WriteRouter {
    /// Sends `req` to its channel, or answers it at once when the channel cannot take writes.
    pub async fn route(&self, channel: u32, req: WriteRequest) {
        let tx = self.0.lock().expect("router lock").get(&channel).cloned();
        match tx {
            Some(tx) => {
                if let Err(mpsc::error::SendError(req)) = tx.send(req).await {
                    let o = WriteOutcome::rejected(
                        channel,
                        req.kind,
                        req.point_id,
                        req.value,
                        &req.requested_by,
                        WriteStatus::NotFound,
                        format!("channel {channel} is restarting"),
                    );
                    let _ = req.reply.send(o);
                }
            }
            None => {
                let o = WriteOutcome::rejected(
                    channel,
                    req.kind,
                    req.point_id,
                    req.value,
                    &req.requested_by,
                    WriteStatus::NotFound,
                    format!("no running channel {channel} that takes writes (Modbus or plugin)"),
                );
                let _ = req.reply.send(o);
            }
        }
    }
}

struct RunningChannel {
    channel: Channel,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub struct Supervisor {
    store: Store,
    stop: Shutdown,
    view: StatusView,
    running: BTreeMap<u32, RunningChannel>,
    config_error: Arc<Mutex<Option<String>>>,
    router: WriteRouter,
    lines: BTreeMap<String, Weak<LineHandle>>,
}

impl Supervisor {
    pub fn new(store: Store, stop: Shutdown) -> Self {
        Supervisor {
            store,
            stop,
            view: StatusView::default(),
            running: BTreeMap::new(),
            config_error: Arc::default(),
            router: WriteRouter::default(),
            lines: BTreeMap::new(),
        }
    }

    pub fn router(&self) -> WriteRouter {
        self.router.clone()
    }

    /// The shared line of `ch`'s serial device, started on first use.
    fn line_for(&mut self, ch: &Channel) -> Option<Arc<LineHandle>> {
        let s = ch.serial.clone()?;
        if let Some(l) = self.lines.get(&s.device).and_then(Weak::upgrade) {
            if l.settings == s {
                return Some(l);
            }
        }
        let l = Arc::new(LineHandle::start(s.clone(), self.store.clone()));
        self.lines.insert(s.device, Arc::downgrade(&l));
        Some(l)
    }

    pub fn status_view(&self) -> (StatusView, Arc<Mutex<Option<String>>>) {
        (self.view.clone(), self.config_error.clone())
    }

    pub async fn run(mut self, config: Config, mut watcher: Option<ConfigWatcher>) {
        let (dir, options) = (config.dir.clone(), config.options.clone());
        self.apply(config).await;
        let mut stop = self.stop.clone();
        let mut run_id = self.store.server_run_id().await.ok();
        let mut redis_check = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = stop.wait() => break,
                _ = redis_check.tick() => self.republish_after_redis_restart(&mut run_id).await,
                _ = async { match watcher.as_mut() { Some(w) => w.changed().await, None => std::future::pending().await } } => {
                    self.reload(&dir, &options).await;
                }
            }
        }
        // Signal every channel first, then wait: channels stop in parallel, so shutdown takes
        // one poll's time, not one per channel.
        let running = std::mem::take(&mut self.running);
        for ch in running.values() {
            let _ = ch.stop.send(true);
        }
        for (_, ch) in running {
            let _ = ch.task.await;
        }
    }

    /// A Redis that restarted without persistence has lost the channels' configuration hashes:
    /// publish them again (values come back with the next poll).
    async fn republish_after_redis_restart(&mut self, known: &mut Option<String>) {
        let Ok(now) = self.store.server_run_id().await else {
            return;
        };
        if known.as_deref() == Some(now.as_str()) {
            return;
        }
        if known.is_some() {
            tracing::warn!("redis restarted: publishing channel configuration again");
            let err = self
                .config_error
                .lock()
                .expect("lock")
                .clone()
                .unwrap_or_default();
            for ch in self.running.values() {
                if let Err(e) = self.store.publish_channel(&ch.channel, &err).await {
                    tracing::warn!(channel = ch.channel.id(), error = %e, "cannot republish channel");
                    return; // try again at the next check
                }
            }
        }
        *known = Some(now);
    }

    async fn reload(&mut self, dir: &std::path::Path, options: &config::LoadOptions) {
        match config::load_dir_with(dir, options) {
            Ok(cfg) => {
                tracing::info!(
                    channels = cfg.channels.len(),
                    "configuration changed: applying"
                );
                *self.config_error.lock().expect("lock") = None;
                self.apply(cfg).await;
            }
            Err(errors) => {
                let msg = errors.to_string();
                tracing::error!(errors = %msg, "configuration edit rejected; the last good configuration keeps running");
                *self.config_error.lock().expect("lock") = Some(msg.clone());
                for id in self.running.keys() {
                    if let Err(e) = self.store.set_config_error(*id, &msg).await {
                        tracing::warn!(channel = id, error = %e, "cannot record config error in redis");
                    }
                }
            }
        }
    }

    async fn apply(&mut self, config: Config) {
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let wanted: BTreeMap<u32, Channel> = config
            .channels
            .into_iter()
            .filter(|c| c.config.enabled)
            .map(|c| (c.id(), c))
            .collect();
        let ids: Vec<u32> = self.running.keys().copied().collect();
        for id in ids {
            let keep = wanted
                .get(&id)
                .is_some_and(|c| *c == self.running[&id].channel);
            if keep {
                // Unchanged, but a previous broken edit may have left its error: clear it.
                let _ = self.store.set_config_error(id, "").await;
                continue;
            }
            let old = self.running.remove(&id).expect("listed");
            self.router.0.lock().expect("router lock").remove(&id);
            let _ = old.stop.send(true);
            let _ = old.task.await;
            if !wanted.contains_key(&id) {
                tracing::info!(channel = id, "channel removed from the configuration");
                self.view.remove(id);
                if let Err(e) = self.store.remove_channel(id).await {
                    tracing::warn!(channel = id, error = %e, "cannot remove channel keys");
                }
            } else {
                tracing::info!(channel = id, "channel configuration changed: restarting it");
            }
        }
        // Channels registered by an earlier run that are gone now.
        if let Ok(registered) = self.store.registered_channels().await {
            for id in registered.into_iter().filter(|id| !wanted.contains_key(id)) {
                let _ = self.store.remove_channel(id).await;
            }
        }
        for (id, ch) in wanted {
            if self.running.contains_key(&id) {
                continue;
            }
            self.view.register(&ch);
            let (tx, rx) = watch::channel(false);
            let link = match ch.config.protocol {
                Protocol::ModbusTcp => Some(Link::Tcp {
                    addr: ch.config.tcp_address(),
                    ctx: None,
                }),
                Protocol::ModbusRtu => self.line_for(&ch).map(|line| Link::Rtu { line }),
                Protocol::Virtual | Protocol::Grpc => None,
            };
            let writes = || {
                let (wtx, wrx) = mpsc::channel(16);
                self.router.0.lock().expect("router lock").insert(id, wtx);
                wrx
            };
            let kind = match (link, ch.config.protocol) {
                (Some(link), _) => Kind::Modbus(link, writes()),
                (None, Protocol::Grpc) => Kind::Grpc(writes()),
                (None, _) => Kind::Virtual,
            };
            let task = tokio::spawn(channel_task(
                ch.clone(),
                kind,
                self.store.clone(),
                self.view.clone(),
                Shutdown(rx),
            ));
            self.running.insert(
                id,
                RunningChannel {
                    channel: ch,
                    stop: tx,
                    task,
                },
            );
        }
    }
}

/// What a channel task runs, with the write queue of the protocols that take writes.
enum Kind {
    Modbus(Link, mpsc::Receiver<WriteRequest>),
    Grpc(mpsc::Receiver<WriteRequest>),
    Virtual,
}

/// Publishes the channel's configuration (retrying while Redis is away), then runs its loop.
async fn channel_task(ch: Channel, kind: Kind, store: Store, view: StatusView, mut stop: Shutdown) {
    let mut delay = Duration::from_millis(200);
    loop {
        match store.publish_channel(&ch, "").await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(channel = ch.id(), error = %e, "cannot publish channel config to redis; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    match kind {
        Kind::Modbus(link, writes) => modbus::run(ch, link, store, view, stop, writes).await,
        Kind::Grpc(writes) => grpc::run(ch, store, view, stop, writes).await,
        Kind::Virtual => virt::run(ch, store, view, stop).await,
    }
}
