//! Group commit for accepted operations: concurrent submissions are queued
//! to one task that inserts whatever has accumulated in a single
//! transaction (each insert in a savepoint, so one duplicate request id
//! fails alone) and answers each submitter only after the commit. Every
//! operation is still durable before its RPC returns; under load many share
//! one commit instead of waiting for one each.

use crate::{
    error::{Error, Result},
    store::{
        self, Store,
        operations::{self as db, NewOperation},
    },
};
use sea_orm::TransactionTrait;
use tokio::sync::{mpsc, oneshot};

/// Most operations inserted by one transaction.
const MAX_BATCH: usize = 256;

/// How an insert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Committed.
    Yes,
    /// Another operation of this principal already has the request id.
    DuplicateRequestId,
}

struct Job {
    operation: NewOperation,
    reply: oneshot::Sender<Result<Inserted>>,
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
    /// Starts the intake task over `store`; it ends when every handle is dropped.
    pub fn spawn(store: Store) -> Self {
        let (jobs, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, receiver));
        Self { jobs }
    }

    /// Inserts `operation`; returns once it is committed (or refused).
    pub async fn insert(&self, operation: NewOperation) -> Result<Inserted> {
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

async fn run(store: Store, mut receiver: mpsc::Receiver<Job>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match insert_all(&store, &batch).await {
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

async fn insert_all(store: &Store, batch: &[Job]) -> Result<Vec<Inserted>> {
    let tx = store.write().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = tx.begin().await?;
        match db::insert(&savepoint, job.operation.clone()).await {
            Ok(()) => {
                db::notify(&savepoint, db::SUBMITTED_CHANNEL, &job.operation.id).await?;
                savepoint.commit().await?;
                outcomes.push(Inserted::Yes);
            }
            Err(err) if store::is_unique_violation(&err) => {
                savepoint.rollback().await?;
                outcomes.push(Inserted::DuplicateRequestId);
            }
            Err(err) => return Err(err.into()),
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}
