//! WorkspaceMembershipService: memberships, their base role and their
//! assigned workspace roles.

#[macro_use]
mod common;

use common::*;
use rolekeeper::pb::v1::{
    AssignMembershipRolesRequest, CreateWorkspaceMembershipRequest, Decision,
    DeleteWorkspaceMembershipRequest, GetWorkspaceMembershipRequest,
    ListWorkspaceMembershipsRequest, RevokeMembershipRolesRequest, RoleScope,
    UpdateWorkspaceMembershipRequest, WorkspaceMembership, WorkspaceRole,
};
use tonic::Code;

backend_tests!(
    memberships_create_get_list_update_delete,
    membership_errors,
    list_memberships_paginates,
    membership_role_operations,
    membership_role_errors_change_nothing,
    base_role_decides_workspace_permissions,
    membership_role_requests_are_idempotent,
);

fn create(user: &str, role: WorkspaceRole) -> CreateWorkspaceMembershipRequest {
    CreateWorkspaceMembershipRequest {
        organization_id: ORG.into(),
        workspace_id: "ws1".into(),
        user_id: user.into(),
        role: role as i32,
    }
}

fn get(membership: &str) -> GetWorkspaceMembershipRequest {
    GetWorkspaceMembershipRequest {
        organization_id: ORG.into(),
        workspace_id: "ws1".into(),
        membership_id: membership.into(),
    }
}

fn list(user: &str, page_size: i32, page_token: String) -> ListWorkspaceMembershipsRequest {
    ListWorkspaceMembershipsRequest {
        organization_id: ORG.into(),
        workspace_id: "ws1".into(),
        page_size,
        page_token,
        user_id: user.into(),
    }
}

fn set_base(membership: &str, role: WorkspaceRole) -> UpdateWorkspaceMembershipRequest {
    UpdateWorkspaceMembershipRequest {
        organization_id: ORG.into(),
        workspace_id: "ws1".into(),
        membership_id: membership.into(),
        role: role as i32,
    }
}

fn assign(membership: &str, role_ids: &[&str]) -> AssignMembershipRolesRequest {
    AssignMembershipRolesRequest {
        organization_id: ORG.into(),
        workspace_id: "ws1".into(),
        membership_id: membership.into(),
        role_ids: strings(role_ids),
        request_id: String::new(),
    }
}

fn revoke(membership: &str, role_ids: &[&str]) -> RevokeMembershipRolesRequest {
    RevokeMembershipRolesRequest {
        organization_id: ORG.into(),
        workspace_id: "ws1".into(),
        membership_id: membership.into(),
        role_ids: strings(role_ids),
        request_id: String::new(),
    }
}

fn membership_name(membership: &str) -> String {
    format!("organizations/acme/workspaces/ws1/memberships/{membership}")
}

fn role_ids(membership: &WorkspaceMembership) -> Vec<String> {
    membership.roles.iter().map(|r| r.role_id.clone()).collect()
}

async fn memberships_create_get_list_update_delete(server: TestServer) {
    server.seed().await;
    let mut members = server.members(&writer(ORG));
    let created = members
        .create_workspace_membership(create("bob", WorkspaceRole::Viewer))
        .await
        .must();
    uuid::Uuid::parse_str(&created.membership_id).expect("membership_id is a UUID");
    assert_ne!(created.membership_id, "bob");
    assert_eq!(created.organization_id, ORG);
    assert_eq!(created.workspace_id, "ws1");
    assert_eq!(created.user_id, "bob");
    assert_eq!(created.role, WorkspaceRole::Viewer as i32);
    assert!(created.roles.is_empty());
    assert!(created.create_time.is_some());
    let other = members
        .create_workspace_membership(create("carol", WorkspaceRole::Owner))
        .await
        .must();

    let reading = server.members(&reader(ORG));
    let fetched = reading
        .clone()
        .get_workspace_membership(get(&created.membership_id))
        .await
        .must();
    assert_eq!(fetched, created);

    let all = members
        .list_workspace_memberships(list("", 0, String::new()))
        .await
        .must();
    let mut expected = vec![created.membership_id.clone(), other.membership_id.clone()];
    expected.sort();
    assert_eq!(
        all.memberships
            .iter()
            .map(|m| m.membership_id.clone())
            .collect::<Vec<_>>(),
        expected,
        "ordered by membership id"
    );
    let bobs = members
        .list_workspace_memberships(list("bob", 0, String::new()))
        .await
        .must();
    assert_eq!(bobs.memberships, std::slice::from_ref(&created));
    let none = members
        .list_workspace_memberships(list("alice", 0, String::new()))
        .await
        .must();
    assert!(none.memberships.is_empty());

    let updated = members
        .update_workspace_membership(set_base(&created.membership_id, WorkspaceRole::Editor))
        .await
        .must();
    assert_eq!(updated.role, WorkspaceRole::Editor as i32);
    assert_eq!(updated.membership_id, created.membership_id);
    assert_eq!(updated.user_id, "bob");
    assert!(updated.update_time.is_some());
    assert_eq!(updated.create_time, created.create_time);
    let fetched = members
        .get_workspace_membership(get(&created.membership_id))
        .await
        .must();
    assert_eq!(fetched.role, WorkspaceRole::Editor as i32);

    members
        .delete_workspace_membership(DeleteWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            membership_id: created.membership_id.clone(),
        })
        .await
        .must();
    let status = members
        .get_workspace_membership(get(&created.membership_id))
        .await
        .fails();
    assert_not_found(
        &status,
        T_MEMBERSHIP,
        &membership_name(&created.membership_id),
    );
    let status = members
        .delete_workspace_membership(DeleteWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            membership_id: created.membership_id.clone(),
        })
        .await
        .fails();
    assert_not_found(
        &status,
        T_MEMBERSHIP,
        &membership_name(&created.membership_id),
    );
    // The other membership is untouched, and bob can join again.
    let remaining = members
        .list_workspace_memberships(list("", 0, String::new()))
        .await
        .must();
    assert_eq!(remaining.memberships, [other]);
    let again = members
        .create_workspace_membership(create("bob", WorkspaceRole::Viewer))
        .await
        .must();
    assert_ne!(again.membership_id, created.membership_id);
}

async fn membership_errors(server: TestServer) {
    server.seed().await;
    server.create_workspace(ORG, "ws2").await;
    let mut members = server.members(&writer(ORG));
    let existing = members
        .create_workspace_membership(create("bob", WorkspaceRole::Viewer))
        .await
        .must();

    let status = members
        .create_workspace_membership(create("alice", WorkspaceRole::Unspecified))
        .await
        .fails();
    assert_invalid(&status, "role");
    let status = members
        .create_workspace_membership(CreateWorkspaceMembershipRequest {
            role: 42,
            ..create("alice", WorkspaceRole::Viewer)
        })
        .await
        .fails();
    assert_invalid(&status, "role");

    let status = members
        .create_workspace_membership(create("bob", WorkspaceRole::Owner))
        .await
        .fails();
    assert_already_exists(&status, "MEMBERSHIP_EXISTS", T_MEMBERSHIP);
    let status = members
        .create_workspace_membership(create("ghost", WorkspaceRole::Viewer))
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/ghost");
    let status = members
        .create_workspace_membership(CreateWorkspaceMembershipRequest {
            workspace_id: "nope".into(),
            ..create("alice", WorkspaceRole::Viewer)
        })
        .await
        .fails();
    assert_not_found(&status, T_WORKSPACE, "organizations/acme/workspaces/nope");

    let status = members
        .update_workspace_membership(set_base(
            &existing.membership_id,
            WorkspaceRole::Unspecified,
        ))
        .await
        .fails();
    assert_invalid(&status, "role");
    let status = members
        .update_workspace_membership(set_base(
            &uuid::Uuid::new_v4().to_string(),
            WorkspaceRole::Owner,
        ))
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound);

    // Membership ids are the server's UUIDs: anything else is malformed.
    let status = members.get_workspace_membership(get("m1")).await.fails();
    assert_invalid(&status, "membership_id");
    let status = members
        .assign_membership_roles(assign("m1", &["editor"]))
        .await
        .fails();
    assert_invalid(&status, "membership_id");

    // A membership is only found under its own workspace.
    let status = members
        .get_workspace_membership(GetWorkspaceMembershipRequest {
            workspace_id: "ws2".into(),
            ..get(&existing.membership_id)
        })
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound);

    let unchanged = server.membership(ORG, "ws1", &existing.membership_id).await;
    assert_eq!(unchanged, existing, "no failed call changed the membership");
    let alice = members
        .list_workspace_memberships(list("alice", 0, String::new()))
        .await
        .must();
    assert!(alice.memberships.is_empty(), "no failed create added alice");
}

async fn list_memberships_paginates(server: TestServer) {
    server.seed().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let user = format!("member-{i}");
        server.create_user(ORG, &user, "").await;
        let m = server
            .create_membership(ORG, "ws1", &user, WorkspaceRole::Viewer)
            .await;
        ids.push(m.membership_id);
    }
    ids.sort();
    let members = server.members(&reader(ORG));
    let (listed, pages) = collect_pages(|page_token| {
        let mut members = members.clone();
        async move {
            let page = members
                .list_workspace_memberships(list("", 2, page_token))
                .await
                .must();
            assert!(page.memberships.len() <= 2);
            (page.memberships, page.next_page_token)
        }
    })
    .await;
    assert!(
        pages >= 3,
        "5 memberships in pages of 2 take 3 pages, got {pages}"
    );
    let listed: Vec<_> = listed.into_iter().map(|m| m.membership_id).collect();
    assert_eq!(listed, ids);

    let mut members = server.members(&reader(ORG));
    let first = members
        .list_workspace_memberships(list("", 2, String::new()))
        .await
        .must();
    assert!(!first.next_page_token.is_empty());
    let status = members
        .list_workspace_memberships(list("member-3", 2, first.next_page_token))
        .await
        .fails();
    assert_invalid(&status, "page_token");
    let status = members
        .list_workspace_memberships(list("", -1, String::new()))
        .await
        .fails();
    assert_invalid(&status, "page_size");
}

async fn membership_role_operations(server: TestServer) {
    server.seed().await;
    server
        .create_role(
            ORG,
            "ws-deny",
            RoleScope::Workspace,
            &[("docs.write", false)],
        )
        .await;
    let membership = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Viewer)
        .await;
    let id = membership.membership_id.clone();
    let mut members = server.members(&writer(ORG));

    let accepted = members
        .assign_membership_roles(assign(&id, &["ws-extra", "ws-deny"]))
        .await
        .must();
    assert_operation_name(&accepted.name);
    let meta = op_metadata(&accepted);
    assert_eq!(meta.verb, "AssignMembershipRoles");
    assert_eq!(meta.target, membership_name(&id));
    assert_eq!(meta.principal, writer_sub(ORG));
    assert_eq!(meta.requested_items, 2);
    let op = server.wait_done(&accepted.name).await;
    let response: WorkspaceMembership = op_response(&op);
    assert_eq!(response.membership_id, id);
    assert_eq!(response.user_id, "bob");
    assert_eq!(response.role, WorkspaceRole::Viewer as i32);
    assert_eq!(role_ids(&response), ["ws-deny", "ws-extra"]);
    let deny = &response.roles[0];
    assert_eq!(deny.scope, RoleScope::Workspace as i32);
    assert_eq!(deny.permissions.len(), 1);
    assert_eq!(deny.permissions[0].access, Some(false));
    assert_eq!(
        server.membership(ORG, "ws1", &id).await.roles,
        response.roles
    );

    // Already held is a no-op; revoking something not held too.
    let op = members
        .assign_membership_roles(assign(&id, &["ws-extra"]))
        .await
        .must();
    let op = server.wait_done(&op.name).await;
    assert_eq!(role_ids(&op_response(&op)), ["ws-deny", "ws-extra"]);
    let accepted = members
        .revoke_membership_roles(revoke(&id, &["ws-extra", "editor"]))
        .await
        .must();
    assert_eq!(op_metadata(&accepted).verb, "RevokeMembershipRoles");
    assert_eq!(op_metadata(&accepted).target, membership_name(&id));
    let op = server.wait_done(&accepted.name).await;
    let response: WorkspaceMembership = op_response(&op);
    assert_eq!(role_ids(&response), ["ws-deny"]);
    let fetched = server.membership(ORG, "ws1", &id).await;
    assert_eq!(role_ids(&fetched), ["ws-deny"]);
    assert_eq!(
        fetched.role,
        WorkspaceRole::Viewer as i32,
        "base role untouched"
    );
}

async fn membership_role_errors_change_nothing(server: TestServer) {
    server.seed().await;
    let membership = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Viewer)
        .await;
    let id = membership.membership_id.clone();
    server
        .assign_membership_roles(ORG, "ws1", &id, &["ws-extra"])
        .await;
    let before = server.membership(ORG, "ws1", &id).await;
    let mut members = server.members(&writer(ORG));

    let status = members
        .assign_membership_roles(assign(&id, &["editor", "reader"]))
        .await
        .fails();
    assert_invalid(&status, "role_ids[1]");
    let status = members
        .revoke_membership_roles(revoke(&id, &["writer", "ws-extra"]))
        .await
        .fails();
    assert_invalid(&status, "role_ids[0]");
    let status = members
        .assign_membership_roles(assign(&id, &["editor", "nope"]))
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/nope");
    let status = members
        .revoke_membership_roles(revoke(&id, &["ws-extra", "nope"]))
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/nope");
    let status = members
        .assign_membership_roles(assign(&id, &["editor", "owner", "editor"]))
        .await
        .fails();
    assert_invalid(&status, "role_ids[2]");
    let status = members
        .assign_membership_roles(assign(&id, &[]))
        .await
        .fails();
    assert_invalid(&status, "role_ids");

    let missing = uuid::Uuid::new_v4().to_string();
    let status = members
        .assign_membership_roles(assign(&missing, &["editor"]))
        .await
        .fails();
    assert_not_found(&status, T_MEMBERSHIP, &membership_name(&missing));

    assert_eq!(server.membership(ORG, "ws1", &id).await, before);
}

async fn base_role_decides_workspace_permissions(server: TestServer) {
    server.seed().await;
    let membership = server
        .create_membership(ORG, "ws1", "carol", WorkspaceRole::Viewer)
        .await;
    let decision = server.check(ORG, "carol", "workspace.write", "ws1").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);

    server
        .members(&writer(ORG))
        .update_workspace_membership(set_base(&membership.membership_id, WorkspaceRole::Editor))
        .await
        .must();
    let decision = server.check(ORG, "carol", "workspace.write", "ws1").await;
    assert!(decision.allowed);
    assert_eq!(decision.matched_role_ids, ["editor"]);
    let decision = server.check(ORG, "carol", "workspace.admin", "ws1").await;
    assert!(!decision.allowed);

    // Seeded roles are ordinary roles: editing one changes its members' rights.
    let mut editor = server
        .roles(&reader(ORG))
        .get_role(rolekeeper::pb::v1::GetRoleRequest {
            organization_id: ORG.into(),
            role_id: "editor".into(),
        })
        .await
        .must();
    editor.permissions.push(perm("workspace.comment", true));
    server
        .roles(&writer(ORG))
        .update_role(rolekeeper::pb::v1::UpdateRoleRequest {
            role: Some(editor),
            update_mask: Some(prost_types::FieldMask {
                paths: strings(&["permissions"]),
            }),
        })
        .await
        .must();
    let decision = server.check(ORG, "carol", "workspace.comment", "ws1").await;
    assert!(decision.allowed);
    assert_eq!(decision.matched_role_ids, ["editor"]);

    server
        .members(&writer(ORG))
        .delete_workspace_membership(DeleteWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            membership_id: membership.membership_id.clone(),
        })
        .await
        .must();
    let decision = server.check(ORG, "carol", "workspace.read", "ws1").await;
    assert_eq!(decision.decision, Decision::NoGrant as i32);
}

async fn membership_role_requests_are_idempotent(server: TestServer) {
    server.seed().await;
    let membership = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Viewer)
        .await;
    let id = membership.membership_id.clone();
    let mut members = server.members(&writer(ORG));
    let rid = request_id();
    let with_id = |request: AssignMembershipRolesRequest| AssignMembershipRolesRequest {
        request_id: rid.clone(),
        ..request
    };

    let first = members
        .assign_membership_roles(with_id(assign(&id, &["ws-extra"])))
        .await
        .must();
    assert_eq!(op_metadata(&first).request_id, rid);
    let retry = members
        .assign_membership_roles(with_id(assign(&id, &["ws-extra"])))
        .await
        .must();
    assert_eq!(retry.name, first.name);
    let status = members
        .assign_membership_roles(with_id(assign(&id, &["editor"])))
        .await
        .fails();
    assert_error(&status, Code::AlreadyExists, "REQUEST_ID_REUSED");
    let status = members
        .revoke_membership_roles(RevokeMembershipRolesRequest {
            request_id: rid.clone(),
            ..revoke(&id, &["ws-extra"])
        })
        .await
        .fails();
    assert_error(&status, Code::AlreadyExists, "REQUEST_ID_REUSED");
    let status = members
        .assign_membership_roles(AssignMembershipRolesRequest {
            request_id: "not-a-uuid".into(),
            ..assign(&id, &["editor"])
        })
        .await
        .fails();
    assert_invalid(&status, "request_id");

    let op = server.wait_done(&first.name).await;
    assert_eq!(role_ids(&op_response(&op)), ["ws-extra"]);
    assert_eq!(
        role_ids(&server.membership(ORG, "ws1", &id).await),
        ["ws-extra"]
    );
}
