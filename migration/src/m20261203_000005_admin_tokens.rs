use sea_orm_migration::{prelude::*, schema::*};

/// Admin tokens for the back office: named, stored only as their SHA-256.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AdminTokens::Table)
                    .if_not_exists()
                    // `[a-z0-9._-]{1,64}`, unique: how operators name a token.
                    .col(string_len(AdminTokens::Name, 64).primary_key())
                    // Hex SHA-256 of the token; every call looks it up by this.
                    .col(string_len_uniq(AdminTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(AdminTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(AdminTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AdminTokens::LastUsedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AdminTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AdminTokens {
    Table,
    Name,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}
