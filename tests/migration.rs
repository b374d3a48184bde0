//! Migration 2 moves each role's permission rows into a JSON column of the
//! role. A database left at migration 1, with roles and permission rows,
//! keeps every permission, in order, once a server has started on it.

#[macro_use]
mod common;

use common::*;
use rolekeeper::{pb::v1::GetRoleRequest, store::migration::Migrator};
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;

backend_tests!(permission_rows_move_into_their_roles);

/// Every table, children first.
const TABLES: &[&str] = &[
    "acl_solo",
    "acl_versions",
    "membership_roles",
    "memberships",
    "user_roles",
    "permissions",
    "operations",
    "users",
    "workspaces",
    "roles",
    "organizations",
    "seaql_migrations",
];

async fn permission_rows_move_into_their_roles(mut server: TestServer) {
    server.stop().await;
    let db = Database::connect(server.database_url())
        .await
        .expect("connect");
    for table in TABLES {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .expect("drop");
    }
    Migrator::up(&db, Some(1)).await.expect("migration 1 only");
    db.execute_unprepared(
        "INSERT INTO organizations VALUES ('old', 'Old', 0);
         INSERT INTO roles (organization_id, role_id, name, description, scope, revision,
             create_time, update_time)
         VALUES ('old', 'editor', 'Editor', '', 'organization', 1, 0, 0),
                ('old', 'empty', 'Empty', '', 'organization', 1, 0, 0);
         INSERT INTO permissions VALUES
             ('old', 'editor', 'docs.write', 'say \"hi\"', false, 1),
             ('old', 'editor', 'docs.read', '', true, 0);",
    )
    .await
    .expect("rows of migration 1");
    let _ = db.close().await;

    server.restart(0).await;
    let role = |role_id: &str| GetRoleRequest {
        organization_id: "old".into(),
        role_id: role_id.into(),
    };
    let editor = server.roles(&admin()).get_role(role("editor")).await.must();
    let permissions: Vec<_> = editor
        .permissions
        .iter()
        .map(|p| (p.name.as_str(), p.description.as_str(), p.access))
        .collect();
    assert_eq!(
        permissions,
        [
            ("docs.read", "", Some(true)),
            ("docs.write", "say \"hi\"", Some(false))
        ]
    );
    let empty = server.roles(&admin()).get_role(role("empty")).await.must();
    assert!(empty.permissions.is_empty());
}
