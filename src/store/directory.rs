//! Organizations, users and workspaces.

use super::entities::{organization, user, workspace};
use super::{backend_of, page_after, row_list};
use crate::domain::model::{Organization, User, Workspace};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

impl From<organization::Model> for Organization {
    fn from(m: organization::Model) -> Self {
        Self {
            organization_id: m.organization_id,
            display_name: m.display_name,
            create_time: m.create_time,
        }
    }
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self {
            organization_id: m.organization_id,
            user_id: m.user_id,
            email: m.email,
            aad_id: m.aad_id,
            auth0_id: m.auth0_id,
            display_name: m.display_name,
            create_time: m.create_time,
        }
    }
}

impl From<workspace::Model> for Workspace {
    fn from(m: workspace::Model) -> Self {
        Self {
            organization_id: m.organization_id,
            workspace_id: m.workspace_id,
            display_name: m.display_name,
            create_time: m.create_time,
        }
    }
}

/// Inserts an organization.
pub async fn insert_organization(db: &impl ConnectionTrait, o: &Organization) -> Result<(), DbErr> {
    organization::Entity::insert(organization::ActiveModel {
        organization_id: Set(o.organization_id.clone()),
        display_name: Set(o.display_name.clone()),
        create_time: Set(o.create_time),
    })
    .exec_without_returning(db)
    .await
    .map(drop)
}

/// One organization.
pub async fn get_organization(
    db: &impl ConnectionTrait,
    organization_id: &str,
) -> Result<Option<Organization>, DbErr> {
    Ok(organization::Entity::find_by_id(organization_id)
        .one(db)
        .await?
        .map(Into::into))
}

/// Organizations with ids after `after`, ordered by id.
pub async fn list_organizations(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Organization>, DbErr> {
    let query = organization::Entity::find();
    let key = organization::Column::OrganizationId;
    Ok(page_after(db, query, key, after, limit)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Inserts a user.
pub async fn insert_user(db: &impl ConnectionTrait, u: &User) -> Result<(), DbErr> {
    user::Entity::insert(user::ActiveModel {
        organization_id: Set(u.organization_id.clone()),
        user_id: Set(u.user_id.clone()),
        email: Set(u.email.clone()),
        email_key: Set(u.email.as_deref().map(str::to_lowercase)),
        aad_id: Set(u.aad_id.clone()),
        auth0_id: Set(u.auth0_id.clone()),
        display_name: Set(u.display_name.clone()),
        create_time: Set(u.create_time),
    })
    .exec_without_returning(db)
    .await
    .map(drop)
}

/// One user.
pub async fn get_user(
    db: &impl ConnectionTrait,
    organization_id: &str,
    user_id: &str,
) -> Result<Option<User>, DbErr> {
    Ok(
        user::Entity::find_by_id((organization_id.to_owned(), user_id.to_owned()))
            .one(db)
            .await?
            .map(Into::into),
    )
}

/// Users of an organization with ids after `after`, ordered by id.
pub async fn list_users(
    db: &impl ConnectionTrait,
    organization_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<User>, DbErr> {
    let query = user::Entity::find().filter(user::Column::OrganizationId.eq(organization_id));
    Ok(page_after(db, query, user::Column::UserId, after, limit)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Which identifier a lookup uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserKey {
    /// `user_id`.
    UserId,
    /// Lower-cased e-mail.
    Email,
    /// Azure AD object id.
    AadId,
    /// Auth0 user id.
    Auth0Id,
}

/// `(key value, user id)` of the users whose `key` is one of `values`
/// (e-mails must be lower-cased by the caller).
pub async fn find_user_ids(
    db: &impl ConnectionTrait,
    organization_id: &str,
    key: UserKey,
    values: &[String],
) -> Result<Vec<(String, String)>, DbErr> {
    let column = match key {
        UserKey::UserId => user::Column::UserId,
        UserKey::Email => user::Column::EmailKey,
        UserKey::AadId => user::Column::AadId,
        UserKey::Auth0Id => user::Column::Auth0Id,
    };
    let mut found = Vec::with_capacity(values.len());
    for chunk in values.chunks(row_list::CHUNK) {
        let rows = user::Entity::find()
            .filter(user::Column::OrganizationId.eq(organization_id))
            .filter(row_list::is_in(backend_of(db), column, chunk)?)
            .all(db)
            .await?;
        found.extend(rows.into_iter().map(|m| {
            let value = match key {
                UserKey::UserId => Some(m.user_id.clone()),
                UserKey::Email => m.email_key,
                UserKey::AadId => m.aad_id,
                UserKey::Auth0Id => m.auth0_id,
            };
            (value.unwrap_or_default(), m.user_id)
        }));
    }
    Ok(found)
}

/// Deletes a user; assignments and memberships go with it (cascade).
pub async fn delete_user(
    db: &impl ConnectionTrait,
    organization_id: &str,
    user_id: &str,
) -> Result<bool, DbErr> {
    let res = user::Entity::delete_by_id((organization_id.to_owned(), user_id.to_owned()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Inserts a workspace.
pub async fn insert_workspace(db: &impl ConnectionTrait, w: &Workspace) -> Result<(), DbErr> {
    workspace::Entity::insert(workspace::ActiveModel {
        organization_id: Set(w.organization_id.clone()),
        workspace_id: Set(w.workspace_id.clone()),
        display_name: Set(w.display_name.clone()),
        create_time: Set(w.create_time),
    })
    .exec_without_returning(db)
    .await
    .map(drop)
}

/// One workspace.
pub async fn get_workspace(
    db: &impl ConnectionTrait,
    organization_id: &str,
    workspace_id: &str,
) -> Result<Option<Workspace>, DbErr> {
    Ok(
        workspace::Entity::find_by_id((organization_id.to_owned(), workspace_id.to_owned()))
            .one(db)
            .await?
            .map(Into::into),
    )
}

/// Workspaces of an organization with ids after `after`, ordered by id.
pub async fn list_workspaces(
    db: &impl ConnectionTrait,
    organization_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Workspace>, DbErr> {
    let query =
        workspace::Entity::find().filter(workspace::Column::OrganizationId.eq(organization_id));
    Ok(
        page_after(db, query, workspace::Column::WorkspaceId, after, limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    )
}

/// Deletes a workspace; its memberships go with it (cascade).
pub async fn delete_workspace(
    db: &impl ConnectionTrait,
    organization_id: &str,
    workspace_id: &str,
) -> Result<bool, DbErr> {
    let res =
        workspace::Entity::delete_by_id((organization_id.to_owned(), workspace_id.to_owned()))
            .exec(db)
            .await?;
    Ok(res.rows_affected > 0)
}
