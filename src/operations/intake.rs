//! Group commit for accepted operations: concurrent submissions are queued
//! to one task that inserts whatever has accumulated in a single
//! transaction (a duplicate request id skips its row alone) and answers
//! each submitter only after the commit. When this process runs operations,
//! the same transaction also applies the small ones, so a typical
//! AssignUserRoles is accepted and done in one commit and its RPC returns
//! the finished operation. Every operation is durable before its RPC
//! returns; under load many share one commit instead of waiting for one
//! each.

use super::runner::{Batch, Ended, Runner};
use crate::{
    error::{Error, Result},
    store::{
        Store,
        operations::{self as db, Finish, NewOperation},
    },
};
use sea_orm::DatabaseTransaction;
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};
use tokio::sync::{mpsc, oneshot};

/// Most operations inserted by one transaction.
const MAX_BATCH: usize = 256;

/// Operations of at most this many items are applied in the transaction
/// that accepts them (when this process runs operations); larger ones are
/// left to the workers, so their RPC returns at once.
const APPLY_ON_ACCEPT_MAX_ITEMS: i64 = 100;

/// How long applying on acceptance may wait for a row lock (PostgreSQL: say,
/// another replica's transaction holds the user's rows) before it gives up
/// and leaves the operations to the workers, so that one contended
/// operation does not hold up every submission of this process.
const LOCK_WAIT: Duration = Duration::from_millis(100);

/// How a submission ended.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// Committed, waiting for a worker.
    Pending,
    /// Committed, and applied (or failed) in the same transaction.
    Ended(Box<Ended>),
    /// Another operation of this principal already has the request id.
    DuplicateRequestId,
}

struct Job {
    operation: NewOperation,
    reply: oneshot::Sender<Result<Accepted>>,
}

/// Handle to the intake task.
#[derive(Clone, Debug)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.operation.id)
            .finish()
    }
}

impl Intake {
    /// Starts the intake task over `store`; with a `runner`, it also applies
    /// small operations as it accepts them. It ends when every handle is
    /// dropped.
    pub fn spawn(store: Store, runner: Option<Runner>) -> Self {
        let (jobs, receiver) = mpsc::channel(4 * MAX_BATCH);
        let worker = format!(
            "intake-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        tokio::spawn(run(store, runner, worker, receiver));
        Self { jobs }
    }

    /// Inserts `operation`; returns once it is committed (or refused).
    pub async fn insert(&self, operation: NewOperation) -> Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Unavailable {
            reason: "SHUTTING_DOWN".into(),
            message: "the server is shutting down; retry".into(),
            retry_after: std::time::Duration::from_secs(1),
        };
        self.jobs
            .send(Job { operation, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    store: Store,
    runner: Option<Runner>,
    worker: String,
    mut receiver: mpsc::Receiver<Job>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match accept_all(&store, runner.as_ref(), &worker, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Accepts every job's operation in one transaction. With a `runner`, the
/// small ones are applied first, in the same transaction, and inserted
/// already finished; if applying fails (a lock held too long, a busy
/// database), the transaction is retried with every operation pending.
async fn accept_all(
    store: &Store,
    runner: Option<&Runner>,
    worker: &str,
    batch: &[Job],
) -> Result<Vec<Accepted>> {
    if let Some(runner) = runner {
        match accept_and_apply(store, runner, worker, batch).await {
            Ok(accepted) => return Ok(accepted),
            Err(Failed::Committing(err)) => return Err(err),
            Err(Failed::Applying(err)) => {
                tracing::warn!(%err, "applying on acceptance failed; leaving it to the workers");
            }
        }
    }
    let tx = store.write().await?;
    let inserted =
        db::insert_all(&*tx, batch.iter().map(|job| (job.operation.clone(), None))).await?;
    db::notify(&*tx, db::SUBMITTED_CHANNEL, "").await?;
    tx.commit().await?;
    Ok(batch
        .iter()
        .map(|job| match inserted.contains(&job.operation.id) {
            true => Accepted::Pending,
            false => Accepted::DuplicateRequestId,
        })
        .collect())
}

/// Why [`accept_and_apply`] failed.
enum Failed {
    /// Before the commit: nothing happened.
    Applying(Error),
    /// The commit: its outcome is unknown, so nothing may be retried.
    Committing(Error),
}

/// Applies the small operations of `batch` that are runnable (nothing
/// earlier on their target is unfinished) in acceptance order, then
/// inserts every operation, finished or pending, and commits once.
async fn accept_and_apply(
    store: &Store,
    runner: &Runner,
    worker: &str,
    batch: &[Job],
) -> Result<Vec<Accepted>, Failed> {
    let tx = store.write().await.map_err(Failed::Applying)?;
    let (ran, inserted) = apply_and_insert(&tx, runner, worker, batch)
        .await
        .map_err(Failed::Applying)?;
    tx.commit().await.map_err(Failed::Committing)?;
    let mut ended: HashMap<String, Ended> = runner
        .committed(ran)
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    Ok(batch
        .iter()
        .map(|job| match ended.remove(&job.operation.id) {
            Some(e) => Accepted::Ended(Box::new(e)),
            None if inserted.contains(&job.operation.id) => Accepted::Pending,
            None => Accepted::DuplicateRequestId,
        })
        .collect())
}

/// The work of [`accept_and_apply`] inside its transaction: returns what
/// ran and the ids inserted.
async fn apply_and_insert(
    tx: &DatabaseTransaction,
    runner: &Runner,
    worker: &str,
    batch: &[Job],
) -> Result<(Batch, HashSet<String>)> {
    db::limit_lock_wait(tx, LOCK_WAIT).await?;
    let requests: Vec<_> = batch
        .iter()
        .filter_map(|job| {
            Some((
                job.operation.principal.as_str(),
                job.operation.request_id.as_deref()?,
            ))
        })
        .collect();
    let mut taken = if requests.is_empty() {
        HashSet::new()
    } else {
        db::taken_request_ids(tx, &requests).await?
    };
    // In acceptance order: the first of a request id is new, the first on
    // a target may run if small.
    let mut targets = HashSet::new();
    let mut candidates = Vec::new();
    for job in batch {
        let op = &job.operation;
        if let Some(request_id) = &op.request_id
            && !taken.insert((op.principal.clone(), request_id.clone()))
        {
            continue;
        }
        if targets.insert(op.target.as_str()) && op.requested_items <= APPLY_ON_ACCEPT_MAX_ITEMS {
            candidates.push(op);
        }
    }
    let busy = if candidates.is_empty() {
        HashSet::new()
    } else {
        let targets: Vec<_> = candidates.iter().map(|op| op.target.as_str()).collect();
        db::busy_targets(tx, &targets).await?
    };
    let lease_until = runner.lease_until();
    let claimed: Vec<_> = candidates
        .into_iter()
        .filter(|op| !busy.contains(&op.target))
        .map(|op| op.claimed_row(worker, lease_until))
        .collect();
    let mut ran = Batch::default();
    runner
        .apply_all(tx, &claimed.iter().collect::<Vec<_>>(), &mut ran)
        .await?;
    let results = ran
        .ended()
        .iter()
        .map(Ended::serialized)
        .collect::<Result<Vec<_>>>()?;
    let endings: HashMap<&str, Finish<'_>> = ran
        .ended()
        .iter()
        .zip(&results)
        .map(|(e, result)| (e.id.as_str(), e.finish(result)))
        .collect();
    let inserted = db::insert_all(
        tx,
        batch.iter().map(|job| {
            (
                job.operation.clone(),
                endings.get(job.operation.id.as_str()).copied(),
            )
        }),
    )
    .await?;
    if ended_but_not_inserted(&ran, &inserted) {
        // Another replica took one's request id meanwhile: let the plain
        // path sort out which operations are duplicates.
        return Err(Error::Unavailable {
            reason: "REQUEST_ID_RACE".into(),
            message: "a request id was taken concurrently".into(),
            retry_after: Duration::from_secs(1),
        });
    }
    if ran.len() < inserted.len() {
        db::notify(tx, db::SUBMITTED_CHANNEL, "").await?;
    }
    Ok((ran, inserted))
}

fn ended_but_not_inserted(ran: &Batch, inserted: &HashSet<String>) -> bool {
    ran.ended().iter().any(|e| !inserted.contains(&e.id))
}
