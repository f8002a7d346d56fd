//! What every polled protocol (Modbus TCP/RTU, plugins) shares: the channel loop — poll on the
//! tick, a write as soon as it arrives, reconnect with backoff, stop at once on shutdown — and
//! the end of each poll ([`Outbox`]): one atomic Redis write of values, stats, status and
//! quality marks, with counters carried to the next poll while Redis is away. A protocol only
//! says how to connect, poll and write ([`Driver`]).

use crate::poll::{QualityMarks, Tally};
use crate::supervisor::StatusView;
use crate::write::WriteRequest;
use crate::Shutdown;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::future::Future;
use tokio::sync::mpsc;
use voltage_core::config::ChannelParams;
use voltage_core::health::Backoff;
use voltage_core::PointType;
use voltage_store::{Quality, StatsDelta, Store};

/// A protocol's side of the channel loop.
pub(crate) trait Driver: Send {
    fn id(&self) -> u32;
    /// Whether the link must be (re)established before the next poll.
    fn needs_connect(&self) -> bool;
    /// Connects; records the outcome in `tally`; false when it failed (or shutdown came).
    fn reconnect(
        &mut self,
        tally: &mut Tally,
        p: &ChannelParams,
        stop: &mut Shutdown,
    ) -> impl Future<Output = bool> + Send;
    fn poll(
        &mut self,
        tally: &mut Tally,
        p: &ChannelParams,
        stop: &mut Shutdown,
    ) -> impl Future<Output = ()> + Send;
    /// Writes the poll's outcome (usually through [`Outbox::commit`]).
    fn finish(&mut self, tally: Tally) -> impl Future<Output = ()> + Send;
    fn write(&mut self, req: WriteRequest, p: &ChannelParams) -> impl Future<Output = ()> + Send;
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Runs a channel until shutdown.
pub(crate) async fn drive<D: Driver>(
    mut d: D,
    p: ChannelParams,
    mut writes: mpsc::Receiver<WriteRequest>,
    mut stop: Shutdown,
    kind: &'static str,
) {
    let mut backoff = Backoff::new(p.reconnect_initial(), p.reconnect_max());
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut tick = tokio::time::interval(p.poll_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(req) = writes.recv() => {
                d.write(req, &p).await;
                continue;
            }
            _ = stop.wait() => break,
        }
        let mut tally = Tally::default();
        if d.needs_connect() && !d.reconnect(&mut tally, &p, &mut stop).await {
            if stop.is_set() {
                break;
            }
            d.finish(tally).await;
            let delay = backoff.next_delay(&mut rng);
            tracing::debug!(
                channel = d.id(),
                kind,
                delay_ms = delay.as_millis() as u64,
                "reconnect backoff"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => continue,
                _ = stop.wait() => break,
            }
        }
        d.poll(&mut tally, &p, &mut stop).await;
        let answered = tally.any_success;
        d.finish(tally).await;
        // The backoff restarts only when the device answered, not when a connection opened: a
        // black-holed path or a serial gateway whose device is dead accepts every connection
        // and answers nothing. Reconnecting on every poll would hammer it (gateways have few
        // connection slots); it gets the same backoff as a refused connection instead.
        if answered {
            backoff.reset();
        } else if d.needs_connect() {
            let delay = backoff.next_delay(&mut rng);
            tracing::debug!(
                channel = d.id(),
                kind,
                delay_ms = delay.as_millis() as u64,
                "connected but nothing answered: reconnect backoff"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait() => break,
            }
        }
    }
    d.close().await;
    tracing::info!(channel = d.id(), kind, "channel stopped");
}

/// The end of every poll, shared by the protocols.
pub(crate) struct Outbox {
    pub store: Store,
    view: StatusView,
    pub consecutive_errors: u64,
    carry: StatsDelta,
    carry_errors: u64,
    marks: QualityMarks,
}

impl Outbox {
    pub fn new(store: Store, view: StatusView) -> Outbox {
        Outbox {
            store,
            view,
            consecutive_errors: 0,
            carry: StatsDelta::default(),
            carry_errors: 0,
            marks: QualityMarks::default(),
        }
    }

    /// Writes one poll of `channel` atomically: values, stats (with what an earlier failed write
    /// left over), status, and the quality marks that changed; `offline_slaves` when the
    /// protocol knows slaves.
    pub async fn commit(
        &mut self,
        channel: u32,
        mut tally: Tally,
        connected: bool,
        marks: BTreeMap<(PointType, u32), Quality>,
        offline_slaves: Option<String>,
    ) {
        self.consecutive_errors = if tally.errors > 0 {
            self.consecutive_errors + 1
        } else {
            0
        };
        let b = &mut tally.batch;
        b.at_ms = crate::poll::now_ms();
        b.quality = self.marks.changes(&marks);
        crate::modbus::merge(&mut b.stats, &std::mem::take(&mut self.carry));
        b.status.connected = connected;
        b.status.new_errors = tally.errors + std::mem::take(&mut self.carry_errors);
        b.status.consecutive_errors = self.consecutive_errors;
        b.status.last_error = tally.last_error.clone();
        b.status.success_at_ms = tally.any_success.then_some(b.at_ms);
        if let Some(o) = offline_slaves {
            b.status.offline_slaves = o;
        }
        self.view
            .update(channel, connected, tally.last_error.as_deref());
        match self.store.write_poll(channel, b).await {
            Ok(()) => self.marks.written(marks),
            Err(e) => {
                tracing::warn!(channel, error = %e, "cannot write poll to redis; counters carried to the next poll");
                self.carry = std::mem::take(&mut b.stats);
                self.carry_errors = b.status.new_errors;
            }
        }
    }
}
