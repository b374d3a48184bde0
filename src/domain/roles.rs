//! Roles and their permissions: create, read, update with masks and etags,
//! delete with `force`.

use super::{
    Service,
    directory::require_organization,
    model::{Memo, Page, Permission, Role, RoleScope},
    names::{self, types},
    now_micros,
    paging::PageRequest,
    read_cache::Key,
    validate::{self, Checker, MAX_PERMISSIONS, MAX_ROLE_NAME, MAX_TEXT},
};
use crate::{
    error::{Error, Result},
    store::{self, roles as db},
};
use sea_orm::ConnectionTrait;
use std::{collections::HashSet, sync::Arc};

/// A permission as a caller sends it: `access` may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDraft {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Must be set.
    pub access: Option<bool>,
}

/// A role as a caller sends it to CreateRole or UpdateRole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleDraft {
    /// Organization.
    pub organization_id: String,
    /// Id (empty on create: generated).
    pub role_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `None`: unspecified.
    pub scope: Option<RoleScope>,
    /// Permissions.
    pub permissions: Vec<PermissionDraft>,
    /// Expected etag on update (empty: unconditional).
    pub etag: String,
}

/// Fields an update may change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mask {
    name: bool,
    description: bool,
    permissions: bool,
}

impl Mask {
    /// AIP-134: empty means every populated field, `*` all of them.
    fn parse(paths: &[String], draft: &RoleDraft) -> Result<Self> {
        if paths.is_empty() {
            return Ok(Self {
                name: !draft.name.is_empty(),
                description: !draft.description.is_empty(),
                permissions: !draft.permissions.is_empty(),
            });
        }
        let mut mask = Self::default();
        let mut check = Checker::new();
        for (i, path) in paths.iter().enumerate() {
            match path.as_str() {
                "*" => {
                    mask = Self {
                        name: true,
                        description: true,
                        permissions: true,
                    }
                }
                "name" => mask.name = true,
                "description" => mask.description = true,
                "permissions" => mask.permissions = true,
                other => check.fail(
                    format!("update_mask.paths[{i}]"),
                    format!("`{other}` is not one of name, description, permissions, *"),
                ),
            }
        }
        check.finish()?;
        Ok(mask)
    }
}

fn check_permissions(check: &mut Checker, drafts: &[PermissionDraft]) -> Vec<Permission> {
    if drafts.len() > MAX_PERMISSIONS {
        check.fail(
            "role.permissions",
            format!("at most {MAX_PERMISSIONS} permissions"),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(drafts.len());
    for (i, p) in drafts.iter().enumerate() {
        let path = format!("role.permissions[{i}]");
        check.permission_name(&format!("{path}.name"), &p.name);
        if !seen.insert(p.name.as_str()) {
            check.fail(
                format!("{path}.name"),
                format!("duplicate permission `{}`", p.name),
            );
        }
        check.text(&format!("{path}.description"), &p.description, MAX_TEXT);
        match p.access {
            Some(access) => out.push(Permission {
                name: p.name.clone(),
                description: p.description.clone(),
                access,
            }),
            None => check.fail(
                format!("{path}.access"),
                "is required: true grants, false denies",
            ),
        }
    }
    out
}

fn check_name(check: &mut Checker, name: &str) {
    if name.is_empty() {
        check.fail("role.name", "is required");
    }
    check.text("role.name", name, MAX_ROLE_NAME);
}

/// `NOT_FOUND` unless the role exists.
pub async fn require_role(conn: &impl ConnectionTrait, o: &str, r: &str) -> Result<Role> {
    if let Some(role) = db::get_role(conn, o, r).await? {
        return Ok(role);
    }
    require_organization(conn, o).await?;
    Err(Error::not_found(types::ROLE, names::role(o, r)))
}

impl Service {
    /// Creates a role.
    pub async fn create_role(&self, o: &str, draft: RoleDraft) -> Result<Role> {
        let mut check = Checker::new();
        check.id("organization_id", o);
        check.optional_id("role.role_id", &draft.role_id);
        check_name(&mut check, &draft.name);
        check.text("role.description", &draft.description, MAX_TEXT);
        let permissions = check_permissions(&mut check, &draft.permissions);
        check.finish()?;
        let now = now_micros();
        let role = Role {
            organization_id: o.to_owned(),
            role_id: validate::id_or_generated(&draft.role_id),
            name: draft.name,
            description: draft.description,
            scope: draft.scope.unwrap_or(RoleScope::Organization),
            permissions,
            revision: 1,
            create_time: now,
            update_time: now,
            encoding: Memo::default(),
        };
        let tx = self.store().write().await?;
        require_organization(&*tx, o).await?;
        db::insert_role(&*tx, &role).await.map_err(|err| {
            match store::is_unique_violation(&err) {
                true => {
                    Error::already_exists("ROLE_EXISTS", types::ROLE, names::role(o, &role.role_id))
                }
                false => err.into(),
            }
        })?;
        tx.commit().await?;
        Ok(role)
    }

    /// One role (shared with the read cache).
    pub async fn get_role(&self, o: &str, r: &str) -> Result<Arc<Role>> {
        validate::ids(&[("organization_id", o), ("role_id", r)])?;
        self.cached(Key::Role(o.to_owned(), r.to_owned()), || {
            require_role(self.store().reader(), o, r)
        })
        .await
    }

    /// A page of roles, optionally of one scope.
    pub async fn list_roles(
        &self,
        o: &str,
        scope: Option<RoleScope>,
        page: PageRequest,
    ) -> Result<Page<Role>> {
        validate::ids(&[("organization_id", o)])?;
        let reader = self.store().reader();
        require_organization(reader, o).await?;
        let rows =
            db::list_roles(reader, o, scope, page.after.as_deref(), page.fetch_limit()).await?;
        Ok(page.page(rows, |r| r.role_id.clone()))
    }

    /// Updates the fields of `draft` named by `mask`.
    pub async fn update_role(&self, draft: RoleDraft, mask: &[String]) -> Result<Role> {
        let o = draft.organization_id.clone();
        let r = draft.role_id.clone();
        let mask = {
            let mut check = Checker::new();
            check.id("role.organization_id", &o);
            check.id("role.role_id", &r);
            check.finish()?;
            Mask::parse(mask, &draft)?
        };
        let mut check = Checker::new();
        if mask.name {
            check_name(&mut check, &draft.name);
        }
        check.text("role.description", &draft.description, MAX_TEXT);
        let permissions = check_permissions(&mut check, &draft.permissions);
        check.finish()?;

        let tx = self.write_acl(&o).await?;
        let mut role = require_role(&*tx, &o, &r).await?;
        if draft.scope.is_some_and(|scope| scope != role.scope) {
            return Err(Error::invalid("role.scope", "is immutable"));
        }
        if !draft.etag.is_empty() && draft.etag != role.etag() {
            return Err(Error::Aborted {
                reason: "ETAG_MISMATCH".into(),
                message: format!(
                    "role `{}` changed since etag {} was read; read it again",
                    names::role(&o, &r),
                    draft.etag
                ),
            });
        }
        if mask.name {
            role.name = draft.name;
        }
        if mask.description {
            role.description = draft.description;
        }
        if mask.permissions {
            role.permissions = permissions;
        }
        role.revision += 1;
        role.update_time = now_micros().max(role.update_time + 1);
        db::update_role(&*tx, &role).await?;
        tx.commit().await?;
        Ok(role)
    }

    /// Deletes a role. A held role needs `force`, which removes it from every
    /// holder in the same transaction; a base role in use is never deleted.
    pub async fn delete_role(&self, o: &str, r: &str, force: bool) -> Result<()> {
        validate::ids(&[("organization_id", o), ("role_id", r)])?;
        let tx = self.write_acl(o).await?;
        require_role(&*tx, o, r).await?;
        let (users, memberships, base) = db::holder_counts(&*tx, o, r).await?;
        if base > 0 {
            return Err(Error::precondition(
                "ROLE_IN_USE",
                names::role(o, r),
                format!("{base} workspace memberships use this role as their base role"),
            ));
        }
        if !force && users + memberships > 0 {
            return Err(Error::precondition(
                "ROLE_IN_USE",
                names::role(o, r),
                format!(
                    "held by {users} users and {memberships} memberships; \
                     pass force to remove it from them"
                ),
            ));
        }
        db::delete_role(&*tx, o, r).await?;
        tx.commit().await
    }
}
