//! The Modbus TCP channel loop: connect, run the read plan, decode, write one batch per poll.
//!
//! Failure handling, from the smallest scope up:
//! - a request that gets exception 02 on a merged block splits that block and keeps the split
//!   (one unreadable register must not blank its neighbours);
//! - every request has a deadline (tokio-modbus calls never time out by themselves); after a
//!   timeout the connection is re-established before the next request, because a late answer
//!   would otherwise be taken for the next request's;
//! - a slave whose polls keep failing is backed off ([`SlaveHealth`]), so a dead unit behind a
//!   gateway costs one timeout per backoff period instead of one per poll;
//! - a transport error drops the connection; reconnects back off exponentially with jitter.
//!
//! The last good values stay in Redis during an outage; `:ts` says how old they are.

use crate::poll::{decode_block, now_ms, BlockData, Tally};
use crate::supervisor::StatusView;
use crate::Shutdown;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_modbus::client::{tcp, Client, Context, Reader};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};
use voltage_core::config::Channel;
use voltage_core::health::{Backoff, SlaveHealth};
use voltage_core::plan::{self, ReadBlock};
use voltage_core::points::Source;
use voltage_core::types::ReadFunction;
use voltage_store::{StatsDelta, Store};

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

enum ReadError {
    Timeout,
    Exception(ExceptionCode),
    Transport(String),
    Protocol(String),
}

async fn read_block(
    ctx: &mut Context,
    b: &ReadBlock,
    deadline: Duration,
) -> Result<BlockData, ReadError> {
    ctx.set_slave(Slave(b.slave));
    let fut = async {
        match b.function {
            ReadFunction::Coils => ctx
                .read_coils(b.start, b.count)
                .await
                .map(|r| r.map(BlockData::Bits)),
            ReadFunction::DiscreteInputs => ctx
                .read_discrete_inputs(b.start, b.count)
                .await
                .map(|r| r.map(BlockData::Bits)),
            ReadFunction::HoldingRegisters => ctx
                .read_holding_registers(b.start, b.count)
                .await
                .map(|r| r.map(BlockData::Registers)),
            ReadFunction::InputRegisters => ctx
                .read_input_registers(b.start, b.count)
                .await
                .map(|r| r.map(BlockData::Registers)),
        }
    };
    match tokio::time::timeout(deadline, fut).await {
        Err(_) => Err(ReadError::Timeout),
        Ok(Ok(Ok(data))) => Ok(data),
        Ok(Ok(Err(code))) => Err(ReadError::Exception(code)),
        Ok(Err(tokio_modbus::Error::Transport(e))) => Err(ReadError::Transport(e.to_string())),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(ReadError::Protocol(e.to_string())),
    }
}

async fn connect(addr: &str, deadline: Duration) -> Result<Context, String> {
    let fut = async {
        let target = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| format!("resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolve {addr}: no address"))?;
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok::<_, String>(tcp::attach(stream))
    };
    tokio::time::timeout(deadline, fut)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "connect {addr}: timed out after {} ms",
                deadline.as_millis()
            ))
        })
}

fn exception_name(code: ExceptionCode) -> String {
    format!("exception {:02X} ({code:?})", u8::from(code))
}

/// Sleeps for `d` unless shutdown comes first; returns false on shutdown.
async fn pause(d: Duration, stop: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait() => false,
    }
}

struct Loop {
    channel: Channel,
    store: Store,
    view: StatusView,
    addr: String,
    plan: Vec<ReadBlock>,
    health: BTreeMap<u8, SlaveHealth>,
    ctx: Option<Context>,
    ever_connected: bool,
    consecutive_errors: u64,
    carry: StatsDelta,
    carry_errors: u64,
}

pub async fn run(channel: Channel, store: Store, view: StatusView, mut stop: Shutdown) {
    let p = channel.config.parameters.clone();
    let plan = read_plan(&channel);
    let health = plan
        .iter()
        .map(|b| {
            let max = p.slave_backoff_max().as_millis() as u64;
            (
                b.slave,
                SlaveHealth::new(
                    p.slave_backoff_after(),
                    p.poll_interval().as_millis() as u64,
                    max,
                ),
            )
        })
        .collect();
    let mut l = Loop {
        addr: channel.config.tcp_address(),
        channel,
        store,
        view,
        plan,
        health,
        ctx: None,
        ever_connected: false,
        consecutive_errors: 0,
        carry: StatsDelta::default(),
        carry_errors: 0,
    };
    let mut backoff = Backoff::new(p.reconnect_initial(), p.reconnect_max());
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut tick = tokio::time::interval(p.poll_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(channel = l.channel.id(), addr = %l.addr, requests = l.plan.len(), "modbus tcp channel started");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => break,
        }
        let mut tally = Tally::default();
        if l.ctx.is_none() && !l.reconnect(&mut tally, &p, &mut stop).await {
            if stop.is_set() {
                break;
            }
            l.finish(tally).await;
            let delay = backoff.next_delay(&mut rng);
            tracing::debug!(
                channel = l.channel.id(),
                delay_ms = delay.as_millis() as u64,
                "reconnect backoff"
            );
            if !pause(delay, &mut stop).await {
                break;
            }
            continue;
        }
        backoff.reset();
        l.poll(&mut tally, &p, &mut stop).await;
        l.finish(tally).await;
    }
    if let Some(mut ctx) = l.ctx.take() {
        let _ = ctx.disconnect().await;
    }
    tracing::info!(channel = l.channel.id(), "modbus tcp channel stopped");
}

impl Loop {
    /// (Re)connects; records the outcome in `tally`. Returns whether a connection is up.
    async fn reconnect(
        &mut self,
        tally: &mut Tally,
        p: &voltage_core::config::ChannelParams,
        stop: &mut Shutdown,
    ) -> bool {
        let r = tokio::select! {
            r = connect(&self.addr, p.timeout()) => r,
            _ = stop.wait() => return false,
        };
        match r {
            Ok(ctx) => {
                if self.ever_connected {
                    tally.stats().reconnect_count += 1;
                    tracing::info!(channel = self.channel.id(), addr = %self.addr, "reconnected");
                }
                self.ever_connected = true;
                self.ctx = Some(ctx);
                true
            }
            Err(e) => {
                tally.stats().connection_errors += 1;
                if self.consecutive_errors == 0 {
                    tracing::warn!(channel = self.channel.id(), error = %e, "connection failed");
                }
                tally.error(e);
                false
            }
        }
    }

    async fn poll(
        &mut self,
        tally: &mut Tally,
        p: &voltage_core::config::ChannelParams,
        stop: &mut Shutdown,
    ) {
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
            let mut attempt = 0;
            let result = loop {
                if self.ctx.is_none() && !self.reconnect(tally, p, stop).await {
                    break None;
                }
                let ctx = self.ctx.as_mut().expect("connected");
                let r = read_block(ctx, &self.plan[i], p.timeout()).await;
                match &r {
                    Err(ReadError::Timeout) | Err(ReadError::Protocol(_)) => {
                        // A late or mismatched answer would be read as the next one's: start clean.
                        self.ctx = None;
                    }
                    Err(ReadError::Transport(_)) => self.ctx = None,
                    _ => {}
                }
                let retry = matches!(r, Err(ReadError::Timeout) | Err(ReadError::Transport(_)));
                if retry && attempt < p.retries() && !stop.is_set() {
                    attempt += 1;
                    continue;
                }
                break Some(r);
            };
            let Some(result) = result else {
                // Could not reconnect: the rest of this poll would fail the same way.
                break;
            };
            let b = &self.plan[i];
            let what = format!("slave {} {} {}", b.slave, b.function, b.range());
            match result {
                Ok(data) => {
                    tally.stats().total_reads += 1;
                    tally.any_success = true;
                    answered.insert(slave);
                    let bad = decode_block(&self.channel.points, b, &data, &mut tally.batch.values);
                    if bad > 0 {
                        tally.error(format!("{what}: short response, {bad} points not decoded"));
                    }
                    i += 1;
                }
                Err(ReadError::Exception(ExceptionCode::IllegalDataAddress))
                    if b.points.len() > 1 =>
                {
                    let (l, r) = b.split().expect("more than one point");
                    tracing::info!(channel = self.channel.id(), block = %what, left = %l.range(), right = %r.range(),
                        "illegal data address on a merged read: splitting it");
                    tally.stats().exceptions += 1;
                    answered.insert(slave);
                    self.plan.splice(i..=i, [l, r]);
                }
                Err(ReadError::Exception(code)) => {
                    tally.stats().exceptions += 1;
                    answered.insert(slave);
                    tally.error(format!("{what}: {}", exception_name(code)));
                    i += 1;
                }
                Err(ReadError::Timeout) => {
                    tally.stats().timeouts += 1;
                    failed.insert(slave);
                    tally.error(format!(
                        "{what}: no answer within {} ms",
                        p.timeout().as_millis()
                    ));
                    i += 1;
                }
                Err(ReadError::Protocol(e)) => {
                    failed.insert(slave);
                    tally.error(format!("{what}: {e}"));
                    i += 1;
                }
                Err(ReadError::Transport(e)) => {
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

    async fn finish(&mut self, mut tally: Tally) {
        let connected = self.ctx.is_some();
        self.consecutive_errors = if tally.errors > 0 {
            self.consecutive_errors + 1
        } else {
            0
        };
        let b = &mut tally.batch;
        b.at_ms = now_ms();
        merge(&mut b.stats, &std::mem::take(&mut self.carry));
        b.status.connected = connected;
        b.status.new_errors = tally.errors + std::mem::take(&mut self.carry_errors);
        b.status.consecutive_errors = self.consecutive_errors;
        b.status.last_error = tally.last_error.clone();
        b.status.success_at_ms = tally.any_success.then_some(b.at_ms);
        b.status.offline_slaves = self
            .health
            .iter()
            .filter(|(_, h)| h.is_offline())
            .map(|(s, _)| s.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.view
            .update(self.channel.id(), connected, tally.last_error.as_deref());
        if let Err(e) = self.store.write_poll(self.channel.id(), b).await {
            tracing::warn!(channel = self.channel.id(), error = %e, "cannot write poll to redis; counters carried to the next poll");
            self.carry = std::mem::take(&mut b.stats);
            self.carry_errors = b.status.new_errors;
        }
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
}
