//! The virtual channel loop: samples each point's pattern on the poll interval.
//!
//! Virtual channels let a site be commissioned (models, alarms, dashboards, history) before its
//! devices are wired, and give tests and demos a data source with known properties.

use crate::poll::{format_point, now_ms, Tally};
use crate::supervisor::StatusView;
use crate::Shutdown;
use rand::SeedableRng;
use std::time::Instant;
use voltage_core::config::Channel;
use voltage_core::points::Source;
use voltage_core::virt::Generator;
use voltage_store::Store;

pub async fn run(channel: Channel, store: Store, view: StatusView, mut stop: Shutdown) {
    let mut gens: Vec<(usize, Generator)> = channel
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.source {
            Some(Source::Virtual(pat)) => Some((i, Generator::new(pat.clone()))),
            _ => None,
        })
        .collect();
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(channel.config.parameters.poll_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(
        channel = channel.id(),
        points = gens.len(),
        "virtual channel started"
    );
    let mut unwritten = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => break,
        }
        let started = Instant::now();
        let elapsed = t0.elapsed().as_millis() as u64;
        let mut tally = Tally::default();
        for (i, g) in gens.iter_mut() {
            let p = &channel.points[*i];
            let v = g.sample(elapsed, &mut rng);
            tally
                .batch
                .values
                .push((p.kind, p.def.point_id, format_point(p, v)));
        }
        let b = &mut tally.batch;
        b.stats.total_reads = 1 + unwritten;
        b.at_ms = now_ms();
        b.poll_ms = started.elapsed().as_millis() as u64;
        b.status.connected = true;
        b.status.success_at_ms = Some(b.at_ms);
        view.update(channel.id(), true, None);
        match store.write_poll(channel.id(), b).await {
            Ok(()) => unwritten = 0,
            Err(e) => {
                unwritten += 1;
                tracing::warn!(channel = channel.id(), error = %e, "cannot write virtual values to redis");
            }
        }
    }
    tracing::info!(channel = channel.id(), "virtual channel stopped");
}
