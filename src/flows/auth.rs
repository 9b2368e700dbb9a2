//! Sign-up, sign-in, refresh and sign-out.

use std::time::Duration;

use uuid::Uuid;

use super::Stores;
use crate::{
    audit::{Acting, Actor, EventType},
    auth::hashing::{HashingError, HashingPool, Verification},
    domain::{NewPassword, PasswordAttempt, Username},
    error::Causes,
    metrics::{RefreshOutcome, SigninOutcome},
    mfa::SignInMethod,
    rate_limit::RateLimitError,
    secrets::{MFA_TOKEN, Revealed},
    sessions::{ClientInfo, NewSession, RefreshToken, Rotation, SessionAuth, SessionError},
    users::{User, UserRef, UserStoreError},
};

/// Who asks for a new account: a client (signing up, limited per IP), or
/// an operator (creating it).
#[derive(Debug, Clone)]
pub enum Origin {
    Client(ClientInfo),
    Operator(Acting),
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("password hashing")]
    Hashing(#[from] HashingError),
    #[error("sign-up limit")]
    RateLimit(#[from] RateLimitError),
    #[error("storing the user")]
    Users(#[from] UserStoreError),
}

/// Creates an account from a parsed username and password.
pub async fn sign_up(
    stores: &Stores,
    hashing: &HashingPool,
    origin: Origin,
    username: Username,
    password: NewPassword,
) -> Result<User, SignupError> {
    // Reserved before any I/O: under overload the refusal costs no Redis
    // or database call.
    let slot = hashing.reserve()?;
    let event = match &origin {
        Origin::Client(client) => {
            stores.rate_limits.hit_signup(client.ip).await?;
            EventType::SignedUp.by(&Acting::user(client))
        }
        Origin::Operator(by) => EventType::Created.by(by),
    };
    let hash = slot.hash(password).await?;
    Ok(stores.users.create(username, hash, event).await?)
}

/// A sign-in as presented: the username is not parsed, since an invalid one
/// must cost the same as an unknown one.
pub struct SigninRequest {
    pub username: String,
    pub password: PasswordAttempt,
    pub client: ClientInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    /// Unknown user, wrong password or disabled account.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The right password, but the account changed (disabled, deleted)
    /// while it was being checked: answered as invalid credentials.
    #[error("the account changed during sign-in")]
    Superseded,
    #[error("password hashing")]
    Hashing(#[from] HashingError),
    #[error("sign-in limit")]
    RateLimit(#[from] RateLimitError),
    #[error("reading the user")]
    Users(#[from] UserStoreError),
    #[error("creating the session")]
    Sessions(#[from] SessionError),
}

/// What a right password gives: a session, or, when the user's second
/// factor is on, a challenge for the code.
pub enum SignedIn {
    Session(NewSession),
    Challenge(MfaChallenge),
}

/// The first step of a two-step sign-in.
pub struct MfaChallenge {
    /// `tsm_…`, shown once.
    pub token: Revealed,
    pub expires_in: Duration,
    /// Whether an unused recovery code is left (`recovery_code` is offered).
    pub recovery_codes_left: bool,
}

/// Checks the password (the same work for unknown users) and opens a
/// session, or a challenge when the second factor is on.
pub async fn sign_in(
    stores: &Stores,
    hashing: &HashingPool,
    request: SigninRequest,
) -> Result<SignedIn, SigninError> {
    let (username, client) = (request.username.clone(), request.client.clone());
    counted_as_sign_in(
        stores,
        &username,
        &client,
        async || check_password_and_open(stores, hashing, request).await,
        |err| matches!(err, SigninError::InvalidCredentials),
    )
    .await
}

/// Runs a password check counted as a failed sign-in of `username` from
/// `client` (the same budgets for every operation that checks a password),
/// kept only if the check ends in an error `wrong_password` recognises.
pub(super) async fn counted_as_sign_in<T, E: From<RateLimitError>>(
    stores: &Stores,
    username: &str,
    client: &ClientInfo,
    check: impl AsyncFnOnce() -> Result<T, E>,
    wrong_password: impl Fn(&E) -> bool,
) -> Result<T, E> {
    // Counted as a failure before any password is hashed, so concurrent
    // guesses cannot all slip under the limit, and before a hashing slot
    // is taken, so one client cannot hold them all.
    let attempt = match stores.rate_limits.reserve_signin(username, client.ip).await {
        Ok(attempt) => attempt,
        Err(err) => {
            if let RateLimitError::Limited { retry_after } = err {
                note_limited(stores, username, client, retry_after);
            }
            return Err(err.into());
        }
    };
    let result = check().await;
    if !result.as_ref().is_err_and(&wrong_password) {
        // The password was right, or never checked: no failure to count.
        if let Err(err) = stores.rate_limits.refund(attempt).await {
            tracing::warn!(error = %Causes(&err), "could not refund a sign-in attempt");
        }
    }
    result
}

/// Records `user.signin_limited` for a known user, once per limit window,
/// off the response path: whether the name is known must not show in the
/// answer's time.
fn note_limited(stores: &Stores, username: &str, client: &ClientInfo, retry_after: Duration) {
    let Ok(username) = Username::parse(username) else {
        return;
    };
    let (users, rate_limits, audit) = (
        stores.users.clone(),
        stores.rate_limits.clone(),
        stores.audit.clone(),
    );
    let by = Acting::user(client);
    tokio::spawn(async move {
        let noted = async {
            let Some(user) = users.find(&UserRef::Name(username)).await? else {
                return Ok(());
            };
            if rate_limits.first_limit_notice(user.id, retry_after).await? {
                let event = EventType::SigninLimited
                    .by(&by)
                    .user(user.id)
                    .detail(serde_json::json!({ "retry_after_secs": retry_after.as_secs() }));
                audit.record_later(event);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        if let Err(err) = noted.await {
            tracing::warn!(error = %err, "could not record a sign-in limit");
        }
    });
}

/// Records a wrong password of a known user, off the response path.
pub(super) fn note_wrong_password(stores: &Stores, user_id: Uuid, by: &Acting) {
    stores
        .audit
        .record_later(EventType::SigninFailed.by(by).user(user_id));
}

async fn check_password_and_open(
    stores: &Stores,
    hashing: &HashingPool,
    request: SigninRequest,
) -> Result<SignedIn, SigninError> {
    let SigninRequest {
        username,
        password,
        client,
    } = request;
    let by = Acting::user(&client);
    let slot = hashing.reserve()?;
    // An unparseable name cannot exist, but it still costs one hash.
    let credentials = match Username::parse(&username) {
        Ok(username) => stores.users.find_credentials(&username).await?,
        Err(_) => None,
    };
    let (user, stored_hash) = match credentials {
        Some(found) => (Some(found.user), Some(found.password_hash)),
        None => (None, None),
    };
    // Read before the password check: a session is opened only if nothing
    // moved it meanwhile. Unknown users read one too, to cost the same.
    let epoch = stores
        .sessions
        .epoch(user.as_ref().map_or(Uuid::nil(), |user| user.id))
        .await?;
    let verification = slot.verify(password, stored_hash).await?;
    let (user, upgraded_hash) = match (user, verification) {
        (Some(user), Verification::Match { upgraded_hash }) => (user, upgraded_hash),
        (known, _) => {
            if let Some(user) = known {
                note_wrong_password(stores, user.id, &by);
            }
            return Err(SigninError::InvalidCredentials);
        }
    };
    // Read again after the epoch: an account disabled or deleted between the
    // first read and the epoch read would otherwise pass with the new epoch.
    if stores.users.find_active(user.id).await?.is_none() {
        return Err(SigninError::Superseded);
    }
    if let Some(hash) = upgraded_hash {
        // The old hash still verifies; failing to upgrade it is not the caller's problem.
        if let Err(err) = stores.users.update_password_hash(user.id, hash).await {
            tracing::warn!(error = %err, "could not store an upgraded password hash");
        }
    }
    if let Some(factor) = stores.mfa.find(user.id).await?.filter(|f| f.enabled) {
        // The challenge carries the epoch read before the password check:
        // the session it leads to is created only if that is still current.
        let issued = MFA_TOKEN.generate();
        stores
            .challenges
            .create(&issued.digest, user.id, epoch, factor.id)
            .await?;
        return Ok(SignedIn::Challenge(MfaChallenge {
            token: issued.text,
            expires_in: stores.challenges.ttl(),
            recovery_codes_left: factor.recovery_codes_left > 0,
        }));
    }
    let auth = SessionAuth {
        method: SignInMethod::Password,
        auth_time: stores.clock.now().timestamp(),
    };
    let session = stores
        .sessions
        .create(user.id, epoch, client, auth)
        .await?
        .ok_or(SigninError::Superseded)?;
    record_signin(stores, &session, &by).await;
    Ok(SignedIn::Session(session))
}

/// Records a completed sign-in: its event before the answer (or queued,
/// like a session event), then the user's `last_signin_at` off the
/// response path (that write may queue behind another write of the row,
/// and failing to is logged, not the caller's problem). One after the
/// other, so a sign-in's two writes never wait for each other (SQLite has
/// one writer, and a busy writer backs off for milliseconds).
pub(super) async fn record_signin(stores: &Stores, session: &NewSession, by: &Acting) {
    let (user_id, session_id) = (session.token.user_id, session.token.session_id);
    let event = EventType::SignedIn
        .by(by)
        .user(user_id)
        .session(session_id)
        .detail(serde_json::json!({ "amr": session.auth.method.amr() }));
    stores.audit.record(event).await;
    let users = stores.users.clone();
    tokio::spawn(async move {
        if let Err(err) = users.record_signin(user_id).await {
            tracing::warn!(error = %Causes(&err), "could not record a sign-in time");
        }
    });
}

impl SigninOutcome {
    /// How a sign-in ended, for the metrics: the one place outcomes are told apart.
    pub fn of(result: &Result<SignedIn, SigninError>) -> Self {
        match result {
            Ok(SignedIn::Session(_)) => SigninOutcome::Success,
            Ok(SignedIn::Challenge(_)) => SigninOutcome::MfaRequired,
            Err(SigninError::InvalidCredentials | SigninError::Superseded) => {
                SigninOutcome::Invalid
            }
            Err(SigninError::RateLimit(RateLimitError::Limited { .. })) => SigninOutcome::Limited,
            Err(SigninError::Hashing(HashingError::Overloaded)) => SigninOutcome::Unavailable,
            Err(SigninError::RateLimit(RateLimitError::Redis(err)))
            | Err(SigninError::Sessions(err))
                if err.is_outage() =>
            {
                SigninOutcome::Unavailable
            }
            Err(SigninError::Users(UserStoreError::Unavailable(_))) => SigninOutcome::Unavailable,
            Err(_) => SigninOutcome::Error,
        }
    }
}

/// A rotated session: the token to hand out and whether it is the one an
/// earlier refresh within the grace window already handed out.
pub struct Refreshed {
    pub session: NewSession,
    pub converged: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Missing, forged, unknown, expired or revoked.
    #[error("invalid refresh token")]
    Invalid,
    /// An old token came back; its session is now revoked.
    #[error("refresh token reuse")]
    ReuseDetected { session_id: Uuid },
    #[error("refresh limit")]
    RateLimit(#[from] RateLimitError),
    #[error("rotating the session")]
    Sessions(#[from] SessionError),
}

/// Rotates the presented refresh token (already authenticated by its MAC),
/// presented by `client`.
pub async fn refresh(
    stores: &Stores,
    presented: Option<RefreshToken>,
    client: &ClientInfo,
) -> Result<Refreshed, RefreshError> {
    let presented = presented.ok_or(RefreshError::Invalid)?;
    // One round trip: the session's refresh limit is checked in the same script.
    match stores.sessions.rotate(presented).await? {
        Rotation::Rotated {
            token,
            idle_expires_in,
            auth,
            converged,
        } => Ok(Refreshed {
            session: NewSession {
                token,
                idle_expires_in,
                auth,
            },
            converged,
        }),
        Rotation::ReuseDetected => {
            tracing::warn!(session_id = %presented.session_id, "refresh token reuse: session revoked");
            let event = EventType::ReuseDetected
                .by(&Acting::new(Actor::System, client))
                .user(presented.user_id)
                .session(presented.session_id);
            stores.audit.record(event).await;
            Err(RefreshError::ReuseDetected {
                session_id: presented.session_id,
            })
        }
        Rotation::Invalid => Err(RefreshError::Invalid),
        Rotation::Limited { retry_after } => {
            tracing::info!(rule = "refresh", "rate limited");
            Err(RateLimitError::Limited { retry_after }.into())
        }
    }
}

impl RefreshOutcome {
    /// How a refresh ended, for the metrics.
    pub fn of(result: &Result<Refreshed, RefreshError>) -> Self {
        match result {
            Ok(Refreshed {
                converged: true, ..
            }) => RefreshOutcome::Converged,
            Ok(_) => RefreshOutcome::Rotated,
            Err(RefreshError::Invalid) => RefreshOutcome::Invalid,
            Err(RefreshError::ReuseDetected { .. }) => RefreshOutcome::ReuseDetected,
            Err(RefreshError::RateLimit(RateLimitError::Limited { .. })) => RefreshOutcome::Limited,
            Err(RefreshError::RateLimit(RateLimitError::Redis(err)))
            | Err(RefreshError::Sessions(err))
                if err.is_outage() =>
            {
                RefreshOutcome::Unavailable
            }
            Err(_) => RefreshOutcome::Error,
        }
    }
}

/// Revokes the presented token's session; nothing to do without one.
pub async fn sign_out(
    stores: &Stores,
    presented: Option<RefreshToken>,
    by: &Acting,
) -> Result<(), SessionError> {
    if let Some(token) = presented
        && stores
            .sessions
            .revoke(token.user_id, token.session_id)
            .await?
    {
        let event = EventType::SignedOut
            .by(by)
            .user(token.user_id)
            .session(token.session_id);
        stores.audit.record(event).await;
    }
    Ok(())
}

/// Revokes every session of a user; how many were live.
pub async fn sign_out_everywhere(
    stores: &Stores,
    user_id: Uuid,
    by: &Acting,
) -> Result<u64, SessionError> {
    let ended = stores.sessions.revoke_all(user_id).await?;
    let event = EventType::AllSessionsRevoked
        .by(by)
        .user(user_id)
        .detail(serde_json::json!({ "sessions": ended }));
    stores.audit.record(event).await;
    Ok(ended)
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// Not a live session of this user (another user's is just as absent).
    #[error("no such live session")]
    NotFound,
    #[error("revoking the session")]
    Sessions(#[from] SessionError),
}

/// Revokes one live session of a user.
pub async fn revoke_session(
    stores: &Stores,
    user_id: Uuid,
    session_id: Uuid,
    by: &Acting,
) -> Result<(), RevokeError> {
    if stores.sessions.revoke(user_id, session_id).await? {
        record_revoked(stores, user_id, session_id, by).await;
        Ok(())
    } else {
        Err(RevokeError::NotFound)
    }
}

/// `session.revoked`: one session ended on request.
pub(super) async fn record_revoked(stores: &Stores, user_id: Uuid, session_id: Uuid, by: &Acting) {
    let event = EventType::SessionRevoked
        .by(by)
        .user(user_id)
        .session(session_id);
    stores.audit.record(event).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::RedisError;

    #[test]
    fn outages_and_bugs_are_told_apart_in_the_sign_in_outcome() {
        let outcome = |err: SigninError| SigninOutcome::of(&Err(err));
        assert_eq!(
            outcome(SigninError::InvalidCredentials),
            SigninOutcome::Invalid
        );
        assert_eq!(
            outcome(SigninError::RateLimit(RateLimitError::Limited {
                retry_after: Duration::from_secs(1)
            })),
            SigninOutcome::Limited
        );
        assert_eq!(
            outcome(SigninError::Hashing(HashingError::Overloaded)),
            SigninOutcome::Unavailable
        );
        assert_eq!(
            outcome(SigninError::Sessions(RedisError::TimedOut(
                Duration::from_secs(1)
            ))),
            SigninOutcome::Unavailable
        );
        assert_eq!(
            outcome(SigninError::Sessions(RedisError::Unexpected("x".into()))),
            SigninOutcome::Error
        );
        assert_eq!(
            outcome(SigninError::Hashing(HashingError::Failed("x".into()))),
            SigninOutcome::Error
        );
    }

    #[test]
    fn outages_and_bugs_are_told_apart_in_the_refresh_outcome() {
        let outcome = |err: RefreshError| RefreshOutcome::of(&Err(err));
        assert_eq!(outcome(RefreshError::Invalid), RefreshOutcome::Invalid);
        assert_eq!(
            outcome(RefreshError::ReuseDetected {
                session_id: Uuid::nil()
            }),
            RefreshOutcome::ReuseDetected
        );
        assert_eq!(
            outcome(RefreshError::Sessions(RedisError::TimedOut(
                Duration::from_secs(1)
            ))),
            RefreshOutcome::Unavailable
        );
        assert_eq!(
            outcome(RefreshError::Sessions(RedisError::Unexpected("x".into()))),
            RefreshOutcome::Error
        );
    }
}
