//! Replicas on one PostgreSQL database cache reads, yet each sees a change
//! committed through another at its very next read. In solo mode a replica
//! alone on the database answers cached reads from memory, and still never
//! misses a change committed through another replica — one that starts
//! while it is solo, or one that starts after it
//! lost its connection to the database (and with it the solo lock) without
//! noticing — and the binary reports being solo in its metrics and, killed
//! with SIGKILL, is replaced as the solo replica. And the write fence
//! underneath: a write waits while another replica is solo and until the
//! lease of one that did not step down has run out, while the solo
//! replica's own writes pass.
//!
//! No assertion depends on how long anything took: the lease check compares
//! the database's own clock inside the writing transaction.

#[macro_use]
mod common;
#[macro_use]
mod engine_support;
mod process_support;

use common::{ORG, RpcResult, SECRET};
use engine_support::{Api, Replica, TestDb, settings};
use rolekeeper::{
    pb::v1::{AssignUserRolesRequest, DeleteRoleRequest, GetRoleRequest, RoleScope},
    store::{
        Store, acl_versions,
        solo::{APPLICATION_NAME, SOLO_LOCK},
    },
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, Statement,
    sqlx::{Connection, Executor, PgConnection},
};
use std::time::Duration;
use tonic::Code;

postgres_tests!(
    reads_on_one_replica_see_changes_committed_through_another,
    a_lone_replica_is_solo_until_another_starts,
    a_replica_with_solo_off_never_becomes_solo,
    the_binary_reports_solo_and_a_killed_solo_replica_is_replaced,
    a_solo_replica_that_lost_its_connection_misses_no_change,
    the_write_fence_waits_for_the_solo_replica_and_its_lease,
);

const ROLES: [&str; 2] = ["r0", "r1"];

async fn query_bool(conn: &impl ConnectionTrait, sql: &str) -> bool {
    conn.query_one(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row")
        .try_get_by_index(0)
        .expect("a boolean")
}

async fn execute(conn: &impl ConnectionTrait, sql: &str) {
    conn.execute_unprepared(sql).await.expect(sql);
}

/// Waits (at most 30 s) until the boolean query `sql` answers true.
async fn wait_until(conn: &DatabaseConnection, sql: &str) {
    for _ in 0..300 {
        if query_bool(conn, sql).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not true within 30 s: {sql}");
}

/// Waits until a replica is named solo, or none is.
async fn wait_for_solo(conn: &DatabaseConnection, named: bool) {
    let not = if named { "NOT " } else { "" };
    wait_until(conn, &format!("SELECT owner IS {not}NULL FROM acl_solo")).await;
}

/// The roles of `ORG` and a user `u0`, created through `api`.
async fn seed(api: &Api) {
    api.create_org(ORG).await;
    api.create_users(ORG, &["u0".to_owned()]).await;
    api.create_roles(ORG, RoleScope::Organization, &ROLES).await;
}

async fn get_r1(api: &Api) -> Result<tonic::Response<rolekeeper::pb::v1::Role>, tonic::Status> {
    api.roles()
        .get_role(GetRoleRequest {
            organization_id: ORG.into(),
            role_id: "r1".into(),
        })
        .await
}

/// Reads `u0`'s roles and `r1` through `api` a few times, so that both are
/// cached.
async fn warm(api: &Api) {
    for _ in 0..3 {
        assert!(api.user_roles(ORG, "u0").await.is_empty());
        get_r1(api).await.must();
    }
}

/// Assigns `r0` to `u0` through `writer`, then deletes `r1`; `reader` sees
/// each at once.
async fn change_and_read(writer: &Api, reader: &Api) {
    let op = writer
        .roles()
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "u0".into(),
            role_ids: vec!["r0".into()],
            request_id: String::new(),
        })
        .await
        .must();
    writer.wait_done(&op.name).await;
    assert_eq!(reader.user_roles(ORG, "u0").await, ["r0".to_owned()].into());
    writer
        .roles()
        .delete_role(DeleteRoleRequest {
            organization_id: ORG.into(),
            role_id: "r1".into(),
            force: true,
        })
        .await
        .must();
    assert_eq!(get_r1(reader).await.fails().code(), Code::NotFound);
}

/// Two replicas started together cache reads, yet a change committed
/// through one is seen by the very next read on the other.
async fn reads_on_one_replica_see_changes_committed_through_another(db: TestDb) {
    let a = Replica::start(&db, 1).await;
    let b = Replica::start(&db, 1).await;
    seed(&a.api).await;
    warm(&b.api).await;
    change_and_read(&a.api, &b.api).await;
    b.stop().await;
    a.stop().await;
}

/// A lone replica becomes solo; a second one makes it step down, and its
/// changes are seen by the first at once; alone again, the first becomes
/// solo again and sees its own changes.
async fn a_lone_replica_is_solo_until_another_starts(db: TestDb) {
    let conn = db.connect().await;
    let a = Replica::start(&db, 1).await;
    wait_for_solo(&conn, true).await;
    seed(&a.api).await;
    warm(&a.api).await;

    let b = Replica::start(&db, 1).await;
    change_and_read(&b.api, &a.api).await;
    wait_for_solo(&conn, false).await;
    b.stop().await;

    wait_for_solo(&conn, true).await;
    a.api
        .roles()
        .delete_role(DeleteRoleRequest {
            organization_id: ORG.into(),
            role_id: "r0".into(),
            force: true,
        })
        .await
        .must();
    assert!(a.api.user_roles(ORG, "u0").await.is_empty());
    a.stop().await;
}

/// Waits (at most 30 s) until the metrics at `addr` show `line`.
async fn wait_for_metric(addr: std::net::SocketAddr, line: &str) {
    for _ in 0..300 {
        let text = tokio::task::spawn_blocking(move || process_support::http_get(addr, "/metrics"))
            .await
            .expect("metrics request");
        if text.lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the metrics never showed {line} within 30 s");
}

/// With `ROLEKEEPER_SOLO=false` a lone replica joins (its presence
/// connection holds the lock shared) but never becomes solo, and so keeps
/// another from becoming solo while it runs; reads on both see each other's
/// changes.
async fn a_replica_with_solo_off_never_becomes_solo(db: TestDb) {
    let conn = db.connect().await;
    let mut off = settings(&db, 1);
    off.solo = false;
    let a = Replica::start_with(off).await;
    wait_for_presences(&conn, 1).await;
    assert_never_solo(&conn).await;
    let b = Replica::start(&db, 1).await;
    wait_for_presences(&conn, 2).await;
    assert_never_solo(&conn).await;
    seed(&b.api).await;
    warm(&a.api).await;
    change_and_read(&b.api, &a.api).await;
    b.stop().await;
    a.stop().await;
}

/// Waits until `count` replicas hold presence connections.
async fn wait_for_presences(conn: &DatabaseConnection, count: i64) {
    let present = format!(
        "SELECT count(*) = {count} FROM pg_stat_activity \
         WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()"
    );
    wait_until(conn, &present).await;
}

/// No replica is named solo after ten polls' time (an enabled replica
/// alone becomes solo within one).
async fn assert_never_solo(conn: &DatabaseConnection) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!query_bool(conn, "SELECT owner IS NOT NULL FROM acl_solo").await);
}

/// The binary alone reports `rolekeeper_solo 1`, and 0 once another
/// replica starts; killed with SIGKILL, it is replaced as the solo replica
/// by the other, whose changes and reads go on.
async fn the_binary_reports_solo_and_a_killed_solo_replica_is_replaced(db: TestDb) {
    let conn = db.connect().await;
    let metrics = process_support::free_addr();
    let metrics_arg = metrics.to_string();
    let secret = std::str::from_utf8(SECRET).expect("ASCII secret");
    let mut first = process_support::Server::start(
        db.dir(),
        &["--metrics-listen", &metrics_arg],
        &[
            ("ROLEKEEPER_HS256_SECRET", secret),
            ("ROLEKEEPER_DATABASE_URL", db.url.as_str()),
        ],
    );
    wait_for_metric(metrics, "rolekeeper_solo 1").await;
    seed(&Api::connect(first.addr)).await;

    let second = Replica::start(&db, 1).await;
    wait_for_metric(metrics, "rolekeeper_solo 0").await;
    wait_for_solo(&conn, false).await;
    first.kill9();
    wait_for_solo(&conn, true).await;
    warm(&second.api).await;
    change_and_read(&second.api, &second.api).await;
    second.stop().await;
}

/// The solo replica's presence connection is killed: until it notices, it
/// still answers from memory, so another replica's write, made at once
/// (here, as its transaction would: the change, then the version bump
/// with the write fence), waits for its lease to run out, and the first
/// replica's next read sees the change. So does a replica started then.
async fn a_solo_replica_that_lost_its_connection_misses_no_change(db: TestDb) {
    let conn = db.connect().await;
    let store = Store::connect(&db.url).await.expect("connect");
    let a = Replica::start(&db, 1).await;
    wait_for_solo(&conn, true).await;
    seed(&a.api).await;
    warm(&a.api).await;

    assert!(
        query_bool(
            &conn,
            &format!(
                "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()"
            ),
        )
        .await
    );
    let tx = store.write().await.expect("begin");
    execute(
        &*tx,
        &format!("UPDATE roles SET description = 'elsewhere' WHERE organization_id = '{ORG}' AND role_id = 'r1'"),
    )
    .await;
    acl_versions::bump(&*tx, &[ORG], None).await.expect("bump");
    tx.commit().await.expect("commit");
    assert_eq!(get_r1(&a.api).await.must().description, "elsewhere");

    let b = Replica::start(&db, 1).await;
    change_and_read(&b.api, &a.api).await;
    b.stop().await;
    a.stop().await;
}

/// `acl_write_fence` on its own: a connection holds the solo lock as a solo
/// replica named 42 would.
async fn the_write_fence_waits_for_the_solo_replica_and_its_lease(db: TestDb) {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut solo = PgConnection::connect(&db.url).await.expect("connect");
    for sql in [
        format!("SELECT pg_advisory_lock({SOLO_LOCK})"),
        "UPDATE acl_solo SET owner = 42, lease_until = clock_timestamp() + interval '1 hour'"
            .into(),
    ] {
        solo.execute(sql.as_str()).await.expect(&sql);
    }

    // Another replica's write waits for the lock (here, until a short
    // lock_timeout), as does one from a replica no longer named solo.
    for token in [None, Some(7)] {
        let tx = store.write().await.expect("begin");
        execute(&*tx, "SET LOCAL lock_timeout = '200ms'").await;
        let err = acl_versions::bump(&*tx, &["o"], token)
            .await
            .expect_err("waits for the solo lock");
        assert!(err.to_string().contains("lock timeout"), "{err}");
    }
    // The solo replica's own write passes.
    let tx = store.write().await.expect("begin");
    acl_versions::bump(&*tx, &["o"], Some(42))
        .await
        .expect("the solo replica writes");
    tx.commit().await.expect("commit");

    // The solo replica loses the lock without stepping down: a write
    // commits only after its lease, on the database's clock.
    for sql in [
        "UPDATE acl_solo SET lease_until = clock_timestamp() + interval '300 ms'".to_owned(),
        format!("SELECT pg_advisory_unlock({SOLO_LOCK})"),
    ] {
        solo.execute(sql.as_str()).await.expect(&sql);
    }
    let tx = store.write().await.expect("begin");
    acl_versions::bump(&*tx, &["o"], None)
        .await
        .expect("writes after the lease");
    assert!(
        query_bool(
            &*tx,
            "SELECT lease_until <= clock_timestamp() FROM acl_solo"
        )
        .await
    );
    tx.commit().await.expect("commit");
}
