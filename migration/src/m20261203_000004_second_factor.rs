use sea_orm_migration::{prelude::*, schema::*};

/// A user's TOTP factor (pending until confirmed; its secret sealed) and
/// recovery codes (HMACs only), both gone with their user.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MfaFactors::Table)
                    .if_not_exists()
                    .col(pk_uuid(MfaFactors::UserId))
                    // A new one for every enrolment: an mfa_token names the
                    // factor it was issued under.
                    .col(uuid(MfaFactors::Id))
                    .col(string_len(MfaFactors::KeyId, 16))
                    .col(text(MfaFactors::SealedSecret))
                    .col(timestamp_with_time_zone(MfaFactors::CreatedAt))
                    .col(timestamp_with_time_zone_null(MfaFactors::EnabledAt))
                    // The last TOTP step accepted: only later ones count (replay).
                    .col(big_integer(MfaFactors::LastStep).default(0))
                    .col(integer(MfaFactors::ConsecutiveFailures).default(0))
                    .col(timestamp_with_time_zone_null(MfaFactors::LockedAt))
                    .col(integer(MfaFactors::RecoveryCodesLeft).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MfaFactors::Table, MfaFactors::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(uuid(RecoveryCodes::UserId))
                    // HMAC-SHA256 of the code, hex.
                    .col(string_len(RecoveryCodes::CodeHash, 64))
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::CodeHash),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecoveryCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MfaFactors::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MfaFactors {
    Table,
    UserId,
    Id,
    KeyId,
    SealedSecret,
    CreatedAt,
    EnabledAt,
    LastStep,
    ConsecutiveFailures,
    LockedAt,
    RecoveryCodesLeft,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    UserId,
    CodeHash,
}
