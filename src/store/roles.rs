//! Roles, their permissions, and organization-role assignments of users.

use super::entities::{membership, membership_role, role, user_role};
use super::{backend_of, page_after, row_list};
use crate::domain::model::{Memo, Role, RoleScope};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{OnConflict, Query},
};
use std::collections::{HashMap, HashSet};

fn role_model(r: &Role) -> Result<role::ActiveModel, DbErr> {
    let permissions =
        serde_json::to_string(&r.permissions).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(role::ActiveModel {
        organization_id: Set(r.organization_id.clone()),
        role_id: Set(r.role_id.clone()),
        name: Set(r.name.clone()),
        description: Set(r.description.clone()),
        scope: Set(r.scope.as_str().to_owned()),
        permissions: Set(permissions),
        revision: Set(r.revision),
        create_time: Set(r.create_time),
        update_time: Set(r.update_time),
    })
}

/// Inserts a role with its permissions.
pub async fn insert_role(db: &impl ConnectionTrait, r: &Role) -> Result<(), DbErr> {
    role::Entity::insert(role_model(r)?)
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Overwrites a role's row and permissions.
pub async fn update_role(db: &impl ConnectionTrait, r: &Role) -> Result<(), DbErr> {
    role::Entity::update(role_model(r)?)
        .exec(db)
        .await
        .map(drop)
}

/// A role from its row.
pub(super) fn to_role(r: role::Model) -> Result<Role, DbErr> {
    Ok(Role {
        permissions: serde_json::from_str(&r.permissions)
            .map_err(|e| DbErr::Custom(format!("bad permissions of role `{}`: {e}", r.role_id)))?,
        scope: parse_scope(&r.scope)?,
        organization_id: r.organization_id,
        role_id: r.role_id,
        name: r.name,
        description: r.description,
        revision: r.revision,
        create_time: r.create_time,
        update_time: r.update_time,
        encoding: Memo::default(),
    })
}

pub(super) fn parse_scope(scope: &str) -> Result<RoleScope, DbErr> {
    RoleScope::parse(scope).ok_or_else(|| DbErr::Custom(format!("bad scope `{scope}`")))
}

/// Roles from their rows, in the rows' order.
fn to_roles(rows: Vec<role::Model>) -> Result<Vec<Role>, DbErr> {
    rows.into_iter().map(to_role).collect()
}

/// One role with its permissions.
pub async fn get_role(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
) -> Result<Option<Role>, DbErr> {
    role::Entity::find_by_id((organization_id.to_owned(), role_id.to_owned()))
        .one(db)
        .await?
        .map(to_role)
        .transpose()
}

/// The roles among `role_ids` that exist, ordered by id.
pub async fn get_roles(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_ids: &[String],
) -> Result<Vec<Role>, DbErr> {
    let mut rows = Vec::with_capacity(role_ids.len());
    for chunk in role_ids.chunks(row_list::CHUNK) {
        rows.extend(
            role::Entity::find()
                .filter(role::Column::OrganizationId.eq(organization_id))
                .filter(row_list::is_in(
                    backend_of(db),
                    role::Column::RoleId,
                    chunk,
                )?)
                .all(db)
                .await?,
        );
    }
    rows.sort_by(|a, b| a.role_id.cmp(&b.role_id));
    to_roles(rows)
}

/// Roles of an organization (optionally of one scope) after `after`, by id.
pub async fn list_roles(
    db: &impl ConnectionTrait,
    organization_id: &str,
    scope: Option<RoleScope>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Role>, DbErr> {
    let mut query = role::Entity::find().filter(role::Column::OrganizationId.eq(organization_id));
    if let Some(scope) = scope {
        query = query.filter(role::Column::Scope.eq(scope.as_str()));
    }
    let rows = page_after(db, query, role::Column::RoleId, after, limit).await?;
    to_roles(rows)
}

/// Deletes a role; its permissions and assignments go with it (cascade).
pub async fn delete_role(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
) -> Result<bool, DbErr> {
    let res = role::Entity::delete_by_id((organization_id.to_owned(), role_id.to_owned()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// How many holders a role has: users, memberships holding it as an extra
/// role, and memberships using it as their base role.
pub async fn holder_counts(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
) -> Result<(u64, u64, u64), DbErr> {
    let users = user_role::Entity::find()
        .filter(user_role::Column::OrganizationId.eq(organization_id))
        .filter(user_role::Column::RoleId.eq(role_id))
        .count(db)
        .await?;
    let extra = membership_role::Entity::find()
        .filter(membership_role::Column::OrganizationId.eq(organization_id))
        .filter(membership_role::Column::RoleId.eq(role_id))
        .count(db)
        .await?;
    let base = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(organization_id))
        .filter(membership::Column::BaseRoleId.eq(role_id))
        .count(db)
        .await?;
    Ok((users, extra, base))
}

/// The organization roles `user_id` holds, with permissions, ordered by id.
pub async fn roles_of_user(
    db: &impl ConnectionTrait,
    organization_id: &str,
    user_id: &str,
) -> Result<Vec<Role>, DbErr> {
    let held = Query::select()
        .column(user_role::Column::RoleId)
        .from(user_role::Entity)
        .and_where(user_role::Column::OrganizationId.eq(organization_id))
        .and_where(user_role::Column::UserId.eq(user_id))
        .to_owned();
    let rows = role::Entity::find()
        .filter(role::Column::OrganizationId.eq(organization_id))
        .filter(role::Column::RoleId.in_subquery(held))
        .order_by_asc(role::Column::RoleId)
        .all(db)
        .await?;
    to_roles(rows)
}

/// The scopes of the roles among `role_ids` that exist, without their
/// permissions.
pub async fn role_scopes(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_ids: &[String],
) -> Result<HashMap<String, RoleScope>, DbErr> {
    let mut scopes = HashMap::with_capacity(role_ids.len());
    for chunk in role_ids.chunks(row_list::CHUNK) {
        let rows: Vec<(String, String)> = role::Entity::find()
            .select_only()
            .column(role::Column::RoleId)
            .column(role::Column::Scope)
            .filter(role::Column::OrganizationId.eq(organization_id))
            .filter(row_list::is_in(
                backend_of(db),
                role::Column::RoleId,
                chunk,
            )?)
            .into_tuple()
            .all(db)
            .await?;
        for (role_id, scope) in rows {
            scopes.insert(role_id, parse_scope(&scope)?);
        }
    }
    Ok(scopes)
}

/// Inserts `(user, role)` pairs, skipping those that exist.
pub async fn insert_user_roles(
    db: &impl ConnectionTrait,
    organization_id: &str,
    pairs: &[(String, String)],
    now: i64,
) -> Result<(), DbErr> {
    for chunk in pairs.chunks(row_list::CHUNK) {
        let rows = chunk
            .iter()
            .map(|(user_id, role_id)| user_role::ActiveModel {
                organization_id: Set(organization_id.to_owned()),
                user_id: Set(user_id.clone()),
                role_id: Set(role_id.clone()),
                create_time: Set(now),
            });
        user_role::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    user_role::Column::OrganizationId,
                    user_role::Column::UserId,
                    user_role::Column::RoleId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Removes the roles `role_ids` from `user_id`.
pub async fn delete_user_roles(
    db: &impl ConnectionTrait,
    organization_id: &str,
    user_id: &str,
    role_ids: &[String],
) -> Result<(), DbErr> {
    for chunk in role_ids.chunks(row_list::CHUNK) {
        user_role::Entity::delete_many()
            .filter(user_role::Column::OrganizationId.eq(organization_id))
            .filter(user_role::Column::UserId.eq(user_id))
            .filter(row_list::is_in(
                backend_of(db),
                user_role::Column::RoleId,
                chunk,
            )?)
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Removes `role_id` from the users `user_ids`.
pub async fn delete_role_members(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
    user_ids: &[String],
) -> Result<(), DbErr> {
    for chunk in user_ids.chunks(row_list::CHUNK) {
        user_role::Entity::delete_many()
            .filter(user_role::Column::OrganizationId.eq(organization_id))
            .filter(user_role::Column::RoleId.eq(role_id))
            .filter(row_list::is_in(
                backend_of(db),
                user_role::Column::UserId,
                chunk,
            )?)
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Which of `user_ids` hold `role_id`.
pub async fn members_among(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
    user_ids: &[String],
) -> Result<HashSet<String>, DbErr> {
    let mut holders = HashSet::new();
    for chunk in user_ids.chunks(row_list::CHUNK) {
        holders.extend(
            user_role::Entity::find()
                .filter(user_role::Column::OrganizationId.eq(organization_id))
                .filter(user_role::Column::RoleId.eq(role_id))
                .filter(row_list::is_in(
                    backend_of(db),
                    user_role::Column::UserId,
                    chunk,
                )?)
                .all(db)
                .await?
                .into_iter()
                .map(|m| m.user_id),
        );
    }
    Ok(holders)
}

/// Users holding `role_id` with ids after `after`, ordered.
pub async fn list_role_members(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let query = user_role::Entity::find()
        .filter(user_role::Column::OrganizationId.eq(organization_id))
        .filter(user_role::Column::RoleId.eq(role_id));
    Ok(
        page_after(db, query, user_role::Column::UserId, after, limit)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect(),
    )
}
