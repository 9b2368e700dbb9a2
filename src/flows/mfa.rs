//! The second factor's flows: enrolment, confirmation, disabling, new
//! recovery codes, the second step of a sign-in, and the operator's reset
//! and re-sealing. Every code check goes through [`check_code`], so the
//! per-user counter, replay protection and the lock hold on every endpoint.

use uuid::Uuid;

use super::{
    Stores, UserOpError,
    account::{AccountError, Caller, caller_credentials, confirm_password},
    announce_change,
    auth::record_signin,
    changing_the_account,
    users::find_user,
};
use crate::{
    audit::{Acting, EventType},
    auth::hashing::HashingPool,
    domain::{PasswordAttempt, Rule, Violation, Violations},
    error::Causes,
    mfa::{Factor, PresentedCode, RecoveryCode, SignInMethod, TotpSecret},
    secrets::MFA_TOKEN,
    sessions::{ClientInfo, NewSession, SessionAuth},
    users::{User, UserRef},
};

/// How long an enrolment may wait for its first code.
const PENDING_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Which kind of code proved right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeUsed {
    Totp,
    RecoveryCode,
}

/// A new secret for the caller's authenticator, shown once.
pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// Starts (or restarts) TOTP enrolment once the password proves right.
pub async fn start_totp_enrollment(
    stores: &Stores,
    hashing: &HashingPool,
    caller: &Caller,
    password: PasswordAttempt,
) -> Result<Enrollment, AccountError> {
    let credentials = caller_credentials(stores, caller).await?;
    let user = confirm_password(stores, hashing, caller, credentials, password).await?;
    const ON: &str = "TOTP is already on; disable it first.";
    if enabled_factor(stores, user.id).await?.is_some() {
        return Err(AccountError::Conflict(ON));
    }
    let secret = TotpSecret::generate();
    let sealed = stores
        .mfa_policy
        .keys
        .seal(user.id.as_bytes(), secret.as_bytes());
    if !stores.mfa.start_pending(user.id, sealed).await? {
        return Err(AccountError::Conflict(ON));
    }
    Ok(Enrollment {
        secret: secret.base32(),
        otpauth_uri: secret.otpauth_uri(&stores.mfa_policy.issuer, user.username.as_str()),
    })
}

/// Turns TOTP on with its first code; the recovery codes, shown once.
pub async fn confirm_totp(
    stores: &Stores,
    caller: &Caller,
    code: &str,
) -> Result<Vec<RecoveryCode>, AccountError> {
    const NOTHING_PENDING: &str = "No TOTP enrolment is pending (or TOTP is already on).";
    let now = stores.clock.now();
    let factor = stores
        .mfa
        .find(caller.user_id)
        .await?
        .filter(|factor| !factor.enabled && factor.created_at + PENDING_LIFETIME > now)
        .ok_or(AccountError::Conflict(NOTHING_PENDING))?;
    let by = caller.acting();
    match check_code(stores, &factor, code, &by).await {
        Err(AccountError::WrongCode) => {
            return Err(Violations(vec![Violation::new("code", Rule::InvalidCode)]).into());
        }
        other => other?,
    };
    let codes = RecoveryCode::generate_set();
    let key = stores.mfa_policy.current_code_key();
    if !stores
        .mfa
        .enable(
            caller.user_id,
            factor.id,
            &codes,
            key,
            EventType::MfaEnabled.by(&by),
        )
        .await?
    {
        return Err(AccountError::Conflict(NOTHING_PENDING));
    }
    announce_change(stores, caller.user_id).await;
    Ok(codes)
}

/// Turns TOTP off (password and code first): recovery codes go, and
/// outstanding sign-in challenges die with the factor they name.
pub async fn disable_totp(
    stores: &Stores,
    hashing: &HashingPool,
    caller: &Caller,
    password: PasswordAttempt,
    code: &str,
) -> Result<(), AccountError> {
    let factor = reauthenticate_with_factor(stores, hashing, caller, password, code).await?;
    let event = EventType::MfaDisabled.by(&caller.acting());
    stores.mfa.remove(factor.user_id, event).await?;
    announce_change(stores, factor.user_id).await;
    Ok(())
}

/// A new set of recovery codes (password and code first); the old ones stop working.
pub async fn regenerate_recovery_codes(
    stores: &Stores,
    hashing: &HashingPool,
    caller: &Caller,
    password: PasswordAttempt,
    code: &str,
) -> Result<Vec<RecoveryCode>, AccountError> {
    let factor = reauthenticate_with_factor(stores, hashing, caller, password, code).await?;
    let codes = RecoveryCode::generate_set();
    let key = stores.mfa_policy.current_code_key();
    let event = EventType::RecoveryCodesRegenerated.by(&caller.acting());
    stores
        .mfa
        .replace_recovery_codes(factor.user_id, &codes, key, event)
        .await?;
    announce_change(stores, factor.user_id).await;
    Ok(codes)
}

/// The second step of a sign-in: the challenge and a code give a session,
/// which records how it was signed in.
pub async fn sign_in_with_code(
    stores: &Stores,
    mfa_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<NewSession, AccountError> {
    let digest = MFA_TOKEN
        .parse(mfa_token)
        .ok_or(AccountError::InvalidToken)?;
    let challenge = stores
        .challenges
        .find(&digest)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    let user_id = challenge.user_id;
    let (epoch, factor, user) = tokio::try_join!(
        async { Ok::<_, AccountError>(stores.sessions.epoch(user_id).await?) },
        async { enabled_factor(stores, user_id).await },
        async { Ok(stores.users.find_active(user_id).await?) },
    )?;
    // The account changed since the password was checked, or the factor
    // the challenge was issued under is gone: the challenge is dead.
    let factor = match (factor, user) {
        (Some(factor), Some(_)) if epoch == challenge.epoch && factor.id == challenge.factor_id => {
            factor
        }
        _ => {
            stores.challenges.take(&digest).await?;
            return Err(AccountError::InvalidToken);
        }
    };
    let by = Acting::user(&client);
    let used = match check_code(stores, &factor, code, &by).await {
        Err(AccountError::WrongCode) => {
            stores.challenges.fail(&digest).await?;
            return Err(AccountError::WrongCode);
        }
        other => other?,
    };
    // Single use: of concurrent right codes on one challenge, one spends it.
    if !stores.challenges.take(&digest).await? {
        return Err(AccountError::InvalidToken);
    }
    let auth = SessionAuth {
        method: match used {
            CodeUsed::Totp => SignInMethod::PasswordAndTotp,
            CodeUsed::RecoveryCode => SignInMethod::PasswordAndRecoveryCode,
        },
        auth_time: stores.clock.now().timestamp(),
    };
    // Created only if the epoch the sign-in read is still current.
    let session = stores
        .sessions
        .create(user_id, challenge.epoch, client, auth)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    record_signin(stores, &session, &by).await;
    Ok(session)
}

/// For a changing operation of a user whose factor may be on: the code is
/// required (and checked) only when it is.
pub(super) async fn require_code_if_on(
    stores: &Stores,
    caller: &Caller,
    code: Option<&str>,
) -> Result<(), AccountError> {
    let Some(factor) = enabled_factor(stores, caller.user_id).await? else {
        return Ok(());
    };
    // No code is no guess: refused without counting.
    let code = code.ok_or(AccountError::WrongCode)?;
    check_code(stores, &factor, code, &caller.acting()).await?;
    Ok(())
}

/// An operator's reset for a lost device: the factor and its recovery codes
/// go and the session epoch moves, so the user's sessions and outstanding
/// sign-in challenges end. Whether there was a factor, and how many
/// sessions ended.
pub async fn reset_mfa(
    stores: &Stores,
    reference: &UserRef,
    by: &Acting,
) -> Result<(User, bool, u64), UserOpError> {
    let user = find_user(stores, reference).await?;
    let (removed, ended) = changing_the_account(stores, user.id, None, async || {
        let event = EventType::MfaReset.by(by);
        Ok::<_, UserOpError>(stores.mfa.remove(user.id, event).await?)
    })
    .await?;
    Ok((user, removed, ended))
}

/// Re-seals every secret under the current key; how many were re-sealed,
/// and how many no configured key opens (logged, left as they are).
pub async fn reseal_secrets(stores: &Stores) -> Result<(u64, u64), UserOpError> {
    let keys = &stores.mfa_policy.keys;
    let mut resealed = 0;
    let mut unreadable = 0;
    for factor in stores
        .mfa
        .sealed_under_other_keys(keys.current_key_id())
        .await?
    {
        match keys.open(factor.user_id.as_bytes(), &factor.sealed) {
            Ok(secret) => {
                let sealed = keys.seal(factor.user_id.as_bytes(), &secret);
                if stores.mfa.reseal(&factor, sealed).await? {
                    resealed += 1;
                }
            }
            Err(err) => {
                tracing::error!(user_id = %factor.user_id, error = %Causes(&err), "a TOTP secret that no configured key opens");
                unreadable += 1;
            }
        }
    }
    Ok((resealed, unreadable))
}

async fn enabled_factor(stores: &Stores, user_id: Uuid) -> Result<Option<Factor>, AccountError> {
    Ok(stores
        .mfa
        .find(user_id)
        .await?
        .filter(|factor| factor.enabled))
}

/// The password, then the code, for operations on an enabled factor.
async fn reauthenticate_with_factor(
    stores: &Stores,
    hashing: &HashingPool,
    caller: &Caller,
    password: PasswordAttempt,
    code: &str,
) -> Result<Factor, AccountError> {
    let credentials = caller_credentials(stores, caller).await?;
    let user = confirm_password(stores, hashing, caller, credentials, password).await?;
    let factor = enabled_factor(stores, user.id)
        .await?
        .ok_or(AccountError::Conflict("TOTP is not on."))?;
    check_code(stores, &factor, code, &caller.acting()).await?;
    Ok(factor)
}

/// Checks a code against a user's factor ("Second-factor attempts"): a
/// locked factor refuses at once; otherwise the check is counted as failed
/// against the user's one counter before it runs (so concurrent guesses
/// cannot outrun it) and refunded when right; a wrong code also counts
/// towards the lock. Wrong codes and the lock are recorded as events by `by`.
async fn check_code(
    stores: &Stores,
    factor: &Factor,
    presented: &str,
    by: &Acting,
) -> Result<CodeUsed, AccountError> {
    if factor.locked {
        return Err(AccountError::MfaLocked);
    }
    let attempt = stores.rate_limits.reserve_mfa(factor.user_id).await?;
    let result = verify_code(stores, factor, presented, by).await;
    if matches!(result, Err(AccountError::WrongCode)) {
        stores
            .audit
            .record_later(EventType::MfaFailed.by(by).user(factor.user_id));
        let max = stores.mfa_policy.max_consecutive_failures;
        let locked = EventType::MfaLocked.by(by);
        if stores
            .mfa
            .count_failure(factor.user_id, max, locked)
            .await?
        {
            tracing::warn!(user_id = %factor.user_id, "second factor locked after too many wrong codes");
            return Err(AccountError::MfaLocked);
        }
    } else if let Err(err) = stores.rate_limits.refund(attempt).await {
        tracing::warn!(error = %Causes(&err), "could not refund a second-factor attempt");
    }
    result
}

async fn verify_code(
    stores: &Stores,
    factor: &Factor,
    presented: &str,
    by: &Acting,
) -> Result<CodeUsed, AccountError> {
    match PresentedCode::parse(presented) {
        PresentedCode::Totp(code) => {
            let secret = open_secret(stores, factor)?;
            let now = u64::try_from(stores.clock.now().timestamp()).unwrap_or(0);
            match secret.matching_step(&code, now, factor.last_step) {
                // The compare-and-set decides between concurrent uses.
                Some(step)
                    if stores
                        .mfa
                        .accept_step(factor.user_id, factor.id, step)
                        .await? =>
                {
                    Ok(CodeUsed::Totp)
                }
                _ => Err(AccountError::WrongCode),
            }
        }
        PresentedCode::Recovery(Some(code)) if factor.enabled => {
            let digests = stores
                .mfa_policy
                .code_mac_keys()
                .map(|key| code.digest(key))
                .collect();
            if stores
                .mfa
                .spend_recovery_code(factor.user_id, digests, EventType::RecoveryCodeUsed.by(by))
                .await?
            {
                announce_change(stores, factor.user_id).await;
                Ok(CodeUsed::RecoveryCode)
            } else {
                Err(AccountError::WrongCode)
            }
        }
        PresentedCode::Recovery(_) => Err(AccountError::WrongCode),
    }
}

fn open_secret(stores: &Stores, factor: &Factor) -> Result<TotpSecret, AccountError> {
    let opened = stores
        .mfa_policy
        .keys
        .open(factor.user_id.as_bytes(), &factor.sealed)
        .map_err(|err| {
            tracing::error!(user_id = %factor.user_id, error = %Causes(&err), "a TOTP secret that no configured key opens");
            AccountError::SecretUnreadable
        })?;
    TotpSecret::from_bytes(opened).ok_or_else(|| {
        tracing::error!(user_id = %factor.user_id, "a TOTP secret of the wrong length");
        AccountError::SecretUnreadable
    })
}
