//! The operations engine under concurrency: per-target ordering with several
//! workers, independence of targets, several replicas sharing one
//! PostgreSQL queue, lease takeover after a replica is killed, cancel and
//! delete races, and retention of finished operations.
//!
//! Every check compares data and recorded responses with a model that
//! applies the accepted changes one after another per target; no assertion
//! depends on how long something took. Where a scenario needs an operation
//! to stay "running" (PostgreSQL only), the test inserts, without
//! committing, a `user_roles` row the operation will insert: the worker then
//! waits inside its transaction, holding its claim, until the test rolls the
//! row back.

#[macro_use]
mod common;
#[macro_use]
mod engine_support;
mod process_support;

use common::{
    ORG, RpcResult, SECRET, T_OPERATION, assert_not_found, assert_precondition, op_metadata,
};
use engine_support::{
    Api, Change, Holder, Model, Replica, RowLocks, StatusResult, TestDb, assert_op_code,
    futures_join_all, ids, settings,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rolekeeper::pb::{
    longrunning::{
        CancelOperationRequest, DeleteOperationRequest, ListOperationsRequest, Operation,
        WaitOperationRequest, operation,
    },
    v1::RoleScope,
};
use std::{collections::HashSet, time::Duration};
use tonic::Code;

engine_tests!(
    same_target_operations_apply_in_acceptance_order,
    cancel_of_a_pending_operation_and_delete,
    cancels_racing_workers_never_apply_half,
    a_cancel_waiting_behind_the_workers_still_wins,
    finished_operations_expire_after_the_retention,
);

postgres_tests!(
    a_long_operation_does_not_hold_up_other_targets,
    end_time_is_when_the_operation_finished,
    replicas_share_one_queue_and_run_each_operation_once,
    wait_on_one_replica_is_woken_by_another,
    a_killed_replicas_claims_are_taken_over_after_the_lease,
    a_worker_that_lost_its_lease_does_not_cancel_the_operation,
    cancel_and_delete_of_a_running_operation,
);

/// Organization roles changed through user targets.
const USER_ROLES: [&str; 6] = ["r0", "r1", "r2", "r3", "r4", "r5"];
/// Organization roles changed through role targets (Add/RemoveRoleMembers).
const MEMBER_ROLES: [&str; 2] = ["m0", "m1"];
/// Workspace roles.
const WORKSPACE_ROLES: [&str; 4] = ["w0", "w1", "w2", "w3"];

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}{n}")).collect()
}

/// 1..=`from.len()` distinct entries of `from`, in random order.
fn some_of(rng: &mut StdRng, from: &[&str]) -> Vec<String> {
    let mut chosen = ids(from);
    chosen.shuffle(rng);
    chosen.truncate(rng.random_range(1..=from.len()));
    chosen
}

/// Assign/Revoke changes on one user.
fn user_plan(rng: &mut StdRng, user: &str, count: usize) -> Vec<Change> {
    (0..count)
        .map(|_| {
            let roles = some_of(rng, &USER_ROLES);
            if rng.random_bool(0.55) {
                Change::Assign(user.to_owned(), roles)
            } else {
                Change::Revoke(user.to_owned(), roles)
            }
        })
        .collect()
}

/// Add/RemoveRoleMembers changes on one role, over `users`.
fn role_plan(rng: &mut StdRng, role: &str, users: &[String], count: usize) -> Vec<Change> {
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    (0..count)
        .map(|_| {
            let chosen = some_of(rng, &users);
            if rng.random_bool(0.55) {
                Change::AddMembers(role.to_owned(), chosen)
            } else {
                Change::RemoveMembers(role.to_owned(), chosen)
            }
        })
        .collect()
}

/// Assign/RevokeMembershipRoles changes on one membership.
fn membership_plan(rng: &mut StdRng, ws: &str, m: &str, count: usize) -> Vec<Change> {
    (0..count)
        .map(|_| {
            let roles = some_of(rng, &WORKSPACE_ROLES);
            if rng.random_bool(0.55) {
                Change::AssignMembership(ws.to_owned(), m.to_owned(), roles)
            } else {
                Change::RevokeMembership(ws.to_owned(), m.to_owned(), roles)
            }
        })
        .collect()
}

/// Submits each plan from its own task: one plan's changes one after the
/// other (so their acceptance order is the plan's order), different plans
/// concurrently. `replicas` take the submissions in turn. Returns, per
/// plan, each change with its operation's name.
async fn submit_plans(replicas: &[Api], plans: Vec<Vec<Change>>) -> Vec<Vec<(Change, String)>> {
    let tasks = plans.into_iter().enumerate().map(|(p, plan)| {
        let replicas = replicas.to_vec();
        async move {
            let mut accepted = Vec::new();
            for (i, change) in plan.into_iter().enumerate() {
                let api = &replicas[(p + i) % replicas.len()];
                let op = change.submit(api, ORG, "").await.must_ok();
                accepted.push((change, op.name));
            }
            accepted
        }
    });
    futures_join_all(tasks).await
}

/// Waits for every operation (through `api`), checks each succeeded with the
/// response sequential application gives, and returns the model.
async fn check_in_acceptance_order(api: &Api, accepted: &[Vec<(Change, String)>]) -> Model {
    let mut model = Model::default();
    for plan in accepted {
        for (change, name) in plan {
            let op = api.wait_done(name).await;
            model.apply_and_check(change, &op);
        }
    }
    model
}

/// Asserts the stored roles of every holder the model knows equal the model.
async fn assert_data_matches(api: &Api, model: &Model) {
    for (holder, expected) in &model.held {
        assert_eq!(
            &api.holdings(ORG, holder).await,
            expected,
            "{holder:?} holds other roles than sequential application gives"
        );
    }
}

/// Every operation of the caller's view, in acceptance order.
async fn list_all(api: &Api) -> Vec<Operation> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = api
            .ops()
            .list_operations(ListOperationsRequest {
                name: String::new(),
                filter: String::new(),
                page_size: 1000,
                page_token: page_token.clone(),
            })
            .await
            .must();
        all.extend(page.operations);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
    panic!("more than 100 pages of operations");
}

async fn cancel(api: &Api, name: &str) -> Result<tonic::Response<()>, tonic::Status> {
    api.ops()
        .cancel_operation(CancelOperationRequest {
            name: name.to_owned(),
        })
        .await
}

async fn delete(api: &Api, name: &str) -> Result<tonic::Response<()>, tonic::Status> {
    api.ops()
        .delete_operation(DeleteOperationRequest {
            name: name.to_owned(),
        })
        .await
}

fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

// ----- 1. ordering -----

/// Interleaved assign/revoke sequences on four users, one membership and
/// two roles, submitted as fast as they are accepted to a server with four
/// workers: every response is the state after the operations accepted
/// before it on its target, and the final data is sequential application.
async fn same_target_operations_apply_in_acceptance_order(db: TestDb) {
    let server = Replica::start(&db, 4).await;
    let api = &server.api;
    api.create_org(ORG).await;
    let users = names("u", 4);
    let members = names("v", 6);
    api.create_users(ORG, &users).await;
    api.create_users(ORG, &members).await;
    api.create_roles(ORG, RoleScope::Organization, &USER_ROLES)
        .await;
    api.create_roles(ORG, RoleScope::Organization, &MEMBER_ROLES)
        .await;
    api.create_roles(ORG, RoleScope::Workspace, &WORKSPACE_ROLES)
        .await;
    let membership = api.create_membership(ORG, "ws1", "u0").await;

    let mut rng = StdRng::seed_from_u64(1);
    let mut plans: Vec<Vec<Change>> = users.iter().map(|u| user_plan(&mut rng, u, 25)).collect();
    plans.push(membership_plan(&mut rng, "ws1", &membership, 25));
    for role in MEMBER_ROLES {
        plans.push(role_plan(&mut rng, role, &members, 20));
    }
    let accepted = submit_plans(std::slice::from_ref(api), plans).await;

    let model = check_in_acceptance_order(api, &accepted).await;
    assert_data_matches(api, &model).await;
    server.stop().await;
}

/// An AddRoleMembers on role `big` that is stuck in its transaction does
/// not hold up operations on other targets accepted after it; an operation
/// on its own target waits for it.
async fn a_long_operation_does_not_hold_up_other_targets(db: TestDb) {
    let server = Replica::start(&db, 4).await;
    let api = &server.api;
    api.create_org(ORG).await;
    let crowd = names("c", 300);
    let others = names("o", 6);
    api.create_users(ORG, &crowd).await;
    api.create_users(ORG, &others).await;
    api.create_roles(ORG, RoleScope::Organization, &["big", "r0", "r1"])
        .await;

    let lock = RowLocks::hold(&db, ORG, &[("c299", "big")]).await;
    let long_change = Change::AddMembers("big".into(), crowd.clone());
    let long = long_change.submit(api, ORG, "").await.must_ok();
    lock.wait_blocked(1).await;

    let mut later = Vec::new();
    for user in &others {
        let change = Change::Assign(user.clone(), ids(&["r0", "r1"]));
        let op = change.submit(api, ORG, "").await.must_ok();
        later.push((change, op.name));
    }
    let behind_change = Change::RemoveMembers("big".into(), ids(&["c0", "c1"]));
    let behind = behind_change.submit(api, ORG, "").await.must_ok();

    let mut model = Model::default();
    for (change, name) in &later {
        let op = api.wait_done(name).await;
        model.apply_and_check(change, &op);
    }
    let long_now = api.get_op(&long.name).await.must_ok();
    assert!(
        !long_now.done,
        "the long operation finished although its row is locked"
    );
    let behind_now = api.get_op(&behind.name).await.must_ok();
    assert!(
        !behind_now.done && op_metadata(&behind_now).start_time.is_none(),
        "an operation on the same role started before the earlier one finished"
    );

    lock.release().await;
    model.apply_and_check(&long_change, &api.wait_done(&long.name).await);
    model.apply_and_check(&behind_change, &api.wait_done(&behind.name).await);
    assert_data_matches(api, &model).await;
    server.stop().await;
}

/// `OperationMetadata.end_time` is when the operation finished: an
/// operation that was observed still running after another one was done
/// must end after it.
async fn end_time_is_when_the_operation_finished(db: TestDb) {
    let server = Replica::start(&db, 2).await;
    let api = &server.api;
    api.create_org(ORG).await;
    api.create_users(ORG, &names("u", 2)).await;
    api.create_roles(ORG, RoleScope::Organization, &["r0"])
        .await;

    let lock = RowLocks::hold(&db, ORG, &[("u0", "r0")]).await;
    let slow = Change::Assign("u0".into(), ids(&["r0"]))
        .submit(api, ORG, "")
        .await
        .must_ok();
    lock.wait_blocked(1).await;
    let quick = Change::Assign("u1".into(), ids(&["r0"]))
        .submit(api, ORG, "")
        .await
        .must_ok();
    let quick = api.wait_done(&quick.name).await;
    assert!(!api.get_op(&slow.name).await.must_ok().done);
    lock.release().await;
    let slow = api.wait_done(&slow.name).await;

    let quick_end = op_metadata(&quick).end_time.expect("end_time");
    let slow_meta = op_metadata(&slow);
    let slow_end = slow_meta.end_time.expect("end_time");
    let slow_start = slow_meta.start_time.expect("start_time");
    assert!(micros(&slow_start) <= micros(&slow_end), "start after end");
    assert!(
        micros(&quick_end) < micros(&slow_end),
        "{} was still running when {} was done, yet its end_time {slow_end:?} \
         is not after {quick_end:?}",
        slow.name,
        quick.name
    );
    server.stop().await;
}

// ----- 2. several replicas -----

/// Two replicas with workers and one without share a PostgreSQL database;
/// 200 operations spread over all three run exactly once each, in
/// acceptance order per target.
async fn replicas_share_one_queue_and_run_each_operation_once(db: TestDb) {
    let a = Replica::start(&db, 2).await;
    let b = Replica::start(&db, 2).await;
    let observer = Replica::start(&db, 0).await;
    let api = &a.api;
    api.create_org(ORG).await;
    let users = names("u", 10);
    let members = names("v", 8);
    api.create_users(ORG, &users).await;
    api.create_users(ORG, &members).await;
    api.create_roles(ORG, RoleScope::Organization, &USER_ROLES)
        .await;
    api.create_roles(ORG, RoleScope::Organization, &MEMBER_ROLES)
        .await;

    let mut rng = StdRng::seed_from_u64(2);
    let mut plans: Vec<Vec<Change>> = users.iter().map(|u| user_plan(&mut rng, u, 16)).collect();
    for role in MEMBER_ROLES {
        plans.push(role_plan(&mut rng, role, &members, 20));
    }
    let replicas = [a.api.clone(), b.api.clone(), observer.api.clone()];
    let accepted = submit_plans(&replicas, plans).await;
    let total: usize = accepted.iter().map(Vec::len).sum();
    assert_eq!(total, 200);

    // The observer executes nothing: its waits are woken by the others.
    let model = check_in_acceptance_order(&observer.api, &accepted).await;
    assert_data_matches(&b.api, &model).await;

    let listed = list_all(&observer.api).await;
    let unique: HashSet<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(unique.len(), listed.len(), "an operation is listed twice");
    assert_eq!(listed.len(), total, "operations were lost or added");
    for op in &listed {
        assert!(
            matches!(op.result, Some(operation::Result::Response(_))),
            "{} did not succeed: {:?}",
            op.name,
            op.result
        );
    }
    observer.stop().await;
    b.stop().await;
    a.stop().await;
}

/// WaitOperation on a replica without workers returns the operation done
/// when another replica finishes it.
async fn wait_on_one_replica_is_woken_by_another(db: TestDb) {
    let observer = Replica::start(&db, 0).await;
    let worker = Replica::start(&db, 2).await;
    let api = &worker.api;
    api.create_org(ORG).await;
    api.create_users(ORG, &names("u", 1)).await;
    api.create_roles(ORG, RoleScope::Organization, &["r0"])
        .await;

    let lock = RowLocks::hold(&db, ORG, &[("u0", "r0")]).await;
    let op = Change::Assign("u0".into(), ids(&["r0"]))
        .submit(&observer.api, ORG, "")
        .await
        .must_ok();
    lock.wait_blocked(1).await;
    let mut ops = observer.api.ops();
    let name = op.name.clone();
    let waiting = tokio::spawn(async move {
        ops.wait_operation(WaitOperationRequest {
            name,
            timeout: Some(prost_types::Duration {
                seconds: common::MAX_WAIT.as_secs() as i64,
                nanos: 0,
            }),
        })
        .await
        .must()
    });
    // Let the wait begin while the operation is still blocked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the wait returned before the operation finished"
    );
    lock.release().await;
    let done = waiting.await.expect("wait task");
    assert!(
        done.done,
        "WaitOperation returned a not-done operation: {done:?}"
    );
    common::assert_op_succeeded(&done);
    worker.stop().await;
    observer.stop().await;
}

// ----- 3. lease takeover -----

/// Replica 1 (a child process, lease 2 s) is killed with SIGKILL while two
/// of its workers hold operations (blocked inside their transactions) and
/// more operations wait behind them; replica 2 then runs every accepted
/// operation exactly once (once the dead claims lapse or roll back), in
/// acceptance order per target. The AddRoleMembers reporting all 1,000
/// users as added proves replica 1 committed none of it.
async fn a_killed_replicas_claims_are_taken_over_after_the_lease(db: TestDb) {
    let secret = std::str::from_utf8(SECRET).expect("ASCII secret");
    let envs = [
        ("ROLEKEEPER_HS256_SECRET", secret),
        ("ROLEKEEPER_DATABASE_URL", db.url.as_str()),
        ("ROLEKEEPER_WORKERS", "2"),
        ("ROLEKEEPER_OPERATION_LEASE", "2s"),
    ];
    let mut first = process_support::Server::start(db.dir(), &[], &envs);
    let api = Api::connect(first.addr);
    api.create_org(ORG).await;
    let crowd = names("c", 1000);
    api.create_users(ORG, &crowd).await;
    api.create_users(ORG, &names("u", 4)).await;
    api.create_roles(ORG, RoleScope::Organization, &["big", "r0", "r1", "r2"])
        .await;

    let lock = RowLocks::hold(&db, ORG, &[("c999", "big"), ("u0", "r0")]).await;
    let mut accepted = Vec::new();
    for (blocked, change) in [
        Change::AddMembers("big".into(), crowd.clone()),
        Change::Assign("u0".into(), ids(&["r0", "r1"])),
    ]
    .into_iter()
    .enumerate()
    {
        let op = change.submit(&api, ORG, "").await.must_ok();
        lock.wait_blocked(blocked as i64 + 1).await;
        accepted.push((change, op.name));
    }
    for change in [
        Change::RemoveMembers("big".into(), ids(&["c0", "c1"])),
        Change::Revoke("u0".into(), ids(&["r1"])),
        Change::Assign("u1".into(), ids(&["r0", "r2"])),
        Change::Assign("u2".into(), ids(&["r1"])),
        Change::AddMembers("r2".into(), ids(&["u3", "c5"])),
    ] {
        let op = change.submit(&api, ORG, "").await.must_ok();
        accepted.push((change, op.name));
    }
    first.kill9();
    // The killed replica's transactions die with their connections; only
    // now may they go on (and find nobody to commit them).
    lock.release().await;

    let mut second_settings = settings(&db, 2);
    second_settings.operation_lease = Duration::from_secs(2);
    let second = Replica::start_with(second_settings).await;
    let mut model = Model::default();
    for (change, name) in &accepted {
        let op = second.api.wait_done(name).await;
        model.apply_and_check(change, &op);
    }
    assert_data_matches(&second.api, &model).await;
    assert_eq!(list_all(&second.api).await.len(), accepted.len());
    second.stop().await;
}

/// A worker stuck in its transaction past its lease may lose the operation
/// to another worker (if the engine lets a live worker's claim lapse). When
/// it comes back it must only roll back: nobody asked to cancel, so every
/// operation must still succeed, exactly once.
async fn a_worker_that_lost_its_lease_does_not_cancel_the_operation(db: TestDb) {
    let mut short_lease = settings(&db, 6);
    short_lease.operation_lease = Duration::from_secs(1);
    let server = Replica::start_with(short_lease).await;
    let api = &server.api;
    api.create_org(ORG).await;
    let users = names("u", 3);
    api.create_users(ORG, &users).await;
    api.create_roles(ORG, RoleScope::Organization, &["r0"])
        .await;

    let lock = RowLocks::hold(&db, ORG, &[("u0", "r0"), ("u1", "r0"), ("u2", "r0")]).await;
    let mut accepted = Vec::new();
    for user in &users {
        let change = Change::Assign(user.clone(), ids(&["r0"]));
        let op = change.submit(api, ORG, "").await.must_ok();
        accepted.push((change, op.name));
    }
    lock.wait_blocked(3).await;
    // With 1 s leases and idle workers polling every 2 s, an engine that
    // lets lapsed claims of live workers be taken has three more workers
    // stuck on the rows soon. Give it the chance (bounded), then go on.
    let mut taken_over = false;
    for _ in 0..100 {
        if lock.blocked().await >= 6 {
            taken_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("lapsed claims taken over by other workers: {taken_over}");
    lock.release().await;

    let mut model = Model::default();
    for (change, name) in &accepted {
        let op = api.wait_done(name).await;
        assert!(
            !op_metadata(&op).cancel_requested,
            "{name}: nobody requested cancellation"
        );
        assert!(
            matches!(op.result, Some(operation::Result::Response(_))),
            "{name} ({change:?}) did not succeed after its lease lapsed \
             (taken over: {taken_over}): {:?}",
            op.result
        );
        model.apply_and_check(change, &op);
    }
    assert_data_matches(api, &model).await;
    server.stop().await;
}

// ----- 4. cancel and delete -----

/// A pending operation (no workers) is cancelled at once, cannot be deleted
/// before it is done, and nothing of it is applied after workers start;
/// deleting a done operation removes the record but not its change.
async fn cancel_of_a_pending_operation_and_delete(db: TestDb) {
    let idle = Replica::start(&db, 0).await;
    let api = &idle.api;
    api.create_org(ORG).await;
    api.create_users(ORG, &names("u", 2)).await;
    api.create_roles(ORG, RoleScope::Organization, &["r0", "r1"])
        .await;

    let doomed = Change::Assign("u0".into(), ids(&["r0", "r1"]))
        .submit(api, ORG, "")
        .await
        .must_ok();
    let kept_change = Change::Assign("u1".into(), ids(&["r0"]));
    let kept = kept_change.submit(api, ORG, "").await.must_ok();
    let after_change = Change::Revoke("u0".into(), ids(&["r1"]));
    let after = after_change.submit(api, ORG, "").await.must_ok();

    let status = delete(api, &doomed.name).await.fails();
    assert_precondition(&status, "OPERATION_NOT_DONE");
    cancel(api, &doomed.name).await.must();
    let cancelled = api.get_op(&doomed.name).await.must_ok();
    assert!(
        cancelled.done,
        "a cancelled pending operation is done at once"
    );
    assert_op_code(&cancelled, Code::Cancelled);
    assert!(op_metadata(&cancelled).cancel_requested);
    cancel(api, &doomed.name).await.must();
    idle.stop().await;

    let server = Replica::start(&db, 2).await;
    let api = &server.api;
    let mut model = Model::default();
    model.apply_and_check(&kept_change, &api.wait_done(&kept.name).await);
    model.apply_and_check(&after_change, &api.wait_done(&after.name).await);
    let still = api.get_op(&doomed.name).await.must_ok();
    assert_op_code(&still, Code::Cancelled);
    assert!(
        api.user_roles(ORG, "u0").await.is_empty(),
        "the cancelled operation applied something"
    );
    assert_data_matches(api, &model).await;

    delete(api, &kept.name).await.must();
    let status = api.get_op(&kept.name).await.expect_err("deleted");
    assert_not_found(&status, T_OPERATION, &kept.name);
    delete(api, &doomed.name).await.must();
    let status = api.get_op(&doomed.name).await.expect_err("deleted");
    assert_not_found(&status, T_OPERATION, &doomed.name);
    assert_eq!(
        api.user_roles(ORG, "u1").await,
        model.of(&Holder::User("u1".into())),
        "deleting the record undid the change"
    );
    server.stop().await;
}

/// 100 operations (5 per user, each assigning its own pair of roles) on a
/// server with two workers; about half get a CancelOperation the moment
/// they are accepted, racing the workers. Each ends either succeeded with
/// both of its roles applied or cancelled with neither, and the succeeded
/// ones report the state sequential application of the succeeded ones
/// gives.
async fn cancels_racing_workers_never_apply_half(db: TestDb) {
    const USERS: usize = 20;
    const PER_USER: usize = 5;
    let server = Replica::start(&db, 2).await;
    let api = &server.api;
    api.create_org(ORG).await;
    let users = names("u", USERS);
    api.create_users(ORG, &users).await;
    let pair_roles: Vec<String> = (0..PER_USER)
        .flat_map(|k| [format!("p{k}a"), format!("p{k}b")])
        .collect();
    let role_refs: Vec<&str> = pair_roles.iter().map(String::as_str).collect();
    api.create_roles(ORG, RoleScope::Organization, &role_refs)
        .await;

    let tasks = users.iter().enumerate().map(|(n, user)| {
        let api = api.clone();
        let user = user.clone();
        async move {
            let mut rng = StdRng::seed_from_u64(n as u64);
            let mut cancels = Vec::new();
            let mut accepted = Vec::new();
            for k in 0..PER_USER {
                let change = Change::Assign(user.clone(), vec![format!("p{k}a"), format!("p{k}b")]);
                let op = change.submit(&api, ORG, "").await.must_ok();
                if rng.random_bool(0.5) {
                    let api = api.clone();
                    let name = op.name.clone();
                    cancels.push(tokio::spawn(async move { cancel(&api, &name).await }));
                }
                accepted.push((change, op.name));
            }
            for call in cancels {
                call.await.expect("cancel task").must_ok();
            }
            accepted
        }
    });
    let accepted = futures_join_all(tasks).await;

    let mut model = Model::default();
    let (mut succeeded, mut cancelled) = (0, 0);
    for (change, name) in accepted.iter().flatten() {
        let op = api.wait_done(name).await;
        match &op.result {
            Some(operation::Result::Response(_)) => {
                succeeded += 1;
                model.apply_and_check(change, &op);
            }
            Some(operation::Result::Error(_)) => {
                cancelled += 1;
                assert_op_code(&op, Code::Cancelled);
                assert!(op_metadata(&op).cancel_requested, "{name}");
            }
            None => panic!("{name} is done without a result"),
        }
    }
    eprintln!("cancel race: {succeeded} succeeded, {cancelled} cancelled");
    for user in &users {
        let holder = Holder::User(user.clone());
        assert_eq!(
            api.holdings(ORG, &holder).await,
            model.of(&holder),
            "{user}: the data disagrees with the operations' final states"
        );
    }
    server.stop().await;
}

/// Six large Add/RemoveRoleMembers on one role, accepted while no worker
/// runs, then run by two workers. The moment the test sees one of them
/// finish, the next one is running and a worker waits to claim the one
/// after; the test cancels that one then. On SQLite the cancel waits to
/// write behind that worker, and must still win: the operation ends
/// CANCELLED with nothing applied, and the others apply in order.
async fn a_cancel_waiting_behind_the_workers_still_wins(db: TestDb) {
    const CHAIN: usize = 6;
    let idle = Replica::start(&db, 0).await;
    let api = &idle.api;
    api.create_org(ORG).await;
    let users = names("u", 2000);
    api.create_users(ORG, &users).await;
    api.create_roles(ORG, RoleScope::Organization, &["m0"])
        .await;
    let changes: Vec<Change> = (0..CHAIN)
        .map(|k| {
            if k % 2 == 0 {
                Change::AddMembers("m0".into(), users.clone())
            } else {
                Change::RemoveMembers("m0".into(), users.clone())
            }
        })
        .collect();
    let mut accepted = Vec::new();
    for change in &changes {
        accepted.push(change.submit(api, ORG, "").await.must_ok().name);
    }
    idle.stop().await;

    let server = Replica::start(&db, 2).await;
    let api = &server.api;
    let mut cancelled = None;
    for k in 0..CHAIN - 2 {
        let waiting_since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        let finished = api.wait_done(&accepted[k]).await;
        let end_time = micros(&op_metadata(&finished).end_time.expect("end_time"));
        if end_time >= i64::try_from(waiting_since.as_micros()).expect("micros") {
            cancel(api, &accepted[k + 2]).await.must();
            cancelled = Some(k + 2);
            break;
        }
    }
    let cancelled = cancelled.expect("every operation had finished before the test waited for it");

    let mut model = Model::default();
    for (k, (change, name)) in changes.iter().zip(&accepted).enumerate() {
        let op = api.wait_done(name).await;
        if k == cancelled {
            assert_op_code(&op, Code::Cancelled);
            assert!(op_metadata(&op).cancel_requested, "{name}");
        } else {
            model.apply_and_check(change, &op);
        }
    }
    assert_data_matches(api, &model).await;
    server.stop().await;
}

/// PostgreSQL: a running operation (its worker blocked in its transaction)
/// cannot be deleted. A CancelOperation sent meanwhile either ends it
/// CANCELLED with nothing applied or (if it arrives once the operation is
/// done) leaves it succeeded; never half. The next operation on the same
/// target runs after it.
async fn cancel_and_delete_of_a_running_operation(db: TestDb) {
    let server = Replica::start(&db, 2).await;
    let api = &server.api;
    api.create_org(ORG).await;
    api.create_users(ORG, &names("u", 1)).await;
    api.create_roles(ORG, RoleScope::Organization, &["r0", "r1", "r2"])
        .await;

    let lock = RowLocks::hold(&db, ORG, &[("u0", "r0")]).await;
    let running_change = Change::Assign("u0".into(), ids(&["r1", "r0"]));
    let running = running_change.submit(api, ORG, "").await.must_ok();
    lock.wait_blocked(1).await;
    let next_change = Change::Assign("u0".into(), ids(&["r2"]));
    let next = next_change.submit(api, ORG, "").await.must_ok();

    let status = delete(api, &running.name).await.fails();
    assert_precondition(&status, "OPERATION_NOT_DONE");
    assert!(!api.get_op(&running.name).await.must_ok().done);
    // The call may have to wait for the running transaction: send it from
    // a task and release the rows meanwhile.
    let cancelling = {
        let api = api.clone();
        let name = running.name.clone();
        tokio::spawn(async move { cancel(&api, &name).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    cancelling.await.expect("cancel task").must();

    let ended = api.wait_done(&running.name).await;
    let mut model = Model::default();
    match &ended.result {
        Some(operation::Result::Response(_)) => model.apply_and_check(&running_change, &ended),
        _ => {
            assert_op_code(&ended, Code::Cancelled);
            assert!(op_metadata(&ended).cancel_requested);
        }
    }
    model.apply_and_check(&next_change, &api.wait_done(&next.name).await);
    assert_data_matches(api, &model).await;
    delete(api, &running.name).await.must();
    server.stop().await;
}

// ----- 5. retention -----

/// With a retention of 2 s, finished operations disappear (their changes
/// stay); while kept, a retry with the same request_id returns the same
/// operation; pending operations are never removed.
async fn finished_operations_expire_after_the_retention(db: TestDb) {
    let mut short = settings(&db, 2);
    short.operation_retention = Duration::from_secs(2);
    let server = Replica::start_with(short).await;
    let api = &server.api;
    api.create_org(ORG).await;
    api.create_users(ORG, &names("u", 2)).await;
    api.create_roles(ORG, RoleScope::Organization, &["r0"])
        .await;

    let request_id = uuid::Uuid::new_v4().to_string();
    let change = Change::Assign("u0".into(), ids(&["r0"]));
    let op = change.submit(api, ORG, &request_id).await.must_ok();
    let done = api.wait_done(&op.name).await;
    common::assert_op_succeeded(&done);
    let retried = change.submit(api, ORG, &request_id).await.must_ok();
    assert_eq!(
        retried.name, op.name,
        "a retry while kept returns the same operation"
    );
    assert!(retried.done);

    wait_removed(api, &op.name).await;
    assert_eq!(api.user_roles(ORG, "u0").await.len(), 1, "the change stays");
    server.stop().await;

    let mut idle = settings(&db, 0);
    idle.operation_retention = Duration::from_secs(2);
    let idle = Replica::start_with(idle).await;
    let api = &idle.api;
    let pending = Change::Assign("u1".into(), ids(&["r0"]))
        .submit(api, ORG, "")
        .await
        .must_ok();
    let cancelled = Change::Assign("u0".into(), ids(&["r0"]))
        .submit(api, ORG, "")
        .await
        .must_ok();
    cancel(api, &cancelled.name).await.must();
    wait_removed(api, &cancelled.name).await;
    let still = api.get_op(&pending.name).await.must_ok();
    assert!(!still.done, "a pending operation is kept however old");
    idle.stop().await;
}

/// Polls GetOperation (at most 30 s) until `name` is NOT_FOUND.
async fn wait_removed(api: &Api, name: &str) {
    for _ in 0..300 {
        match api.get_op(name).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(status) => {
                assert_not_found(&status, T_OPERATION, name);
                return;
            }
        }
    }
    panic!("{name} was still kept 30 s after it finished");
}
