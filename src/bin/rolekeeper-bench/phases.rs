//! The measured phases, in order: idle memory; the health ceiling and the
//! three reads, taking turns; the raw commit baseline and completed
//! AssignUserRoles operations, taking turns; and one AddRoleMembers with the
//! bulk users.

use crate::{
    Result,
    clients::{Clients, wait_done},
    commit, fail,
    load::{RequestFuture, Sample, Shape, Stats, closed_loop, mix},
    options::{SeedPlan, Settings},
    process::{Memory, ServerProcess},
    seed,
};
use bytes::Bytes;
use rolekeeper::pb::v1::{
    AddRoleMembersRequest, AssignUserRolesRequest, CheckPermissionRequest, CheckPermissionResponse,
    GetRoleRequest, ListUserRolesRequest, RevokeUserRolesRequest, Role, UserRef, UserRoles,
    user_ref,
};
use serde::Serialize;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
};
use tonic_prost::prost::Message;

// The methods of the health and read phases.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const GET_ROLE: &str = "/rolekeeper.v1.RoleService/GetRole";
const LIST_USER_ROLES: &str = "/rolekeeper.v1.RoleService/ListUserRoles";
const CHECK_PERMISSION: &str = "/rolekeeper.v1.RoleService/CheckPermission";

/// Quiet time after seeding before the idle memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// Warm-up of every slice but a phase's first: the connections and caches
/// are warm by then, this only lets the previous phase's load drain.
const SLICE_WARMUP: Duration = Duration::from_millis(200);

/// Everything the phases measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// `grpc.health.v1.Health/Check`: the gRPC ceiling.
    pub health: Stats,
    /// `RoleService/GetRole`.
    pub get_role: Stats,
    /// `RoleService/ListUserRoles`.
    pub list_user_roles: Stats,
    /// `RoleService/CheckPermission`.
    pub check_permission: Stats,
    /// Raw single-row commits on the same kind of database.
    pub raw_commit: Stats,
    /// AssignUserRoles and RevokeUserRoles, alternating, from submit to done.
    pub assign_ops: Stats,
    /// The single large AddRoleMembers.
    pub add_members: AddMembers,
    /// Server memory after seeding, idle.
    pub memory_idle: Memory,
    /// Server memory at the end of the load phases (largest `VmRSS` seen
    /// right after a phase; `peak_mib` is `VmHWM` then).
    pub memory_load: Memory,
    /// Server memory after each round of load phases.
    pub memory_rounds: Vec<Memory>,
    /// Server memory at the very end (after AddRoleMembers).
    pub memory_end: Memory,
}

/// The AddRoleMembers measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AddMembers {
    /// Users in the request.
    pub users: usize,
    /// Milliseconds until the RPC returned the accepted operation.
    pub accept_ms: f64,
    /// Seconds from accepted to done.
    pub done_seconds: f64,
}

/// The throughput phases of one round.
struct Round {
    health: Stats,
    get_role: Stats,
    list_user_roles: Stats,
    check_permission: Stats,
    /// Measured in the first round only.
    raw_commit: Option<Stats>,
    assign_ops: Stats,
}

/// Runs every phase against the seeded server: `settings.rounds` rounds of
/// the throughput phases (the first one reported), then AddRoleMembers.
pub async fn run_all(
    settings: &Settings,
    clients: &Clients,
    server: &ServerProcess,
    baseline_url: &str,
) -> Result<Results> {
    verify_reads(clients, settings.seed).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let memory_idle = server.memory()?;
    let mut load_memory = LoadMemory::default();
    let first = round(
        settings,
        clients,
        server,
        Some(baseline_url),
        &mut load_memory,
    )
    .await?;
    let mut memory_rounds = vec![server.memory()?];
    for n in 2..=settings.rounds {
        eprintln!("rolekeeper-bench: round {n} of {}", settings.rounds);
        round(settings, clients, server, None, &mut load_memory).await?;
        memory_rounds.push(server.memory()?);
    }
    let add_members = add_members(clients, settings.seed.bulk_users).await?;
    let memory_end = server.memory()?;
    Ok(Results {
        health: first.health,
        get_role: first.get_role,
        list_user_roles: first.list_user_roles,
        check_permission: first.check_permission,
        raw_commit: first
            .raw_commit
            .ok_or("the first round measures raw commits")?,
        assign_ops: first.assign_ops,
        add_members,
        memory_idle,
        memory_load: load_memory.0,
        memory_rounds,
        memory_end,
    })
}

/// One round of the throughput phases; with `baseline_url`, the raw commit
/// baseline too.
async fn round(
    settings: &Settings,
    clients: &Clients,
    server: &ServerProcess,
    baseline_url: Option<&str>,
    load_memory: &mut LoadMemory,
) -> Result<Round> {
    let shape = Shape {
        clients: settings.clients,
        warmup: settings.warmup,
        duration: settings.duration,
    };
    let plan = settings.seed;
    let decode = settings.decode_answers;
    let reads: Vec<(&str, Request)> = vec![
        ("Health/Check", Arc::new(health(clients, decode))),
        ("GetRole", Arc::new(get_role(clients, plan, decode))),
        (
            "ListUserRoles",
            Arc::new(list_user_roles(clients, plan, decode)),
        ),
        (
            "CheckPermission",
            Arc::new(check_permission(clients, plan, decode)),
        ),
    ];
    let [health, get_role, list_user_roles, check_permission] =
        interleaved(shape, settings.slices, reads, server, load_memory)
            .await?
            .try_into()
            .map_err(|_| "four read phases")?;
    let baseline = match baseline_url {
        Some(url) => Some(commit::Baseline::open(url).await?),
        None => None,
    };
    let mut writes: Vec<(&str, Request)> = Vec::new();
    if let Some(baseline) = &baseline {
        writes.push(("raw commit", Arc::new(baseline.request())));
    }
    writes.push(("AssignUserRoles", Arc::new(assign(clients, plan))));
    let mut writes = interleaved(shape, settings.slices, writes, server, load_memory).await?;
    if let Some(baseline) = baseline {
        baseline.close().await;
    }
    let assign_ops = writes.pop().ok_or("the assign phase")?;
    Ok(Round {
        health,
        get_role,
        list_user_roles,
        check_permission,
        raw_commit: writes.pop(),
        assign_ops,
    })
}

/// A request closure as [`interleaved`] takes it.
type Request = Arc<dyn Fn(usize, u64) -> RequestFuture + Send + Sync>;

/// Runs `phases` in turn, `slices` times over, each slice an equal share of
/// `shape.duration`, so that a phase and its baseline are measured over the
/// same stretch of a noisy machine. The first slice of each phase warms up
/// for `shape.warmup`, later ones for [`SLICE_WARMUP`]. Returns each phase's
/// figures over all its slices, in order.
async fn interleaved(
    shape: Shape,
    slices: usize,
    phases: Vec<(&str, Request)>,
    server: &ServerProcess,
    load_memory: &mut LoadMemory,
) -> Result<Vec<Stats>> {
    let mut samples: Vec<Sample> = phases.iter().map(|_| Sample::default()).collect();
    let slice = shape.duration / u32::try_from(slices)?;
    for n in 0..slices {
        let warmup = if n == 0 {
            shape.warmup
        } else {
            SLICE_WARMUP.min(shape.warmup)
        };
        let shape = Shape {
            warmup,
            duration: slice,
            ..shape
        };
        for ((name, request), sample) in phases.iter().zip(&mut samples) {
            let request = Arc::clone(request);
            let measured = closed_loop(shape, move |client, sequence| request(client, sequence))
                .await
                .map_err(|e| format!("phase {name}: {e}"))?;
            sample.extend(measured);
            load_memory.sample(server)?;
        }
    }
    let stats: Vec<Stats> = samples.into_iter().map(Sample::stats).collect();
    for ((name, _), stats) in phases.iter().zip(&stats) {
        log(name, stats);
    }
    Ok(stats)
}

/// The largest resident size seen right after a load phase.
#[derive(Debug, Default)]
struct LoadMemory(Memory);

impl LoadMemory {
    fn sample(&mut self, server: &ServerProcess) -> Result<()> {
        let now = server.memory()?;
        if now.rss_mib >= self.0.rss_mib {
            self.0 = now;
        }
        Ok(())
    }
}

/// Logs a phase's figures.
fn log(name: &str, stats: &Stats) {
    eprintln!(
        "rolekeeper-bench: {name}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        stats.rps, stats.p50_ms, stats.p99_ms, stats.errors
    );
    if let Some(error) = &stats.first_error {
        eprintln!("rolekeeper-bench: {name}: first error: {error}");
    }
}

/// A random organization, and a random index below `n`, for one request.
fn pick(plan: &SeedPlan, client: usize, sequence: u64, salt: u64, n: usize) -> (String, usize) {
    let x = mix(client, sequence, salt);
    let org = (x % plan.orgs as u64) as usize;
    let index = ((x >> 20) % n.max(1) as u64) as usize;
    (seed::org_id(org), index)
}

/// Decodes a read's `answer` as `M` when the run decodes answers, as a
/// typed client would (and drops it).
fn take<M: Message + Default>(answer: Bytes, decode: bool) -> Result<()> {
    if decode {
        M::decode(answer)?;
    }
    Ok(())
}

/// `grpc.health.v1.Health/Check` for the whole server; the answer must say
/// SERVING.
fn health(
    clients: &Clients,
    decode: bool,
) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
    let clients = clients.clone();
    let serving = HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    };
    let serving_bytes = Bytes::from(serving.encode_to_vec());
    move |client, _| {
        let unary = clients.unary(client, false);
        let serving_bytes = serving_bytes.clone();
        Box::pin(async move {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let answer = unary.call(HEALTH_CHECK, request).await?;
            let fine = if decode {
                HealthCheckResponse::decode(answer.clone())? == serving
            } else {
                answer == serving_bytes
            };
            if fine {
                Ok(())
            } else {
                fail(format!("health answer {answer:?}"))
            }
        })
    }
}

/// `RoleService/GetRole` of a random role.
fn get_role(
    clients: &Clients,
    plan: SeedPlan,
    decode: bool,
) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
    let clients = clients.clone();
    move |client, sequence| {
        let unary = clients.unary(client, true);
        let (organization_id, r) = pick(&plan, client, sequence, 1, plan.roles);
        Box::pin(async move {
            let request = GetRoleRequest {
                organization_id,
                role_id: seed::role_id(r),
            };
            take::<Role>(unary.call(GET_ROLE, request).await?, decode)
        })
    }
}

/// `RoleService/ListUserRoles` of a random user.
fn list_user_roles(
    clients: &Clients,
    plan: SeedPlan,
    decode: bool,
) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
    let clients = clients.clone();
    move |client, sequence| {
        let unary = clients.unary(client, true);
        let (organization_id, u) = pick(&plan, client, sequence, 2, plan.users_per_org);
        Box::pin(async move {
            let request = ListUserRolesRequest {
                organization_id,
                user_id: seed::user_id(u),
            };
            take::<UserRoles>(unary.call(LIST_USER_ROLES, request).await?, decode)
        })
    }
}

/// `RoleService/CheckPermission` of a random user and permission name.
fn check_permission(
    clients: &Clients,
    plan: SeedPlan,
    decode: bool,
) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
    let clients = clients.clone();
    move |client, sequence| {
        let unary = clients.unary(client, true);
        let (organization_id, u) = pick(&plan, client, sequence, 3, plan.users_per_org);
        let p = (mix(client, sequence, 4) % seed::permission_universe(&plan) as u64) as usize;
        Box::pin(async move {
            let request = CheckPermissionRequest {
                organization_id,
                user_id: seed::user_id(u),
                permission: seed::permission_name(p),
                workspace_id: String::new(),
            };
            take::<CheckPermissionResponse>(unary.call(CHECK_PERMISSION, request).await?, decode)
        })
    }
}

/// Calls each read once with a typed client and checks its answer against
/// the seed, so that a load that takes answers undecoded measures answers
/// known to be right.
async fn verify_reads(clients: &Clients, plan: SeedPlan) -> Result<()> {
    let mut roles = clients.roles(0);
    let organization_id = seed::org_id(0);
    let role_id = seed::role_id(0);
    let role = roles
        .get_role(GetRoleRequest {
            organization_id: organization_id.clone(),
            role_id: role_id.clone(),
        })
        .await?
        .into_inner();
    if role.role_id != role_id || role.permissions.len() != plan.permissions {
        return fail(format!(
            "GetRole answered role {:?} with {} permissions, expected {role_id:?} with {}",
            role.role_id,
            role.permissions.len(),
            plan.permissions
        ));
    }
    let user_id = seed::user_id(0);
    let held = roles
        .list_user_roles(ListUserRolesRequest {
            organization_id: organization_id.clone(),
            user_id: user_id.clone(),
        })
        .await?
        .into_inner();
    if held.user_id != user_id || held.roles.len() != plan.roles_per_user {
        return fail(format!(
            "ListUserRoles answered {} roles of {:?}, expected {} of {user_id:?}",
            held.roles.len(),
            held.user_id,
            plan.roles_per_user
        ));
    }
    let Some(permission) = held.roles.first().and_then(|r| r.permissions.first()) else {
        return Ok(());
    };
    let check = roles
        .check_permission(CheckPermissionRequest {
            organization_id,
            user_id,
            permission: permission.name.clone(),
            workspace_id: String::new(),
        })
        .await?
        .into_inner();
    if check.matched_role_ids.is_empty() {
        return fail(format!(
            "CheckPermission found no role of user 0 granting or denying {:?}",
            permission.name
        ));
    }
    Ok(())
}

/// `RoleService/AssignUserRoles` of a random role to a random user, then
/// `RevokeUserRoles` of the same role from the same user, alternating; each
/// until done (its answer, or WaitOperation): one completed operation per
/// request. Alternating keeps the data the same size, so that every round
/// does the same work and memory can be compared between rounds.
fn assign(
    clients: &Clients,
    plan: SeedPlan,
) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
    let clients = clients.clone();
    move |client, sequence| {
        let mut roles = clients.roles(client);
        let mut ops = clients.ops(client);
        let pair = sequence / 2;
        let (organization_id, u) = pick(&plan, client, pair, 5, plan.users_per_org);
        let r = (mix(client, pair, 6) % plan.roles as u64) as usize;
        let user_id = seed::user_id(u);
        let role_ids = vec![seed::role_id(r)];
        Box::pin(async move {
            let operation = if sequence % 2 == 0 {
                let request = AssignUserRolesRequest {
                    organization_id,
                    user_id,
                    role_ids,
                    request_id: String::new(),
                };
                roles.assign_user_roles(request).await?
            } else {
                let request = RevokeUserRolesRequest {
                    organization_id,
                    user_id,
                    role_ids,
                    request_id: String::new(),
                };
                roles.revoke_user_roles(request).await?
            };
            wait_done(&mut ops, operation.into_inner()).await
        })
    }
}

/// One AddRoleMembers with every bulk user: the time to accept it, and the
/// time from accepted to done.
async fn add_members(clients: &Clients, users: usize) -> Result<AddMembers> {
    let request = AddRoleMembersRequest {
        organization_id: seed::BULK_ORG.to_owned(),
        role_id: seed::BULK_ROLE.to_owned(),
        users: (0..users)
            .map(|i| UserRef {
                user: Some(user_ref::User::UserId(seed::bulk_user_id(i))),
            })
            .collect(),
        request_id: String::new(),
    };
    let mut roles = clients.roles(0);
    let mut ops = clients.ops(0);
    let submitted = Instant::now();
    let operation = roles.add_role_members(request).await?.into_inner();
    let accepted = Instant::now();
    wait_done(&mut ops, operation).await?;
    let result = AddMembers {
        users,
        accept_ms: (accepted - submitted).as_secs_f64() * 1000.0,
        done_seconds: accepted.elapsed().as_secs_f64(),
    };
    eprintln!(
        "rolekeeper-bench: AddRoleMembers {users} users: accepted in {:.1} ms, done {:.3} s later",
        result.accept_ms, result.done_seconds
    );
    Ok(result)
}
