//! The account's lifecycle after sign-up: its owner changes the password or
//! deletes the account (proving the password again), and an operator issues
//! a one-time reset token that sets a new one. Each ends the sessions the
//! contract says it ends, through [`changing_the_account`].

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    Stores,
    auth::{counted_as_sign_in, note_wrong_password},
    changing_the_account,
    mfa::require_code_if_on,
    users::vanished_is_gone,
};
use crate::{
    audit::{Acting, EventType},
    auth::hashing::{HashingError, HashingPool, Verification},
    domain::{PasswordAttempt, PasswordPolicy, Rule, Violation, Violations},
    metrics::SigninOutcome,
    rate_limit::RateLimitError,
    secrets::{RESET_TOKEN, Revealed},
    sessions::{ClientInfo, SessionError},
    users::{StoredCredentials, User, UserRef, UserStoreError},
};

use super::{UserOpError, find_user};

/// The request field a new password is reported under.
const NEW_PASSWORD_FIELD: &str = "new_password";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The caller's account is gone or disabled, or a reset token is
    /// unknown, spent, expired or voided (the answer never says which).
    #[error("invalid token")]
    InvalidToken,
    /// The current password (or, for delete, the password) is wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A wrong (or missing, or replayed) second-factor code.
    #[error("wrong second-factor code")]
    WrongCode,
    /// Too many wrong codes in a row: only an operator (or a password
    /// reset) unlocks the factor.
    #[error("the second factor is locked")]
    MfaLocked,
    /// The user's TOTP secret opens under no configured key.
    #[error("the TOTP secret cannot be opened")]
    SecretUnreadable,
    /// The factor is not in the state the operation needs.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("the new password breaks a rule")]
    Invalid(#[from] Violations),
    #[error("password hashing")]
    Hashing(#[from] HashingError),
    #[error("attempt limit")]
    RateLimit(#[from] RateLimitError),
    #[error("the user store")]
    Users(#[from] UserStoreError),
    #[error("the session store")]
    Sessions(#[from] SessionError),
}

impl SigninOutcome {
    /// How the second step of a sign-in ended, for the metrics (a right
    /// code is the sign-in's success).
    pub fn of_second_step<T>(result: &Result<T, AccountError>) -> Self {
        match result {
            Ok(_) => SigninOutcome::Success,
            Err(AccountError::WrongCode | AccountError::InvalidToken) => SigninOutcome::Invalid,
            Err(AccountError::MfaLocked)
            | Err(AccountError::RateLimit(RateLimitError::Limited { .. })) => {
                SigninOutcome::Limited
            }
            Err(AccountError::SecretUnreadable)
            | Err(AccountError::Users(UserStoreError::Unavailable(_))) => {
                SigninOutcome::Unavailable
            }
            Err(AccountError::RateLimit(RateLimitError::Redis(err)))
            | Err(AccountError::Sessions(err))
                if err.is_outage() =>
            {
                SigninOutcome::Unavailable
            }
            Err(_) => SigninOutcome::Error,
        }
    }
}

/// A signed-in caller whose session the handler found live.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub client: ClientInfo,
}

impl Caller {
    /// The user, acting on their own account, as events record it.
    pub fn acting(&self) -> Acting {
        Acting::user(&self.client)
    }
}

pub struct PasswordChange {
    pub current: PasswordAttempt,
    /// Not parsed yet: its rules need the username.
    pub new: String,
    /// The second-factor code, required when the factor is on.
    pub code: Option<String>,
}

/// Changes the caller's password. Checks in the contract's order: the new
/// password's rules (no hashing yet), the current password (counted as a
/// failed sign-in when wrong), the code when the second factor is on, then
/// that the passwords differ. Every other session
/// ends; the caller's stays, re-stamped with the new epoch.
pub async fn change_password(
    stores: &Stores,
    hashing: &HashingPool,
    policy: &PasswordPolicy,
    caller: &Caller,
    change: PasswordChange,
) -> Result<(), AccountError> {
    let credentials = caller_credentials(stores, caller).await?;
    let new = policy
        .parse(change.new, Some(&credentials.user.username))
        .map_err(|broken| broken.for_field(NEW_PASSWORD_FIELD))?;
    // Compared now, told only once the current password proved right.
    let unchanged: bool = new.as_bytes().ct_eq(change.current.as_bytes()).into();
    let user = confirm_password(stores, hashing, caller, credentials, change.current).await?;
    require_code_if_on(stores, caller, change.code.as_deref()).await?;
    if unchanged {
        return Err(Violations(vec![Violation::new(NEW_PASSWORD_FIELD, Rule::Unchanged)]).into());
    }
    let hash = hashing.reserve()?.hash(new).await?;
    changing_the_account(stores, user.id, Some(caller.session_id), async || {
        stores
            .users
            .change_password(
                user.id,
                hash,
                EventType::PasswordChanged.by(&caller.acting()),
            )
            .await
            .map_err(caller_vanished)
    })
    .await?;
    Ok(())
}

/// Deletes the caller's account once the password (and code, when the
/// second factor is on) prove right: the user, every session, the factor,
/// its recovery codes and any reset token go, and the username is free again.
pub async fn delete_account(
    stores: &Stores,
    hashing: &HashingPool,
    caller: &Caller,
    password: PasswordAttempt,
    code: Option<&str>,
) -> Result<(), AccountError> {
    let credentials = caller_credentials(stores, caller).await?;
    let user = confirm_password(stores, hashing, caller, credentials, password).await?;
    require_code_if_on(stores, caller, code).await?;
    changing_the_account(stores, user.id, None, async || {
        let event = EventType::Deleted.by(&caller.acting());
        if stores.users.delete(user.id, event).await? {
            Ok(())
        } else {
            Err(AccountError::InvalidToken)
        }
    })
    .await?;
    Ok(())
}

/// A reset token as handed to the operator: shown once.
pub struct IssuedReset {
    pub user: User,
    pub token: Revealed,
    pub expires_at: DateTime<Utc>,
}

/// Issues a reset token for any user, disabled ones included; it replaces
/// (voids) the user's earlier one.
pub async fn issue_password_reset(
    stores: &Stores,
    reference: &UserRef,
    ttl: std::time::Duration,
    by: &Acting,
) -> Result<IssuedReset, UserOpError> {
    let user = find_user(stores, reference).await?;
    let issued = RESET_TOKEN.generate();
    let event = EventType::PasswordResetIssued.by(by);
    let expires_at = stores
        .users
        .issue_reset_token(user.id, &issued.digest, ttl, event)
        .await
        .map_err(vanished_is_gone)?;
    Ok(IssuedReset {
        user,
        token: issued.text,
        expires_at,
    })
}

pub struct PasswordReset {
    /// As presented: anything that is not an outstanding reset token is
    /// answered the same.
    pub token: String,
    pub new: String,
    pub client: ClientInfo,
}

/// Spends a reset token: the password is set and every session of the user
/// ends; the account's disabled state and second factor stay as they are.
/// Every attempt counts against the client's budget, before any lookup.
pub async fn reset_password(
    stores: &Stores,
    hashing: &HashingPool,
    policy: &PasswordPolicy,
    reset: PasswordReset,
) -> Result<(), AccountError> {
    // Reserved before any I/O, as sign-up does: under overload the refusal
    // costs no Redis or database call.
    let slot = hashing.reserve()?;
    stores
        .rate_limits
        .hit_password_reset(reset.client.ip)
        .await?;
    let digest = RESET_TOKEN
        .parse(&reset.token)
        .ok_or(AccountError::InvalidToken)?;
    let pending = stores
        .users
        .find_reset(&digest)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    // A rule breach leaves the token outstanding, to be tried again.
    let new = policy
        .parse(reset.new, Some(&pending.user.username))
        .map_err(|broken| broken.for_field(NEW_PASSWORD_FIELD))?;
    let hash = slot.hash(new).await?;
    changing_the_account(stores, pending.user.id, None, async move || {
        let event = EventType::PasswordReset.by(&Acting::user(&reset.client));
        match stores.users.redeem_reset(&pending, hash, event).await {
            Ok(true) => Ok(()),
            // Spent by a concurrent redemption, or voided meanwhile.
            Ok(false) | Err(UserStoreError::NotFound) => Err(AccountError::InvalidToken),
            Err(err) => Err(err.into()),
        }
    })
    .await?;
    Ok(())
}

/// The caller's account as stored; gone or disabled, the token proves nothing.
pub(super) async fn caller_credentials(
    stores: &Stores,
    caller: &Caller,
) -> Result<StoredCredentials, AccountError> {
    stores
        .users
        .find_active_credentials(caller.user_id)
        .await?
        .ok_or(AccountError::InvalidToken)
}

/// The owner proves it is them again: the password is checked through the
/// same bounded hashing pool and against the same failure budgets as a
/// sign-in, so a stolen access token is no password-guessing oracle.
pub(super) async fn confirm_password(
    stores: &Stores,
    hashing: &HashingPool,
    caller: &Caller,
    credentials: StoredCredentials,
    attempt: PasswordAttempt,
) -> Result<User, AccountError> {
    let StoredCredentials {
        user,
        password_hash,
    } = credentials;
    let username = user.username.clone();
    counted_as_sign_in(
        stores,
        username.as_str(),
        &caller.client,
        async || match hashing
            .reserve()?
            .verify(attempt, Some(password_hash))
            .await?
        {
            // An upgraded hash is not stored: the password is about to be
            // replaced, or the account deleted.
            Verification::Match { .. } => Ok(user),
            Verification::Mismatch => {
                note_wrong_password(stores, user.id, &caller.acting());
                Err(AccountError::InvalidCredentials)
            }
        },
        |err| matches!(err, AccountError::InvalidCredentials),
    )
    .await
}

fn caller_vanished(err: UserStoreError) -> AccountError {
    match err {
        UserStoreError::NotFound => AccountError::InvalidToken,
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keyspace::RedisError;

    #[test]
    fn second_step_outcomes_are_told_apart() {
        let outcome = |err: AccountError| SigninOutcome::of_second_step::<()>(&Err(err));
        assert_eq!(
            SigninOutcome::of_second_step(&Ok(())),
            SigninOutcome::Success
        );
        assert_eq!(outcome(AccountError::WrongCode), SigninOutcome::Invalid);
        assert_eq!(outcome(AccountError::InvalidToken), SigninOutcome::Invalid);
        assert_eq!(outcome(AccountError::MfaLocked), SigninOutcome::Limited);
        assert_eq!(
            outcome(AccountError::Sessions(RedisError::TimedOut(
                Duration::from_secs(1)
            ))),
            SigninOutcome::Unavailable
        );
        assert_eq!(
            outcome(AccountError::SecretUnreadable),
            SigninOutcome::Unavailable
        );
        assert_eq!(
            outcome(AccountError::Sessions(RedisError::Unexpected("x".into()))),
            SigninOutcome::Error
        );
    }
}
