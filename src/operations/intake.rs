//! Group commit for accepted operations: concurrent submissions are queued
//! to one task that inserts whatever has accumulated in a single
//! transaction (a duplicate request id skips its row alone) and answers
//! each submitter only after the commit. When this process runs operations,
//! the same transaction first applies the small ones (re-checking what
//! they name, which is their only check) and inserts them already
//! finished, so a typical AssignUserRoles is accepted and done in one
//! commit and its RPC returns the finished operation. Every operation is
//! durable before its RPC returns; under load many share one commit
//! instead of waiting for one each, and a batch waits briefly for the
//! submissions likely to come ([`GroupCommit`]).

use super::{
    group_commit::GroupCommit,
    runner::{Batch, Ended, Runner},
};
use crate::{
    domain::commands::Command,
    error::{Error, Result},
    monitor::shutting_down,
    store::{
        Store,
        operations::{self as db, Finish, NewOperation},
    },
};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
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
    /// Not accepted: what the command names does not exist or fit.
    Refused(Error),
}

struct Job {
    operation: NewOperation,
    /// The command, if the intake checks its references.
    unchecked: Option<Command>,
    reply: oneshot::Sender<Result<Accepted>>,
}

/// Handle to the intake task.
#[derive(Clone, Debug)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
    apply_on_accept: bool,
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
        let apply_on_accept = runner.is_some();
        tokio::spawn(run(store, runner, worker, receiver));
        Self {
            jobs,
            apply_on_accept,
        }
    }

    /// Whether [`Intake::insert`] checks the references of `command` itself
    /// (it re-checks one it applies anyway); otherwise the caller must
    /// check them first.
    pub fn checks(&self, command: &Command) -> bool {
        self.apply_on_accept
            && i64::try_from(command.item_count()).is_ok_and(|n| n <= APPLY_ON_ACCEPT_MAX_ITEMS)
    }

    /// Inserts `operation` of `command`, whose references the caller has
    /// checked unless [`Intake::checks`] says otherwise; returns once it
    /// is committed (or refused).
    pub async fn insert(&self, operation: NewOperation, command: Command) -> Result<Accepted> {
        let unchecked = self.checks(&command).then_some(command);
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                operation,
                unchecked,
                reply,
            })
            .await
            .map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

async fn run(
    store: Store,
    runner: Option<Runner>,
    worker: String,
    mut receiver: mpsc::Receiver<Job>,
) {
    let mut group = GroupCommit::default();
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some((count, until)) = group.wait(batch.len()) {
            let until = tokio::time::Instant::from_std(until);
            while batch.len() < count.min(MAX_BATCH) {
                match tokio::time::timeout_at(until, receiver.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    _ => break,
                }
            }
        }
        let started = Instant::now();
        let answered = batch.len();
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
        group.ended(answered, started.elapsed(), receiver.len());
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
    let Some(runner) = runner else {
        return accept_pending(store, batch, HashMap::new()).await;
    };
    match accept_and_apply(store, runner, worker, batch).await {
        Ok(accepted) => Ok(accepted),
        Err(Failed::Committing(err)) => Err(err),
        Err(Failed::Applying(err)) => {
            tracing::warn!(%err, "applying on acceptance failed; leaving it to the workers");
            let refused = refusals(runner, store.reader(), batch.iter()).await?;
            accept_pending(store, batch, refused).await
        }
    }
}

/// Inserts the operations of `batch` but the `refused` ones, pending.
async fn accept_pending(
    store: &Store,
    batch: &[Job],
    refused: HashMap<String, Error>,
) -> Result<Vec<Accepted>> {
    let tx = store.write().await?;
    let inserted = db::insert_all(
        &*tx,
        batch
            .iter()
            .filter(|job| !refused.contains_key(&job.operation.id))
            .map(|job| (job.operation.clone(), None)),
    )
    .await?;
    db::notify(&*tx, db::SUBMITTED_CHANNEL, "").await?;
    tx.commit().await?;
    Ok(answers(batch, &inserted, HashMap::new(), refused))
}

/// Checks the references of the unchecked commands of `jobs` on `conn`;
/// returns the errors of those that do not fit, by operation id.
async fn refusals(
    runner: &Runner,
    conn: &impl ConnectionTrait,
    jobs: impl Iterator<Item = &Job>,
) -> Result<HashMap<String, Error>> {
    let mut refused = HashMap::new();
    for job in jobs {
        if let Some(command) = &job.unchecked {
            match runner.service().recheck_command(conn, command).await {
                Ok(_) => {}
                Err(err) if err.is_fault() => return Err(err),
                Err(err) => {
                    refused.insert(job.operation.id.clone(), err);
                }
            }
        }
    }
    Ok(refused)
}

/// Each job's answer, from what its transaction did.
fn answers(
    batch: &[Job],
    inserted: &HashSet<String>,
    mut ended: HashMap<String, Ended>,
    mut refused: HashMap<String, Error>,
) -> Vec<Accepted> {
    batch
        .iter()
        .map(|job| {
            let id = &job.operation.id;
            if let Some(err) = refused.remove(id) {
                Accepted::Refused(err)
            } else if let Some(ended) = ended.remove(id) {
                Accepted::Ended(Box::new(ended))
            } else if inserted.contains(id) {
                Accepted::Pending
            } else {
                Accepted::DuplicateRequestId
            }
        })
        .collect()
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
/// inserts every operation, finished or pending, and commits once. An
/// operation whose references the intake checks is refused, not
/// inserted, if they do not fit.
async fn accept_and_apply(
    store: &Store,
    runner: &Runner,
    worker: &str,
    batch: &[Job],
) -> Result<Vec<Accepted>, Failed> {
    let tx = store.write().await.map_err(Failed::Applying)?;
    let (ran, inserted, refused) = apply_and_insert(&tx, runner, worker, batch)
        .await
        .map_err(Failed::Applying)?;
    ran.publish(runner.service(), &tx)
        .await
        .map_err(Failed::Applying)?;
    tx.commit().await.map_err(Failed::Committing)?;
    let ended = runner
        .committed(ran)
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    Ok(answers(batch, &inserted, ended, refused))
}

/// The work of [`accept_and_apply`] inside its transaction: returns what
/// ran, the ids inserted and the refusals.
async fn apply_and_insert(
    tx: &DatabaseTransaction,
    runner: &Runner,
    worker: &str,
    batch: &[Job],
) -> Result<(Batch, HashSet<String>, HashMap<String, Error>)> {
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
    let mut duplicates = HashSet::new();
    let mut targets = HashSet::new();
    let mut candidates = Vec::new();
    for job in batch {
        let op = &job.operation;
        if let Some(request_id) = &op.request_id
            && !taken.insert((op.principal.clone(), request_id.clone()))
        {
            duplicates.insert(op.id.as_str());
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
    // An unchecked command that failed its re-check is refused; one that
    // waits is checked now.
    let applied: HashMap<&str, &Ended> = ran.ended().iter().map(|e| (e.id.as_str(), e)).collect();
    let unchecked = batch.iter().filter(|job| job.unchecked.is_some());
    let mut refused: HashMap<String, Error> = unchecked
        .clone()
        .filter_map(
            |job| match &applied.get(job.operation.id.as_str())?.result {
                Err(err) => Some((job.operation.id.clone(), err.clone())),
                Ok(_) => None,
            },
        )
        .collect();
    let waiting = unchecked.filter(|job| {
        let id = job.operation.id.as_str();
        !applied.contains_key(id) && !duplicates.contains(id)
    });
    refused.extend(refusals(runner, tx, waiting).await?);
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
    let accepted = batch
        .iter()
        .filter(|job| !refused.contains_key(&job.operation.id));
    let inserted = db::insert_all(
        tx,
        accepted.clone().map(|job| {
            (
                job.operation.clone(),
                endings.get(job.operation.id.as_str()).copied(),
            )
        }),
    )
    .await?;
    if accepted.clone().any(|job| {
        endings.contains_key(job.operation.id.as_str()) && !inserted.contains(&job.operation.id)
    }) {
        // Another replica took one's request id meanwhile: let the plain
        // path sort out which operations are duplicates.
        return Err(Error::Unavailable {
            reason: "REQUEST_ID_RACE".into(),
            message: "a request id was taken concurrently".into(),
            retry_after: Duration::from_secs(1),
        });
    }
    let mut pending = accepted.map(|job| job.operation.id.as_str());
    if pending.any(|id| inserted.contains(id) && !endings.contains_key(id)) {
        db::notify(tx, db::SUBMITTED_CHANNEL, "").await?;
    }
    Ok((ran, inserted, refused))
}
