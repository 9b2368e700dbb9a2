//! A security event: who did what, when, from where.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// UUID v7 from `at`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at: DateTimeUtc,
    /// `user.signed_in`, `session.revoked`, …
    pub r#type: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// `user`, `admin_token`, `cli` or `system`.
    pub actor_kind: String,
    /// The admin token's name, for `admin_token`.
    pub actor_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object, as text.
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
