//! Authentication, scopes, organization isolation and request ids.

#[macro_use]
mod common;

use base64::Engine as _;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rolekeeper::auth::Claims;
use rolekeeper::pb::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, ListOperationsRequest,
    operations_client::OperationsClient,
};
use rolekeeper::pb::v1::{
    AssignUserRolesRequest, CreateRoleRequest, CreateUserRequest, CreateWorkspaceMembershipRequest,
    DeleteRoleRequest, GetOrganizationRequest, GetRoleRequest, GetUserRequest, ListRolesRequest,
    ListUsersRequest, ListWorkspaceMembershipsRequest, Permission, RevokeUserRolesRequest, Role,
    UpdateRoleRequest, User, WorkspaceRole, organization_service_client::OrganizationServiceClient,
    role_service_client::RoleServiceClient,
    workspace_membership_service_client::WorkspaceMembershipServiceClient,
};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::{Code, Status, metadata::MetadataMap};

backend_tests!(
    missing_and_bad_tokens_are_unauthenticated,
    every_service_requires_a_token,
    scopes_are_enforced,
    foreign_organization_is_forbidden_before_anything_else,
    request_id_is_echoed_or_generated,
);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

fn signed(claims: &Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode a token")
}

fn admin_claims() -> Claims {
    Claims {
        sub: "someone".into(),
        scope: "admin".into(),
        org: None,
        exp: now() + 3600,
        nbf: None,
        iat: Some(now()),
    }
}

fn unsigned_token() -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64.encode(serde_json::to_vec(&admin_claims()).expect("json"));
    format!("{header}.{claims}.")
}

fn get_org() -> GetOrganizationRequest {
    GetOrganizationRequest {
        organization_id: ORG.into(),
    }
}

fn get_user(org: &str, user: &str) -> GetUserRequest {
    GetUserRequest {
        organization_id: org.into(),
        user_id: user.into(),
    }
}

async fn missing_and_bad_tokens_are_unauthenticated(server: TestServer) {
    server.create_org(ORG).await;
    let call = |bearer: Bearer| {
        let mut client = OrganizationServiceClient::new(server.with(bearer));
        async move { client.get_organization(get_org()).await.fails() }
    };

    let status = call(Bearer::none()).await;
    assert_error(&status, Code::Unauthenticated, "TOKEN_MISSING");

    let expired = signed(
        &Claims {
            exp: now() - 3600,
            iat: Some(now() - 7200),
            ..admin_claims()
        },
        SECRET,
    );
    let status = call(Bearer::token(&expired)).await;
    assert_error(&status, Code::Unauthenticated, "TOKEN_EXPIRED");

    let not_yet = signed(
        &Claims {
            nbf: Some(now() + 3600),
            exp: now() + 7200,
            ..admin_claims()
        },
        SECRET,
    );
    let wrong_key = signed(&admin_claims(), b"some-other-secret");
    let valid = admin();
    let invalid = [
        ("basic auth", Bearer::raw("Basic dXNlcjpwYXNz")),
        ("no Bearer prefix", Bearer::raw(&valid)),
        ("empty bearer", Bearer::raw("Bearer ")),
        ("not a JWT", Bearer::token("not-a-jwt")),
        ("garbage segments", Bearer::token("a.b.c")),
        ("wrong key", Bearer::token(&wrong_key)),
        ("alg none", Bearer::token(&unsigned_token())),
        ("nbf in the future", Bearer::token(&not_yet)),
        ("tampered signature", Bearer::token(&format!("{valid}x"))),
    ];
    for (what, bearer) in invalid {
        let status = call(bearer).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
    }
    // No token text leaks into the message.
    let status = call(Bearer::token(&wrong_key)).await;
    assert!(!status.message().contains(&wrong_key));

    let fine = OrganizationServiceClient::new(server.with(Bearer::token(&valid)))
        .get_organization(get_org())
        .await
        .must();
    assert_eq!(
        fine.organization_id, ORG,
        "the same request with a good token"
    );
}

async fn every_service_requires_a_token(server: TestServer) {
    server.create_org(ORG).await;
    let none = || server.with(Bearer::none());
    let statuses: Vec<Status> = vec![
        OrganizationServiceClient::new(none())
            .list_users(ListUsersRequest {
                organization_id: ORG.into(),
                ..Default::default()
            })
            .await
            .fails(),
        RoleServiceClient::new(none())
            .list_roles(ListRolesRequest {
                organization_id: ORG.into(),
                ..Default::default()
            })
            .await
            .fails(),
        WorkspaceMembershipServiceClient::new(none())
            .list_workspace_memberships(ListWorkspaceMembershipsRequest {
                organization_id: ORG.into(),
                workspace_id: "ws1".into(),
                ..Default::default()
            })
            .await
            .fails(),
        OperationsClient::new(none())
            .list_operations(ListOperationsRequest::default())
            .await
            .fails(),
    ];
    for status in statuses {
        assert_error(&status, Code::Unauthenticated, "TOKEN_MISSING");
    }
}

async fn scopes_are_enforced(server: TestServer) {
    server.seed().await;
    server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let read = reader(ORG);

    // Reads work with a read token.
    server
        .orgs(&read)
        .get_user(get_user(ORG, "alice"))
        .await
        .must();
    server
        .roles(&read)
        .get_role(GetRoleRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
        })
        .await
        .must();

    // Every mutation, revocations included, needs organization:write.
    let write = "organization:write";
    let status = server
        .orgs(&read)
        .create_user(CreateUserRequest {
            organization_id: ORG.into(),
            user: Some(User {
                user_id: "mallory".into(),
                ..Default::default()
            }),
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .roles(&read)
        .create_role(CreateRoleRequest {
            organization_id: ORG.into(),
            role: Some(role(
                "sneaky",
                rolekeeper::pb::v1::RoleScope::Organization,
                &[],
            )),
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .roles(&read)
        .update_role(UpdateRoleRequest {
            role: Some(Role {
                organization_id: ORG.into(),
                role_id: "reader".into(),
                name: "Hijacked".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .roles(&read)
        .delete_role(DeleteRoleRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            force: true,
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .roles(&read)
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
            role_ids: strings(&["writer"]),
            request_id: String::new(),
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .roles(&read)
        .revoke_user_roles(RevokeUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
            role_ids: strings(&["reader"]),
            request_id: String::new(),
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .members(&read)
        .create_workspace_membership(CreateWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            user_id: "alice".into(),
            role: WorkspaceRole::Owner as i32,
        })
        .await
        .fails();
    assert_scope_missing(&status, write);

    let op_name = server.assign_user_roles(ORG, "bob", &["reader"]).await.name;
    let status = server
        .ops(&read)
        .delete_operation(DeleteOperationRequest {
            name: op_name.clone(),
        })
        .await
        .fails();
    assert_scope_missing(&status, write);
    let status = server
        .ops(&read)
        .cancel_operation(CancelOperationRequest { name: op_name })
        .await
        .fails();
    assert_scope_missing(&status, write);

    // No scope at all: not even reads.
    let nothing = token("nobody", Some(ORG), "");
    let status = server
        .orgs(&nothing)
        .get_user(get_user(ORG, "alice"))
        .await
        .fails();
    assert_scope_missing(&status, "organization:read");
    let unknown = token("nobody", Some(ORG), "organization:admin profile");
    let status = server
        .orgs(&unknown)
        .get_user(get_user(ORG, "alice"))
        .await
        .fails();
    assert_scope_missing(&status, "organization:read");

    // Scope is checked before the organization.
    let status = server
        .orgs(&reader(OTHER_ORG))
        .create_user(CreateUserRequest {
            organization_id: ORG.into(),
            user: Some(User::default()),
        })
        .await
        .fails();
    assert_scope_missing(&status, write);

    // Nothing changed.
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);
    let status = server
        .orgs(&admin())
        .get_user(get_user(ORG, "mallory"))
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/mallory");
}

async fn foreign_organization_is_forbidden_before_anything_else(server: TestServer) {
    server.seed().await;
    server.create_org(OTHER_ORG).await;
    let them = foreign();

    // Existing and nonexistent resources look the same.
    let status = server.orgs(&them).get_organization(get_org()).await.fails();
    assert_forbidden(&status);
    let status = server
        .orgs(&them)
        .get_organization(GetOrganizationRequest {
            organization_id: "does-not-exist".into(),
        })
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .orgs(&them)
        .get_user(get_user(ORG, "alice"))
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .orgs(&them)
        .get_user(get_user(ORG, "ghost"))
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .orgs(&them)
        .get_user(get_user("does-not-exist", "ghost"))
        .await
        .fails();
    assert_forbidden(&status);

    // Invalid input does not get validated for a foreign caller.
    let status = server
        .orgs(&them)
        .create_user(CreateUserRequest {
            organization_id: ORG.into(),
            user: Some(User {
                user_id: "bad id!".into(),
                email: "not-an-email".into(),
                ..Default::default()
            }),
        })
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .orgs(&them)
        .list_users(ListUsersRequest {
            organization_id: ORG.into(),
            page_size: -1,
            page_token: "garbage".into(),
        })
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .roles(&them)
        .create_role(CreateRoleRequest {
            organization_id: ORG.into(),
            role: Some(Role {
                permissions: vec![Permission {
                    name: "docs.read".into(),
                    description: String::new(),
                    access: None,
                }],
                ..role("r", rolekeeper::pb::v1::RoleScope::Organization, &[])
            }),
        })
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .roles(&them)
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
            role_ids: vec![],
            request_id: "not-a-uuid".into(),
        })
        .await
        .fails();
    assert_forbidden(&status);
    let status = server
        .members(&them)
        .create_workspace_membership(CreateWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            user_id: "alice".into(),
            role: WorkspaceRole::Unspecified as i32,
        })
        .await
        .fails();
    assert_forbidden(&status);

    // The organization of a non-admin token is its only one.
    let status = server
        .orgs(&writer(ORG))
        .get_organization(GetOrganizationRequest {
            organization_id: OTHER_ORG.into(),
        })
        .await
        .fails();
    assert_forbidden(&status);
    let no_org = token("floating", None, "organization:write");
    let status = server
        .orgs(&no_org)
        .get_user(get_user(ORG, "alice"))
        .await
        .fails();
    assert_forbidden(&status);

    // Admins may act everywhere.
    server
        .orgs(&admin())
        .get_user(get_user(ORG, "alice"))
        .await
        .must();
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
}

fn header(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn request_id_is_echoed_or_generated(server: TestServer) {
    server.create_org(ORG).await;
    let client = |bearer: Bearer| OrganizationServiceClient::new(server.with(bearer));

    let response = client(Bearer::token(&admin()).with_request_id("req-ok-1"))
        .get_organization(get_org())
        .await
        .expect("success");
    assert_eq!(header(response.metadata()).as_deref(), Some("req-ok-1"));

    let status = client(Bearer::token(&admin()).with_request_id("req-err-1"))
        .get_user(get_user(ORG, "ghost"))
        .await
        .fails();
    assert_eq!(header(status.metadata()).as_deref(), Some("req-err-1"));
    let details = assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert_eq!(
        details.request_info().map(|r| r.request_id.as_str()),
        Some("req-err-1")
    );

    // Even before authentication.
    let status = client(Bearer::none().with_request_id("req-anon-1"))
        .get_organization(get_org())
        .await
        .fails();
    assert_eq!(header(status.metadata()).as_deref(), Some("req-anon-1"));
    let details = assert_error(&status, Code::Unauthenticated, "TOKEN_MISSING");
    assert_eq!(
        details.request_info().map(|r| r.request_id.as_str()),
        Some("req-anon-1")
    );

    // Without one, the server makes one up, different per request.
    let first = client(Bearer::token(&admin()))
        .get_organization(get_org())
        .await
        .expect("success");
    let second = client(Bearer::token(&admin()))
        .get_organization(get_org())
        .await
        .expect("success");
    let first = header(first.metadata()).expect("generated x-request-id");
    let second = header(second.metadata()).expect("generated x-request-id");
    assert!(!first.is_empty());
    assert_ne!(first, second);

    let status = client(Bearer::token(&admin()))
        .get_user(get_user(ORG, "ghost"))
        .await
        .fails();
    let generated = header(status.metadata()).expect("generated x-request-id on errors");
    let details = assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert_eq!(
        details.request_info().map(|r| r.request_id.clone()),
        Some(generated),
        "RequestInfo carries the same id as the metadata"
    );
}
