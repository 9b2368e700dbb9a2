//! The operator's commands: `tessera users …` and `tessera sessions …`.
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
    auth::hashing::{HashingError, HashingPool},
    database,
    domain::{PasswordPolicy, Username},
    error::FieldError,
    keyspace::{Keyspace, RedisUnavailable},
    sessions::{SessionInfo, SessionStore},
    settings::Settings,
    users::{User, UserRef, UserStore, UserStoreError},
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
    Invalid(String),
    #[error("that username is already taken")]
    UsernameTaken,
    #[error("database: {0}")]
    Database(UserStoreError),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Redis(#[from] RedisUnavailable),
    #[error("password hashing: {0}")]
    Hashing(#[from] HashingError),
    #[error("reading the password from standard input: {0}")]
    Input(#[from] std::io::Error),
    #[error(
        "{done}, but revoking their sessions failed ({cause}); run `tessera sessions revoke {user}` when Redis is back"
    )]
    RevokeAfter {
        done: String,
        user: String,
        cause: RedisUnavailable,
    },
}

impl From<UserStoreError> for AdminError {
    fn from(err: UserStoreError) -> Self {
        match err {
            UserStoreError::UsernameTaken => AdminError::UsernameTaken,
            other => AdminError::Database(other),
        }
    }
}

/// The stores a command works on.
struct Admin {
    users: UserStore,
    sessions: SessionStore,
}

impl Admin {
    async fn connect(settings: &Settings) -> Result<Admin, AdminError> {
        let db = database::connect_and_migrate(&settings.database).await?;
        let keyspace = Keyspace::new(&settings.redis)?;
        Ok(Admin {
            users: UserStore::new(db),
            sessions: SessionStore::new(keyspace, &settings.session),
        })
    }

    async fn user(&self, given: &str) -> Result<User, AdminError> {
        let reference = match given.parse::<Uuid>() {
            Ok(id) => UserRef::Id(id),
            Err(_) => UserRef::Name(
                Username::parse(given).map_err(|_| AdminError::BadUserRef(given.into()))?,
            ),
        };
        self.users
            .find(&reference)
            .await?
            .ok_or_else(|| AdminError::NoSuchUser(given.into()))
    }

    /// Revokes every session of a user after `done` happened to them.
    async fn revoke_after(&self, user: &User, done: String) -> Result<String, AdminError> {
        match self.sessions.revoke_all(user.id).await {
            Ok(revoked) => Ok(format!("{done}; {revoked} session(s) revoked")),
            Err(cause) => Err(AdminError::RevokeAfter {
                done,
                user: user.username.to_string(),
                cause,
            }),
        }
    }
}

/// Runs a `users` command; the text to print on success.
pub async fn users(settings: &Settings, command: UsersCommand) -> Result<String, AdminError> {
    let admin = Admin::connect(settings).await?;
    match command {
        UsersCommand::Create { username } => {
            let policy = PasswordPolicy {
                min_score: settings.password.min_score,
            };
            let (username, password) = policy
                .parse_new_account(&username, read_password()?)
                .map_err(|errors| invalid(&errors))?;
            let hashing = HashingPool::new(&settings.password).await?;
            let hash = hashing.reserve()?.hash(password).await?;
            let user = admin.users.create(username, hash).await?;
            Ok(format!("created user {} ({})", user.username, user.id))
        }
        UsersCommand::List => Ok(user_table(&admin.users.list().await?)),
        UsersCommand::Disable { user } => {
            let user = admin.user(&user).await?;
            if user.disabled_at.is_none() {
                admin.users.set_disabled(user.id, Some(Utc::now())).await?;
            }
            let done = format!("disabled user {} ({})", user.username, user.id);
            admin.revoke_after(&user, done).await
        }
        UsersCommand::Enable { user } => {
            let user = admin.user(&user).await?;
            admin.users.set_disabled(user.id, None).await?;
            Ok(format!("enabled user {} ({})", user.username, user.id))
        }
        UsersCommand::Delete { user } => {
            let user = admin.user(&user).await?;
            admin.users.delete(user.id).await?;
            let done = format!("deleted user {} ({})", user.username, user.id);
            admin.revoke_after(&user, done).await
        }
    }
}

/// Runs a `sessions` command; the text to print on success.
pub async fn sessions(settings: &Settings, command: SessionsCommand) -> Result<String, AdminError> {
    let admin = Admin::connect(settings).await?;
    match command {
        SessionsCommand::List { user } => {
            let user = admin.user(&user).await?;
            Ok(session_table(&admin.sessions.list(user.id).await?))
        }
        SessionsCommand::Revoke {
            user,
            session_id: None,
        } => {
            let user = admin.user(&user).await?;
            let revoked = admin.sessions.revoke_all(user.id).await?;
            Ok(format!(
                "revoked {revoked} session(s) of {} ({})",
                user.username, user.id
            ))
        }
        SessionsCommand::Revoke {
            user,
            session_id: Some(session_id),
        } => {
            let user = admin.user(&user).await?;
            if !admin.sessions.revoke(user.id, session_id).await? {
                return Err(AdminError::NoSuchSession(
                    user.username.to_string(),
                    session_id,
                ));
            }
            Ok(format!("revoked session {session_id} of {}", user.username))
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

fn invalid(errors: &[FieldError]) -> AdminError {
    let reasons: Vec<String> = errors
        .iter()
        .map(|err| format!("{} ({}): {}", err.field, err.code, err.message))
        .collect();
    AdminError::Invalid(reasons.join("; "))
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
