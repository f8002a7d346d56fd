//! `voltage run`: connects to Redis (retrying until it answers), keeps the Redis Functions
//! loaded, starts the enabled services, hands the gateway the in-process routes of the services
//! of this process, reports readiness to systemd, and turns SIGTERM/SIGINT into an orderly stop.

use crate::{load, notify, redis_url, token, AVAILABLE, SERVICES};
use anyhow::{bail, Context as _};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use voltage_core::config::{self, Config, LoadOptions};
use voltage_store::{FunctionsState, Store};

/// Connects to Redis, retrying with backoff until it answers or shutdown is requested.
async fn connect_redis(url: &str, stop: &mut comsrv::Shutdown) -> Option<Store> {
    let mut delay = Duration::from_millis(250);
    loop {
        match Store::connect(url, Duration::from_secs(2)).await {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(%url, error = %e, retry_ms = delay.as_millis() as u64, "redis not reachable")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn ensure_functions(store: &Store) {
    match store.ensure_functions().await {
        Ok(FunctionsState::Current) => {}
        Ok(FunctionsState::Loaded { previous }) => {
            tracing::info!(
                ?previous,
                version = voltage_store::functions::expected_version(),
                "redis functions loaded"
            )
        }
        Err(e) => tracing::warn!(error = %e, "cannot load redis functions"),
    }
}

pub async fn run(dir: &Path, only: &[String], options: &LoadOptions) -> anyhow::Result<()> {
    for s in only {
        if !SERVICES.contains(&s.as_str()) {
            bail!(
                "--only: unknown service {s:?}; services are {}",
                SERVICES.join(", ")
            );
        }
        if !AVAILABLE.contains(&s.as_str()) {
            bail!(
                "--only: {s} is not available in this firmware build (available: {})",
                AVAILABLE.join(", ")
            );
        }
    }
    let cfg = load(dir, options)?;
    for n in &cfg.migration.notes {
        tracing::info!(note = %n, "configuration migrated in memory");
    }
    let (stop_tx, stop) = comsrv::Shutdown::new();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let wanted = |name: &str| only.is_empty() || only.iter().any(|s| s == name);
    for (name, svc) in cfg.voltage.services.all() {
        if svc.enabled && wanted(name) && !AVAILABLE.contains(&name) {
            tracing::info!(
                service = name,
                "not available in this firmware build; skipped"
            );
        }
    }
    let url = redis_url(&cfg);
    let mut s = stop.clone();
    let Some(store) = connect_redis(&url, &mut s).await else {
        return Ok(());
    };
    tracing::info!(%url, "connected to redis");
    ensure_functions(&store).await;
    // Redis may restart without persistence: check the functions are still there.
    let watch_store = store.clone();
    let mut s = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => ensure_functions(&watch_store).await,
                _ = s.wait() => break,
            }
        }
    });
    let addr_of = |name: &str, svc: &config::ServiceConfig| -> anyhow::Result<SocketAddr> {
        format!("{}:{}", svc.bind, svc.port)
            .parse()
            .with_context(|| {
                format!(
                    "services.{name}: bind {:?} port {} is not an address",
                    svc.bind, svc.port
                )
            })
    };
    let mut running: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // Services of this process, for the gateway to call in-process: name -> (routes, port).
    let mut here: BTreeMap<&str, (voltage_http::Handler, u16)> = BTreeMap::new();
    let svc = &cfg.voltage.services.comsrv;
    if svc.enabled && wanted("comsrv") {
        let r = comsrv::start(
            cfg.clone(),
            store.clone(),
            addr_of("comsrv", svc)?,
            stop.clone(),
        )
        .await?;
        tracing::info!(addr = %r.local_addr(), channels = cfg.channels.len(), "comsrv running");
        here.insert("comsrv", (r.handler(), r.local_addr().port()));
        running.push(tokio::spawn(r.join()));
    }
    let svc = &cfg.voltage.services.modsrv;
    if svc.enabled && wanted("modsrv") {
        let r = modsrv::start(dir, store.clone(), addr_of("modsrv", svc)?, stop.receiver()).await?;
        tracing::info!(addr = %r.local_addr(), "modsrv running");
        if let Some(h) = r.handler() {
            here.insert("modsrv", (h, r.local_addr().port()));
        }
        running.push(tokio::spawn(r.join()));
    }
    let svc = &cfg.voltage.services.alarmsrv;
    if svc.enabled && wanted("alarmsrv") {
        let r = alarmsrv::start(
            Some(dir),
            store.clone(),
            addr_of("alarmsrv", svc)?,
            stop.receiver(),
        )
        .await?;
        tracing::info!(addr = %r.local_addr(), "alarmsrv running");
        if let Some(h) = r.handler() {
            here.insert("alarmsrv", (h, r.local_addr().port()));
        }
        running.push(tokio::spawn(r.join()));
    }
    let svc = &cfg.voltage.services.rulesrv;
    if svc.enabled && wanted("rulesrv") {
        let r = rulesrv::start(store.clone(), addr_of("rulesrv", svc)?, stop.receiver()).await?;
        tracing::info!(addr = %r.local_addr(), "rulesrv running");
        if let Some(h) = r.handler() {
            here.insert("rulesrv", (h, r.local_addr().port()));
        }
        running.push(tokio::spawn(r.join()));
    }
    // hissrv and netsrv share one history log: hissrv writes it, both forward from it.
    let (h, n) = (&cfg.voltage.services.hissrv, &cfg.voltage.services.netsrv);
    let run_h = h.enabled && wanted("hissrv");
    let run_n = n.enabled && wanted("netsrv") && cfg.netsrv.is_some();
    let wal = if run_h || run_n {
        match hissrv::open_wal(&cfg).await {
            Ok(wal) => Some(wal),
            Err(e) => {
                // Devices are polled on without history: the two services that need the log
                // stand in unavailable, saying why (voltage_http::serve_unavailable).
                let reason = e.to_string();
                tracing::error!(error = %reason,
                    "the history log cannot be opened: hissrv and netsrv answer 503 with this reason; the other services run");
                for (name, svc, run) in [("hissrv", h, run_h), ("netsrv", n, run_n)] {
                    if run {
                        let addr = addr_of(name, svc)?;
                        let r =
                            voltage_http::serve_unavailable(name, addr, &reason, stop.receiver())
                                .await
                                .with_context(|| format!("{name}: cannot listen on {addr}"))?;
                        if let Some(h) = r.handler() {
                            here.insert(name, (h, r.local_addr().port()));
                        }
                        running.push(tokio::spawn(r.join()));
                    }
                }
                None
            }
        }
    } else {
        None
    };
    if let Some(wal) = wal {
        if run_h {
            let r = hissrv::start(
                &cfg,
                store.clone(),
                wal.clone(),
                addr_of("hissrv", h)?,
                stop.receiver(),
            )
            .await?;
            tracing::info!(addr = %r.local_addr(), "hissrv running");
            if let Some(h) = r.handler() {
                here.insert("hissrv", (h, r.local_addr().port()));
            }
            running.push(tokio::spawn(r.join()));
        }
        if run_n {
            let r = netsrv::start(
                &cfg,
                wal,
                Some(store.clone()),
                addr_of("netsrv", n)?,
                stop.receiver(),
            )
            .await?;
            tracing::info!(addr = %r.local_addr(), "netsrv running");
            if let Some(h) = r.handler() {
                here.insert("netsrv", (h, r.local_addr().port()));
            }
            running.push(tokio::spawn(r.join()));
        }
    }
    let svc = &cfg.voltage.services.gateway;
    if svc.enabled && wanted("gateway") {
        let opts = gateway_options(&cfg, &here);
        for (name, s) in &opts.services {
            tracing::info!(service = %name, via = %s.upstream.describe(), "gateway route");
        }
        let r = voltage_gateway::start(
            opts,
            store.clone(),
            addr_of("gateway", svc)?,
            stop.receiver(),
        )
        .await?;
        tracing::info!(addr = %r.local_addr(), "gateway running");
        running.push(tokio::spawn(r.join()));
    }
    if running.is_empty() {
        tracing::warn!("no service to run");
    }
    notify::notify(&format!(
        "READY=1\nSTATUS={} services running",
        running.len()
    ));
    if let Some(every) = notify::watchdog_interval() {
        let mut s = stop.clone();
        tokio::spawn(async move {
            loop {
                notify::notify("WATCHDOG=1");
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = s.wait() => break,
                }
            }
        });
    }
    for r in running {
        let _ = r.await;
    }
    notify::notify("STOPPING=1");
    tracing::info!("voltage stopped");
    Ok(())
}

/// What the gateway routes to: services of this process in-process; enabled services that run
/// elsewhere (another `voltage run --only ...` or another host) over HTTP, at the URL in
/// `gateway/gateway.yaml` `upstreams` or else at their `services.*` address.
fn gateway_options(
    cfg: &Config,
    here: &BTreeMap<&str, (voltage_http::Handler, u16)>,
) -> voltage_gateway::Options {
    let mut services = BTreeMap::new();
    for (name, svc) in cfg.voltage.services.all() {
        if name == "gateway" {
            continue;
        }
        let expected = svc.enabled && (name != "netsrv" || cfg.netsrv.is_some());
        let s = if let Some((h, port)) = here.get(name) {
            voltage_gateway::Service {
                upstream: voltage_gateway::Upstream::InProcess(h.clone()),
                port: *port,
            }
        } else if expected || cfg.gateway.upstreams.contains_key(name) {
            let url = cfg.gateway.upstreams.get(name).cloned().unwrap_or_else(|| {
                let host = match svc.bind.as_str() {
                    "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
                    b => b,
                };
                format!("http://{host}:{}", svc.port)
            });
            voltage_gateway::Service {
                upstream: voltage_gateway::Upstream::http(&url),
                port: svc.port,
            }
        } else {
            continue;
        };
        services.insert(name.to_string(), s);
    }
    let mut lines: Vec<String> = cfg
        .channels
        .iter()
        .filter_map(|c| c.serial.as_ref())
        .map(|s| s.port_name.clone().unwrap_or_else(|| s.device.clone()))
        .collect();
    lines.sort();
    lines.dedup();
    voltage_gateway::Options {
        config: cfg.gateway.clone(),
        tokens_path: token::path(&cfg.dir),
        services,
        lines,
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
