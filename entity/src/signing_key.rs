//! A managed Ed25519 signing key, sealed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// RFC 7638 thumbprint, the JWT `kid`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    #[sea_orm(unique)]
    pub generation: i64,
    /// Which key-encryption key sealed it.
    pub sealing_key_id: String,
    /// Base64 of nonce ‖ ciphertext of the PKCS#8 key, the kid as AAD.
    pub sealed_key: String,
    pub created_at: DateTimeUtc,
    pub signs_from: DateTimeUtc,
    pub withdrawn_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
