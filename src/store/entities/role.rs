//! `roles`.

use sea_orm::entity::prelude::*;

/// One role with its permissions.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    /// The organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    /// Unique within the organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: String,
    /// Non-empty, at most 3000 characters.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `organization` or `workspace`.
    pub scope: String,
    /// The permissions, in order: a JSON array of `{name, description,
    /// access}`.
    pub permissions: String,
    /// Incremented on every update; the etag is derived from it.
    pub revision: i64,
    /// Microseconds since the epoch.
    pub create_time: i64,
    /// Microseconds since the epoch.
    pub update_time: i64,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
