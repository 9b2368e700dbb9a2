//! One function per operation, called alike by the HTTP handlers and the
//! admin CLI: they parse their input, call the flow, and present its result.
//! Each flow returns its own error; `crate::error` maps them to problems and
//! the CLI prints them.

mod account;
mod auth;
mod events;
mod mfa;
mod tokens;
mod users;

pub use crate::domain::MAX_PAGE;
pub use account::{
    AccountError, Caller, IssuedReset, PasswordChange, PasswordReset, change_password,
    delete_account, issue_password_reset, reset_password,
};
pub use auth::{
    MfaChallenge, Origin, RefreshError, Refreshed, RevokeError, SignedIn, SigninError,
    SigninRequest, SignupError, refresh, revoke_session, sign_in, sign_out, sign_out_everywhere,
    sign_up,
};
pub use events::list_events;
pub use mfa::{
    CodeUsed, Enrollment, confirm_totp, disable_totp, regenerate_recovery_codes, reseal_secrets,
    reset_mfa, sign_in_with_code, start_totp_enrollment,
};
pub use tokens::{Introspection, IntrospectionError, TokenKeys, introspect, revoke_token};
pub use users::{
    UserOpError, UserPage, delete_user, disable_user, enable_user, find_user, list_sessions,
    list_users,
};

use uuid::Uuid;

use crate::{
    admin_tokens::AdminTokenStore,
    audit::AuditLog,
    auth::signing_keys::ManagedKeys,
    clock::Clock,
    database,
    keyspace::{Keyspace, RedisError},
    mfa::{ChallengeStore, MfaPolicy, MfaStore},
    rate_limit::RateLimiter,
    sessions::{RefreshLimit, SessionError, SessionStore},
    settings::Settings,
    user_cache::UserCache,
    users::UserStore,
};

/// The stores every flow works on, connected the same way for the server
/// and the CLI.
pub struct Stores {
    pub users: UserStore,
    pub admin_tokens: AdminTokenStore,
    pub audit: AuditLog,
    pub sessions: SessionStore,
    pub rate_limits: RateLimiter,
    pub mfa: MfaStore,
    pub challenges: ChallengeStore,
    pub mfa_policy: MfaPolicy,
    /// Managed signing keys (used when `jwt.keys = "managed"`).
    pub signing_keys: ManagedKeys,
    /// Announces user changes to every instance's cache of users (and,
    /// in a server, is that cache).
    pub user_cache: UserCache,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database")]
    Database(#[from] sea_orm::DbErr),
    #[error("redis")]
    Redis(#[from] RedisError),
}

impl Stores {
    /// Connects to (and migrates) the database and connects to Redis lazily.
    pub async fn connect(settings: &Settings, clock: Clock) -> Result<Stores, ConnectError> {
        let db = database::connect_and_migrate(&settings.database).await?;
        let keyspace = Keyspace::new(&settings.redis)?;
        let user_cache = UserCache::announcing(keyspace.clone());
        Ok(Stores {
            users: UserStore::new(db.clone(), clock),
            admin_tokens: AdminTokenStore::new(db.clone(), clock),
            audit: AuditLog::new(db.clone(), clock, settings.audit.queue_capacity),
            mfa: MfaStore::new(db.clone(), clock),
            sessions: SessionStore::new(
                keyspace.clone(),
                &settings.session,
                settings.rate_limit.enabled.then_some(RefreshLimit {
                    per_window: settings.rate_limit.refreshes_per_session.get(),
                    window: settings.rate_limit.refresh_window,
                }),
            ),
            challenges: ChallengeStore::new(
                keyspace.clone(),
                settings.mfa.challenge_ttl,
                settings.mfa.challenge_max_attempts.get(),
            ),
            rate_limits: RateLimiter::new(
                keyspace,
                &settings.rate_limit,
                &settings.session.refresh_token_key,
            ),
            mfa_policy: MfaPolicy::new(settings),
            signing_keys: ManagedKeys::new(db.clone(), &settings.jwt, clock),
            user_cache,
            clock,
        })
    }
}

/// A change after which none of the user's sessions may live but `keep`
/// ("Sessions never outlive the account's state"): the session epoch moves
/// first, so with Redis down nothing changes; then the database; then the
/// epoch moves again, for sign-ins that read the epoch after the first move
/// but the account before the change. If the database fails, the sessions
/// stay ended and the operation can be retried. Returns the change's result
/// and how many sessions ended.
async fn changing_the_account<T, E: From<SessionError>>(
    stores: &Stores,
    user_id: Uuid,
    keep: Option<Uuid>,
    change: impl AsyncFnOnce() -> Result<T, E>,
) -> Result<(T, u64), E> {
    let ended = stores.sessions.supersede(user_id, keep).await?;
    stores.user_cache.announce(user_id).await?;
    let changed = change().await?;
    stores.sessions.supersede(user_id, keep).await?;
    stores.user_cache.announce(user_id).await?;
    Ok((changed, ended))
}

/// A change `/v1/me` shows that ends no session (the second factor's
/// state): every instance drops the user from its cache. The change is
/// made; failing to announce it is logged (with Redis unreachable, every
/// instance has dropped its cache anyway).
async fn announce_change(stores: &Stores, user_id: Uuid) {
    if let Err(err) = stores.user_cache.announce(user_id).await {
        tracing::warn!(%user_id, error = %crate::error::Causes(&err), "could not announce a user change to the caches");
    }
}
