//! SeaORM entities, one per table. Times are microseconds since the Unix
//! epoch in `BIGINT` columns, identical on SQLite and PostgreSQL.

pub mod membership;
pub mod membership_role;
pub mod operation;
pub mod organization;
pub mod role;
pub mod user;
pub mod user_role;
pub mod workspace;
