//! The read cache never answers from before a committed change: each
//! scenario reads (filling the cache), changes something through another
//! RPC, and reads again.

#[macro_use]
mod common;

use common::*;
use rolekeeper::pb::v1::{
    self, Decision, DeleteRoleRequest, GetRoleRequest, RevokeUserRolesRequest, UpdateRoleRequest,
    UpdateWorkspaceMembershipRequest, WorkspaceRole,
};

backend_tests!(
    get_role_sees_updates,
    user_roles_see_assignments_revocations_and_deletions,
    check_permission_sees_every_kind_of_change,
);

async fn get_role(server: &TestServer) -> v1::Role {
    server
        .roles(&admin())
        .get_role(GetRoleRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
        })
        .await
        .must()
}

async fn update_reader(server: &TestServer, permissions: &[(&str, bool)]) {
    server
        .roles(&admin())
        .update_role(UpdateRoleRequest {
            role: Some(v1::Role {
                organization_id: ORG.into(),
                ..role("reader", v1::RoleScope::Organization, permissions)
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: strings(&["permissions"]),
            }),
        })
        .await
        .must();
}

async fn get_role_sees_updates(server: TestServer) {
    server.seed().await;
    let before = get_role(&server).await;
    assert_eq!(before.permissions.len(), 1);
    update_reader(&server, &[("docs.read", true), ("docs.list", true)]).await;
    let after = get_role(&server).await;
    assert_eq!(after.permissions.len(), 2);
    assert_ne!(before.etag, after.etag);
}

async fn user_roles_see_assignments_revocations_and_deletions(server: TestServer) {
    server.seed().await;
    assert!(server.user_role_ids(ORG, "bob").await.is_empty());
    server
        .assign_user_roles(ORG, "bob", &["reader", "writer"])
        .await;
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["reader", "writer"]);
    let op = server
        .roles(&admin())
        .revoke_user_roles(RevokeUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "bob".into(),
            role_ids: strings(&["writer"]),
            request_id: String::new(),
        })
        .await
        .must();
    assert_op_succeeded(&server.wait_done(&op.name).await);
    assert_eq!(server.user_role_ids(ORG, "bob").await, ["reader"]);
    server
        .roles(&admin())
        .delete_role(DeleteRoleRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            force: true,
        })
        .await
        .must();
    assert!(server.user_role_ids(ORG, "bob").await.is_empty());
}

async fn check_permission_sees_every_kind_of_change(server: TestServer) {
    server.seed().await;
    let decision = |r: v1::CheckPermissionResponse| r.decision();
    assert_eq!(
        decision(server.check(ORG, "carol", "docs.read", "").await),
        Decision::NoGrant
    );
    server.assign_user_roles(ORG, "carol", &["reader"]).await;
    assert_eq!(
        decision(server.check(ORG, "carol", "docs.read", "").await),
        Decision::Granted
    );
    update_reader(&server, &[("docs.read", false)]).await;
    assert_eq!(
        decision(server.check(ORG, "carol", "docs.read", "").await),
        Decision::DeniedExplicitly
    );

    let membership = server
        .create_membership(ORG, "ws1", "carol", WorkspaceRole::Viewer)
        .await;
    assert_eq!(
        decision(server.check(ORG, "carol", "workspace.write", "ws1").await),
        Decision::NoGrant
    );
    server
        .members(&admin())
        .update_workspace_membership(UpdateWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            membership_id: membership.membership_id.clone(),
            role: WorkspaceRole::Editor as i32,
        })
        .await
        .must();
    assert_eq!(
        decision(server.check(ORG, "carol", "workspace.write", "ws1").await),
        Decision::Granted
    );
    server
        .assign_membership_roles(ORG, "ws1", &membership.membership_id, &["ws-extra"])
        .await;
    assert_eq!(
        decision(server.check(ORG, "carol", "reports.read", "ws1").await),
        Decision::Granted
    );
}
