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

/// Decides `permission` over the applicable roles: allowed iff some role
/// grants it and none denies it. The deciding roles are the denying ones if
/// any, else the granting ones.
pub fn evaluate<'a>(roles: impl IntoIterator<Item = &'a Role>, permission: &str) -> CheckResult {
    let mut granting = Vec::new();
    let mut denying = Vec::new();
    for role in roles {
        for p in role.permissions.iter().filter(|p| p.name == permission) {
            if p.access {
                granting.push(role.role_id.clone());
            } else {
                denying.push(role.role_id.clone());
            }
        }
    }
    let (decision, mut matched) = if !denying.is_empty() {
        (Decision::DeniedExplicitly, denying)
    } else if !granting.is_empty() {
        (Decision::Granted, granting)
    } else {
        (Decision::NoGrant, Vec::new())
    };
    matched.sort();
    matched.dedup();
    CheckResult {
        decision,
        matched_role_ids: matched,
    }
}

impl Service {
    /// The organization roles a user holds.
    pub async fn list_user_roles(&self, o: &str, u: &str) -> Result<UserRoles> {
        validate::ids(&[("organization_id", o), ("user_id", u)])?;
        let roles = self
            .cached(Key::UserRoles(o.to_owned(), u.to_owned()), || async {
                let reader = self.store().reader();
                require_user(reader, o, u).await?;
                load_user_roles(reader, o, u).await
            })
            .await?;
        Ok(UserRoles::clone(&roles))
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
        let roles = self.cached(key, || self.applicable_roles(o, u, w)).await?;
        Ok(evaluate(roles.iter(), permission))
    }

    /// The user's organization roles plus, in workspace `w`, its
    /// membership's base role and extra roles.
    async fn applicable_roles(&self, o: &str, u: &str, w: Option<&str>) -> Result<Vec<Role>> {
        let reader = self.store().reader();
        require_user(reader, o, u).await?;
        let mut roles = load_user_roles(reader, o, u).await?.roles;
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
        }
    }

    #[test]
    fn deny_wins_over_grant() {
        let roles = [
            role("a", &[("docs.read", true)]),
            role("b", &[("docs.read", false)]),
            role("c", &[("docs.read", true)]),
        ];
        let result = evaluate(&roles, "docs.read");
        assert_eq!(result.decision, Decision::DeniedExplicitly);
        assert_eq!(result.matched_role_ids, ["b"]);
    }

    #[test]
    fn grants_list_every_granting_role() {
        let roles = [
            role("z", &[("docs.read", true)]),
            role("a", &[("docs.read", true)]),
        ];
        let result = evaluate(&roles, "docs.read");
        assert_eq!(result.decision, Decision::Granted);
        assert_eq!(result.matched_role_ids, ["a", "z"]);
    }

    #[test]
    fn unmentioned_permission_is_no_grant() {
        let roles = [role("a", &[("docs.write", true)])];
        let result = evaluate(&roles, "docs.read");
        assert_eq!(result.decision, Decision::NoGrant);
        assert!(result.matched_role_ids.is_empty());
    }
}
