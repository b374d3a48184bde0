//! RoleService: role CRUD, validation, update masks, etags and deletion.

#[macro_use]
mod common;

use common::*;
use prost_types::FieldMask;
use rolekeeper::pb::v1::{
    CreateRoleRequest, DeleteRoleRequest, GetRoleRequest, ListRoleMembersRequest, ListRolesRequest,
    Permission, Role, RoleScope, UpdateRoleRequest, WorkspaceRole,
};
use tonic::Code;

backend_tests!(
    roles_create_get_delete,
    role_permissions_are_validated,
    role_name_length_limit,
    list_roles_filters_by_scope_and_paginates,
    update_role_with_masks,
    update_role_cannot_change_scope,
    update_role_checks_etag,
    delete_held_organization_role_needs_force,
    delete_workspace_roles_in_use,
);

fn get(id: &str) -> GetRoleRequest {
    GetRoleRequest {
        organization_id: ORG.into(),
        role_id: id.into(),
    }
}

fn delete(id: &str, force: bool) -> DeleteRoleRequest {
    DeleteRoleRequest {
        organization_id: ORG.into(),
        role_id: id.into(),
        force,
    }
}

fn create(role: Role) -> CreateRoleRequest {
    CreateRoleRequest {
        organization_id: ORG.into(),
        role: Some(role),
    }
}

fn update(role: Role, paths: &[&str]) -> UpdateRoleRequest {
    UpdateRoleRequest {
        role: Some(Role {
            organization_id: ORG.into(),
            ..role
        }),
        update_mask: Some(FieldMask {
            paths: strings(paths),
        }),
    }
}

fn permission_names(role: &Role) -> Vec<(String, Option<bool>)> {
    let mut names: Vec<_> = role
        .permissions
        .iter()
        .map(|p| (p.name.clone(), p.access))
        .collect();
    names.sort();
    names
}

async fn roles_create_get_delete(server: TestServer) {
    server.create_org(ORG).await;
    let mut roles = server.roles(&writer(ORG));
    let input = role(
        "auditor",
        RoleScope::Organization,
        &[("audit.read", true), ("audit.purge", false)],
    );
    let created = roles.create_role(create(input.clone())).await.must();
    assert_eq!(created.organization_id, ORG);
    assert_eq!(created.role_id, "auditor");
    assert_eq!(created.name, input.name);
    assert_eq!(created.description, input.description);
    assert_eq!(created.scope, RoleScope::Organization as i32);
    assert_eq!(permission_names(&created), permission_names(&input));
    let purge = created
        .permissions
        .iter()
        .find(|p| p.name == "audit.purge")
        .expect("audit.purge kept");
    assert_eq!(purge.description, "audit.purge (deny)");
    assert!(!created.etag.is_empty());
    assert!(created.create_time.is_some() && created.update_time.is_some());

    let fetched = server
        .roles(&reader(ORG))
        .get_role(get("auditor"))
        .await
        .must();
    assert_eq!(fetched, created);

    // Unspecified scope means organization; an empty id is generated.
    let generated = roles
        .create_role(create(Role {
            role_id: String::new(),
            scope: RoleScope::Unspecified as i32,
            ..role("x", RoleScope::Unspecified, &[("a.b", true)])
        }))
        .await
        .must();
    assert_uuid_v7(&generated.role_id);
    assert_eq!(generated.scope, RoleScope::Organization as i32);

    let status = roles.create_role(create(input)).await.fails();
    let details = assert_already_exists(&status, "ROLE_EXISTS", T_ROLE);
    assert_eq!(
        details.resource_info().map(|r| r.resource_name.as_str()),
        Some("organizations/acme/roles/auditor")
    );
    let status = roles
        .create_role(create(role("bad id", RoleScope::Organization, &[])))
        .await
        .fails();
    assert_invalid(&status, "role.role_id");

    roles.delete_role(delete("auditor", false)).await.must();
    let status = roles.get_role(get("auditor")).await.fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/auditor");
    let status = roles.delete_role(delete("auditor", false)).await.fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/auditor");
}

async fn role_permissions_are_validated(server: TestServer) {
    server.create_org(ORG).await;
    let mut roles = server.roles(&writer(ORG));
    let with_permissions = |permissions: Vec<Permission>| {
        create(Role {
            permissions,
            ..role("r1", RoleScope::Organization, &[])
        })
    };

    // A missing `access` never silently becomes a deny.
    let status = roles
        .create_role(with_permissions(vec![
            perm("docs.read", true),
            Permission {
                name: "docs.write".into(),
                description: String::new(),
                access: None,
            },
        ]))
        .await
        .fails();
    assert_invalid(&status, "role.permissions[1].access");

    let longest = format!("a{}", "b".repeat(127));
    let too_long = format!("a{}", "b".repeat(128));
    for bad in [
        "Docs.read",
        "9docs",
        "docs read",
        "",
        "_docs",
        "docs/read",
        too_long.as_str(),
    ] {
        let status = roles
            .create_role(with_permissions(vec![perm(bad, true)]))
            .await
            .fails();
        assert_invalid_prefix(&status, "role.permissions[0].name");
    }

    let status = roles
        .create_role(with_permissions(vec![
            perm("docs.read", true),
            perm("docs.write", true),
            perm("docs.read", false),
        ]))
        .await
        .fails();
    assert_invalid_prefix(&status, "role.permissions[2]");

    let status = roles.get_role(get("r1")).await.fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/r1");

    let ok = roles
        .create_role(with_permissions(vec![
            perm(&longest, true),
            perm("a0_.:-z", false),
            perm("x", true),
        ]))
        .await
        .must();
    assert_eq!(ok.permissions.len(), 3);
}

async fn role_name_length_limit(server: TestServer) {
    server.create_org(ORG).await;
    let mut roles = server.roles(&writer(ORG));
    let named = |id: &str, name: String| {
        create(Role {
            name,
            ..role(id, RoleScope::Organization, &[("a", true)])
        })
    };
    let created = roles
        .create_role(named("long", "n".repeat(3000)))
        .await
        .must();
    assert_eq!(created.name.chars().count(), 3000);
    let status = roles
        .create_role(named("longer", "n".repeat(3001)))
        .await
        .fails();
    assert_invalid(&status, "role.name");
    let status = roles
        .create_role(named("empty", String::new()))
        .await
        .fails();
    assert_invalid(&status, "role.name");

    // The limit holds on update too, and the role keeps its name.
    let status = roles
        .update_role(update(
            Role {
                role_id: "long".into(),
                name: "m".repeat(3001),
                ..Default::default()
            },
            &["name"],
        ))
        .await
        .fails();
    assert_invalid(&status, "role.name");
    let fetched = roles.get_role(get("long")).await.must();
    assert_eq!(fetched.name, "n".repeat(3000));
}

async fn list_roles_filters_by_scope_and_paginates(server: TestServer) {
    server.seed().await;
    let mut roles = server.roles(&reader(ORG));
    let list = |scope: RoleScope, page_size: i32, page_token: String| ListRolesRequest {
        organization_id: ORG.into(),
        page_size,
        page_token,
        scope: scope as i32,
    };
    let ids = |roles: &[Role]| roles.iter().map(|r| r.role_id.clone()).collect::<Vec<_>>();

    let all = roles
        .list_roles(list(RoleScope::Unspecified, 0, String::new()))
        .await
        .must();
    assert_eq!(
        ids(&all.roles),
        [
            "blocker", "editor", "owner", "reader", "viewer", "writer", "ws-extra"
        ]
    );
    let org = roles
        .list_roles(list(RoleScope::Organization, 0, String::new()))
        .await
        .must();
    assert_eq!(ids(&org.roles), ["blocker", "reader", "writer"]);
    let ws = roles
        .list_roles(list(RoleScope::Workspace, 0, String::new()))
        .await
        .must();
    assert_eq!(ids(&ws.roles), ["editor", "owner", "viewer", "ws-extra"]);

    let (paged, pages) = collect_pages(|page_token| {
        let mut roles = roles.clone();
        async move {
            let page = roles
                .list_roles(list(RoleScope::Unspecified, 2, page_token))
                .await
                .must();
            assert!(page.roles.len() <= 2);
            (page.roles, page.next_page_token)
        }
    })
    .await;
    assert!(
        pages >= 4,
        "7 roles in pages of 2 take 4 pages, got {pages}"
    );
    assert_eq!(ids(&paged), ids(&all.roles));

    let first = roles
        .list_roles(list(RoleScope::Workspace, 1, String::new()))
        .await
        .must();
    assert!(!first.next_page_token.is_empty());
    let status = roles
        .list_roles(list(
            RoleScope::Organization,
            1,
            first.next_page_token.clone(),
        ))
        .await
        .fails();
    assert_invalid(&status, "page_token");
    // The same filter with another page size is fine (AIP-158).
    let next = roles
        .list_roles(list(RoleScope::Workspace, 3, first.next_page_token))
        .await
        .must();
    assert_eq!(ids(&next.roles), ["owner", "viewer", "ws-extra"]);
}

async fn update_role_with_masks(server: TestServer) {
    server.create_org(ORG).await;
    let original = server
        .create_role(
            ORG,
            "r1",
            RoleScope::Organization,
            &[("docs.read", true), ("docs.write", false)],
        )
        .await;
    let mut roles = server.roles(&writer(ORG));

    // Empty mask: every populated field; empty ones are left alone.
    let renamed = roles
        .update_role(update(
            Role {
                role_id: "r1".into(),
                name: "Renamed".into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .must();
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(renamed.description, original.description);
    assert_eq!(permission_names(&renamed), permission_names(&original));
    assert_ne!(renamed.etag, original.etag, "etag changes on update");
    assert_eq!(renamed.create_time, original.create_time);

    // Explicit mask: only the named field, even if others are populated.
    let described = roles
        .update_role(update(
            Role {
                role_id: "r1".into(),
                name: "Ignored".into(),
                description: "New description".into(),
                permissions: vec![perm("ignored.too", true)],
                ..Default::default()
            },
            &["description"],
        ))
        .await
        .must();
    assert_eq!(described.name, "Renamed");
    assert_eq!(described.description, "New description");
    assert_eq!(permission_names(&described), permission_names(&original));
    assert_ne!(described.etag, renamed.etag);

    // A masked field that is empty in the request is cleared.
    let cleared = roles
        .update_role(update(
            Role {
                role_id: "r1".into(),
                ..Default::default()
            },
            &["permissions"],
        ))
        .await
        .must();
    assert!(cleared.permissions.is_empty());
    assert_eq!(cleared.description, "New description");

    // `*` replaces name, description and permissions.
    let replaced = roles
        .update_role(update(
            Role {
                role_id: "r1".into(),
                name: "Full".into(),
                scope: RoleScope::Organization as i32,
                permissions: vec![perm("reports.read", true)],
                ..Default::default()
            },
            &["*"],
        ))
        .await
        .must();
    assert_eq!(replaced.name, "Full");
    assert_eq!(replaced.description, "");
    assert_eq!(
        permission_names(&replaced),
        [("reports.read".to_owned(), Some(true))]
    );
    let fetched = roles.get_role(get("r1")).await.must();
    assert_eq!(fetched, replaced, "GetRole shows the last update");

    // Unknown paths and invalid permissions are refused, changing nothing.
    for paths in [&["display_name"][..], &["name", "etag_and_more"][..]] {
        let status = roles
            .update_role(update(
                Role {
                    role_id: "r1".into(),
                    name: "Nope".into(),
                    ..Default::default()
                },
                paths,
            ))
            .await
            .fails();
        assert_invalid_prefix(&status, "update_mask");
    }
    let status = roles
        .update_role(update(
            Role {
                role_id: "r1".into(),
                permissions: vec![Permission {
                    name: "docs.read".into(),
                    description: String::new(),
                    access: None,
                }],
                ..Default::default()
            },
            &["permissions"],
        ))
        .await
        .fails();
    assert_invalid(&status, "role.permissions[0].access");
    assert_eq!(roles.get_role(get("r1")).await.must(), replaced);

    let status = roles
        .update_role(update(
            Role {
                role_id: "missing".into(),
                name: "x".into(),
                ..Default::default()
            },
            &["name"],
        ))
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/missing");
}

async fn update_role_cannot_change_scope(server: TestServer) {
    server.create_org(ORG).await;
    let original = server
        .create_role(ORG, "r1", RoleScope::Organization, &[("docs.read", true)])
        .await;
    let mut roles = server.roles(&writer(ORG));
    for paths in [&[][..], &["*"][..]] {
        let status = roles
            .update_role(update(
                Role {
                    role_id: "r1".into(),
                    name: "Scope change".into(),
                    scope: RoleScope::Workspace as i32,
                    ..Default::default()
                },
                paths,
            ))
            .await
            .fails();
        assert_invalid_prefix(&status, "role.scope");
    }
    assert_eq!(roles.get_role(get("r1")).await.must(), original);

    // Restating the same scope is fine.
    let same = roles
        .update_role(update(
            Role {
                role_id: "r1".into(),
                name: "Same scope".into(),
                scope: RoleScope::Organization as i32,
                ..Default::default()
            },
            &[],
        ))
        .await
        .must();
    assert_eq!(same.scope, RoleScope::Organization as i32);
    assert_eq!(same.name, "Same scope");
}

async fn update_role_checks_etag(server: TestServer) {
    server.create_org(ORG).await;
    let original = server
        .create_role(ORG, "r1", RoleScope::Organization, &[("docs.read", true)])
        .await;
    let mut roles = server.roles(&writer(ORG));
    let rename = |name: &str, etag: &str| {
        update(
            Role {
                role_id: "r1".into(),
                name: name.into(),
                etag: etag.into(),
                ..Default::default()
            },
            &["name"],
        )
    };

    let first = roles
        .update_role(rename("First", &original.etag))
        .await
        .must();
    assert_ne!(first.etag, original.etag);
    let status = roles
        .update_role(rename("Stale", &original.etag))
        .await
        .fails();
    assert_error(&status, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(
        roles.get_role(get("r1")).await.must(),
        first,
        "stale update changed nothing"
    );

    let second = roles
        .update_role(rename("Second", &first.etag))
        .await
        .must();
    assert_ne!(second.etag, first.etag);
    // Without an etag there is no check.
    let third = roles.update_role(rename("Third", "")).await.must();
    assert_eq!(third.name, "Third");
    assert_ne!(third.etag, second.etag);
}

async fn delete_held_organization_role_needs_force(server: TestServer) {
    server.seed().await;
    server
        .assign_user_roles(ORG, "alice", &["reader", "writer"])
        .await;
    server.assign_user_roles(ORG, "bob", &["reader"]).await;
    let mut roles = server.roles(&writer(ORG));

    let status = roles.delete_role(delete("reader", false)).await.fails();
    let details = assert_precondition(&status, "ROLE_IN_USE");
    let violation = &details.precondition_failure().expect("checked").violations[0];
    assert_eq!(violation.r#type, "ROLE_IN_USE");
    assert_eq!(violation.subject, "organizations/acme/roles/reader");
    assert_eq!(
        server.user_role_ids(ORG, "alice").await,
        ["reader", "writer"]
    );
    roles.get_role(get("reader")).await.must();

    roles.delete_role(delete("reader", true)).await.must();
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["writer"]);
    assert!(server.user_role_ids(ORG, "bob").await.is_empty());
    let status = roles.get_role(get("reader")).await.fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/reader");
    let status = roles
        .list_role_members(ListRoleMembersRequest {
            organization_id: ORG.into(),
            role_id: "reader".into(),
            ..Default::default()
        })
        .await
        .fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/reader");
    let decision = server.check(ORG, "bob", "docs.read", "").await;
    assert!(!decision.allowed, "bob lost docs.read: {decision:?}");
}

async fn delete_workspace_roles_in_use(server: TestServer) {
    server.seed().await;
    let membership = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Viewer)
        .await;
    server
        .assign_membership_roles(ORG, "ws1", &membership.membership_id, &["ws-extra"])
        .await;
    let mut roles = server.roles(&writer(ORG));

    // An assigned workspace role: held, needs force, force removes it.
    let status = roles.delete_role(delete("ws-extra", false)).await.fails();
    assert_precondition(&status, "ROLE_IN_USE");
    let kept = server
        .membership(ORG, "ws1", &membership.membership_id)
        .await;
    assert_eq!(kept.roles.len(), 1);
    roles.delete_role(delete("ws-extra", true)).await.must();
    let after = server
        .membership(ORG, "ws1", &membership.membership_id)
        .await;
    assert!(
        after.roles.is_empty(),
        "force removed ws-extra from the membership"
    );
    assert_eq!(after.role, WorkspaceRole::Viewer as i32);

    // A seeded role used as a base role is not deletable, even with force.
    for force in [false, true] {
        let status = roles.delete_role(delete("viewer", force)).await.fails();
        assert_precondition(&status, "ROLE_IN_USE");
    }
    roles.get_role(get("viewer")).await.must();
    let decision = server.check(ORG, "bob", "workspace.read", "ws1").await;
    assert!(
        decision.allowed,
        "the viewer base role still applies: {decision:?}"
    );

    // A seeded role nobody uses is an ordinary role.
    roles.delete_role(delete("owner", false)).await.must();
    let status = roles.get_role(get("owner")).await.fails();
    assert_not_found(&status, T_ROLE, "organizations/acme/roles/owner");
}
