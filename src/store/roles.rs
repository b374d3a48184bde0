//! Roles, their permissions, and organization-role assignments of users.

use super::entities::{membership, membership_role, permission, role, user_role};
use super::page_after;
use crate::domain::model::{Permission, Role, RoleScope};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{OnConflict, Query},
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows per multi-row statement: stays far below every backend's parameter limit.
const CHUNK: usize = 500;

fn role_model(r: &Role) -> role::ActiveModel {
    role::ActiveModel {
        organization_id: Set(r.organization_id.clone()),
        role_id: Set(r.role_id.clone()),
        name: Set(r.name.clone()),
        description: Set(r.description.clone()),
        scope: Set(r.scope.as_str().to_owned()),
        revision: Set(r.revision),
        create_time: Set(r.create_time),
        update_time: Set(r.update_time),
    }
}

async fn insert_permissions(db: &impl ConnectionTrait, r: &Role) -> Result<(), DbErr> {
    if r.permissions.is_empty() {
        return Ok(());
    }
    let rows = r
        .permissions
        .iter()
        .enumerate()
        .map(|(i, p)| permission::ActiveModel {
            organization_id: Set(r.organization_id.clone()),
            role_id: Set(r.role_id.clone()),
            name: Set(p.name.clone()),
            description: Set(p.description.clone()),
            access: Set(p.access),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
        })
        .collect::<Vec<_>>();
    for chunk in rows.chunks(CHUNK) {
        permission::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Inserts a role with its permissions.
pub async fn insert_role(db: &impl ConnectionTrait, r: &Role) -> Result<(), DbErr> {
    role::Entity::insert(role_model(r))
        .exec_without_returning(db)
        .await?;
    insert_permissions(db, r).await
}

/// Overwrites a role's row and permissions.
pub async fn update_role(db: &impl ConnectionTrait, r: &Role) -> Result<(), DbErr> {
    role::Entity::update(role_model(r)).exec(db).await?;
    permission::Entity::delete_many()
        .filter(permission::Column::OrganizationId.eq(&r.organization_id))
        .filter(permission::Column::RoleId.eq(&r.role_id))
        .exec(db)
        .await?;
    insert_permissions(db, r).await
}

/// Attaches permissions to role rows, keeping the rows' order.
async fn hydrate(
    db: &impl ConnectionTrait,
    organization_id: &str,
    rows: Vec<role::Model>,
) -> Result<Vec<Role>, DbErr> {
    let ids: Vec<String> = rows.iter().map(|r| r.role_id.clone()).collect();
    let mut permissions: BTreeMap<String, Vec<Permission>> = BTreeMap::new();
    for chunk in ids.chunks(CHUNK) {
        let found = permission::Entity::find()
            .filter(permission::Column::OrganizationId.eq(organization_id))
            .filter(permission::Column::RoleId.is_in(chunk.iter().cloned()))
            .order_by_asc(permission::Column::RoleId)
            .order_by_asc(permission::Column::Position)
            .all(db)
            .await?;
        for p in found {
            permissions.entry(p.role_id).or_default().push(Permission {
                name: p.name,
                description: p.description,
                access: p.access,
            });
        }
    }
    rows.into_iter()
        .map(|r| {
            Ok(Role {
                permissions: permissions.remove(&r.role_id).unwrap_or_default(),
                scope: RoleScope::parse(&r.scope)
                    .ok_or_else(|| DbErr::Custom(format!("bad scope `{}`", r.scope)))?,
                organization_id: r.organization_id,
                role_id: r.role_id,
                name: r.name,
                description: r.description,
                revision: r.revision,
                create_time: r.create_time,
                update_time: r.update_time,
            })
        })
        .collect()
}

/// One role with its permissions.
pub async fn get_role(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_id: &str,
) -> Result<Option<Role>, DbErr> {
    let Some(row) = role::Entity::find_by_id((organization_id.to_owned(), role_id.to_owned()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(hydrate(db, organization_id, vec![row]).await?.pop())
}

/// The roles among `role_ids` that exist, ordered by id.
pub async fn get_roles(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_ids: &[String],
) -> Result<Vec<Role>, DbErr> {
    let mut rows = Vec::with_capacity(role_ids.len());
    for chunk in role_ids.chunks(CHUNK) {
        rows.extend(
            role::Entity::find()
                .filter(role::Column::OrganizationId.eq(organization_id))
                .filter(role::Column::RoleId.is_in(chunk.iter().cloned()))
                .all(db)
                .await?,
        );
    }
    rows.sort_by(|a, b| a.role_id.cmp(&b.role_id));
    hydrate(db, organization_id, rows).await
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
    hydrate(db, organization_id, rows).await
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
    hydrate(db, organization_id, rows).await
}

/// The scopes of the roles among `role_ids` that exist, without their
/// permissions.
pub async fn role_scopes(
    db: &impl ConnectionTrait,
    organization_id: &str,
    role_ids: &[String],
) -> Result<HashMap<String, RoleScope>, DbErr> {
    let mut scopes = HashMap::with_capacity(role_ids.len());
    for chunk in role_ids.chunks(CHUNK) {
        let rows: Vec<(String, String)> = role::Entity::find()
            .select_only()
            .column(role::Column::RoleId)
            .column(role::Column::Scope)
            .filter(role::Column::OrganizationId.eq(organization_id))
            .filter(role::Column::RoleId.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        for (role_id, scope) in rows {
            let scope = RoleScope::parse(&scope)
                .ok_or_else(|| DbErr::Custom(format!("bad scope `{scope}`")))?;
            scopes.insert(role_id, scope);
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
    for chunk in pairs.chunks(CHUNK) {
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
    for chunk in role_ids.chunks(CHUNK) {
        user_role::Entity::delete_many()
            .filter(user_role::Column::OrganizationId.eq(organization_id))
            .filter(user_role::Column::UserId.eq(user_id))
            .filter(user_role::Column::RoleId.is_in(chunk.iter().cloned()))
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
    for chunk in user_ids.chunks(CHUNK) {
        user_role::Entity::delete_many()
            .filter(user_role::Column::OrganizationId.eq(organization_id))
            .filter(user_role::Column::RoleId.eq(role_id))
            .filter(user_role::Column::UserId.is_in(chunk.iter().cloned()))
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
    for chunk in user_ids.chunks(CHUNK) {
        holders.extend(
            user_role::Entity::find()
                .filter(user_role::Column::OrganizationId.eq(organization_id))
                .filter(user_role::Column::RoleId.eq(role_id))
                .filter(user_role::Column::UserId.is_in(chunk.iter().cloned()))
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
