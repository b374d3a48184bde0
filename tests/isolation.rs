//! Tenant isolation over every RPC (AIP-211).
//!
//! Organization A ([`ORG`]) is seeded with users, roles, a workspace, a
//! membership, a finished and a pending operation. Then every RPC of the
//! four served services is called by principals that may not do what they
//! ask: writers of another organization (or of none), and a read-only
//! caller of A for mutations. Each call is made against A's real resources,
//! against nonexistent ones, against a nonexistent organization and with
//! invalid input, and must fail with `PERMISSION_DENIED` and the right
//! `ErrorInfo` reason: never data, never `NOT_FOUND`, never
//! `INVALID_ARGUMENT`.
//!
//! The table is complete by construction: [`the_matrix_covers_every_served_rpc`]
//! compares its keys with the methods in `rolekeeper::pb::FILE_DESCRIPTOR_SET`,
//! so a new RPC fails the test until it has a row here.

#[macro_use]
mod common;

use common::*;
use prost::Message;
use rolekeeper::pb::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest,
    Operation, WaitOperationRequest, operations_client::OperationsClient,
};
use rolekeeper::pb::v1::{
    self, AssignUserRolesRequest, RoleScope, WorkspaceRole,
    organization_service_client::OrganizationServiceClient, role_service_client::RoleServiceClient,
    user_ref, workspace_membership_service_client::WorkspaceMembershipServiceClient,
};
use std::{collections::BTreeSet, future::Future, pin::Pin};
use tonic::{Code, Status};
use tonic_types::StatusExt;

backend_tests!(
    every_rpc_denies_callers_without_access,
    foreign_callers_do_not_see_other_organizations_operations,
    foreign_token_works_on_its_own_organization,
    page_tokens_grant_nothing_across_organizations,
    scope_is_checked_before_the_request_is_read,
    update_role_checks_the_scope_before_reading_the_role,
);

/// The services whose every RPC must be in [`table`].
const SERVICES: [&str; 4] = [
    "rolekeeper.v1.OrganizationService",
    "rolekeeper.v1.RoleService",
    "rolekeeper.v1.WorkspaceMembershipService",
    "google.longrunning.Operations",
];

const READ: &str = "organization:read";
const WRITE: &str = "organization:write";

// ----- the fixture -----

/// What [`seed`] created beyond [`TestServer::seed`].
struct Fixture {
    /// alice's membership of `ws1` (base role viewer).
    membership: String,
    /// A finished AssignUserRoles of alice in A.
    done_op: String,
    /// An AssignUserRoles of bob in A that stays pending (no workers).
    pending_op: String,
    /// A finished operation of organization B.
    foreign_op: String,
}

/// Seeds A (the common fixture plus a membership and operations) and B
/// ([`OTHER_ORG`] with user `zed` and role `globex-reader`), then restarts the
/// server without workers so that a last operation of A stays pending.
async fn seed(server: &mut TestServer) -> Fixture {
    server.seed().await;
    server.create_org(OTHER_ORG).await;
    server.create_user(OTHER_ORG, "zed", "").await;
    server
        .create_role(
            OTHER_ORG,
            "globex-reader",
            RoleScope::Organization,
            &[("docs.read", true)],
        )
        .await;
    let membership = server
        .create_membership(ORG, "ws1", "alice", WorkspaceRole::Viewer)
        .await
        .membership_id;
    let done_op = server
        .assign_user_roles(ORG, "alice", &["reader"])
        .await
        .name;
    let foreign_op = server
        .assign_user_roles(OTHER_ORG, "zed", &["globex-reader"])
        .await
        .name;
    server.restart(0).await;
    let pending = server
        .roles(&admin())
        .assign_user_roles(AssignUserRolesRequest {
            organization_id: ORG.into(),
            user_id: "bob".into(),
            role_ids: strings(&["writer"]),
            request_id: String::new(),
        })
        .await
        .must();
    assert!(!pending.done, "without workers the operation stays pending");
    Fixture {
        membership,
        done_op,
        pending_op: pending.name,
        foreign_op,
    }
}

/// Everything the denied calls could have touched is as [`seed`] left it.
async fn assert_fixture_intact(server: &TestServer, fixture: &Fixture) {
    let admin = admin();
    let organizations = server
        .orgs(&admin)
        .list_organizations(v1::ListOrganizationsRequest::default())
        .await
        .must()
        .organizations;
    assert_eq!(
        sorted(organizations.iter().map(|o| o.organization_id.clone())),
        sorted([ORG, OTHER_ORG]),
        "organizations"
    );
    let users = server
        .orgs(&admin)
        .list_users(v1::ListUsersRequest {
            organization_id: ORG.into(),
            ..Default::default()
        })
        .await
        .must()
        .users;
    assert_eq!(
        sorted(users.iter().map(|u| u.user_id.clone())),
        sorted(["alice", "bob", "carol"]),
        "users of A"
    );
    let workspaces = server
        .orgs(&admin)
        .list_workspaces(v1::ListWorkspacesRequest {
            organization_id: ORG.into(),
            ..Default::default()
        })
        .await
        .must()
        .workspaces;
    assert_eq!(workspaces.len(), 1, "workspaces of A: {workspaces:?}");
    let roles = server
        .roles(&admin)
        .list_roles(v1::ListRolesRequest {
            organization_id: ORG.into(),
            ..Default::default()
        })
        .await
        .must()
        .roles;
    assert_eq!(
        sorted(roles.iter().map(|r| r.role_id.clone())),
        sorted([
            "blocker", "editor", "owner", "reader", "viewer", "writer", "ws-extra"
        ]),
        "roles of A"
    );
    let reader_role = roles
        .iter()
        .find(|r| r.role_id == "reader")
        .expect("role reader");
    assert_eq!(
        reader_role.name, "Role reader",
        "role reader was not renamed"
    );
    assert_eq!(server.user_role_ids(ORG, "alice").await, ["reader"]);
    assert!(server.user_role_ids(ORG, "bob").await.is_empty());
    let membership = server.membership(ORG, "ws1", &fixture.membership).await;
    assert_eq!(membership.role, WorkspaceRole::Viewer as i32, "base role");
    assert!(membership.roles.is_empty(), "membership roles");
    let pending = get_operation(server, &fixture.pending_op).await;
    assert!(
        !pending.done,
        "the pending operation was not run or cancelled"
    );
    assert!(
        !op_metadata(&pending).cancel_requested,
        "nobody requested a cancellation"
    );
    assert_op_succeeded(&get_operation(server, &fixture.done_op).await);
}

async fn get_operation(server: &TestServer, name: &str) -> Operation {
    server
        .ops(&admin())
        .get_operation(GetOperationRequest { name: name.into() })
        .await
        .must()
}

// ----- requests -----

/// The ids and inputs a probe builds its request from.
#[derive(Clone, Debug)]
struct Ids {
    variant: Variant,
    org: String,
    user: String,
    email: String,
    workspace: String,
    /// An organization-scope role.
    role: String,
    /// Role ids for user assignments.
    role_ids: Vec<String>,
    /// Role ids for membership assignments.
    workspace_role_ids: Vec<String>,
    membership: String,
    operation: String,
    /// Whether `operation` names an existing operation of A.
    operation_of_a: bool,
    /// `ListOperationsRequest.name`.
    operations_collection: String,
    /// A ListOperations filter naming a target in `org`.
    filter: String,
    permission: String,
    page_size: i32,
    page_token: String,
    request_id: String,
    role_scope: i32,
    base_role: i32,
    update_mask: Vec<String>,
    timeout_seconds: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// A's real resources (and its finished operation).
    Existing,
    /// A's real resources and its pending operation.
    Pending,
    /// Resources of A that do not exist.
    Missing,
    /// An organization that does not exist.
    MissingOrg,
    /// Malformed input about A: bad ids, negative page sizes, bad tokens...
    Invalid,
}

fn variants(fixture: &Fixture) -> Vec<Ids> {
    let target = |org: &str, user: &str| format!(r#"target="organizations/{org}/users/{user}""#);
    let existing = Ids {
        variant: Variant::Existing,
        org: ORG.into(),
        user: "alice".into(),
        email: "alice@example.com".into(),
        workspace: "ws1".into(),
        role: "reader".into(),
        role_ids: strings(&["reader"]),
        workspace_role_ids: strings(&["ws-extra"]),
        membership: fixture.membership.clone(),
        operation: fixture.done_op.clone(),
        operation_of_a: true,
        operations_collection: String::new(),
        filter: target(ORG, "alice"),
        permission: "docs.read".into(),
        page_size: 10,
        page_token: String::new(),
        request_id: String::new(),
        role_scope: RoleScope::Organization as i32,
        base_role: WorkspaceRole::Owner as i32,
        update_mask: strings(&["name", "description"]),
        timeout_seconds: 1,
    };
    let pending = Ids {
        variant: Variant::Pending,
        operation: fixture.pending_op.clone(),
        filter: format!("done=false AND {}", target(ORG, "bob")),
        ..existing.clone()
    };
    let missing = Ids {
        variant: Variant::Missing,
        user: "ghost".into(),
        email: "ghost@example.com".into(),
        workspace: "no-such-workspace".into(),
        role: "no-such-role".into(),
        role_ids: strings(&["no-such-role"]),
        workspace_role_ids: strings(&["no-such-role"]),
        membership: uuid::Uuid::new_v4().to_string(),
        operation: format!("operations/{}", uuid::Uuid::now_v7()),
        operation_of_a: false,
        filter: target(ORG, "ghost"),
        request_id: request_id(),
        ..existing.clone()
    };
    let missing_org = Ids {
        variant: Variant::MissingOrg,
        org: "no-such-org".into(),
        filter: target("no-such-org", "alice"),
        ..missing.clone()
    };
    let invalid = Ids {
        variant: Variant::Invalid,
        org: ORG.into(),
        user: "not a valid id!".into(),
        email: "not-an-email".into(),
        workspace: String::new(),
        role: "r".repeat(64),
        role_ids: strings(&["dup", "dup", ""]),
        workspace_role_ids: Vec::new(),
        membership: "not-a-uuid".into(),
        operation: "operations/not-a-uuid".into(),
        operation_of_a: false,
        operations_collection: "not/a/collection".into(),
        // The target is well-formed (it names A), everything around it is not.
        filter: target(ORG, "alice"),
        permission: "Not A Permission".into(),
        page_size: -5,
        page_token: "not a page token!".into(),
        request_id: "not-a-uuid".into(),
        role_scope: 99,
        base_role: WorkspaceRole::Unspecified as i32,
        update_mask: strings(&["no_such_field", "scope"]),
        timeout_seconds: -1,
    };
    vec![existing, pending, missing, missing_org, invalid]
}

fn user_refs(ids: &Ids) -> Vec<v1::UserRef> {
    vec![
        v1::UserRef {
            user: Some(user_ref::User::UserId(ids.user.clone())),
        },
        v1::UserRef {
            user: Some(user_ref::User::Email(ids.email.clone())),
        },
    ]
}

fn role_input(ids: &Ids) -> v1::Role {
    v1::Role {
        organization_id: ids.org.clone(),
        role_id: ids.role.clone(),
        name: "Hijacked".into(),
        description: "written by a caller without access".into(),
        scope: ids.role_scope,
        permissions: vec![perm(&ids.permission, true)],
        ..Default::default()
    }
}

// ----- the table -----

/// One client per service, all with the same token.
struct Clients {
    orgs: OrganizationServiceClient<Authed>,
    roles: RoleServiceClient<Authed>,
    members: WorkspaceMembershipServiceClient<Authed>,
    ops: OperationsClient<Authed>,
}

impl Clients {
    fn new(server: &TestServer, token: &str) -> Self {
        Self {
            orgs: server.orgs(token),
            roles: server.roles(token),
            members: server.members(token),
            ops: server.ops(token),
        }
    }
}

/// A successful call's response (printed if it should not have succeeded),
/// or its status.
type Outcome = Result<String, Status>;
type Call = Pin<Box<dyn Future<Output = Outcome> + Send>>;
/// Calls one RPC with a request built from [`Ids`].
type Probe = fn(&Clients, &Ids) -> Call;

/// `probe!(client.method, |ids| request)`: a [`Probe`] of one RPC.
macro_rules! probe {
    ($client:ident . $method:ident, |$ids:ident| $request:expr) => {{
        fn call(clients: &Clients, $ids: &Ids) -> Call {
            let mut client = clients.$client.clone();
            let request = $request;
            Box::pin(async move {
                client
                    .$method(request)
                    .await
                    .map(|response| format!("{:?}", response.into_inner()))
            })
        }
        call as Probe
    }};
}

/// What an RPC requires.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// The `admin` scope.
    Admin,
    /// `organization:read` on the organization the request names.
    Read,
    /// `organization:write` on the organization the request names.
    Write,
    /// `organization:read` on the organization of the named operation.
    ReadOperation,
    /// `organization:write` on the organization of the named operation.
    WriteOperation,
}

struct Row {
    rpc: &'static str,
    access: Access,
    probe: Probe,
}

fn row(rpc: &'static str, access: Access, probe: Probe) -> Row {
    Row { rpc, access, probe }
}

/// Every RPC of [`SERVICES`], keyed `package.Service/Method`.
fn table() -> Vec<Row> {
    use Access::*;
    vec![
        // rolekeeper.v1.OrganizationService
        row(
            "rolekeeper.v1.OrganizationService/CreateOrganization",
            Admin,
            probe!(orgs.create_organization, |i| {
                v1::CreateOrganizationRequest {
                    organization: Some(v1::Organization {
                        organization_id: i.org.clone(),
                        display_name: "Hijacked".into(),
                        create_time: None,
                    }),
                }
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/GetOrganization",
            Read,
            probe!(orgs.get_organization, |i| v1::GetOrganizationRequest {
                organization_id: i.org.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/ListOrganizations",
            Admin,
            probe!(orgs.list_organizations, |i| v1::ListOrganizationsRequest {
                page_size: i.page_size,
                page_token: i.page_token.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/CreateUser",
            Write,
            probe!(orgs.create_user, |i| v1::CreateUserRequest {
                organization_id: i.org.clone(),
                user: Some(v1::User {
                    user_id: i.user.clone(),
                    email: i.email.clone(),
                    display_name: "Intruder".into(),
                    ..Default::default()
                }),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/GetUser",
            Read,
            probe!(orgs.get_user, |i| v1::GetUserRequest {
                organization_id: i.org.clone(),
                user_id: i.user.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/ListUsers",
            Read,
            probe!(orgs.list_users, |i| v1::ListUsersRequest {
                organization_id: i.org.clone(),
                page_size: i.page_size,
                page_token: i.page_token.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/DeleteUser",
            Write,
            probe!(orgs.delete_user, |i| v1::DeleteUserRequest {
                organization_id: i.org.clone(),
                user_id: i.user.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/CreateWorkspace",
            Write,
            probe!(orgs.create_workspace, |i| v1::CreateWorkspaceRequest {
                organization_id: i.org.clone(),
                workspace: Some(v1::Workspace {
                    workspace_id: i.workspace.clone(),
                    display_name: "Hijacked".into(),
                    ..Default::default()
                }),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/GetWorkspace",
            Read,
            probe!(orgs.get_workspace, |i| v1::GetWorkspaceRequest {
                organization_id: i.org.clone(),
                workspace_id: i.workspace.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/ListWorkspaces",
            Read,
            probe!(orgs.list_workspaces, |i| v1::ListWorkspacesRequest {
                organization_id: i.org.clone(),
                page_size: i.page_size,
                page_token: i.page_token.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.OrganizationService/DeleteWorkspace",
            Write,
            probe!(orgs.delete_workspace, |i| v1::DeleteWorkspaceRequest {
                organization_id: i.org.clone(),
                workspace_id: i.workspace.clone(),
            }),
        ),
        // rolekeeper.v1.RoleService
        row(
            "rolekeeper.v1.RoleService/CreateRole",
            Write,
            probe!(roles.create_role, |i| v1::CreateRoleRequest {
                organization_id: i.org.clone(),
                role: Some(role_input(i)),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/GetRole",
            Read,
            probe!(roles.get_role, |i| v1::GetRoleRequest {
                organization_id: i.org.clone(),
                role_id: i.role.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/ListRoles",
            Read,
            probe!(roles.list_roles, |i| v1::ListRolesRequest {
                organization_id: i.org.clone(),
                page_size: i.page_size,
                page_token: i.page_token.clone(),
                scope: i.role_scope,
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/UpdateRole",
            Write,
            probe!(roles.update_role, |i| v1::UpdateRoleRequest {
                role: Some(role_input(i)),
                update_mask: Some(prost_types::FieldMask {
                    paths: i.update_mask.clone(),
                }),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/DeleteRole",
            Write,
            probe!(roles.delete_role, |i| v1::DeleteRoleRequest {
                organization_id: i.org.clone(),
                role_id: i.role.clone(),
                force: true,
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/AssignUserRoles",
            Write,
            probe!(roles.assign_user_roles, |i| v1::AssignUserRolesRequest {
                organization_id: i.org.clone(),
                user_id: i.user.clone(),
                role_ids: i.role_ids.clone(),
                request_id: i.request_id.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/RevokeUserRoles",
            Write,
            probe!(roles.revoke_user_roles, |i| v1::RevokeUserRolesRequest {
                organization_id: i.org.clone(),
                user_id: i.user.clone(),
                role_ids: i.role_ids.clone(),
                request_id: i.request_id.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/ListUserRoles",
            Read,
            probe!(roles.list_user_roles, |i| v1::ListUserRolesRequest {
                organization_id: i.org.clone(),
                user_id: i.user.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/AddRoleMembers",
            Write,
            probe!(roles.add_role_members, |i| v1::AddRoleMembersRequest {
                organization_id: i.org.clone(),
                role_id: i.role.clone(),
                users: user_refs(i),
                request_id: i.request_id.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/RemoveRoleMembers",
            Write,
            probe!(roles.remove_role_members, |i| {
                v1::RemoveRoleMembersRequest {
                    organization_id: i.org.clone(),
                    role_id: i.role.clone(),
                    users: user_refs(i),
                    request_id: i.request_id.clone(),
                }
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/ListRoleMembers",
            Read,
            probe!(roles.list_role_members, |i| v1::ListRoleMembersRequest {
                organization_id: i.org.clone(),
                role_id: i.role.clone(),
                page_size: i.page_size,
                page_token: i.page_token.clone(),
            }),
        ),
        row(
            "rolekeeper.v1.RoleService/CheckPermission",
            Read,
            probe!(roles.check_permission, |i| v1::CheckPermissionRequest {
                organization_id: i.org.clone(),
                user_id: i.user.clone(),
                permission: i.permission.clone(),
                workspace_id: i.workspace.clone(),
            }),
        ),
        // rolekeeper.v1.WorkspaceMembershipService
        row(
            "rolekeeper.v1.WorkspaceMembershipService/CreateWorkspaceMembership",
            Write,
            probe!(members.create_workspace_membership, |i| {
                v1::CreateWorkspaceMembershipRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    user_id: i.user.clone(),
                    role: i.base_role,
                }
            }),
        ),
        row(
            "rolekeeper.v1.WorkspaceMembershipService/GetWorkspaceMembership",
            Read,
            probe!(members.get_workspace_membership, |i| {
                v1::GetWorkspaceMembershipRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    membership_id: i.membership.clone(),
                }
            }),
        ),
        row(
            "rolekeeper.v1.WorkspaceMembershipService/ListWorkspaceMemberships",
            Read,
            probe!(members.list_workspace_memberships, |i| {
                v1::ListWorkspaceMembershipsRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    page_size: i.page_size,
                    page_token: i.page_token.clone(),
                    user_id: i.user.clone(),
                }
            }),
        ),
        row(
            "rolekeeper.v1.WorkspaceMembershipService/UpdateWorkspaceMembership",
            Write,
            probe!(members.update_workspace_membership, |i| {
                v1::UpdateWorkspaceMembershipRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    membership_id: i.membership.clone(),
                    role: i.base_role,
                }
            }),
        ),
        row(
            "rolekeeper.v1.WorkspaceMembershipService/DeleteWorkspaceMembership",
            Write,
            probe!(members.delete_workspace_membership, |i| {
                v1::DeleteWorkspaceMembershipRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    membership_id: i.membership.clone(),
                }
            }),
        ),
        row(
            "rolekeeper.v1.WorkspaceMembershipService/AssignMembershipRoles",
            Write,
            probe!(members.assign_membership_roles, |i| {
                v1::AssignMembershipRolesRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    membership_id: i.membership.clone(),
                    role_ids: i.workspace_role_ids.clone(),
                    request_id: i.request_id.clone(),
                }
            }),
        ),
        row(
            "rolekeeper.v1.WorkspaceMembershipService/RevokeMembershipRoles",
            Write,
            probe!(members.revoke_membership_roles, |i| {
                v1::RevokeMembershipRolesRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    membership_id: i.membership.clone(),
                    role_ids: i.workspace_role_ids.clone(),
                    request_id: i.request_id.clone(),
                }
            }),
        ),
        // google.longrunning.Operations
        row(
            "google.longrunning.Operations/ListOperations",
            Read,
            probe!(ops.list_operations, |i| ListOperationsRequest {
                name: i.operations_collection.clone(),
                filter: i.filter.clone(),
                page_size: i.page_size,
                page_token: i.page_token.clone(),
            }),
        ),
        row(
            "google.longrunning.Operations/GetOperation",
            ReadOperation,
            probe!(ops.get_operation, |i| GetOperationRequest {
                name: i.operation.clone(),
            }),
        ),
        row(
            "google.longrunning.Operations/DeleteOperation",
            WriteOperation,
            probe!(ops.delete_operation, |i| DeleteOperationRequest {
                name: i.operation.clone(),
            }),
        ),
        row(
            "google.longrunning.Operations/CancelOperation",
            WriteOperation,
            probe!(ops.cancel_operation, |i| CancelOperationRequest {
                name: i.operation.clone(),
            }),
        ),
        row(
            "google.longrunning.Operations/WaitOperation",
            ReadOperation,
            probe!(ops.wait_operation, |i| WaitOperationRequest {
                name: i.operation.clone(),
                timeout: Some(prost_types::Duration {
                    seconds: i.timeout_seconds,
                    nanos: 0,
                }),
            }),
        ),
    ]
}

/// `package.Service/Method` of every RPC of [`SERVICES`] in the descriptors
/// the server is built from (and serves through reflection).
fn served_rpcs() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(rolekeeper::pb::FILE_DESCRIPTOR_SET)
        .expect("FILE_DESCRIPTOR_SET decodes");
    let mut rpcs = BTreeSet::new();
    let mut services = BTreeSet::new();
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if SERVICES.contains(&full.as_str()) {
                for method in &service.method {
                    rpcs.insert(format!("{full}/{}", method.name()));
                }
                services.insert(full);
            }
        }
    }
    assert_eq!(
        services,
        SERVICES.iter().map(|s| (*s).to_owned()).collect(),
        "every isolated service is in the descriptor set"
    );
    rpcs
}

#[test]
fn the_matrix_covers_every_served_rpc() {
    let rows = table();
    let keys: BTreeSet<String> = rows.iter().map(|r| r.rpc.to_owned()).collect();
    assert_eq!(keys.len(), rows.len(), "an RPC has two rows");
    let served = served_rpcs();
    let missing: Vec<_> = served.difference(&keys).collect();
    let stale: Vec<_> = keys.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "the isolation table is out of date: RPCs without a row: {missing:?}; \
         rows of RPCs that are not served: {stale:?}"
    );
    assert!(
        served.len() >= 35,
        "the descriptor set lost RPCs: {served:?}"
    );
}

// ----- expectations -----

/// A caller of the matrix.
struct Caller {
    name: &'static str,
    token: String,
    /// The `org` claim.
    org: Option<&'static str>,
    /// The scopes the token really carries (`organization:write` implies read).
    scope: Granted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Granted {
    Nothing,
    Read,
    Write,
}

fn caller(name: &'static str, org: Option<&'static str>, scope: &str, granted: Granted) -> Caller {
    Caller {
        name,
        token: token(&format!("sub-{}", name.replace(' ', "-")), org, scope),
        org,
        scope: granted,
    }
}

fn callers() -> Vec<Caller> {
    vec![
        caller("writer of B", Some(OTHER_ORG), WRITE, Granted::Write),
        caller("writer without organization", None, WRITE, Granted::Write),
        // Ids are case-sensitive: `ACME` is another organization.
        caller(
            "writer of an upper-case twin of A",
            Some("ACME"),
            WRITE,
            Granted::Write,
        ),
        caller(
            "writer of B with a read scope",
            Some(OTHER_ORG),
            "organization:read organization:write",
            Granted::Write,
        ),
        // Near misses of the scope strings grant nothing.
        caller(
            "A with scope look-alikes",
            Some(ORG),
            "Organization:Write organization:writer organization:read,organization:write admin: ADMIN organization:*",
            Granted::Nothing,
        ),
        caller("A without scopes", Some(ORG), "", Granted::Nothing),
        caller("reader of A", Some(ORG), READ, Granted::Read),
        caller("writer of A", Some(ORG), WRITE, Granted::Write),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// PERMISSION_DENIED, ORGANIZATION_FORBIDDEN.
    Forbidden,
    /// PERMISSION_DENIED, SCOPE_MISSING naming the scope.
    ScopeMissing(&'static str),
    /// A positive control: the call succeeds.
    Allowed,
}

/// What `caller` must get from an RPC needing `access` with `ids`; `None`
/// when the caller may make the call (the answer is other tests' business),
/// except for reads of existing resources, which must succeed.
fn expectation(access: Access, caller: &Caller, ids: &Ids) -> Option<Expect> {
    let (write, operation) = match access {
        Access::Admin => return Some(Expect::ScopeMissing("admin")),
        Access::Read => (false, false),
        Access::Write => (true, false),
        Access::ReadOperation => (false, true),
        Access::WriteOperation => (true, true),
    };
    // The scope is checked first, whatever the request names.
    let (needed, scope) = if write {
        (Granted::Write, WRITE)
    } else {
        (Granted::Read, READ)
    };
    if caller.scope < needed {
        return Some(Expect::ScopeMissing(scope));
    }
    let organization = if operation {
        if !ids.operation_of_a {
            // Operation names are global; a foreign caller may learn that a
            // random name does not exist.
            return None;
        }
        ORG
    } else {
        ids.org.as_str()
    };
    if caller.org != Some(organization) {
        Some(Expect::Forbidden)
    } else if !write && ids.variant == Variant::Existing {
        Some(Expect::Allowed)
    } else {
        None
    }
}

fn verdict(outcome: &Outcome, expect: Expect) -> Result<(), String> {
    match (expect, outcome) {
        (Expect::Allowed, Ok(_)) => Ok(()),
        (Expect::Allowed, Err(status)) => Err(format!("expected success, got {}", show(status))),
        (_, Ok(data)) => Err(format!("expected PERMISSION_DENIED, got data: {data}")),
        (Expect::Forbidden, Err(status)) => denial(status, "ORGANIZATION_FORBIDDEN", None),
        (Expect::ScopeMissing(scope), Err(status)) => denial(status, "SCOPE_MISSING", Some(scope)),
    }
}

fn show(status: &Status) -> String {
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default();
    format!("{:?} {reason}: {}", status.code(), status.message())
}

/// Checks a PERMISSION_DENIED with `reason` and, for SCOPE_MISSING, the
/// `required_scope` metadata, plus the request id every error carries.
fn denial(status: &Status, reason: &str, required_scope: Option<&str>) -> Result<(), String> {
    let wanted = format!("PERMISSION_DENIED {reason}");
    if status.code() != Code::PermissionDenied {
        return Err(format!("expected {wanted}, got {}", show(status)));
    }
    let details = status
        .check_error_details()
        .map_err(|err| format!("undecodable error details: {err}"))?;
    let info = details.error_info().ok_or("no ErrorInfo")?;
    if info.reason != reason || info.domain != DOMAIN {
        return Err(format!(
            "expected {wanted}, got reason {} of domain {}",
            info.reason, info.domain
        ));
    }
    if let Some(scope) = required_scope {
        let named = info.metadata.get("required_scope").map(String::as_str);
        if named != Some(scope) {
            return Err(format!("required_scope is {named:?}, expected {scope}"));
        }
    }
    if details
        .request_info()
        .is_none_or(|info| info.request_id.is_empty())
    {
        return Err("no RequestInfo.request_id".into());
    }
    Ok(())
}

// ----- scenarios -----

async fn every_rpc_denies_callers_without_access(mut server: TestServer) {
    let fixture = seed(&mut server).await;
    let variants = variants(&fixture);
    let rows = table();
    let mut failures = Vec::new();
    let (mut denials, mut controls) = (0, 0);
    for caller in callers() {
        let clients = Clients::new(&server, &caller.token);
        for row in &rows {
            for ids in &variants {
                let Some(expect) = expectation(row.access, &caller, ids) else {
                    continue;
                };
                match expect {
                    Expect::Allowed => controls += 1,
                    _ => denials += 1,
                }
                let outcome = (row.probe)(&clients, ids).await;
                if let Err(problem) = verdict(&outcome, expect) {
                    failures.push(format!(
                        "{} as {} on {:?}: {problem}",
                        row.rpc, caller.name, ids.variant
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        denials + controls,
        failures.join("\n")
    );
    println!(
        "{} RPCs: {denials} denials and {controls} positive controls checked",
        rows.len()
    );
    assert!(denials > 500 && controls > 20, "the matrix shrank");
    assert_fixture_intact(&server, &fixture).await;
}

/// B lists operations: never A's, whatever the filter, page size or token.
async fn foreign_callers_do_not_see_other_organizations_operations(mut server: TestServer) {
    let fixture = seed(&mut server).await;
    let a_ops = [fixture.done_op.clone(), fixture.pending_op.clone()];
    for (filter, page_size) in [
        ("", 0),
        ("", 1),
        ("done=true", 1),
        ("done=false", 0),
        (r#"verb="AssignUserRoles""#, 1),
        (r#"target="organizations/globex/users/zed""#, 0),
    ] {
        let seen = list_operation_names(&server, &foreign(), filter, page_size).await;
        for name in &a_ops {
            assert!(
                !seen.contains(name),
                "B sees A's operation {name} with filter `{filter}`: {seen:?}"
            );
        }
        if filter != "done=false" {
            assert_eq!(
                seen,
                std::slice::from_ref(&fixture.foreign_op),
                "filter `{filter}`"
            );
        }
    }
    let orgless = token("no-org", None, READ);
    assert!(
        list_operation_names(&server, &orgless, "", 0)
            .await
            .is_empty(),
        "a token without organization sees no operations"
    );
    // Positive control: the admin sees all three.
    assert_eq!(
        sorted(list_operation_names(&server, &admin(), "", 1).await),
        sorted([
            fixture.done_op.clone(),
            fixture.pending_op.clone(),
            fixture.foreign_op.clone()
        ])
    );
    // Filters that name A are refused outright.
    for filter in [
        format!(r#"target="organizations/{ORG}""#),
        format!(r#"target="organizations/{ORG}/users/alice""#),
        format!(r#"done=false AND target="organizations/{ORG}/users/bob""#),
        format!(r#"target="organizations/{ORG}/workspaces/ws1/memberships/x" AND verb="X""#),
    ] {
        let status = server
            .ops(&foreign())
            .list_operations(ListOperationsRequest {
                filter: filter.clone(),
                ..Default::default()
            })
            .await
            .fails();
        assert_forbidden(&status);
    }
    // A's operations by name.
    for name in &a_ops {
        let mut ops = server.ops(&foreign());
        let get = ops
            .get_operation(GetOperationRequest { name: name.clone() })
            .await
            .fails();
        assert_forbidden(&get);
        let wait = ops
            .wait_operation(WaitOperationRequest {
                name: name.clone(),
                timeout: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            })
            .await
            .fails();
        assert_forbidden(&wait);
        let cancel = ops
            .cancel_operation(CancelOperationRequest { name: name.clone() })
            .await
            .fails();
        assert_forbidden(&cancel);
        let delete = ops
            .delete_operation(DeleteOperationRequest { name: name.clone() })
            .await
            .fails();
        assert_forbidden(&delete);
    }
    assert_fixture_intact(&server, &fixture).await;
}

/// The names of every operation `token` lists with `filter`.
async fn list_operation_names(
    server: &TestServer,
    token: &str,
    filter: &str,
    page_size: i32,
) -> Vec<String> {
    let ops = server.ops(token);
    let (operations, _) = collect_pages(|page_token| {
        let mut ops = ops.clone();
        let request = ListOperationsRequest {
            name: String::new(),
            filter: filter.to_owned(),
            page_size,
            page_token,
        };
        async move {
            let page = ops.list_operations(request).await.must();
            (page.operations, page.next_page_token)
        }
    })
    .await;
    operations.into_iter().map(|op| op.name).collect()
}

/// The denials above are not just broken tokens: B's token works on B.
async fn foreign_token_works_on_its_own_organization(mut server: TestServer) {
    let fixture = seed(&mut server).await;
    let token = foreign();
    let org = server
        .orgs(&token)
        .get_organization(v1::GetOrganizationRequest {
            organization_id: OTHER_ORG.into(),
        })
        .await
        .must();
    assert_eq!(org.organization_id, OTHER_ORG);
    server
        .orgs(&token)
        .create_user(v1::CreateUserRequest {
            organization_id: OTHER_ORG.into(),
            user: Some(v1::User {
                user_id: "yan".into(),
                ..Default::default()
            }),
        })
        .await
        .must();
    let users = server
        .orgs(&token)
        .list_users(v1::ListUsersRequest {
            organization_id: OTHER_ORG.into(),
            ..Default::default()
        })
        .await
        .must()
        .users;
    assert_eq!(
        sorted(users.iter().map(|u| u.user_id.clone())),
        sorted(["yan", "zed"])
    );
    let op = server
        .ops(&token)
        .get_operation(GetOperationRequest {
            name: fixture.foreign_op.clone(),
        })
        .await
        .must();
    assert_op_succeeded(&op);
    let check = server
        .roles(&token)
        .check_permission(v1::CheckPermissionRequest {
            organization_id: OTHER_ORG.into(),
            user_id: "zed".into(),
            permission: "docs.read".into(),
            workspace_id: String::new(),
        })
        .await
        .must();
    assert!(check.allowed, "zed holds globex-reader");
    assert_fixture_intact(&server, &fixture).await;
}

/// A page token is opaque and grants nothing: one issued for A's lists is
/// refused on B's and cannot open A's lists to B.
async fn page_tokens_grant_nothing_across_organizations(mut server: TestServer) {
    let fixture = seed(&mut server).await;
    let first = server
        .orgs(&admin())
        .list_users(v1::ListUsersRequest {
            organization_id: ORG.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .must();
    let a_token = first.next_page_token;
    assert!(!a_token.is_empty(), "A has more than one user");
    let mut orgs = server.orgs(&foreign());
    let on_b = orgs
        .list_users(v1::ListUsersRequest {
            organization_id: OTHER_ORG.into(),
            page_size: 1,
            page_token: a_token.clone(),
        })
        .await
        .fails();
    assert_invalid(&on_b, "page_token");
    let on_a = orgs
        .list_users(v1::ListUsersRequest {
            organization_id: ORG.into(),
            page_size: 1,
            page_token: a_token,
        })
        .await
        .fails();
    assert_forbidden(&on_a);
    // An admin's ListOperations token (which spans A) is refused for B.
    let admin_page = server
        .ops(&admin())
        .list_operations(ListOperationsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .must();
    assert!(!admin_page.next_page_token.is_empty(), "three operations");
    let status = server
        .ops(&foreign())
        .list_operations(ListOperationsRequest {
            page_size: 1,
            page_token: admin_page.next_page_token,
            ..Default::default()
        })
        .await
        .fails();
    assert_invalid(&status, "page_token");
    assert_fixture_intact(&server, &fixture).await;
}

/// AIP-211: a caller missing the scope learns nothing else either, even when
/// the request is unreadable.
async fn scope_is_checked_before_the_request_is_read(server: TestServer) {
    server.seed().await;
    let reader = reader(ORG);
    let status = server
        .roles(&reader)
        .create_role(v1::CreateRoleRequest {
            organization_id: ORG.into(),
            role: None,
        })
        .await
        .fails();
    assert_scope_missing(&status, WRITE);
    let status = server
        .orgs(&writer(ORG))
        .create_organization(v1::CreateOrganizationRequest { organization: None })
        .await
        .fails();
    assert_scope_missing(&status, "admin");
    // B cannot create a role in A whatever the role looks like.
    let status = server
        .roles(&foreign())
        .create_role(v1::CreateRoleRequest {
            organization_id: ORG.into(),
            role: None,
        })
        .await
        .fails();
    assert_forbidden(&status);
    // An UpdateRole naming A's role with a stale etag and an unknown mask
    // path is still only forbidden for B.
    let status = server
        .roles(&foreign())
        .update_role(v1::UpdateRoleRequest {
            role: Some(v1::Role {
                organization_id: ORG.into(),
                role_id: "reader".into(),
                etag: "stale".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: strings(&["scope", "nonsense"]),
            }),
        })
        .await
        .fails();
    assert_forbidden(&status);
}

/// UpdateRole names its organization inside `role`, but the scope does not
/// depend on it: a read-only caller gets SCOPE_MISSING even without a role.
async fn update_role_checks_the_scope_before_reading_the_role(server: TestServer) {
    server.seed().await;
    let status = server
        .roles(&reader(ORG))
        .update_role(v1::UpdateRoleRequest {
            role: None,
            update_mask: None,
        })
        .await
        .fails();
    assert_scope_missing(&status, WRITE);
}
