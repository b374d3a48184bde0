//! google.longrunning.Operations: get, list and its filters, wait, cancel,
//! delete, polling hints, durability across restarts and isolation.

#[macro_use]
mod common;

use common::*;
use rolekeeper::pb::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest,
    Operation, WaitOperationRequest,
};
use rolekeeper::pb::v1::{
    AddRoleMembersRequest, AssignUserRolesRequest, RevokeUserRolesRequest, RoleMembersChange,
    UserRef, UserRoles, user_ref::User as Ref,
};
use tonic::Code;
use tonic_types::StatusExt;

backend_tests!(
    get_and_wait_return_the_operation,
    list_operations_filters,
    list_operations_rejects_bad_filters_and_paginates,
    pending_operations_carry_polling_hints,
    cancel_pending_operation_applies_nothing,
    delete_operations,
    restart_resumes_pending_operations_in_order,
    operations_are_visible_only_to_their_organization,
    operations_recheck_the_world_when_they_run,
    a_broken_operation_fails_alone,
    one_transaction_keeps_each_operation_apart_and_in_order,
    an_operation_behind_an_unfinished_one_is_checked_before_acceptance,
);

/// Submits AssignUserRoles as the writer of `org`, without waiting.
async fn submit_assign(server: &TestServer, org: &str, user: &str, role_ids: &[&str]) -> Operation {
    server
        .roles(&writer(org))
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: org.into(),
            user_id: user.into(),
            role_ids: strings(role_ids),
            request_id: String::new(),
        })
        .await
        .must()
}

async fn submit_revoke(server: &TestServer, user: &str, role_ids: &[&str]) -> Operation {
    server
        .roles(&writer(ORG))
        .revoke_user_roles(RevokeUserRolesRequest {
            organization_id: ORG.into(),
            user_id: user.into(),
            role_ids: strings(role_ids),
            request_id: String::new(),
        })
        .await
        .must()
}

async fn submit_add_members(server: &TestServer, role_id: &str, users: &[&str]) -> Operation {
    server
        .roles(&writer(ORG))
        .add_role_members(AddRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: role_id.into(),
            users: users
                .iter()
                .map(|u| UserRef {
                    user: Some(Ref::UserId((*u).into())),
                })
                .collect(),
            request_id: String::new(),
        })
        .await
        .must()
}

fn get(name: &str) -> GetOperationRequest {
    GetOperationRequest { name: name.into() }
}

fn filtered(filter: &str) -> ListOperationsRequest {
    ListOperationsRequest {
        name: String::new(),
        filter: filter.into(),
        page_size: 0,
        page_token: String::new(),
    }
}

/// The sorted names of the operations `token` sees with `filter`.
async fn listed(server: &TestServer, token: &str, filter: &str) -> Vec<String> {
    let ops = server.ops(token);
    let (operations, _) = collect_pages(|page_token| {
        let mut ops = ops.clone();
        let filter = filter.to_owned();
        async move {
            let page = ops
                .list_operations(ListOperationsRequest {
                    page_token,
                    ..filtered(&filter)
                })
                .await
                .must();
            (page.operations, page.next_page_token)
        }
    })
    .await;
    sorted(operations.into_iter().map(|o| o.name))
}

fn names(ops: &[&Operation]) -> Vec<String> {
    sorted(ops.iter().map(|o| o.name.clone()))
}

async fn get_and_wait_return_the_operation(server: TestServer) {
    server.seed().await;
    let accepted = submit_assign(&server, ORG, "alice", &["reader"]).await;
    let mut ops = server.ops(&reader(ORG));

    let fetched = ops.get_operation(get(&accepted.name)).await.must();
    assert_eq!(fetched.name, accepted.name);
    assert_eq!(op_metadata(&fetched).verb, "AssignUserRoles");

    let waited = ops
        .wait_operation(WaitOperationRequest {
            name: accepted.name.clone(),
            timeout: Some(prost_types::Duration {
                seconds: 15,
                nanos: 0,
            }),
        })
        .await
        .must();
    assert!(
        waited.done,
        "WaitOperation returns once the operation is done, well within 15s"
    );
    let roles: UserRoles = op_response(&waited);
    assert_eq!(roles.user_id, "alice");
    assert_eq!(roles.roles.len(), 1);

    let again = ops.get_operation(get(&accepted.name)).await.must();
    assert!(again.done);
    assert_eq!(
        again.result, waited.result,
        "GetOperation shows the same result"
    );
    // Waiting on a done operation returns at once.
    let rewaited = ops
        .wait_operation(WaitOperationRequest {
            name: accepted.name.clone(),
            timeout: None,
        })
        .await
        .must();
    assert!(rewaited.done);
    assert_eq!(rewaited.result, waited.result);

    let missing = format!("operations/{}", uuid::Uuid::new_v4());
    let status = ops.get_operation(get(&missing)).await.fails();
    assert_not_found(&status, T_OPERATION, &missing);
    let status = ops
        .wait_operation(WaitOperationRequest {
            name: missing.clone(),
            timeout: None,
        })
        .await
        .fails();
    assert_not_found(&status, T_OPERATION, &missing);
}

async fn list_operations_filters(mut server: TestServer) {
    server.seed().await;
    let a = submit_assign(&server, ORG, "alice", &["reader"]).await;
    let a = server.wait_done(&a.name).await;
    let b = submit_assign(&server, ORG, "bob", &["writer"]).await;
    let b = server.wait_done(&b.name).await;
    let c = submit_revoke(&server, "alice", &["reader"]).await;
    let c = server.wait_done(&c.name).await;
    let d = submit_add_members(&server, "reader", &["carol"]).await;
    let d = server.wait_done(&d.name).await;
    server.restart(0).await;
    let e = submit_assign(&server, ORG, "carol", &["writer"]).await;
    assert!(!e.done);

    let token = admin();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("", names(&[&a, &b, &c, &d, &e])),
        ("done=true", names(&[&a, &b, &c, &d])),
        ("done=false", names(&[&e])),
        ("verb=\"AssignUserRoles\"", names(&[&a, &b, &e])),
        ("verb=\"RevokeUserRoles\"", names(&[&c])),
        ("verb=\"AddRoleMembers\"", names(&[&d])),
        ("verb=\"RemoveRoleMembers\"", vec![]),
        (
            "target=\"organizations/acme/users/alice\"",
            names(&[&a, &c]),
        ),
        ("target=\"organizations/acme/roles/reader\"", names(&[&d])),
        ("target=\"organizations/acme/users/nobody\"", vec![]),
        ("verb=\"AssignUserRoles\" AND done=true", names(&[&a, &b])),
        ("done=false AND verb=\"AssignUserRoles\"", names(&[&e])),
        (
            "target=\"organizations/acme/users/alice\" AND verb=\"RevokeUserRoles\"",
            names(&[&c]),
        ),
        (
            "target=\"organizations/acme/users/carol\" AND verb=\"AssignUserRoles\" AND done=false",
            names(&[&e]),
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            listed(&server, &token, filter).await,
            expected,
            "filter `{filter}`"
        );
    }
    // The organization's own writer sees the same.
    assert_eq!(
        listed(&server, &writer(ORG), "done=true").await,
        names(&[&a, &b, &c, &d])
    );

    // `name` may be empty or "operations".
    let page = server
        .ops(&token)
        .list_operations(ListOperationsRequest {
            name: "operations".into(),
            ..filtered("done=false")
        })
        .await
        .must();
    assert_eq!(
        page.operations
            .iter()
            .map(|o| o.name.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&e.name)
    );
    assert!(!page.operations[0].done);
    assert_eq!(op_metadata(&page.operations[0]).verb, "AssignUserRoles");
}

async fn list_operations_rejects_bad_filters_and_paginates(server: TestServer) {
    server.seed().await;
    let mut all = Vec::new();
    for user in ["alice", "bob", "carol"] {
        all.push(server.assign_user_roles(ORG, user, &["reader"]).await.name);
        all.push(server.assign_user_roles(ORG, user, &["writer"]).await.name);
    }
    all.sort();
    let mut ops = server.ops(&reader(ORG));

    let bad_filters = [
        "done=maybe",
        "done=1",
        "foo=\"x\"",
        "verb=AssignUserRoles",
        "target=organizations/acme/users/alice",
        "done=true OR done=false",
        "done=true AND",
        "AND done=true",
        "done=true and verb=\"AssignUserRoles\"",
        "verb=\"AssignUserRoles",
        "done",
        "done!=true",
    ];
    for filter in bad_filters {
        let status = ops.list_operations(filtered(filter)).await.fails();
        assert_invalid(&status, "filter");
    }
    let status = ops
        .list_operations(ListOperationsRequest {
            name: "projects/x".into(),
            ..filtered("")
        })
        .await
        .fails();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");

    let (paged, pages) = collect_pages(|page_token| {
        let mut ops = ops.clone();
        async move {
            let page = ops
                .list_operations(ListOperationsRequest {
                    page_size: 4,
                    page_token,
                    ..filtered("verb=\"AssignUserRoles\"")
                })
                .await
                .must();
            assert!(page.operations.len() <= 4);
            (page.operations, page.next_page_token)
        }
    })
    .await;
    assert!(pages >= 2, "6 operations in pages of 4 take 2 pages");
    let paged = sorted(paged.into_iter().map(|o| o.name));
    assert_eq!(paged, all, "every operation exactly once");

    let first = ops
        .list_operations(ListOperationsRequest {
            page_size: 2,
            ..filtered("done=true")
        })
        .await
        .must();
    assert!(!first.next_page_token.is_empty());
    let status = ops
        .list_operations(ListOperationsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..filtered("verb=\"AssignUserRoles\"")
        })
        .await
        .fails();
    assert_invalid(&status, "page_token");
    let status = ops
        .list_operations(ListOperationsRequest {
            page_size: -2,
            ..filtered("")
        })
        .await
        .fails();
    assert_invalid(&status, "page_size");
}

async fn pending_operations_carry_polling_hints(mut server: TestServer) {
    server.seed().await;
    server.restart(0).await;
    let response = server
        .roles(&writer(ORG))
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
            role_ids: strings(&["reader"]),
            request_id: String::new(),
        })
        .await
        .expect("accepted");
    assert!(
        retry_after(response.metadata()).is_some(),
        "retry-after on the accepting RPC: {:?}",
        response.metadata()
    );
    let accepted = response.into_inner();
    assert!(!accepted.done);
    assert!(accepted.result.is_none());

    let mut ops = server.ops(&reader(ORG));
    let response = ops.get_operation(get(&accepted.name)).await.expect("found");
    assert!(
        retry_after(response.metadata()).is_some(),
        "retry-after on GetOperation"
    );
    assert!(!response.get_ref().done);

    let response = ops
        .wait_operation(WaitOperationRequest {
            name: accepted.name.clone(),
            timeout: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .expect("wait returns");
    assert!(!response.get_ref().done, "nobody runs it with 0 workers");
    assert!(
        retry_after(response.metadata()).is_some(),
        "retry-after on WaitOperation"
    );
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
}

async fn cancel_pending_operation_applies_nothing(mut server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    server.restart(0).await;
    let doomed = submit_assign(&server, ORG, "alice", &["writer"]).await;
    let kept = submit_add_members(&server, "writer", &["bob"]).await;

    server
        .ops(&writer(ORG))
        .cancel_operation(CancelOperationRequest {
            name: doomed.name.clone(),
        })
        .await
        .must();
    let fetched = server
        .ops(&reader(ORG))
        .get_operation(get(&doomed.name))
        .await
        .must();
    assert!(op_metadata(&fetched).cancel_requested);

    server.restart(2).await;
    let cancelled = server.wait_done(&doomed.name).await;
    let error = op_error(&cancelled);
    assert_eq!(error.code, Code::Cancelled as i32, "{error:?}");
    assert!(op_metadata(&cancelled).cancel_requested);
    let change: RoleMembersChange = op_response(&server.wait_done(&kept.name).await);
    assert_eq!(change.added_user_ids, ["bob"]);
    assert_eq!(
        server.user_role_ids(ORG, "alice").await,
        ["reader"],
        "nothing applied"
    );
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["writer"]);

    let missing = format!("operations/{}", uuid::Uuid::new_v4());
    let status = server
        .ops(&writer(ORG))
        .cancel_operation(CancelOperationRequest {
            name: missing.clone(),
        })
        .await
        .fails();
    assert_not_found(&status, T_OPERATION, &missing);
}

async fn delete_operations(mut server: TestServer) {
    server.seed().await;
    let finished = server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let mut ops = server.ops(&writer(ORG));
    ops.delete_operation(DeleteOperationRequest {
        name: finished.name.clone(),
    })
    .await
    .must();
    let status = ops.get_operation(get(&finished.name)).await.fails();
    assert_not_found(&status, T_OPERATION, &finished.name);
    let status = ops
        .delete_operation(DeleteOperationRequest {
            name: finished.name.clone(),
        })
        .await
        .fails();
    assert_not_found(&status, T_OPERATION, &finished.name);
    assert_eq!(
        server.user_role_ids(ORG, "alice").await,
        ["reader"],
        "deleting the record does not undo the change"
    );

    server.restart(0).await;
    let pending = submit_assign(&server, ORG, "bob", &["reader"]).await;
    let status = server
        .ops(&writer(ORG))
        .delete_operation(DeleteOperationRequest {
            name: pending.name.clone(),
        })
        .await
        .fails();
    assert_precondition(&status, "OPERATION_NOT_DONE");
    let still = server
        .ops(&reader(ORG))
        .get_operation(get(&pending.name))
        .await
        .must();
    assert!(!still.done);

    server.restart(2).await;
    assert_op_succeeded(&server.wait_done(&pending.name).await);
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["reader"]);
}

async fn restart_resumes_pending_operations_in_order(mut server: TestServer) {
    server.seed().await;
    server.restart(0).await;
    let assign = submit_assign(&server, ORG, "alice", &["reader", "writer"]).await;
    let revoke = submit_revoke(&server, "alice", &["writer"]).await;
    let add = submit_add_members(&server, "blocker", &["alice", "bob"]).await;
    assert!(
        server.user_role_ids(ORG, "alice").await.is_empty(),
        "nothing ran yet"
    );

    // A restart that still runs nothing loses nothing.
    server.restart(0).await;
    let pending = listed(&server, &admin(), "done=false").await;
    assert_eq!(pending, names(&[&assign, &revoke, &add]));

    server.restart(2).await;
    let assign = server.wait_done(&assign.name).await;
    let revoke = server.wait_done(&revoke.name).await;
    let add = server.wait_done(&add.name).await;
    let assigned: UserRoles = op_response(&assign);
    let ids: Vec<_> = assigned.roles.iter().map(|r| r.role_id.as_str()).collect();
    assert!(
        ids.contains(&"reader") && ids.contains(&"writer"),
        "{ids:?}"
    );
    let revoked: UserRoles = op_response(&revoke);
    let ids: Vec<_> = revoked.roles.iter().map(|r| r.role_id.as_str()).collect();
    assert!(
        ids.contains(&"reader") && !ids.contains(&"writer"),
        "the revocation ran after the assignment: {ids:?}"
    );
    let change: RoleMembersChange = op_response(&add);
    assert_eq!(sorted(change.added_user_ids), ["alice", "bob"]);

    assert_eq!(
        server.user_role_ids(ORG, "alice").await,
        ["blocker", "reader"]
    );
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["blocker"]);
    assert!(listed(&server, &admin(), "done=false").await.is_empty());
    // Applied exactly once: a further restart changes nothing.
    server.restart(2).await;
    assert_eq!(
        server.user_role_ids(ORG, "alice").await,
        ["blocker", "reader"]
    );
    let done_ops = listed(&server, &admin(), "done=true").await;
    assert_eq!(done_ops, names(&[&assign, &revoke, &add]));
}

async fn operations_are_visible_only_to_their_organization(server: TestServer) {
    server.seed().await;
    server.create_org(OTHER_ORG).await;
    server.create_user(OTHER_ORG, "gina", "").await;
    server
        .create_role(
            OTHER_ORG,
            "g-role",
            rolekeeper::pb::v1::RoleScope::Organization,
            &[("x", true)],
        )
        .await;
    let ours = server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let theirs = submit_assign(&server, OTHER_ORG, "gina", &["g-role"]).await;
    let theirs = server.wait_done(&theirs.name).await;

    assert_eq!(
        listed(&server, &foreign(), "").await,
        std::slice::from_ref(&theirs.name)
    );
    assert_eq!(
        listed(&server, &reader(ORG), "").await,
        std::slice::from_ref(&ours.name)
    );
    assert_eq!(
        listed(&server, &admin(), "").await,
        sorted([ours.name.clone(), theirs.name.clone()])
    );

    let mut ops = server.ops(&foreign());
    let status = ops
        .list_operations(filtered("target=\"organizations/acme/users/alice\""))
        .await
        .fails();
    assert_forbidden(&status);

    // Denied without learning whose the operation is.
    let hidden = |status: tonic::Status| {
        assert_forbidden(&status);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert!(info.metadata.is_empty(), "{info:?}");
        assert!(!status.message().contains(ORG), "{status:?}");
    };
    hidden(ops.get_operation(get(&ours.name)).await.fails());
    hidden(
        ops.wait_operation(WaitOperationRequest {
            name: ours.name.clone(),
            timeout: None,
        })
        .await
        .fails(),
    );
    hidden(
        ops.cancel_operation(CancelOperationRequest {
            name: ours.name.clone(),
        })
        .await
        .fails(),
    );
    hidden(
        ops.delete_operation(DeleteOperationRequest {
            name: ours.name.clone(),
        })
        .await
        .fails(),
    );
    let intact = server
        .ops(&admin())
        .get_operation(get(&ours.name))
        .await
        .must();
    assert_eq!(
        intact.result, ours.result,
        "the foreign calls changed nothing"
    );
}

async fn operations_recheck_the_world_when_they_run(mut server: TestServer) {
    server.seed().await;
    server.restart(0).await;
    let lost_role = submit_assign(&server, ORG, "alice", &["reader", "writer"]).await;
    let lost_user = submit_assign(&server, ORG, "bob", &["reader"]).await;
    // The world changes while they are pending.
    server.delete_role(ORG, "writer").await;
    server.delete_user(ORG, "bob").await;

    server.restart(2).await;
    for name in [&lost_role.name, &lost_user.name] {
        let op = server.wait_done(name).await;
        let error = op_error(&op);
        assert!(
            [Code::NotFound, Code::FailedPrecondition, Code::Aborted]
                .iter()
                .any(|c| *c as i32 == error.code),
            "{name} failed for the changed world: {error:?}"
        );
    }
    assert!(
        server.user_role_ids(ORG, "alice").await.is_empty(),
        "all or nothing: reader was not assigned either"
    );
    let members = server
        .roles(&admin())
        .list_role_members(rolekeeper::pb::v1::ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            ..Default::default()
        })
        .await
        .must();
    assert!(members.user_ids.is_empty(), "{:?}", members.user_ids);
}

/// An operation that fails in an unexpected way (here: a role whose stored
/// permissions were damaged behind the service's back) ends failed with
/// INTERNAL, alone: the operation sharing its transaction still applies.
async fn a_broken_operation_fails_alone(mut server: TestServer) {
    server.seed().await;
    server
        .execute_sql("UPDATE roles SET permissions = 'damaged' WHERE role_id = 'reader'")
        .await;
    // Both pending, so that one worker claims them into one transaction.
    server.restart(0).await;
    let broken = submit_assign(&server, ORG, "alice", &["reader"]).await;
    let fine = submit_assign(&server, ORG, "bob", &["writer"]).await;
    server.restart(1).await;
    let broken = server.wait_done(&broken.name).await;
    assert_eq!(op_error(&broken).code, Code::Internal as i32, "{broken:?}");
    let fine: UserRoles = op_response(&server.wait_done(&fine.name).await);
    assert_eq!(fine.roles.len(), 1);
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["writer"]);
}

/// Operations claimed into one transaction end as each would alone: user
/// role changes applied together still fail one by one, and an operation
/// of another kind between them keeps its place in acceptance order.
async fn one_transaction_keeps_each_operation_apart_and_in_order(mut server: TestServer) {
    server.seed().await;
    server.create_user(ORG, "dave", "").await;
    server.create_user(ORG, "erin", "").await;
    // All pending, so that one worker claims them together.
    server.restart(0).await;
    let alice = submit_assign(&server, ORG, "alice", &["reader", "writer"]).await;
    let members = submit_add_members(&server, "reader", &["bob", "carol"]).await;
    let bob = submit_revoke(&server, "bob", &["reader"]).await;
    let carol = submit_assign(&server, ORG, "carol", &["writer"]).await;
    let dave = submit_assign(&server, ORG, "dave", &["reader"]).await;
    let erin = submit_assign(&server, ORG, "erin", &["reader", "blocker"]).await;
    server.delete_user(ORG, "dave").await;
    server.delete_role(ORG, "blocker").await;
    server.restart(1).await;

    let role_ids =
        |roles: UserRoles| -> Vec<String> { roles.roles.into_iter().map(|r| r.role_id).collect() };
    let alice: UserRoles = op_response(&server.wait_done(&alice.name).await);
    assert_eq!(role_ids(alice), ["reader", "writer"]);
    let members: RoleMembersChange = op_response(&server.wait_done(&members.name).await);
    assert_eq!(members.added_user_ids, ["bob", "carol"]);
    let bob: UserRoles = op_response(&server.wait_done(&bob.name).await);
    assert!(role_ids(bob).is_empty(), "revoked after the earlier add");
    let carol: UserRoles = op_response(&server.wait_done(&carol.name).await);
    assert_eq!(
        role_ids(carol),
        ["reader", "writer"],
        "the earlier add counts"
    );
    for (op, missing) in [(&dave, "users/dave"), (&erin, "roles/blocker")] {
        let error = op_error(&server.wait_done(&op.name).await);
        assert_eq!(error.code, Code::NotFound as i32, "{error:?}");
        assert!(error.message.contains(missing), "{error:?}");
    }
    assert_eq!(
        server.user_role_ids(ORG, "erin").await,
        Vec::<String>::new(),
        "all or nothing: reader was not assigned either"
    );
    assert_eq!(
        server.user_role_ids(ORG, "carol").await,
        ["reader", "writer"]
    );
    assert!(server.user_role_ids(ORG, "bob").await.is_empty());
}

/// A small operation that cannot run at once, because an earlier one on
/// its target is unfinished (here: held by a worker of another replica),
/// is still checked before it is accepted, and waits.
async fn an_operation_behind_an_unfinished_one_is_checked_before_acceptance(server: TestServer) {
    server.seed().await;
    server
        .execute_sql(
            "INSERT INTO operations (id, organization_id, target, verb, principal, trace_id, \
               command, state, done, cancel_requested, requested_items, processed_items, \
               lease_owner, lease_expires, create_time, start_time) \
             VALUES ('00000000-0000-4000-8000-000000000001', 'acme', \
               'organizations/acme/users/alice', 'AssignUserRoles', 'elsewhere', 'trace', \
               '{}', 'running', false, false, 1, 0, 'another-replica', 9000000000000000, 1, 1)",
        )
        .await;

    let status = server
        .roles(&writer(ORG))
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
            role_ids: strings(&["reader", "nope"]),
            request_id: String::new(),
        })
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("roles/nope"), "{status:?}");
    let waiting = submit_assign(&server, ORG, "alice", &["reader"]).await;
    assert!(!waiting.done, "it waits for the earlier operation");
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
    let listed = server.operations_on("organizations/acme/users/alice").await;
    assert_eq!(
        listed.len(),
        2,
        "the refused call left no operation: {listed:?}"
    );
}
