//! `operations`: the durable queue of long-running operations.

use sea_orm::entity::prelude::*;

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operations")]
pub struct Model {
    /// Acceptance order; operations on one target run in this order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// UUID; the name is `operations/{id}`.
    #[sea_orm(unique)]
    pub id: String,
    /// The organization it acts on.
    pub organization_id: String,
    /// Resource name it changes.
    pub target: String,
    /// RPC name.
    pub verb: String,
    /// The token's `sub`.
    pub principal: String,
    /// Caller's idempotency key.
    pub request_id: Option<String>,
    /// `x-request-id` of the accepting RPC.
    pub trace_id: String,
    /// The command, JSON.
    pub command: String,
    /// `pending`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: String,
    /// Derived from `state`, kept for the `done=` filter.
    pub done: bool,
    /// Set by CancelOperation.
    pub cancel_requested: bool,
    /// Items in the request.
    pub requested_items: i64,
    /// Items processed.
    pub processed_items: i64,
    /// The outcome or error, JSON, once done.
    pub result: Option<String>,
    /// Worker holding it while running.
    pub lease_owner: Option<String>,
    /// When that worker's claim lapses (microseconds).
    pub lease_expires: Option<i64>,
    /// Microseconds since the epoch.
    pub create_time: i64,
    /// Microseconds since the epoch.
    pub start_time: Option<i64>,
    /// Microseconds since the epoch.
    pub end_time: Option<i64>,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
