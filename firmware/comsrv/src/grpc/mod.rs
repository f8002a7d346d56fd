//! The protocol-plugin channel loop (`protocol: grpc`): connect to the plugin, send one
//! BatchRead per poll with every mapped point and its plugin address, check the answer, write
//! one batch; serve control/adjustment writes between polls.
//!
//! The plugin is a separate process the firmware did not write, so it is treated like a
//! device on a wire:
//! - every call has a deadline (sent as the gRPC timeout and enforced locally, since a plugin
//!   may ignore it);
//! - a lost connection (the plugin crashed or was restarted) is dropped and re-established
//!   with exponential backoff and jitter ([`Backoff`]), counted in `connection_errors` and
//!   `reconnect_count`; `status.connected` shows it;
//! - an answer is checked point by point ([`check`]): garbage is counted and dropped, the rest
//!   of the answer is used; an answer beyond [`client::max_answer_bytes`] is refused unread;
//! - during an outage the last good values stay in Redis, marked `stale` in
//!   `comsrv:{ch}:{T}:quality`, and `:ts` says how old they are.

mod check;
mod client;
mod write;

use crate::driver::{drive, Driver, Outbox};
use crate::poll::{format_point, now_ms, Tally};
use crate::supervisor::StatusView;
use crate::write::WriteRequest;
use crate::Shutdown;
use client::{CallError, Client};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use voltage_core::config::{Channel, ChannelParams, PluginEndpoint};
use voltage_core::points::Source;
use voltage_core::PointType;
use voltage_plugin::v1;
use voltage_store::{Quality, Store};

pub(crate) struct Loop {
    channel: Channel,
    out: Outbox,
    endpoint: PluginEndpoint,
    client: Option<Client>,
    /// Index into `channel.points` and the wire form of every mapped point.
    refs: Vec<(usize, v1::PointRef)>,
    max_answer: usize,
    ever_connected: bool,
}

pub async fn run(
    channel: Channel,
    store: Store,
    view: StatusView,
    stop: Shutdown,
    writes: mpsc::Receiver<WriteRequest>,
) {
    let p = channel.config.parameters.clone();
    let endpoint = channel
        .config
        .plugin_endpoint()
        .expect("endpoint validated at load");
    let refs: Vec<(usize, v1::PointRef)> = channel
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, pt)| match &pt.source {
            Some(Source::Plugin(m)) => Some((
                i,
                v1::PointRef {
                    point_id: pt.def.point_id,
                    point_type: check::wire_type(pt.kind) as i32,
                    address: m.address.clone(),
                },
            )),
            _ => None,
        })
        .collect();
    let l = Loop {
        out: Outbox::new(store, view),
        max_answer: client::max_answer_bytes(refs.len()),
        channel,
        endpoint,
        client: None,
        refs,
        ever_connected: false,
    };
    tracing::info!(channel = l.channel.id(), endpoint = %l.endpoint, points = l.refs.len(), "plugin channel started");
    drive(l, p, writes, stop, "plugin").await;
}

impl Driver for Loop {
    fn id(&self) -> u32 {
        self.channel.id()
    }

    fn needs_connect(&self) -> bool {
        self.client.is_none()
    }

    async fn reconnect(
        &mut self,
        tally: &mut Tally,
        p: &ChannelParams,
        stop: &mut Shutdown,
    ) -> bool {
        Loop::reconnect(self, tally, p, stop).await
    }

    async fn poll(&mut self, tally: &mut Tally, p: &ChannelParams, _stop: &mut Shutdown) {
        Loop::poll(self, tally, p).await
    }

    async fn finish(&mut self, tally: Tally) {
        Loop::finish(self, tally).await
    }

    async fn write(&mut self, req: WriteRequest, p: &ChannelParams) {
        write::execute(self, req, p).await
    }

    async fn close(&mut self) {
        self.client = None;
    }
}

impl Loop {
    /// Connects and asks the plugin what it is; records the outcome in `tally`.
    async fn reconnect(
        &mut self,
        tally: &mut Tally,
        p: &ChannelParams,
        stop: &mut Shutdown,
    ) -> bool {
        let r = tokio::select! {
            r = self.open(p.timeout()) => r,
            _ = stop.wait() => return false,
        };
        match r {
            Ok(c) => {
                if self.ever_connected {
                    tally.stats().reconnect_count += 1;
                    tracing::info!(channel = self.channel.id(), endpoint = %self.endpoint, "plugin reconnected");
                }
                self.ever_connected = true;
                self.client = Some(c);
                true
            }
            Err(e) => {
                tally.stats().connection_errors += 1;
                if self.out.consecutive_errors == 0 {
                    tracing::warn!(channel = self.channel.id(), endpoint = %self.endpoint, error = %e, "plugin connection failed");
                }
                tally.error(e);
                false
            }
        }
    }

    async fn open(&self, timeout: Duration) -> Result<Client, String> {
        let mut c = client::connect(&self.endpoint, timeout, self.max_answer).await?;
        let info = client::with_deadline(
            timeout,
            c.rpc
                .get_info(client::request(v1::GetInfoRequest {}, timeout)),
        )
        .await
        .map_err(|e| format!("GetInfo: {e}"))?;
        if info.contract != voltage_plugin::CONTRACT {
            tracing::warn!(channel = self.channel.id(), plugin = %check::clip(&info.name), contract = %check::clip(&info.contract),
                "plugin reports another contract than {}; polling it anyway", voltage_plugin::CONTRACT);
        }
        tracing::info!(channel = self.channel.id(), plugin = %check::clip(&info.name), version = %check::clip(&info.version),
            protocols = ?info.protocols.iter().map(|p| check::clip(p)).collect::<Vec<_>>(), "plugin connected");
        // Informational: a device the plugin cannot reach shows as BAD points in the polls.
        if let Ok(h) = client::with_deadline(
            timeout,
            c.rpc
                .health_check(client::request(v1::HealthCheckRequest {}, timeout)),
        )
        .await
        {
            if h.status != v1::health_check_response::Status::Serving as i32 {
                tracing::warn!(channel = self.channel.id(), status = h.status, message = %check::clip(&h.message),
                    "plugin is not serving its device");
            }
        }
        Ok(c)
    }

    /// One BatchRead of `refs` (indices into `self.refs`); a transport error drops the client.
    async fn batch_read(
        &mut self,
        refs: Vec<v1::PointRef>,
        timeout: Duration,
    ) -> Result<Vec<v1::PointValue>, CallError> {
        let Some(c) = self.client.as_mut() else {
            return Err(CallError::Transport("not connected".into()));
        };
        let req = v1::BatchReadRequest {
            channel_id: self.channel.id(),
            points: refs,
        };
        let r = client::with_deadline(timeout, c.rpc.batch_read(client::request(req, timeout)))
            .await
            .map_err(|e| c.classify(e));
        if matches!(r, Err(CallError::Transport(_))) {
            self.client = None;
        }
        r.map(|a| a.values)
    }

    /// Counts a failed call in `tally`.
    fn call_failed(&self, tally: &mut Tally, e: CallError, what: &str) {
        match &e {
            CallError::Timeout => tally.stats().timeouts += 1,
            CallError::Transport(_) => tally.stats().connection_errors += 1,
            CallError::Plugin(..) => tally.stats().exceptions += 1,
            CallError::Oversized(_) => {}
        }
        tally.error(format!("{what}: {e}"));
    }

    async fn poll(&mut self, tally: &mut Tally, p: &ChannelParams) {
        let started = Instant::now();
        let refs: Vec<v1::PointRef> = self.refs.iter().map(|(_, r)| r.clone()).collect();
        let asked: Vec<(PointType, u32)> = self
            .refs
            .iter()
            .map(|(i, _)| {
                (
                    self.channel.points[*i].kind,
                    self.channel.points[*i].def.point_id,
                )
            })
            .collect();
        match self.batch_read(refs, p.timeout()).await {
            Ok(answer) => {
                tally.stats().total_reads += 1;
                tally.any_success = true;
                let c = check::check(&asked, &answer, now_ms());
                for problem in c.problems {
                    tally.error(format!("BatchRead: {problem}"));
                }
                for (kind, id, raw) in c.values {
                    if let Some(pt) = self
                        .channel
                        .points
                        .iter()
                        .find(|pt| pt.kind == kind && pt.def.point_id == id)
                    {
                        tally.batch.values.push((kind, id, format_point(pt, raw)));
                    }
                }
                tally.marks = c.marks;
            }
            Err(e) => {
                self.call_failed(tally, e, "BatchRead");
                tally.marks = asked.into_iter().map(|k| (k, Quality::Stale)).collect();
            }
        }
        tally.batch.poll_ms = started.elapsed().as_millis() as u64;
    }

    async fn finish(&mut self, mut tally: Tally) {
        let connected = self.client.is_some();
        if !connected {
            tally.marks = self
                .refs
                .iter()
                .map(|(i, _)| {
                    let pt = &self.channel.points[*i];
                    ((pt.kind, pt.def.point_id), Quality::Stale)
                })
                .collect();
        }
        let marks = std::mem::take(&mut tally.marks);
        self.out
            .commit(self.channel.id(), tally, connected, marks, None)
            .await;
    }
}
