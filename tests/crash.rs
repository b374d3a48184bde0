//! Crash safety: concurrent clients submit 1,000 operations (assign, revoke,
//! add and remove members, and some invalid ones) to the real binary, which
//! is killed with SIGKILL twice while operations run and restarted in place.
//! Clients retry lost submissions with the same `request_id` (AIP-155).
//! Afterwards the test proves from the data that every accepted operation
//! was applied exactly once, in acceptance order, and that every rejected
//! one changed nothing. Runs on SQLite and (when configured) PostgreSQL.

mod process_support;

use process_support::{SECRET, Server, database_url, free_addr};
use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rolekeeper::pb::{
    longrunning::{
        ListOperationsRequest, Operation, WaitOperationRequest, operation,
        operations_client::OperationsClient,
    },
    v1::{
        self, OperationMetadata, RoleMembersChange, UserRoles,
        organization_service_client::OrganizationServiceClient,
        role_service_client::RoleServiceClient, user_ref,
    },
};
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tonic::{Code, Request, transport::Channel};

const ORG: &str = "crash";
const CLIENTS: usize = 4;
const OPS_PER_CLIENT: usize = 250;
const USERS_PER_CLIENT: usize = 10;
/// Roles changed through user targets (Assign/RevokeUserRoles).
const USER_ROLES: [&str; 4] = ["ur0", "ur1", "ur2", "ur3"];
/// Roles changed through role targets (Add/RemoveRoleMembers).
const MEMBER_ROLES: [&str; 3] = ["mr0", "mr1", "mr2"];
/// Kill the server when this many operations were accepted.
const KILL_AT: [usize; 2] = [300, 650];

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

fn user(client: usize, n: usize) -> String {
    format!("c{client}u{n}")
}

/// One planned submission.
#[derive(Debug, Clone)]
enum Planned {
    Assign(String, Vec<String>),
    Revoke(String, Vec<String>),
    Add(String, Vec<String>),
    Remove(String, Vec<String>),
    /// Names a role that does not exist: must be rejected, change nothing.
    Invalid(String),
}

fn plan(client: usize, rng: &mut StdRng) -> Vec<Planned> {
    (0..OPS_PER_CLIENT)
        .map(|_| {
            let u = user(client, rng.random_range(0..USERS_PER_CLIENT));
            let pick = |rng: &mut StdRng, from: &[&str]| {
                let n = rng.random_range(1..=from.len());
                let mut chosen: Vec<String> = from.iter().map(|s| s.to_string()).collect();
                chosen.shuffle(rng);
                chosen.truncate(n);
                chosen
            };
            let users = |rng: &mut StdRng| {
                let mut all: Vec<String> = (0..USERS_PER_CLIENT).map(|n| user(client, n)).collect();
                all.shuffle(rng);
                all.truncate(rng.random_range(1..=4));
                all
            };
            match rng.random_range(0..100) {
                0..=29 => Planned::Assign(u, pick(rng, &USER_ROLES)),
                30..=54 => Planned::Revoke(u, pick(rng, &USER_ROLES)),
                55..=74 => Planned::Add(MEMBER_ROLES[rng.random_range(0..3)].into(), users(rng)),
                75..=94 => Planned::Remove(MEMBER_ROLES[rng.random_range(0..3)].into(), users(rng)),
                _ => Planned::Invalid(u),
            }
        })
        .collect()
}

/// Submits one planned operation, retrying with the same request id while
/// the server is down. `Ok(name)` when accepted, `Err(code)` when rejected.
async fn submit(
    roles: &mut RoleServiceClient<Channel>,
    token: &str,
    planned: &Planned,
    request_id: &str,
) -> Result<String, Code> {
    let refs = |users: &[String]| {
        users
            .iter()
            .map(|u| v1::UserRef {
                user: Some(user_ref::User::UserId(u.clone())),
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..600 {
        let result = match planned {
            Planned::Assign(u, r) => {
                roles
                    .assign_user_roles(authed(
                        v1::AssignUserRolesRequest {
                            organization_id: ORG.into(),
                            user_id: u.clone(),
                            role_ids: r.clone(),
                            request_id: request_id.into(),
                        },
                        token,
                    ))
                    .await
            }
            Planned::Revoke(u, r) => {
                roles
                    .revoke_user_roles(authed(
                        v1::RevokeUserRolesRequest {
                            organization_id: ORG.into(),
                            user_id: u.clone(),
                            role_ids: r.clone(),
                            request_id: request_id.into(),
                        },
                        token,
                    ))
                    .await
            }
            Planned::Add(r, users) => {
                roles
                    .add_role_members(authed(
                        v1::AddRoleMembersRequest {
                            organization_id: ORG.into(),
                            role_id: r.clone(),
                            users: refs(users),
                            request_id: request_id.into(),
                        },
                        token,
                    ))
                    .await
            }
            Planned::Remove(r, users) => {
                roles
                    .remove_role_members(authed(
                        v1::RemoveRoleMembersRequest {
                            organization_id: ORG.into(),
                            role_id: r.clone(),
                            users: refs(users),
                            request_id: request_id.into(),
                        },
                        token,
                    ))
                    .await
            }
            Planned::Invalid(u) => {
                roles
                    .assign_user_roles(authed(
                        v1::AssignUserRolesRequest {
                            organization_id: ORG.into(),
                            user_id: u.clone(),
                            role_ids: vec!["no-such-role".into()],
                            request_id: request_id.into(),
                        },
                        token,
                    ))
                    .await
            }
        };
        match result {
            Ok(op) => return Ok(op.into_inner().name),
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
                ) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => return Err(status.code()),
        }
    }
    panic!("the server did not come back within 60 s");
}

/// What one client saw.
#[derive(Default)]
struct Outcome {
    accepted: Vec<(String, String)>,
    rejected: Vec<String>,
}

async fn seed(channel: &Channel, token: &str) {
    let mut orgs = OrganizationServiceClient::new(channel.clone());
    let mut roles = RoleServiceClient::new(channel.clone());
    orgs.create_organization(authed(
        v1::CreateOrganizationRequest {
            organization: Some(v1::Organization {
                organization_id: ORG.into(),
                ..Default::default()
            }),
        },
        token,
    ))
    .await
    .expect("organization");
    for client in 0..CLIENTS {
        for n in 0..USERS_PER_CLIENT {
            orgs.create_user(authed(
                v1::CreateUserRequest {
                    organization_id: ORG.into(),
                    user: Some(v1::User {
                        user_id: user(client, n),
                        ..Default::default()
                    }),
                },
                token,
            ))
            .await
            .expect("user");
        }
    }
    for role in USER_ROLES.iter().chain(MEMBER_ROLES.iter()) {
        roles
            .create_role(authed(
                v1::CreateRoleRequest {
                    organization_id: ORG.into(),
                    role: Some(v1::Role {
                        role_id: (*role).into(),
                        name: (*role).into(),
                        ..Default::default()
                    }),
                },
                token,
            ))
            .await
            .expect("role");
    }
}

async fn list_all(ops: &mut OperationsClient<Channel>, token: &str) -> Vec<Operation> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ops
            .list_operations(authed(
                ListOperationsRequest {
                    name: String::new(),
                    filter: String::new(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                },
                token,
            ))
            .await
            .expect("list operations")
            .into_inner();
        all.extend(page.operations);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// Replays the listed operations (acceptance order) on a model and checks
/// each one's recorded response against it. Returns the model.
fn replay(listed: &[Operation]) -> HashMap<(String, String), bool> {
    let mut held: HashMap<(String, String), bool> = HashMap::new();
    for op in listed {
        let meta =
            OperationMetadata::decode(op.metadata.as_ref().expect("metadata").value.as_slice())
                .expect("metadata decodes");
        let Some(operation::Result::Response(response)) = &op.result else {
            panic!("{} did not succeed: {:?}", op.name, op.result);
        };
        let target = meta
            .target
            .rsplit('/')
            .next()
            .expect("target id")
            .to_owned();
        match meta.verb.as_str() {
            verb @ ("AssignUserRoles" | "RevokeUserRoles") => {
                let got = UserRoles::decode(response.value.as_slice()).expect("UserRoles");
                let request: BTreeSet<String> =
                    got.roles.iter().map(|r| r.role_id.clone()).collect();
                let _ = request;
                let holds = verb == "AssignUserRoles";
                // The request's roles are not in the metadata; derive them
                // from the response: after Assign they are held, after
                // Revoke they are not. Check the whole user-role subset.
                let after: BTreeSet<String> = got
                    .roles
                    .iter()
                    .map(|r| r.role_id.clone())
                    .filter(|r| USER_ROLES.contains(&r.as_str()))
                    .collect();
                for role in USER_ROLES {
                    let was = held
                        .get(&(target.clone(), role.to_owned()))
                        .copied()
                        .unwrap_or(false);
                    let now = after.contains(role);
                    // A role changes only in the direction of the verb.
                    assert!(
                        now == was || now == holds,
                        "{}: {role} went from {was} to {now} under {verb}",
                        op.name
                    );
                    held.insert((target.clone(), role.to_owned()), now);
                }
            }
            verb @ ("AddRoleMembers" | "RemoveRoleMembers") => {
                let got = RoleMembersChange::decode(response.value.as_slice()).expect("change");
                let changed = if verb == "AddRoleMembers" {
                    &got.added_user_ids
                } else {
                    &got.removed_user_ids
                };
                for u in changed {
                    let key = (u.clone(), target.clone());
                    let was = held.get(&key).copied().unwrap_or(false);
                    assert_eq!(
                        was,
                        verb != "AddRoleMembers",
                        "{}: {u} changed twice",
                        op.name
                    );
                    held.insert(key, verb == "AddRoleMembers");
                }
                for u in &got.unchanged_user_ids {
                    let was = held
                        .get(&(u.clone(), target.clone()))
                        .copied()
                        .unwrap_or(false);
                    assert_eq!(
                        was,
                        verb == "AddRoleMembers",
                        "{}: {u} should have changed",
                        op.name
                    );
                }
            }
            other => panic!("unexpected verb {other}"),
        }
    }
    held
}

async fn crash_scenario(postgres: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(db) = database_url(postgres, dir.path()).await else {
        return;
    };
    let envs = [
        ("ROLEKEEPER_HS256_SECRET", SECRET),
        ("ROLEKEEPER_DATABASE_URL", db.as_str()),
        ("ROLEKEEPER_WORKERS", "2"),
    ];
    let addr = free_addr();
    let mut server = Server::start_at(addr, dir.path(), &[], &envs);
    let token = rolekeeper::auth::mint_hs256(
        SECRET.as_bytes(),
        "crash-test",
        None,
        "admin",
        Duration::from_secs(3600),
    )
    .expect("mint");
    let channel = Channel::from_shared(server.url())
        .expect("url")
        .connect_lazy();
    seed(&channel, &token).await;

    let accepted_count = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let mut roles = RoleServiceClient::new(channel.clone());
        let token = token.clone();
        let counter = accepted_count.clone();
        clients.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(client as u64 + 7);
            let mut outcome = Outcome::default();
            for planned in plan(client, &mut rng) {
                let request_id = uuid::Uuid::new_v4().to_string();
                match submit(&mut roles, &token, &planned, &request_id).await {
                    Ok(name) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        outcome.accepted.push((name, request_id));
                    }
                    Err(code) => {
                        assert!(
                            matches!(planned, Planned::Invalid(_)),
                            "{planned:?} rejected with {code:?}"
                        );
                        outcome.rejected.push(request_id);
                    }
                }
            }
            outcome
        }));
    }

    let mut kills = 0;
    for threshold in KILL_AT {
        while accepted_count.load(Ordering::Relaxed) < threshold {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill9();
        kills += 1;
        server = Server::start_at(addr, dir.path(), &[], &envs);
    }

    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for client in clients {
        let outcome = client.await.expect("client");
        accepted.extend(outcome.accepted);
        rejected.extend(outcome.rejected);
    }

    let mut ops = OperationsClient::new(channel.clone());
    for (name, _) in &accepted {
        let mut done = false;
        for _ in 0..10 {
            let op = ops
                .wait_operation(authed(
                    WaitOperationRequest {
                        name: name.clone(),
                        timeout: Some(prost_types::Duration {
                            seconds: 10,
                            nanos: 0,
                        }),
                    },
                    &token,
                ))
                .await
                .expect("accepted operation exists")
                .into_inner();
            if op.done {
                done = true;
                break;
            }
        }
        assert!(done, "{name} never finished");
    }

    let listed = list_all(&mut ops, &token).await;
    let listed_names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    let accepted_names: HashSet<&str> = accepted.iter().map(|(n, _)| n.as_str()).collect();
    let lost = accepted_names
        .iter()
        .filter(|n| !listed_names.contains(n))
        .count();
    let unique_listed: HashSet<&str> = listed_names.iter().copied().collect();
    let doubled = listed_names.len() - accepted_names.len().min(listed_names.len());
    let listed_request_ids: HashSet<String> = listed
        .iter()
        .map(|o| {
            OperationMetadata::decode(o.metadata.as_ref().expect("metadata").value.as_slice())
                .expect("metadata")
                .request_id
        })
        .collect();
    let rejected_but_listed = rejected
        .iter()
        .filter(|r| listed_request_ids.contains(*r))
        .count();
    eprintln!(
        "crash test ({}): accepted {}, applied {}, lost {lost}, doubled {doubled}, rejected {} (listed {rejected_but_listed}), kill/restart cycles {kills}",
        if postgres { "PostgreSQL" } else { "SQLite" },
        accepted.len(),
        listed.len(),
        rejected.len()
    );
    assert_eq!(lost, 0, "accepted operations were lost");
    assert_eq!(unique_listed.len(), listed_names.len());
    assert_eq!(listed.len(), accepted.len(), "operations were doubled");
    assert_eq!(
        rejected_but_listed, 0,
        "a rejected request became an operation"
    );
    assert_eq!(accepted.len() + rejected.len(), CLIENTS * OPS_PER_CLIENT);

    let model = replay(&listed);
    let mut roles = RoleServiceClient::new(channel.clone());
    for client in 0..CLIENTS {
        for n in 0..USERS_PER_CLIENT {
            let u = user(client, n);
            let held: BTreeSet<String> = roles
                .list_user_roles(authed(
                    v1::ListUserRolesRequest {
                        organization_id: ORG.into(),
                        user_id: u.clone(),
                    },
                    &token,
                ))
                .await
                .expect("user roles")
                .into_inner()
                .roles
                .into_iter()
                .map(|r| r.role_id)
                .collect();
            for role in USER_ROLES {
                let expected = model
                    .get(&(u.clone(), role.to_owned()))
                    .copied()
                    .unwrap_or(false);
                assert_eq!(held.contains(role), expected, "{u} {role}");
            }
            for role in MEMBER_ROLES {
                let expected = model
                    .get(&(u.clone(), role.to_owned()))
                    .copied()
                    .unwrap_or(false);
                assert_eq!(held.contains(role), expected, "{u} {role}");
            }
        }
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_and_doubles_nothing_sqlite() {
    crash_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_and_doubles_nothing_postgres() {
    crash_scenario(true).await;
}
