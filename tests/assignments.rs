//! RoleService bulk calls: AssignUserRoles, RevokeUserRoles, ListUserRoles,
//! AddRoleMembers, RemoveRoleMembers, ListRoleMembers and CheckPermission.

#[macro_use]
mod common;

use common::*;
use rolekeeper::pb::longrunning::{ListOperationsRequest, Operation};
use rolekeeper::pb::v1::{
    AddRoleMembersRequest, AssignUserRolesRequest, CheckPermissionRequest, Decision,
    ListRoleMembersRequest, ListUserRolesRequest, RemoveRoleMembersRequest, RevokeUserRolesRequest,
    RoleMembersChange, RoleScope, UserRef, UserRoles, WorkspaceRole, user_ref::User as Ref,
};
use tonic::Code;

backend_tests!(
    assign_user_roles_returns_operation_with_metadata,
    assigning_held_and_revoking_unheld_roles_are_noops,
    unknown_role_fails_the_whole_request,
    wrong_scope_role_fails_the_whole_request,
    role_ids_shape_is_validated,
    request_id_makes_assignments_idempotent,
    concurrent_retries_share_one_operation,
    add_and_remove_role_members_by_any_identifier,
    role_members_errors_change_nothing,
    list_role_members_paginates,
    check_permission_in_the_organization,
    check_permission_in_a_workspace,
);

fn assign(user: &str, role_ids: &[&str], request_id: &str) -> AssignUserRolesRequest {
    AssignUserRolesRequest {
        organization_id: ORG.into(),
        user_id: user.into(),
        role_ids: strings(role_ids),
        request_id: request_id.into(),
    }
}

fn revoke(user: &str, role_ids: &[&str], request_id: &str) -> RevokeUserRolesRequest {
    RevokeUserRolesRequest {
        organization_id: ORG.into(),
        user_id: user.into(),
        role_ids: strings(role_ids),
        request_id: request_id.into(),
    }
}

fn user_ref(user: Ref) -> UserRef {
    UserRef { user: Some(user) }
}

fn add_members(role_id: &str, users: Vec<UserRef>) -> AddRoleMembersRequest {
    AddRoleMembersRequest {
        organization_id: ORG.into(),
        role_id: role_id.into(),
        users,
        request_id: String::new(),
    }
}

fn remove_members(role_id: &str, users: Vec<UserRef>) -> RemoveRoleMembersRequest {
    RemoveRoleMembersRequest {
        organization_id: ORG.into(),
        role_id: role_id.into(),
        users,
        request_id: String::new(),
    }
}

fn by_id(id: &str) -> UserRef {
    user_ref(Ref::UserId(id.into()))
}

async fn role_members(server: &TestServer, role_id: &str) -> Vec<String> {
    let members = server
        .roles(&reader(ORG))
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: role_id.into(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .must();
    assert!(members.next_page_token.is_empty());
    members.user_ids
}

fn role_ids_of(roles: &UserRoles) -> Vec<String> {
    roles.roles.iter().map(|r| r.role_id.clone()).collect()
}

async fn done(server: &TestServer, op: Operation) -> Operation {
    assert_operation_name(&op.name);
    let op = server.wait_done(&op.name).await;
    assert_op_succeeded(&op);
    op
}

async fn assign_user_roles_returns_operation_with_metadata(server: TestServer) {
    server.seed().await;
    let rid = request_id();
    let accepted = server
        .roles(&writer(ORG))
        .assign_user_roles(assign("alice", &["writer", "reader"], &rid))
        .await
        .must();
    assert_operation_name(&accepted.name);
    let meta = op_metadata(&accepted);
    assert_eq!(meta.verb, "AssignUserRoles");
    assert_eq!(meta.target, "organizations/acme/users/alice");
    assert_eq!(meta.principal, writer_sub(ORG));
    assert_eq!(meta.request_id, rid);
    assert_eq!(meta.requested_items, 2);
    assert!(meta.create_time.is_some());
    assert!(!meta.cancel_requested);

    let op = done(&server, accepted.clone()).await;
    assert_eq!(op.name, accepted.name);
    let meta = op_metadata(&op);
    assert_eq!(meta.verb, "AssignUserRoles");
    assert_eq!(meta.processed_items, 2);
    let at = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().expect("timestamp set on a done operation");
        (t.seconds, t.nanos)
    };
    assert!(at(&meta.create_time) <= at(&meta.start_time), "{meta:?}");
    assert!(at(&meta.start_time) <= at(&meta.end_time), "{meta:?}");
    let response: UserRoles = op_response(&op);
    assert_eq!(response.organization_id, ORG);
    assert_eq!(response.user_id, "alice");
    assert_eq!(
        role_ids_of(&response),
        ["reader", "writer"],
        "ordered by role id"
    );
    let writer_role = &response.roles[1];
    assert_eq!(writer_role.organization_id, ORG);
    assert_eq!(writer_role.scope, RoleScope::Organization as i32);
    assert_eq!(
        sorted(writer_role.permissions.iter().map(|p| p.name.clone())),
        ["docs.read", "docs.write"],
        "full roles with permissions"
    );

    let listed = server
        .roles(&reader(ORG))
        .list_user_roles(ListUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
        })
        .await
        .must();
    assert_eq!(listed, response);
}

async fn assigning_held_and_revoking_unheld_roles_are_noops(server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    let op = roles
        .assign_user_roles(assign("alice", &["reader", "writer"], ""))
        .await
        .must();
    let op = done(&server, op).await;
    assert_eq!(role_ids_of(&op_response(&op)), ["reader", "writer"]);

    let op = roles
        .revoke_user_roles(revoke("alice", &["writer", "blocker"], ""))
        .await
        .must();
    let meta = op_metadata(&op);
    assert_eq!(meta.verb, "RevokeUserRoles");
    assert_eq!(meta.target, "organizations/acme/users/alice");
    assert_eq!(meta.requested_items, 2);
    let op = done(&server, op).await;
    let response: UserRoles = op_response(&op);
    assert_eq!(response.user_id, "alice");
    assert_eq!(role_ids_of(&response), ["reader"]);
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);

    // Revoking everything that is left, twice: the second is a no-op.
    for _ in 0..2 {
        let op = roles
            .revoke_user_roles(revoke("alice", &["reader"], ""))
            .await
            .must();
        let op = done(&server, op).await;
        assert!(op_response::<UserRoles>(&op).roles.is_empty());
    }
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
}

async fn unknown_role_fails_the_whole_request(server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    let status = roles
        .assign_user_roles(assign("alice", &["writer", "nope"], ""))
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/nope");
    let status = roles
        .revoke_user_roles(revoke("alice", &["reader", "nope"], ""))
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/nope");
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);

    let status = roles
        .assign_user_roles(assign("ghost", &["reader"], ""))
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/ghost");
    let status = roles
        .list_user_roles(ListUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "ghost".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/ghost");
    let status = server
        .roles(&admin())
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: "missing".into(),
            ..assign("alice", &["reader"], "")
        })
        .await
        .fails();
    assert_not_found(&status, T_ORGANIZATION, "organizations/missing");

    // No operation was created for any of the refused requests.
    let ops = server.operations_on("organizations/acme/users/alice").await;
    assert_eq!(ops.len(), 1, "only the seeding assignment");
}

async fn wrong_scope_role_fails_the_whole_request(server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    let status = roles
        .assign_user_roles(assign("alice", &["writer", "ws-extra"], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids[1]");
    let status = roles
        .assign_user_roles(assign("alice", &["owner", "writer"], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids[0]");
    let status = roles
        .revoke_user_roles(revoke("alice", &["reader", "viewer"], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids[1]");
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);
}

async fn role_ids_shape_is_validated(server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    let status = roles
        .assign_user_roles(assign("alice", &[], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids");
    let status = roles
        .revoke_user_roles(revoke("alice", &[], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids");
    let status = roles
        .assign_user_roles(assign("alice", &["writer", "blocker", "writer"], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids[2]");
    let status = roles
        .revoke_user_roles(revoke("alice", &["reader", "reader"], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids[1]");
    let status = roles
        .assign_user_roles(assign("alice", &["writer", "not valid!"], ""))
        .await
        .fails();
    assert_invalid(&status, "role_ids[1]");

    let too_many: Vec<String> = (0..1001).map(|i| format!("role-{i}")).collect();
    let status = roles
        .assign_user_roles(AssignUserRolesRequest {
            role_ids: too_many,
            ..assign("alice", &[], "")
        })
        .await
        .fails();
    assert_invalid(&status, "role_ids");
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);

    // 1000 distinct ids are within the limit (they fail on existence).
    let at_limit: Vec<String> = (0..1000).map(|i| format!("role-{i}")).collect();
    let status = roles
        .assign_user_roles(AssignUserRolesRequest {
            role_ids: at_limit,
            ..assign("alice", &[], "")
        })
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
}

async fn request_id_makes_assignments_idempotent(server: TestServer) {
    server.seed().await;
    let mut roles = server.roles(&writer(ORG));
    let rid = request_id();

    let first = roles
        .assign_user_roles(assign("alice", &["reader"], &rid))
        .await
        .must();
    let retry = roles
        .assign_user_roles(assign("alice", &["reader"], &rid))
        .await
        .must();
    assert_eq!(
        retry.name, first.name,
        "a retry returns the original operation"
    );
    done(&server, first.clone()).await;
    let late_retry = roles
        .assign_user_roles(assign("alice", &["reader"], &rid))
        .await
        .must();
    assert_eq!(late_retry.name, first.name);
    assert!(late_retry.done, "the original operation is done by now");

    let status = roles
        .assign_user_roles(assign("alice", &["writer"], &rid))
        .await
        .fails();
    let details = assert_error(&status, Code::AlreadyExists, "REQUEST_ID_REUSED");
    assert!(
        details.resource_info().is_some(),
        "ResourceInfo in {details:?}"
    );
    let status = roles
        .revoke_user_roles(revoke("alice", &["reader"], &rid))
        .await
        .fails();
    assert_error(&status, Code::AlreadyExists, "REQUEST_ID_REUSED");

    for bad in ["not-a-uuid", "12345", "{}"] {
        let status = roles
            .assign_user_roles(assign("alice", &["writer"], bad))
            .await
            .fails();
        assert_invalid(&status, "request_id");
    }

    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);
    let ops = server
        .ops(&admin())
        .list_operations(ListOperationsRequest {
            filter: "target=\"organizations/acme/users/alice\"".into(),
            ..Default::default()
        })
        .await
        .must();
    assert_eq!(
        ops.operations
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        [first.name.as_str()],
        "one operation for the request id"
    );

    // Another request id is another operation.
    let other = roles
        .assign_user_roles(assign("alice", &["reader"], &request_id()))
        .await
        .must();
    assert_ne!(other.name, first.name);
}

/// Retries that race each other (likely accepted in one transaction) get
/// one operation, applied once.
async fn concurrent_retries_share_one_operation(server: TestServer) {
    server.seed().await;
    let rid = request_id();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut roles = server.roles(&writer(ORG));
        let request = assign("bob", &["reader", "writer"], &rid);
        calls.spawn(async move { roles.assign_user_roles(request).await.must() });
    }
    let ops = calls.join_all().await;
    assert!(
        ops.iter().all(|op| op.name == ops[0].name),
        "one operation: {:?}",
        ops.iter().map(|op| &op.name).collect::<Vec<_>>()
    );
    done(&server, ops[0].clone()).await;
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["reader", "writer"]);
    let listed = server.operations_on("organizations/acme/users/bob").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
}

async fn add_and_remove_role_members_by_any_identifier(server: TestServer) {
    server.seed().await;
    server.create_user(ORG, "dave", "dave@example.com").await;
    server.assign_user_roles(ORG, "carol", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    let added = roles
        .add_role_members(add_members(
            "reader",
            vec![
                user_ref(Ref::AadId("aad-alice".into())),
                user_ref(Ref::Email("Bob@EXAMPLE.com".into())),
                by_id("carol"),
            ],
        ))
        .await
        .must();
    let meta = op_metadata(&added);
    assert_eq!(meta.verb, "AddRoleMembers");
    assert_eq!(meta.target, "organizations/acme/roles/reader");
    assert_eq!(meta.requested_items, 3);
    let op = done(&server, added).await;
    let change: RoleMembersChange = op_response(&op);
    assert_eq!(change.organization_id, ORG);
    assert_eq!(change.role_id, "reader");
    assert_eq!(sorted(change.added_user_ids), ["alice", "bob"]);
    assert_eq!(change.unchanged_user_ids, ["carol"]);
    assert!(change.removed_user_ids.is_empty());
    assert_eq!(
        role_members(&server, "reader").await,
        ["alice", "bob", "carol"]
    );
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["reader"]);

    let removed = roles
        .remove_role_members(remove_members(
            "reader",
            vec![user_ref(Ref::Auth0Id("auth0|alice".into())), by_id("dave")],
        ))
        .await
        .must();
    assert_eq!(op_metadata(&removed).verb, "RemoveRoleMembers");
    let op = done(&server, removed).await;
    let change: RoleMembersChange = op_response(&op);
    assert_eq!(change.role_id, "reader");
    assert_eq!(change.removed_user_ids, ["alice"]);
    assert_eq!(change.unchanged_user_ids, ["dave"]);
    assert!(change.added_user_ids.is_empty());
    assert_eq!(role_members(&server, "reader").await, ["bob", "carol"]);
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
}

async fn role_members_errors_change_nothing(server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    // Workspace-scope roles are not for these RPCs.
    let status = roles
        .add_role_members(add_members("ws-extra", vec![by_id("bob")]))
        .await
        .fails();
    assert_invalid(&status, "role_id");
    let status = roles
        .remove_role_members(remove_members("viewer", vec![by_id("bob")]))
        .await
        .fails();
    assert_invalid(&status, "role_id");
    let status = roles
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "ws-extra".into(),
            ..Default::default()
        })
        .await
        .fails();
    assert_invalid(&status, "role_id");

    // One unresolvable reference fails everything.
    let status = roles
        .add_role_members(add_members(
            "reader",
            vec![
                by_id("bob"),
                user_ref(Ref::Email("nobody@example.com".into())),
            ],
        ))
        .await
        .fails();
    let details = assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert_eq!(
        details.resource_info().map(|r| r.resource_type.as_str()),
        Some(T_USER)
    );
    let status = roles
        .remove_role_members(remove_members(
            "reader",
            vec![by_id("alice"), user_ref(Ref::AadId("aad-nobody".into()))],
        ))
        .await
        .fails();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let status = roles
        .add_role_members(add_members("missing", vec![by_id("bob")]))
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/missing");

    // Shape errors.
    let status = roles
        .add_role_members(add_members("reader", vec![]))
        .await
        .fails();
    assert_invalid(&status, "users");
    let too_many: Vec<UserRef> = (0..10_001).map(|i| by_id(&format!("u{i}"))).collect();
    let status = roles
        .add_role_members(add_members("reader", too_many))
        .await
        .fails();
    assert_invalid(&status, "users");
    let status = roles
        .add_role_members(add_members(
            "reader",
            vec![by_id("bob"), by_id("carol"), by_id("bob")],
        ))
        .await
        .fails();
    assert_invalid(&status, "users[2]");
    let status = roles
        .add_role_members(add_members(
            "reader",
            vec![by_id("bob"), UserRef { user: None }],
        ))
        .await
        .fails();
    assert_invalid_prefix(&status, "users[1]");
    let status = roles
        .add_role_members(AddRoleMembersRequest {
            request_id: "nope".into(),
            ..add_members("reader", vec![by_id("bob")])
        })
        .await
        .fails();
    assert_invalid(&status, "request_id");

    assert_eq!(role_members(&server, "reader").await, ["alice"]);
    assert!(server.user_role_ids(ORG, "bob").await.is_empty());
}

async fn list_role_members_paginates(server: TestServer) {
    server.seed().await;
    let ids: Vec<String> = (0..7).map(|i| format!("member-{i}")).collect();
    for id in &ids {
        server.create_user(ORG, id, "").await;
    }
    let op = server
        .roles(&writer(ORG))
        .add_role_members(add_members(
            "reader",
            ids.iter().rev().map(|id| by_id(id)).collect(),
        ))
        .await
        .must();
    let change: RoleMembersChange = op_response(&done(&server, op).await);
    assert_eq!(sorted(change.added_user_ids), ids);

    let roles = server.roles(&reader(ORG));
    let (listed, pages) = collect_pages(|page_token| {
        let mut roles = roles.clone();
        async move {
            let page = roles
                .list_role_members(ListRoleMembersRequest {
                    organization_id: ORG.into(),
                    role_id: "reader".into(),
                    page_size: 3,
                    page_token,
                })
                .await
                .must();
            assert!(page.user_ids.len() <= 3);
            (page.user_ids, page.next_page_token)
        }
    })
    .await;
    assert!(
        pages >= 3,
        "7 members in pages of 3 take 3 pages, got {pages}"
    );
    assert_eq!(listed, ids, "every member once, ordered");

    let mut roles = server.roles(&reader(ORG));
    let first = roles
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .must();
    let status = roles
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "writer".into(),
            page_size: 3,
            page_token: first.next_page_token,
        })
        .await
        .fails();
    assert_invalid(&status, "page_token");
    let status = roles
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            page_size: -3,
            page_token: String::new(),
        })
        .await
        .fails();
    assert_invalid(&status, "page_size");
}

async fn check_permission_in_the_organization(server: TestServer) {
    server.seed().await;
    let decision = server.check(ORG, "alice", "docs.read", "").await;
    assert!(!decision.allowed);
    assert_eq!(decision.decision, Decision::NoGrant as i32);
    assert!(decision.matched_role_ids.is_empty());

    // The decision changes as soon as the assignment operation is done.
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let decision = server.check(ORG, "alice", "docs.read", "").await;
    assert!(decision.allowed);
    assert_eq!(decision.decision, Decision::Granted as i32);
    assert_eq!(decision.matched_role_ids, ["reader"]);
    let decision = server.check(ORG, "alice", "docs.write", "").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);
    assert!(decision.matched_role_ids.is_empty());

    server.assign_user_roles(ORG, "alice", &["writer"]).await;
    let decision = server.check(ORG, "alice", "docs.read", "").await;
    assert_eq!(decision.decision, Decision::Granted as i32);
    assert_eq!(sorted(decision.matched_role_ids), ["reader", "writer"]);
    let decision = server.check(ORG, "alice", "docs.write", "").await;
    assert!(decision.allowed);
    assert_eq!(decision.matched_role_ids, ["writer"]);

    // An explicit deny wins over any grant; the deniers are reported.
    server.assign_user_roles(ORG, "alice", &["blocker"]).await;
    let decision = server.check(ORG, "alice", "docs.write", "").await;
    assert!(!decision.allowed);
    assert_eq!(decision.decision, Decision::DeniedExplicitly as i32);
    assert_eq!(decision.matched_role_ids, ["blocker"]);
    let decision = server.check(ORG, "alice", "docs.read", "").await;
    assert!(decision.allowed, "the deny is only for docs.write");

    let op = server
        .roles(&writer(ORG))
        .revoke_user_roles(revoke("alice", &["blocker"], ""))
        .await
        .must();
    done(&server, op).await;
    let decision = server.check(ORG, "alice", "docs.write", "").await;
    assert!(decision.allowed, "granted again right after the revocation");

    // Permissions are exact names, not prefixes.
    let decision = server.check(ORG, "alice", "docs", "").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);

    // Readers may check; bad input and unknown users are reported.
    let mut roles = server.roles(&reader(ORG));
    let check = |user: &str, permission: &str, workspace: &str| CheckPermissionRequest {
        organization_id: ORG.into(),
        user_id: user.into(),
        permission: permission.into(),
        workspace_id: workspace.into(),
    };
    let decision = roles
        .check_permission(check("alice", "docs.read", ""))
        .await
        .must();
    assert!(decision.allowed);
    let status = roles
        .check_permission(check("ghost", "docs.read", ""))
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/ghost");
    let status = roles
        .check_permission(check("alice", "Not A Permission", ""))
        .await
        .fails();
    assert_invalid(&status, "permission");
    let status = roles
        .check_permission(check("alice", "docs.read", "nope"))
        .await
        .fails();
    assert_not_found(&status, T_WORKSPACE, "organizations/acme/workspaces/nope");
}

async fn check_permission_in_a_workspace(server: TestServer) {
    server.seed().await;
    server
        .create_role(
            ORG,
            "ws-deny",
            RoleScope::Workspace,
            &[("docs.write", false)],
        )
        .await;
    server.assign_user_roles(ORG, "bob", &["writer"]).await;
    let membership = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Viewer)
        .await;

    // The base role applies in the workspace only.
    let decision = server.check(ORG, "bob", "workspace.read", "ws1").await;
    assert!(decision.allowed);
    assert_eq!(decision.matched_role_ids, ["viewer"]);
    let decision = server.check(ORG, "bob", "workspace.read", "").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);
    let decision = server.check(ORG, "bob", "workspace.write", "ws1").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);
    // Organization roles apply in the workspace too.
    let decision = server.check(ORG, "bob", "docs.write", "ws1").await;
    assert!(decision.allowed);
    assert_eq!(decision.matched_role_ids, ["writer"]);

    // Assigned membership roles apply right after the operation is done.
    let decision = server.check(ORG, "bob", "reports.read", "ws1").await;
    assert!(!decision.allowed);
    server
        .assign_membership_roles(
            ORG,
            "ws1",
            &membership.membership_id,
            &["ws-extra", "ws-deny"],
        )
        .await;
    let decision = server.check(ORG, "bob", "reports.read", "ws1").await;
    assert!(decision.allowed);
    assert_eq!(decision.decision, Decision::Granted as i32);
    assert_eq!(decision.matched_role_ids, ["ws-extra"]);
    // A workspace deny overrides an organization grant, in that workspace.
    let decision = server.check(ORG, "bob", "docs.write", "ws1").await;
    assert!(!decision.allowed);
    assert_eq!(decision.decision, Decision::DeniedExplicitly as i32);
    assert_eq!(decision.matched_role_ids, ["ws-deny"]);
    let decision = server.check(ORG, "bob", "docs.write", "").await;
    assert!(decision.allowed, "outside the workspace the grant stands");

    // Another workspace where bob is no member: organization roles only.
    server.create_workspace(ORG, "ws2").await;
    let decision = server.check(ORG, "bob", "docs.write", "ws2").await;
    assert!(decision.allowed);
    assert_eq!(decision.matched_role_ids, ["writer"]);
    let decision = server.check(ORG, "bob", "workspace.read", "ws2").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);
}
