use sea_orm_migration::{prelude::*, schema::*};

/// Security events: who did what, when, from where. No foreign key to
/// `users`: a deleted user's events stay (with their personal data cleared).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    // UUID v7 from `at`: id order is time order, so the
                    // newest-first pages are a range over the primary key.
                    .col(uuid(AuditEvents::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string_len(AuditEvents::Type, 64))
                    .col(uuid_null(AuditEvents::UserId))
                    .col(uuid_null(AuditEvents::SessionId))
                    .col(string_len(AuditEvents::ActorKind, 16))
                    .col(string_len_null(AuditEvents::ActorName, 64))
                    .col(string_len_null(AuditEvents::Ip, 64))
                    .col(text_null(AuditEvents::UserAgent))
                    // A JSON object, as text (the same on every backend).
                    .col(text_null(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        // A user's own events, newest first.
        manager
            .create_index(
                Index::create()
                    .name("audit_events_user_id_id")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::UserId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        // Retention pruning and the `since`/`until` filters.
        manager
            .create_index(
                Index::create()
                    .name("audit_events_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Type,
    UserId,
    SessionId,
    ActorKind,
    ActorName,
    Ip,
    UserAgent,
    Detail,
}
