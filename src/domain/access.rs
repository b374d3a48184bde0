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
/// name, the roles that grant it and the roles that deny it. One is cached
/// per user, so it is compact: each role id once, and per name two runs of
/// indices into one list.
#[derive(Debug, Default)]
pub struct PermissionSet {
    /// The role ids, sorted and unique.
    roles: Vec<String>,
    by_name: HashMap<Box<str>, Holders>,
    /// Indices into `roles`: each name's granting run, then its denying
    /// run, each ascending.
    holders: Vec<u32>,
}

/// Where one name's runs are in [`PermissionSet::holders`].
#[derive(Debug, Clone, Copy)]
struct Holders {
    start: u32,
    granting: u32,
    denying: u32,
}

impl PermissionSet {
    /// Compiles the permissions of `roles`.
    pub fn compile<'a>(roles: impl IntoIterator<Item = &'a Role>) -> Self {
        let roles: Vec<&Role> = roles.into_iter().collect();
        let mut ids: Vec<&str> = roles.iter().map(|r| r.role_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let index: HashMap<&str, u32> = ids.iter().zip(0..).map(|(id, i)| (*id, i)).collect();
        let mut runs: HashMap<&str, [Vec<u32>; 2]> = HashMap::new();
        for role in &roles {
            let i = index[role.role_id.as_str()];
            for p in &role.permissions {
                let [granting, denying] = runs.entry(p.name.as_str()).or_default();
                match p.access {
                    true => granting.push(i),
                    false => denying.push(i),
                }
            }
        }
        let mut holders = Vec::new();
        let by_name = runs
            .into_iter()
            .map(|(name, mut lists)| {
                for list in &mut lists {
                    list.sort_unstable();
                    list.dedup();
                }
                let [granting, denying] = lists;
                let run = Holders {
                    start: u32::try_from(holders.len()).unwrap_or(u32::MAX),
                    granting: u32::try_from(granting.len()).unwrap_or(u32::MAX),
                    denying: u32::try_from(denying.len()).unwrap_or(u32::MAX),
                };
                holders.extend(granting);
                holders.extend(denying);
                (name.into(), run)
            })
            .collect();
        Self {
            roles: ids.into_iter().map(str::to_owned).collect(),
            by_name,
            holders,
        }
    }

    /// About how many bytes it holds.
    pub fn approximate_size(&self) -> usize {
        let slot = size_of::<(Box<str>, Holders)>() * 8 / 7;
        size_of::<Self>()
            + self
                .roles
                .iter()
                .map(|id| size_of::<String>() + id.len())
                .sum::<usize>()
            + self
                .by_name
                .keys()
                .map(|name| slot + name.len())
                .sum::<usize>()
            + self.holders.len() * size_of::<u32>()
    }

    /// Decides `permission`: allowed iff some role grants it and none
    /// denies it. The deciding roles are the denying ones if any, else the
    /// granting ones.
    pub fn check(&self, permission: &str) -> CheckResult {
        let (decision, start, len) = match self.by_name.get(permission) {
            Some(h) if h.denying > 0 => {
                (Decision::DeniedExplicitly, h.start + h.granting, h.denying)
            }
            Some(h) if h.granting > 0 => (Decision::Granted, h.start, h.granting),
            _ => (Decision::NoGrant, 0, 0),
        };
        let run = &self.holders[start as usize..(start + len) as usize];
        CheckResult {
            decision,
            matched_role_ids: run
                .iter()
                .map(|&i| self.roles[i as usize].clone())
                .collect(),
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
                Ok(PermissionSet::compile(roles.iter().map(AsRef::as_ref)))
            })
            .await?;
        Ok(permissions.check(permission))
    }

    /// The user's organization roles plus, in workspace `w`, its
    /// membership's base role and extra roles.
    async fn applicable_roles(&self, o: &str, u: &str, w: Option<&str>) -> Result<Vec<Arc<Role>>> {
        let reader = self.store().reader();
        let mut roles = roles_of_existing_user(reader, o, u).await?.roles;
        if let Some(w) = w {
            require_workspace(reader, o, w).await?;
            if let Some(m) = store::memberships::find_membership_of_user(reader, o, w, u).await? {
                let base = store::roles::get_role(reader, o, m.base_role.role_id()).await?;
                roles.extend(base.into_iter().chain(m.roles).map(Arc::new));
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
    fn a_role_held_twice_counts_once() {
        let roles = [
            role("b", &[("docs.read", false), ("docs.list", true)]),
            role("a", &[("docs.read", true), ("docs.list", true)]),
            role("a", &[("docs.read", true), ("docs.list", true)]),
        ];
        let set = PermissionSet::compile(&roles);
        let read = set.check("docs.read");
        assert_eq!(read.decision, Decision::DeniedExplicitly);
        assert_eq!(read.matched_role_ids, ["b"]);
        assert_eq!(set.check("docs.list").matched_role_ids, ["a", "b"]);
    }

    #[test]
    fn unmentioned_permission_is_no_grant() {
        let roles = [role("a", &[("docs.write", true)])];
        let result = PermissionSet::compile(&roles).check("docs.read");
        assert_eq!(result.decision, Decision::NoGrant);
        assert!(result.matched_role_ids.is_empty());
    }
}
