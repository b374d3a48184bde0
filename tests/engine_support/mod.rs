//! Support for the operations-engine tests: databases shared by several
//! servers, in-process replicas with their own settings (workers, lease,
//! retention), planned changes with a model that replays them in acceptance
//! order, and (PostgreSQL) row locks that hold a worker inside its
//! transaction for as long as a test needs. Shared by several test
//! crates, each of which uses part of it.

#![allow(dead_code, unused_macros)]

use crate::common::{
    Authed, Backend, Bearer, MAX_WAIT, RpcResult, SECRET, admin, op_metadata, op_response,
    role as role_input, sorted, strings,
};
use rolekeeper::pb::{
    longrunning::{
        GetOperationRequest, Operation, WaitOperationRequest, operations_client::OperationsClient,
    },
    v1::{
        self, RoleMembersChange, RoleScope, UserRoles, WorkspaceMembership, WorkspaceRole,
        organization_service_client::OrganizationServiceClient,
        role_service_client::RoleServiceClient, user_ref,
        workspace_membership_service_client::WorkspaceMembershipServiceClient,
    },
};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, TransactionTrait,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle, time::Instant};
use tonic::{
    Code, Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Turns `async fn x(db: TestDb)` into the tests `x::sqlite` and
/// `x::postgres` (the latter skipped without `ROLEKEEPER_TEST_POSTGRES_URL`,
/// failed with `REQUIRE_POSTGRES=1`).
macro_rules! engine_tests {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::engine_support::run(crate::common::Backend::Sqlite, super::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::engine_support::run(crate::common::Backend::Postgres, super::$scenario)
                    .await;
            }
        }
    )+};
}

/// Like `engine_tests!`, for scenarios that need PostgreSQL (several
/// replicas, row locks): only the test `x::postgres`.
macro_rules! postgres_tests {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::engine_support::run(crate::common::Backend::Postgres, super::$scenario)
                    .await;
            }
        }
    )+};
}

/// Creates a database for `backend`, runs `scenario` on it and drops the
/// PostgreSQL database afterwards (best effort).
pub async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    scenario(db.clone()).await;
    db.drop_database().await;
}

/// A fresh database that any number of servers (PostgreSQL) or one server
/// at a time (SQLite) may use.
#[derive(Clone, Debug)]
pub struct TestDb {
    /// What the servers connect to.
    pub url: String,
    /// `(admin URL, database name)` of a PostgreSQL database.
    postgres: Option<(String, String)>,
    _dir: Arc<TempDir>,
}

impl TestDb {
    /// A SQLite file in a temporary directory, or a new database on the
    /// PostgreSQL server of `ROLEKEEPER_TEST_POSTGRES_URL` (`None`: skip).
    pub async fn create(backend: Backend) -> Option<Self> {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        if backend == Backend::Sqlite {
            let path = dir.path().join("rolekeeper.db");
            return Some(Self {
                url: format!("sqlite://{}?mode=rwc", path.display()),
                postgres: None,
                _dir: dir,
            });
        }
        let admin_url = crate::process_support::postgres_admin_url()?;
        let name = format!("rk_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(&admin_url)
            .await
            .expect("connect to ROLEKEEPER_TEST_POSTGRES_URL");
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        Some(Self {
            url: crate::common::replace_database(&admin_url, &name),
            postgres: Some((admin_url, name)),
            _dir: dir,
        })
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// A temporary directory that lives as long as the database (for child
    /// processes' logs).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A direct connection, for what the API cannot do (holding locks,
    /// reading lease owners).
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    async fn drop_database(&self) {
        let Some((admin_url, name)) = &self.postgres else {
            return;
        };
        if let Ok(conn) = Database::connect(admin_url).await {
            let _ = conn
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
            let _ = conn.close().await;
        }
    }
}

/// Settings of a test replica: the defaults of `rolekeeper serve` with the
/// test secret, 20 s `WaitOperation` and a short drain.
pub fn settings(db: &TestDb, workers: usize) -> rolekeeper::ServerSettings {
    let mut settings = rolekeeper::ServerSettings::new(db.url.clone(), SECRET.to_vec());
    settings.workers = workers;
    settings.max_wait = MAX_WAIT;
    settings.drain_timeout = Duration::from_secs(5);
    settings
}

/// An in-process server (`rolekeeper::run`) on its own loopback port.
pub struct Replica {
    /// Admin clients of this replica.
    pub api: Api,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), rolekeeper::Error>>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Replica {
    /// Starts a replica on `db` with `workers` operation workers.
    pub async fn start(db: &TestDb, workers: usize) -> Self {
        Self::start_with(settings(db, workers)).await
    }

    /// Starts a replica with `settings` and waits until it answers.
    pub async fn start_with(settings: rolekeeper::ServerSettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (shutdown, rx) = oneshot::channel::<()>();
        let mut handle = tokio::spawn(rolekeeper::run(settings, listener, async move {
            let _ = rx.await;
        }));
        let api = Api::connect(addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut health = HealthClient::new(api.channel.clone());
            tokio::select! {
                result = &mut handle => panic!("the replica stopped while starting: {result:?}"),
                reply = health.check(HealthCheckRequest { service: String::new() }) => {
                    if reply.is_ok() {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            api,
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    /// Shuts it down gracefully and checks it exited cleanly.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            match tokio::time::timeout(Duration::from_secs(60), handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(err))) => panic!("the replica exited with an error: {err:?}"),
                Ok(Err(join)) => panic!("the replica task failed: {join}"),
                Err(_) => panic!("the replica did not shut down within 60 s"),
            }
        }
    }
}

/// Admin clients of one server (in-process or a child process).
#[derive(Clone, Debug)]
pub struct Api {
    channel: Channel,
}

impl Api {
    /// Clients of the server at `addr` (connected lazily).
    pub fn connect(addr: SocketAddr) -> Self {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        Self { channel }
    }

    fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), Bearer::token(&admin()))
    }

    /// OrganizationService.
    pub fn orgs(&self) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::new(self.authed())
    }

    /// RoleService.
    pub fn roles(&self) -> RoleServiceClient<Authed> {
        RoleServiceClient::new(self.authed())
    }

    /// WorkspaceMembershipService.
    pub fn members(&self) -> WorkspaceMembershipServiceClient<Authed> {
        WorkspaceMembershipServiceClient::new(self.authed())
    }

    /// google.longrunning.Operations.
    pub fn ops(&self) -> OperationsClient<Authed> {
        OperationsClient::new(self.authed())
    }

    /// GetOperation.
    pub async fn get_op(&self, name: &str) -> Result<Operation, Status> {
        self.ops()
            .get_operation(GetOperationRequest {
                name: name.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// WaitOperation with the longest timeout, repeated (at most 6 times)
    /// until the operation is done.
    pub async fn wait_done(&self, name: &str) -> Operation {
        for _ in 0..6 {
            let op = self
                .ops()
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
        panic!("operation {name} is not done after 6 waits");
    }

    // ----- seeding -----

    /// Creates organization `org`.
    pub async fn create_org(&self, org: &str) {
        self.orgs()
            .create_organization(v1::CreateOrganizationRequest {
                organization: Some(v1::Organization {
                    organization_id: org.to_owned(),
                    ..Default::default()
                }),
            })
            .await
            .must();
    }

    /// Creates users `ids` in `org`, several at a time.
    pub async fn create_users(&self, org: &str, ids: &[String]) {
        for batch in ids.chunks(16) {
            let calls = batch.iter().map(|id| {
                let mut orgs = self.orgs();
                let request = v1::CreateUserRequest {
                    organization_id: org.to_owned(),
                    user: Some(v1::User {
                        user_id: id.clone(),
                        ..Default::default()
                    }),
                };
                async move { orgs.create_user(request).await.must() }
            });
            futures_join_all(calls).await;
        }
    }

    /// Creates roles `ids` of `scope` (no permissions) in `org`.
    pub async fn create_roles(&self, org: &str, scope: RoleScope, ids: &[&str]) {
        for id in ids {
            self.roles()
                .create_role(v1::CreateRoleRequest {
                    organization_id: org.to_owned(),
                    role: Some(role_input(id, scope, &[])),
                })
                .await
                .must();
        }
    }

    /// Creates workspace `ws` with a viewer membership of `user`; returns
    /// the membership id.
    pub async fn create_membership(&self, org: &str, ws: &str, user: &str) -> String {
        self.orgs()
            .create_workspace(v1::CreateWorkspaceRequest {
                organization_id: org.to_owned(),
                workspace: Some(v1::Workspace {
                    workspace_id: ws.to_owned(),
                    ..Default::default()
                }),
            })
            .await
            .must();
        self.members()
            .create_workspace_membership(v1::CreateWorkspaceMembershipRequest {
                organization_id: org.to_owned(),
                workspace_id: ws.to_owned(),
                user_id: user.to_owned(),
                role: WorkspaceRole::Viewer as i32,
            })
            .await
            .must()
            .membership_id
    }

    // ----- reading the data back -----

    /// The role ids `user` holds.
    pub async fn user_roles(&self, org: &str, user: &str) -> BTreeSet<String> {
        self.roles()
            .list_user_roles(v1::ListUserRolesRequest {
                organization_id: org.to_owned(),
                user_id: user.to_owned(),
            })
            .await
            .must()
            .roles
            .into_iter()
            .map(|r| r.role_id)
            .collect()
    }

    /// The additional role ids of a membership.
    pub async fn membership_roles(
        &self,
        org: &str,
        ws: &str,
        membership: &str,
    ) -> BTreeSet<String> {
        self.members()
            .get_workspace_membership(v1::GetWorkspaceMembershipRequest {
                organization_id: org.to_owned(),
                workspace_id: ws.to_owned(),
                membership_id: membership.to_owned(),
            })
            .await
            .must()
            .roles
            .into_iter()
            .map(|r| r.role_id)
            .collect()
    }

    /// What `holder` holds now.
    pub async fn holdings(&self, org: &str, holder: &Holder) -> BTreeSet<String> {
        match holder {
            Holder::User(user) => self.user_roles(org, user).await,
            Holder::Membership(ws, m) => self.membership_roles(org, ws, m).await,
        }
    }
}

/// `join_all` without the `futures` crate: runs the futures concurrently on
/// the runtime and collects their outputs in order.
pub async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// `Result<T, Status>` helpers with the status in the panic message.
pub trait StatusResult<T> {
    /// The value; panics on an error status.
    fn must_ok(self) -> T;
}

impl<T> StatusResult<T> for Result<T, Status> {
    #[track_caller]
    fn must_ok(self) -> T {
        self.unwrap_or_else(|status| {
            panic!(
                "expected success, got {:?}: {}",
                status.code(),
                status.message()
            )
        })
    }
}

// ----- planned changes and their model -----

/// Something that holds roles.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// An organization user (organization roles).
    User(String),
    /// A workspace membership `(workspace, membership id)` (workspace roles).
    Membership(String, String),
}

/// One bulk change, as submitted.
#[derive(Clone, Debug)]
pub enum Change {
    /// AssignUserRoles.
    Assign(String, Vec<String>),
    /// RevokeUserRoles.
    Revoke(String, Vec<String>),
    /// AddRoleMembers `(role, users)`.
    AddMembers(String, Vec<String>),
    /// RemoveRoleMembers `(role, users)`.
    RemoveMembers(String, Vec<String>),
    /// AssignMembershipRoles `(workspace, membership, roles)`.
    AssignMembership(String, String, Vec<String>),
    /// RevokeMembershipRoles `(workspace, membership, roles)`.
    RevokeMembership(String, String, Vec<String>),
}

impl Change {
    /// Submits it to `api` in `org`; the accepted (usually not yet done)
    /// operation, or the RPC's error.
    pub async fn submit(
        &self,
        api: &Api,
        org: &str,
        request_id: &str,
    ) -> Result<Operation, Status> {
        let org = org.to_owned();
        let request_id = request_id.to_owned();
        let refs = |users: &[String]| {
            users
                .iter()
                .map(|u| v1::UserRef {
                    user: Some(user_ref::User::UserId(u.clone())),
                })
                .collect::<Vec<_>>()
        };
        let reply = match self.clone() {
            Self::Assign(user_id, role_ids) => {
                api.roles()
                    .assign_user_roles(v1::AssignUserRolesRequest {
                        organization_id: org,
                        user_id,
                        role_ids,
                        request_id,
                    })
                    .await
            }
            Self::Revoke(user_id, role_ids) => {
                api.roles()
                    .revoke_user_roles(v1::RevokeUserRolesRequest {
                        organization_id: org,
                        user_id,
                        role_ids,
                        request_id,
                    })
                    .await
            }
            Self::AddMembers(role_id, users) => {
                api.roles()
                    .add_role_members(v1::AddRoleMembersRequest {
                        organization_id: org,
                        role_id,
                        users: refs(&users),
                        request_id,
                    })
                    .await
            }
            Self::RemoveMembers(role_id, users) => {
                api.roles()
                    .remove_role_members(v1::RemoveRoleMembersRequest {
                        organization_id: org,
                        role_id,
                        users: refs(&users),
                        request_id,
                    })
                    .await
            }
            Self::AssignMembership(workspace_id, membership_id, role_ids) => {
                api.members()
                    .assign_membership_roles(v1::AssignMembershipRolesRequest {
                        organization_id: org,
                        workspace_id,
                        membership_id,
                        role_ids,
                        request_id,
                    })
                    .await
            }
            Self::RevokeMembership(workspace_id, membership_id, role_ids) => {
                api.members()
                    .revoke_membership_roles(v1::RevokeMembershipRolesRequest {
                        organization_id: org,
                        workspace_id,
                        membership_id,
                        role_ids,
                        request_id,
                    })
                    .await
            }
        };
        reply.map(tonic::Response::into_inner)
    }

    /// `(holder, role, holds afterwards)` for every pair it sets.
    fn effects(&self) -> Vec<(Holder, String, bool)> {
        let each = |holder: &Holder, roles: &[String], holds: bool| {
            roles
                .iter()
                .map(|r| (holder.clone(), r.clone(), holds))
                .collect::<Vec<_>>()
        };
        match self {
            Self::Assign(u, roles) => each(&Holder::User(u.clone()), roles, true),
            Self::Revoke(u, roles) => each(&Holder::User(u.clone()), roles, false),
            Self::AddMembers(r, users) | Self::RemoveMembers(r, users) => users
                .iter()
                .map(|u| {
                    (
                        Holder::User(u.clone()),
                        r.clone(),
                        matches!(self, Self::AddMembers(..)),
                    )
                })
                .collect(),
            Self::AssignMembership(w, m, roles) => {
                each(&Holder::Membership(w.clone(), m.clone()), roles, true)
            }
            Self::RevokeMembership(w, m, roles) => {
                each(&Holder::Membership(w.clone(), m.clone()), roles, false)
            }
        }
    }
}

/// What every holder holds, built by applying changes one after another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Roles per holder.
    pub held: BTreeMap<Holder, BTreeSet<String>>,
}

impl Model {
    /// What `holder` holds.
    pub fn of(&self, holder: &Holder) -> BTreeSet<String> {
        self.held.get(holder).cloned().unwrap_or_default()
    }

    /// Applies `change`, and checks that `op` (its done, successful
    /// operation) reported exactly the result of applying it to the state
    /// before: the holder's roles afterwards, or which members changed.
    #[track_caller]
    pub fn apply_and_check(&mut self, change: &Change, op: &Operation) {
        let before = self.clone();
        for (holder, role, holds) in change.effects() {
            let roles = self.held.entry(holder).or_default();
            if holds {
                roles.insert(role);
            } else {
                roles.remove(&role);
            }
        }
        let name = &op.name;
        match change {
            Change::Assign(user, _) | Change::Revoke(user, _) => {
                let got: UserRoles = op_response(op);
                let got: BTreeSet<String> = got.roles.into_iter().map(|r| r.role_id).collect();
                assert_eq!(
                    got,
                    self.of(&Holder::User(user.clone())),
                    "{name} ({change:?}) reported other roles than sequential application gives"
                );
            }
            Change::AssignMembership(w, m, _) | Change::RevokeMembership(w, m, _) => {
                let got: WorkspaceMembership = op_response(op);
                let got: BTreeSet<String> = got.roles.into_iter().map(|r| r.role_id).collect();
                assert_eq!(
                    got,
                    self.of(&Holder::Membership(w.clone(), m.clone())),
                    "{name} ({change:?}) reported other roles than sequential application gives"
                );
            }
            Change::AddMembers(role, users) | Change::RemoveMembers(role, users) => {
                let got: RoleMembersChange = op_response(op);
                let adding = matches!(change, Change::AddMembers(..));
                let (changed, unchanged): (Vec<&String>, Vec<&String>) = users
                    .iter()
                    .partition(|u| before.of(&Holder::User((*u).clone())).contains(role) != adding);
                let reported = if adding {
                    &got.added_user_ids
                } else {
                    &got.removed_user_ids
                };
                assert_eq!(
                    sorted(reported.iter().cloned()),
                    sorted(changed.into_iter().cloned()),
                    "{name} ({change:?}) changed other members than sequential application gives"
                );
                assert_eq!(
                    sorted(got.unchanged_user_ids.iter().cloned()),
                    sorted(unchanged.into_iter().cloned()),
                    "{name} ({change:?}) left other members unchanged than expected"
                );
            }
        }
        let meta = op_metadata(op);
        assert_eq!(
            meta.processed_items, meta.requested_items,
            "{name}: processed_items of a succeeded operation"
        );
    }
}

/// Owned role-id lists from literals.
pub fn ids(items: &[&str]) -> Vec<String> {
    strings(items)
}

/// Asserts the status of a done operation's error has `code`.
#[track_caller]
pub fn assert_op_code(op: &Operation, code: Code) {
    let error = crate::common::op_error(op);
    assert_eq!(error.code, code as i32, "{}: {error:?}", op.name);
}

// ----- PostgreSQL row locks -----

/// An open transaction that inserted (without committing) some
/// `user_roles` rows: a worker that inserts the same row waits inside its
/// transaction until the lock is released, holding its operation meanwhile.
pub struct RowLocks {
    txn: DatabaseTransaction,
    conn: DatabaseConnection,
    pid: i32,
}

impl RowLocks {
    /// Locks `(user, role)` assignments of `org` (users and roles must
    /// exist; none may be held yet).
    pub async fn hold(db: &TestDb, org: &str, pairs: &[(&str, &str)]) -> Self {
        assert!(db.is_postgres(), "row locks need PostgreSQL");
        let conn = db.connect().await;
        let txn = conn.begin().await.expect("BEGIN");
        for (user, role) in pairs {
            txn.execute_unprepared(&format!(
                "INSERT INTO user_roles (organization_id, user_id, role_id, create_time) \
                 VALUES ('{org}', '{user}', '{role}', 0)"
            ))
            .await
            .expect("insert the locking row");
        }
        let pid = query_i64(&txn, "SELECT pg_backend_pid()::bigint AS n").await;
        Self {
            txn,
            conn,
            pid: i32::try_from(pid).expect("pid"),
        }
    }

    /// Waits (at most 30 s) until at least `count` database sessions wait
    /// for these rows, i.e. that many workers are stuck inside their
    /// transactions.
    pub async fn wait_blocked(&self, count: i64) {
        for _ in 0..600 {
            if self.blocked().await >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {count} workers blocked on the locked rows within 30 s");
    }

    /// How many database sessions wait for these rows now.
    pub async fn blocked(&self) -> i64 {
        let sql = format!(
            "SELECT count(*)::bigint AS n FROM pg_stat_activity \
             WHERE {} = ANY(pg_blocking_pids(pid))",
            self.pid
        );
        query_i64(&self.conn, &sql).await
    }

    /// Rolls the rows back, letting the blocked workers go on.
    pub async fn release(self) {
        self.txn.rollback().await.expect("ROLLBACK");
        let _ = self.conn.close().await;
    }
}

async fn query_i64(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    conn.query_one(sea_orm::Statement::from_string(
        conn.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .expect("query")
    .expect("one row")
    .try_get::<i64>("", "n")
    .expect("column n")
}
