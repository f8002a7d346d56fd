//! The TCP side: accept loop, one task per connection, orderly shutdown.
//!
//! Each connection is served sequentially (request order = response order, like a
//! real gateway), but all frames already in the receive buffer are answered before
//! the next read and their responses leave in one `write`, which keeps pipelining
//! clients and benchmarks cheap. A configured delay first flushes what is pending,
//! so a slow unit never holds back answers already computed for a fast one.
//!
//! Connection tasks live in a `JoinSet` owned by the accept task. `stop()` (or
//! dropping the [`SimServer`]) makes the accept task drop the listener, abort every
//! connection and wait for them, so the port and all sockets are released when
//! `stop()` returns. A bad frame closes only its own connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, trace, warn};

use crate::bank::Bank;
use crate::mbap::{self, FrameError};
use crate::pdu::handle_pdu;

/// Why a connection ended abnormally.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// The client sent something that is not Modbus TCP.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// A running Modbus TCP slave simulator.
#[derive(Debug)]
pub struct SimServer {
    local_addr: SocketAddr,
    bank: Bank,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SimServer {
    /// Bind a listener (port 0 = ephemeral) and serve in background tokio tasks.
    pub async fn bind(addr: SocketAddr, bank: Bank) -> io::Result<SimServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, bank.clone(), stop_rx));
        info!(%local_addr, "modbus simulator listening");
        Ok(SimServer {
            local_addr,
            bank,
            shutdown,
            task,
        })
    }

    /// The address actually bound (resolves port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to the shared bank (cheap clone).
    pub fn bank(&self) -> Bank {
        self.bank.clone()
    }

    /// Stop accepting AND close every open connection; returns when the port is free.
    pub async fn stop(self) {
        // If the accept task already ended, the receiver is gone; nothing to signal.
        let _ = self.shutdown.send(());
        if let Err(err) = self.task.await {
            warn!(addr = %self.local_addr, %err, "accept task ended abnormally");
        }
        info!(addr = %self.local_addr, "modbus simulator stopped");
    }
}

async fn accept_loop(listener: TcpListener, bank: Bank, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            // Fires on stop() and also when the SimServer is dropped.
            _ = &mut stop => break,
            Some(joined) = conns.join_next(), if !conns.is_empty() => {
                if let Err(err) = joined {
                    warn!(%err, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve_connection(stream, peer, bank.clone()));
                }
                Err(err) => {
                    // E.g. EMFILE: back off instead of spinning, keep serving.
                    warn!(%err, "accept failed");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let open = conns.len();
    conns.shutdown().await;
    debug!(closed = open, "listener and connections closed");
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, bank: Bank) {
    debug!(%peer, "connection opened");
    match run_connection(&mut stream, &bank).await {
        Ok(()) => debug!(%peer, "connection closed by peer"),
        Err(ConnectionError::Frame(err)) => warn!(%peer, %err, "closing connection"),
        Err(ConnectionError::Io(err)) => debug!(%peer, %err, "connection failed"),
    }
}

/// Serve one connection until EOF or error.
async fn run_connection(stream: &mut TcpStream, bank: &Bank) -> Result<(), ConnectionError> {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%err, "could not set TCP_NODELAY");
    }
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut outbuf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if inbuf.capacity() - inbuf.len() < 512 {
            inbuf.reserve(4096);
        }
        if stream.read_buf(&mut inbuf).await? == 0 {
            if !inbuf.is_empty() {
                debug!(pending = inbuf.len(), "peer closed mid-frame");
            }
            return Ok(());
        }
        loop {
            let frame = match mbap::decode(&inbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    // Answer what was valid before the garbage, then give up.
                    flush(stream, &mut outbuf).await?;
                    return Err(err.into());
                }
            };
            let delay = bank.response_delay(frame.header.unit);
            if !delay.is_zero() {
                flush(stream, &mut outbuf).await?;
                tokio::time::sleep(delay).await;
            }
            match handle_pdu(bank, frame.header.unit, frame.pdu) {
                Some(resp) => mbap::encode(frame.header, &resp, &mut outbuf),
                None => trace!(unit = frame.header.unit, "request dropped (silent unit)"),
            }
            let consumed = frame.len;
            inbuf.advance(consumed);
        }
        flush(stream, &mut outbuf).await?;
    }
}

async fn flush(stream: &mut TcpStream, outbuf: &mut Vec<u8>) -> io::Result<()> {
    if !outbuf.is_empty() {
        stream.write_all(outbuf).await?;
        outbuf.clear();
    }
    Ok(())
}
