//! What a replica alone on a PostgreSQL database holds, so that it may answer
//! cached reads without asking the database for versions first (the rules
//! are in `domain::solo`):
//! - the solo lock, an advisory lock every replica holds shared on its
//!   presence connection for as long as it lives, and the one alone takes
//!   exclusively; every write that changes cached reads takes it shared for
//!   its transaction ([`write_fence_function`]), so none commits while another
//!   replica is solo;
//! - the drain lock, which the solo replica's own writes take shared
//!   instead (they would wait for their own replica's lock forever), and
//!   which a replica taking over drains, so that no write of a replica that
//!   lost the solo lock is still under way when it begins;
//! - `acl_solo`, one row naming the solo replica and until when its lease
//!   runs, on the database's clock: a replica that lost its connection
//!   goes on answering from memory until its lease ends, so a write waits
//!   for the lease of a replica that did not step down.

use super::acl_versions::{dedicated_connection, query_err, within_timeout};
use sea_orm::{
    DbErr,
    sqlx::{self, Connection, PgConnection},
};
use std::time::Duration;

/// The advisory lock a solo replica holds exclusively. Never change it (nor
/// [`DRAIN_LOCK`]): databases migrated before would keep the old number in
/// their write fence.
pub const SOLO_LOCK: i64 = 0x726b_0001;
/// The advisory lock the solo replica's writes hold shared.
pub const DRAIN_LOCK: i64 = 0x726b_0002;

/// The `application_name` of presence connections.
pub const APPLICATION_NAME: &str = "rolekeeper-solo";

/// `acl_write_fence(solo)`, which a transaction that changes cached reads
/// calls before it commits: with the token of the solo replica it runs in
/// (and that replica still named solo), it takes the drain lock; otherwise
/// it waits until no replica is solo and the lease of the last one has run
/// out.
pub fn write_fence_function() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION acl_write_fence(solo bigint) RETURNS integer \
         LANGUAGE plpgsql AS $$
         DECLARE
           remaining interval;
         BEGIN
           IF solo IS NOT NULL THEN
             PERFORM pg_advisory_xact_lock_shared({DRAIN_LOCK});
             PERFORM 1 FROM acl_solo WHERE owner = solo;
             IF FOUND THEN
               RETURN 1;
             END IF;
           END IF;
           PERFORM pg_advisory_xact_lock_shared({SOLO_LOCK});
           LOOP
             SELECT lease_until - clock_timestamp() INTO remaining FROM acl_solo;
             EXIT WHEN remaining IS NULL OR remaining <= interval '0';
             PERFORM pg_sleep(extract(epoch FROM remaining)::float8);
           END LOOP;
           RETURN 1;
         END $$"
    )
}

/// The statements that create `acl_solo` (one row) and the write fence.
pub fn schema() -> Vec<String> {
    vec![
        "CREATE TABLE acl_solo (\
             id integer PRIMARY KEY CHECK (id = 1), \
             owner bigint, \
             lease_until timestamptz)"
            .into(),
        "INSERT INTO acl_solo (id) VALUES (1)".into(),
        write_fence_function(),
    ]
}

/// A replica's presence: a PostgreSQL connection of its own that holds the
/// solo lock, shared or exclusively. Dropping it (or losing it) releases
/// both.
#[derive(Debug)]
pub struct Presence(PgConnection);

impl Presence {
    /// Opens one and takes the solo lock shared, which waits while another
    /// replica is solo (it steps down when it sees this wait).
    pub async fn join(store: &super::Store) -> Result<Self, DbErr> {
        let mut presence = Self(dedicated_connection(store, Some(APPLICATION_NAME)).await?);
        presence
            .run(sqlx::query("SELECT pg_advisory_lock_shared($1)").bind(SOLO_LOCK))
            .await?;
        Ok(presence)
    }

    /// Takes the solo lock exclusively if no other replica holds it.
    pub async fn try_solo(&mut self) -> Result<bool, DbErr> {
        let taken = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(SOLO_LOCK);
        self.fetch(taken).await
    }

    /// Names this replica (`token`) solo, and returns how long the lease of
    /// the last one still runs.
    pub async fn claim(&mut self, token: i64) -> Result<Duration, DbErr> {
        let remaining = sqlx::query_scalar(
            "UPDATE acl_solo SET owner = $1 \
             RETURNING COALESCE(GREATEST(\
                 EXTRACT(EPOCH FROM lease_until - clock_timestamp())::float8, 0), 0)",
        )
        .bind(token);
        let seconds: f64 = self.fetch(remaining).await?;
        Ok(Duration::from_secs_f64(seconds))
    }

    /// Checks that the connection (and with it the shared lock) is alive.
    pub async fn check(&mut self) -> Result<(), DbErr> {
        self.run(sqlx::query("SELECT 1")).await
    }

    /// Waits until no write of an earlier solo replica is under way.
    pub async fn drain(&mut self) -> Result<(), DbErr> {
        self.run(sqlx::query("SELECT pg_advisory_lock($1)").bind(DRAIN_LOCK))
            .await?;
        self.run(sqlx::query("SELECT pg_advisory_unlock($1)").bind(DRAIN_LOCK))
            .await
    }

    /// Extends the lease of `token` to `lease` from now; returns whether
    /// another replica waits for the solo lock, or `None` if `token` is no
    /// longer named solo.
    pub async fn renew(&mut self, token: i64, lease: Duration) -> Result<Option<bool>, DbErr> {
        let renewed = sqlx::query_scalar(
            "UPDATE acl_solo SET lease_until = clock_timestamp() + make_interval(secs => $2) \
             WHERE owner = $1 \
             RETURNING EXISTS (SELECT 1 FROM pg_locks \
                 WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND classid = 0 AND objid = $3::bigint::oid AND objsubid = 1)",
        )
        .bind(token)
        .bind(lease.as_secs_f64())
        .bind(SOLO_LOCK);
        let query =
            within_timeout(async { renewed.fetch_optional(&mut self.0).await.map_err(query_err) });
        query.await
    }

    /// Ends the lease of `token` and releases the exclusive lock (keeping
    /// the shared one). Call it only once this replica has stopped
    /// answering from memory.
    pub async fn step_down(&mut self, token: i64) -> Result<(), DbErr> {
        self.run(
            sqlx::query("UPDATE acl_solo SET owner = NULL, lease_until = NULL WHERE owner = $1")
                .bind(token),
        )
        .await?;
        self.run(sqlx::query("SELECT pg_advisory_unlock($1)").bind(SOLO_LOCK))
            .await
    }

    /// Closes the connection, which releases the locks.
    pub async fn close(self) {
        let _ = self.0.close().await;
    }

    async fn run<'q>(
        &mut self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), DbErr> {
        within_timeout(async { query.execute(&mut self.0).await.map_err(query_err) })
            .await
            .map(drop)
    }

    async fn fetch<'q, T>(
        &mut self,
        query: sqlx::query::QueryScalar<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>,
    ) -> Result<T, DbErr>
    where
        T: Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        within_timeout(async { query.fetch_one(&mut self.0).await.map_err(query_err) }).await
    }
}
