//! `memberships`: users in workspaces, with a base role.

use sea_orm::entity::prelude::*;

/// One membership.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    /// Server-assigned UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub membership_id: String,
    /// The organization.
    pub organization_id: String,
    /// The workspace.
    pub workspace_id: String,
    /// The member; unique per workspace.
    pub user_id: String,
    /// Role id of the base role: `owner`, `editor` or `viewer`.
    pub base_role_id: String,
    /// Microseconds since the epoch.
    pub create_time: i64,
    /// Microseconds since the epoch.
    pub update_time: i64,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
