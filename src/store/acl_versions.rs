//! `acl_versions`: a version per organization of what cached reads answer,
//! for replicas sharing a PostgreSQL database (one SQLite process versions
//! in memory alone).

use super::{backend_of, row_list};
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
    // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's.
    let bump = row_list::statement(
        backend_of(db),
        "INSERT INTO acl_versions (organization_id, version) \
         SELECT o, 1 FROM ({rows}) AS b WHERE true ORDER BY o \
         ON CONFLICT (organization_id) DO UPDATE SET version = acl_versions.version + 1",
        &["o"],
        &orgs,
        vec![],
        vec![],
    )?;
    db.execute(bump).await.map(drop)
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
