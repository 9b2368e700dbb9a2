use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

/// Usernames compared byte by byte on PostgreSQL too (SQLite always does):
/// under a language collation `.`, `-` and `_` are ignored at first, so a
/// prefix range over the unique index would miss names. Usernames are ASCII
/// (`[a-z0-9._-]`), so this changes no stored value.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "\"C\"").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "\"default\"").await
    }
}

async fn collate(manager: &SchemaManager<'_>, collation: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE users ALTER COLUMN username TYPE varchar(32) COLLATE {collation}"
        ))
        .await?;
    Ok(())
}
