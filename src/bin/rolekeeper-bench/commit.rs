//! The database's raw commit rate, measured by the benchmark itself on the
//! same kind of database the server uses (a SQLite file in the same
//! directory with the server's pragmas, or a fresh database on the same
//! PostgreSQL server), with the server's pool size and, on SQLite, its
//! one-writer gate: one single-row insert per transaction, at the same
//! concurrency as the other phases. It is the ceiling for operations, each
//! of which needs at least one durable commit.

use crate::{Result, load::RequestFuture};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use std::{sync::Arc, time::Duration};
use tokio::sync::Mutex;

/// The server's SQLite busy timeout and pool acquire timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A pool on the baseline database, plus the SQLite writer gate.
#[derive(Debug, Clone)]
pub struct Baseline {
    db: DatabaseConnection,
    gate: Option<Arc<Mutex<()>>>,
}

impl Baseline {
    /// Connects to `url` (an empty database of its own) and creates the
    /// table.
    pub async fn open(url: &str) -> Result<Self> {
        let baseline = Self::connect(url).await?;
        baseline.create_table().await?;
        Ok(baseline)
    }

    /// The closed loop's request: one committed single-row transaction.
    pub fn request(&self) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
        let baseline = self.clone();
        move |client, sequence| {
            let baseline = baseline.clone();
            Box::pin(async move { baseline.commit_one(client, sequence).await })
        }
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    /// Connects like the server does: same pool size, and on SQLite WAL,
    /// `synchronous = FULL`, a busy timeout and foreign keys.
    async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .acquire_timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .max_connections(rolekeeper::store::pool_size(url))
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(TIMEOUT)
                    .foreign_keys(true)
            });
        let db = Database::connect(options).await?;
        let gate = (db.get_database_backend() == DbBackend::Sqlite).then(Arc::default);
        Ok(Self { db, gate })
    }

    async fn create_table(&self) -> Result<()> {
        self.db
            .execute_unprepared(
                "CREATE TABLE commit_baseline (
                    id TEXT PRIMARY KEY,
                    client BIGINT NOT NULL,
                    sequence BIGINT NOT NULL,
                    payload TEXT NOT NULL
                )",
            )
            .await?;
        Ok(())
    }

    /// One transaction with one insert, committed.
    async fn commit_one(&self, client: usize, sequence: u64) -> Result<()> {
        let backend = self.db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "INSERT INTO commit_baseline (id, client, sequence, payload) \
                 VALUES ($1, $2, $3, $4)"
            }
            _ => "INSERT INTO commit_baseline (id, client, sequence, payload) VALUES (?, ?, ?, ?)",
        };
        let statement = Statement::from_sql_and_values(
            backend,
            sql,
            [
                uuid::Uuid::now_v7().to_string().into(),
                i64::try_from(client)?.into(),
                i64::try_from(sequence)?.into(),
                "organizations/bench/users/u00000".into(),
            ],
        );
        let _gate = match &self.gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        let txn = self.db.begin().await?;
        txn.execute(statement).await?;
        txn.commit().await?;
        Ok(())
    }
}
