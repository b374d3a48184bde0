//! Workers that run pending operations, and the retention sweeper.

use super::{POLL_INTERVAL, Queue};
use crate::{
    domain::{
        commands::{Command, Outcome},
        now_micros,
    },
    error::{Error, Result},
    store::{
        WriteTx,
        operations::{self as db, state},
    },
};
use std::time::Duration;
use tokio::{sync::watch, task::JoinSet};

/// Most operations one worker runs in one transaction.
const BATCH: usize = 32;

/// How a claimed operation ended.
enum Finished {
    Succeeded,
    Cancelled,
    Failed,
}

impl Finished {
    fn label(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
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
            let pause = match self.run_batch(&worker).await {
                Ok(0) => POLL_INTERVAL,
                Ok(_) => continue,
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

    /// Claims and runs up to [`BATCH`] runnable operations in one
    /// transaction (group commit: one commit for the batch). Each operation
    /// is applied inside a savepoint together with its completion, so one
    /// that fails rolls back alone and is recorded as failed; a database
    /// failure rolls back the whole batch, leaving every operation pending.
    /// Returns how many operations finished.
    pub async fn run_batch(&self, worker: &str) -> Result<usize> {
        let tx = self.store().write().await?;
        let mut finished = Vec::new();
        let mut acl_guards = Vec::new();
        while finished.len() < BATCH {
            let now = now_micros();
            let lease_until = now + i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX);
            let Some(row) = db::claim_next(&*tx, worker, now, lease_until).await? else {
                break;
            };
            let started = std::time::Instant::now();
            let outcome = match serde_json::from_str::<Command>(&row.command) {
                Ok(command) => {
                    acl_guards.push(self.service().acl_write(command.organization_id()));
                    self.apply(&tx, &row, worker, &command, now).await?
                }
                Err(err) => {
                    let err = Error::internal(format!("unreadable command: {err}"));
                    self.record_failure(&tx, &row.id, worker, &err).await?
                }
            };
            db::notify(&*tx, db::FINISHED_CHANNEL, &row.id).await?;
            metrics::histogram!("rolekeeper_operation_duration_seconds", "verb" => row.verb.clone(), "outcome" => outcome.label())
                .record(started.elapsed().as_secs_f64());
            finished.push(row.id);
        }
        if finished.is_empty() {
            return Ok(0);
        }
        tx.commit().await?;
        drop(acl_guards);
        for id in &finished {
            self.announce(id);
        }
        // More may be runnable: let another idle worker look.
        self.wake_workers.notify_one();
        Ok(finished.len())
    }

    /// Applies `command` and completes its operation inside a savepoint of
    /// `tx`. A command that fails is rolled back and recorded as failed;
    /// database failures propagate (and roll back the whole batch).
    async fn apply(
        &self,
        tx: &WriteTx,
        row: &db::OperationRow,
        worker: &str,
        command: &Command,
        now: i64,
    ) -> Result<Finished> {
        let savepoint = sea_orm::TransactionTrait::begin(&**tx).await?;
        match self.service().apply_command(&savepoint, command, now).await {
            Ok(outcome) => {
                let result =
                    serde_json::to_string(&Ok::<_, Error>(outcome)).map_err(Error::internal)?;
                let state = state::SUCCEEDED;
                if db::finish(
                    &savepoint,
                    &row.id,
                    worker,
                    state,
                    result,
                    row.requested_items,
                    now_micros(),
                )
                .await?
                {
                    savepoint.commit().await?;
                    Ok(Finished::Succeeded)
                } else {
                    // Cancellation was requested while it was claimed.
                    savepoint.rollback().await?;
                    self.cancel_claimed(tx, &row.id).await?;
                    Ok(Finished::Cancelled)
                }
            }
            Err(err @ Error::Unavailable { .. }) => Err(err),
            Err(err) => {
                savepoint.rollback().await?;
                self.record_failure(tx, &row.id, worker, &err).await
            }
        }
    }

    /// Ends a claimed operation with `err` (or cancelled, if that was asked).
    async fn record_failure(
        &self,
        tx: &WriteTx,
        id: &str,
        worker: &str,
        err: &Error,
    ) -> Result<Finished> {
        let result = serde_json::to_string(&Err::<Outcome, _>(err)).map_err(Error::internal)?;
        if db::finish(&**tx, id, worker, state::FAILED, result, 0, now_micros()).await? {
            Ok(Finished::Failed)
        } else {
            self.cancel_claimed(tx, id).await?;
            Ok(Finished::Cancelled)
        }
    }

    async fn cancel_claimed(&self, tx: &WriteTx, id: &str) -> Result<()> {
        let cancelled = serde_json::to_string(&Err::<Outcome, Error>(Error::Cancelled))
            .map_err(Error::internal)?;
        db::cancel(&**tx, id, cancelled, now_micros(), false).await?;
        Ok(())
    }
}
