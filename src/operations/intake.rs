//! Group commit for accepted operations: concurrent submissions are queued
//! to one task that inserts whatever has accumulated in a single
//! transaction (a duplicate request id skips its row alone) and answers
//! each submitter only after the commit. When this process runs operations,
//! the same transaction also applies the small ones, so a typical
//! AssignUserRoles is accepted and done in one commit and its RPC returns
//! the finished operation. Every operation is durable before its RPC
//! returns; under load many share one commit instead of waiting for one
//! each.

use super::runner::{Batch, Ended, Isolation, Runner};
use crate::{
    error::{Error, Result},
    store::{
        Store,
        operations::{self as db, Claim, NewOperation},
    },
};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use std::{collections::HashMap, time::Duration};
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

/// Inserts every job's operation in one transaction, then, with a
/// `runner`, applies the small ones in acceptance order (each only if no
/// earlier operation on its target is unfinished), and commits once.
async fn accept_all(
    store: &Store,
    runner: Option<&Runner>,
    worker: &str,
    batch: &[Job],
) -> Result<Vec<Accepted>> {
    let tx = store.write().await?;
    let inserted = db::insert_all(&*tx, batch.iter().map(|job| job.operation.clone())).await?;
    let mut ran = Batch::default();
    if let Some(runner) = runner {
        let small: Vec<String> = batch
            .iter()
            .map(|job| &job.operation)
            .filter(|op| {
                inserted.contains(&op.id) && op.requested_items <= APPLY_ON_ACCEPT_MAX_ITEMS
            })
            .map(|op| op.id.clone())
            .collect();
        let applying = tx.begin().await?;
        db::limit_lock_wait(&applying, LOCK_WAIT).await?;
        match apply(runner, &applying, worker, &small, &mut ran).await {
            Ok(()) => applying.commit().await?,
            Err(err) => {
                // Accepting must not fail because applying did (a lock
                // held too long, a busy database): the operations stay
                // pending for the workers.
                tracing::warn!(%err, "applying on acceptance failed; leaving it to the workers");
                applying.rollback().await?;
                ran = Batch::default();
            }
        }
    }
    if ran.len() < inserted.len() {
        db::notify(&*tx, db::SUBMITTED_CHANNEL, "").await?;
    }
    tx.commit().await?;
    let mut ended: HashMap<String, Ended> = match runner {
        Some(runner) => runner
            .committed(ran)
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect(),
        None => HashMap::new(),
    };
    Ok(batch
        .iter()
        .map(|job| match ended.remove(&job.operation.id) {
            Some(e) => Accepted::Ended(Box::new(e)),
            None if inserted.contains(&job.operation.id) => Accepted::Pending,
            None => Accepted::DuplicateRequestId,
        })
        .collect())
}

/// Claims those of the operations `ids` that are runnable and runs them in
/// acceptance order.
async fn apply(
    runner: &Runner,
    tx: &DatabaseTransaction,
    worker: &str,
    ids: &[String],
    ran: &mut Batch,
) -> Result<()> {
    let rows = runner.claim(tx, Claim::Ids(ids), worker).await?;
    runner
        .run_all(tx, &rows, worker, Isolation::Shared, ran)
        .await
}
