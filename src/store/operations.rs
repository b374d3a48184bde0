//! The `operations` table: insert, claim with a lease, finish, cancel, list,
//! expire. Claiming is one conditional `UPDATE ... RETURNING`, so any number
//! of workers (and, on PostgreSQL, replicas) can share the queue.

use super::{backend_of, entities::operation, migration::UNFINISHED, row_list, statement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, UpdateMany, sea_query::Expr,
};

pub use operation::Model as OperationRow;
use std::collections::HashSet;

/// Lifecycle states stored in `operations.state`.
pub mod state {
    /// Accepted, waiting for a worker.
    pub const PENDING: &str = "pending";
    /// Claimed by a worker (see `lease_owner`).
    pub const RUNNING: &str = "running";
    /// Applied.
    pub const SUCCEEDED: &str = "succeeded";
    /// Ended with an error, nothing applied.
    pub const FAILED: &str = "failed";
    /// Cancelled, nothing applied.
    pub const CANCELLED: &str = "cancelled";
}

/// A new operation as accepted by an RPC.
#[derive(Debug, Clone)]
pub struct NewOperation {
    /// UUID.
    pub id: String,
    /// Organization.
    pub organization_id: String,
    /// Resource name it changes.
    pub target: String,
    /// RPC name.
    pub verb: String,
    /// Token `sub`.
    pub principal: String,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// `x-request-id` of the RPC.
    pub trace_id: String,
    /// Serialized command.
    pub command: String,
    /// Items in the request.
    pub requested_items: i64,
    /// Acceptance time.
    pub create_time: i64,
}

/// Inserts new operations in acceptance order, each pending or, if it has
/// an ending (it was applied in the transaction that accepts it), already
/// finished; one statement for them all. Returns the ids of those
/// inserted: one whose principal already has an operation with its request
/// id is skipped.
pub async fn insert_all(
    db: &impl ConnectionTrait,
    ops: impl IntoIterator<Item = (NewOperation, Option<Finish<'_>>)>,
) -> Result<HashSet<String>, DbErr> {
    let rows: Vec<_> = ops
        .into_iter()
        .enumerate()
        .map(|(position, (op, ending))| {
            (
                position,
                op.id,
                op.organization_id,
                op.target,
                op.verb,
                op.principal,
                op.request_id,
                op.trace_id,
                op.command,
                ending.map_or(state::PENDING, |e| e.state),
                op.requested_items,
                ending.map_or(0, |e| e.processed_items),
                ending.map(|e| e.result),
                op.create_time,
                ending.map(|_| op.create_time),
                ending.map(|e| e.end_time),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's.
    let insert = row_list::statement(
        backend_of(db),
        "INSERT INTO operations (id, organization_id, target, verb, principal, request_id, \
           trace_id, command, state, done, cancel_requested, requested_items, processed_items, \
           result, create_time, start_time, end_time) \
         SELECT i, o, tg, v, p, rq, tr, c, s, s <> ?, ?, CAST(ri AS BIGINT), \
           CAST(pi AS BIGINT), res, CAST(ct AS BIGINT), CAST(st AS BIGINT), CAST(et AS BIGINT) \
         FROM ({rows}) AS n WHERE true ORDER BY CAST(k AS BIGINT) \
         ON CONFLICT DO NOTHING RETURNING id",
        &[
            "k", "i", "o", "tg", "v", "p", "rq", "tr", "c", "s", "ri", "pi", "res", "ct", "st",
            "et",
        ],
        &rows,
        vec![state::PENDING.into(), false.into()],
        vec![],
    )?;
    db.query_all(insert)
        .await?
        .iter()
        .map(|row| row.try_get("", "id"))
        .collect()
}

impl NewOperation {
    /// The row of this operation as if `worker` had claimed it at once
    /// (until `lease_until`), for applying it before it is inserted.
    pub fn claimed_row(&self, worker: &str, lease_until: i64) -> OperationRow {
        OperationRow {
            seq: 0,
            id: self.id.clone(),
            organization_id: self.organization_id.clone(),
            target: self.target.clone(),
            verb: self.verb.clone(),
            principal: self.principal.clone(),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            command: self.command.clone(),
            state: state::RUNNING.to_owned(),
            done: false,
            cancel_requested: false,
            requested_items: self.requested_items,
            processed_items: 0,
            result: None,
            lease_owner: Some(worker.to_owned()),
            lease_expires: Some(lease_until),
            create_time: self.create_time,
            start_time: Some(self.create_time),
            end_time: None,
        }
    }
}

/// Which of `targets` have an operation not yet done.
pub async fn busy_targets(
    db: &impl ConnectionTrait,
    targets: &[&str],
) -> Result<HashSet<String>, DbErr> {
    let rows: Vec<_> = targets.iter().map(|t| (t,)).collect();
    let select = row_list::statement(
        backend_of(db),
        &format!(
            "SELECT DISTINCT target FROM operations WHERE target IN ({{rows}}) AND {UNFINISHED}"
        ),
        &["t"],
        &rows,
        vec![],
        vec![],
    )?;
    db.query_all(select)
        .await?
        .iter()
        .map(|row| row.try_get("", "target"))
        .collect()
}

/// Which of the `(principal, request_id)` pairs `requests` an operation has.
pub async fn taken_request_ids(
    db: &impl ConnectionTrait,
    requests: &[(&str, &str)],
) -> Result<HashSet<(String, String)>, DbErr> {
    row_list::select_pairs(
        db,
        "SELECT principal, request_id FROM operations WHERE (principal, request_id) IN ({rows})",
        &["p", "r"],
        requests,
        ("principal", "request_id"),
    )
    .await
}

/// One operation by id.
pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<OperationRow>, DbErr> {
    operation::Entity::find()
        .filter(operation::Column::Id.eq(id))
        .one(db)
        .await
}

/// The operation `principal` created with `request_id`, if any.
pub async fn find_by_request_id(
    db: &impl ConnectionTrait,
    principal: &str,
    request_id: &str,
) -> Result<Option<OperationRow>, DbErr> {
    operation::Entity::find()
        .filter(operation::Column::Principal.eq(principal))
        .filter(operation::Column::RequestId.eq(request_id))
        .one(db)
        .await
}

/// Filters of ListOperations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this organization (`None`: all).
    pub organization_id: Option<String>,
    /// `done=`.
    pub done: Option<bool>,
    /// `target=`.
    pub target: Option<String>,
    /// `verb=`.
    pub verb: Option<String>,
}

/// Operations matching `filter` with `seq` after `after`, in acceptance order.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &ListFilter,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<OperationRow>, DbErr> {
    let mut cond = Condition::all();
    if let Some(org) = &filter.organization_id {
        cond = cond.add(operation::Column::OrganizationId.eq(org.as_str()));
    }
    if let Some(done) = filter.done {
        cond = cond.add(operation::Column::Done.eq(done));
    }
    if let Some(target) = &filter.target {
        cond = cond.add(operation::Column::Target.eq(target.as_str()));
    }
    if let Some(verb) = &filter.verb {
        cond = cond.add(operation::Column::Verb.eq(verb.as_str()));
    }
    if let Some(after) = after {
        cond = cond.add(operation::Column::Seq.gt(after));
    }
    operation::Entity::find()
        .filter(cond)
        .order_by_asc(operation::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Claims up to `limit` of the oldest runnable operations for `worker`
/// until `lease_until`; returns them in acceptance order. Runnable:
/// pending, or running under a lapsed lease, and no earlier unfinished
/// operation on the same target (which keeps each target's operations in
/// acceptance order; two on one target are never claimed together).
pub async fn claim(
    db: &impl ConnectionTrait,
    limit: u64,
    worker: &str,
    now: i64,
    lease_until: i64,
) -> Result<Vec<OperationRow>, DbErr> {
    let backend = backend_of(db);
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let values = vec![
        worker.into(),
        lease_until.into(),
        now.into(),
        now.into(),
        now.into(),
    ];
    let sql = format!(
        "UPDATE operations SET state = 'running', lease_owner = ?, lease_expires = ?, \
           start_time = COALESCE(start_time, ?) \
         WHERE seq IN (SELECT o.seq FROM operations o \
             WHERE (o.state = 'pending' OR (o.state = 'running' AND o.lease_expires < ?)) \
               AND NOT EXISTS (SELECT 1 FROM operations p \
                   WHERE p.target = o.target AND p.seq < o.seq AND p.{UNFINISHED}) \
             ORDER BY o.seq LIMIT {limit}{lock}) \
           AND (state = 'pending' OR (state = 'running' AND lease_expires < ?)) \
         RETURNING *"
    );
    let mut rows = operation::Entity::find()
        .from_raw_sql(statement(backend, &sql, values))
        .all(db)
        .await?;
    rows.sort_by_key(|row| row.seq);
    Ok(rows)
}

/// An update of operations that drops any worker's claim.
fn without_lease() -> UpdateMany<operation::Entity> {
    operation::Entity::update_many()
        .col_expr(
            operation::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            operation::Column::LeaseExpires,
            Expr::value(Option::<i64>::None),
        )
}

/// An update that ends operations in `final_state` with `result` at `now`.
fn ended(final_state: &str, result: String, now: i64) -> UpdateMany<operation::Entity> {
    without_lease()
        .col_expr(operation::Column::State, Expr::value(final_state))
        .col_expr(operation::Column::Done, Expr::value(true))
        .col_expr(operation::Column::Result, Expr::value(result))
        .col_expr(operation::Column::EndTime, Expr::value(now))
}

/// How a claimed operation ends, for [`finish_all`].
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// The operation.
    pub id: &'a str,
    /// Its final state.
    pub state: &'a str,
    /// Its serialized result.
    pub result: &'a str,
    /// Items processed.
    pub processed_items: i64,
    /// When it ended.
    pub end_time: i64,
}

/// Finishes running operations held by `worker`, in one statement; one
/// whose cancellation was requested meanwhile is left alone. Returns how
/// many rows were updated.
pub async fn finish_all(
    db: &impl ConnectionTrait,
    worker: &str,
    finishes: &[Finish<'_>],
) -> Result<u64, DbErr> {
    if finishes.is_empty() {
        return Ok(0);
    }
    let rows: Vec<_> = finishes
        .iter()
        .map(|f| (f.id, f.state, f.result, f.processed_items, f.end_time))
        .collect();
    let update = row_list::statement(
        backend_of(db),
        "UPDATE operations SET state = f.s, done = ?, result = f.res, \
           processed_items = CAST(f.n AS BIGINT), end_time = CAST(f.t AS BIGINT), \
           lease_owner = NULL, lease_expires = NULL \
         FROM ({rows}) AS f \
         WHERE operations.id = f.i AND operations.state = ? \
           AND operations.lease_owner = ? AND operations.cancel_requested = ?",
        &["i", "s", "res", "n", "t"],
        &rows,
        vec![true.into()],
        vec![state::RUNNING.into(), worker.into(), false.into()],
    )?;
    Ok(db.execute(update).await?.rows_affected())
}

/// Ends a not-done operation as cancelled with `result`. With `only_pending`
/// a running one is left alone. Returns whether the row was updated.
pub async fn cancel(
    db: &impl ConnectionTrait,
    id: &str,
    result: String,
    now: i64,
    only_pending: bool,
) -> Result<bool, DbErr> {
    let allowed = if only_pending {
        vec![state::PENDING]
    } else {
        vec![state::PENDING, state::RUNNING]
    };
    let res = ended(state::CANCELLED, result, now)
        .col_expr(operation::Column::CancelRequested, Expr::value(true))
        .filter(operation::Column::Id.eq(id))
        .filter(operation::Column::State.is_in(allowed))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Marks a not-done operation as cancel-requested.
pub async fn request_cancel(db: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    operation::Entity::update_many()
        .col_expr(operation::Column::CancelRequested, Expr::value(true))
        .filter(operation::Column::Id.eq(id))
        .filter(operation::Column::Done.eq(false))
        .exec(db)
        .await
        .map(drop)
}

/// Deletes a finished operation. Returns whether a row was deleted.
pub async fn delete_done(db: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    let res = operation::Entity::delete_many()
        .filter(operation::Column::Id.eq(id))
        .filter(operation::Column::Done.eq(true))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Deletes operations that finished before `cutoff`; returns how many.
pub async fn delete_finished_before(db: &impl ConnectionTrait, cutoff: i64) -> Result<u64, DbErr> {
    let res = operation::Entity::delete_many()
        .filter(operation::Column::Done.eq(true))
        .filter(operation::Column::EndTime.lt(cutoff))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Releases claims left by a crashed run. Only for SQLite, whose database
/// belongs to this one process; on PostgreSQL other replicas may hold live
/// claims, which lapse by their lease instead.
pub async fn release_orphaned_claims(store: &super::Store) -> Result<u64, crate::error::Error> {
    if !store.single_process() {
        return Ok(0);
    }
    let tx = store.write().await?;
    let res = without_lease()
        .col_expr(operation::Column::State, Expr::value(state::PENDING))
        .filter(operation::Column::State.eq(state::RUNNING))
        .exec(&*tx)
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected)
}

/// Counts for the operation gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Operations per state (every state listed, zeros included).
    pub by_state: Vec<(&'static str, u64)>,
    /// Pending plus running.
    pub not_done: u64,
    /// Acceptance time of the oldest pending operation.
    pub oldest_pending: Option<i64>,
}

/// Reads the queue's counts.
pub async fn stats(db: &impl ConnectionTrait) -> Result<QueueStats, DbErr> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct Row {
        state: String,
        n: i64,
        oldest: Option<i64>,
    }
    let rows = operation::Entity::find()
        .select_only()
        .column(operation::Column::State)
        .column_as(Expr::col(operation::Column::Seq).count(), "n")
        .column_as(Expr::col(operation::Column::CreateTime).min(), "oldest")
        .group_by(operation::Column::State)
        .into_model::<Row>()
        .all(db)
        .await?;
    let mut stats = QueueStats::default();
    for name in [
        state::PENDING,
        state::RUNNING,
        state::SUCCEEDED,
        state::FAILED,
        state::CANCELLED,
    ] {
        let row = rows.iter().find(|r| r.state == name);
        let n = row.map_or(0, |r| u64::try_from(r.n).unwrap_or(0));
        if name == state::PENDING {
            stats.oldest_pending = row.and_then(|r| r.oldest);
        }
        if name == state::PENDING || name == state::RUNNING {
            stats.not_done += n;
        }
        stats.by_state.push((name, n));
    }
    Ok(stats)
}

/// Channel on which PostgreSQL replicas announce finished operations (payload: id).
pub const FINISHED_CHANNEL: &str = "rolekeeper_operation_finished";
/// Channel on which PostgreSQL replicas announce new operations.
pub const SUBMITTED_CHANNEL: &str = "rolekeeper_operation_submitted";

/// Queues a notification, delivered when the transaction commits. PostgreSQL
/// only; SQLite has one process, which announces in memory.
pub async fn notify(db: &impl ConnectionTrait, channel: &str, payload: &str) -> Result<(), DbErr> {
    notify_all(db, channel, &[payload]).await
}

/// Queues one notification per payload, in one statement (see [`notify`]).
pub async fn notify_all(
    db: &impl ConnectionTrait,
    channel: &str,
    payloads: &[&str],
) -> Result<(), DbErr> {
    let backend = backend_of(db);
    if backend != DbBackend::Postgres || payloads.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = payloads.iter().map(|p| (p,)).collect();
    let notify = row_list::statement(
        backend,
        "SELECT pg_notify(?, p) FROM ({rows}) AS n",
        &["p"],
        &rows,
        vec![channel.into()],
        vec![],
    )?;
    db.execute(notify).await.map(drop)
}

/// Bounds how long the rest of the transaction waits for a row lock
/// (PostgreSQL; SQLite has one writer and no row locks). A statement that
/// would wait longer fails instead.
pub async fn limit_lock_wait(
    db: &impl ConnectionTrait,
    limit: std::time::Duration,
) -> Result<(), DbErr> {
    if backend_of(db) != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_unprepared(&format!(
        "SET LOCAL lock_timeout = {}",
        limit.as_millis().max(1)
    ))
    .await
    .map(drop)
}

/// Number of operations not yet done.
pub async fn count_not_done(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    operation::Entity::find()
        .filter(operation::Column::Done.eq(false))
        .count(db)
        .await
}
