//! Organization-role assignments of many users at once: each function is
//! one statement whatever the number of users, so that a batch of
//! AssignUserRoles and RevokeUserRoles operations costs a fixed number of
//! statements instead of a few per operation.

use super::{
    backend_of,
    entities::role,
    roles::{parse_scope, to_role},
    row_list, statement,
};
use crate::domain::model::{Role, RoleScope};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use std::collections::{HashMap, HashSet};

/// `(organization_id, id)`: a user or a role.
pub type Key = (String, String);

/// Which of the `(organization, user)` pairs `users` exist, and the scopes
/// of those of the `(organization, role)` pairs `roles` that exist: one
/// statement for both.
pub async fn users_and_role_scopes(
    db: &impl ConnectionTrait,
    users: &[(&str, &str)],
    roles: &[(&str, &str)],
) -> Result<(HashSet<Key>, HashMap<Key, RoleScope>), DbErr> {
    let backend = backend_of(db);
    let user_list = row_list::rows(backend, &["o", "u"], users)?;
    let role_list = row_list::rows(backend, &["o", "r"], roles)?;
    let sql = format!(
        "SELECT organization_id, user_id AS id, NULL AS scope FROM users \
         WHERE (organization_id, user_id) IN ({}) \
         UNION ALL \
         SELECT organization_id, role_id, scope FROM roles \
         WHERE (organization_id, role_id) IN ({})",
        user_list.sql, role_list.sql
    );
    let mut values = user_list.values;
    values.extend(role_list.values);
    let mut existing = HashSet::new();
    let mut scopes = HashMap::new();
    for row in db.query_all(statement(backend, &sql, values)).await? {
        let key = (row.try_get("", "organization_id")?, row.try_get("", "id")?);
        match row.try_get::<Option<String>>("", "scope")? {
            Some(scope) => {
                scopes.insert(key, parse_scope(&scope)?);
            }
            None => {
                existing.insert(key);
            }
        }
    }
    Ok((existing, scopes))
}

/// Gives each `(organization, user, role)` of `grants` its assignment,
/// skipping those that exist.
pub async fn insert(
    db: &impl ConnectionTrait,
    grants: &[(&str, &str, &str)],
    now: i64,
) -> Result<(), DbErr> {
    if grants.is_empty() {
        return Ok(());
    }
    // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's.
    let insert = row_list::statement(
        backend_of(db),
        "INSERT INTO user_roles (organization_id, user_id, role_id, create_time) \
         SELECT o, u, r, ? FROM ({rows}) AS g WHERE true \
         ON CONFLICT (organization_id, user_id, role_id) DO NOTHING",
        &["o", "u", "r"],
        grants,
        vec![now.into()],
        vec![],
    )?;
    db.execute(insert).await.map(drop)
}

/// Removes each `(organization, user, role)` assignment of `revokes`.
pub async fn delete(
    db: &impl ConnectionTrait,
    revokes: &[(&str, &str, &str)],
) -> Result<(), DbErr> {
    if revokes.is_empty() {
        return Ok(());
    }
    let delete = row_list::statement(
        backend_of(db),
        "DELETE FROM user_roles WHERE (organization_id, user_id, role_id) IN ({rows})",
        &["o", "u", "r"],
        revokes,
        vec![],
        vec![],
    )?;
    db.execute(delete).await.map(drop)
}

/// The organization roles each of the `(organization, user)` pairs `users`
/// holds, with permissions, ordered by role id. A user holding none is
/// absent from the map. The list drives the join, so that each user's
/// assignments are found by the primary key.
pub async fn roles_of_users(
    db: &impl ConnectionTrait,
    users: &[(&str, &str)],
) -> Result<HashMap<Key, Vec<Role>>, DbErr> {
    let select = row_list::statement(
        backend_of(db),
        "SELECT a.user_id AS holder_id, r.* FROM ({rows}) AS w \
         JOIN user_roles a ON a.organization_id = w.o AND a.user_id = w.u \
         JOIN roles r ON r.organization_id = a.organization_id AND r.role_id = a.role_id \
         ORDER BY a.organization_id, a.user_id, r.role_id",
        &["o", "u"],
        users,
        vec![],
        vec![],
    )?;
    let rows = db.query_all(select).await?;
    let mut held: HashMap<Key, Vec<Role>> = HashMap::new();
    for row in rows {
        let holder: String = row.try_get("", "holder_id")?;
        let role = to_role(role::Model::from_query_result(&row, "")?)?;
        held.entry((role.organization_id.clone(), holder))
            .or_default()
            .push(role);
    }
    Ok(held)
}
