//! A registered account. Usernames are stored lower-cased and unique, so the
//! unique index decides which of two concurrent signups wins.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// UUID v7: time-ordered, so inserts stay local in the primary-key index.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Set by an operator (`tessera users disable`): no sign-in, no sessions.
    pub disabled_at: Option<DateTimeUtc>,
    /// Set by a password change or reset; `None` since sign-up.
    pub password_changed_at: Option<DateTimeUtc>,
    /// The last completed sign-in (the second step, with TOTP on).
    pub last_signin_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_one = "super::mfa_factor::Entity")]
    MfaFactor,
}

impl Related<super::mfa_factor::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MfaFactor.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
