//! Watching the configuration directory (inotify through `notify`) with a debounce, so that an
//! editor's save (often several events: truncate, write, rename) triggers one reload.
//!
//! The debounce runs in its own task and hands out settled changes through a channel, so
//! [`ConfigWatcher::changed`] is cancel-safe: the supervisor selects on it together with other
//! timers, and a cancelled wait must not swallow an edit.

use crate::ComsrvError;
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last event before a reload.
const DEBOUNCE: Duration = Duration::from_millis(300);

pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    settled: mpsc::Receiver<()>,
    debounce: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.debounce.abort();
    }
}

impl ConfigWatcher {
    pub fn new(dir: &Path) -> Result<Self, ComsrvError> {
        let (tx, events) = mpsc::unbounded_channel();
        let err = |e: notify::Error| ComsrvError::Watch {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if !matches!(ev.kind, notify::EventKind::Access(_)) {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(err)?;
        watcher.watch(dir, RecursiveMode::Recursive).map_err(err)?;
        let (tx, settled) = mpsc::channel(1);
        let debounce = tokio::spawn(debounce(events, tx));
        Ok(ConfigWatcher {
            _watcher: watcher,
            settled,
            debounce,
        })
    }

    /// Resolves after a burst of changes has settled. Cancel-safe.
    pub async fn changed(&mut self) {
        if self.settled.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

async fn debounce(mut events: mpsc::UnboundedReceiver<()>, settled: mpsc::Sender<()>) {
    while events.recv().await.is_some() {
        loop {
            match tokio::time::timeout(DEBOUNCE, events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        // A full channel already holds a pending change: nothing is lost by coalescing.
        let _ = settled.try_send(());
    }
}
