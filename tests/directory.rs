//! OrganizationService: organizations, users and workspaces.

#[macro_use]
mod common;

use common::*;
use rolekeeper::pb::v1::{
    CreateOrganizationRequest, CreateUserRequest, CreateWorkspaceRequest, DeleteRoleRequest,
    DeleteUserRequest, DeleteWorkspaceRequest, GetOrganizationRequest, GetUserRequest,
    GetWorkspaceMembershipRequest, GetWorkspaceRequest, ListOrganizationsRequest,
    ListRoleMembersRequest, ListRolesRequest, ListUsersRequest, ListWorkspaceMembershipsRequest,
    ListWorkspacesRequest, Organization, RoleScope, User, Workspace, WorkspaceRole,
};
use tonic::Code;

backend_tests!(
    organizations_create_get_and_generated_ids,
    organizations_need_admin_scope,
    organizations_list_paginates,
    organizations_duplicate_and_invalid_ids,
    new_organizations_have_seeded_workspace_roles,
    users_create_get_and_generated_ids,
    users_duplicates_are_rejected,
    users_invalid_fields_are_rejected,
    users_list_paginates,
    list_pagination_arguments_are_validated,
    delete_user_removes_assignments_and_memberships,
    workspaces_create_get_list_and_duplicates,
    delete_workspace_removes_memberships,
);

async fn organizations_create_get_and_generated_ids(server: TestServer) {
    let created = server.create_org(ORG).await;
    assert_eq!(created.organization_id, ORG);
    assert_eq!(created.display_name, format!("Organization {ORG}"));
    assert!(created.create_time.is_some(), "create_time is set");

    let fetched = server
        .orgs(&reader(ORG))
        .get_organization(GetOrganizationRequest {
            organization_id: ORG.into(),
        })
        .await
        .must();
    assert_eq!(fetched, created);

    let generated = server
        .orgs(&admin())
        .create_organization(CreateOrganizationRequest {
            organization: Some(Organization {
                organization_id: String::new(),
                display_name: "Generated".into(),
                create_time: None,
            }),
        })
        .await
        .must();
    assert_uuid_v7(&generated.organization_id);
    assert_eq!(generated.display_name, "Generated");

    let status = server
        .orgs(&admin())
        .get_organization(GetOrganizationRequest {
            organization_id: "missing".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_ORGANIZATION, "organizations/missing");
}

async fn organizations_need_admin_scope(server: TestServer) {
    server.create_org(ORG).await;
    let status = server
        .orgs(&writer(ORG))
        .create_organization(CreateOrganizationRequest {
            organization: Some(Organization {
                organization_id: "sneaky".into(),
                ..Default::default()
            }),
        })
        .await
        .fails();
    assert_scope_missing(&status, "admin");
    let status = server
        .orgs(&writer(ORG))
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .fails();
    assert_scope_missing(&status, "admin");

    // The refused create did not happen.
    let all = server
        .orgs(&admin())
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .must();
    let ids: Vec<_> = all
        .organizations
        .iter()
        .map(|o| o.organization_id.as_str())
        .collect();
    assert_eq!(ids, [ORG]);
}

async fn organizations_list_paginates(server: TestServer) {
    let ids = ["org-a", "org-b", "org-c", "org-d", "org-e"];
    for id in ids {
        server.create_org(id).await;
    }
    let orgs = server.orgs(&admin());
    let (listed, pages) = collect_pages(|page_token| {
        let mut orgs = orgs.clone();
        async move {
            let page = orgs
                .list_organizations(ListOrganizationsRequest {
                    page_size: 2,
                    page_token,
                })
                .await
                .must();
            assert!(page.organizations.len() <= 2, "page larger than page_size");
            (page.organizations, page.next_page_token)
        }
    })
    .await;
    assert!(
        pages >= 3,
        "5 organizations in pages of 2 take 3 pages, got {pages}"
    );
    let listed: Vec<_> = listed.into_iter().map(|o| o.organization_id).collect();
    assert_eq!(
        listed,
        strings(&ids),
        "every organization once, ordered by id"
    );

    // page_size 0 means 50: everything on one page.
    let all = server
        .orgs(&admin())
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .must();
    assert_eq!(all.organizations.len(), 5);
    assert!(all.next_page_token.is_empty());
}

async fn organizations_duplicate_and_invalid_ids(server: TestServer) {
    server.create_org(ORG).await;
    let mut orgs = server.orgs(&admin());
    let create = |id: &str| CreateOrganizationRequest {
        organization: Some(Organization {
            organization_id: id.into(),
            display_name: "x".into(),
            create_time: None,
        }),
    };
    let status = orgs.create_organization(create(ORG)).await.fails();
    let details = assert_already_exists(&status, "ORGANIZATION_EXISTS", T_ORGANIZATION);
    assert_eq!(
        details.resource_info().map(|r| r.resource_name.as_str()),
        Some("organizations/acme")
    );

    for bad in ["has space", "dot.ted", "slash/ed", &"x".repeat(64)] {
        let status = orgs.create_organization(create(bad)).await.fails();
        assert_invalid(&status, "organization.organization_id");
    }
    let longest = "y".repeat(63);
    let created = orgs.create_organization(create(&longest)).await.must();
    assert_eq!(created.organization_id, longest);
    let created = orgs
        .create_organization(create("Mixed_Case-09"))
        .await
        .must();
    assert_eq!(created.organization_id, "Mixed_Case-09");
}

async fn new_organizations_have_seeded_workspace_roles(server: TestServer) {
    server.create_org(ORG).await;
    let roles = server
        .roles(&reader(ORG))
        .list_roles(ListRolesRequest {
            organization_id: ORG.into(),
            ..Default::default()
        })
        .await
        .must()
        .roles;
    let ids: Vec<_> = roles.iter().map(|r| r.role_id.as_str()).collect();
    assert_eq!(
        ids,
        ["editor", "owner", "viewer"],
        "seeded roles, ordered by id"
    );
    for role in &roles {
        assert_eq!(
            role.scope,
            RoleScope::Workspace as i32,
            "{} scope",
            role.role_id
        );
        assert_eq!(role.organization_id, ORG);
        assert!(!role.etag.is_empty());
        assert!(
            role.permissions.iter().all(|p| p.access == Some(true)),
            "seeded roles only grant"
        );
        let granted = sorted(role.permissions.iter().map(|p| p.name.clone()));
        let expected: &[&str] = match role.role_id.as_str() {
            "owner" => &["workspace.admin", "workspace.read", "workspace.write"],
            "editor" => &["workspace.read", "workspace.write"],
            _ => &["workspace.read"],
        };
        assert_eq!(granted, strings(expected), "{} permissions", role.role_id);
    }
}

async fn users_create_get_and_generated_ids(server: TestServer) {
    server.create_org(ORG).await;
    let mut orgs = server.orgs(&writer(ORG));
    let created = orgs
        .create_user(CreateUserRequest {
            organization_id: ORG.into(),
            user: Some(User {
                user_id: "alice".into(),
                email: "Alice@Example.com".into(),
                aad_id: "aad-1".into(),
                auth0_id: "auth0|1".into(),
                display_name: "Alice".into(),
                ..Default::default()
            }),
        })
        .await
        .must();
    assert_eq!(created.organization_id, ORG);
    assert_eq!(created.user_id, "alice");
    assert_eq!(created.aad_id, "aad-1");
    assert_eq!(created.auth0_id, "auth0|1");
    assert_eq!(created.display_name, "Alice");
    assert!(created.email.eq_ignore_ascii_case("alice@example.com"));
    assert!(created.create_time.is_some());

    let fetched = server
        .orgs(&reader(ORG))
        .get_user(GetUserRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
        })
        .await
        .must();
    assert_eq!(fetched, created);

    // Empty id: a generated UUIDv7; identifiers are optional.
    let generated = orgs
        .create_user(CreateUserRequest {
            organization_id: ORG.into(),
            user: Some(User::default()),
        })
        .await
        .must();
    assert_uuid_v7(&generated.user_id);
    assert!(generated.email.is_empty() && generated.aad_id.is_empty());
    // Two users without e-mail do not collide.
    let another = orgs
        .create_user(CreateUserRequest {
            organization_id: ORG.into(),
            user: Some(User::default()),
        })
        .await
        .must();
    assert_ne!(another.user_id, generated.user_id);

    let status = orgs
        .get_user(GetUserRequest {
            organization_id: ORG.into(),
            user_id: "nobody".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/nobody");

    let status = server
        .orgs(&admin())
        .create_user(CreateUserRequest {
            organization_id: "missing".into(),
            user: Some(User {
                user_id: "u".into(),
                ..Default::default()
            }),
        })
        .await
        .fails();
    assert_not_found(&status, T_ORGANIZATION, "organizations/missing");
}

async fn users_duplicates_are_rejected(server: TestServer) {
    server.create_org(ORG).await;
    server.create_org(OTHER_ORG).await;
    server
        .create_user_with(
            ORG,
            User {
                user_id: "alice".into(),
                email: "alice@example.com".into(),
                aad_id: "aad-alice".into(),
                auth0_id: "auth0|alice".into(),
                ..Default::default()
            },
        )
        .await;
    let mut orgs = server.orgs(&writer(ORG));
    let attempt = |user: User| CreateUserRequest {
        organization_id: ORG.into(),
        user: Some(user),
    };

    let status = orgs
        .create_user(attempt(User {
            user_id: "alice".into(),
            ..Default::default()
        }))
        .await
        .fails();
    let details = assert_already_exists(&status, "USER_EXISTS", T_USER);
    assert_eq!(
        details.resource_info().map(|r| r.resource_name.as_str()),
        Some("organizations/acme/users/alice")
    );

    let taken = [
        User {
            email: "ALICE@example.COM".into(),
            ..Default::default()
        },
        User {
            aad_id: "aad-alice".into(),
            ..Default::default()
        },
        User {
            auth0_id: "auth0|alice".into(),
            ..Default::default()
        },
    ];
    for user in taken {
        let status = orgs
            .create_user(attempt(User {
                user_id: "impostor".into(),
                ..user.clone()
            }))
            .await
            .fails();
        assert_already_exists(&status, "USER_IDENTITY_TAKEN", T_USER);
    }
    let status = orgs
        .get_user(GetUserRequest {
            organization_id: ORG.into(),
            user_id: "impostor".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/impostor");

    // Identifiers are unique per organization only.
    let elsewhere = server
        .orgs(&writer(OTHER_ORG))
        .create_user(CreateUserRequest {
            organization_id: OTHER_ORG.into(),
            user: Some(User {
                user_id: "alice".into(),
                email: "alice@example.com".into(),
                aad_id: "aad-alice".into(),
                auth0_id: "auth0|alice".into(),
                ..Default::default()
            }),
        })
        .await
        .must();
    assert_eq!(elsewhere.organization_id, OTHER_ORG);
}

async fn users_invalid_fields_are_rejected(server: TestServer) {
    server.create_org(ORG).await;
    let mut orgs = server.orgs(&writer(ORG));
    let attempt = |user: User| CreateUserRequest {
        organization_id: ORG.into(),
        user: Some(user),
    };
    // 254 characters: 64 + 1 + 189.
    let longest_email = format!("{}@{}", "a".repeat(64), "b".repeat(189));
    assert_eq!(longest_email.len(), 254);
    let too_long_email = format!("a{longest_email}");

    let bad_emails = [
        "no-at-sign",
        "two@@example.com",
        "a@b@c",
        too_long_email.as_str(),
    ];
    for email in bad_emails {
        let status = orgs
            .create_user(attempt(User {
                user_id: "u1".into(),
                email: email.into(),
                ..Default::default()
            }))
            .await
            .fails();
        assert_invalid(&status, "user.email");
    }
    let bad_ids = ["white space", "ümlaut", "a.b", &"u".repeat(64)];
    for id in bad_ids {
        let status = orgs
            .create_user(attempt(User {
                user_id: id.into(),
                ..Default::default()
            }))
            .await
            .fails();
        assert_invalid(&status, "user.user_id");
    }
    let listed = orgs
        .list_users(ListUsersRequest {
            organization_id: ORG.into(),
            ..Default::default()
        })
        .await
        .must();
    assert!(listed.users.is_empty(), "no invalid user was created");

    let ok = orgs
        .create_user(attempt(User {
            user_id: "u".repeat(63),
            email: longest_email.clone(),
            ..Default::default()
        }))
        .await
        .must();
    assert_eq!(ok.user_id.len(), 63);
}

async fn users_list_paginates(server: TestServer) {
    server.create_org(ORG).await;
    server.create_org(OTHER_ORG).await;
    let ids: Vec<String> = (0..7).map(|i| format!("user-{i}")).collect();
    for id in &ids {
        server
            .create_user(ORG, id, &format!("{id}@example.com"))
            .await;
    }
    server.create_user(OTHER_ORG, "outsider", "").await;

    let orgs = server.orgs(&reader(ORG));
    let (listed, pages) = collect_pages(|page_token| {
        let mut orgs = orgs.clone();
        async move {
            let page = orgs
                .list_users(ListUsersRequest {
                    organization_id: ORG.into(),
                    page_size: 3,
                    page_token,
                })
                .await
                .must();
            assert!(page.users.len() <= 3);
            (page.users, page.next_page_token)
        }
    })
    .await;
    assert!(
        pages >= 3,
        "7 users in pages of 3 take 3 pages, got {pages}"
    );
    assert!(listed.iter().all(|u| u.organization_id == ORG));
    let listed: Vec<_> = listed.into_iter().map(|u| u.user_id).collect();
    assert_eq!(
        listed, ids,
        "every user of the organization once, ordered by id"
    );

    // A token is bound to its organization: reusing it for another is refused.
    let first = server
        .orgs(&admin())
        .list_users(ListUsersRequest {
            organization_id: ORG.into(),
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .must();
    assert!(!first.next_page_token.is_empty());
    let status = server
        .orgs(&admin())
        .list_users(ListUsersRequest {
            organization_id: OTHER_ORG.into(),
            page_size: 3,
            page_token: first.next_page_token,
        })
        .await
        .fails();
    assert_invalid(&status, "page_token");
}

async fn list_pagination_arguments_are_validated(server: TestServer) {
    server.create_org(ORG).await;
    let mut orgs = server.orgs(&reader(ORG));
    let status = orgs
        .list_users(ListUsersRequest {
            organization_id: ORG.into(),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .fails();
    assert_invalid(&status, "page_size");
    let status = orgs
        .list_workspaces(ListWorkspacesRequest {
            organization_id: ORG.into(),
            page_size: -5,
            page_token: String::new(),
        })
        .await
        .fails();
    assert_invalid(&status, "page_size");
    let status = server
        .orgs(&admin())
        .list_organizations(ListOrganizationsRequest {
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .fails();
    assert_invalid(&status, "page_size");
    let status = orgs
        .list_users(ListUsersRequest {
            organization_id: ORG.into(),
            page_size: 10,
            page_token: "not-a-real-token".into(),
        })
        .await
        .fails();
    assert_invalid(&status, "page_token");
    // Above 1000 is lowered, not refused.
    let huge = orgs
        .list_users(ListUsersRequest {
            organization_id: ORG.into(),
            page_size: 5000,
            page_token: String::new(),
        })
        .await
        .must();
    assert!(huge.users.is_empty() && huge.next_page_token.is_empty());
}

async fn delete_user_removes_assignments_and_memberships(server: TestServer) {
    server.seed().await;
    server
        .assign_user_roles(ORG, "alice", &["reader", "writer"])
        .await;
    server.assign_user_roles(ORG, "bob", &["reader"]).await;
    let membership = server
        .create_membership(ORG, "ws1", "alice", WorkspaceRole::Editor)
        .await;
    server
        .assign_membership_roles(ORG, "ws1", &membership.membership_id, &["ws-extra"])
        .await;

    server
        .orgs(&writer(ORG))
        .delete_user(DeleteUserRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
        })
        .await
        .must();

    let status = server
        .orgs(&reader(ORG))
        .get_user(GetUserRequest {
            organization_id: ORG.into(),
            user_id: "alice".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/alice");

    let members = server
        .roles(&reader(ORG))
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            ..Default::default()
        })
        .await
        .must();
    assert_eq!(
        members.user_ids,
        ["bob"],
        "alice's assignment is gone, bob's stays"
    );

    let memberships = server
        .members(&reader(ORG))
        .list_workspace_memberships(ListWorkspaceMembershipsRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            ..Default::default()
        })
        .await
        .must();
    assert!(
        memberships.memberships.is_empty(),
        "alice's membership is gone"
    );
    let status = server
        .members(&reader(ORG))
        .get_workspace_membership(GetWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            membership_id: membership.membership_id.clone(),
        })
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound);

    // Only alice held `writer`: it now deletes without force.
    server
        .roles(&writer(ORG))
        .delete_role(DeleteRoleRequest {
            organization_id: ORG.into(),
            role_id: "writer".into(),
            force: false,
        })
        .await
        .must();

    // A new user with the same id starts from nothing.
    server.create_user(ORG, "alice", "alice@example.com").await;
    assert!(server.user_role_ids(ORG, "alice").await.is_empty());
    let decision = server.check(ORG, "alice", "workspace.read", "ws1").await;
    assert!(!decision.allowed, "no membership survives: {decision:?}");

    let status = server
        .orgs(&writer(ORG))
        .delete_user(DeleteUserRequest {
            organization_id: ORG.into(),
            user_id: "ghost".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_USER, "organizations/acme/users/ghost");
}

async fn workspaces_create_get_list_and_duplicates(server: TestServer) {
    server.create_org(ORG).await;
    let mut orgs = server.orgs(&writer(ORG));
    let create = |id: &str| CreateWorkspaceRequest {
        organization_id: ORG.into(),
        workspace: Some(Workspace {
            workspace_id: id.into(),
            display_name: format!("W {id}"),
            ..Default::default()
        }),
    };
    let created = orgs.create_workspace(create("ws1")).await.must();
    assert_eq!(created.organization_id, ORG);
    assert_eq!(created.workspace_id, "ws1");
    assert_eq!(created.display_name, "W ws1");
    assert!(created.create_time.is_some());
    let fetched = orgs
        .get_workspace(GetWorkspaceRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
        })
        .await
        .must();
    assert_eq!(fetched, created);

    let generated = orgs.create_workspace(create("")).await.must();
    assert_uuid_v7(&generated.workspace_id);

    let status = orgs.create_workspace(create("ws1")).await.fails();
    let details = assert_already_exists(&status, "WORKSPACE_EXISTS", T_WORKSPACE);
    assert_eq!(
        details.resource_info().map(|r| r.resource_name.as_str()),
        Some("organizations/acme/workspaces/ws1")
    );
    let status = orgs.create_workspace(create("bad id")).await.fails();
    assert_invalid(&status, "workspace.workspace_id");

    for id in ["ws2", "ws3", "ws4"] {
        orgs.create_workspace(create(id)).await.must();
    }
    let (listed, pages) = collect_pages(|page_token| {
        let mut orgs = orgs.clone();
        async move {
            let page = orgs
                .list_workspaces(ListWorkspacesRequest {
                    organization_id: ORG.into(),
                    page_size: 2,
                    page_token,
                })
                .await
                .must();
            assert!(page.workspaces.len() <= 2);
            (page.workspaces, page.next_page_token)
        }
    })
    .await;
    assert!(pages >= 3, "5 workspaces in pages of 2 take 3 pages");
    let listed: Vec<_> = listed.into_iter().map(|w| w.workspace_id).collect();
    let expected = sorted([
        generated.workspace_id.clone(),
        "ws1".into(),
        "ws2".into(),
        "ws3".into(),
        "ws4".into(),
    ]);
    assert_eq!(listed, expected, "every workspace once, ordered by id");

    let status = orgs
        .get_workspace(GetWorkspaceRequest {
            organization_id: ORG.into(),
            workspace_id: "nope".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_WORKSPACE, "organizations/acme/workspaces/nope");
}

async fn delete_workspace_removes_memberships(server: TestServer) {
    server.seed().await;
    server.create_workspace(ORG, "ws2").await;
    let doomed = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Owner)
        .await;
    server
        .assign_membership_roles(ORG, "ws1", &doomed.membership_id, &["ws-extra"])
        .await;
    let survivor = server
        .create_membership(ORG, "ws2", "bob", WorkspaceRole::Viewer)
        .await;

    server
        .orgs(&writer(ORG))
        .delete_workspace(DeleteWorkspaceRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
        })
        .await
        .must();

    let status = server
        .orgs(&reader(ORG))
        .get_workspace(GetWorkspaceRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
        })
        .await
        .fails();
    assert_not_found(&status, T_WORKSPACE, "organizations/acme/workspaces/ws1");
    let status = server
        .members(&reader(ORG))
        .get_workspace_membership(GetWorkspaceMembershipRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            membership_id: doomed.membership_id.clone(),
        })
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound);

    // The other workspace's membership is untouched.
    let kept = server.membership(ORG, "ws2", &survivor.membership_id).await;
    assert_eq!(kept.role, WorkspaceRole::Viewer as i32);

    // Recreating the workspace does not bring the membership back.
    server.create_workspace(ORG, "ws1").await;
    let memberships = server
        .members(&reader(ORG))
        .list_workspace_memberships(ListWorkspaceMembershipsRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            ..Default::default()
        })
        .await
        .must();
    assert!(memberships.memberships.is_empty());
    let decision = server.check(ORG, "bob", "workspace.admin", "ws1").await;
    assert!(
        !decision.allowed,
        "the owner membership is gone: {decision:?}"
    );
    // No holder of the workspace role is left: it deletes without force.
    server
        .roles(&writer(ORG))
        .delete_role(DeleteRoleRequest {
            organization_id: ORG.into(),
            role_id: "ws-extra".into(),
            force: false,
        })
        .await
        .must();
}
