//! Integration-test harness: a real rolekeeper server on a loopback port with
//! a fresh database per test (a temporary SQLite file, or a new PostgreSQL
//! database when `ROLEKEEPER_TEST_POSTGRES_URL` is set), token minting,
//! authenticated clients, error-detail assertions and seed helpers.
//!
//! Every test file does `#[macro_use] mod common;` and lists its scenarios in
//! `backend_tests!`, which turns each `async fn x(server: TestServer)` into the
//! tests `x::sqlite` and `x::postgres`.

// Each test crate uses a different subset of the harness.
#![allow(dead_code, unused_imports, unused_macros)]

use prost::{Message, Name};
pub use rolekeeper::pb;
use rolekeeper::pb::longrunning::{
    self as lro, ListOperationsRequest, Operation, WaitOperationRequest, operation,
    operations_client::OperationsClient,
};
use rolekeeper::pb::v1::{
    self as v1, AssignMembershipRolesRequest, AssignUserRolesRequest, CheckPermissionRequest,
    CheckPermissionResponse, CreateOrganizationRequest, CreateRoleRequest, CreateUserRequest,
    CreateWorkspaceMembershipRequest, CreateWorkspaceRequest, DeleteRoleRequest, DeleteUserRequest,
    GetWorkspaceMembershipRequest, ListUserRolesRequest, Organization, Permission, Role, RoleScope,
    User, UserRoles, Workspace, WorkspaceMembership, WorkspaceRole,
    organization_service_client::OrganizationServiceClient, role_service_client::RoleServiceClient,
    workspace_membership_service_client::WorkspaceMembershipServiceClient,
};
use sea_orm::{ConnectionTrait, Database};
use std::{fmt::Debug, future::Future, net::SocketAddr, time::Duration};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle, time::Instant};
use tonic::{
    Code, Request, Response, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::{ErrorDetails, StatusExt};

/// The HS256 secret every test server verifies tokens with.
pub const SECRET: &[u8] = b"rolekeeper-integration-test-secret";
/// The organization most scenarios work in.
pub const ORG: &str = "acme";
/// A second organization, for isolation checks.
pub const OTHER_ORG: &str = "globex";
/// `sub` of [`admin`] tokens.
pub const ADMIN_SUB: &str = "test-admin";
/// Longest a WaitOperation blocks on the test servers.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// The `ErrorInfo.domain` of every error.
pub const DOMAIN: &str = "rolekeeper.v1";

/// Resource types in `ResourceInfo`.
pub const T_ORGANIZATION: &str = "rolekeeper.v1.Organization";
pub const T_USER: &str = "rolekeeper.v1.User";
pub const T_WORKSPACE: &str = "rolekeeper.v1.Workspace";
pub const T_ROLE: &str = "rolekeeper.v1.Role";
pub const T_MEMBERSHIP: &str = "rolekeeper.v1.WorkspaceMembership";
pub const T_OPERATION: &str = "google.longrunning.Operation";

/// Turns scenarios `async fn x(server: TestServer)` into the tests
/// `x::sqlite` and `x::postgres` (the latter skipped unless
/// `ROLEKEEPER_TEST_POSTGRES_URL` is set).
macro_rules! backend_tests {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::common::run_scenario(crate::common::Backend::Sqlite, super::$scenario)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::common::run_scenario(crate::common::Backend::Postgres, super::$scenario)
                    .await;
            }
        }
    )+};
}

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server named by `ROLEKEEPER_TEST_POSTGRES_URL`.
    Postgres,
}

/// Starts a server on `backend`, runs `scenario` on it, and drops the
/// PostgreSQL database afterwards (best effort).
pub async fn run_scenario<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let cleanup = server.postgres.clone();
    scenario(server).await;
    if let Some(db) = cleanup {
        db.drop_database().await;
    }
}

/// A PostgreSQL database created for one test.
#[derive(Debug, Clone)]
struct PostgresDb {
    admin_url: String,
    name: String,
}

impl PostgresDb {
    async fn create(admin_url: &str) -> (Self, String) {
        let name = format!("rk_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(admin_url)
            .await
            .expect("connect to ROLEKEEPER_TEST_POSTGRES_URL");
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let url = replace_database(admin_url, &name);
        (
            Self {
                admin_url: admin_url.to_owned(),
                name,
            },
            url,
        )
    }

    async fn drop_database(&self) {
        if let Ok(conn) = Database::connect(&self.admin_url).await {
            let _ = conn
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .await;
            let _ = conn.close().await;
        }
    }
}

/// `postgres://u@h:5432/postgres?x=y` with the database replaced by `name`.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

struct Running {
    addr: SocketAddr,
    channel: Channel,
    shutdown: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), rolekeeper::Error>>,
}

async fn launch(database_url: &str, workers: usize) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (shutdown, rx) = oneshot::channel::<()>();
    let mut settings = rolekeeper::ServerSettings::new(database_url, SECRET);
    settings.workers = workers;
    settings.max_wait = MAX_WAIT;
    settings.drain_timeout = Duration::from_secs(5);
    let mut handle = tokio::spawn(rolekeeper::run(settings, listener, async move {
        let _ = rx.await;
    }));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy();
    // The server answers once migrations ran; any gRPC answer (even an
    // error status) means it is serving.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut health = HealthClient::new(channel.clone());
        tokio::select! {
            result = &mut handle => panic!("the server stopped while starting: {result:?}"),
            reply = health.check(HealthCheckRequest { service: String::new() }) => match reply {
                Ok(_) => break,
                Err(status) if status.code() != Code::Unavailable
                    && status.code() != Code::Unknown => break,
                Err(_) => {}
            },
        }
        assert!(
            Instant::now() < deadline,
            "the server did not answer within 60s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Running {
        addr,
        channel,
        shutdown,
        handle,
    }
}

/// A running server with its own database.
pub struct TestServer {
    backend: Backend,
    database_url: String,
    addr: SocketAddr,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), rolekeeper::Error>>>,
    postgres: Option<PostgresDb>,
    _dir: Option<TempDir>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestServer {
    /// Starts a server with 2 workers on a fresh database; `None` when the
    /// backend is not available (PostgreSQL without its URL), unless
    /// `REQUIRE_POSTGRES=1`.
    pub async fn start(backend: Backend) -> Option<Self> {
        let (database_url, dir, postgres) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("rolekeeper.db");
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    Some(dir),
                    None,
                )
            }
            Backend::Postgres => match std::env::var("ROLEKEEPER_TEST_POSTGRES_URL") {
                Ok(url) if !url.is_empty() => {
                    let (db, database_url) = PostgresDb::create(&url).await;
                    (database_url, None, Some(db))
                }
                _ => {
                    assert!(
                        std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
                        "REQUIRE_POSTGRES=1 but ROLEKEEPER_TEST_POSTGRES_URL is not set"
                    );
                    println!("skipped: ROLEKEEPER_TEST_POSTGRES_URL is not set");
                    return None;
                }
            },
        };
        let running = launch(&database_url, 2).await;
        Some(Self {
            backend,
            database_url,
            addr: running.addr,
            channel: running.channel,
            shutdown: Some(running.shutdown),
            handle: Some(running.handle),
            postgres,
            _dir: dir,
        })
    }

    /// The URL of this server's database.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The database this server uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The loopback address it listens on (changes on restart).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A raw channel, without any token.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Shuts the server down gracefully and waits for it to exit cleanly.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            match tokio::time::timeout(Duration::from_secs(60), handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(err))) => panic!("the server exited with an error: {err:?}"),
                Ok(Err(join)) => panic!("the server task failed: {join}"),
                Err(_) => panic!("the server did not shut down within 60s"),
            }
        }
    }

    /// Stops the server and starts a new one on the same database with
    /// `workers` operation workers (0: operations stay pending). Clients made
    /// before the restart are dead; make new ones.
    pub async fn restart(&mut self, workers: usize) {
        self.stop().await;
        let running = launch(&self.database_url, workers).await;
        self.addr = running.addr;
        self.channel = running.channel;
        self.shutdown = Some(running.shutdown);
        self.handle = Some(running.handle);
    }

    fn bearer(&self, token: &str) -> Authed {
        self.with(Bearer::token(token))
    }

    /// The channel with arbitrary `authorization` / `x-request-id` metadata.
    pub fn with(&self, bearer: Bearer) -> Authed {
        InterceptedService::new(self.channel(), bearer)
    }

    /// OrganizationService with `token`.
    pub fn orgs(&self, token: &str) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::new(self.bearer(token))
    }

    /// RoleService with `token`.
    pub fn roles(&self, token: &str) -> RoleServiceClient<Authed> {
        RoleServiceClient::new(self.bearer(token))
    }

    /// WorkspaceMembershipService with `token`.
    pub fn members(&self, token: &str) -> WorkspaceMembershipServiceClient<Authed> {
        WorkspaceMembershipServiceClient::new(self.bearer(token))
    }

    /// google.longrunning.Operations with `token`.
    pub fn ops(&self, token: &str) -> OperationsClient<Authed> {
        OperationsClient::new(self.bearer(token))
    }

    /// Waits (through WaitOperation, as admin) until `name` is done.
    pub async fn wait_done(&self, name: &str) -> Operation {
        let mut ops = self.ops(&admin());
        for _ in 0..5 {
            let op = ops
                .wait_operation(WaitOperationRequest {
                    name: name.to_owned(),
                    timeout: Some(prost_types::Duration {
                        seconds: MAX_WAIT.as_secs() as i64,
                        nanos: 0,
                    }),
                })
                .await
                .must();
            if op.done {
                return op;
            }
        }
        panic!("operation {name} is not done after 5 waits");
    }

    // ----- seed helpers (as admin) -----

    /// Creates organization `id` (with its seeded roles).
    pub async fn create_org(&self, id: &str) -> Organization {
        self.orgs(&admin())
            .create_organization(CreateOrganizationRequest {
                organization: Some(Organization {
                    organization_id: id.to_owned(),
                    display_name: format!("Organization {id}"),
                    create_time: None,
                }),
            })
            .await
            .must()
    }

    /// Creates a user with the given e-mail (empty: none).
    pub async fn create_user(&self, org: &str, id: &str, email: &str) -> User {
        self.create_user_with(
            org,
            User {
                user_id: id.to_owned(),
                email: email.to_owned(),
                display_name: format!("User {id}"),
                ..Default::default()
            },
        )
        .await
    }

    /// Creates `user` in `org`.
    pub async fn create_user_with(&self, org: &str, user: User) -> User {
        self.orgs(&admin())
            .create_user(CreateUserRequest {
                organization_id: org.to_owned(),
                user: Some(user),
            })
            .await
            .must()
    }

    /// Creates workspace `id`.
    pub async fn create_workspace(&self, org: &str, id: &str) -> Workspace {
        self.orgs(&admin())
            .create_workspace(CreateWorkspaceRequest {
                organization_id: org.to_owned(),
                workspace: Some(Workspace {
                    workspace_id: id.to_owned(),
                    display_name: format!("Workspace {id}"),
                    ..Default::default()
                }),
            })
            .await
            .must()
    }

    /// Creates role `id` of `scope` with `(permission, access)` pairs.
    pub async fn create_role(
        &self,
        org: &str,
        id: &str,
        scope: RoleScope,
        permissions: &[(&str, bool)],
    ) -> Role {
        self.roles(&admin())
            .create_role(CreateRoleRequest {
                organization_id: org.to_owned(),
                role: Some(role(id, scope, permissions)),
            })
            .await
            .must()
    }

    /// Creates a membership of `user` in `workspace` with base role `base`.
    pub async fn create_membership(
        &self,
        org: &str,
        workspace: &str,
        user: &str,
        base: WorkspaceRole,
    ) -> WorkspaceMembership {
        self.members(&admin())
            .create_workspace_membership(CreateWorkspaceMembershipRequest {
                organization_id: org.to_owned(),
                workspace_id: workspace.to_owned(),
                user_id: user.to_owned(),
                role: base as i32,
            })
            .await
            .must()
    }

    /// Runs AssignUserRoles to completion and returns the done operation.
    pub async fn assign_user_roles(&self, org: &str, user: &str, role_ids: &[&str]) -> Operation {
        let op = self
            .roles(&admin())
            .assign_user_roles(AssignUserRolesRequest {
                organization_id: org.to_owned(),
                user_id: user.to_owned(),
                role_ids: strings(role_ids),
                request_id: String::new(),
            })
            .await
            .must();
        let op = self.wait_done(&op.name).await;
        assert_op_succeeded(&op);
        op
    }

    /// Runs AssignMembershipRoles to completion and returns the done operation.
    pub async fn assign_membership_roles(
        &self,
        org: &str,
        workspace: &str,
        membership: &str,
        role_ids: &[&str],
    ) -> Operation {
        let op = self
            .members(&admin())
            .assign_membership_roles(AssignMembershipRolesRequest {
                organization_id: org.to_owned(),
                workspace_id: workspace.to_owned(),
                membership_id: membership.to_owned(),
                role_ids: strings(role_ids),
                request_id: String::new(),
            })
            .await
            .must();
        let op = self.wait_done(&op.name).await;
        assert_op_succeeded(&op);
        op
    }

    /// Runs `sql` on the server's database behind its back.
    pub async fn execute_sql(&self, sql: &str) {
        let db = Database::connect(self.database_url())
            .await
            .expect("connect to the test database");
        db.execute_unprepared(sql).await.expect("run the statement");
        let _ = db.close().await;
    }

    /// Deletes a user (as the organization's writer).
    pub async fn delete_user(&self, org: &str, id: &str) {
        self.orgs(&writer(org))
            .delete_user(DeleteUserRequest {
                organization_id: org.to_owned(),
                user_id: id.to_owned(),
            })
            .await
            .must();
    }

    /// Deletes a role without holders (as the organization's writer).
    pub async fn delete_role(&self, org: &str, id: &str) {
        self.roles(&writer(org))
            .delete_role(DeleteRoleRequest {
                organization_id: org.to_owned(),
                role_id: id.to_owned(),
                force: false,
            })
            .await
            .must();
    }

    /// The first page of operations on `target` (a resource name).
    pub async fn operations_on(&self, target: &str) -> Vec<Operation> {
        self.ops(&admin())
            .list_operations(ListOperationsRequest {
                filter: format!("target=\"{target}\""),
                ..Default::default()
            })
            .await
            .must()
            .operations
    }

    /// The ids of the organization roles `user` holds, sorted.
    pub async fn user_role_ids(&self, org: &str, user: &str) -> Vec<String> {
        let roles = self
            .roles(&admin())
            .list_user_roles(ListUserRolesRequest {
                organization_id: org.to_owned(),
                user_id: user.to_owned(),
            })
            .await
            .must();
        sorted(roles.roles.iter().map(|r| r.role_id.clone()))
    }

    /// Reads a membership back.
    pub async fn membership(
        &self,
        org: &str,
        workspace: &str,
        membership: &str,
    ) -> WorkspaceMembership {
        self.members(&admin())
            .get_workspace_membership(GetWorkspaceMembershipRequest {
                organization_id: org.to_owned(),
                workspace_id: workspace.to_owned(),
                membership_id: membership.to_owned(),
            })
            .await
            .must()
    }

    /// CheckPermission as admin; `workspace` empty for organization only.
    pub async fn check(
        &self,
        org: &str,
        user: &str,
        permission: &str,
        workspace: &str,
    ) -> CheckPermissionResponse {
        self.roles(&admin())
            .check_permission(CheckPermissionRequest {
                organization_id: org.to_owned(),
                user_id: user.to_owned(),
                permission: permission.to_owned(),
                workspace_id: workspace.to_owned(),
            })
            .await
            .must()
    }

    /// The common fixture: organization [`ORG`] with users `alice`
    /// (alice@example.com, aad `aad-alice`, auth0 `auth0|alice`), `bob`
    /// (bob@example.com) and `carol` (no identifiers), workspace `ws1`, and
    /// roles `reader` (docs.read), `writer` (docs.read, docs.write),
    /// `blocker` (denies docs.write) of organization scope and `ws-extra`
    /// (reports.read) of workspace scope.
    pub async fn seed(&self) {
        self.create_org(ORG).await;
        self.create_user_with(
            ORG,
            User {
                user_id: "alice".into(),
                email: "alice@example.com".into(),
                aad_id: "aad-alice".into(),
                auth0_id: "auth0|alice".into(),
                display_name: "Alice".into(),
                ..Default::default()
            },
        )
        .await;
        self.create_user(ORG, "bob", "bob@example.com").await;
        self.create_user(ORG, "carol", "").await;
        self.create_workspace(ORG, "ws1").await;
        self.create_role(
            ORG,
            "reader",
            RoleScope::Organization,
            &[("docs.read", true)],
        )
        .await;
        self.create_role(
            ORG,
            "writer",
            RoleScope::Organization,
            &[("docs.read", true), ("docs.write", true)],
        )
        .await;
        self.create_role(
            ORG,
            "blocker",
            RoleScope::Organization,
            &[("docs.write", false)],
        )
        .await;
        self.create_role(
            ORG,
            "ws-extra",
            RoleScope::Workspace,
            &[("reports.read", true)],
        )
        .await;
    }
}

// ----- tokens -----

/// A token signed with [`SECRET`], valid for an hour.
pub fn token(sub: &str, org: Option<&str>, scope: &str) -> String {
    rolekeeper::auth::mint_hs256(SECRET, sub, org, scope, Duration::from_secs(3600))
        .expect("mint a token")
}

/// An `admin` token (no organization).
pub fn admin() -> String {
    token(ADMIN_SUB, None, "admin")
}

/// `sub` of [`writer`] tokens of `org`.
pub fn writer_sub(org: &str) -> String {
    format!("writer-of-{org}")
}

/// An `organization:write` token of `org`.
pub fn writer(org: &str) -> String {
    token(&writer_sub(org), Some(org), "organization:write")
}

/// An `organization:read` token of `org`.
pub fn reader(org: &str) -> String {
    token(&format!("reader-of-{org}"), Some(org), "organization:read")
}

/// An `organization:write` token of [`OTHER_ORG`].
pub fn foreign() -> String {
    writer(OTHER_ORG)
}

// ----- clients -----

/// Adds `authorization: Bearer <token>` (and optionally `x-request-id`).
#[derive(Clone, Debug, Default)]
pub struct Bearer {
    authorization: Option<AsciiMetadataValue>,
    request_id: Option<AsciiMetadataValue>,
}

impl Bearer {
    /// Sends `token` as bearer token.
    pub fn token(token: &str) -> Self {
        Self {
            authorization: Some(header(&format!("Bearer {token}"))),
            request_id: None,
        }
    }

    /// Sends `value` verbatim as `authorization`.
    pub fn raw(value: &str) -> Self {
        Self {
            authorization: Some(header(value)),
            request_id: None,
        }
    }

    /// Sends no `authorization` at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Also sends `x-request-id: id`.
    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = Some(header(id));
        self
    }
}

fn header(value: &str) -> AsciiMetadataValue {
    value.parse().expect("ASCII metadata value")
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(value) = &self.request_id {
            request.metadata_mut().insert("x-request-id", value.clone());
        }
        Ok(request)
    }
}

/// The transport of the authenticated clients.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Unwrapping RPC results with the status in the panic message.
pub trait RpcResult<T> {
    /// The message of a successful call; panics on an error status.
    fn must(self) -> T;
    /// The status of a failed call; panics on success.
    fn fails(self) -> Status;
}

impl<T: Debug> RpcResult<T> for Result<Response<T>, Status> {
    #[track_caller]
    fn must(self) -> T {
        match self {
            Ok(response) => response.into_inner(),
            Err(status) => panic!(
                "expected success, got {:?}: {} {:?}",
                status.code(),
                status.message(),
                status.get_error_details()
            ),
        }
    }

    #[track_caller]
    fn fails(self) -> Status {
        match self {
            Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
            Err(status) => status,
        }
    }
}

// ----- error assertions -----

/// Asserts `status` has `code`, an `ErrorInfo` of domain `rolekeeper.v1` with
/// `reason`, and a non-empty `RequestInfo.request_id`; returns the details.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) -> ErrorDetails {
    assert_eq!(
        status.code(),
        code,
        "unexpected code; message: {}",
        status.message()
    );
    let details = status
        .check_error_details()
        .expect("grpc-status-details-bin decodes");
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {details:?}"));
    assert_eq!(info.domain, DOMAIN, "ErrorInfo.domain");
    assert_eq!(
        info.reason,
        reason,
        "ErrorInfo.reason; message: {}",
        status.message()
    );
    let request = details
        .request_info()
        .unwrap_or_else(|| panic!("no RequestInfo in {details:?}"));
    assert!(
        !request.request_id.is_empty(),
        "RequestInfo.request_id is empty"
    );
    details
}

/// Asserts INVALID_ARGUMENT with a `BadRequest` violation on `field`.
#[track_caller]
pub fn assert_invalid(status: &Status, field: &str) -> ErrorDetails {
    assert_violation(status, field, |f| f == field)
}

/// Asserts INVALID_ARGUMENT with a `BadRequest` violation on a field that
/// starts with `prefix` (e.g. `role.permissions[1]` for `...[1].name`).
#[track_caller]
pub fn assert_invalid_prefix(status: &Status, prefix: &str) -> ErrorDetails {
    assert_violation(status, &format!("{prefix}..."), |f| f.starts_with(prefix))
}

/// Asserts INVALID_ARGUMENT with a violation whose field `matches`.
#[track_caller]
fn assert_violation(status: &Status, wanted: &str, matches: impl Fn(&str) -> bool) -> ErrorDetails {
    let details = assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let fields: Vec<&str> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        fields.iter().any(|f| matches(f)),
        "expected a violation on `{wanted}`, got {fields:?} ({})",
        status.message()
    );
    details
}

/// Asserts NOT_FOUND of `resource_type` named `resource_name`.
#[track_caller]
pub fn assert_not_found(status: &Status, resource_type: &str, resource_name: &str) {
    let details = assert_error(status, Code::NotFound, "NOT_FOUND");
    let info = details
        .resource_info()
        .unwrap_or_else(|| panic!("no ResourceInfo in {details:?}"));
    assert_eq!(
        info.resource_type, resource_type,
        "ResourceInfo.resource_type"
    );
    assert_eq!(
        info.resource_name, resource_name,
        "ResourceInfo.resource_name"
    );
}

/// Asserts ALREADY_EXISTS with `reason` and a `ResourceInfo` of `resource_type`.
#[track_caller]
pub fn assert_already_exists(status: &Status, reason: &str, resource_type: &str) -> ErrorDetails {
    let details = assert_error(status, Code::AlreadyExists, reason);
    let info = details
        .resource_info()
        .unwrap_or_else(|| panic!("no ResourceInfo in {details:?}"));
    assert_eq!(
        info.resource_type, resource_type,
        "ResourceInfo.resource_type"
    );
    details
}

/// Asserts FAILED_PRECONDITION with `reason` and a `PreconditionFailure`.
#[track_caller]
pub fn assert_precondition(status: &Status, reason: &str) -> ErrorDetails {
    let details = assert_error(status, Code::FailedPrecondition, reason);
    assert!(
        details
            .precondition_failure()
            .is_some_and(|p| !p.violations.is_empty()),
        "no PreconditionFailure violations in {details:?}"
    );
    details
}

/// Asserts PERMISSION_DENIED with reason `ORGANIZATION_FORBIDDEN`.
#[track_caller]
pub fn assert_forbidden(status: &Status) {
    assert_error(status, Code::PermissionDenied, "ORGANIZATION_FORBIDDEN");
}

/// Asserts PERMISSION_DENIED `SCOPE_MISSING` naming `required_scope`.
#[track_caller]
pub fn assert_scope_missing(status: &Status, required_scope: &str) {
    let details = assert_error(status, Code::PermissionDenied, "SCOPE_MISSING");
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(
        info.metadata.get("required_scope").map(String::as_str),
        Some(required_scope),
        "ErrorInfo.metadata.required_scope"
    );
}

// ----- operations -----

/// The full `type_url` of message `T` in an `Any`.
pub fn type_url<T: Name>() -> String {
    format!("type.googleapis.com/{}", T::full_name())
}

/// Decodes `any` as `T`, checking that its `type_url` names `T` (the exact
/// `type.googleapis.com/` prefix is checked by the reflection tests).
#[track_caller]
pub fn unpack<T: Message + Default + Name>(any: &prost_types::Any) -> T {
    assert_eq!(
        any.type_url.rsplit('/').next(),
        Some(T::full_name().as_str()),
        "Any.type_url `{}` names {}",
        any.type_url,
        T::full_name()
    );
    T::decode(any.value.as_slice()).expect("Any.value decodes")
}

/// The `OperationMetadata` of `op`.
#[track_caller]
pub fn op_metadata(op: &Operation) -> v1::OperationMetadata {
    unpack(op.metadata.as_ref().expect("Operation.metadata is set"))
}

/// The response of a successfully done `op`.
#[track_caller]
pub fn op_response<T: Message + Default + Name>(op: &Operation) -> T {
    assert!(op.done, "operation {} is not done", op.name);
    match &op.result {
        Some(operation::Result::Response(any)) => unpack(any),
        other => panic!("operation {} has no response: {other:?}", op.name),
    }
}

/// The error of a failed, done `op`.
#[track_caller]
pub fn op_error(op: &Operation) -> pb::rpc::Status {
    assert!(op.done, "operation {} is not done", op.name);
    match &op.result {
        Some(operation::Result::Error(status)) => status.clone(),
        other => panic!("operation {} did not fail: {other:?}", op.name),
    }
}

/// Asserts `op` is done with a response.
#[track_caller]
pub fn assert_op_succeeded(op: &Operation) {
    assert!(op.done, "operation {} is not done", op.name);
    assert!(
        matches!(op.result, Some(operation::Result::Response(_))),
        "operation {} did not succeed: {:?}",
        op.name,
        op.result
    );
}

/// Asserts `name` is `operations/{uuid}`.
#[track_caller]
pub fn assert_operation_name(name: &str) {
    let id = name
        .strip_prefix("operations/")
        .unwrap_or_else(|| panic!("`{name}` does not start with operations/"));
    uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("`{name}` does not end in a UUID"));
}

/// The `retry-after` response metadata in whole seconds, if any.
pub fn retry_after(metadata: &MetadataMap) -> Option<u64> {
    metadata
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

// ----- building blocks -----

/// A permission input with `access` set.
pub fn perm(name: &str, access: bool) -> Permission {
    Permission {
        name: name.to_owned(),
        description: format!("{name} ({})", if access { "grant" } else { "deny" }),
        access: Some(access),
    }
}

/// A role input.
pub fn role(id: &str, scope: RoleScope, permissions: &[(&str, bool)]) -> Role {
    Role {
        role_id: id.to_owned(),
        name: format!("Role {id}"),
        description: format!("The {id} role"),
        scope: scope as i32,
        permissions: permissions.iter().map(|(n, a)| perm(n, *a)).collect(),
        ..Default::default()
    }
}

/// Owned strings.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Sorted owned strings.
pub fn sorted<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut v: Vec<String> = items.into_iter().map(Into::into).collect();
    v.sort();
    v
}

/// A fresh request id.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Asserts `id` is a UUIDv7 string.
#[track_caller]
pub fn assert_uuid_v7(id: &str) {
    let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("`{id}` is not a UUID"));
    assert_eq!(parsed.get_version_num(), 7, "`{id}` is not a UUIDv7");
}

/// Collects every page of a list RPC: `fetch(page_token)` returns one page
/// and its `next_page_token`. Panics after 100 pages.
pub async fn collect_pages<T, F, Fut>(mut fetch: F) -> (Vec<T>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<T>, String)>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    for pages in 1..=100 {
        let (page, next) = fetch(token).await;
        items.extend(page);
        if next.is_empty() {
            return (items, pages);
        }
        token = next;
    }
    panic!("more than 100 pages");
}
