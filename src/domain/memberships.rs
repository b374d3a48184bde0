//! Workspace memberships: a user in a workspace with a base role.

use super::{
    Service,
    directory::{require_user, require_workspace},
    model::{BaseRole, Membership, Page},
    names::{self, types},
    now_micros,
    paging::PageRequest,
    roles::require_role,
    validate,
};
use crate::{
    error::{Error, Result},
    store::{self, memberships as db},
};
use sea_orm::ConnectionTrait;

/// `NOT_FOUND` unless the membership exists in the workspace.
pub async fn require_membership(
    conn: &impl ConnectionTrait,
    o: &str,
    w: &str,
    m: &str,
) -> Result<Membership> {
    if let Some(membership) = db::get_membership(conn, o, w, m).await? {
        return Ok(membership);
    }
    require_workspace(conn, o, w).await?;
    Err(Error::not_found(
        types::MEMBERSHIP,
        names::membership(o, w, m),
    ))
}

fn require_base_role(role: Option<BaseRole>) -> Result<BaseRole> {
    role.ok_or_else(|| Error::invalid("role", "must be OWNER, EDITOR or VIEWER"))
}

impl Service {
    /// Adds `u` to workspace `w` with base role `role`.
    pub async fn create_membership(
        &self,
        o: &str,
        w: &str,
        u: &str,
        role: Option<BaseRole>,
    ) -> Result<Membership> {
        validate::ids(&[("organization_id", o), ("workspace_id", w), ("user_id", u)])?;
        let base_role = require_base_role(role)?;
        let now = now_micros();
        let membership = Membership {
            membership_id: uuid::Uuid::new_v4().to_string(),
            organization_id: o.to_owned(),
            workspace_id: w.to_owned(),
            user_id: u.to_owned(),
            base_role,
            roles: Vec::new(),
            create_time: now,
            update_time: now,
        };
        let tx = self.write_acl(o).await?;
        require_workspace(&*tx, o, w).await?;
        require_user(&*tx, o, u).await?;
        require_role(&*tx, o, base_role.role_id()).await?;
        let existing = |m: &Membership| {
            Error::already_exists(
                "MEMBERSHIP_EXISTS",
                types::MEMBERSHIP,
                names::membership(o, w, &m.membership_id),
            )
        };
        if let Some(found) = db::find_membership_of_user(&*tx, o, w, u).await? {
            return Err(existing(&found));
        }
        db::insert_membership(&*tx, &membership)
            .await
            .map_err(|err| match store::is_unique_violation(&err) {
                true => existing(&membership),
                false => err.into(),
            })?;
        tx.commit().await?;
        Ok(membership)
    }

    /// One membership.
    pub async fn get_membership(&self, o: &str, w: &str, m: &str) -> Result<Membership> {
        validate::membership(o, w, m)?;
        require_membership(self.store().reader(), o, w, m).await
    }

    /// A page of a workspace's memberships, optionally of one user.
    pub async fn list_memberships(
        &self,
        o: &str,
        w: &str,
        user_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Membership>> {
        validate::ids(&[("organization_id", o), ("workspace_id", w)])?;
        if let Some(u) = user_id {
            validate::ids(&[("user_id", u)])?;
        }
        let reader = self.store().reader();
        require_workspace(reader, o, w).await?;
        let rows = db::list_memberships(
            reader,
            o,
            w,
            user_id,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        Ok(page.page(rows, |m| m.membership_id.clone()))
    }

    /// Changes the base role.
    pub async fn update_membership(
        &self,
        o: &str,
        w: &str,
        m: &str,
        role: Option<BaseRole>,
    ) -> Result<Membership> {
        validate::membership(o, w, m)?;
        let base_role = require_base_role(role)?;
        let tx = self.write_acl(o).await?;
        require_membership(&*tx, o, w, m).await?;
        require_role(&*tx, o, base_role.role_id()).await?;
        db::set_base_role(&*tx, m, base_role, now_micros()).await?;
        let membership = require_membership(&*tx, o, w, m).await?;
        tx.commit().await?;
        Ok(membership)
    }

    /// Removes a membership.
    pub async fn delete_membership(&self, o: &str, w: &str, m: &str) -> Result<()> {
        validate::membership(o, w, m)?;
        let tx = self.write_acl(o).await?;
        require_membership(&*tx, o, w, m).await?;
        db::delete_membership(&*tx, o, w, m).await?;
        tx.commit().await
    }
}
