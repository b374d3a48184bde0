//! Runs operations inside a caller's write transaction. Shared by the
//! workers, which claim the oldest runnable operations and record how each
//! ended in its row ([`Runner::run_all`]), and by the intake, which applies
//! small operations before inserting them already finished
//! ([`Runner::apply_all`]). Consecutive Assign/RevokeUserRoles of a batch
//! are applied together in a fixed number of statements. An operation
//! whose re-check fails ends failed (it has written nothing); an
//! unexpected failure rolls the whole transaction back, leaving every
//! operation in it pending, and the workers retry with each operation in a
//! savepoint ([`Isolation`]), so that one bad operation fails alone instead
//! of holding up the rest.

use super::cancels::CancelRequests;
use crate::{
    domain::{
        Service,
        commands::{Command, Outcome},
        now_micros,
        read_cache::WriteGuard,
        user_role_batch::UserRolesChange,
    },
    error::{Error, Result},
    store::operations::{self as db, OperationRow, state},
};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use std::{sync::Arc, time::Duration};
use tokio::sync::{Notify, broadcast};

/// How a claimed operation ended, as its row records it.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The operation.
    pub id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub state: &'static str,
    /// Its response or error.
    pub result: Result<Outcome, Error>,
    /// Items processed.
    pub processed_items: i64,
    /// When it was first claimed.
    pub start_time: Option<i64>,
    /// When it ended.
    pub end_time: i64,
}

impl Ended {
    /// `row`'s operation ending now in `state` with `result`.
    fn new(
        row: &OperationRow,
        state: &'static str,
        result: Result<Outcome, Error>,
        processed_items: i64,
    ) -> Self {
        Self {
            id: row.id.clone(),
            state,
            result,
            processed_items,
            start_time: row.start_time,
            end_time: now_micros(),
        }
    }

    /// Its row's ending, with `result` as [`Ended::serialized`] made it.
    pub fn finish<'a>(&'a self, result: &'a str) -> db::Finish<'a> {
        db::Finish {
            id: &self.id,
            state: self.state,
            result,
            processed_items: self.processed_items,
            end_time: self.end_time,
        }
    }

    /// The result as the row stores it.
    pub fn serialized(&self) -> Result<String> {
        serde_json::to_string(&self.result).map_err(Error::internal)
    }
}

/// How the operations of one transaction are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// No savepoints: one that fails its re-check has written nothing and
    /// is recorded as failed; any other error fails the whole transaction.
    /// Two statements fewer per operation.
    Shared,
    /// Each in a savepoint, so that even an unexpected error fails it
    /// alone. For the retry of a transaction that failed shared.
    Savepoint,
}

/// The operations ended in one transaction, and the read-cache guards to
/// hold until it has committed.
#[derive(Debug, Default)]
pub struct Batch {
    ended: Vec<Ended>,
    guards: Vec<WriteGuard>,
}

impl Batch {
    /// Operations ended so far.
    pub fn len(&self) -> usize {
        self.ended.len()
    }

    /// How they ended, in order.
    pub fn ended(&self) -> &[Ended] {
        &self.ended
    }

    /// Tells other replicas that it changed cached reads; call it last
    /// before the commit (see [`Service::publish`]).
    pub async fn publish(&self, service: &Service, tx: &DatabaseTransaction) -> Result<()> {
        let organizations: Vec<_> = self
            .guards
            .iter()
            .map(WriteGuard::organization_id)
            .collect();
        service.publish(tx, &organizations).await
    }

    /// Adds `row`'s operation, which ended, having run since `started`.
    fn add(&mut self, ended: Ended, row: &OperationRow, started: std::time::Instant) {
        metrics::histogram!("rolekeeper_operation_duration_seconds", "verb" => row.verb.clone(), "outcome" => ended.state)
            .record(started.elapsed().as_secs_f64());
        self.ended.push(ended);
    }
}

/// Claims and applies operations; wakes workers and `WaitOperation` callers.
#[derive(Clone, Debug)]
pub struct Runner {
    service: Service,
    /// A claim lapses after this long, letting another worker (or replica)
    /// take over an operation whose worker died.
    lease: Duration,
    pub(super) wake_workers: Arc<Notify>,
    completed: broadcast::Sender<String>,
    /// Cancellations not yet written; a claimed one is cancelled.
    pub(super) cancels: CancelRequests,
}

impl Runner {
    /// A runner over `service` whose claims last `lease`.
    pub fn new(service: Service, lease: Duration) -> Self {
        let (completed, _) = broadcast::channel(1024);
        Self {
            service,
            lease,
            wake_workers: Arc::new(Notify::new()),
            completed,
            cancels: CancelRequests::default(),
        }
    }

    /// The domain service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Tells waiters that operation `id` finished.
    pub fn announce(&self, id: &str) {
        let _ = self.completed.send(id.to_owned());
    }

    /// Completions, for `WaitOperation`.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.completed.subscribe()
    }

    /// When a claim made now lapses.
    pub fn lease_until(&self) -> i64 {
        now_micros().saturating_add(i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX))
    }

    /// Claims up to `limit` runnable operations in `tx` for `worker`;
    /// returns them in acceptance order, those with a cancellation on its
    /// way flagged as asked to cancel.
    pub async fn claim(
        &self,
        tx: &DatabaseTransaction,
        limit: u64,
        worker: &str,
    ) -> Result<Vec<OperationRow>> {
        let lease_until = self.lease_until();
        let mut rows = db::claim(tx, limit, worker, now_micros(), lease_until).await?;
        self.cancels.flag(&mut rows);
        Ok(rows)
    }

    /// Runs claimed operations to their end in `tx` and records how each
    /// ended in its row, adding them to `batch`.
    pub async fn run_all(
        &self,
        tx: &DatabaseTransaction,
        rows: &[OperationRow],
        worker: &str,
        isolation: Isolation,
        batch: &mut Batch,
    ) -> Result<()> {
        if isolation == Isolation::Savepoint {
            for row in rows {
                self.run_isolated(tx, row, worker, batch).await?;
            }
            return Ok(());
        }
        let started = std::time::Instant::now();
        let (cancelled, live): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.cancel_requested);
        for row in cancelled {
            let ended = self.cancel_claimed(tx, row).await?;
            db::notify(tx, db::FINISHED_CHANNEL, &row.id).await?;
            batch.add(ended, row, started);
        }
        let from = batch.len();
        self.apply_all(tx, &live, batch).await?;
        let ended = &batch.ended[from..];
        if self.finish_all(tx, worker, ended).await? != ended.len() {
            return Err(Error::internal("an operation changed under its claim"));
        }
        let ids: Vec<_> = ended.iter().map(|e| e.id.as_str()).collect();
        Ok(db::notify_all(tx, db::FINISHED_CHANNEL, &ids).await?)
    }

    /// Applies the commands of `rows` (claimed, none asked to cancel) in
    /// `tx`, in order, and adds how each ended to `batch` without recording
    /// it in its row. A command that no longer fits its re-check has
    /// written nothing and ends failed; any other error fails the call.
    /// Consecutive Assign/RevokeUserRoles (each on its own user: a claim
    /// never holds two operations on one target) are applied together, in
    /// a fixed number of statements.
    pub async fn apply_all(
        &self,
        tx: &DatabaseTransaction,
        rows: &[&OperationRow],
        batch: &mut Batch,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let commands: Vec<_> = rows
            .iter()
            .map(|row| serde_json::from_str::<Command>(&row.command))
            .collect();
        let mut together = Vec::new();
        for (&row, command) in rows.iter().zip(&commands) {
            if let Ok(command) = command {
                batch
                    .guards
                    .push(self.service.acl_write(command.organization_id()));
                if let Some(change) = UserRolesChange::of(command) {
                    together.push((row, change));
                    continue;
                }
            }
            self.apply_together(tx, &together, batch, started).await?;
            together.clear();
            let ended = match command {
                Ok(command) => self.apply_one(tx, row, command).await?,
                Err(err) => Ended::new(row, state::FAILED, Err(unreadable(err)), 0),
            };
            batch.add(ended, row, started);
        }
        self.apply_together(tx, &together, batch, started).await
    }

    /// Re-checks and applies one command.
    async fn apply_one(
        &self,
        tx: &DatabaseTransaction,
        row: &OperationRow,
        command: &Command,
    ) -> Result<Ended> {
        let checked = match self.service.recheck_command(tx, command).await {
            Ok(checked) => checked,
            Err(err) if err.is_fault() => return Err(err),
            Err(err) => return Ok(Ended::new(row, state::FAILED, Err(err), 0)),
        };
        let outcome = self
            .service
            .execute_command(tx, command, checked, now_micros())
            .await?;
        Ok(Ended::new(
            row,
            state::SUCCEEDED,
            Ok(outcome),
            row.requested_items,
        ))
    }

    /// Applies user role changes of different users together.
    async fn apply_together(
        &self,
        tx: &DatabaseTransaction,
        changes: &[(&OperationRow, UserRolesChange<'_>)],
        batch: &mut Batch,
        started: std::time::Instant,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let (rows, changes): (Vec<_>, Vec<_>) = changes.iter().copied().unzip();
        let results = self
            .service
            .apply_user_role_changes(tx, &changes, now_micros())
            .await?;
        for (row, result) in rows.into_iter().zip(results) {
            let ended = match result {
                Ok(outcome) => Ended::new(row, state::SUCCEEDED, Ok(outcome), row.requested_items),
                Err(err) => Ended::new(row, state::FAILED, Err(err), 0),
            };
            batch.add(ended, row, started);
        }
        Ok(())
    }

    /// Runs one claimed operation to its end in a savepoint of `tx` and
    /// records it, adding it to `batch`.
    async fn run_isolated(
        &self,
        tx: &DatabaseTransaction,
        row: &OperationRow,
        worker: &str,
        batch: &mut Batch,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let ended = if row.cancel_requested {
            self.cancel_claimed(tx, row).await?
        } else {
            match serde_json::from_str::<Command>(&row.command) {
                Ok(command) => {
                    batch
                        .guards
                        .push(self.service.acl_write(command.organization_id()));
                    self.apply_isolated(tx, row, worker, &command).await?
                }
                Err(err) => {
                    self.record_failure(tx, row, worker, unreadable(&err))
                        .await?
                }
            }
        };
        db::notify(tx, db::FINISHED_CHANNEL, &row.id).await?;
        batch.add(ended, row, started);
        Ok(())
    }

    /// Call once the transaction of `batch` has committed: releases its
    /// cache guards and wakes the waiters of its operations.
    pub fn committed(&self, batch: Batch) -> Vec<Ended> {
        drop(batch.guards);
        for ended in &batch.ended {
            self.announce(&ended.id);
        }
        batch.ended
    }

    /// Applies `command` and completes its operation inside a savepoint of
    /// `tx`: a command that fails for any reason but an unavailable
    /// database is rolled back alone and recorded as failed.
    async fn apply_isolated(
        &self,
        tx: &DatabaseTransaction,
        row: &OperationRow,
        worker: &str,
        command: &Command,
    ) -> Result<Ended> {
        let savepoint = tx.begin().await?;
        let outcome = match self
            .service
            .apply_command(&savepoint, command, now_micros())
            .await
        {
            Ok(outcome) => outcome,
            Err(err @ Error::Unavailable { .. }) => return Err(err),
            Err(err) => {
                savepoint.rollback().await?;
                return self.record_failure(tx, row, worker, err).await;
            }
        };
        match self.succeed(&savepoint, row, worker, outcome).await? {
            Some(ended) => {
                savepoint.commit().await?;
                Ok(ended)
            }
            None => {
                // Cancellation was requested while it was claimed.
                savepoint.rollback().await?;
                self.cancel_claimed(tx, row).await
            }
        }
    }

    /// Records `outcome` as the operation's response; `None` if its row no
    /// longer allows that (cancel requested, claim lost).
    async fn succeed(
        &self,
        conn: &DatabaseTransaction,
        row: &OperationRow,
        worker: &str,
        outcome: Outcome,
    ) -> Result<Option<Ended>> {
        let ended = Ended::new(row, state::SUCCEEDED, Ok(outcome), row.requested_items);
        self.finish(conn, worker, ended).await
    }

    /// Ends a claimed operation with `err` (or cancelled, if that was asked).
    async fn record_failure(
        &self,
        tx: &DatabaseTransaction,
        row: &OperationRow,
        worker: &str,
        err: Error,
    ) -> Result<Ended> {
        let ended = Ended::new(row, state::FAILED, Err(err), 0);
        match self.finish(tx, worker, ended).await? {
            Some(ended) => Ok(ended),
            None => self.cancel_claimed(tx, row).await,
        }
    }

    /// Writes `ended` into the row `worker` holds; `None` if the row no
    /// longer allows that (cancel requested, claim lost).
    async fn finish(
        &self,
        conn: &DatabaseTransaction,
        worker: &str,
        ended: Ended,
    ) -> Result<Option<Ended>> {
        let finished = self
            .finish_all(conn, worker, std::slice::from_ref(&ended))
            .await?;
        Ok((finished == 1).then_some(ended))
    }

    /// Writes every `ended` into the row `worker` holds, in one statement;
    /// returns how many rows allowed it.
    async fn finish_all(
        &self,
        conn: &DatabaseTransaction,
        worker: &str,
        ended: &[Ended],
    ) -> Result<usize> {
        let results = ended
            .iter()
            .map(Ended::serialized)
            .collect::<Result<Vec<_>>>()?;
        let finishes: Vec<_> = ended
            .iter()
            .zip(&results)
            .map(|(e, result)| e.finish(result))
            .collect();
        let finished = db::finish_all(conn, worker, &finishes).await?;
        Ok(usize::try_from(finished).unwrap_or(usize::MAX))
    }

    async fn cancel_claimed(&self, tx: &DatabaseTransaction, row: &OperationRow) -> Result<Ended> {
        let ended = Ended::new(row, state::CANCELLED, Err(Error::Cancelled), 0);
        db::cancel(tx, &row.id, ended.serialized()?, ended.end_time, false).await?;
        Ok(ended)
    }
}

fn unreadable(err: &serde_json::Error) -> Error {
    Error::internal(format!("unreadable command: {err}"))
}
