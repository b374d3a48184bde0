//! Organizations, users and workspaces.

use super::{
    Service,
    model::{BaseRole, Memo, Organization, Page, Permission, Role, RoleScope, User, Workspace},
    names::{self, types},
    now_micros,
    paging::PageRequest,
    validate::{self, Checker, MAX_TEXT},
};
use crate::{
    error::{Error, Result},
    store::{
        self,
        directory::{self as db, UserKey},
    },
};
use sea_orm::ConnectionTrait;

/// `NOT_FOUND` unless the organization exists.
pub async fn require_organization(conn: &impl ConnectionTrait, o: &str) -> Result<Organization> {
    db::get_organization(conn, o)
        .await?
        .ok_or_else(|| Error::not_found(types::ORGANIZATION, names::organization(o)))
}

/// `NOT_FOUND` unless the user exists (the organization is checked first, so
/// the error names the outermost missing resource).
pub async fn require_user(conn: &impl ConnectionTrait, o: &str, u: &str) -> Result<User> {
    if let Some(user) = db::get_user(conn, o, u).await? {
        return Ok(user);
    }
    require_organization(conn, o).await?;
    Err(Error::not_found(types::USER, names::user(o, u)))
}

/// `NOT_FOUND` unless the workspace exists.
pub async fn require_workspace(conn: &impl ConnectionTrait, o: &str, w: &str) -> Result<Workspace> {
    if let Some(workspace) = db::get_workspace(conn, o, w).await? {
        return Ok(workspace);
    }
    require_organization(conn, o).await?;
    Err(Error::not_found(types::WORKSPACE, names::workspace(o, w)))
}

fn seeded_role(organization_id: &str, base: BaseRole, now: i64) -> Role {
    Role {
        organization_id: organization_id.to_owned(),
        role_id: base.role_id().to_owned(),
        name: base.role_id().to_owned(),
        description: format!("Seeded workspace role `{}`", base.role_id()),
        scope: RoleScope::Workspace,
        permissions: base
            .seeded_permissions()
            .iter()
            .map(|name| Permission {
                name: (*name).to_owned(),
                description: String::new(),
                access: true,
            })
            .collect(),
        revision: 1,
        create_time: now,
        update_time: now,
        encoding: Memo::default(),
    }
}

impl Service {
    /// Creates an organization with its seeded workspace roles.
    pub async fn create_organization(&self, org: Organization) -> Result<Organization> {
        let mut check = Checker::new();
        check.optional_id("organization.organization_id", &org.organization_id);
        check.text("organization.display_name", &org.display_name, MAX_TEXT);
        check.finish()?;
        let now = now_micros();
        let org = Organization {
            organization_id: validate::id_or_generated(&org.organization_id),
            create_time: now,
            ..org
        };
        let tx = self.store().write().await?;
        db::insert_organization(&*tx, &org).await.map_err(
            |err| match store::is_unique_violation(&err) {
                true => Error::already_exists(
                    "ORGANIZATION_EXISTS",
                    types::ORGANIZATION,
                    names::organization(&org.organization_id),
                ),
                false => err.into(),
            },
        )?;
        for base in BaseRole::ALL {
            store::roles::insert_role(&*tx, &seeded_role(&org.organization_id, base, now)).await?;
        }
        tx.commit().await?;
        Ok(org)
    }

    /// One organization.
    pub async fn get_organization(&self, o: &str) -> Result<Organization> {
        validate::ids(&[("organization_id", o)])?;
        require_organization(self.store().reader(), o).await
    }

    /// A page of organizations.
    pub async fn list_organizations(&self, page: PageRequest) -> Result<Page<Organization>> {
        let rows = db::list_organizations(
            self.store().reader(),
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        Ok(page.page(rows, |o| o.organization_id.clone()))
    }

    /// Creates a user; e-mail, Azure AD and Auth0 ids are unique per organization.
    pub async fn create_user(&self, o: &str, user: User) -> Result<User> {
        let mut check = Checker::new();
        check.id("organization_id", o);
        check.optional_id("user.user_id", &user.user_id);
        if let Some(email) = &user.email {
            check.email("user.email", email);
        }
        if let Some(aad) = &user.aad_id {
            check.external_id("user.aad_id", aad);
        }
        if let Some(auth0) = &user.auth0_id {
            check.external_id("user.auth0_id", auth0);
        }
        check.text("user.display_name", &user.display_name, MAX_TEXT);
        check.finish()?;
        let user = User {
            organization_id: o.to_owned(),
            user_id: validate::id_or_generated(&user.user_id),
            create_time: now_micros(),
            ..user
        };
        let tx = self.store().write().await?;
        require_organization(&*tx, o).await?;
        if db::get_user(&*tx, o, &user.user_id).await?.is_some() {
            return Err(Error::already_exists(
                "USER_EXISTS",
                types::USER,
                names::user(o, &user.user_id),
            ));
        }
        let identities = [
            (UserKey::Email, user.email.as_deref().map(str::to_lowercase)),
            (UserKey::AadId, user.aad_id.clone()),
            (UserKey::Auth0Id, user.auth0_id.clone()),
        ];
        for (key, value) in identities {
            let Some(value) = value else { continue };
            if let Some((_, holder)) = db::find_user_ids(&*tx, o, key, &[value]).await?.pop() {
                return Err(Error::already_exists(
                    "USER_IDENTITY_TAKEN",
                    types::USER,
                    names::user(o, &holder),
                ));
            }
        }
        db::insert_user(&*tx, &user).await.map_err(|err| {
            match store::is_unique_violation(&err) {
                true => {
                    Error::already_exists("USER_EXISTS", types::USER, names::user(o, &user.user_id))
                }
                false => err.into(),
            }
        })?;
        tx.commit().await?;
        Ok(user)
    }

    /// One user.
    pub async fn get_user(&self, o: &str, u: &str) -> Result<User> {
        validate::ids(&[("organization_id", o), ("user_id", u)])?;
        require_user(self.store().reader(), o, u).await
    }

    /// A page of an organization's users.
    pub async fn list_users(&self, o: &str, page: PageRequest) -> Result<Page<User>> {
        validate::ids(&[("organization_id", o)])?;
        let reader = self.store().reader();
        require_organization(reader, o).await?;
        let rows = db::list_users(reader, o, page.after.as_deref(), page.fetch_limit()).await?;
        Ok(page.page(rows, |u| u.user_id.clone()))
    }

    /// Deletes a user with its role assignments and memberships.
    pub async fn delete_user(&self, o: &str, u: &str) -> Result<()> {
        validate::ids(&[("organization_id", o), ("user_id", u)])?;
        let tx = self.write_acl(o).await?;
        require_user(&*tx, o, u).await?;
        db::delete_user(&*tx, o, u).await?;
        tx.commit().await
    }

    /// Creates a workspace.
    pub async fn create_workspace(&self, o: &str, workspace: Workspace) -> Result<Workspace> {
        let mut check = Checker::new();
        check.id("organization_id", o);
        check.optional_id("workspace.workspace_id", &workspace.workspace_id);
        check.text("workspace.display_name", &workspace.display_name, MAX_TEXT);
        check.finish()?;
        let workspace = Workspace {
            organization_id: o.to_owned(),
            workspace_id: validate::id_or_generated(&workspace.workspace_id),
            create_time: now_micros(),
            ..workspace
        };
        let tx = self.store().write().await?;
        require_organization(&*tx, o).await?;
        db::insert_workspace(&*tx, &workspace).await.map_err(
            |err| match store::is_unique_violation(&err) {
                true => Error::already_exists(
                    "WORKSPACE_EXISTS",
                    types::WORKSPACE,
                    names::workspace(o, &workspace.workspace_id),
                ),
                false => err.into(),
            },
        )?;
        tx.commit().await?;
        Ok(workspace)
    }

    /// One workspace.
    pub async fn get_workspace(&self, o: &str, w: &str) -> Result<Workspace> {
        validate::ids(&[("organization_id", o), ("workspace_id", w)])?;
        require_workspace(self.store().reader(), o, w).await
    }

    /// A page of an organization's workspaces.
    pub async fn list_workspaces(&self, o: &str, page: PageRequest) -> Result<Page<Workspace>> {
        validate::ids(&[("organization_id", o)])?;
        let reader = self.store().reader();
        require_organization(reader, o).await?;
        let rows =
            db::list_workspaces(reader, o, page.after.as_deref(), page.fetch_limit()).await?;
        Ok(page.page(rows, |w| w.workspace_id.clone()))
    }

    /// Deletes a workspace with its memberships.
    pub async fn delete_workspace(&self, o: &str, w: &str) -> Result<()> {
        validate::ids(&[("organization_id", o), ("workspace_id", w)])?;
        let tx = self.write_acl(o).await?;
        require_workspace(&*tx, o, w).await?;
        db::delete_workspace(&*tx, o, w).await?;
        tx.commit().await
    }
}
