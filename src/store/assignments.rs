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
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
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

/// `(organization, user, role)` columns.
const TRIPLE: &[&str] = &["o", "u", "r"];

/// The statements that revoke `revokes` and grant `grants`. On PostgreSQL
/// both are one statement, the revocation a `WITH` clause of the grant: the
/// changes of a batch are each on a different user, so neither part needs
/// to see the other's rows, and one statement is one round trip fewer.
fn change_statements(
    backend: DbBackend,
    grants: &[(&str, &str, &str)],
    revokes: &[(&str, &str, &str)],
    now: i64,
) -> Result<Vec<Statement>, DbErr> {
    let mut parts = Vec::new();
    if !revokes.is_empty() {
        let list = row_list::rows(backend, TRIPLE, revokes)?;
        parts.push((
            format!(
                "DELETE FROM user_roles WHERE (organization_id, user_id, role_id) IN ({})",
                list.sql
            ),
            list.values,
        ));
    }
    if !grants.is_empty() {
        let list = row_list::rows(backend, TRIPLE, grants)?;
        let mut values = vec![now.into()];
        values.extend(list.values);
        // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's.
        parts.push((
            format!(
                "INSERT INTO user_roles (organization_id, user_id, role_id, create_time) \
                 SELECT o, u, r, ? FROM ({}) AS g WHERE true \
                 ON CONFLICT (organization_id, user_id, role_id) DO NOTHING",
                list.sql
            ),
            values,
        ));
    }
    let parts = match <[_; 2]>::try_from(parts) {
        Ok([(revoke, mut values), (grant, grant_values)]) if backend == DbBackend::Postgres => {
            values.extend(grant_values);
            return Ok(vec![statement(
                backend,
                &format!("WITH revoked AS ({revoke}) {grant}"),
                values,
            )]);
        }
        Ok(both) => Vec::from(both),
        Err(parts) => parts,
    };
    Ok(parts
        .into_iter()
        .map(|(sql, values)| statement(backend, &sql, values))
        .collect())
}

/// Gives each `(organization, user, role)` of `grants` its assignment
/// (skipping those that exist), removes each of `revokes`, and then reads
/// the organization roles each of the `(organization, user)` pairs `users`
/// holds, with permissions, ordered by role id; a user holding none is
/// absent from the map. On SQLite the statements go as one: a connection
/// is a thread of this process, and each statement a hop to it and back.
pub async fn change_and_read(
    db: &impl ConnectionTrait,
    grants: &[(&str, &str, &str)],
    revokes: &[(&str, &str, &str)],
    users: &[(&str, &str)],
    now: i64,
) -> Result<HashMap<Key, Vec<Role>>, DbErr> {
    let backend = backend_of(db);
    let changes = change_statements(backend, grants, revokes, now)?;
    // The list drives the join, so that each user's assignments are found
    // by the primary key.
    let select = (!users.is_empty()).then(|| {
        row_list::statement(
            backend,
            "SELECT a.user_id AS holder_id, r.* FROM ({rows}) AS w \
             JOIN user_roles a ON a.organization_id = w.o AND a.user_id = w.u \
             JOIN roles r ON r.organization_id = a.organization_id AND r.role_id = a.role_id \
             ORDER BY a.organization_id, a.user_id, r.role_id",
            &["o", "u"],
            users,
            vec![],
            vec![],
        )
    });
    let select = match select.transpose()? {
        Some(select) if backend == DbBackend::Sqlite => row_list::in_sequence(changes, select),
        select => {
            for change in changes {
                db.execute(change).await?;
            }
            match select {
                Some(select) => select,
                None => return Ok(HashMap::new()),
            }
        }
    };
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
