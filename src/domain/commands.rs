//! The bulk changes that run as long-running operations. Each [`Command`]
//! is checked once when the RPC accepts it ([`Command::validate`], then
//! [`Service::check_references`]) and
//! again inside the worker's transaction ([`Service::apply_command`]), which
//! applies all of it or, if the world changed, nothing.

use super::{
    Service,
    directory::require_user,
    memberships::require_membership,
    model::{Membership, Memo, RoleMembersChange, RoleScope, UserRef, UserRoles},
    names::{self, types},
    roles::require_role,
    validate::{Checker, MAX_ROLE_IDS, MAX_USERS},
};
use crate::{
    error::{Error, Result},
    store::{
        directory::{self as dir, UserKey},
        memberships as ms, roles as db,
    },
};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A bulk change, as stored in its operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Give organization roles to a user.
    AssignUserRoles {
        /// Organization.
        organization_id: String,
        /// User.
        user_id: String,
        /// Organization-scope roles.
        role_ids: Vec<String>,
    },
    /// Take organization roles from a user.
    RevokeUserRoles {
        /// Organization.
        organization_id: String,
        /// User.
        user_id: String,
        /// Organization-scope roles.
        role_ids: Vec<String>,
    },
    /// Give one organization role to many users.
    AddRoleMembers {
        /// Organization.
        organization_id: String,
        /// Organization-scope role.
        role_id: String,
        /// The users.
        users: Vec<UserRef>,
    },
    /// Take one organization role from many users.
    RemoveRoleMembers {
        /// Organization.
        organization_id: String,
        /// Organization-scope role.
        role_id: String,
        /// The users.
        users: Vec<UserRef>,
    },
    /// Give workspace roles to a membership.
    AssignMembershipRoles {
        /// Organization.
        organization_id: String,
        /// Workspace.
        workspace_id: String,
        /// Membership.
        membership_id: String,
        /// Workspace-scope roles.
        role_ids: Vec<String>,
    },
    /// Take workspace roles from a membership.
    RevokeMembershipRoles {
        /// Organization.
        organization_id: String,
        /// Workspace.
        workspace_id: String,
        /// Membership.
        membership_id: String,
        /// Workspace-scope roles.
        role_ids: Vec<String>,
    },
}

/// What a successful command returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// After Assign/RevokeUserRoles.
    UserRoles(UserRoles),
    /// After Add/RemoveRoleMembers.
    RoleMembers(RoleMembersChange),
    /// After Assign/RevokeMembershipRoles.
    Membership(Membership),
}

impl Command {
    /// The RPC name, used as the operation's `verb`.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::AssignUserRoles { .. } => "AssignUserRoles",
            Self::RevokeUserRoles { .. } => "RevokeUserRoles",
            Self::AddRoleMembers { .. } => "AddRoleMembers",
            Self::RemoveRoleMembers { .. } => "RemoveRoleMembers",
            Self::AssignMembershipRoles { .. } => "AssignMembershipRoles",
            Self::RevokeMembershipRoles { .. } => "RevokeMembershipRoles",
        }
    }

    /// The organization it acts on.
    pub fn organization_id(&self) -> &str {
        match self {
            Self::AssignUserRoles {
                organization_id, ..
            }
            | Self::RevokeUserRoles {
                organization_id, ..
            }
            | Self::AddRoleMembers {
                organization_id, ..
            }
            | Self::RemoveRoleMembers {
                organization_id, ..
            }
            | Self::AssignMembershipRoles {
                organization_id, ..
            }
            | Self::RevokeMembershipRoles {
                organization_id, ..
            } => organization_id,
        }
    }

    /// The resource it changes; operations on one target run in order.
    pub fn target(&self) -> String {
        match self {
            Self::AssignUserRoles {
                organization_id,
                user_id,
                ..
            }
            | Self::RevokeUserRoles {
                organization_id,
                user_id,
                ..
            } => names::user(organization_id, user_id),
            Self::AddRoleMembers {
                organization_id,
                role_id,
                ..
            }
            | Self::RemoveRoleMembers {
                organization_id,
                role_id,
                ..
            } => names::role(organization_id, role_id),
            Self::AssignMembershipRoles {
                organization_id,
                workspace_id,
                membership_id,
                ..
            }
            | Self::RevokeMembershipRoles {
                organization_id,
                workspace_id,
                membership_id,
                ..
            } => names::membership(organization_id, workspace_id, membership_id),
        }
    }

    /// How many roles or users the request names.
    pub fn item_count(&self) -> usize {
        match self {
            Self::AssignUserRoles { role_ids, .. }
            | Self::RevokeUserRoles { role_ids, .. }
            | Self::AssignMembershipRoles { role_ids, .. }
            | Self::RevokeMembershipRoles { role_ids, .. } => role_ids.len(),
            Self::AddRoleMembers { users, .. } | Self::RemoveRoleMembers { users, .. } => {
                users.len()
            }
        }
    }

    /// Checks the shape of the request: ids, list sizes, duplicates.
    pub fn validate(&self) -> Result<()> {
        let mut check = Checker::new();
        check.id("organization_id", self.organization_id());
        match self {
            Self::AssignUserRoles {
                user_id, role_ids, ..
            }
            | Self::RevokeUserRoles {
                user_id, role_ids, ..
            } => {
                check.id("user_id", user_id);
                check.id_list("role_ids", role_ids, MAX_ROLE_IDS);
            }
            Self::AddRoleMembers { role_id, users, .. }
            | Self::RemoveRoleMembers { role_id, users, .. } => {
                check.id("role_id", role_id);
                check_user_refs(&mut check, users);
            }
            Self::AssignMembershipRoles {
                workspace_id,
                membership_id,
                role_ids,
                ..
            }
            | Self::RevokeMembershipRoles {
                workspace_id,
                membership_id,
                role_ids,
                ..
            } => {
                check.id("workspace_id", workspace_id);
                check.server_assigned("membership_id", membership_id);
                check.id_list("role_ids", role_ids, MAX_ROLE_IDS);
            }
        }
        check.finish()
    }
}

fn check_user_refs(check: &mut Checker, users: &[UserRef]) {
    if users.is_empty() || users.len() > MAX_USERS {
        check.fail(
            "users",
            format!("must hold between 1 and {MAX_USERS} users"),
        );
        return;
    }
    let mut seen = HashSet::with_capacity(users.len());
    for (i, user) in users.iter().enumerate() {
        let path = format!("users[{i}]");
        let key = match user {
            UserRef::UserId(id) => {
                check.id(&format!("{path}.user_id"), id);
                UserRef::UserId(id.clone())
            }
            UserRef::Email(email) => {
                check.email(&format!("{path}.email"), email);
                UserRef::Email(email.to_lowercase())
            }
            UserRef::AadId(aad) => {
                check.external_id(&format!("{path}.aad_id"), aad);
                user.clone()
            }
            UserRef::Auth0Id(auth0) => {
                check.external_id(&format!("{path}.auth0_id"), auth0);
                user.clone()
            }
        };
        if !seen.insert(key) {
            check.fail(path, "names the same user as an earlier entry");
        }
    }
}

/// Resolves user references to user ids, in request order. Unknown users
/// are `NOT_FOUND`; two references to one user are `INVALID_ARGUMENT`.
async fn resolve_users(
    conn: &impl ConnectionTrait,
    o: &str,
    users: &[UserRef],
) -> Result<Vec<String>> {
    let mut wanted: HashMap<UserKey, Vec<String>> = HashMap::new();
    let keyed: Vec<(UserKey, String)> = users
        .iter()
        .map(|u| match u {
            UserRef::UserId(v) => (UserKey::UserId, v.clone()),
            UserRef::Email(v) => (UserKey::Email, v.to_lowercase()),
            UserRef::AadId(v) => (UserKey::AadId, v.clone()),
            UserRef::Auth0Id(v) => (UserKey::Auth0Id, v.clone()),
        })
        .collect();
    for (key, value) in &keyed {
        wanted.entry(*key).or_default().push(value.clone());
    }
    let mut found: HashMap<(UserKey, String), String> = HashMap::new();
    for (key, values) in wanted {
        for (value, user_id) in dir::find_user_ids(conn, o, key, &values).await? {
            found.insert((key, value), user_id);
        }
    }
    let mut resolved = Vec::with_capacity(users.len());
    let mut seen = HashSet::with_capacity(users.len());
    for (i, (key, value)) in keyed.into_iter().enumerate() {
        let Some(user_id) = found.remove(&(key, value.clone())) else {
            let name = match key {
                UserKey::UserId => names::user(o, &value),
                UserKey::Email => format!("{}/users?email={value}", names::organization(o)),
                UserKey::AadId => format!("{}/users?aad_id={value}", names::organization(o)),
                UserKey::Auth0Id => format!("{}/users?auth0_id={value}", names::organization(o)),
            };
            return Err(Error::not_found(types::USER, name));
        };
        if !seen.insert(user_id.clone()) {
            return Err(Error::invalid(
                format!("users[{i}]"),
                format!("names user `{user_id}`, already named by an earlier entry"),
            ));
        }
        resolved.push(user_id);
    }
    Ok(resolved)
}

/// Checks that every role exists (`NOT_FOUND`) and has `scope`
/// (`INVALID_ARGUMENT` on `role_ids[i]`).
async fn require_roles(
    conn: &impl ConnectionTrait,
    o: &str,
    role_ids: &[String],
    scope: RoleScope,
) -> Result<()> {
    let scopes = db::role_scopes(conn, o, role_ids).await?;
    let mut check = Checker::new();
    for (i, id) in role_ids.iter().enumerate() {
        match scopes.get(id.as_str()) {
            None => return Err(Error::not_found(types::ROLE, names::role(o, id))),
            Some(s) if *s != scope => check.fail(
                format!("role_ids[{i}]"),
                format!(
                    "role `{id}` has {} scope, not {}",
                    s.as_str(),
                    scope.as_str()
                ),
            ),
            Some(_) => {}
        }
    }
    check.finish()
}

/// The organization-scope role of Add/Remove/ListRoleMembers.
pub async fn require_organization_role(
    conn: &impl ConnectionTrait,
    o: &str,
    r: &str,
) -> Result<()> {
    let role = require_role(conn, o, r).await?;
    if role.scope != RoleScope::Organization {
        return Err(Error::invalid(
            "role_id",
            format!("role `{r}` has workspace scope; role members are organization users"),
        ));
    }
    Ok(())
}

/// The roles `user_id` holds, with permissions.
pub async fn load_user_roles(conn: &impl ConnectionTrait, o: &str, u: &str) -> Result<UserRoles> {
    Ok(UserRoles {
        organization_id: o.to_owned(),
        user_id: u.to_owned(),
        roles: db::roles_of_user(conn, o, u)
            .await?
            .into_iter()
            .map(std::sync::Arc::new)
            .collect(),
        encoding: Memo::default(),
    })
}

impl Service {
    /// Checks, before a command is accepted, that everything it names
    /// exists and fits. Its shape was checked by [`Command::validate`].
    pub async fn check_references(&self, command: &Command) -> Result<()> {
        plan(self.store().reader(), command).await.map(drop)
    }

    /// Applies a command on `conn` (the worker's transaction), re-checking
    /// everything first: [`Service::recheck_command`], then
    /// [`Service::execute_command`].
    pub async fn apply_command(
        &self,
        conn: &impl ConnectionTrait,
        command: &Command,
        now: i64,
    ) -> Result<Outcome> {
        let checked = self.recheck_command(conn, command).await?;
        self.execute_command(conn, command, checked, now).await
    }

    /// Checks on `conn`, reading only, that `command` still fits the data.
    pub async fn recheck_command(
        &self,
        conn: &impl ConnectionTrait,
        command: &Command,
    ) -> Result<Checked> {
        command.validate()?;
        plan(conn, command).await.map(Checked)
    }

    /// Applies a re-checked command and reads its outcome. Every check was
    /// made before: what fails here is the database.
    pub async fn execute_command(
        &self,
        conn: &impl ConnectionTrait,
        command: &Command,
        checked: Checked,
        now: i64,
    ) -> Result<Outcome> {
        let Checked(resolved) = checked;
        match command {
            Command::AssignUserRoles {
                organization_id: o,
                user_id: u,
                role_ids,
            } => {
                let pairs: Vec<_> = role_ids.iter().map(|r| (u.clone(), r.clone())).collect();
                db::insert_user_roles(conn, o, &pairs, now).await?;
                Ok(Outcome::UserRoles(load_user_roles(conn, o, u).await?))
            }
            Command::RevokeUserRoles {
                organization_id: o,
                user_id: u,
                role_ids,
            } => {
                db::delete_user_roles(conn, o, u, role_ids).await?;
                Ok(Outcome::UserRoles(load_user_roles(conn, o, u).await?))
            }
            Command::AddRoleMembers {
                organization_id: o,
                role_id: r,
                ..
            } => {
                let holders = db::members_among(conn, o, r, &resolved).await?;
                let (unchanged, added): (Vec<_>, Vec<_>) =
                    resolved.into_iter().partition(|u| holders.contains(u));
                let pairs: Vec<_> = added.iter().map(|u| (u.clone(), r.clone())).collect();
                db::insert_user_roles(conn, o, &pairs, now).await?;
                Ok(Outcome::RoleMembers(RoleMembersChange {
                    organization_id: o.clone(),
                    role_id: r.clone(),
                    added_user_ids: added,
                    unchanged_user_ids: unchanged,
                    ..Default::default()
                }))
            }
            Command::RemoveRoleMembers {
                organization_id: o,
                role_id: r,
                ..
            } => {
                let holders = db::members_among(conn, o, r, &resolved).await?;
                let (removed, unchanged): (Vec<_>, Vec<_>) =
                    resolved.into_iter().partition(|u| holders.contains(u));
                db::delete_role_members(conn, o, r, &removed).await?;
                Ok(Outcome::RoleMembers(RoleMembersChange {
                    organization_id: o.clone(),
                    role_id: r.clone(),
                    removed_user_ids: removed,
                    unchanged_user_ids: unchanged,
                    ..Default::default()
                }))
            }
            Command::AssignMembershipRoles {
                organization_id: o,
                workspace_id: w,
                membership_id: m,
                role_ids,
            }
            | Command::RevokeMembershipRoles {
                organization_id: o,
                workspace_id: w,
                membership_id: m,
                role_ids,
            } => {
                if matches!(command, Command::AssignMembershipRoles { .. }) {
                    ms::insert_membership_roles(conn, o, m, role_ids, now).await?;
                } else {
                    ms::delete_membership_roles(conn, m, role_ids).await?;
                }
                ms::touch(conn, m, now).await?;
                Ok(Outcome::Membership(
                    require_membership(conn, o, w, m).await?,
                ))
            }
        }
    }
}

/// A command that passed [`Service::recheck_command`], with the user ids
/// it resolved (Add/RemoveRoleMembers).
#[derive(Debug)]
pub struct Checked(Vec<String>);

/// Checks that everything a command names exists and fits; returns the
/// resolved user ids of Add/RemoveRoleMembers (empty otherwise).
async fn plan(conn: &impl ConnectionTrait, command: &Command) -> Result<Vec<String>> {
    match command {
        Command::AssignUserRoles {
            organization_id: o,
            user_id: u,
            role_ids,
        }
        | Command::RevokeUserRoles {
            organization_id: o,
            user_id: u,
            role_ids,
        } => {
            require_user(conn, o, u).await?;
            require_roles(conn, o, role_ids, RoleScope::Organization).await?;
            Ok(Vec::new())
        }
        Command::AddRoleMembers {
            organization_id: o,
            role_id: r,
            users,
        }
        | Command::RemoveRoleMembers {
            organization_id: o,
            role_id: r,
            users,
        } => {
            require_organization_role(conn, o, r).await?;
            resolve_users(conn, o, users).await
        }
        Command::AssignMembershipRoles {
            organization_id: o,
            workspace_id: w,
            membership_id: m,
            role_ids,
        }
        | Command::RevokeMembershipRoles {
            organization_id: o,
            workspace_id: w,
            membership_id: m,
            role_ids,
        } => {
            require_membership(conn, o, w, m).await?;
            require_roles(conn, o, role_ids, RoleScope::Workspace).await?;
            Ok(Vec::new())
        }
    }
}

/// `INVALID_ARGUMENT` unless `request_id` is empty or a UUID (AIP-155).
pub fn check_request_id(request_id: &str) -> Result<()> {
    let mut check = Checker::new();
    check.request_id("request_id", request_id);
    check.finish()
}
