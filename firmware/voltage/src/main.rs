//! `voltage`: the VoltageEMS edge firmware daemon and its command line.
//!
//! This binary only wires things together: it parses the command line, loads the configuration,
//! connects to Redis, loads the Redis Functions, starts the enabled services and turns SIGTERM /
//! SIGINT into an orderly shutdown. Everything with behaviour lives in the library crates.

mod daemon;
mod health;
mod notify;
mod plan;
mod token;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use voltage_core::config::{self, Config, LoadOptions};
use voltage_store::Store;

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
        /// Only these channels must poll (one id per line, `#` comments): the channels that
        /// polled before an update, as `--list-connected` wrote them.
        #[arg(long, conflicts_with = "list_connected")]
        baseline: Option<PathBuf>,
        /// Print the ids of the channels polling now, one per line, and exit.
        #[arg(long)]
        list_connected: bool,
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
        } => runtime()
            .and_then(|rt| rt.block_on(daemon::run(&config, &only, &LoadOptions { board }))),
        Command::Health {
            config,
            addr,
            wait,
            baseline,
            list_connected,
        } => runtime().and_then(|rt| {
            rt.block_on(async {
                let addr = health_addr(config.as_deref(), addr)?;
                if list_connected {
                    return health::list_connected(&addr).await.map(|ids| emit(&ids));
                }
                let baseline = match baseline {
                    Some(f) => {
                        let text = std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?;
                        Some(health::parse_baseline(&text, &f.display().to_string())?)
                    }
                    None => None,
                };
                health::run(&addr, Duration::from_secs(wait), baseline.as_ref()).await
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

/// The blocking pool's cap. The daemon's blocking work is the history log (one operation at a
/// time, see `voltage_wal::SharedWal`) and name lookups of upstream hosts; tokio's default of
/// 512 threads would let a burst pin megabytes of stacks on a controller with 256 MiB of RAM.
const MAX_BLOCKING_THREADS: usize = 16;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn load(dir: &Path, options: &LoadOptions) -> anyhow::Result<Config> {
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

pub(crate) fn redis_url(c: &Config) -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| c.voltage.redis_url())
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
