//! The durable operation queue. An accepted bulk change is a row in
//! `operations`, committed before the RPC returns (the intake batches the
//! commits of concurrent submissions). A small operation is applied in that
//! same transaction when nothing earlier on its target is unfinished, and
//! the RPC returns it done; the others wait for workers, which claim rows
//! with a lease. Either way one runner applies an operation through
//! the domain in one transaction together with the row's completion (so
//! nothing is applied twice) and wakes `WaitOperation` callers. Finished
//! rows are removed after the retention period.

mod backlog;
mod cancels;
pub mod filter;
mod group_commit;
mod intake;
mod runner;
mod worker;

pub use worker::{Workers, spawn_listener, spawn_retention, spawn_workers};

use backlog::Backlog;
use intake::{Accepted, Intake};
use runner::{Ended, Runner};

use crate::{
    domain::{
        Service,
        commands::{Command, Outcome, check_request_id},
        model::Page,
        names::{self, types},
        now_micros,
        paging::PageRequest,
    },
    error::{Error, Result},
    store::{
        self,
        operations::{self as db, ListFilter, NewOperation, OperationRow},
    },
};
use std::time::Duration;
use tokio::sync::broadcast;

/// How long an idle worker sleeps before looking for work it was not told
/// about (operations accepted by another replica, lapsed leases).
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A waiting `WaitOperation` re-reads its operation at least this often, in
/// case another replica finished it.
const WAIT_RECHECK: Duration = Duration::from_secs(5);

/// An operation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// UUID.
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// Resource name it changes.
    pub target: String,
    /// RPC name.
    pub verb: String,
    /// Token `sub` of the creator.
    pub principal: String,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// `x-request-id` of the accepting RPC.
    pub trace_id: String,
    /// Finished (succeeded, failed or cancelled).
    pub done: bool,
    /// CancelOperation was called.
    pub cancel_requested: bool,
    /// Items in the request.
    pub requested_items: i64,
    /// Items processed.
    pub processed_items: i64,
    /// Accepted at.
    pub create_time: i64,
    /// Started at.
    pub start_time: Option<i64>,
    /// Finished at.
    pub end_time: Option<i64>,
    /// Set when done.
    pub result: Option<Result<Outcome, Error>>,
}

impl Operation {
    /// The operation as it is right after acceptance.
    fn accepted(new: &NewOperation) -> Self {
        Self {
            id: new.id.clone(),
            organization_id: new.organization_id.clone(),
            target: new.target.clone(),
            verb: new.verb.clone(),
            principal: new.principal.clone(),
            request_id: new.request_id.clone(),
            trace_id: new.trace_id.clone(),
            done: false,
            cancel_requested: false,
            requested_items: new.requested_items,
            processed_items: 0,
            create_time: new.create_time,
            start_time: None,
            end_time: None,
            result: None,
        }
    }

    /// The operation once `ended` in the transaction that accepted it.
    fn ended(self, ended: Ended) -> Self {
        Self {
            done: true,
            processed_items: ended.processed_items,
            start_time: ended.start_time,
            end_time: Some(ended.end_time),
            result: Some(ended.result),
            ..self
        }
    }

    fn from_row(row: OperationRow) -> Result<Self> {
        let result = row
            .result
            .as_deref()
            .map(serde_json::from_str::<Result<Outcome, Error>>)
            .transpose()
            .map_err(Error::internal)?;
        Ok(Self {
            id: row.id,
            organization_id: row.organization_id,
            target: row.target,
            verb: row.verb,
            principal: row.principal,
            request_id: row.request_id,
            trace_id: row.trace_id,
            done: row.done,
            cancel_requested: row.cancel_requested,
            requested_items: row.requested_items,
            processed_items: row.processed_items,
            create_time: row.create_time,
            start_time: row.start_time,
            end_time: row.end_time,
            result,
        })
    }
}

/// Accepts, reads, cancels, deletes and waits for operations.
#[derive(Clone, Debug)]
pub struct Queue {
    runner: Runner,
    /// Submissions are refused while about this many operations are not done.
    max_pending: u64,
    backlog: Backlog,
    intake: Intake,
}

impl Queue {
    /// A queue over `service`'s store whose claims last `lease`. With
    /// `apply_on_accept`, small operations are applied in the transaction
    /// that accepts them; give it when this process runs workers.
    pub fn new(service: Service, lease: Duration, max_pending: u64, apply_on_accept: bool) -> Self {
        let runner = Runner::new(service, lease);
        let intake = Intake::spawn(
            runner.service().store().clone(),
            apply_on_accept.then(|| runner.clone()),
        );
        Self {
            runner,
            max_pending,
            backlog: Backlog::default(),
            intake,
        }
    }

    /// The domain service.
    pub fn service(&self) -> &Service {
        self.runner.service()
    }

    fn store(&self) -> &store::Store {
        self.service().store()
    }

    /// Accepts `command` from `principal`: validates and checks it, then
    /// commits a pending operation. A retry with the same `request_id` and
    /// command returns the first operation.
    pub async fn submit(
        &self,
        principal: &str,
        trace_id: &str,
        request_id: &str,
        command: Command,
    ) -> Result<Operation> {
        command.validate()?;
        check_request_id(request_id)?;
        let serialized = serde_json::to_string(&command).map_err(Error::internal)?;
        let earlier = match request_id {
            "" => None,
            id => db::find_by_request_id(self.store().reader(), principal, id).await?,
        };
        if let Some(row) = earlier {
            return same_request(row, &serialized);
        }
        if !self.intake.checks(&command) {
            self.service().check_references(&command).await?;
        }
        if self
            .backlog
            .at_least(self.store(), self.max_pending)
            .await?
        {
            return Err(Error::Unavailable {
                reason: "QUEUE_FULL".into(),
                message: "too many operations are waiting; retry later".into(),
                retry_after: Duration::from_secs(5),
            });
        }
        let new = NewOperation {
            // Time-ordered: the id index of a busy queue grows at its end
            // instead of at random pages.
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: command.organization_id().to_owned(),
            target: command.target(),
            verb: command.verb().to_owned(),
            principal: principal.to_owned(),
            request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            trace_id: trace_id.to_owned(),
            command: serialized.clone(),
            requested_items: i64::try_from(command.item_count()).unwrap_or(i64::MAX),
            create_time: now_micros(),
        };
        let accepted = Operation::accepted(&new);
        match self.intake.insert(new, command).await? {
            Accepted::Pending => {
                self.backlog.add(1);
                self.runner.wake_workers.notify_one();
                Ok(accepted)
            }
            Accepted::Ended(ended) => Ok(accepted.ended(*ended)),
            Accepted::Refused(err) => Err(err),
            Accepted::DuplicateRequestId => {
                let row = db::find_by_request_id(self.store().reader(), principal, request_id)
                    .await?
                    .ok_or_else(|| Error::internal("request id vanished"))?;
                same_request(row, &serialized)
            }
        }
    }

    /// One operation.
    pub async fn get(&self, id: &str) -> Result<Operation> {
        let row = db::get(self.store().reader(), id)
            .await?
            .ok_or_else(|| Error::not_found(types::OPERATION, names::operation(id)))?;
        Operation::from_row(row)
    }

    /// A page of operations matching `filter`.
    pub async fn list(&self, filter: &ListFilter, page: PageRequest) -> Result<Page<Operation>> {
        let after = match page.after.as_deref() {
            Some(a) => Some(
                a.parse::<i64>()
                    .map_err(|_| Error::invalid("page_token", "is not a token of this list"))?,
            ),
            None => None,
        };
        let rows = db::list(self.store().reader(), filter, after, page.fetch_limit()).await?;
        let page = page.page(rows, |r| r.seq.to_string());
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(Operation::from_row)
                .collect::<Result<_>>()?,
            next_page_token: page.next_page_token,
        })
    }

    /// Cancels: a pending operation ends `CANCELLED` at once, even one a
    /// worker of this process claims while this call waits to write. One
    /// already running finishes as it would have (its worker applies it and
    /// records the end in one transaction, which this call waits behind),
    /// flagged `cancel_requested`; one already done stays as it is.
    pub async fn cancel(&self, id: &str) -> Result<()> {
        let op = self.get(id).await?;
        if op.done {
            return Ok(());
        }
        let _on_its_way = self.runner.cancels.register(id);
        let cancelled = serde_json::to_string(&Err::<Outcome, Error>(Error::Cancelled))
            .map_err(Error::internal)?;
        let tx = self.store().write().await?;
        let ended = db::cancel(&*tx, id, cancelled, now_micros(), true).await?;
        if ended {
            db::notify(&*tx, db::FINISHED_CHANNEL, id).await?;
        } else {
            db::request_cancel(&*tx, id).await?;
        }
        tx.commit().await?;
        if ended {
            self.runner.announce(id);
        }
        Ok(())
    }

    /// Deletes a finished operation; one not done is `FAILED_PRECONDITION`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let op = self.get(id).await?;
        let tx = self.store().write().await?;
        if !op.done || !db::delete_done(&*tx, id).await? {
            return Err(Error::precondition(
                "OPERATION_NOT_DONE",
                names::operation(id),
                "the operation has not finished; cancel it or wait for it first",
            ));
        }
        tx.commit().await
    }

    /// Waits until the operation is done or `timeout` passes; returns its
    /// latest state. Woken by the worker that finishes it.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Operation> {
        let mut completed = self.runner.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let op = self.get(id).await?;
            if op.done || tokio::time::Instant::now() >= deadline {
                return Ok(op);
            }
            let recheck = (tokio::time::Instant::now() + WAIT_RECHECK).min(deadline);
            loop {
                tokio::select! {
                    msg = completed.recv() => match msg {
                        Ok(done_id) if done_id != id => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            tokio::time::sleep_until(recheck).await;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(recheck) => break,
                }
            }
        }
    }
}

fn same_request(row: OperationRow, serialized_command: &str) -> Result<Operation> {
    if row.command == serialized_command {
        Operation::from_row(row)
    } else {
        Err(Error::AlreadyExists {
            reason: "REQUEST_ID_REUSED".into(),
            resource_type: types::OPERATION.into(),
            resource_name: names::operation(&row.id),
            message: "this request_id was used for a different request".into(),
        })
    }
}
