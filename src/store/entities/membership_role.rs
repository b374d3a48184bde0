//! `membership_roles`: extra workspace roles held by a membership.

use sea_orm::entity::prelude::*;

/// One assignment to a membership.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "membership_roles")]
pub struct Model {
    /// The membership.
    #[sea_orm(primary_key, auto_increment = false)]
    pub membership_id: String,
    /// The role (workspace scope).
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: String,
    /// The organization of both.
    pub organization_id: String,
    /// Microseconds since the epoch.
    pub create_time: i64,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
