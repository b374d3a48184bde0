//! Seeding over gRPC: organizations, roles with permissions, users, their
//! role assignments (one AddRoleMembers operation per role), and a separate
//! bulk organization whose users the AddRoleMembers phase adds to one role.
//!
//! Names are functions of indices, so the load phases can pick a random
//! organization, user, role or permission without asking the server.

use crate::{
    BoxError, Result,
    clients::{Clients, wait_done},
    options::{SeedPlan, Settings},
};
use rolekeeper::pb::v1::{
    AddRoleMembersRequest, CreateOrganizationRequest, CreateRoleRequest, CreateUserRequest,
    Organization, Permission, Role, RoleScope, User, UserRef, user_ref,
};
use serde::Serialize;
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};
use tokio::task::JoinSet;

/// The organization holding the bulk users.
pub const BULK_ORG: &str = "bench-bulk";
/// The role the bulk users are added to.
pub const BULK_ROLE: &str = "bulk-role";

/// Organization `o`.
pub fn org_id(o: usize) -> String {
    format!("bench-{o:03}")
}

/// User `u` of an organization.
pub fn user_id(u: usize) -> String {
    format!("u{u:05}")
}

/// User `i` of the bulk organization.
pub fn bulk_user_id(i: usize) -> String {
    format!("b{i:05}")
}

/// Role `r` of an organization.
pub fn role_id(r: usize) -> String {
    format!("r{r:03}")
}

/// Permission names come from a universe four times a role's size, so
/// roles overlap and CheckPermission sees grants, denials and no grant.
pub fn permission_universe(plan: &SeedPlan) -> usize {
    plan.permissions * 4
}

/// Permission `p` of the universe.
pub fn permission_name(p: usize) -> String {
    format!("bench.perm{p:04}")
}

/// The permissions of role `r`: consecutive names from an offset, the last
/// one an explicit deny (when the role has more than one).
pub fn role_permissions(plan: &SeedPlan, r: usize) -> Vec<Permission> {
    let universe = permission_universe(plan);
    (0..plan.permissions)
        .map(|j| Permission {
            name: permission_name((r * 7 + j) % universe),
            description: String::new(),
            access: Some(j + 1 < plan.permissions || plan.permissions == 1),
        })
        .collect()
}

/// The roles user `u` holds: `roles_per_user` distinct roles spread evenly.
pub fn held_roles(plan: &SeedPlan, u: usize) -> impl Iterator<Item = usize> + '_ {
    let stride = (plan.roles / plan.roles_per_user.max(1)).max(1);
    (0..plan.roles_per_user).map(move |k| (u + k * stride) % plan.roles)
}

/// For each role, the users holding it.
fn members_by_role(plan: &SeedPlan) -> Vec<Vec<usize>> {
    let mut members = vec![Vec::new(); plan.roles];
    for u in 0..plan.users_per_org {
        for r in held_roles(plan, u) {
            members[r].push(u);
        }
    }
    members
}

/// What seeding did and how long each step took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Seeded {
    /// Seconds for organizations.
    pub orgs_seconds: f64,
    /// Seconds for roles.
    pub roles_seconds: f64,
    /// Seconds for users.
    pub users_seconds: f64,
    /// Seconds for the role assignments (operations submitted and done).
    pub assignments_seconds: f64,
    /// Seconds in all.
    pub total_seconds: f64,
}

/// Seeds everything in `settings.seed` with `settings.clients` concurrent
/// requests.
pub async fn seed(clients: &Clients, settings: &Settings) -> Result<Seeded> {
    let plan = settings.seed;
    let workers = settings.clients;
    let started = Instant::now();
    let orgs_seconds = timed("organizations", seed_orgs(clients, &plan, workers)).await?;
    let roles_seconds = timed("roles", seed_roles(clients, &plan, workers)).await?;
    let users_seconds = timed("users", seed_users(clients, &plan, workers)).await?;
    let assignments_seconds =
        timed("assignments", seed_assignments(clients, &plan, workers)).await?;
    Ok(Seeded {
        orgs_seconds,
        roles_seconds,
        users_seconds,
        assignments_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs a step and logs its duration.
async fn timed(step: &str, work: impl Future<Output = Result<()>>) -> Result<f64> {
    let started = Instant::now();
    work.await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("rolekeeper-bench: seeded {step} in {seconds:.1} s");
    Ok(seconds)
}

/// The regular organizations and the bulk one.
async fn seed_orgs(clients: &Clients, plan: &SeedPlan, workers: usize) -> Result<()> {
    let c = clients.clone();
    let orgs = plan.orgs;
    for_each(orgs + 1, workers, move |i| {
        let mut stub = c.orgs(i);
        let id = if i < orgs {
            org_id(i)
        } else {
            BULK_ORG.to_owned()
        };
        async move {
            let request = CreateOrganizationRequest {
                organization: Some(Organization {
                    display_name: format!("Benchmark {id}"),
                    organization_id: id,
                    create_time: None,
                }),
            };
            stub.create_organization(request).await?;
            Ok(())
        }
    })
    .await
}

/// `roles` organization roles in each organization, and the bulk role.
async fn seed_roles(clients: &Clients, plan: &SeedPlan, workers: usize) -> Result<()> {
    let c = clients.clone();
    let plan = *plan;
    let regular = plan.orgs * plan.roles;
    for_each(regular + 1, workers, move |i| {
        let mut stub = c.roles(i);
        let (org, r, id) = if i < regular {
            (
                org_id(i / plan.roles),
                i % plan.roles,
                role_id(i % plan.roles),
            )
        } else {
            (BULK_ORG.to_owned(), 0, BULK_ROLE.to_owned())
        };
        let role = Role {
            organization_id: org.clone(),
            name: format!("Benchmark role {id}"),
            role_id: id,
            scope: RoleScope::Organization as i32,
            permissions: role_permissions(&plan, r),
            ..Default::default()
        };
        async move {
            let request = CreateRoleRequest {
                organization_id: org,
                role: Some(role),
            };
            stub.create_role(request).await?;
            Ok(())
        }
    })
    .await
}

/// `users_per_org` users in each organization, and the bulk users.
async fn seed_users(clients: &Clients, plan: &SeedPlan, workers: usize) -> Result<()> {
    let c = clients.clone();
    let plan = *plan;
    let regular = plan.users();
    for_each(regular + plan.bulk_users, workers, move |i| {
        let mut stub = c.orgs(i);
        let (org, id) = if i < regular {
            (
                org_id(i / plan.users_per_org),
                user_id(i % plan.users_per_org),
            )
        } else {
            (BULK_ORG.to_owned(), bulk_user_id(i - regular))
        };
        let user = User {
            organization_id: org.clone(),
            email: format!("{id}@{org}.bench.test"),
            display_name: format!("User {id}"),
            user_id: id,
            ..Default::default()
        };
        async move {
            let request = CreateUserRequest {
                organization_id: org,
                user: Some(user),
            };
            stub.create_user(request).await?;
            Ok(())
        }
    })
    .await
}

/// One AddRoleMembers operation per role and organization, each waited for.
async fn seed_assignments(clients: &Clients, plan: &SeedPlan, workers: usize) -> Result<()> {
    let c = clients.clone();
    let plan = *plan;
    let members = Arc::new(members_by_role(&plan));
    for_each(plan.orgs * plan.roles, workers, move |i| {
        let mut roles = c.roles(i);
        let mut ops = c.ops(i);
        let r = i % plan.roles;
        let users: Vec<UserRef> = members[r]
            .iter()
            .map(|&u| UserRef {
                user: Some(user_ref::User::UserId(user_id(u))),
            })
            .collect();
        let request = AddRoleMembersRequest {
            organization_id: org_id(i / plan.roles),
            role_id: role_id(r),
            users,
            request_id: String::new(),
        };
        async move {
            if request.users.is_empty() {
                return Ok(());
            }
            let operation = roles.add_role_members(request).await?.into_inner();
            wait_done(&mut ops, operation).await
        }
    })
    .await
}

/// Tries per item when the server answers `UNAVAILABLE`.
const ATTEMPTS: u32 = 5;

/// Pause before the second try; it grows with each one.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

fn is_unavailable(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<tonic::Status>()
        .is_some_and(|status| status.code() == tonic::Code::Unavailable)
}

/// Runs `work(i)` for every `i` in `0..count` on `workers` concurrent tasks,
/// retrying one that meets `UNAVAILABLE`; stops at the first other error.
async fn for_each<F, Fut>(count: usize, workers: usize, work: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..workers.clamp(1, count.max(1)) {
        let work = Arc::clone(&work);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), BoxError>(());
                }
                let mut attempt = 1;
                loop {
                    match work(i).await {
                        Ok(()) => break,
                        // Like any client: UNAVAILABLE (a busy database) is retried.
                        Err(e) if attempt < ATTEMPTS && is_unavailable(&*e) => {
                            tokio::time::sleep(RETRY_PAUSE * attempt).await;
                            attempt += 1;
                        }
                        Err(e) => return Err(format!("item {i}: {e}").into()),
                    }
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| format!("seeding task: {e}"))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_retried() {
        let busy: BoxError = tonic::Status::unavailable("busy").into();
        let missing: BoxError = tonic::Status::not_found("gone").into();
        let other: BoxError = "no status".into();
        assert!(is_unavailable(&*busy));
        assert!(!is_unavailable(&*missing));
        assert!(!is_unavailable(&*other));
    }

    fn plan() -> SeedPlan {
        SeedPlan {
            orgs: 2,
            users_per_org: 10,
            roles: 50,
            permissions: 20,
            roles_per_user: 3,
            bulk_users: 5,
        }
    }

    #[test]
    fn users_hold_distinct_roles() {
        let plan = plan();
        for u in 0..plan.users_per_org {
            let mut held: Vec<usize> = held_roles(&plan, u).collect();
            held.sort_unstable();
            held.dedup();
            assert_eq!(held.len(), plan.roles_per_user);
            assert!(held.iter().all(|&r| r < plan.roles));
        }
        let assigned: usize = members_by_role(&plan).iter().map(Vec::len).sum();
        assert_eq!(assigned, plan.users_per_org * plan.roles_per_user);
    }

    #[test]
    fn role_permissions_are_unique_and_end_with_a_deny() {
        let plan = plan();
        let permissions = role_permissions(&plan, 49);
        let mut names: Vec<&str> = permissions.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), plan.permissions);
        assert_eq!(permissions.last().and_then(|p| p.access), Some(false));
        assert_eq!(permissions[0].access, Some(true));
    }
}
