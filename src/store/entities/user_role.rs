//! `user_roles`: organization roles held by organization users.

use sea_orm::entity::prelude::*;

/// One assignment.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_roles")]
pub struct Model {
    /// The organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// The role (organization scope).
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: String,
    /// Microseconds since the epoch.
    pub create_time: i64,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
