//! `httpjson-plugin`: serves an HTTP/JSON inverter to comsrv as a `protocol: grpc` channel.
//!
//! ```text
//! httpjson-plugin --device http://192.168.1.20 --listen 127.0.0.1:50051
//! httpjson-plugin --device http://192.168.1.20 --unix /run/voltage/inverter.sock
//! ```
//!
//! Prints `listening on ADDR` on stdout once it accepts connections (with `--listen
//! 127.0.0.1:0` the address shows the port the system chose).

mod service;

use clap::Parser;
use std::time::Duration;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use voltage_plugin::v1::protocol_plugin_server::ProtocolPluginServer;

#[derive(Parser)]
#[command(
    version,
    about = "Example VoltageEMS protocol plugin: an inverter with an HTTP/JSON API"
)]
struct Args {
    /// Base URL of the device's HTTP API.
    #[arg(long)]
    device: String,
    /// TCP address to serve the plugin contract on.
    #[arg(long, conflicts_with = "unix", required_unless_present = "unix")]
    listen: Option<std::net::SocketAddr>,
    /// Unix socket to serve the plugin contract on (replaced if it exists).
    #[arg(long)]
    unix: Option<std::path::PathBuf>,
    /// Deadline of one HTTP request to the device, ms.
    #[arg(long, default_value_t = 500)]
    device_timeout_ms: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(a.device_timeout_ms))
        .build()?;
    let svc = ProtocolPluginServer::new(service::HttpJson {
        device: a.device.trim_end_matches('/').to_string(),
        http,
    });
    let server = tonic::transport::Server::builder().add_service(svc);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    if let Some(path) = a.unix {
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path)?;
        println!("listening on unix://{}", path.display());
        server
            .serve_with_incoming_shutdown(UnixListenerStream::new(l), stop)
            .await?;
        let _ = std::fs::remove_file(&path);
    } else {
        let l = tokio::net::TcpListener::bind(a.listen.expect("clap requires it")).await?;
        println!("listening on http://{}", l.local_addr()?);
        server
            .serve_with_incoming_shutdown(TcpListenerStream::new(l), stop)
            .await?;
    }
    Ok(())
}
