//! A user's TOTP factor: pending until its first code confirms it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// New for every enrolment.
    pub id: Uuid,
    /// Which key sealed the secret.
    pub key_id: String,
    /// Base64 of nonce ‖ XChaCha20-Poly1305 ciphertext of the secret.
    pub sealed_secret: String,
    pub created_at: DateTimeUtc,
    /// `None` while pending.
    pub enabled_at: Option<DateTimeUtc>,
    /// The last TOTP step accepted.
    pub last_step: i64,
    pub consecutive_failures: i32,
    pub locked_at: Option<DateTimeUtc>,
    pub recovery_codes_left: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
