//! Watching the configuration directory (inotify through `notify`) with a debounce, so that an
//! editor's save (often several events: truncate, write, rename) triggers one reload.

use crate::ComsrvError;
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last event before a reload.
const DEBOUNCE: Duration = Duration::from_millis(300);

pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
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
        Ok(ConfigWatcher {
            _watcher: watcher,
            events,
        })
    }

    /// Resolves after a burst of changes has settled.
    pub async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        loop {
            match tokio::time::timeout(DEBOUNCE, self.events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    }
}
