//! Workspace memberships and the extra roles they hold.

use super::{
    backend_of,
    entities::{membership, membership_role},
    page_after,
    roles::get_roles,
    row_list,
};
use crate::domain::model::{BaseRole, Membership};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};

/// Inserts a membership without extra roles.
pub async fn insert_membership(db: &impl ConnectionTrait, m: &Membership) -> Result<(), DbErr> {
    membership::Entity::insert(membership::ActiveModel {
        membership_id: Set(m.membership_id.clone()),
        organization_id: Set(m.organization_id.clone()),
        workspace_id: Set(m.workspace_id.clone()),
        user_id: Set(m.user_id.clone()),
        base_role_id: Set(m.base_role.role_id().to_owned()),
        create_time: Set(m.create_time),
        update_time: Set(m.update_time),
    })
    .exec_without_returning(db)
    .await
    .map(drop)
}

async fn hydrate(db: &impl ConnectionTrait, m: membership::Model) -> Result<Membership, DbErr> {
    let role_ids = membership_role_ids(db, &m.membership_id).await?;
    let roles = get_roles(db, &m.organization_id, &role_ids).await?;
    Ok(Membership {
        base_role: BaseRole::from_role_id(&m.base_role_id)
            .ok_or_else(|| DbErr::Custom(format!("bad base role `{}`", m.base_role_id)))?,
        membership_id: m.membership_id,
        organization_id: m.organization_id,
        workspace_id: m.workspace_id,
        user_id: m.user_id,
        roles,
        create_time: m.create_time,
        update_time: m.update_time,
    })
}

/// One membership of a workspace, with its extra roles.
pub async fn get_membership(
    db: &impl ConnectionTrait,
    organization_id: &str,
    workspace_id: &str,
    membership_id: &str,
) -> Result<Option<Membership>, DbErr> {
    let found = membership::Entity::find_by_id(membership_id)
        .filter(membership::Column::OrganizationId.eq(organization_id))
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?;
    match found {
        Some(m) => Ok(Some(hydrate(db, m).await?)),
        None => Ok(None),
    }
}

/// The membership of `user_id` in a workspace, if any, with its extra roles.
pub async fn find_membership_of_user(
    db: &impl ConnectionTrait,
    organization_id: &str,
    workspace_id: &str,
    user_id: &str,
) -> Result<Option<Membership>, DbErr> {
    let found = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(organization_id))
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::UserId.eq(user_id))
        .one(db)
        .await?;
    match found {
        Some(m) => Ok(Some(hydrate(db, m).await?)),
        None => Ok(None),
    }
}

/// Memberships of a workspace (optionally of one user) after `after`, by id.
pub async fn list_memberships(
    db: &impl ConnectionTrait,
    organization_id: &str,
    workspace_id: &str,
    user_id: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Membership>, DbErr> {
    let mut query = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(organization_id))
        .filter(membership::Column::WorkspaceId.eq(workspace_id));
    if let Some(user_id) = user_id {
        query = query.filter(membership::Column::UserId.eq(user_id));
    }
    let rows = page_after(db, query, membership::Column::MembershipId, after, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        out.push(hydrate(db, m).await?);
    }
    Ok(out)
}

/// Sets the base role and update time of a membership.
pub async fn set_base_role(
    db: &impl ConnectionTrait,
    membership_id: &str,
    base_role: BaseRole,
    now: i64,
) -> Result<(), DbErr> {
    membership::Entity::update_many()
        .col_expr(
            membership::Column::BaseRoleId,
            base_role.role_id().to_owned().into(),
        )
        .col_expr(membership::Column::UpdateTime, now.into())
        .filter(membership::Column::MembershipId.eq(membership_id))
        .exec(db)
        .await
        .map(drop)
}

/// Sets the update time of a membership.
pub async fn touch(db: &impl ConnectionTrait, membership_id: &str, now: i64) -> Result<(), DbErr> {
    membership::Entity::update_many()
        .col_expr(membership::Column::UpdateTime, now.into())
        .filter(membership::Column::MembershipId.eq(membership_id))
        .exec(db)
        .await
        .map(drop)
}

/// Deletes a membership; its extra roles go with it (cascade).
pub async fn delete_membership(
    db: &impl ConnectionTrait,
    organization_id: &str,
    workspace_id: &str,
    membership_id: &str,
) -> Result<bool, DbErr> {
    let res = membership::Entity::delete_many()
        .filter(membership::Column::MembershipId.eq(membership_id))
        .filter(membership::Column::OrganizationId.eq(organization_id))
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Ids of the extra roles of a membership, sorted.
pub async fn membership_role_ids(
    db: &impl ConnectionTrait,
    membership_id: &str,
) -> Result<Vec<String>, DbErr> {
    Ok(membership_role::Entity::find()
        .filter(membership_role::Column::MembershipId.eq(membership_id))
        .order_by_asc(membership_role::Column::RoleId)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.role_id)
        .collect())
}

/// Adds extra roles to a membership, skipping those it holds.
pub async fn insert_membership_roles(
    db: &impl ConnectionTrait,
    organization_id: &str,
    membership_id: &str,
    role_ids: &[String],
    now: i64,
) -> Result<(), DbErr> {
    if role_ids.is_empty() {
        return Ok(());
    }
    let rows = role_ids.iter().map(|role_id| membership_role::ActiveModel {
        membership_id: Set(membership_id.to_owned()),
        role_id: Set(role_id.clone()),
        organization_id: Set(organization_id.to_owned()),
        create_time: Set(now),
    });
    membership_role::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                membership_role::Column::MembershipId,
                membership_role::Column::RoleId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Removes extra roles from a membership.
pub async fn delete_membership_roles(
    db: &impl ConnectionTrait,
    membership_id: &str,
    role_ids: &[String],
) -> Result<(), DbErr> {
    membership_role::Entity::delete_many()
        .filter(membership_role::Column::MembershipId.eq(membership_id))
        .filter(row_list::is_in(
            backend_of(db),
            membership_role::Column::RoleId,
            role_ids,
        )?)
        .exec(db)
        .await
        .map(drop)
}
