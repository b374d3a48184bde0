//! Workers that run pending operations, and the retention sweeper.

use super::{POLL_INTERVAL, Queue};
use crate::{
    domain::{
        commands::{Command, Outcome},
        now_micros,
    },
    error::{Error, Result},
    store::operations::{self as db, state},
};
use std::time::Duration;
use tokio::{sync::watch, task::JoinSet};

/// How a claimed operation ended.
enum Finished {
    Succeeded,
    Cancelled,
    Failed(Error),
}

impl Finished {
    fn label(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Cancelled => "cancelled",
            Self::Failed(_) => "failed",
        }
    }
}

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
        queue.wake_workers.notify_one();
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
                        Ok(note) if note.channel() == db::FINISHED_CHANNEL => queue.announce(note.payload()),
                        Ok(_) => queue.wake_workers.notify_one(),
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
        while !*shutdown.borrow() {
            let pause = match self.run_one(&worker).await {
                Ok(true) => continue,
                Ok(false) => POLL_INTERVAL,
                Err(err) => {
                    tracing::warn!(worker, %err, "operation worker failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = self.wake_workers.notified() => {}
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        }
    }

    /// Claims and runs one operation; `false` when none was runnable.
    pub async fn run_one(&self, worker: &str) -> Result<bool> {
        let now = now_micros();
        let lease_until = now + i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX);
        let tx = self.store().write().await?;
        let Some(row) = db::claim_next(&*tx, worker, now, lease_until).await? else {
            return Ok(false);
        };
        tx.commit().await?;
        // More may be runnable: let another idle worker look.
        self.wake_workers.notify_one();

        let started = std::time::Instant::now();
        let finished = match serde_json::from_str::<Command>(&row.command) {
            Ok(command) => match self
                .apply(&row.id, worker, &command, row.requested_items)
                .await
            {
                Ok(finished) => finished,
                Err(err) => {
                    // Transient (database busy or unreachable): nothing was
                    // applied; hand the operation back for a prompt retry.
                    // If even that fails, the lease expires and frees it.
                    if let Ok(tx) = self.store().write().await
                        && db::release(&*tx, &row.id, worker).await.is_ok()
                    {
                        let _ = tx.commit().await;
                    }
                    return Err(err);
                }
            },
            Err(err) => Finished::Failed(Error::internal(format!("unreadable command: {err}"))),
        };
        if let Finished::Failed(err) = &finished {
            // The changes were rolled back; record the failure on its own.
            let tx = self.store().write().await?;
            let result = serde_json::to_string(&Err::<Outcome, _>(err)).map_err(Error::internal)?;
            let recorded = db::finish(
                &*tx,
                &row.id,
                worker,
                state::FAILED,
                result,
                0,
                now_micros(),
            )
            .await?;
            if !recorded {
                self.cancel_claimed(&tx, &row.id).await?;
            }
            db::notify(&*tx, db::FINISHED_CHANNEL, &row.id).await?;
            tx.commit().await?;
        }
        let outcome = finished.label();
        metrics::histogram!("rolekeeper_operation_duration_seconds", "verb" => row.verb.clone(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            operation = row.id,
            verb = row.verb,
            outcome,
            "operation finished"
        );
        self.announce(&row.id);
        Ok(true)
    }

    /// Applies `command` and completes the operation in one transaction.
    /// A failed command is returned for recording (nothing was applied).
    async fn apply(
        &self,
        id: &str,
        worker: &str,
        command: &Command,
        items: i64,
    ) -> Result<Finished> {
        let _acl = self.service().acl_write(command.organization_id());
        let tx = self.store().write().await?;
        let now = now_micros();
        match self.service().apply_command(&*tx, command, now).await {
            Ok(outcome) => {
                let result =
                    serde_json::to_string(&Ok::<_, Error>(outcome)).map_err(Error::internal)?;
                if db::finish(&*tx, id, worker, state::SUCCEEDED, result, items, now).await? {
                    db::notify(&*tx, db::FINISHED_CHANNEL, id).await?;
                    tx.commit().await?;
                    Ok(Finished::Succeeded)
                } else {
                    // Cancelled while running (or the lease was lost): roll
                    // back the changes and end it cancelled.
                    drop(tx);
                    let tx = self.store().write().await?;
                    self.cancel_claimed(&tx, id).await?;
                    db::notify(&*tx, db::FINISHED_CHANNEL, id).await?;
                    tx.commit().await?;
                    Ok(Finished::Cancelled)
                }
            }
            Err(err @ Error::Unavailable { .. }) => Err(err),
            Err(err) => Ok(Finished::Failed(err)),
        }
    }

    async fn cancel_claimed(&self, tx: &crate::store::WriteTx, id: &str) -> Result<()> {
        let cancelled = serde_json::to_string(&Err::<Outcome, Error>(Error::Cancelled))
            .map_err(Error::internal)?;
        db::cancel(&**tx, id, cancelled, now_micros(), false).await?;
        Ok(())
    }
}
