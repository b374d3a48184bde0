//! `acl_versions`: a version per organization of what cached reads answer,
//! for replicas sharing a PostgreSQL database (one SQLite process versions
//! in memory alone).

use super::{ACQUIRE_TIMEOUT, Store, backend_of, row_list};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DbBackend, DbErr, RuntimeErr, Value,
    sqlx::{ConnectOptions, PgConnection},
};
use std::{collections::HashMap, future::Future};

/// Bumps the versions of `organizations` in this transaction, in sorted
/// order (one lock order for every replica). On PostgreSQL it first passes
/// the write fence (`super::solo`), as the solo replica whose token is
/// `solo` or as any other.
pub async fn bump(
    db: &impl ConnectionTrait,
    organizations: &[&str],
    solo: Option<i64>,
) -> Result<(), DbErr> {
    let mut orgs: Vec<_> = organizations.iter().map(|o| (*o,)).collect();
    orgs.sort_unstable();
    orgs.dedup();
    if orgs.is_empty() {
        return Ok(());
    }
    let backend = backend_of(db);
    let (fence, before) = match backend {
        DbBackend::Postgres => (
            "(SELECT acl_write_fence(CAST(? AS bigint))) AS f, ",
            vec![Value::BigInt(solo)],
        ),
        _ => ("", vec![]),
    };
    // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's.
    let sql = format!(
        "INSERT INTO acl_versions (organization_id, version) \
         SELECT o, 1 FROM {fence}({{rows}}) AS b WHERE true ORDER BY o \
         ON CONFLICT (organization_id) DO UPDATE SET version = acl_versions.version + 1"
    );
    let bump = row_list::statement(backend, &sql, &["o"], &orgs, before, vec![])?;
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

/// A PostgreSQL connection of its own for the question [`current`] asks,
/// which a replica asks before every cached read. Through the pool each
/// answer would cost three round trips: sqlx pings a connection as it is
/// acquired and again as it is released.
#[derive(Debug)]
pub struct VersionConnection(PgConnection);

impl VersionConnection {
    /// Opens one with the pool's connect options.
    pub async fn open(store: &Store) -> Result<Self, DbErr> {
        Ok(Self(dedicated_connection(store, None).await?))
    }

    /// The current versions of `organizations`, as [`current`].
    pub async fn current(&mut self, organizations: &[&str]) -> Result<HashMap<String, i64>, DbErr> {
        let query = sea_orm::sqlx::query_as::<_, (String, i64)>(
            "SELECT organization_id, version FROM acl_versions \
             WHERE organization_id = ANY($1)",
        )
        .bind(organizations);
        let rows =
            within_timeout(async { query.fetch_all(&mut self.0).await.map_err(query_err) }).await?;
        Ok(rows.into_iter().collect())
    }
}

/// A PostgreSQL connection outside the pool, with the pool's connect
/// options (and `application_name`, if given).
pub(crate) async fn dedicated_connection(
    store: &Store,
    application_name: Option<&str>,
) -> Result<PgConnection, DbErr> {
    let mut options = (*store
        .reader()
        .get_postgres_connection_pool()
        .connect_options())
    .clone();
    if let Some(name) = application_name {
        options = options.application_name(name);
    }
    within_timeout(async { options.connect().await.map_err(conn_err) }).await
}

fn conn_err(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(err))
}

/// A query's error on a connection outside the pool.
pub(crate) fn query_err(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(err))
}

/// `work`, or a timeout error after the pool's acquire timeout: a database
/// that stopped answering must not hold every cached read forever.
pub(crate) async fn within_timeout<T>(
    work: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    tokio::time::timeout(ACQUIRE_TIMEOUT, work)
        .await
        .unwrap_or(Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)))
}
