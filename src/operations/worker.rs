//! Workers that run pending operations, and the retention sweeper.

use super::{
    POLL_INTERVAL, Queue,
    runner::{Batch, Isolation},
};
use crate::{domain::now_micros, error::Result, store::operations as db};
use std::time::Duration;
use tokio::{sync::watch, task::JoinSet};

/// Most operations one worker runs in one transaction.
const BATCH: u64 = 32;

/// Running worker tasks.
#[derive(Debug)]
pub struct Workers {
    tasks: JoinSet<()>,
}

impl Workers {
    /// Waits for every worker to finish its current operation and stop.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts `count` workers; they stop when `shutdown` turns true, after the
/// operation they are running.
pub async fn spawn_workers(
    queue: &Queue,
    count: usize,
    shutdown: watch::Receiver<bool>,
) -> Result<Workers> {
    let released = db::release_orphaned_claims(queue.store()).await?;
    if released > 0 {
        tracing::info!(released, "resuming operations interrupted by a restart");
    }
    let mut tasks = JoinSet::new();
    let instance = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..count {
        let queue = queue.clone();
        let name = format!("{}-{n}", &instance[..12]);
        let shutdown = shutdown.clone();
        tasks.spawn(async move { queue.work(name, shutdown).await });
    }
    if count > 0 {
        queue.runner.wake_workers.notify_one();
    }
    Ok(Workers { tasks })
}

/// On PostgreSQL, relays other replicas' notifications: a finished
/// operation wakes this process's `WaitOperation` callers, a new one wakes
/// its workers. Reconnects after a lost connection; polling covers the gap.
pub fn spawn_listener(
    queue: &Queue,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let queue = queue.clone();
    tokio::spawn(async move {
        while !*shutdown.borrow() {
            let listener = queue
                .store()
                .listen(&[db::FINISHED_CHANNEL, db::SUBMITTED_CHANNEL])
                .await;
            let mut listener = match listener {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(%err, "operation notifications unavailable; polling");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            };
            loop {
                tokio::select! {
                    received = listener.recv() => match received {
                        Ok(note) if note.channel() == db::FINISHED_CHANNEL => queue.runner.announce(note.payload()),
                        Ok(_) => queue.runner.wake_workers.notify_one(),
                        Err(err) => {
                            tracing::warn!(%err, "lost the notification connection; reconnecting");
                            break;
                        }
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        }
    })
}

/// Starts the sweeper that removes operations finished longer than
/// `retention` ago.
pub fn spawn_retention(
    queue: &Queue,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let queue = queue.clone();
    let period = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
    tokio::spawn(async move {
        loop {
            let cutoff = now_micros() - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
            match queue.store().write().await {
                Ok(tx) => match db::delete_finished_before(&*tx, cutoff).await {
                    Ok(removed) => {
                        if let Err(err) = tx.commit().await {
                            tracing::warn!(%err, "retention sweep failed");
                        } else if removed > 0 {
                            tracing::info!(removed, "removed expired operations");
                        }
                    }
                    Err(err) => tracing::warn!(%err, "retention sweep failed"),
                },
                Err(err) => tracing::warn!(%err, "retention sweep failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    })
}

impl Queue {
    async fn work(self, worker: String, mut shutdown: watch::Receiver<bool>) {
        let mut isolation = Isolation::Shared;
        while !*shutdown.borrow() {
            let pause = match self.run_batch(&worker, isolation).await {
                Ok(finished) => {
                    isolation = Isolation::Shared;
                    if finished > 0 {
                        continue;
                    }
                    POLL_INTERVAL
                }
                Err(err) if isolation == Isolation::Shared && !err.is_unavailable() => {
                    tracing::warn!(worker, %err, "operation batch failed; retrying each operation in a savepoint");
                    isolation = Isolation::Savepoint;
                    continue;
                }
                Err(err) => {
                    tracing::warn!(worker, %err, "operation worker failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = self.runner.wake_workers.notified() => {}
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        }
    }

    /// Claims and runs up to [`BATCH`] runnable operations in one
    /// transaction (group commit: one commit for the batch); see the
    /// runner for how each is applied. Returns how many finished.
    async fn run_batch(&self, worker: &str, isolation: Isolation) -> Result<usize> {
        let tx = self.store().write().await?;
        let rows = self.runner.claim(&tx, BATCH, worker).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::default();
        self.runner
            .run_all(&tx, &rows, worker, isolation, &mut batch)
            .await?;
        batch.publish(self.service(), &tx).await?;
        tx.commit().await?;
        let finished = self.runner.committed(batch).len();
        // More may be runnable: let another idle worker look.
        self.runner.wake_workers.notify_one();
        Ok(finished)
    }
}
