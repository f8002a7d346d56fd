//! `voltage`: the VoltageEMS edge firmware daemon and its command line.
//!
//! This binary only wires things together: it parses the command line, loads the configuration,
//! connects to Redis, loads the Redis Functions, starts the enabled services and turns SIGTERM /
//! SIGINT into an orderly shutdown. Everything with behaviour lives in the library crates.

mod health;
mod notify;
mod plan;
mod token;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use voltage_core::config::{self, Config, LoadOptions};
use voltage_store::{FunctionsState, Store};

/// Services of the product; the ones this build runs are marked in `available`.
const SERVICES: &[&str] = &[
    "comsrv", "modsrv", "alarmsrv", "rulesrv", "hissrv", "gateway", "netsrv",
];
const AVAILABLE: &[&str] = SERVICES;

#[derive(Parser)]
#[command(name = "voltage", version, about = "VoltageEMS edge firmware")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every enabled service until SIGTERM or SIGINT.
    Run {
        /// Configuration directory (voltage.yaml, comsrv/...).
        #[arg(long, env = "VOLTAGE_CONFIG")]
        config: PathBuf,
        /// Run only these services (comma separated), e.g. `--only comsrv`.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Board file to use instead of voltage.yaml's `board:`.
        #[arg(long, env = "VOLTAGE_BOARD")]
        board: Option<PathBuf>,
    },
    /// Validate a configuration directory and list every problem with file:line:column.
    CheckConfig {
        dir: PathBuf,
        /// Board file to use instead of voltage.yaml's `board:`.
        #[arg(long, env = "VOLTAGE_BOARD")]
        board: Option<PathBuf>,
    },
    /// Validate a board file (board-configs/*.toml) and summarise it.
    CheckBoard { file: PathBuf },
    /// Ask the running daemon whether it is healthy: Redis up and every channel polled.
    Health {
        /// Configuration directory to take comsrv's address from.
        #[arg(long, env = "VOLTAGE_CONFIG")]
        config: Option<PathBuf>,
        /// comsrv's HTTP address (overrides the configuration).
        #[arg(long)]
        addr: Option<String>,
        /// Keep asking for up to this many seconds before giving up.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Print the Modbus read plan: per channel and slave the requests, registers and bytes.
    Plan { dir: PathBuf },
    /// Manage the gateway's API tokens (DIR/gateway/tokens.yaml).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Load the Redis Functions libraries into Redis.
    LoadFunctions {
        /// Configuration directory to take `redis.url` from (REDIS_URL wins).
        #[arg(long, env = "VOLTAGE_CONFIG")]
        config: Option<PathBuf>,
        /// Redis URL (overrides the configuration).
        #[arg(long)]
        redis_url: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let result = match cli.command {
        Command::CheckConfig { dir, board } => check_config(&dir, &LoadOptions { board }),
        Command::CheckBoard { file } => check_board(&file),
        Command::Token(cmd) => token::run(cmd),
        Command::Plan { dir } => {
            load(&dir, &LoadOptions::default()).map(|c| emit(&plan::render(&c)))
        }
        Command::Run {
            config,
            only,
            board,
        } => runtime().and_then(|rt| rt.block_on(run(&config, &only, &LoadOptions { board }))),
        Command::Health { config, addr, wait } => runtime().and_then(|rt| {
            rt.block_on(async {
                let addr = health_addr(config.as_deref(), addr)?;
                health::run(&addr, Duration::from_secs(wait)).await
            })
        }),
        Command::LoadFunctions { config, redis_url } => {
            runtime().and_then(|rt| rt.block_on(load_functions(config.as_deref(), redis_url)))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes command output to stdout; a closed pipe (`voltage plan DIR | head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn load(dir: &Path, options: &LoadOptions) -> anyhow::Result<Config> {
    config::load_dir_with(dir, options)
        .map_err(|e| anyhow::anyhow!("{} problem(s) in {}:\n{e}", e.0.len(), dir.display()))
}

fn check_board(file: &Path) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {name}"))?;
    let b = config::check_board(&name, &text)
        .map_err(|e| anyhow::anyhow!("{} problem(s) in {name}:\n{e}", e.0.len()))?;
    let target = b
        .target
        .as_ref()
        .map(|t| format!("{}, MACHINE {}", t.rust_target, t.yocto_machine))
        .unwrap_or_else(|| "no target".into());
    println!(
        "{name}: OK (board {}, {target}, {} serial ports, {} CAN, {} GPIO)",
        b.board,
        b.ports.len(),
        b.can.len(),
        b.gpio.len()
    );
    for (n, p) in &b.ports {
        let dir = match p.direction() {
            Some(config::Direction::Rts) => "RS-485, DE on RTS".to_string(),
            Some(config::Direction::Gpio) => format!(
                "RS-485, DE on GPIO {}",
                p.direction_gpio.as_deref().unwrap_or("?")
            ),
            Some(config::Direction::Auto) => "RS-485, automatic direction".to_string(),
            None => "plain serial".to_string(),
        };
        println!("  port {n}: {} ({dir})", p.device);
    }
    Ok(())
}

/// comsrv's HTTP address: `--addr`, else the configuration's comsrv bind and port.
fn health_addr(dir: Option<&Path>, addr: Option<String>) -> anyhow::Result<String> {
    if let Some(a) = addr {
        return Ok(a);
    }
    let c = match dir {
        Some(d) => load(d, &LoadOptions::default())?.voltage,
        None => config::VoltageConfig::default(),
    };
    let s = &c.services.comsrv;
    let host = if s.bind == "0.0.0.0" || s.bind == "::" {
        "127.0.0.1"
    } else {
        &s.bind
    };
    Ok(format!("{host}:{}", s.port))
}

fn check_config(dir: &Path, options: &LoadOptions) -> anyhow::Result<()> {
    let c = load(dir, options)?;
    for n in &c.migration.notes {
        println!("migrated: {n}");
    }
    let templates =
        modsrv::template::load_dir(&dir.join("modsrv").join("templates")).map_err(|e| {
            anyhow::anyhow!(e
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        })?;
    let thresholds = alarmsrv::monitor::load(dir).map_err(|e| anyhow::anyhow!(e))?;
    for w in &c.warnings {
        println!("warning: {w}");
    }
    let points: usize = c.channels.iter().map(|c| c.points.len()).sum();
    println!(
        "{}: OK ({} channels, {} points, {} model templates, {} threshold rules, {} warnings)",
        dir.display(),
        c.channels.len(),
        points,
        templates.len(),
        thresholds.len(),
        c.warnings.len()
    );
    Ok(())
}

fn redis_url(c: &Config) -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| c.voltage.redis_url())
}

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

async fn run(dir: &Path, only: &[String], options: &LoadOptions) -> anyhow::Result<()> {
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
    if run_h || run_n {
        let wal = hissrv::open_wal(&cfg).await?;
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

async fn load_functions(dir: Option<&Path>, url: Option<String>) -> anyhow::Result<()> {
    let url = match (url, dir) {
        (Some(u), _) => u,
        (None, Some(d)) => redis_url(&load(d, &LoadOptions::default())?),
        (None, None) => {
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        }
    };
    let store = Store::connect(&url, Duration::from_secs(3))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    store.load_functions().await?;
    let v = store.functions_version().await?;
    println!(
        "loaded {} librar{} into {url} (version {})",
        voltage_store::functions::LIBRARIES.len(),
        if voltage_store::functions::LIBRARIES.len() == 1 {
            "y"
        } else {
            "ies"
        },
        v.unwrap_or_default()
    );
    Ok(())
}
