//! `acl_versions`: a version per organization of what cached reads answer,
//! for replicas sharing a PostgreSQL database (one SQLite process versions
//! in memory alone).

use super::{backend_of, row_list, statement};
use sea_orm::{ConnectionTrait, DbErr};
use std::collections::HashMap;

/// Bumps the versions of `organizations` in this transaction, in sorted
/// order (one lock order for every replica).
pub async fn bump(db: &impl ConnectionTrait, organizations: &[&str]) -> Result<(), DbErr> {
    let mut orgs: Vec<_> = organizations.iter().map(|o| (*o,)).collect();
    orgs.sort_unstable();
    orgs.dedup();
    if orgs.is_empty() {
        return Ok(());
    }
    let backend = backend_of(db);
    let list = row_list::rows(backend, &["o"], &orgs)?;
    // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's.
    let sql = format!(
        "INSERT INTO acl_versions (organization_id, version) \
         SELECT o, 1 FROM ({}) AS b WHERE true ORDER BY o \
         ON CONFLICT (organization_id) DO UPDATE SET version = acl_versions.version + 1",
        list.sql
    );
    db.execute(statement(backend, &sql, list.values))
        .await
        .map(drop)
}

/// The current versions of `organizations`; one never changed is absent
/// (version 0).
pub async fn current(
    db: &impl ConnectionTrait,
    organizations: &[&str],
) -> Result<HashMap<String, i64>, DbErr> {
    let orgs: Vec<_> = organizations.iter().map(|o| (*o,)).collect();
    row_list::select_pairs(
        db,
        "SELECT organization_id, version FROM acl_versions WHERE organization_id IN ({rows})",
        &["o"],
        &orgs,
        ("organization_id", "version"),
    )
    .await
}
