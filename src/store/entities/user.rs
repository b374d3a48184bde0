//! `users`: organization users and their external identities.

use sea_orm::entity::prelude::*;

/// One organization user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// The organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    /// Unique within the organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// As given by the caller.
    pub email: Option<String>,
    /// Lower-cased e-mail: the unique key.
    pub email_key: Option<String>,
    /// Azure AD object id.
    pub aad_id: Option<String>,
    /// Auth0 user id.
    pub auth0_id: Option<String>,
    /// Human readable name.
    pub display_name: String,
    /// Microseconds since the epoch.
    pub create_time: i64,
}

/// No relations are navigated through the ORM; foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
