//! `organizations`: the tenants.

use sea_orm::entity::prelude::*;

/// One organization.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    /// Caller-chosen or generated id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    /// Human readable name.
    pub display_name: String,
    /// Microseconds since the epoch.
    pub create_time: i64,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
