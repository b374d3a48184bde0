//! `permissions`: the permissions of a role, in the caller's order.

use sea_orm::entity::prelude::*;

/// One permission of a role.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "permissions")]
pub struct Model {
    /// The organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    /// The role.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: String,
    /// Unique within the role.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Free text.
    pub description: String,
    /// True grants, false denies.
    pub access: bool,
    /// Position in the role's list.
    pub position: i32,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
