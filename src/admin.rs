//! The operator's commands: `tessera users …`, `tessera sessions …`,
//! `tessera admin-tokens …` and `tessera mfa …`.
//!
//! They work on the same database and Redis as the server (same settings),
//! through the same stores, so they keep the same rules: a created user's
//! password passes the same policy and is hashed the same way, and disabling
//! or deleting a user revokes their sessions at once.

use std::{fmt::Write as _, io::Read};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use uuid::Uuid;

use crate::{
    admin_tokens::{AdminToken, AdminTokenError, AdminTokenName, InvalidTokenName},
    audit::Acting,
    auth::hashing::{HashingError, HashingPool},
    auth::signing_keys::{KeyInfo, SigningKeyError},
    clock::Clock,
    domain::{PasswordPolicy, Username, Violations},
    error::Causes,
    flows::{self, ConnectError, Origin, RevokeError, SignupError, Stores, UserOpError},
    sessions::{SessionError, SessionInfo},
    settings::{JwtKeys, Settings},
    users::{User, UserRef, UserStoreError},
};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input (hidden on a terminal).
    Create { username: String },
    /// List every user, oldest first.
    List,
    /// Disable a user: sign-in refuses them and their sessions are revoked now.
    Disable { user: String },
    /// Enable a disabled user again.
    Enable { user: String },
    /// Delete a user and revoke their sessions.
    Delete { user: String },
    /// Issue a one-time password reset token (printed once, as the last
    /// line); it replaces any earlier one. Works for disabled users too.
    ResetPassword { user: String },
    /// Remove a user's second factor (a lost device): their sessions and
    /// pending two-step sign-ins end; they can sign in with the password and
    /// enrol again.
    ResetMfa { user: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminTokensCommand {
    /// Create an admin token for the back office (printed once, as the last line).
    Create {
        /// `[a-z0-9._-]{1,64}`, unique.
        name: String,
        /// Days until it expires; without it, it never does.
        #[arg(long, value_name = "DAYS")]
        expires_in: Option<u32>,
    },
    /// List admin tokens: name, created, expires, last used (never the token).
    List,
    /// Revoke an admin token: refused on every instance from the next call.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the managed signing keys: kid, state and times.
    List,
    /// Schedule a new signing key: published now, signing after
    /// `jwt.rotation_overlap_secs` (every instance picks it up by itself).
    Rotate {
        /// Sign with the new key at once (old tokens keep verifying).
        #[arg(long)]
        now: bool,
        /// With `--now`: also withdraw every older key from the JWKS, so every
        /// token they signed is refused (a compromised key).
        #[arg(long, requires = "now")]
        revoke_old: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Re-seal every TOTP secret under the current `mfa.encryption_key`
    /// (after a rotation; the old key must still be in
    /// `mfa.previous_encryption_keys`).
    Reencrypt,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List a user's live sessions.
    List { user: String },
    /// Revoke one session of a user, or all of them when no session id is given.
    Revoke {
        user: String,
        session_id: Option<Uuid>,
    },
}

/// Why a command failed, said to the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("`{0}` is neither a user id nor a valid username")]
    BadUserRef(String),
    #[error("user {0} has no live session {1}")]
    NoSuchSession(String, Uuid),
    #[error("{0}")]
    Invalid(#[from] Violations),
    #[error("that username is already taken")]
    UsernameTaken,
    #[error("{}", Causes(.0))]
    Connect(#[from] ConnectError),
    #[error("database: {}", Causes(.0))]
    Database(UserStoreError),
    #[error("redis: {}", Causes(.0))]
    Redis(#[from] SessionError),
    #[error("password hashing: {0}")]
    Hashing(#[from] HashingError),
    #[error("{}", Causes(.0))]
    Signup(SignupError),
    #[error("reading the password from standard input: {0}")]
    Input(#[from] std::io::Error),
    #[error("{0}")]
    BadTokenName(#[from] InvalidTokenName),
    #[error("an admin token named {0} exists")]
    TokenNameTaken(String),
    #[error("no admin token named {0}")]
    NoSuchToken(String),
    #[error("days must be at least 1")]
    ZeroDays,
    #[error(
        "signing keys are not managed here: set jwt.keys = \"managed\" (with jwt.algorithm = \"EdDSA\")"
    )]
    KeysNotManaged,
    #[error("{}", Causes(.0))]
    SigningKeys(#[from] SigningKeyError),
    #[error(
        "re-sealed {resealed} TOTP secret(s), but {unreadable} open under no configured key (see the log); add the key that sealed them to mfa.previous_encryption_keys"
    )]
    Unreadable { resealed: u64, unreadable: u64 },
}

impl From<UserStoreError> for AdminError {
    fn from(err: UserStoreError) -> Self {
        match err {
            UserStoreError::UsernameTaken => AdminError::UsernameTaken,
            other => AdminError::Database(other),
        }
    }
}

impl From<SignupError> for AdminError {
    fn from(err: SignupError) -> Self {
        match err {
            SignupError::Hashing(err) => err.into(),
            SignupError::Users(err) => err.into(),
            other => AdminError::Signup(other),
        }
    }
}

/// A flow's failure on the user named `given`.
fn user_op_error(given: &str) -> impl FnOnce(UserOpError) -> AdminError {
    move |err| match err {
        UserOpError::NoSuchUser => AdminError::NoSuchUser(given.into()),
        UserOpError::Users(err) => err.into(),
        UserOpError::Sessions(err) => err.into(),
    }
}

/// How the operator named a user: an id, else a username.
fn user_ref(given: &str) -> Result<UserRef, AdminError> {
    match given.parse::<Uuid>() {
        Ok(id) => Ok(UserRef::Id(id)),
        Err(_) => Username::parse(given)
            .map(UserRef::Name)
            .map_err(|_| AdminError::BadUserRef(given.into())),
    }
}

fn described(user: &User) -> String {
    format!("{} ({})", user.username, user.id)
}

/// Runs a `users` command; the text to print on success.
pub async fn users(settings: &Settings, command: UsersCommand) -> Result<String, AdminError> {
    let stores = Stores::connect(settings, Clock::system()).await?;
    match command {
        UsersCommand::Create { username } => {
            let policy = PasswordPolicy {
                min_score: settings.password.min_score,
            };
            let (username, password) = policy.parse_new_account(&username, read_password()?)?;
            // Only the command that hashes starts a hashing pool.
            let hashing = HashingPool::new(&settings.password).await?;
            let user = flows::sign_up(
                &stores,
                &hashing,
                Origin::Operator(Acting::cli()),
                username,
                password,
            )
            .await?;
            Ok(format!("created user {}", described(&user)))
        }
        UsersCommand::List => {
            // The admin API's pages, all of them.
            let mut users = Vec::new();
            let mut after = None;
            loop {
                let page = flows::list_users(&stores, after, flows::MAX_PAGE, None)
                    .await
                    .map_err(user_op_error(""))?;
                users.extend(page.users.into_iter().map(|(user, _)| user));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            Ok(user_table(&users))
        }
        UsersCommand::Disable { user: given } => {
            let (user, revoked) = flows::disable_user(&stores, &user_ref(&given)?, &Acting::cli())
                .await
                .map_err(user_op_error(&given))?;
            Ok(format!(
                "disabled user {}; {revoked} session(s) revoked",
                described(&user)
            ))
        }
        UsersCommand::Enable { user: given } => {
            let user = flows::enable_user(&stores, &user_ref(&given)?, &Acting::cli())
                .await
                .map_err(user_op_error(&given))?;
            Ok(format!("enabled user {}", described(&user)))
        }
        UsersCommand::ResetPassword { user: given } => {
            let issued = flows::issue_password_reset(
                &stores,
                &user_ref(&given)?,
                settings.password.reset_ttl,
                &Acting::cli(),
            )
            .await
            .map_err(user_op_error(&given))?;
            Ok(format!(
                "reset token for {}, valid until {} (shown once; redeem with POST /v1/auth/password-reset):\n{}",
                described(&issued.user),
                timestamp(issued.expires_at),
                issued.token.expose()
            ))
        }
        UsersCommand::ResetMfa { user: given } => {
            let (user, removed, revoked) =
                flows::reset_mfa(&stores, &user_ref(&given)?, &Acting::cli())
                    .await
                    .map_err(user_op_error(&given))?;
            let what = if removed {
                "removed the second factor of"
            } else {
                "no second factor to remove for"
            };
            Ok(format!(
                "{what} {}; {revoked} session(s) revoked",
                described(&user)
            ))
        }
        UsersCommand::Delete { user: given } => {
            let (user, revoked) = flows::delete_user(&stores, &user_ref(&given)?, &Acting::cli())
                .await
                .map_err(user_op_error(&given))?;
            Ok(format!(
                "deleted user {}; {revoked} session(s) revoked",
                described(&user)
            ))
        }
    }
}

/// Runs an `admin-tokens` command; the text to print on success.
pub async fn admin_tokens(
    settings: &Settings,
    command: AdminTokensCommand,
) -> Result<String, AdminError> {
    let stores = Stores::connect(settings, Clock::system()).await?;
    let tokens = &stores.admin_tokens;
    let store_error = |given: &str| {
        let given = given.to_owned();
        move |err| match err {
            AdminTokenError::NameTaken => AdminError::TokenNameTaken(given),
            AdminTokenError::Store(err) => err.into(),
        }
    };
    match command {
        AdminTokensCommand::Create { name, expires_in } => {
            let parsed = AdminTokenName::parse(&name)?;
            let lifetime = match expires_in {
                Some(0) => return Err(AdminError::ZeroDays),
                Some(days) => Some(chrono::TimeDelta::days(i64::from(days))),
                None => None,
            };
            let created = tokens
                .create(parsed, lifetime, &Acting::cli())
                .await
                .map_err(store_error(&name))?;
            let expires = created.token.expires_at.map_or_else(
                || "never expires".into(),
                |at| format!("expires {}", timestamp(at)),
            );
            Ok(format!(
                "created admin token {} ({expires}; shown once, use as `Authorization: Bearer …` under /v1/admin):\n{}",
                created.token.name,
                created.text.expose()
            ))
        }
        AdminTokensCommand::List => {
            let listed = tokens.list().await.map_err(store_error(""))?;
            Ok(admin_token_table(&listed))
        }
        AdminTokensCommand::Revoke { name } => {
            let parsed = AdminTokenName::parse(&name)?;
            if tokens
                .revoke(&parsed, &Acting::cli())
                .await
                .map_err(store_error(&name))?
            {
                Ok(format!("revoked admin token {parsed}"))
            } else {
                Err(AdminError::NoSuchToken(name))
            }
        }
    }
}

/// Runs a `keys` command; the text to print on success.
pub async fn keys(settings: &Settings, command: KeysCommand) -> Result<String, AdminError> {
    if settings.jwt.keys != JwtKeys::Managed {
        return Err(AdminError::KeysNotManaged);
    }
    let stores = Stores::connect(settings, Clock::system()).await?;
    let keys = &stores.signing_keys;
    match command {
        KeysCommand::List => Ok(key_table(&keys.list().await?)),
        KeysCommand::Rotate { now, revoke_old } => {
            let key = keys.rotate(now, revoke_old).await?;
            let withdrawn = if revoke_old {
                "; every older key is withdrawn"
            } else {
                ""
            };
            Ok(format!(
                "key {} (generation {}) signs from {}{withdrawn}; every instance switches within {} s",
                key.kid,
                key.generation,
                timestamp(key.signs_from),
                keys.refresh_interval().as_secs().max(1)
            ))
        }
    }
}

/// Runs an `mfa` command; the text to print on success.
pub async fn mfa(settings: &Settings, command: MfaCommand) -> Result<String, AdminError> {
    let stores = Stores::connect(settings, Clock::system()).await?;
    match command {
        MfaCommand::Reencrypt => {
            let (resealed, unreadable) = flows::reseal_secrets(&stores)
                .await
                .map_err(user_op_error(""))?;
            if unreadable > 0 {
                return Err(AdminError::Unreadable {
                    resealed,
                    unreadable,
                });
            }
            Ok(format!(
                "re-sealed {resealed} TOTP secret(s) under the current key"
            ))
        }
    }
}

/// How long a command waits for its queued events (session revocations
/// with the database down) before exiting.
const AUDIT_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a `sessions` command; the text to print on success.
pub async fn sessions(settings: &Settings, command: SessionsCommand) -> Result<String, AdminError> {
    let stores = Stores::connect(settings, Clock::system()).await?;
    let (given, session_id, listing) = match command {
        SessionsCommand::List { user } => (user, None, true),
        SessionsCommand::Revoke { user, session_id } => (user, session_id, false),
    };
    let user = flows::find_user(&stores, &user_ref(&given)?)
        .await
        .map_err(user_op_error(&given))?;
    if listing {
        let (_, sessions) = flows::list_sessions(&stores, &UserRef::Id(user.id))
            .await
            .map_err(user_op_error(&given))?;
        return Ok(session_table(&sessions));
    }
    match session_id {
        None => {
            let revoked = flows::sign_out_everywhere(&stores, user.id, &Acting::cli()).await?;
            stores.audit.flush(AUDIT_FLUSH_GRACE).await;
            Ok(format!(
                "revoked {revoked} session(s) of {}",
                described(&user)
            ))
        }
        Some(session_id) => {
            match flows::revoke_session(&stores, user.id, session_id, &Acting::cli()).await {
                Ok(()) => {
                    stores.audit.flush(AUDIT_FLUSH_GRACE).await;
                    Ok(format!("revoked session {session_id} of {}", user.username))
                }
                Err(RevokeError::NotFound) => Err(AdminError::NoSuchSession(
                    user.username.to_string(),
                    session_id,
                )),
                Err(RevokeError::Sessions(err)) => Err(err.into()),
            }
        }
    }
}

/// The password for `users create`: hidden at a terminal, else the first
/// line of standard input (so scripts can pipe it in; never an argument,
/// which `ps` would show).
fn read_password() -> Result<String, AdminError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("Password: ")?);
    }
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    Ok(input.lines().next().unwrap_or_default().to_owned())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn user_table(users: &[User]) -> String {
    let rows = users.iter().map(|user| {
        [
            user.id.to_string(),
            user.username.to_string(),
            timestamp(user.created_at),
            user.disabled_at.map_or_else(
                || "active".into(),
                |at| format!("disabled {}", timestamp(at)),
            ),
        ]
    });
    table(["ID", "USERNAME", "CREATED", "STATUS"], rows)
}

fn admin_token_table(tokens: &[AdminToken]) -> String {
    let never = || "never".to_owned();
    let rows = tokens.iter().map(|token| {
        [
            token.name.to_string(),
            timestamp(token.created_at),
            token.expires_at.map(timestamp).unwrap_or_else(never),
            token.last_used_at.map(timestamp).unwrap_or_else(never),
        ]
    });
    table(["NAME", "CREATED", "EXPIRES", "LAST USED"], rows)
}

fn key_table(keys: &[KeyInfo]) -> String {
    let none = || "-".to_owned();
    let rows = keys.iter().map(|key| {
        [
            key.kid.clone(),
            key.generation.to_string(),
            key.state.as_str().to_owned(),
            timestamp(key.created_at),
            timestamp(key.signs_from),
            key.retired_at.map(timestamp).unwrap_or_else(none),
            key.withdrawn_at.map(timestamp).unwrap_or_else(none),
        ]
    });
    table(
        [
            "KID",
            "GENERATION",
            "STATE",
            "CREATED",
            "SIGNS FROM",
            "RETIRED",
            "WITHDRAWN",
        ],
        rows,
    )
}

fn session_table(sessions: &[SessionInfo]) -> String {
    let rows = sessions.iter().map(|session| {
        [
            session.id.to_string(),
            timestamp(session.created_at),
            timestamp(session.last_used_at),
            timestamp(session.idle_expires_at),
            session.ip.clone().unwrap_or_else(|| "-".into()),
            session.user_agent.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    table(
        [
            "ID",
            "CREATED",
            "LAST USED",
            "IDLE EXPIRY",
            "IP",
            "USER AGENT",
        ],
        rows,
    )
}

/// Left-aligned columns, two spaces apart, the header first.
fn table<const N: usize>(header: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = std::iter::once(header.map(String::from))
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:width$}  ", width = widths[column]);
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.pop();
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = [
            ["1".to_string(), "alice".to_string()],
            ["22".to_string(), "bo".to_string()],
        ];
        assert_eq!(
            table(["ID", "NAME"], rows.into_iter()),
            "ID  NAME\n1   alice\n22  bo"
        );
    }
}
