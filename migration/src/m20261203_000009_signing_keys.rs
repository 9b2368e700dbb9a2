use sea_orm_migration::{prelude::*, schema::*};

/// Managed Ed25519 signing keys, sealed. A key's state follows from its
/// times and the next key's: published from `created_at`, signing from
/// `signs_from` until the next generation signs, withdrawn at once when
/// `withdrawn_at` is set.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    // RFC 7638 thumbprint (base64url SHA-256): the JWT `kid`.
                    .col(string_len(SigningKeys::Kid, 64).primary_key())
                    // 1, 2, 3, …: unique, so of instances creating the next
                    // key at once exactly one succeeds.
                    .col(big_integer_uniq(SigningKeys::Generation))
                    .col(string_len(SigningKeys::SealingKeyId, 32))
                    .col(text(SigningKeys::SealedKey))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone(SigningKeys::SignsFrom))
                    .col(timestamp_with_time_zone_null(SigningKeys::WithdrawnAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Generation,
    SealingKeyId,
    SealedKey,
    CreatedAt,
    SignsFrom,
    WithdrawnAt,
}
