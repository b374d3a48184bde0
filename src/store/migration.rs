//! Schema migrations. Foreign keys and unique constraints keep the data
//! consistent even if a code path forgets a check.

use sea_orm_migration::prelude::*;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(PermissionsInRoles),
            Box::new(AclVersions),
            Box::new(AclSolo),
            Box::new(UnfinishedOperations),
        ]
    }
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m20261123_000001_initial"
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    OrganizationId,
    DisplayName,
    CreateTime,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    OrganizationId,
    UserId,
    Email,
    EmailKey,
    AadId,
    Auth0Id,
    DisplayName,
    CreateTime,
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    OrganizationId,
    WorkspaceId,
    DisplayName,
    CreateTime,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    OrganizationId,
    RoleId,
    Name,
    Description,
    Scope,
    Revision,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    OrganizationId,
    RoleId,
    Name,
    Description,
    Access,
    Position,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    OrganizationId,
    UserId,
    RoleId,
    CreateTime,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    MembershipId,
    OrganizationId,
    WorkspaceId,
    UserId,
    BaseRoleId,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum MembershipRoles {
    Table,
    MembershipId,
    RoleId,
    OrganizationId,
    CreateTime,
}

#[derive(DeriveIden)]
enum Operations {
    Table,
    Seq,
    Id,
    OrganizationId,
    Target,
    Verb,
    Principal,
    RequestId,
    TraceId,
    Command,
    State,
    Done,
    CancelRequested,
    RequestedItems,
    ProcessedItems,
    Result,
    LeaseOwner,
    LeaseExpires,
    CreateTime,
    StartTime,
    EndTime,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string_len(64).not_null().to_owned()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn micros(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn index<T: IntoIden + 'static, C: IntoIden + 'static>(
    name: &str,
    table: T,
    cols: Vec<C>,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col);
    }
    index.to_owned()
}

fn unique_index<T: IntoIden + 'static, C: IntoIden + 'static>(
    name: &str,
    table: T,
    cols: Vec<C>,
) -> IndexCreateStatement {
    index(name, table, cols).unique().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(id(Organizations::OrganizationId).primary_key())
                    .col(text(Organizations::DisplayName))
                    .col(micros(Organizations::CreateTime))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::OrganizationId))
                    .col(id(Users::UserId))
                    .col(ColumnDef::new(Users::Email).string_len(254))
                    .col(ColumnDef::new(Users::EmailKey).string_len(254))
                    .col(ColumnDef::new(Users::AadId).string_len(256))
                    .col(ColumnDef::new(Users::Auth0Id).string_len(256))
                    .col(text(Users::DisplayName))
                    .col(micros(Users::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(Users::OrganizationId)
                            .col(Users::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::OrganizationId)
                            .to(Organizations::Table, Organizations::OrganizationId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("users_email_key", Users::EmailKey),
            ("users_aad_id", Users::AadId),
            ("users_auth0_id", Users::Auth0Id),
        ] {
            manager
                .create_index(unique_index(
                    name,
                    Users::Table,
                    vec![Users::OrganizationId, col],
                ))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Workspaces::Table)
                    .col(id(Workspaces::OrganizationId))
                    .col(id(Workspaces::WorkspaceId))
                    .col(text(Workspaces::DisplayName))
                    .col(micros(Workspaces::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(Workspaces::OrganizationId)
                            .col(Workspaces::WorkspaceId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Workspaces::Table, Workspaces::OrganizationId)
                            .to(Organizations::Table, Organizations::OrganizationId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(id(Roles::OrganizationId))
                    .col(id(Roles::RoleId))
                    .col(text(Roles::Name))
                    .col(text(Roles::Description))
                    .col(ColumnDef::new(Roles::Scope).string_len(16).not_null())
                    .col(micros(Roles::Revision))
                    .col(micros(Roles::CreateTime))
                    .col(micros(Roles::UpdateTime))
                    .primary_key(
                        Index::create()
                            .col(Roles::OrganizationId)
                            .col(Roles::RoleId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Roles::Table, Roles::OrganizationId)
                            .to(Organizations::Table, Organizations::OrganizationId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Permissions::Table)
                    .col(id(Permissions::OrganizationId))
                    .col(id(Permissions::RoleId))
                    .col(ColumnDef::new(Permissions::Name).string_len(128).not_null())
                    .col(text(Permissions::Description))
                    .col(ColumnDef::new(Permissions::Access).boolean().not_null())
                    .col(ColumnDef::new(Permissions::Position).integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Permissions::OrganizationId)
                            .col(Permissions::RoleId)
                            .col(Permissions::Name),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                Permissions::Table,
                                (Permissions::OrganizationId, Permissions::RoleId),
                            )
                            .to(Roles::Table, (Roles::OrganizationId, Roles::RoleId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .col(id(UserRoles::OrganizationId))
                    .col(id(UserRoles::UserId))
                    .col(id(UserRoles::RoleId))
                    .col(micros(UserRoles::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(UserRoles::OrganizationId)
                            .col(UserRoles::UserId)
                            .col(UserRoles::RoleId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                UserRoles::Table,
                                (UserRoles::OrganizationId, UserRoles::UserId),
                            )
                            .to(Users::Table, (Users::OrganizationId, Users::UserId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                UserRoles::Table,
                                (UserRoles::OrganizationId, UserRoles::RoleId),
                            )
                            .to(Roles::Table, (Roles::OrganizationId, Roles::RoleId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "user_roles_by_role",
                UserRoles::Table,
                vec![
                    UserRoles::OrganizationId,
                    UserRoles::RoleId,
                    UserRoles::UserId,
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(id(Memberships::MembershipId).primary_key())
                    .col(id(Memberships::OrganizationId))
                    .col(id(Memberships::WorkspaceId))
                    .col(id(Memberships::UserId))
                    .col(id(Memberships::BaseRoleId))
                    .col(micros(Memberships::CreateTime))
                    .col(micros(Memberships::UpdateTime))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                Memberships::Table,
                                (Memberships::OrganizationId, Memberships::WorkspaceId),
                            )
                            .to(
                                Workspaces::Table,
                                (Workspaces::OrganizationId, Workspaces::WorkspaceId),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                Memberships::Table,
                                (Memberships::OrganizationId, Memberships::UserId),
                            )
                            .to(Users::Table, (Users::OrganizationId, Users::UserId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                Memberships::Table,
                                (Memberships::OrganizationId, Memberships::BaseRoleId),
                            )
                            .to(Roles::Table, (Roles::OrganizationId, Roles::RoleId)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "memberships_one_per_user",
                Memberships::Table,
                vec![
                    Memberships::OrganizationId,
                    Memberships::WorkspaceId,
                    Memberships::UserId,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "memberships_by_user",
                Memberships::Table,
                vec![Memberships::OrganizationId, Memberships::UserId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MembershipRoles::Table)
                    .col(id(MembershipRoles::MembershipId))
                    .col(id(MembershipRoles::RoleId))
                    .col(id(MembershipRoles::OrganizationId))
                    .col(micros(MembershipRoles::CreateTime))
                    .primary_key(
                        Index::create()
                            .col(MembershipRoles::MembershipId)
                            .col(MembershipRoles::RoleId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MembershipRoles::Table, MembershipRoles::MembershipId)
                            .to(Memberships::Table, Memberships::MembershipId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                MembershipRoles::Table,
                                (MembershipRoles::OrganizationId, MembershipRoles::RoleId),
                            )
                            .to(Roles::Table, (Roles::OrganizationId, Roles::RoleId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Operations::Table)
                    .col(
                        ColumnDef::new(Operations::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Operations::Id)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(id(Operations::OrganizationId))
                    .col(text(Operations::Target))
                    .col(ColumnDef::new(Operations::Verb).string_len(64).not_null())
                    .col(text(Operations::Principal))
                    .col(ColumnDef::new(Operations::RequestId).string_len(64))
                    .col(text(Operations::TraceId))
                    .col(text(Operations::Command))
                    .col(ColumnDef::new(Operations::State).string_len(16).not_null())
                    .col(ColumnDef::new(Operations::Done).boolean().not_null())
                    .col(
                        ColumnDef::new(Operations::CancelRequested)
                            .boolean()
                            .not_null(),
                    )
                    .col(micros(Operations::RequestedItems))
                    .col(micros(Operations::ProcessedItems))
                    .col(ColumnDef::new(Operations::Result).text())
                    .col(ColumnDef::new(Operations::LeaseOwner).string_len(64))
                    .col(ColumnDef::new(Operations::LeaseExpires).big_integer())
                    .col(micros(Operations::CreateTime))
                    .col(ColumnDef::new(Operations::StartTime).big_integer())
                    .col(ColumnDef::new(Operations::EndTime).big_integer())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "operations_request_id",
                Operations::Table,
                vec![Operations::Principal, Operations::RequestId],
            ))
            .await?;
        for (name, cols) in [
            (
                "operations_by_target",
                vec![Operations::Target, Operations::Seq],
            ),
            (
                "operations_by_state",
                vec![Operations::State, Operations::Seq],
            ),
            (
                "operations_by_organization",
                vec![Operations::OrganizationId, Operations::Seq],
            ),
            (
                "operations_by_end",
                vec![Operations::Done, Operations::EndTime],
            ),
        ] {
            manager
                .create_index(index(name, Operations::Table, cols))
                .await?;
        }
        Ok(())
    }
}

/// Moves each role's permissions into a JSON column of its row, so that a
/// role (or all roles of a user) is read in one query without a join.
struct PermissionsInRoles;

impl MigrationName for PermissionsInRoles {
    fn name(&self) -> &str {
        "m20261123_000002_permissions_in_roles"
    }
}

#[derive(DeriveIden)]
enum RolePermissions {
    Permissions,
}

/// Fills `roles.permissions` from the `permissions` rows, in position order.
const BACKFILL_SQLITE: &str = "UPDATE roles SET permissions = (\
    SELECT json_group_array(json_object('name', p.name, 'description', p.description, \
        'access', CASE WHEN p.access THEN json('true') ELSE json('false') END)) \
    FROM (SELECT * FROM permissions \
        WHERE organization_id = roles.organization_id AND role_id = roles.role_id \
        ORDER BY position) p)";
const BACKFILL_POSTGRES: &str = "UPDATE roles r SET permissions = COALESCE((\
    SELECT json_agg(json_build_object('name', p.name, 'description', p.description, \
        'access', p.access) ORDER BY p.position)::text \
    FROM permissions p \
    WHERE p.organization_id = r.organization_id AND p.role_id = r.role_id), '[]')";

#[async_trait::async_trait]
impl MigrationTrait for PermissionsInRoles {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Roles::Table)
                    .add_column(
                        ColumnDef::new(RolePermissions::Permissions)
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .to_owned(),
            )
            .await?;
        let backfill = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => BACKFILL_POSTGRES,
            _ => BACKFILL_SQLITE,
        };
        manager
            .get_connection()
            .execute_unprepared(backfill)
            .await?;
        manager
            .drop_table(Table::drop().table(Permissions::Table).to_owned())
            .await
    }
}

/// A version per organization, bumped by every transaction that changes
/// what cached reads of it answer, so that a replica can tell whether its
/// cache is current (see `domain::read_cache`).
struct AclVersions;

impl MigrationName for AclVersions {
    fn name(&self) -> &str {
        "m20261123_000003_acl_versions"
    }
}

#[derive(DeriveIden)]
enum AclVersionsTable {
    #[sea_orm(iden = "acl_versions")]
    Table,
    OrganizationId,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for AclVersions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AclVersionsTable::Table)
                    .col(id(AclVersionsTable::OrganizationId).primary_key())
                    .col(
                        ColumnDef::new(AclVersionsTable::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }
}

/// What lets a replica alone on a PostgreSQL database answer cached reads
/// without asking for versions (see `store::solo`); nothing on SQLite,
/// where one process owns the database.
struct AclSolo;

impl MigrationName for AclSolo {
    fn name(&self) -> &str {
        "m20261124_000004_acl_solo"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AclSolo {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        for statement in super::solo::schema() {
            manager
                .get_connection()
                .execute_unprepared(&statement)
                .await?;
        }
        Ok(())
    }
}

/// An index of the operations not yet done, by target: whether a target
/// has one is asked before every operation is applied, and with `done` a
/// bound parameter PostgreSQL's generic plan read every operation the
/// target ever had. Queries match it with the literal `done = FALSE`.
struct UnfinishedOperations;

impl MigrationName for UnfinishedOperations {
    fn name(&self) -> &str {
        "m20261124_000005_unfinished_operations"
    }
}

/// The predicate of the partial index, as the queries that use it spell it.
pub const UNFINISHED: &str = "done = FALSE";

#[async_trait::async_trait]
impl MigrationTrait for UnfinishedOperations {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX operations_unfinished_by_target ON operations (target, seq) \
                 WHERE {UNFINISHED}"
            ))
            .await
            .map(drop)
    }
}
