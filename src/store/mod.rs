//! Persistence: SeaORM entities, migrations and queries. The only module that
//! knows which database it talks to; everything that differs between SQLite
//! and PostgreSQL (write serialization, claim statements, error codes) is
//! handled here. No protobuf types.

pub mod acl_versions;
pub mod assignments;
pub mod directory;
pub mod entities;
pub mod memberships;
pub mod migration;
pub mod operations;
pub mod roles;
mod row_list;
pub mod solo;

use crate::error::Error;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, RuntimeErr, SqlErr, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;
use std::{ops::Deref, sync::Arc, time::Duration};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long to wait for a pooled connection before answering `UNAVAILABLE`.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool for `url`: PostgreSQL serves reads in
/// parallel backends; an SQLite connection is a thread of this process,
/// and past a few per core they only add context switches, memory (page
/// and statement caches) and warm-up.
pub fn pool_size(url: &str) -> u32 {
    if url.starts_with("postgres") { 16 } else { 8 }
}

/// A connection pool plus what the backend needs to write safely.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite's writer; PostgreSQL has row locks and writes through the pool.
    writer: Option<Writer>,
}

/// SQLite allows one writer at a time: taking `gate` before `BEGIN` turns
/// "database is locked" races into an orderly queue, and every write goes
/// through the one connection of `db`. That connection's page cache stays
/// valid from one transaction to the next (SQLite drops a connection's
/// cache when another connection has written since it last read), so a
/// write reads the pages it touches from memory instead of from the file.
#[derive(Clone, Debug)]
struct Writer {
    db: DatabaseConnection,
    gate: Arc<Mutex<()>>,
}

/// Page cache of each of SQLite's readers, in KiB: small (SQLite's default
/// is 2 MiB), since hot reads come from the read cache, the file from the
/// OS page cache, and every reader would otherwise hold its own copy of the
/// same pages.
const READER_CACHE_KIB: u32 = 256;

/// Page cache of SQLite's writer connection, in KiB: the pages a batch of
/// writes touches (the operations table and its indexes, assignments,
/// roles) stay in it between batches.
const WRITER_CACHE_KIB: u32 = 1024;

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let db = Self::pool(url, pool_size(url), READER_CACHE_KIB).await?;
        let writer = match db.get_database_backend() {
            DbBackend::Sqlite => Some(Writer {
                db: Self::pool(url, 1, WRITER_CACHE_KIB).await?,
                gate: Arc::new(Mutex::new(())),
            }),
            _ => None,
        };
        Ok(Self { db, writer })
    }

    /// A pool of at most `connections` to `url`; on SQLite each connection
    /// keeps `cache_kib` KiB of page cache.
    async fn pool(
        url: &str,
        connections: u32,
        cache_kib: u32,
    ) -> Result<DatabaseConnection, Error> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_timeout(ACQUIRE_TIMEOUT)
            .max_connections(connections)
            // sqlx pings a connection as it leaves the pool: worth a round
            // trip to PostgreSQL, which may have dropped it; an SQLite
            // connection is a thread of this process, and the ping only a
            // hop to it and back.
            .test_before_acquire(!url.starts_with("sqlite"))
            .map_sqlx_sqlite_opts(move |o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .pragma("cache_size", format!("-{cache_kib}"))
            });
        Database::connect(options)
            .await
            .map_err(|err| Error::Unavailable {
                reason: "DATABASE_UNAVAILABLE".into(),
                message: format!("cannot connect to the database: {err}"),
                retry_after: Duration::from_secs(1),
            })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), Error> {
        migration::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// The pool, for reads outside a transaction.
    pub fn reader(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Begins a read-write transaction.
    pub async fn write(&self) -> Result<WriteTx, Error> {
        let Some(writer) = &self.writer else {
            return Ok(WriteTx {
                txn: self.db.begin().await?,
                _gate: None,
            });
        };
        let gate = writer.gate.clone().lock_owned().await;
        let txn = writer.db.begin().await?;
        // Take SQLite's write lock now, as `BEGIN IMMEDIATE` would (the ORM
        // only issues a plain `BEGIN`): a transaction that read first and
        // then wrote would fail at once with SQLITE_BUSY if another
        // connection committed in between. Within this process every write
        // takes the gate and this one connection, so that other connection
        // is another process's (say `rolekeeper migrate` run beside the
        // server); this waits its turn instead.
        txn.execute_unprepared("DELETE FROM acl_versions WHERE 0")
            .await?;
        Ok(WriteTx {
            txn,
            _gate: Some(gate),
        })
    }

    /// Whether one process owns the database (embedded SQLite).
    pub fn single_process(&self) -> bool {
        self.writer.is_some()
    }

    /// Connection pool size and idle connections.
    pub fn pool_stats(&self) -> (u32, u32) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
        }
    }

    /// A listener for PostgreSQL notifications on `channels`; `None` on SQLite.
    pub async fn listen(
        &self,
        channels: &[&str],
    ) -> Result<Option<sea_orm::sqlx::postgres::PgListener>, Error> {
        if self.backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let unavailable = |err: sea_orm::sqlx::Error| Error::Unavailable {
            reason: "DATABASE_UNAVAILABLE".into(),
            message: format!("cannot listen for notifications: {err}"),
            retry_after: Duration::from_secs(1),
        };
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(
            self.db.get_postgres_connection_pool(),
        )
        .await
        .map_err(unavailable)?;
        listener
            .listen_all(channels.iter().copied())
            .await
            .map_err(unavailable)?;
        Ok(Some(listener))
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.map_err(Error::from)
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), Error> {
        if let Some(writer) = self.writer {
            writer.db.close().await?;
        }
        self.db.close().await.map_err(Error::from)
    }
}

/// A read-write transaction; dropped without [`WriteTx::commit`] it rolls back.
pub struct WriteTx {
    txn: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits.
    pub async fn commit(self) -> Result<(), Error> {
        self.txn.commit().await.map_err(Error::from)
    }
}

impl Deref for WriteTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Whether `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Maps a database error that no query handled itself: lost connections
/// and contention (a lock wait that timed out, a deadlock, a busy SQLite
/// file) are `UNAVAILABLE` (retryable), everything else `INTERNAL`.
pub fn classify_db_error(err: DbErr) -> Error {
    let sqlx_error = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => None,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => return Error::internal(err),
    };
    let (reason, message) = match sqlx_error {
        None => UNAVAILABLE,
        Some(e) => {
            use sea_orm::sqlx::Error as E;
            match e {
                E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => UNAVAILABLE,
                E::Database(db) if db.code().is_some_and(|code| is_contention(&code)) => {
                    tracing::warn!(error = %db, "database contention");
                    BUSY
                }
                _ => return Error::internal(err),
            }
        }
    };
    Error::Unavailable {
        reason: reason.into(),
        message: message.into(),
        retry_after: Duration::from_secs(1),
    }
}

const UNAVAILABLE: (&str, &str) = (
    "DATABASE_UNAVAILABLE",
    "the database is unavailable; retry later",
);
const BUSY: (&str, &str) = ("DATABASE_BUSY", "the database is busy; retry later");

/// PostgreSQL `lock_not_available`, `serialization_failure` and
/// `deadlock_detected` (SQLSTATEs are five characters); SQLite
/// `SQLITE_BUSY` and `SQLITE_LOCKED` with their extended codes (numbers
/// below 10,000).
fn is_contention(code: &str) -> bool {
    match code.len() {
        5 => matches!(code, "55P03" | "40001" | "40P01"),
        _ => code
            .parse::<u32>()
            .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6)),
    }
}

/// A statement of `sql`, its `?` placeholders rewritten for the backend.
pub(crate) fn statement(
    backend: DbBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

/// `sql` with its `?` placeholders numbered `$1`, `$2`, ... on PostgreSQL.
pub(crate) fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Keyset pagination: the rows of `query` whose `key` sorts after `after`,
/// ordered by `key`, at most `limit`.
pub(crate) async fn page_after<E: sea_orm::EntityTrait>(
    db: &impl ConnectionTrait,
    query: sea_orm::Select<E>,
    key: E::Column,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let query = match after {
        Some(after) => query.filter(key.gt(after)),
        None => query,
    };
    query.order_by_asc(key).limit(limit).all(db).await
}

/// Shorthand for the backend of any connection.
pub(crate) fn backend_of(db: &impl ConnectionTrait) -> DbBackend {
    db.get_database_backend()
}

#[cfg(test)]
mod tests {
    use super::is_contention;

    #[test]
    fn contention_codes_of_both_backends() {
        for code in ["55P03", "40001", "40P01", "5", "6", "261", "517", "262"] {
            assert!(is_contention(code), "{code}");
        }
        for code in ["23505", "08006", "57014", "19", "2067", "1"] {
            assert!(!is_contention(code), "{code}");
        }
    }
}
