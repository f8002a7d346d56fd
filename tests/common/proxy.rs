//! A TCP proxy between comsrv and a device that a test can cut and restore, to simulate a
//! cable pull or a switch failure without touching the device.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

pub struct NetworkProxy {
    addr: SocketAddr,
    blocked: Arc<AtomicBool>,
    cut: broadcast::Sender<()>,
}

impl NetworkProxy {
    /// Listens on an ephemeral port and forwards to `target`.
    pub async fn new(target: SocketAddr) -> NetworkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("addr");
        let blocked = Arc::new(AtomicBool::new(false));
        let (cut, _) = broadcast::channel(4);
        let (b, c) = (blocked.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if b.load(Ordering::SeqCst) {
                    drop(inbound); // refused: accepted and closed at once
                    continue;
                }
                let mut cut_rx = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.recv() => {}
                    }
                });
            }
        });
        NetworkProxy { addr, blocked, cut }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection and refuses new ones.
    pub async fn block_connections(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    pub async fn allow_connections(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }
}
