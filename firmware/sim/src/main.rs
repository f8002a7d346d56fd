//! `voltage-sim`: run Modbus TCP slave simulators from the command line.
//!
//! Used by the demo (a handful of listeners with seeded, optionally animated
//! values) and by load benchmarks (`--ports ADDR --count N` opens N consecutive
//! ports sharing one bank). Prints `listening <addr>` per listener on stdout once
//! bound, so scripts can wait for readiness and learn ephemeral ports, then runs
//! until SIGINT/SIGTERM.

use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use thiserror::Error;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use voltage_sim::{Animator, Bank, Preset, SimServer};

/// Listen address used when neither --listen nor --ports is given.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5020);

#[derive(Debug, Parser)]
#[command(
    name = "voltage-sim",
    version,
    about = "Modbus TCP slave simulator with fault injection"
)]
struct Args {
    /// Address to listen on; repeatable. Default 127.0.0.1:5020 if no --listen/--ports.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,

    /// First address of a block of consecutive ports (see --count). Port 0 = N ephemeral ports.
    #[arg(long, value_name = "ADDR")]
    ports: Option<SocketAddr>,

    /// Number of consecutive ports opened by --ports.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "ports",
          value_parser = clap::value_parser!(u16).range(1..))]
    count: u16,

    /// Initial value, e.g. 1:hr:100=1234 (TABLE: hr, ir, co, di); repeatable.
    #[arg(long = "set", value_name = "UNIT:TABLE:ADDR=VALUE")]
    set: Vec<Preset>,

    /// Also serve Modbus RTU on this serial device (e.g. one end of a socat pty pair); repeatable.
    #[arg(long, value_name = "DEVICE")]
    rtu: Vec<String>,

    /// Baud rate of the --rtu devices (sets the t3.5 frame gap).
    #[arg(long, default_value_t = 9600)]
    baud: u32,

    /// Hold each RTU answer back by the wire time of request + answer at --baud, so a pty
    /// behaves like a physical line (for bus benchmarks).
    #[arg(long)]
    emulate_wire_time: bool,

    /// Every second, random-walk each --set register by ±1 around its initial value.
    #[arg(long)]
    animate: bool,

    /// Serve runtime fault control on this address (`slave 3 off`, `set 1:hr:0=5`, `get ...`;
    /// see the control module). Prints `control <addr>` once bound.
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
}

#[derive(Debug, Error)]
enum AppError {
    #[error("--ports {base} --count {count} runs past port 65535")]
    PortRange { base: SocketAddr, count: u16 },
    #[error("cannot listen for control on {addr}: {source}")]
    Control { addr: SocketAddr, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot open serial device {device}: {source}")]
    Serial { device: String, source: io::Error },
    #[error("cannot install signal handler: {0}")]
    Signal(io::Error),
}

/// Every address to bind, in order: --listen ones, then the --ports block.
fn listen_addrs(args: &Args) -> Result<Vec<SocketAddr>, AppError> {
    let mut addrs = args.listen.clone();
    if let Some(base) = args.ports {
        for i in 0..args.count {
            let port = if base.port() == 0 {
                0
            } else {
                base.port().checked_add(i).ok_or(AppError::PortRange {
                    base,
                    count: args.count,
                })?
            };
            addrs.push(SocketAddr::new(base.ip(), port));
        }
    }
    if addrs.is_empty() && args.rtu.is_empty() {
        addrs.push(DEFAULT_LISTEN);
    }
    Ok(addrs)
}

/// Resolves on SIGINT or SIGTERM. Handlers are installed before any listener is
/// announced, so a harness may signal as soon as it reads `listening`.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, AppError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => info!("SIGINT received"),
            _ = term.recv() => info!("SIGTERM received"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, AppError> {
    Ok(async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            error!(%err, "ctrl-c handler failed; stopping");
        }
    })
}

async fn run(args: Args) -> Result<(), AppError> {
    let addrs = listen_addrs(&args)?;
    let shutdown = shutdown_signal()?;

    let bank = Bank::new();
    for preset in &args.set {
        preset.apply(&bank);
    }

    let _control = match args.control {
        Some(addr) => {
            let c = voltage_sim::ControlServer::bind(addr, bank.clone())
                .await
                .map_err(|source| AppError::Control { addr, source })?;
            announce_line(&format!("control {}", c.local_addr()));
            Some(c)
        }
        None => None,
    };

    let mut servers = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match SimServer::bind(addr, bank.clone()).await {
            Ok(server) => {
                announce(server.local_addr());
                servers.push(server);
            }
            Err(source) => {
                for server in servers {
                    server.stop().await;
                }
                return Err(AppError::Bind { addr, source });
            }
        }
    }

    let mut rtu_servers = Vec::new();
    for device in &args.rtu {
        match voltage_sim::RtuServer::open_with(
            device,
            args.baud,
            bank.clone(),
            args.emulate_wire_time,
        ) {
            Ok(s) => {
                announce_line(&format!("serial {device}"));
                rtu_servers.push(s);
            }
            Err(source) => {
                return Err(AppError::Serial {
                    device: device.clone(),
                    source,
                })
            }
        }
    }

    let animation = args.animate.then(|| {
        let mut animator = Animator::new(&args.set);
        info!(registers = animator.len(), "animating preset registers");
        let bank = bank.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await; // the first tick is immediate; keep initial values for 1 s
            loop {
                tick.tick().await;
                animator.step(&bank, &mut rand::rng());
            }
        })
    });

    shutdown.await;
    if let Some(task) = animation {
        task.abort();
    }
    for server in servers {
        server.stop().await;
    }
    for server in rtu_servers {
        server.stop().await;
    }
    info!(requests = bank.requests(), "simulator stopped");
    Ok(())
}

/// One `listening <addr>` line, flushed so a reading script sees it at once.
fn announce(addr: SocketAddr) {
    announce_line(&format!("listening {addr}"));
}

fn announce_line(line: &str) {
    let mut out = io::stdout().lock();
    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        // A closed stdout must not kill a simulator other processes depend on.
        error!(%err, "cannot write to stdout");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(argv: &[&str]) -> Result<Vec<SocketAddr>, AppError> {
        let args = Args::try_parse_from(std::iter::once("voltage-sim").chain(argv.iter().copied()))
            .expect("args parse");
        listen_addrs(&args)
    }

    #[test]
    fn default_listen_address() {
        assert_eq!(addrs(&[]).unwrap(), vec![DEFAULT_LISTEN]);
    }

    #[test]
    fn listen_and_port_block_combine() {
        let got = addrs(&[
            "--listen",
            "127.0.0.1:5020",
            "--ports",
            "127.0.0.1:7000",
            "--count",
            "3",
        ]);
        let got: Vec<String> = got.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:5020",
                "127.0.0.1:7000",
                "127.0.0.1:7001",
                "127.0.0.1:7002"
            ]
        );
    }

    #[test]
    fn port_block_overflow_is_an_error() {
        let err = addrs(&["--ports", "127.0.0.1:65535", "--count", "2"]).unwrap_err();
        assert!(matches!(err, AppError::PortRange { .. }));
    }

    #[test]
    fn count_requires_ports_and_presets_parse() {
        let argv = ["voltage-sim", "--count", "3"];
        assert!(Args::try_parse_from(argv).is_err());
        assert!(
            Args::try_parse_from(["voltage-sim", "--ports", "127.0.0.1:1", "--count", "0"])
                .is_err()
        );
        assert!(Args::try_parse_from(["voltage-sim", "--set", "1:zz:0=1"]).is_err());
        let args = Args::try_parse_from([
            "voltage-sim",
            "--set",
            "1:hr:0=5",
            "--set",
            "2:co:1=1",
            "--animate",
        ])
        .unwrap();
        assert_eq!(args.set.len(), 2);
        assert!(args.animate);
        assert!(args.control.is_none());
        let args = Args::try_parse_from(["voltage-sim", "--control", "127.0.0.1:0"]).unwrap();
        assert_eq!(args.control, Some("127.0.0.1:0".parse().unwrap()));
        assert!(Args::try_parse_from(["voltage-sim", "--control", "nowhere"]).is_err());
    }
}
