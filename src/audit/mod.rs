//! Security events as data ("Audit events"): who did what, when, from where.
//!
//! Three ways in, by what the event records:
//! - a database change writes its event in the change's own transaction
//!   ([`insert`], called by the stores), so one never exists without the other;
//! - a Redis-only change (`session.*`, `user.signed_in`) is written before
//!   the answer, or queued and retried while the database is down
//!   ([`AuditLog::record`]);
//! - a refused request's event is queued, off the response path
//!   ([`AuditLog::record_later`]), so known and unknown users take the same time.

mod log;

pub use log::{AuditLog, EventFilter, EventPage};

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::sessions::ClientInfo;

/// Every event type Tessera writes (an open set for clients: later versions
/// may add more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    SignedUp,
    Created,
    SignedIn,
    SigninFailed,
    SigninLimited,
    PasswordChanged,
    PasswordResetIssued,
    PasswordReset,
    MfaEnabled,
    MfaDisabled,
    MfaReset,
    MfaFailed,
    MfaLocked,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    SignedOut,
    SessionRevoked,
    AllSessionsRevoked,
    ReuseDetected,
    Disabled,
    Enabled,
    Deleted,
    AdminTokenCreated,
    AdminTokenRevoked,
}

impl EventType {
    pub const ALL: [EventType; 24] = [
        EventType::SignedUp,
        EventType::Created,
        EventType::SignedIn,
        EventType::SigninFailed,
        EventType::SigninLimited,
        EventType::PasswordChanged,
        EventType::PasswordResetIssued,
        EventType::PasswordReset,
        EventType::MfaEnabled,
        EventType::MfaDisabled,
        EventType::MfaReset,
        EventType::MfaFailed,
        EventType::MfaLocked,
        EventType::RecoveryCodeUsed,
        EventType::RecoveryCodesRegenerated,
        EventType::SignedOut,
        EventType::SessionRevoked,
        EventType::AllSessionsRevoked,
        EventType::ReuseDetected,
        EventType::Disabled,
        EventType::Enabled,
        EventType::Deleted,
        EventType::AdminTokenCreated,
        EventType::AdminTokenRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SignedUp => "user.signed_up",
            EventType::Created => "user.created",
            EventType::SignedIn => "user.signed_in",
            EventType::SigninFailed => "user.signin_failed",
            EventType::SigninLimited => "user.signin_limited",
            EventType::PasswordChanged => "user.password_changed",
            EventType::PasswordResetIssued => "user.password_reset_issued",
            EventType::PasswordReset => "user.password_reset",
            EventType::MfaEnabled => "user.mfa_enabled",
            EventType::MfaDisabled => "user.mfa_disabled",
            EventType::MfaReset => "user.mfa_reset",
            EventType::MfaFailed => "user.mfa_failed",
            EventType::MfaLocked => "user.mfa_locked",
            EventType::RecoveryCodeUsed => "user.recovery_code_used",
            EventType::RecoveryCodesRegenerated => "user.recovery_codes_regenerated",
            EventType::SignedOut => "session.signed_out",
            EventType::SessionRevoked => "session.revoked",
            EventType::AllSessionsRevoked => "session.all_revoked",
            EventType::ReuseDetected => "session.reuse_detected",
            EventType::Disabled => "user.disabled",
            EventType::Enabled => "user.enabled",
            EventType::Deleted => "user.deleted",
            EventType::AdminTokenCreated => "admin.token_created",
            EventType::AdminTokenRevoked => "admin.token_revoked",
        }
    }

    /// An event of this type by `by`, about nobody yet.
    pub fn by(self, by: &Acting) -> NewEvent {
        NewEvent {
            kind: self,
            user_id: None,
            session_id: None,
            by: by.clone(),
            detail: None,
        }
    }
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The user, on their own account (self-service, sign-in).
    User,
    /// The back office, with the admin token of this name.
    AdminToken(String),
    /// An operator at the admin CLI.
    Cli,
    /// Tessera itself (a replayed refresh token revoking its session).
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::AdminToken(_) => "admin_token",
            Actor::Cli => "cli",
            Actor::System => "system",
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Actor::AdminToken(name) => Some(name),
            _ => None,
        }
    }
}

/// Who acts, and from where (the caller's address and user agent; none at the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub actor: Actor,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Acting {
    pub fn new(actor: Actor, client: &ClientInfo) -> Self {
        Acting {
            actor,
            ip: Some(client.ip),
            user_agent: client.user_agent.clone(),
        }
    }

    pub fn user(client: &ClientInfo) -> Self {
        Acting::new(Actor::User, client)
    }

    pub fn cli() -> Self {
        Acting {
            actor: Actor::Cli,
            ip: None,
            user_agent: None,
        }
    }
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub by: Acting,
    pub detail: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn user(mut self, user_id: Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn session(mut self, session_id: Uuid) -> Self {
        self.session_id = Some(session_id);
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Without the caller's address, user agent and detail (what a deleted
    /// user's events keep).
    fn anonymous(mut self) -> Self {
        self.by.ip = None;
        self.by.user_agent = None;
        self.detail = None;
        self
    }

    fn row(&self, id: Uuid, at: DateTime<Utc>) -> audit_event::ActiveModel {
        audit_event::ActiveModel {
            id: Set(id),
            at: Set(at),
            r#type: Set(self.kind.as_str().to_owned()),
            user_id: Set(self.user_id),
            session_id: Set(self.session_id),
            actor_kind: Set(self.by.actor.kind().to_owned()),
            actor_name: Set(self.by.actor.name().map(str::to_owned)),
            ip: Set(self.by.ip.map(|ip| ip.to_string())),
            user_agent: Set(self.by.user_agent.clone()),
            detail: Set(self.detail.as_ref().map(serde_json::Value::to_string)),
        }
    }
}

/// Writes an event as part of the caller's transaction (events of database
/// changes): if it cannot be written, the change is not made either.
pub async fn insert(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    event: &NewEvent,
) -> Result<(), DbErr> {
    write(db, Uuid::now_v7(), at, event).await
}

/// Writes an event under an id taken when it happened: UUID v7, so that
/// id order is the order events happened in, also for those written late.
async fn write(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
    event: &NewEvent,
) -> Result<(), DbErr> {
    audit_event::Entity::insert(event.row(id, at))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Clears the personal data of a user's events, then writes `deleted`
/// without any: the events keep `user_id`, `type`, `at` and `actor`.
pub async fn forget_user(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    user_id: Uuid,
    deleted: NewEvent,
) -> Result<(), DbErr> {
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::Ip,
            sea_orm::sea_query::Expr::value(None::<String>),
        )
        .col_expr(
            audit_event::Column::UserAgent,
            sea_orm::sea_query::Expr::value(None::<String>),
        )
        .col_expr(
            audit_event::Column::Detail,
            sea_orm::sea_query::Expr::value(None::<String>),
        )
        .filter(audit_event::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    insert(db, at, &deleted.anonymous()).await
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// An open set: stored by this or a later version.
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl From<audit_event::Model> for Event {
    fn from(row: audit_event::Model) -> Self {
        Event {
            id: row.id,
            at: row.at,
            kind: row.r#type,
            user_id: row.user_id,
            session_id: row.session_id,
            actor_kind: row.actor_kind,
            actor_name: row.actor_name,
            ip: row.ip,
            user_agent: row.user_agent,
            // Written by us as JSON; unreadable text is shown as absent
            // rather than failing the whole page.
            detail: row.detail.and_then(|text| serde_json::from_str(&text).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_distinct_dotted_name() {
        let names: std::collections::HashSet<_> =
            EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), EventType::ALL.len());
        assert!(names.iter().all(|name| name.starts_with("user.")
            || name.starts_with("session.")
            || name.starts_with("admin.")));
    }

    #[test]
    fn a_deleted_users_events_lose_address_agent_and_detail_but_not_the_actor() {
        let by = Acting {
            actor: Actor::AdminToken("backoffice".into()),
            ip: Some("10.0.0.1".parse().unwrap()),
            user_agent: Some("curl".into()),
        };
        let event = EventType::Deleted
            .by(&by)
            .detail(serde_json::json!({"x": 1}))
            .anonymous();
        assert_eq!(event.by.actor, Actor::AdminToken("backoffice".into()));
        assert_eq!(
            (event.by.ip, event.by.user_agent, event.detail),
            (None, None, None)
        );
    }
}
