//! The resources of the service as plain Rust values (no protobuf, no ORM).
//! Times are microseconds since the Unix epoch.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::{
    fmt,
    sync::{Arc, OnceLock},
};

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Id.
    pub organization_id: String,
    /// Human readable name.
    pub display_name: String,
    /// Creation time.
    pub create_time: Micros,
}

/// An organization user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Organization.
    pub organization_id: String,
    /// Id.
    pub user_id: String,
    /// E-mail, as given.
    pub email: Option<String>,
    /// Azure AD object id.
    pub aad_id: Option<String>,
    /// Auth0 user id.
    pub auth0_id: Option<String>,
    /// Human readable name.
    pub display_name: String,
    /// Creation time.
    pub create_time: Micros,
}

/// A workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Organization.
    pub organization_id: String,
    /// Id.
    pub workspace_id: String,
    /// Human readable name.
    pub display_name: String,
    /// Creation time.
    pub create_time: Micros,
}

/// Where a role may be assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoleScope {
    /// To organization users.
    Organization,
    /// To workspace memberships.
    Workspace,
}

impl RoleScope {
    /// Name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::Workspace => "workspace",
        }
    }

    /// Parses the database name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "organization" => Some(Self::Organization),
            "workspace" => Some(Self::Workspace),
            _ => None,
        }
    }
}

/// A permission of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// Key like `documents.write`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// True grants, false explicitly denies.
    pub access: bool,
}

/// A role with its permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Organization.
    pub organization_id: String,
    /// Id.
    pub role_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Scope.
    pub scope: RoleScope,
    /// Permissions in the caller's order.
    pub permissions: Vec<Permission>,
    /// Incremented on every update.
    pub revision: i64,
    /// Creation time.
    pub create_time: Micros,
    /// Last update time.
    pub update_time: Micros,
    /// Its wire encoding, once made.
    #[serde(skip)]
    pub encoding: Memo,
}

impl Role {
    /// The opaque etag: changes on every update.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.revision, self.update_time)
    }

    /// About how many bytes it holds, with its encoding once made (about
    /// its text again).
    pub fn approximate_size(&self) -> usize {
        size_of::<Self>() + self.permissions.len() * size_of::<Permission>() + 2 * self.text_size()
    }

    /// The bytes of its text.
    fn text_size(&self) -> usize {
        let texts = [
            &self.organization_id,
            &self.role_id,
            &self.name,
            &self.description,
        ];
        texts.iter().map(|t| t.len()).sum::<usize>()
            + self
                .permissions
                .iter()
                .map(|p| p.name.len() + p.description.len())
                .sum::<usize>()
    }
}

/// The base role of a workspace membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BaseRole {
    /// The seeded `owner` role.
    Owner,
    /// The seeded `editor` role.
    Editor,
    /// The seeded `viewer` role.
    Viewer,
}

impl BaseRole {
    /// All base roles.
    pub const ALL: [BaseRole; 3] = [Self::Owner, Self::Editor, Self::Viewer];

    /// The id of the seeded role.
    pub fn role_id(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }

    /// From the id of the seeded role.
    pub fn from_role_id(role_id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.role_id() == role_id)
    }

    /// The permissions the seeded role starts with.
    pub fn seeded_permissions(self) -> &'static [&'static str] {
        match self {
            Self::Owner => &["workspace.read", "workspace.write", "workspace.admin"],
            Self::Editor => &["workspace.read", "workspace.write"],
            Self::Viewer => &["workspace.read"],
        }
    }
}

/// A user's membership in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Server-assigned UUID.
    pub membership_id: String,
    /// Organization.
    pub organization_id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Member.
    pub user_id: String,
    /// Base role.
    pub base_role: BaseRole,
    /// Extra workspace roles, ordered by id.
    pub roles: Vec<Role>,
    /// Creation time.
    pub create_time: Micros,
    /// Last update time.
    pub update_time: Micros,
}

/// The organization roles a user holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoles {
    /// Organization.
    pub organization_id: String,
    /// User.
    pub user_id: String,
    /// Roles ordered by id (shared with other cached values).
    pub roles: Vec<Arc<Role>>,
    /// Its wire encoding, once made.
    #[serde(skip)]
    pub encoding: Memo,
}

impl UserRoles {
    /// Replaces each role with what `intern` gives for it (an equal role
    /// another value holds already).
    pub fn share_roles(&mut self, intern: &mut dyn FnMut(Arc<Role>) -> Arc<Role>) {
        for role in &mut self.roles {
            *role = intern(Arc::clone(role));
        }
    }

    /// About how many bytes it holds, with its encoding once made, but
    /// not its roles, which are shared (and counted where they are cached).
    pub fn approximate_size(&self) -> usize {
        size_of::<Self>()
            + 2 * (self.organization_id.len() + self.user_id.len())
            + self
                .roles
                .iter()
                .map(|role| size_of::<Arc<Role>>() + role.text_size())
                .sum::<usize>()
    }
}

/// Where a shared value keeps its wire encoding once the API layer has
/// made it (cached values are shared, so it is made once per value). Not
/// part of the value: every memo equals every other, a clone starts empty,
/// and it is never serialized.
#[derive(Default)]
pub struct Memo(OnceLock<Bytes>);

impl Memo {
    /// The kept encoding, made by `make` the first time.
    pub fn get_or_init(&self, make: impl FnOnce() -> Bytes) -> Bytes {
        self.0.get_or_init(make).clone()
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memo")
    }
}

/// Names a user by one of its identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserRef {
    /// By id.
    UserId(String),
    /// By e-mail, case-insensitively.
    Email(String),
    /// By Azure AD object id.
    AadId(String),
    /// By Auth0 user id.
    Auth0Id(String),
}

/// What AddRoleMembers / RemoveRoleMembers changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoleMembersChange {
    /// Organization.
    pub organization_id: String,
    /// Role.
    pub role_id: String,
    /// Users that gained the role.
    pub added_user_ids: Vec<String>,
    /// Users that lost the role.
    pub removed_user_ids: Vec<String>,
    /// Users whose holding did not change.
    pub unchanged_user_ids: Vec<String>,
}

/// How a permission check was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Granted and not denied.
    Granted,
    /// Some applicable role denies.
    DeniedExplicitly,
    /// No applicable role mentions the permission.
    NoGrant,
}

/// The answer of CheckPermission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// How it was decided.
    pub decision: Decision,
    /// The deciding roles (granting or denying), sorted.
    pub matched_role_ids: Vec<String>,
}

/// One page of a list and the token of the next one (empty at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
}
