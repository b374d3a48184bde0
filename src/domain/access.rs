//! Who holds what, and the permission decision.

use super::{
    Service,
    commands::{load_user_roles, require_organization_role},
    directory::{require_user, require_workspace},
    model::{CheckResult, Decision, Page, Role, UserRoles},
    paging::PageRequest,
    read_cache::Key,
    validate::{self, Checker},
};
use crate::{error::Result, store};
use sea_orm::ConnectionTrait;
use std::{collections::HashMap, sync::Arc};

/// The permissions of a set of roles compiled for lookups: per permission
/// name, the roles that grant it and the roles that deny it.
#[derive(Debug, Default)]
pub struct PermissionSet {
    by_name: HashMap<String, Holders>,
}

/// The roles mentioning one permission, each list sorted and unique.
#[derive(Debug, Default)]
struct Holders {
    granting: Vec<String>,
    denying: Vec<String>,
}

impl PermissionSet {
    /// Compiles the permissions of `roles`.
    pub fn compile<'a>(roles: impl IntoIterator<Item = &'a Role>) -> Self {
        let mut by_name: HashMap<String, Holders> = HashMap::new();
        for role in roles {
            for p in &role.permissions {
                let holders = by_name.entry(p.name.clone()).or_default();
                let list = match p.access {
                    true => &mut holders.granting,
                    false => &mut holders.denying,
                };
                list.push(role.role_id.clone());
            }
        }
        for holders in by_name.values_mut() {
            for list in [&mut holders.granting, &mut holders.denying] {
                list.sort();
                list.dedup();
            }
        }
        Self { by_name }
    }

    /// About how many bytes it holds.
    pub fn approximate_size(&self) -> usize {
        let slot = size_of::<(String, Holders)>() * 8 / 7;
        self.by_name
            .iter()
            .map(|(name, h)| {
                let ids = h.granting.iter().chain(&h.denying);
                slot + name.len() + ids.map(|id| size_of::<String>() + id.len()).sum::<usize>()
            })
            .sum::<usize>()
            + size_of::<Self>()
    }

    /// Decides `permission`: allowed iff some role grants it and none
    /// denies it. The deciding roles are the denying ones if any, else the
    /// granting ones.
    pub fn check(&self, permission: &str) -> CheckResult {
        let (decision, matched_role_ids) = match self.by_name.get(permission) {
            Some(h) if !h.denying.is_empty() => (Decision::DeniedExplicitly, h.denying.clone()),
            Some(h) if !h.granting.is_empty() => (Decision::Granted, h.granting.clone()),
            _ => (Decision::NoGrant, Vec::new()),
        };
        CheckResult {
            decision,
            matched_role_ids,
        }
    }
}

/// The organization roles of `u`; `NOT_FOUND` if there is no such user.
/// Assignments exist only for existing users, so the user is looked up
/// only when it holds no roles.
async fn roles_of_existing_user(
    reader: &impl ConnectionTrait,
    o: &str,
    u: &str,
) -> Result<UserRoles> {
    let roles = load_user_roles(reader, o, u).await?;
    if roles.roles.is_empty() {
        require_user(reader, o, u).await?;
    }
    Ok(roles)
}

impl Service {
    /// The organization roles a user holds (shared with the read cache).
    pub async fn list_user_roles(&self, o: &str, u: &str) -> Result<Arc<UserRoles>> {
        validate::ids(&[("organization_id", o), ("user_id", u)])?;
        self.cached(Key::UserRoles(o.to_owned(), u.to_owned()), || {
            roles_of_existing_user(self.store().reader(), o, u)
        })
        .await
    }

    /// A page of the users holding an organization role.
    pub async fn list_role_members(
        &self,
        o: &str,
        r: &str,
        page: PageRequest,
    ) -> Result<Page<String>> {
        validate::ids(&[("organization_id", o), ("role_id", r)])?;
        let reader = self.store().reader();
        require_organization_role(reader, o, r).await?;
        let rows = store::roles::list_role_members(
            reader,
            o,
            r,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        Ok(page.page(rows, String::clone))
    }

    /// Whether `u` has `permission`, in the organization or in workspace `w`.
    pub async fn check_permission(
        &self,
        o: &str,
        u: &str,
        permission: &str,
        w: Option<&str>,
    ) -> Result<CheckResult> {
        let mut check = Checker::new();
        check.id("organization_id", o);
        check.id("user_id", u);
        check.permission_name("permission", permission);
        if let Some(w) = w {
            check.id("workspace_id", w);
        }
        check.finish()?;
        let key = Key::Applicable(o.to_owned(), u.to_owned(), w.map(str::to_owned));
        let permissions = self
            .cached(key, || async {
                let roles = self.applicable_roles(o, u, w).await?;
                Ok(PermissionSet::compile(&roles))
            })
            .await?;
        Ok(permissions.check(permission))
    }

    /// The user's organization roles plus, in workspace `w`, its
    /// membership's base role and extra roles.
    async fn applicable_roles(&self, o: &str, u: &str, w: Option<&str>) -> Result<Vec<Role>> {
        let reader = self.store().reader();
        let mut roles = roles_of_existing_user(reader, o, u).await?.roles;
        if let Some(w) = w {
            require_workspace(reader, o, w).await?;
            if let Some(m) = store::memberships::find_membership_of_user(reader, o, w, u).await? {
                roles.extend(store::roles::get_role(reader, o, m.base_role.role_id()).await?);
                roles.extend(m.roles);
            }
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Permission, RoleScope};

    fn role(id: &str, perms: &[(&str, bool)]) -> Role {
        Role {
            organization_id: "o".into(),
            role_id: id.into(),
            name: id.into(),
            description: String::new(),
            scope: RoleScope::Organization,
            permissions: perms
                .iter()
                .map(|(n, a)| Permission {
                    name: (*n).into(),
                    description: String::new(),
                    access: *a,
                })
                .collect(),
            revision: 1,
            create_time: 0,
            update_time: 0,
            encoding: Default::default(),
        }
    }

    #[test]
    fn deny_wins_over_grant() {
        let roles = [
            role("a", &[("docs.read", true)]),
            role("b", &[("docs.read", false)]),
            role("c", &[("docs.read", true)]),
        ];
        let result = PermissionSet::compile(&roles).check("docs.read");
        assert_eq!(result.decision, Decision::DeniedExplicitly);
        assert_eq!(result.matched_role_ids, ["b"]);
    }

    #[test]
    fn grants_list_every_granting_role() {
        let roles = [
            role("z", &[("docs.read", true)]),
            role("a", &[("docs.read", true)]),
        ];
        let result = PermissionSet::compile(&roles).check("docs.read");
        assert_eq!(result.decision, Decision::Granted);
        assert_eq!(result.matched_role_ids, ["a", "z"]);
    }

    #[test]
    fn unmentioned_permission_is_no_grant() {
        let roles = [role("a", &[("docs.write", true)])];
        let result = PermissionSet::compile(&roles).check("docs.read");
        assert_eq!(result.decision, Decision::NoGrant);
        assert!(result.matched_role_ids.is_empty());
    }
}
