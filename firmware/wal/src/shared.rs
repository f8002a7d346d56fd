//! The log as the async services share it: one thread owns it and runs operations in order.
//!
//! The log does file I/O and fsync, so it must not run on the async workers. Operations used to
//! go to tokio's blocking pool (`spawn_blocking`) and wait there for a mutex: while one fsync or
//! segment rotation held it, every other caller parked a pool thread, the pool grew to the
//! burst's size, and steady traffic kept those threads alive because the pool wakes its idle
//! threads in turn (a soak run went from 4 to 104 threads). Queuing on an async lock first still
//! let the pool ratchet up whenever the next holder arrived before the previous thread was idle.
//! A log thread of its own makes the count exact: one thread, for the life of the log, however
//! many sinks and requests wait. A caller that gives up (its future is dropped) before its turn
//! costs nothing: its operation is skipped.

use crate::Wal;
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Wal) + Send>;

/// A cloneable handle to one open log, shared by the history writer, its sinks and queries.
/// The log (and its thread) closes when the last handle is dropped.
#[derive(Clone)]
pub struct SharedWal(mpsc::Sender<Job>);

impl SharedWal {
    /// Moves an open log onto its own thread (`voltage-wal`).
    ///
    /// # Panics
    /// When the OS refuses a new thread (the daemon cannot run without its log).
    pub fn new(mut wal: Wal) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("voltage-wal".into())
            .spawn(move || {
                for job in rx {
                    job(&mut wal);
                }
            })
            .expect("starting the history log thread");
        Self(tx)
    }

    /// Runs `f` on the log's thread after every operation queued before it.
    ///
    /// # Panics
    /// Re-raises a panic of `f` in the caller; the log thread itself keeps running.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Wal) -> T + Send + 'static,
    ) -> T {
        let (reply, answer) = oneshot::channel::<Result<T, Box<dyn Any + Send>>>();
        let job: Job = Box::new(move |wal| {
            if reply.is_closed() {
                return; // the caller gave up while it waited
            }
            let _ = reply.send(catch_unwind(AssertUnwindSafe(|| f(wal))));
        });
        self.0
            .send(job)
            .expect("the history log thread is running while a handle exists");
        match answer
            .await
            .expect("the history log thread answers every operation")
        {
            Ok(v) => v,
            Err(panic) => resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Record, WalConfig};
    use std::sync::Arc;

    fn rec(i: u64) -> Record {
        Record {
            ts_ns: i as i64,
            channel: 1,
            kind: b'T',
            point: 1,
            value: i as f64,
        }
    }

    #[test]
    fn many_concurrent_callers_start_no_runtime_thread() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let started = Arc::new(AtomicUsize::new(0));
        let counter = started.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(move || {
                counter.fetch_add(1, SeqCst);
            })
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(WalConfig::new(dir.path())).unwrap();
        let shared = SharedWal::new(wal);
        let appended = rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..64u64 {
                let s = shared.clone();
                tasks.push(tokio::spawn(async move {
                    s.with(move |w| {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        w.append(&[rec(i)]).unwrap();
                    })
                    .await
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            shared.with(|w| w.next_seq()).await
        });
        assert_eq!(appended, 64, "every append landed");
        // 2 workers + the blocking thread(s) the log used one after another; handing every
        // caller to the pool at once would have started close to 64.
        let threads = started.load(SeqCst);
        assert!(
            threads <= 2 + 2,
            "{threads} runtime threads started for 64 queued log operations"
        );
    }

    #[tokio::test]
    async fn a_caller_cancelled_while_it_waits_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(WalConfig::new(dir.path())).unwrap();
        let shared = SharedWal::new(wal);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let s = shared.clone();
        let busy = tokio::spawn(async move { s.with(move |_| gate.recv().unwrap()).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let s = shared.clone();
        let waiting = tokio::spawn(async move { s.with(|w| w.append(&[rec(1)]).unwrap()).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waiting.abort();
        let _ = waiting.await;
        release.send(()).unwrap();
        busy.await.unwrap();
        assert_eq!(
            shared.with(|w| w.next_seq()).await,
            0,
            "the cancelled append never ran"
        );
    }

    #[tokio::test]
    async fn a_panicking_operation_reaches_its_caller_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(WalConfig::new(dir.path())).unwrap();
        let shared = SharedWal::new(wal);
        let s = shared.clone();
        let r = tokio::spawn(async move { s.with(|_| panic!("boom")).await }).await;
        assert!(r.unwrap_err().is_panic());
        shared.with(|w| w.append(&[rec(1)]).unwrap()).await;
        assert_eq!(shared.with(|w| w.next_seq()).await, 1);
    }
}
