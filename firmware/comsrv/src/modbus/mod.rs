//! The Modbus channel loop (TCP and RTU): connect, run the read plan, decode, write one batch
//! per poll, and serve control/adjustment writes between polls.
//!
//! Failure handling, from the smallest scope up:
//! - a request that gets exception 02 on a merged block splits that block and keeps the split
//!   (one unreadable register must not blank its neighbours);
//! - every request has a deadline (tokio-modbus calls never time out by themselves); after a
//!   timeout a TCP connection is re-established before the next request, because a late answer
//!   would otherwise be taken for the next request's (the serial line scheduler resynchronises
//!   on its own);
//! - a slave whose polls keep failing is backed off ([`SlaveHealth`]), so a dead unit costs one
//!   timeout per backoff period instead of one per poll, and the rest of the bus keeps its rate;
//! - a transport error drops the connection; reconnects back off exponentially with jitter.
//!
//! The last good values stay in Redis during an outage; `:ts` says how old they are.

pub mod line;
pub mod link;
pub mod rs485;
pub mod write;

use crate::driver::{drive, Driver, Outbox};
use crate::poll::{decode_block, now_ms, BlockData, Tally};
use crate::supervisor::StatusView;
use crate::Shutdown;
use line::Priority;
use link::{CallError, Link, Op, Reply};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tokio::sync::mpsc;
use voltage_core::config::{Channel, ChannelParams};
use voltage_core::health::SlaveHealth;
use voltage_core::plan::{self, ReadBlock};
use voltage_core::points::Source;
use voltage_store::{Quality, StatsDelta, Store};

/// The read plan of a channel (also used by `voltage plan`).
pub fn read_plan(channel: &Channel) -> Vec<ReadBlock> {
    let mapped: Vec<(usize, &voltage_core::points::ModbusMapping)> = channel
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.source {
            Some(Source::Modbus(m)) => Some((i, m)),
            _ => None,
        })
        .collect();
    plan::plan(&mapped, |s| channel.config.parameters.plan_limits(s))
}

fn exception_name(code: u8) -> String {
    let name = match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        10 => "gateway path unavailable",
        11 => "gateway target failed to respond",
        _ => "exception",
    };
    format!("exception {code:02X} ({name})")
}

pub(crate) struct Loop {
    pub channel: Channel,
    out: Outbox,
    pub link: Link,
    plan: Vec<ReadBlock>,
    health: BTreeMap<u8, SlaveHealth>,
    ever_connected: bool,
}

pub async fn run(
    channel: Channel,
    link: Link,
    store: Store,
    view: StatusView,
    stop: Shutdown,
    writes: mpsc::Receiver<write::WriteRequest>,
) {
    let p = channel.config.parameters.clone();
    let plan = read_plan(&channel);
    let health = plan
        .iter()
        .map(|b| {
            let max = p.slave_backoff_max().as_millis() as u64;
            // The first backoff is 1 s (or the cap, if smaller), doubling up to the cap: a probe of
            // a dead slave costs one timeout of bus time, so probes must be rare.
            (
                b.slave,
                SlaveHealth::new(p.slave_backoff_after(), max.min(1000), max),
            )
        })
        .collect();
    let l = Loop {
        channel,
        out: Outbox::new(store, view),
        link,
        plan,
        health,
        ever_connected: false,
    };
    tracing::info!(channel = l.channel.id(), link = %l.link.describe(), requests = l.plan.len(), "modbus channel started");
    drive(l, p, writes, stop, "modbus").await;
}

impl Driver for Loop {
    fn id(&self) -> u32 {
        self.channel.id()
    }

    fn needs_connect(&self) -> bool {
        self.link.needs_connect()
    }

    async fn reconnect(
        &mut self,
        tally: &mut Tally,
        p: &ChannelParams,
        stop: &mut Shutdown,
    ) -> bool {
        Loop::reconnect(self, tally, p, stop).await
    }

    async fn poll(&mut self, tally: &mut Tally, p: &ChannelParams, stop: &mut Shutdown) {
        Loop::poll(self, tally, p, stop).await
    }

    async fn finish(&mut self, tally: Tally) {
        Loop::finish(self, tally).await
    }

    async fn write(&mut self, req: write::WriteRequest, p: &ChannelParams) {
        write::execute(self, req, p).await
    }

    async fn close(&mut self) {
        self.link.close().await
    }
}

impl Loop {
    /// (Re)connects; records the outcome in `tally`. Returns whether the link is up.
    pub(crate) async fn reconnect(
        &mut self,
        tally: &mut Tally,
        p: &ChannelParams,
        stop: &mut Shutdown,
    ) -> bool {
        let r = tokio::select! {
            r = self.link.connect(p.timeout()) => r,
            _ = stop.wait() => return false,
        };
        match r {
            Ok(()) => {
                if self.ever_connected {
                    tally.stats().reconnect_count += 1;
                    tracing::info!(channel = self.channel.id(), link = %self.link.describe(), "reconnected");
                }
                self.ever_connected = true;
                true
            }
            Err(e) => {
                tally.stats().connection_errors += 1;
                if self.out.consecutive_errors == 0 {
                    tracing::warn!(channel = self.channel.id(), error = %e, "connection failed");
                }
                tally.error(e);
                false
            }
        }
    }

    /// One call with the channel's retries (timeouts and transport errors only; an exception is
    /// an answer). Returns `None` when the link could not be (re)established.
    pub(crate) async fn call(
        &mut self,
        tally: &mut Tally,
        slave: u8,
        op: &Op,
        p: &ChannelParams,
        prio: Priority,
        stop: &mut Shutdown,
    ) -> Option<Result<Reply, CallError>> {
        let mut attempt = 0;
        loop {
            if self.link.needs_connect() && !self.reconnect(tally, p, stop).await {
                return None;
            }
            let t = Instant::now();
            let r = self.link.call(slave, op, p.timeout_for(slave), prio).await;
            if matches!(r, Ok(_) | Err(CallError::Exception(_))) {
                tally.stats().response.record(t.elapsed());
            }
            let retry = matches!(r, Err(CallError::Timeout) | Err(CallError::Transport(_)));
            if retry && attempt < p.retries_for(slave) && !stop.is_set() {
                attempt += 1;
                continue;
            }
            return Some(r);
        }
    }

    async fn poll(&mut self, tally: &mut Tally, p: &ChannelParams, stop: &mut Shutdown) {
        let started = Instant::now();
        let now = now_ms();
        let mut answered: BTreeSet<u8> = BTreeSet::new();
        let mut failed: BTreeSet<u8> = BTreeSet::new();
        let mut i = 0;
        while i < self.plan.len() {
            let slave = self.plan[i].slave;
            let due = self.health.get(&slave).is_none_or(|h| h.should_poll(now));
            if !due || failed.contains(&slave) {
                i += 1;
                continue;
            }
            let b = &self.plan[i];
            let op = Op::Read {
                function: b.function,
                start: b.start,
                count: b.count,
            };
            let Some(result) = self.call(tally, slave, &op, p, Priority::Poll, stop).await else {
                break; // no link: the rest of this poll would fail the same way
            };
            let b = &self.plan[i];
            let what = format!("slave {} {} {}", b.slave, b.function, b.range());
            match result {
                Ok(reply) => {
                    tally.stats().total_reads += 1;
                    tally.any_success = true;
                    answered.insert(slave);
                    let data = match reply {
                        Reply::Bits(v) => BlockData::Bits(v),
                        Reply::Registers(v) => BlockData::Registers(v),
                        Reply::Done => BlockData::Registers(Vec::new()),
                    };
                    let bad = decode_block(&self.channel.points, b, &data, &mut tally.batch.values);
                    if bad > 0 {
                        tally.error(format!("{what}: short response, {bad} points not decoded"));
                    }
                    i += 1;
                }
                Err(CallError::Exception(2)) if b.points.len() > 1 => {
                    let (l, r) = b.split().expect("more than one point");
                    tracing::info!(channel = self.channel.id(), block = %what, left = %l.range(), right = %r.range(),
                        "illegal data address on a merged read: splitting it");
                    tally.stats().exceptions += 1;
                    answered.insert(slave);
                    self.plan.splice(i..=i, [l, r]);
                }
                Err(CallError::Exception(code)) => {
                    tally.stats().exceptions += 1;
                    answered.insert(slave);
                    tally.error(format!("{what}: {}", exception_name(code)));
                    i += 1;
                }
                Err(CallError::Timeout) => {
                    tally.stats().timeouts += 1;
                    failed.insert(slave);
                    tally.error(format!(
                        "{what}: no answer within {} ms",
                        p.timeout().as_millis()
                    ));
                    i += 1;
                }
                Err(CallError::Protocol(e)) => {
                    failed.insert(slave);
                    tally.error(format!("{what}: {e}"));
                    i += 1;
                }
                Err(CallError::Transport(e)) => {
                    tally.stats().connection_errors += 1;
                    tally.error(format!("{what}: {e}"));
                    break;
                }
            }
        }
        let now = now_ms();
        for (slave, h) in self.health.iter_mut() {
            if answered.contains(slave) {
                if h.is_offline() {
                    tracing::info!(channel = self.channel.id(), slave, "slave answers again");
                }
                h.on_success();
            } else if failed.contains(slave) {
                let was = h.is_offline();
                h.on_failure(now);
                if h.is_offline() && !was {
                    tracing::warn!(
                        channel = self.channel.id(),
                        slave,
                        "slave keeps failing: backing off"
                    );
                }
            }
        }
        tally.batch.poll_ms = started.elapsed().as_millis() as u64;
    }

    pub(crate) async fn finish(&mut self, tally: Tally) {
        let connected = self.link.is_up()
            && (tally.any_success || tally.errors == 0 || !matches!(self.link, Link::Rtu { .. }));
        // Values of an unreachable link, or of a backed-off slave, are the last good ones.
        let marks: BTreeMap<_, _> = self
            .channel
            .points
            .iter()
            .filter(|pt| match &pt.source {
                Some(Source::Modbus(m)) => {
                    !connected || self.health.get(&m.slave_id).is_some_and(|h| h.is_offline())
                }
                _ => false,
            })
            .map(|pt| ((pt.kind, pt.def.point_id), Quality::Stale))
            .collect();
        let offline = self
            .health
            .iter()
            .filter(|(_, h)| h.is_offline())
            .map(|(s, _)| s.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.out
            .commit(self.channel.id(), tally, connected, marks, Some(offline))
            .await;
    }

    pub(crate) fn store(&self) -> &Store {
        &self.out.store
    }
}

/// Adds `b`'s counters to `a`.
pub fn merge(a: &mut StatsDelta, b: &StatsDelta) {
    a.total_reads += b.total_reads;
    a.total_errors += b.total_errors;
    a.connection_errors += b.connection_errors;
    a.reconnect_count += b.reconnect_count;
    a.timeouts += b.timeouts;
    a.exceptions += b.exceptions;
    a.response.merge(&b.response);
}
