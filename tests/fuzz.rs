//! Property tests: arbitrary strings, ids, lists, filters, page tokens, page
//! sizes and update masks, fed to every RPC through one real server per
//! property. The server must never panic and never answer `INTERNAL` or
//! `UNKNOWN`: only the documented codes, each with its documented details.
//! Bulk calls are followed to the end: their operations must finish with a
//! response or a documented error too.
//!
//! Also pure properties of the ListOperations filter parser and of page
//! requests (never panic; valid input round-trips).
//!
//! `PROPTEST_CASES` overrides the number of cases per property (default
//! [`DEFAULT_CASES`]); `FUZZ_DEBUG=1` prints every error answer. The server's
//! error log (the causes of INTERNAL answers) is printed too. The `fuzz/`
//! directory holds cargo-fuzz targets for the two parsers.

#[macro_use]
mod common;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use common::*;
use proptest::{
    prelude::*,
    sample::select,
    test_runner::{Config, TestCaseError, TestRunner},
};
use rolekeeper::{
    domain::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest},
    operations::filter::{self, Filter},
    pb::{
        longrunning::{
            CancelOperationRequest, DeleteOperationRequest, GetOperationRequest,
            ListOperationsRequest, WaitOperationRequest, operation,
            operations_client::OperationsClient,
        },
        v1::{
            self, RoleScope, WorkspaceRole, organization_service_client::OrganizationServiceClient,
            role_service_client::RoleServiceClient, user_ref,
            workspace_membership_service_client::WorkspaceMembershipServiceClient,
        },
    },
};
use std::{
    cell::RefCell,
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
};
use tonic::{Code, Response, Status};
use tonic_types::StatusExt;

backend_tests!(
    directory_rpcs_answer_documented_codes,
    role_rpcs_answer_documented_codes,
    bulk_rpcs_and_their_operations_answer_documented_codes,
    membership_rpcs_answer_documented_codes,
    operations_rpcs_answer_documented_codes,
    list_rpcs_survive_arbitrary_and_forged_page_tokens,
    oversized_input_gets_documented_errors,
    nul_characters_get_documented_errors,
    arbitrary_tokens_never_authenticate,
    concurrent_operations_never_end_internal,
);

/// Longest generated string in the properties: far past the 16 KiB header
/// limit once echoed, which error details must stay under.
const MAX_ECHO: usize = 20_000;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 96;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    }
}

// ----- running properties against a server -----

/// One RPC's answer: its name and its status if it failed.
type Answer = (&'static str, Result<(), Status>);

fn answer<T>(rpc: &'static str, result: Result<Response<T>, Status>) -> Answer {
    (rpc, result.map(|_| ()))
}

/// Codes the API documents for these RPCs.
const DOCUMENTED: [Code; 8] = [
    Code::Ok,
    Code::Unauthenticated,
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::FailedPrecondition,
    Code::Aborted,
];

/// Every failed answer has a documented code and the AIP-193 details of it.
fn check(answers: Vec<Answer>) -> Result<(), TestCaseError> {
    for (rpc, result) in answers {
        if let Err(status) = result {
            check_status(rpc, &status).map_err(TestCaseError::fail)?;
        }
    }
    Ok(())
}

fn check_status(rpc: &str, status: &Status) -> Result<(), String> {
    let code = status.code();
    let what = format!("{rpc} answered {code:?} `{}`", status.message());
    if !DOCUMENTED.contains(&code) {
        return Err(format!("{what}: not a documented code"));
    }
    let details = status
        .check_error_details()
        .map_err(|err| format!("{what}: undecodable details: {err}"))?;
    let info = details
        .error_info()
        .ok_or_else(|| format!("{what}: no ErrorInfo"))?;
    if info.domain != DOMAIN || info.reason.is_empty() {
        return Err(format!("{what}: ErrorInfo {info:?}"));
    }
    if details
        .request_info()
        .is_none_or(|r| r.request_id.is_empty())
    {
        return Err(format!("{what}: no RequestInfo.request_id"));
    }
    let has_violations = details
        .bad_request()
        .is_some_and(|b| !b.field_violations.is_empty());
    match code {
        Code::InvalidArgument if !has_violations => {
            Err(format!("{what}: no BadRequest field violations"))
        }
        Code::NotFound if details.resource_info().is_none() => {
            Err(format!("{what}: no ResourceInfo"))
        }
        Code::FailedPrecondition if details.precondition_failure().is_none() => {
            Err(format!("{what}: no PreconditionFailure"))
        }
        _ => Ok(()),
    }
}

/// Runs `property` on [`config`]`().cases` inputs from `strategy`, all on the
/// server the calling scenario owns, and panics with the minimal failing
/// input.
fn run_property<S, F, Fut>(name: &str, strategy: S, property: F)
where
    S: Strategy,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Vec<Answer>>,
{
    let config = config();
    let codes = RefCell::new(BTreeMap::<String, usize>::new());
    tokio::task::block_in_place(|| {
        let handle = tokio::runtime::Handle::current();
        let mut runner = TestRunner::new(config.clone());
        let result = runner.run(&strategy, |input| {
            let answers = handle.block_on(property(input));
            let mut codes = codes.borrow_mut();
            for (rpc, result) in &answers {
                let code = result.as_ref().err().map_or(Code::Ok, Status::code);
                *codes.entry(format!("{rpc} {code:?}")).or_default() += 1;
                if let (Err(status), Some(_)) = (result, std::env::var_os("FUZZ_DEBUG")) {
                    eprintln!(
                        "{rpc}: {code:?} {}",
                        status.message().chars().take(200).collect::<String>()
                    );
                }
            }
            check(answers)
        });
        if let Err(err) = result {
            panic!("property `{name}` failed: {err}");
        }
    });
    let codes = codes.into_inner();
    let calls: usize = codes.values().sum();
    println!("{name}: {} cases, {calls} calls: {codes:?}", config.cases);
}

/// The four clients with one token.
#[derive(Clone)]
struct Clients {
    orgs: OrganizationServiceClient<Authed>,
    roles: RoleServiceClient<Authed>,
    members: WorkspaceMembershipServiceClient<Authed>,
    ops: OperationsClient<Authed>,
}

/// Who makes a call: mostly the admin (to get past authorization into
/// validation and the database), sometimes a writer, reader or foreigner.
#[derive(Clone, Copy, Debug)]
enum Who {
    Admin,
    Writer,
    Reader,
    Foreign,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        5 => Just(Who::Admin),
        2 => Just(Who::Writer),
        1 => Just(Who::Reader),
        1 => Just(Who::Foreign),
    ]
}

#[derive(Clone)]
struct Callers {
    admin: Clients,
    writer: Clients,
    reader: Clients,
    foreign: Clients,
}

impl Callers {
    fn new(server: &TestServer) -> Self {
        let clients = |token: String| Clients {
            orgs: server.orgs(&token),
            roles: server.roles(&token),
            members: server.members(&token),
            ops: server.ops(&token),
        };
        Self {
            admin: clients(admin()),
            writer: clients(writer(ORG)),
            reader: clients(reader(ORG)),
            foreign: clients(foreign()),
        }
    }

    fn get(&self, who: Who) -> Clients {
        match who {
            Who::Admin => self.admin.clone(),
            Who::Writer => self.writer.clone(),
            Who::Reader => self.reader.clone(),
            Who::Foreign => self.foreign.clone(),
        }
    }
}

/// What the properties aim at besides random input.
#[derive(Clone, Debug)]
struct Fixture {
    memberships: Vec<String>,
    operations: Vec<String>,
}

/// The common fixture plus B, a second workspace, two memberships of `ws1`
/// (alice with `ws-extra` assigned), and `reader` held by alice and bob.
async fn seed(server: &TestServer) -> Fixture {
    log_internal_errors();
    server.seed().await;
    server.create_org(OTHER_ORG).await;
    server.create_user(OTHER_ORG, "zed", "").await;
    server.create_workspace(ORG, "ws2").await;
    let alice = server
        .create_membership(ORG, "ws1", "alice", WorkspaceRole::Viewer)
        .await
        .membership_id;
    let bob = server
        .create_membership(ORG, "ws1", "bob", WorkspaceRole::Editor)
        .await
        .membership_id;
    let mut operations = vec![
        server
            .assign_user_roles(ORG, "alice", &["reader"])
            .await
            .name,
        server.assign_user_roles(ORG, "bob", &["reader"]).await.name,
    ];
    operations.push(
        server
            .assign_membership_roles(ORG, "ws1", &alice, &["ws-extra"])
            .await
            .name,
    );
    Fixture {
        memberships: vec![alice, bob],
        operations,
    }
}

/// Prints the server's error log (the causes of INTERNAL answers) in the
/// test output.
fn log_internal_errors() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("error"))
        .with_test_writer()
        .try_init();
}

/// The server still answers (it did not die on some input).
async fn assert_alive(server: &TestServer) {
    server
        .orgs(&admin())
        .get_organization(v1::GetOrganizationRequest {
            organization_id: ORG.into(),
        })
        .await
        .must();
}

// ----- strategies -----

/// Strings that are hard on parsers, queries and encodings.
fn nasty() -> impl Strategy<Value = String> {
    let fixed = select(vec![
        "",
        " ",
        "\u{1}",
        "a\u{7f}b",
        "\n",
        "\t",
        "%",
        "_",
        "acme%",
        "ac_e",
        "*",
        "?",
        "$1",
        "\\",
        "'",
        "\"",
        "' OR '1'='1",
        "acme'; DROP TABLE users; --",
        "ACME",
        " acme",
        "acme ",
        "acme\n",
        "../acme",
        "organizations/acme",
        "organizations/acme/users/alice",
        "operations/",
        "é",
        "\u{202e}acme",
        "\u{feff}acme",
        "😀",
        "\u{10ffff}",
    ])
    .prop_map(str::to_owned);
    let nasty = prop_oneof![
        3 => fixed,
        2 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        // Long input is echoed into error details, which must stay bounded.
        1 => (1usize..MAX_ECHO).prop_map(|n| "x".repeat(n)),
        // NUL cannot be stored by PostgreSQL; it must be refused, not fail.
        1 => Just("a\0b".to_owned()),
    ];
    nasty
}

/// Ids: mostly the fixture's or well-formed, sometimes nasty.
fn id() -> impl Strategy<Value = String> {
    let known = select(vec![
        ORG, OTHER_ORG, "alice", "bob", "carol", "zed", "ws1", "ws2", "reader", "writer",
        "blocker", "ws-extra", "owner", "editor", "viewer", "ghost",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        4 => known,
        2 => "[A-Za-z0-9_-]{1,63}",
        1 => "[A-Za-z0-9_-]{64,70}",
        2 => nasty(),
    ]
}

fn org_id() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just(ORG.to_owned()), 1 => Just(OTHER_ORG.to_owned()), 1 => id()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,40}",
        1 => nasty(),
        1 => (2990usize..3010).prop_map(|n| "t".repeat(n)),
    ]
}

fn email() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-z]{1,12}@[a-z]{1,12}\\.(com|org)",
        1 => select(vec!["alice@example.com", "ALICE@Example.COM", "bob@example.com", "a@b@c", "@", "a@"])
            .prop_map(str::to_owned),
        1 => (240usize..260).prop_map(|n| format!("{}@example.com", "e".repeat(n))),
        1 => text(),
    ]
}

fn permission_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9_.:-]{0,20}",
        1 => select(vec!["docs.read", "docs.write", "reports.read", "workspace.admin"]).prop_map(str::to_owned),
        1 => "[a-z][a-z0-9_.:-]{127,130}",
        1 => nasty(),
    ]
}

fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0..4i32, 1 => any::<i32>()]
}

fn page_size() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => 0..4i32,
        1 => select(vec![-1, i32::MIN, i32::MAX, 1000, 1001]),
        1 => any::<i32>(),
    ]
}

/// Page tokens: none, garbage, base64 garbage, or well-formed JSON with a
/// wrong fingerprint.
fn page_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => nasty(),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        1 => (nasty(), any::<u64>()).prop_map(|(a, f)| forge(&serde_json::json!({"a": a, "f": f}))),
    ]
}

fn forge(token: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn request_id_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        // A fixed id reused across cases, to hit REQUEST_ID_REUSED.
        1 => Just("0190f5b5-8a8e-7cc0-9c3e-4f1a2b3c4d5e".to_owned()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => nasty(),
    ]
}

fn id_list() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        4 => prop::collection::vec(id(), 0..6),
        1 => (id(), 1usize..4).prop_map(|(id, n)| vec![id; n]),
        1 => (995usize..1005).prop_map(|n| (0..n).map(|i| format!("r{i}")).collect()),
    ]
}

fn user_ref() -> impl Strategy<Value = v1::UserRef> {
    let user = prop_oneof![
        3 => id().prop_map(user_ref::User::UserId),
        2 => email().prop_map(user_ref::User::Email),
        1 => prop_oneof![Just("aad-alice".to_owned()), nasty()].prop_map(user_ref::User::AadId),
        1 => prop_oneof![Just("auth0|alice".to_owned()), nasty()].prop_map(user_ref::User::Auth0Id),
    ];
    prop::option::weighted(0.9, user).prop_map(|user| v1::UserRef { user })
}

fn mask_paths() -> impl Strategy<Value = Option<prost_types::FieldMask>> {
    let path = prop_oneof![
        4 => select(vec![
            "name",
            "description",
            "permissions",
            "*",
            "scope",
            "role_id",
            "etag",
            "organization_id",
            "",
            "Name",
            "name.x",
            "permissions[0]",
        ])
        .prop_map(str::to_owned),
        1 => nasty(),
    ];
    prop::option::of(
        prop::collection::vec(path, 0..4).prop_map(|paths| prost_types::FieldMask { paths }),
    )
}

fn permission() -> impl Strategy<Value = v1::Permission> {
    (
        permission_name(),
        text(),
        prop::option::weighted(0.9, any::<bool>()),
    )
        .prop_map(|(name, description, access)| v1::Permission {
            name,
            description,
            access,
        })
}

fn role_input() -> impl Strategy<Value = v1::Role> {
    (
        org_id(),
        prop_oneof![Just(String::new()), id()],
        prop_oneof![4 => "\\PC{1,30}", 1 => text()],
        text(),
        enum_value(),
        prop::collection::vec(permission(), 0..5),
        prop_oneof![3 => Just(String::new()), 1 => nasty()],
    )
        .prop_map(
            |(organization_id, role_id, name, description, scope, permissions, etag)| v1::Role {
                organization_id,
                role_id,
                name,
                description,
                scope,
                permissions,
                etag,
                ..Default::default()
            },
        )
}

// ----- properties over the server -----

#[derive(Clone, Debug)]
struct DirectoryInput {
    who: Who,
    org: String,
    org_name: String,
    user: v1::User,
    workspace: v1::Workspace,
    page_size: i32,
    page_token: String,
}

fn directory_input() -> impl Strategy<Value = DirectoryInput> {
    let user = (
        prop_oneof![Just(String::new()), id()],
        prop_oneof![2 => Just(String::new()), 3 => email()],
        prop_oneof![3 => Just(String::new()), 1 => nasty()],
        prop_oneof![3 => Just(String::new()), 1 => nasty()],
        text(),
    )
        .prop_map(
            |(user_id, email, aad_id, auth0_id, display_name)| v1::User {
                user_id,
                email,
                aad_id,
                auth0_id,
                display_name,
                ..Default::default()
            },
        );
    let workspace = (prop_oneof![Just(String::new()), id()], text()).prop_map(
        |(workspace_id, display_name)| v1::Workspace {
            workspace_id,
            display_name,
            ..Default::default()
        },
    );
    (
        who(),
        org_id(),
        text(),
        user,
        workspace,
        page_size(),
        page_token(),
    )
        .prop_map(
            |(who, org, org_name, user, workspace, page_size, page_token)| DirectoryInput {
                who,
                org,
                org_name,
                user,
                workspace,
                page_size,
                page_token,
            },
        )
}

async fn directory_rpcs_answer_documented_codes(server: TestServer) {
    seed(&server).await;
    let callers = Callers::new(&server);
    run_property("directory RPCs", directory_input(), |i| {
        let mut c = callers.get(i.who);
        async move {
            let mut out = vec![
                answer(
                    "CreateOrganization",
                    c.orgs
                        .create_organization(v1::CreateOrganizationRequest {
                            organization: Some(v1::Organization {
                                organization_id: i.user.user_id.clone(),
                                display_name: i.org_name.clone(),
                                create_time: None,
                            }),
                        })
                        .await,
                ),
                answer(
                    "GetOrganization",
                    c.orgs
                        .get_organization(v1::GetOrganizationRequest {
                            organization_id: i.org.clone(),
                        })
                        .await,
                ),
                answer(
                    "ListOrganizations",
                    c.orgs
                        .list_organizations(v1::ListOrganizationsRequest {
                            page_size: i.page_size,
                            page_token: i.page_token.clone(),
                        })
                        .await,
                ),
            ];
            // Create, read back and delete what was created, so that later
            // cases still find the fixture.
            let created = c
                .orgs
                .create_user(v1::CreateUserRequest {
                    organization_id: i.org.clone(),
                    user: Some(i.user.clone()),
                })
                .await;
            let user_id = match &created {
                Ok(user) => user.get_ref().user_id.clone(),
                Err(_) => i.user.user_id.clone(),
            };
            out.push(answer("CreateUser", created));
            out.push(answer(
                "GetUser",
                c.orgs
                    .get_user(v1::GetUserRequest {
                        organization_id: i.org.clone(),
                        user_id: user_id.clone(),
                    })
                    .await,
            ));
            out.push(answer(
                "ListUsers",
                c.orgs
                    .list_users(v1::ListUsersRequest {
                        organization_id: i.org.clone(),
                        page_size: i.page_size,
                        page_token: i.page_token.clone(),
                    })
                    .await,
            ));
            if !is_fixture_id(&user_id) {
                out.push(answer(
                    "DeleteUser",
                    c.orgs
                        .delete_user(v1::DeleteUserRequest {
                            organization_id: i.org.clone(),
                            user_id,
                        })
                        .await,
                ));
            }
            let created = c
                .orgs
                .create_workspace(v1::CreateWorkspaceRequest {
                    organization_id: i.org.clone(),
                    workspace: Some(i.workspace.clone()),
                })
                .await;
            let workspace_id = match &created {
                Ok(w) => w.get_ref().workspace_id.clone(),
                Err(_) => i.workspace.workspace_id.clone(),
            };
            out.push(answer("CreateWorkspace", created));
            out.push(answer(
                "GetWorkspace",
                c.orgs
                    .get_workspace(v1::GetWorkspaceRequest {
                        organization_id: i.org.clone(),
                        workspace_id: workspace_id.clone(),
                    })
                    .await,
            ));
            out.push(answer(
                "ListWorkspaces",
                c.orgs
                    .list_workspaces(v1::ListWorkspacesRequest {
                        organization_id: i.org.clone(),
                        page_size: i.page_size,
                        page_token: i.page_token.clone(),
                    })
                    .await,
            ));
            if !is_fixture_id(&workspace_id) {
                out.push(answer(
                    "DeleteWorkspace",
                    c.orgs
                        .delete_workspace(v1::DeleteWorkspaceRequest {
                            organization_id: i.org.clone(),
                            workspace_id,
                        })
                        .await,
                ));
            }
            out
        }
    });
    assert_alive(&server).await;
}

/// Ids of the fixture that the properties do not delete.
fn is_fixture_id(id: &str) -> bool {
    [
        "alice", "bob", "carol", "zed", "ws1", "ws2", "reader", "writer", "blocker", "ws-extra",
        "owner", "editor", "viewer",
    ]
    .contains(&id)
}

#[derive(Clone, Debug)]
struct RoleInput {
    who: Who,
    role: v1::Role,
    update: v1::Role,
    mask: Option<prost_types::FieldMask>,
    scope_filter: i32,
    force: bool,
    user: String,
    permission: String,
    workspace: String,
    page_size: i32,
    page_token: String,
}

fn role_rpc_input() -> impl Strategy<Value = RoleInput> {
    (
        who(),
        role_input(),
        role_input(),
        mask_paths(),
        enum_value(),
        any::<bool>(),
        id(),
        permission_name(),
        prop_oneof![Just(String::new()), id()],
        page_size(),
        page_token(),
    )
        .prop_map(
            |(
                who,
                role,
                update,
                mask,
                scope_filter,
                force,
                user,
                permission,
                workspace,
                page_size,
                page_token,
            )| {
                RoleInput {
                    who,
                    role,
                    update,
                    mask,
                    scope_filter,
                    force,
                    user,
                    permission,
                    workspace,
                    page_size,
                    page_token,
                }
            },
        )
}

async fn role_rpcs_answer_documented_codes(server: TestServer) {
    seed(&server).await;
    let callers = Callers::new(&server);
    run_property("role RPCs", role_rpc_input(), |i| {
        let mut c = callers.get(i.who);
        async move {
            let org = i.role.organization_id.clone();
            let created = c
                .roles
                .create_role(v1::CreateRoleRequest {
                    organization_id: org.clone(),
                    role: Some(i.role.clone()),
                })
                .await;
            let role_id = match &created {
                Ok(r) => r.get_ref().role_id.clone(),
                Err(_) => i.role.role_id.clone(),
            };
            let mut out = vec![answer("CreateRole", created)];
            out.push(answer(
                "GetRole",
                c.roles
                    .get_role(v1::GetRoleRequest {
                        organization_id: org.clone(),
                        role_id: role_id.clone(),
                    })
                    .await,
            ));
            // Update either the role just created or one of the fixture's.
            let mut update = i.update.clone();
            if !is_fixture_id(&update.role_id) {
                update.organization_id = org.clone();
                update.role_id = role_id.clone();
            }
            out.push(answer(
                "UpdateRole",
                c.roles
                    .update_role(v1::UpdateRoleRequest {
                        role: Some(update),
                        update_mask: i.mask.clone(),
                    })
                    .await,
            ));
            out.push(answer(
                "ListRoles",
                c.roles
                    .list_roles(v1::ListRolesRequest {
                        organization_id: org.clone(),
                        page_size: i.page_size,
                        page_token: i.page_token.clone(),
                        scope: i.scope_filter,
                    })
                    .await,
            ));
            out.push(answer(
                "ListRoleMembers",
                c.roles
                    .list_role_members(v1::ListRoleMembersRequest {
                        organization_id: org.clone(),
                        role_id: role_id.clone(),
                        page_size: i.page_size,
                        page_token: i.page_token.clone(),
                    })
                    .await,
            ));
            out.push(answer(
                "ListUserRoles",
                c.roles
                    .list_user_roles(v1::ListUserRolesRequest {
                        organization_id: org.clone(),
                        user_id: i.user.clone(),
                    })
                    .await,
            ));
            out.push(answer(
                "CheckPermission",
                c.roles
                    .check_permission(v1::CheckPermissionRequest {
                        organization_id: org.clone(),
                        user_id: i.user.clone(),
                        permission: i.permission.clone(),
                        workspace_id: i.workspace.clone(),
                    })
                    .await,
            ));
            if !is_fixture_id(&role_id) {
                out.push(answer(
                    "DeleteRole",
                    c.roles
                        .delete_role(v1::DeleteRoleRequest {
                            organization_id: org,
                            role_id,
                            force: i.force,
                        })
                        .await,
                ));
            }
            out
        }
    });
    assert_alive(&server).await;
}

#[derive(Clone, Debug)]
struct BulkInput {
    who: Who,
    org: String,
    user: String,
    role: String,
    role_ids: Vec<String>,
    workspace_role_ids: Vec<String>,
    users: Vec<v1::UserRef>,
    workspace: String,
    membership: String,
    request_id: String,
    revoke: bool,
}

fn bulk_input(fixture: &Fixture) -> impl Strategy<Value = BulkInput> {
    let membership = prop_oneof![
        3 => select(fixture.memberships.clone()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => nasty(),
    ];
    // Mostly requests that get accepted, so that operations run.
    let user =
        prop_oneof![3 => select(vec!["alice", "bob", "carol"]).prop_map(str::to_owned), 1 => id()];
    let role = prop_oneof![3 => select(vec!["reader", "writer", "blocker"]).prop_map(str::to_owned), 1 => id()];
    let known_ids = |ids: Vec<&'static str>| {
        prop_oneof![
            3 => prop::sample::subsequence(ids.clone(), 1..=ids.len())
                .prop_map(|ids| ids.into_iter().map(str::to_owned).collect::<Vec<_>>()),
            1 => id_list(),
        ]
    };
    let role_ids = (
        known_ids(vec!["reader", "writer", "blocker"]),
        known_ids(vec!["ws-extra", "owner", "editor", "viewer"]),
    );
    let known_user = select(vec![
        user_ref::User::UserId("alice".into()),
        user_ref::User::UserId("carol".into()),
        user_ref::User::Email("BOB@example.com".into()),
        user_ref::User::AadId("aad-alice".into()),
        user_ref::User::Auth0Id("auth0|alice".into()),
    ])
    .prop_map(|user| v1::UserRef { user: Some(user) });
    let users = prop_oneof![
        3 => prop::collection::vec(known_user, 1..3),
        2 => prop::collection::vec(user_ref(), 0..6),
        1 => (user_ref(), 2usize..4).prop_map(|(u, n)| vec![u; n]),
    ];
    (
        who(),
        prop_oneof![4 => Just(ORG.to_owned()), 1 => org_id()],
        user,
        role,
        role_ids,
        users,
        prop_oneof![4 => Just("ws1".to_owned()), 1 => id()],
        membership,
        request_id_value(),
        any::<bool>(),
    )
        .prop_map(
            |(
                who,
                org,
                user,
                role,
                (role_ids, workspace_role_ids),
                users,
                workspace,
                membership,
                request_id,
                revoke,
            )| {
                BulkInput {
                    who,
                    org,
                    user,
                    role,
                    role_ids,
                    workspace_role_ids,
                    users,
                    workspace,
                    membership,
                    request_id,
                    revoke,
                }
            },
        )
}

async fn bulk_rpcs_and_their_operations_answer_documented_codes(server: TestServer) {
    let fixture = seed(&server).await;
    let callers = Callers::new(&server);
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    run_property("bulk RPCs", bulk_input(&fixture), |i| {
        let mut c = callers.get(i.who);
        let accepted = Arc::clone(&accepted);
        async move {
            let mut out = Vec::new();
            let mut record = |rpc: &'static str, result: Result<Response<_>, Status>| {
                if let Ok(op) = &result {
                    let op: &rolekeeper::pb::longrunning::Operation = op.get_ref();
                    accepted.lock().expect("lock").push(op.name.clone());
                }
                out.push(answer(rpc, result));
            };
            if i.revoke {
                record(
                    "RevokeUserRoles",
                    c.roles
                        .revoke_user_roles(v1::RevokeUserRolesRequest {
                            organization_id: i.org.clone(),
                            user_id: i.user.clone(),
                            role_ids: i.role_ids.clone(),
                            request_id: i.request_id.clone(),
                        })
                        .await,
                );
                record(
                    "RemoveRoleMembers",
                    c.roles
                        .remove_role_members(v1::RemoveRoleMembersRequest {
                            organization_id: i.org.clone(),
                            role_id: i.role.clone(),
                            users: i.users.clone(),
                            request_id: i.request_id.clone(),
                        })
                        .await,
                );
                record(
                    "RevokeMembershipRoles",
                    c.members
                        .revoke_membership_roles(v1::RevokeMembershipRolesRequest {
                            organization_id: i.org.clone(),
                            workspace_id: i.workspace.clone(),
                            membership_id: i.membership.clone(),
                            role_ids: i.workspace_role_ids.clone(),
                            request_id: i.request_id.clone(),
                        })
                        .await,
                );
            } else {
                record(
                    "AssignUserRoles",
                    c.roles
                        .assign_user_roles(v1::AssignUserRolesRequest {
                            organization_id: i.org.clone(),
                            user_id: i.user.clone(),
                            role_ids: i.role_ids.clone(),
                            request_id: i.request_id.clone(),
                        })
                        .await,
                );
                record(
                    "AddRoleMembers",
                    c.roles
                        .add_role_members(v1::AddRoleMembersRequest {
                            organization_id: i.org.clone(),
                            role_id: i.role.clone(),
                            users: i.users.clone(),
                            request_id: i.request_id.clone(),
                        })
                        .await,
                );
                record(
                    "AssignMembershipRoles",
                    c.members
                        .assign_membership_roles(v1::AssignMembershipRolesRequest {
                            organization_id: i.org.clone(),
                            workspace_id: i.workspace.clone(),
                            membership_id: i.membership.clone(),
                            role_ids: i.workspace_role_ids.clone(),
                            request_id: i.request_id.clone(),
                        })
                        .await,
                );
            }
            out
        }
    });
    // Every accepted operation finishes with a response or a documented error.
    let names = accepted.lock().expect("lock").clone();
    let mut failures = Vec::new();
    for name in &names {
        let op = server.wait_done(name).await;
        if let Some(operation::Result::Error(status)) = &op.result {
            let code = Code::from(status.code);
            let documented = [
                Code::InvalidArgument,
                Code::NotFound,
                Code::FailedPrecondition,
                Code::AlreadyExists,
                Code::Aborted,
                Code::Cancelled,
            ];
            if !documented.contains(&code) {
                let meta = op_metadata(&op);
                failures.push(format!(
                    "{name} ({} of {} by {}, {} items) ended {code:?}: {}",
                    meta.verb, meta.target, meta.principal, meta.requested_items, status.message
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "operations failed:\n{}",
        failures.join("\n")
    );
    println!(
        "bulk RPCs: {} operations accepted and finished",
        names.len()
    );
    assert_alive(&server).await;
}

#[derive(Clone, Debug)]
struct MembershipInput {
    who: Who,
    org: String,
    workspace: String,
    user: String,
    user_filter: String,
    base_role: i32,
    membership: String,
    page_size: i32,
    page_token: String,
}

fn membership_input(fixture: &Fixture) -> impl Strategy<Value = MembershipInput> {
    let membership = prop_oneof![
        2 => select(fixture.memberships.clone()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => nasty(),
    ];
    (
        who(),
        org_id(),
        prop_oneof![3 => Just("ws1".to_owned()), 1 => Just("ws2".to_owned()), 2 => id()],
        id(),
        prop_oneof![Just(String::new()), id()],
        enum_value(),
        membership,
        page_size(),
        page_token(),
    )
        .prop_map(
            |(
                who,
                org,
                workspace,
                user,
                user_filter,
                base_role,
                membership,
                page_size,
                page_token,
            )| {
                MembershipInput {
                    who,
                    org,
                    workspace,
                    user,
                    user_filter,
                    base_role,
                    membership,
                    page_size,
                    page_token,
                }
            },
        )
}

async fn membership_rpcs_answer_documented_codes(server: TestServer) {
    let fixture = seed(&server).await;
    let callers = Callers::new(&server);
    run_property("membership RPCs", membership_input(&fixture), |i| {
        let mut c = callers.get(i.who);
        let fixture = fixture.clone();
        async move {
            let created = c
                .members
                .create_workspace_membership(v1::CreateWorkspaceMembershipRequest {
                    organization_id: i.org.clone(),
                    workspace_id: i.workspace.clone(),
                    user_id: i.user.clone(),
                    role: i.base_role,
                })
                .await;
            let created_id = created
                .as_ref()
                .ok()
                .map(|m| m.get_ref().membership_id.clone());
            let mut out = vec![answer("CreateWorkspaceMembership", created)];
            let membership = created_id.clone().unwrap_or_else(|| i.membership.clone());
            out.push(answer(
                "GetWorkspaceMembership",
                c.members
                    .get_workspace_membership(v1::GetWorkspaceMembershipRequest {
                        organization_id: i.org.clone(),
                        workspace_id: i.workspace.clone(),
                        membership_id: membership.clone(),
                    })
                    .await,
            ));
            out.push(answer(
                "UpdateWorkspaceMembership",
                c.members
                    .update_workspace_membership(v1::UpdateWorkspaceMembershipRequest {
                        organization_id: i.org.clone(),
                        workspace_id: i.workspace.clone(),
                        membership_id: membership.clone(),
                        role: i.base_role,
                    })
                    .await,
            ));
            out.push(answer(
                "ListWorkspaceMemberships",
                c.members
                    .list_workspace_memberships(v1::ListWorkspaceMembershipsRequest {
                        organization_id: i.org.clone(),
                        workspace_id: i.workspace.clone(),
                        page_size: i.page_size,
                        page_token: i.page_token.clone(),
                        user_id: i.user_filter.clone(),
                    })
                    .await,
            ));
            if !fixture.memberships.contains(&membership) {
                out.push(answer(
                    "DeleteWorkspaceMembership",
                    c.members
                        .delete_workspace_membership(v1::DeleteWorkspaceMembershipRequest {
                            organization_id: i.org.clone(),
                            workspace_id: i.workspace.clone(),
                            membership_id: membership,
                        })
                        .await,
                ));
            }
            out
        }
    });
    assert_alive(&server).await;
}

/// Filters: from the grammar (valid or nearly), or arbitrary.
fn filter_text() -> impl Strategy<Value = String> {
    let term = prop_oneof![
        select(vec![
            "done=true",
            "done=false",
            "done=maybe",
            "done",
            "done=",
            "=true"
        ])
        .prop_map(str::to_owned),
        (
            select(vec!["target", "verb", "name", "Target", "done"]),
            prop_oneof![
                select(vec![
                    "organizations/acme/users/alice",
                    "organizations/acme",
                    "organizations/globex",
                    "organizations/",
                    "AssignUserRoles",
                ])
                .prop_map(str::to_owned),
                nasty(),
            ],
            any::<bool>(),
        )
            .prop_map(|(key, value, quote)| if quote {
                format!("{key}=\"{value}\"")
            } else {
                format!("{key}={value}")
            }),
        nasty(),
    ];
    prop_oneof![
        3 => prop::collection::vec(term, 0..4).prop_map(|terms| terms.join(" AND ")),
        1 => nasty(),
    ]
}

#[derive(Clone, Debug)]
struct OperationsInput {
    who: Who,
    collection: String,
    filter: String,
    page_size: i32,
    page_token: String,
    name: String,
    timeout: Option<prost_types::Duration>,
    delete: bool,
}

fn operations_input(fixture: &Fixture) -> impl Strategy<Value = OperationsInput> {
    let name = prop_oneof![
        2 => select(fixture.operations.clone()),
        1 => any::<u128>().prop_map(|n| format!("operations/{}", uuid::Uuid::from_u128(n))),
        1 => nasty(),
        1 => nasty().prop_map(|s| format!("operations/{s}")),
    ];
    let timeout = prop::option::of(
        (
            prop_oneof![3 => -2..3i64, 1 => any::<i64>()],
            prop_oneof![3 => 0..1000i32, 1 => any::<i32>()],
        )
            .prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
    );
    (
        who(),
        prop_oneof![
            3 => Just(String::new()),
            1 => Just("operations".to_owned()),
            1 => nasty()
        ],
        filter_text(),
        page_size(),
        page_token(),
        name,
        timeout,
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(who, collection, filter, page_size, page_token, name, timeout, delete)| {
                OperationsInput {
                    who,
                    collection,
                    filter,
                    page_size,
                    page_token,
                    name,
                    timeout,
                    delete,
                }
            },
        )
}

async fn operations_rpcs_answer_documented_codes(server: TestServer) {
    let fixture = seed(&server).await;
    let callers = Callers::new(&server);
    run_property("operations RPCs", operations_input(&fixture), |i| {
        let mut c = callers.get(i.who);
        async move {
            let mut out = vec![
                answer(
                    "ListOperations",
                    c.ops
                        .list_operations(ListOperationsRequest {
                            name: i.collection.clone(),
                            filter: i.filter.clone(),
                            page_size: i.page_size,
                            page_token: i.page_token.clone(),
                        })
                        .await,
                ),
                answer(
                    "GetOperation",
                    c.ops
                        .get_operation(GetOperationRequest {
                            name: i.name.clone(),
                        })
                        .await,
                ),
                // Every operation of the fixture is done, so this never blocks
                // for long whatever the timeout.
                answer(
                    "WaitOperation",
                    c.ops
                        .wait_operation(WaitOperationRequest {
                            name: i.name.clone(),
                            timeout: i.timeout,
                        })
                        .await,
                ),
                answer(
                    "CancelOperation",
                    c.ops
                        .cancel_operation(CancelOperationRequest {
                            name: i.name.clone(),
                        })
                        .await,
                ),
            ];
            if i.delete {
                out.push(answer(
                    "DeleteOperation",
                    c.ops
                        .delete_operation(DeleteOperationRequest {
                            name: i.name.clone(),
                        })
                        .await,
                ));
            }
            out
        }
    });
    assert_alive(&server).await;
}

// ----- tokens -----

/// An `authorization` value: raw text, or a JWT with arbitrary claims.
#[derive(Clone, Debug)]
enum TokenShape {
    /// Sent verbatim.
    Raw(String),
    /// A JWT of `claims` with header `alg`, signed with the server's secret
    /// when `right_key` (else another one); `alg: none` is unsigned.
    Jwt {
        alg: &'static str,
        right_key: bool,
        claims: serde_json::Value,
    },
}

impl TokenShape {
    /// Whether the server may accept it: HS256 with its secret.
    fn may_authenticate(&self) -> bool {
        matches!(
            self,
            Self::Jwt {
                alg: "HS256",
                right_key: true,
                ..
            }
        )
    }

    fn header(&self) -> String {
        match self {
            Self::Raw(text) => text.clone(),
            Self::Jwt {
                alg,
                right_key,
                claims,
            } => {
                let key = if *right_key {
                    SECRET
                } else {
                    b"some-other-secret".as_slice()
                };
                let encoded = match *alg {
                    "none" => {
                        let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
                        format!(
                            "{}.{}.",
                            part(&serde_json::json!({"alg": "none", "typ": "JWT"})),
                            part(claims)
                        )
                    }
                    alg => {
                        let algorithm = match alg {
                            "HS384" => jsonwebtoken::Algorithm::HS384,
                            "HS512" => jsonwebtoken::Algorithm::HS512,
                            _ => jsonwebtoken::Algorithm::HS256,
                        };
                        jsonwebtoken::encode(
                            &jsonwebtoken::Header::new(algorithm),
                            claims,
                            &jsonwebtoken::EncodingKey::from_secret(key),
                        )
                        .expect("encode a JWT")
                    }
                };
                format!("Bearer {encoded}")
            }
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A JSON value for a claim: absent (`None`) or of any type.
fn claim_value(
    typical: impl Strategy<Value = serde_json::Value>,
) -> impl Strategy<Value = Option<serde_json::Value>> {
    use serde_json::json;
    prop_oneof![
        4 => typical.prop_map(Some),
        1 => Just(None),
        1 => prop_oneof![
            Just(json!(null)),
            Just(json!(true)),
            Just(json!(["admin"])),
            Just(json!({"org": "acme"})),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            nasty().prop_map(|s| json!(s)),
        ]
        .prop_map(Some),
    ]
}

fn token_shape() -> impl Strategy<Value = TokenShape> {
    use serde_json::json;
    let now = now();
    let claims = (
        claim_value(prop_oneof![
            Just(json!("fuzzer")),
            nasty().prop_map(|s| json!(s))
        ]),
        claim_value(
            select(vec![
                "admin",
                "organization:read",
                "organization:write",
                "organization:read admin",
                " admin ",
                "Admin",
                "",
            ])
            .prop_map(|s| json!(s)),
        ),
        claim_value(select(vec![ORG, OTHER_ORG, "", "ACME"]).prop_map(|s| json!(s))),
        claim_value(prop_oneof![
            8 => Just(json!(now + 3600)),
            1 => Just(json!(now - 3600)),
            1 => Just(json!(0)),
            1 => Just(json!(-1)),
            1 => Just(json!(u64::MAX)),
            1 => Just(json!(1e300)),
        ]),
        prop_oneof![
            3 => Just(None),
            1 => claim_value(prop_oneof![
                Just(json!(now - 10)),
                Just(json!(now + 3600)),
                Just(json!(u64::MAX))
            ]),
        ],
    )
        .prop_map(|(sub, scope, org, exp, nbf)| {
            let mut claims = serde_json::Map::new();
            for (name, value) in [
                ("sub", sub),
                ("scope", scope),
                ("org", org),
                ("exp", exp),
                ("nbf", nbf),
            ] {
                if let Some(value) = value {
                    claims.insert(name.to_owned(), value);
                }
            }
            serde_json::Value::Object(claims)
        });
    prop_oneof![
        1 => "[ -~]{0,300}".prop_map(TokenShape::Raw),
        1 => "(Bearer|bearer|BEARER|Basic) [ -~]{0,300}".prop_map(TokenShape::Raw),
        4 => (
            select(vec!["HS256", "HS256", "HS256", "HS384", "HS512", "none"]),
            prop::bool::weighted(0.7),
            claims,
        )
            .prop_map(|(alg, right_key, claims)| TokenShape::Jwt { alg, right_key, claims }),
    ]
}

/// Forged, malformed or odd tokens: UNAUTHENTICATED (or, for tokens the
/// server signed, whatever their claims allow), never anything else; a token
/// not signed with HS256 and the server's secret never gets past
/// authentication.
async fn arbitrary_tokens_never_authenticate(server: TestServer) {
    seed(&server).await;
    run_property("tokens", token_shape(), |shape| {
        let bearer = Bearer::raw(&shape.header());
        let mut orgs = OrganizationServiceClient::new(server.with(bearer.clone()));
        let mut ops = OperationsClient::new(server.with(bearer));
        async move {
            let answers = [
                answer(
                    "GetOrganization",
                    orgs.get_organization(v1::GetOrganizationRequest {
                        organization_id: ORG.into(),
                    })
                    .await,
                ),
                answer(
                    "ListOperations",
                    ops.list_operations(ListOperationsRequest::default()).await,
                ),
            ];
            if shape.may_authenticate() {
                return answers.into();
            }
            // Past authentication with a forged token: report it as an
            // undocumented answer.
            answers
                .into_iter()
                .map(|(rpc, result)| match result {
                    Err(status) if status.code() == Code::Unauthenticated => (rpc, Err(status)),
                    other => (
                        rpc,
                        Err(Status::unknown(format!(
                            "a forged token got past authentication: {other:?}"
                        ))),
                    ),
                })
                .collect()
        }
    });
    assert_alive(&server).await;
}

// ----- page tokens -----

/// Which list a page token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Organizations,
    Users,
    Workspaces,
    Roles,
    RoleMembers,
    Memberships,
    Operations,
}

const LISTS: [List; 7] = [
    List::Organizations,
    List::Users,
    List::Workspaces,
    List::Roles,
    List::RoleMembers,
    List::Memberships,
    List::Operations,
];

/// Calls `list` as admin over A's fixture; returns the next page token.
async fn list_page(
    c: &mut Clients,
    list: List,
    page_size: i32,
    page_token: String,
) -> Result<String, Status> {
    let org = || ORG.to_owned();
    Ok(match list {
        List::Organizations => {
            c.orgs
                .list_organizations(v1::ListOrganizationsRequest {
                    page_size,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Users => {
            c.orgs
                .list_users(v1::ListUsersRequest {
                    organization_id: org(),
                    page_size,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Workspaces => {
            c.orgs
                .list_workspaces(v1::ListWorkspacesRequest {
                    organization_id: org(),
                    page_size,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Roles => {
            c.roles
                .list_roles(v1::ListRolesRequest {
                    organization_id: org(),
                    page_size,
                    page_token,
                    scope: RoleScope::Unspecified as i32,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::RoleMembers => {
            c.roles
                .list_role_members(v1::ListRoleMembersRequest {
                    organization_id: org(),
                    role_id: "reader".into(),
                    page_size,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Memberships => {
            c.members
                .list_workspace_memberships(v1::ListWorkspaceMembershipsRequest {
                    organization_id: org(),
                    workspace_id: "ws1".into(),
                    page_size,
                    page_token,
                    user_id: String::new(),
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Operations => {
            c.ops
                .list_operations(ListOperationsRequest {
                    name: String::new(),
                    filter: String::new(),
                    page_size,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
    })
}

/// A real token of `list` with its `a` (the last key) replaced by `after`:
/// it passes the fingerprint check, so `after` reaches the query.
fn forge_after(real: &str, after: &str) -> String {
    let bytes = URL_SAFE_NO_PAD
        .decode(real)
        .expect("a real token is base64");
    let mut token: serde_json::Value =
        serde_json::from_slice(&bytes).expect("a real token is JSON");
    token["a"] = serde_json::Value::String(after.to_owned());
    forge(&token)
}

/// Where a page token comes from.
#[derive(Clone, Copy, Debug)]
enum Forge {
    /// The generated string as is.
    None,
    /// A real token of the same list with a generated last key.
    SameList,
    /// A real token of this list with a generated last key.
    From(List),
}

#[derive(Clone, Debug)]
struct TokenInput {
    list: List,
    forge: Forge,
    token: String,
    page_size: i32,
}

fn token_input() -> impl Strategy<Value = TokenInput> {
    (
        select(LISTS.to_vec()),
        prop_oneof![
            2 => Just(Forge::None),
            3 => Just(Forge::SameList),
            1 => select(LISTS.to_vec()).prop_map(Forge::From),
        ],
        prop_oneof![3 => page_token(), 2 => nasty(), 1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())],
        page_size(),
    )
        .prop_map(|(list, forge, token, page_size)| TokenInput {
            list,
            forge,
            token,
            page_size,
        })
}

async fn list_rpcs_survive_arbitrary_and_forged_page_tokens(server: TestServer) {
    seed(&server).await;
    let callers = Callers::new(&server);
    // One real first-page token per list (every list has at least 2 items).
    let mut admin = callers.admin.clone();
    let mut real = Vec::new();
    for list in LISTS {
        let token = list_page(&mut admin, list, 1, String::new())
            .await
            .unwrap_or_else(|s| panic!("{list:?}: {s:?}"));
        assert!(!token.is_empty(), "{list:?} has a second page");
        // The real token leads to the second page.
        list_page(&mut admin, list, 1, token.clone())
            .await
            .unwrap_or_else(|s| panic!("{list:?} page 2: {s:?}"));
        real.push((list, token));
    }
    run_property("page tokens", token_input(), |i| {
        let mut c = callers.admin.clone();
        let forge_from = match i.forge {
            Forge::None => None,
            Forge::SameList => Some(i.list),
            Forge::From(list) => Some(list),
        };
        let token = match forge_from {
            None => i.token.clone(),
            Some(from) => {
                let (_, real) = real.iter().find(|(l, _)| *l == from).expect("a real token");
                forge_after(real, &i.token)
            }
        };
        async move {
            let result = list_page(&mut c, i.list, i.page_size, token).await;
            vec![("List*", result.map(|_| ()))]
        }
    });
    assert_alive(&server).await;
}

// ----- found by the properties -----

/// Error messages and details must stay small whatever the input: several
/// errors quote the offending input, and a response whose headers
/// (`grpc-message`, `grpc-status-details-bin`) outgrow the peer's header
/// list limit (16 KiB by default in hyper/h2 and grpc-go) reaches the
/// client as `INTERNAL: h2 protocol error`. 6000 characters is a modest
/// field in a request of up to 4 MiB.
async fn oversized_input_gets_documented_errors(server: TestServer) {
    seed(&server).await;
    let callers = Callers::new(&server);
    let big = "x".repeat(6000);
    let (mut admin, mut foreign) = (callers.admin.clone(), callers.foreign.clone());
    let answers = [
        answer(
            "ListOperations (filter term)",
            admin
                .ops
                .list_operations(ListOperationsRequest {
                    filter: big.clone(),
                    ..Default::default()
                })
                .await,
        ),
        answer(
            "ListOperations (filter key)",
            admin
                .ops
                .list_operations(ListOperationsRequest {
                    filter: format!("{big}=1"),
                    ..Default::default()
                })
                .await,
        ),
        answer(
            "UpdateRole (update_mask path)",
            admin
                .roles
                .update_role(v1::UpdateRoleRequest {
                    role: Some(v1::Role {
                        organization_id: ORG.into(),
                        role_id: "reader".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![big.clone()],
                    }),
                })
                .await,
        ),
        answer(
            "AssignUserRoles (duplicate role id)",
            admin
                .roles
                .assign_user_roles(v1::AssignUserRolesRequest {
                    organization_id: ORG.into(),
                    user_id: "alice".into(),
                    role_ids: vec![big.clone(), big.clone()],
                    request_id: String::new(),
                })
                .await,
        ),
        answer(
            "CreateRole (duplicate permission)",
            admin
                .roles
                .create_role(v1::CreateRoleRequest {
                    organization_id: ORG.into(),
                    role: Some(v1::Role {
                        name: "r".into(),
                        permissions: vec![perm(&big, true), perm(&big, false)],
                        ..Default::default()
                    }),
                })
                .await,
        ),
        answer(
            "AddRoleMembers (duplicate user)",
            admin
                .roles
                .add_role_members(v1::AddRoleMembersRequest {
                    organization_id: ORG.into(),
                    role_id: "reader".into(),
                    users: vec![
                        v1::UserRef {
                            user: Some(user_ref::User::UserId(big.clone())),
                        };
                        2
                    ],
                    request_id: String::new(),
                })
                .await,
        ),
        answer(
            "GetUser by a foreign caller (organization_id)",
            foreign
                .orgs
                .get_user(v1::GetUserRequest {
                    organization_id: big.clone(),
                    user_id: "alice".into(),
                })
                .await,
        ),
    ];
    let failures: Vec<String> = answers
        .iter()
        .filter_map(|(rpc, result)| match result {
            Ok(()) => Some(format!("{rpc}: succeeded")),
            Err(status) => check_status(rpc, status).err(),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} oversized inputs got no documented error:\n{}",
        failures.len(),
        answers.len(),
        failures.join("\n")
    );
}

/// PostgreSQL refuses NUL in text; the service must answer INVALID_ARGUMENT
/// (or store the text), never INTERNAL. SQLite stores it.
async fn nul_characters_get_documented_errors(server: TestServer) {
    seed(&server).await;
    let mut admin = Callers::new(&server).admin;
    let nul = "a\0b".to_owned();
    let real_token = admin
        .orgs
        .list_users(v1::ListUsersRequest {
            organization_id: ORG.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("list users")
        .into_inner()
        .next_page_token;
    let answers = [
        answer(
            "CreateOrganization (display_name)",
            admin
                .orgs
                .create_organization(v1::CreateOrganizationRequest {
                    organization: Some(v1::Organization {
                        organization_id: "nul-org".into(),
                        display_name: nul.clone(),
                        create_time: None,
                    }),
                })
                .await,
        ),
        answer(
            "CreateUser (display_name)",
            admin
                .orgs
                .create_user(v1::CreateUserRequest {
                    organization_id: ORG.into(),
                    user: Some(v1::User {
                        user_id: "nul-user".into(),
                        display_name: nul.clone(),
                        ..Default::default()
                    }),
                })
                .await,
        ),
        answer(
            "CreateWorkspace (display_name)",
            admin
                .orgs
                .create_workspace(v1::CreateWorkspaceRequest {
                    organization_id: ORG.into(),
                    workspace: Some(v1::Workspace {
                        workspace_id: "nul-ws".into(),
                        display_name: nul.clone(),
                        ..Default::default()
                    }),
                })
                .await,
        ),
        answer(
            "CreateRole (name, description, permission description)",
            admin
                .roles
                .create_role(v1::CreateRoleRequest {
                    organization_id: ORG.into(),
                    role: Some(v1::Role {
                        role_id: "nul-role".into(),
                        name: nul.clone(),
                        description: nul.clone(),
                        permissions: vec![v1::Permission {
                            name: "docs.read".into(),
                            description: nul.clone(),
                            access: Some(true),
                        }],
                        ..Default::default()
                    }),
                })
                .await,
        ),
        answer(
            "ListOperations (target)",
            admin
                .ops
                .list_operations(ListOperationsRequest {
                    filter: format!("target=\"{nul}\""),
                    ..Default::default()
                })
                .await,
        ),
        answer(
            "ListOperations (verb)",
            admin
                .ops
                .list_operations(ListOperationsRequest {
                    filter: format!("verb=\"{nul}\""),
                    ..Default::default()
                })
                .await,
        ),
        answer(
            "ListUsers (page token whose last key has a NUL)",
            admin
                .orgs
                .list_users(v1::ListUsersRequest {
                    organization_id: ORG.into(),
                    page_size: 1,
                    page_token: forge_after(&real_token, &nul),
                })
                .await,
        ),
    ];
    let failures: Vec<String> = answers
        .iter()
        .filter_map(|(rpc, result)| {
            result
                .as_ref()
                .err()
                .and_then(|s| check_status(rpc, s).err())
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} inputs with NUL got no documented error on {:?}:\n{}",
        failures.len(),
        answers.len(),
        server.backend(),
        failures.join("\n")
    );
}

/// Bulk operations running on the workers while RPCs write: a busy database
/// (SQLite's `database is locked`) must be retried or reported as
/// UNAVAILABLE, never end an accepted operation with INTERNAL.
async fn concurrent_operations_never_end_internal(server: TestServer) {
    seed(&server).await;
    let admin_token = admin();
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..40 {
        let mut roles = server.roles(&admin_token);
        let mut orgs = server.orgs(&admin_token);
        tasks.spawn(async move {
            let user = ["alice", "bob", "carol"][round % 3];
            let assign = roles
                .assign_user_roles(v1::AssignUserRolesRequest {
                    organization_id: ORG.into(),
                    user_id: user.into(),
                    role_ids: strings(&["reader", "writer", "blocker"]),
                    request_id: String::new(),
                })
                .await
                .must();
            let revoke = roles
                .revoke_user_roles(v1::RevokeUserRolesRequest {
                    organization_id: ORG.into(),
                    user_id: user.into(),
                    role_ids: strings(&["writer"]),
                    request_id: String::new(),
                })
                .await
                .must();
            // Targets a role, not a user: may run beside the user's own
            // operations on the other worker, touching the same rows.
            let members = roles
                .add_role_members(v1::AddRoleMembersRequest {
                    organization_id: ORG.into(),
                    role_id: ["reader", "writer", "blocker"][round % 3].into(),
                    users: ["alice", "bob", "carol"]
                        .iter()
                        .map(|u| v1::UserRef {
                            user: Some(user_ref::User::UserId((*u).into())),
                        })
                        .collect(),
                    request_id: String::new(),
                })
                .await
                .must();
            orgs.create_user(v1::CreateUserRequest {
                organization_id: ORG.into(),
                user: Some(v1::User {
                    user_id: format!("busy-{round}"),
                    ..Default::default()
                }),
            })
            .await
            .must();
            [assign.name, revoke.name, members.name]
        });
    }
    let mut failures = Vec::new();
    let mut operations = 0;
    while let Some(names) = tasks.join_next().await {
        for name in names.expect("task") {
            operations += 1;
            let op = server.wait_done(&name).await;
            if let Some(operation::Result::Error(status)) = &op.result {
                failures.push(format!(
                    "{name} ended {:?}: {}",
                    Code::from(status.code),
                    status.message
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {operations} valid operations failed on {:?}:\n{}",
        failures.len(),
        server.backend(),
        failures.join("\n")
    );
}

// ----- pure properties -----

fn pure_config() -> Config {
    Config {
        cases: config().cases.max(256),
        ..config()
    }
}

/// A filter value the grammar can carry: non-empty, no quote, no ` AND `.
fn filter_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9/_.|:-]{1,40}",
        "\\PC{1,20}".prop_filter("no quotes or separators", |v| {
            !v.contains('"') && !v.contains(" AND ") && v.trim() == v
        }),
    ]
}

fn spaces() -> impl Strategy<Value = String> {
    select(vec!["", " ", "  ", "\t"]).prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn filter_parse_never_panics(text in prop_oneof![filter_text(), any::<String>()]) {
        match filter::parse(&text) {
            Ok(_) => {}
            Err(err) => {
                prop_assert_eq!(err.code(), Code::InvalidArgument);
                let rolekeeper::Error::InvalidArgument(violations) = err else {
                    unreachable!("the code is INVALID_ARGUMENT");
                };
                prop_assert!(violations.iter().all(|v| v.field == "filter"));
            }
        }
    }

    #[test]
    fn filter_round_trips(
        done in prop::option::of(any::<bool>()),
        target in prop::option::of(filter_value()),
        verb in prop::option::of(filter_value()),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        pads in prop::collection::vec(spaces(), 12),
    ) {
        let terms = [
            done.map(|d| ("done", d.to_string())),
            target.clone().map(|t| ("target", format!("\"{t}\""))),
            verb.clone().map(|v| ("verb", format!("\"{v}\""))),
        ];
        let text = order
            .iter()
            .filter_map(|&i| terms[i].as_ref().map(|t| (i, t)))
            .map(|(i, (key, value))| {
                format!("{}{key}{}={}{value}{}", pads[4 * i], pads[4 * i + 1], pads[4 * i + 2], pads[4 * i + 3])
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let parsed = filter::parse(&text);
        prop_assert_eq!(parsed, Ok(Filter { done, target, verb }), "text: {:?}", text);
    }

    #[test]
    fn filter_rejects_repeated_terms(
        key in select(vec!["done=true", "target=\"x\"", "verb=\"y\""]),
        others in prop::collection::vec(select(vec!["done=false", "target=\"a\"", "verb=\"b\""]), 0..2),
    ) {
        let mut terms = vec![key.to_owned()];
        terms.extend(others.iter().map(|s| (*s).to_owned()));
        terms.push(key.to_owned());
        prop_assert!(filter::parse(&terms.join(" AND ")).is_err());
    }

    #[test]
    fn page_parse_never_panics(
        page_size in any::<i32>(),
        token in prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            (any::<String>(), any::<u64>()).prop_map(|(a, f)| forge(&serde_json::json!({"a": a, "f": f}))),
        ],
        params in prop::collection::vec(any::<String>(), 0..4),
    ) {
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        match PageRequest::parse(page_size, &token, &params) {
            Ok(page) => {
                prop_assert!(page_size >= 0);
                prop_assert!((1..=MAX_PAGE_SIZE).contains(&page.size));
            }
            Err(err) => prop_assert_eq!(err.code(), Code::InvalidArgument),
        }
    }

    #[test]
    fn page_sizes_follow_aip_158(page_size in any::<i32>()) {
        let parsed = PageRequest::parse(page_size, "", &["x"]);
        match page_size {
            n if n < 0 => prop_assert!(parsed.is_err()),
            0 => prop_assert_eq!(parsed.map(|p| p.size), Ok(DEFAULT_PAGE_SIZE)),
            n => prop_assert_eq!(parsed.map(|p| p.size), Ok(u64::try_from(n).unwrap_or(0).min(MAX_PAGE_SIZE))),
        }
    }

    #[test]
    fn page_tokens_round_trip_and_bind_to_parameters(
        rows in prop::collection::vec(any::<String>(), 0..30),
        page_size in 1..10i32,
        params in prop::collection::vec(any::<String>(), 0..4),
        other in any::<String>(),
    ) {
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let first = PageRequest::parse(page_size, "", &params).expect("valid");
        let size = usize::try_from(page_size).unwrap_or(1);
        let fetched: Vec<String> = rows.iter().take(size + 1).cloned().collect();
        let page = first.page(fetched, String::clone);
        prop_assert_eq!(&page.items[..], &rows[..rows.len().min(size)]);
        if rows.len() > size {
            let next = PageRequest::parse(page_size, &page.next_page_token, &params).expect("own token");
            prop_assert_eq!(next.after.as_deref(), Some(rows[size - 1].as_str()));
            let mut changed = params.clone();
            changed.push(&other);
            prop_assert!(PageRequest::parse(page_size, &page.next_page_token, &changed).is_err());
        } else {
            prop_assert!(page.next_page_token.is_empty());
        }
    }
}
