//! The users repository over SeaORM: the only code that touches the `users`
//! table and the password reset tokens that belong to its rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{mfa_factor, password_reset, user};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Select, SqlErr, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use crate::{
    audit::{self, NewEvent},
    clock::Clock,
    domain::Username,
    mfa::FactorSummary,
    secrets::SecretDigest,
};

/// A user as the rest of the server sees it; the hash stays in here unless asked for.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: Username,
    pub created_at: DateTime<Utc>,
    /// When an operator disabled the account; disabled accounts cannot sign in.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The last password change or reset; `None` since sign-up.
    pub password_changed_at: Option<DateTime<Utc>>,
    /// The last completed sign-in.
    pub last_signin_at: Option<DateTime<Utc>>,
}

/// How an operator names a user: by id or by username.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(Uuid),
    Name(Username),
}

/// A user with the stored password hash, for sign-in.
pub struct StoredCredentials {
    pub user: User,
    pub password_hash: String,
}

/// An outstanding, unexpired reset token and the user it resets.
pub struct PendingReset {
    pub user: User,
    pub digest: SecretDigest,
}

#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    #[error("username already taken")]
    UsernameTaken,
    /// The user went away between reading and writing it.
    #[error("no such user")]
    NotFound,
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// A stored value we cannot read back: a bug or corruption, not an outage.
    #[error("unexpected value in the database")]
    Unexpected(#[source] DbErr),
}

impl From<DbErr> for UserStoreError {
    /// The one place database errors are sorted: a unique violation is a
    /// conflict, a vanished row is not found, an unreadable value is a bug,
    /// and the rest (connections, timeouts, locks) mean the store cannot
    /// answer now.
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return UserStoreError::UsernameTaken;
        }
        match err {
            DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => UserStoreError::NotFound,
            DbErr::Type(_)
            | DbErr::Json(_)
            | DbErr::TryIntoErr { .. }
            | DbErr::ConvertFromU64(_)
            | DbErr::AttrNotSet(_) => UserStoreError::Unexpected(err),
            _ => UserStoreError::Unavailable(err),
        }
    }
}

#[derive(Clone)]
pub struct UserStore {
    db: DatabaseConnection,
    clock: Clock,
}

impl UserStore {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        UserStore { db, clock }
    }

    /// Inserts a user and its `event`; the unique index on `username`
    /// settles races.
    pub async fn create(
        &self,
        username: Username,
        password_hash: String,
        event: NewEvent,
    ) -> Result<User, UserStoreError> {
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let txn = self.db.begin().await?;
        let model = user::ActiveModel {
            id: Set(id),
            username: Set(username.as_str().to_owned()),
            password_hash: Set(password_hash),
            created_at: Set(now),
            updated_at: Set(now),
            disabled_at: Set(None),
            password_changed_at: Set(None),
            last_signin_at: Set(None),
        }
        .insert(&txn)
        .await?;
        audit::insert(&txn, now, &event.user(id)).await?;
        txn.commit().await?;
        Ok(model.into())
    }

    /// A user who may use the API: existing and not disabled.
    pub async fn find_active(&self, id: Uuid) -> Result<Option<User>, UserStoreError> {
        Ok(self
            .unique(user::Entity::find_by_id(id).filter(user::Column::DisabledAt.is_null()))
            .await?
            .map(User::from))
    }

    /// The credentials sign-in checks; a disabled account has none, so it
    /// fails exactly like an unknown user.
    pub async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<StoredCredentials>, UserStoreError> {
        let model = self
            .unique(
                user::Entity::find()
                    .filter(user::Column::Username.eq(username.as_str()))
                    .filter(user::Column::DisabledAt.is_null()),
            )
            .await?;
        Ok(model.map(StoredCredentials::from))
    }

    /// An enabled user and the state of their second factor, in one query
    /// (what `/v1/me` shows).
    pub async fn find_active_with_factor(
        &self,
        id: Uuid,
    ) -> Result<Option<(User, FactorSummary)>, UserStoreError> {
        /// Only what `/v1/me` shows: no hash, no sealed secret.
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
            username: String,
            created_at: DateTime<Utc>,
            disabled_at: Option<DateTime<Utc>>,
            password_changed_at: Option<DateTime<Utc>>,
            last_signin_at: Option<DateTime<Utc>>,
            mfa_enabled_at: Option<DateTime<Utc>>,
            recovery_codes_left: Option<i32>,
        }
        let row = user::Entity::find_by_id(id)
            .filter(user::Column::DisabledAt.is_null())
            .select_only()
            .columns([
                user::Column::Id,
                user::Column::Username,
                user::Column::CreatedAt,
                user::Column::DisabledAt,
                user::Column::PasswordChangedAt,
                user::Column::LastSigninAt,
            ])
            .column_as(mfa_factor::Column::EnabledAt, "mfa_enabled_at")
            .column_as(mfa_factor::Column::RecoveryCodesLeft, "recovery_codes_left")
            .left_join(mfa_factor::Entity)
            .into_model::<Row>()
            .all(&self.db)
            .await?
            .into_iter()
            .next();
        Ok(row.map(|row| {
            let enabled = row.mfa_enabled_at.is_some();
            let user = User {
                id: row.id,
                username: Username::from_trusted(row.username),
                created_at: row.created_at,
                disabled_at: row.disabled_at,
                password_changed_at: row.password_changed_at,
                last_signin_at: row.last_signin_at,
            };
            let summary = FactorSummary {
                enabled,
                recovery_codes_left: enabled
                    .then(|| u32::try_from(row.recovery_codes_left.unwrap_or(0)).unwrap_or(0)),
            };
            (user, summary)
        }))
    }

    /// The credentials of an enabled user, by id: for re-checking the
    /// password of a signed-in caller.
    pub async fn find_active_credentials(
        &self,
        id: Uuid,
    ) -> Result<Option<StoredCredentials>, UserStoreError> {
        let model = self
            .unique(user::Entity::find_by_id(id).filter(user::Column::DisabledAt.is_null()))
            .await?;
        Ok(model.map(StoredCredentials::from))
    }

    /// Sets a new password chosen by its user (a change, not an upgrade of
    /// the same one's hash): stamps `password_changed_at` and voids any
    /// outstanding reset token, in one transaction with its `event`.
    pub async fn change_password(
        &self,
        id: Uuid,
        password_hash: String,
        event: NewEvent,
    ) -> Result<(), UserStoreError> {
        let txn = self.db.begin().await?;
        self.set_new_password(&txn, id, password_hash).await?;
        void_reset_tokens(&txn, id).await?;
        audit::insert(&txn, self.clock.now(), &event.user(id)).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Stamps a completed sign-in.
    pub async fn record_signin(&self, id: Uuid) -> Result<(), UserStoreError> {
        user::Entity::update_many()
            .col_expr(user::Column::LastSigninAt, Expr::value(self.clock.now()))
            .filter(user::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn update_password_hash(
        &self,
        id: Uuid,
        password_hash: String,
    ) -> Result<(), UserStoreError> {
        user::ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            updated_at: Set(self.clock.now()),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// Any user, disabled or not (for operators).
    pub async fn find(&self, user: &UserRef) -> Result<Option<User>, UserStoreError> {
        let select = match user {
            UserRef::Id(id) => user::Entity::find_by_id(*id),
            UserRef::Name(name) => {
                user::Entity::find().filter(user::Column::Username.eq(name.as_str()))
            }
        };
        Ok(self.unique(select).await?.map(User::from))
    }

    /// Up to `limit` users after `after`, in ascending id (UUID v7: oldest
    /// first), each with whether TOTP is on; with a prefix, only usernames
    /// that start with it, found by a range over the unique index.
    pub async fn list_page(
        &self,
        after: Option<Uuid>,
        limit: u64,
        username_prefix: Option<&str>,
    ) -> Result<Vec<(User, bool)>, UserStoreError> {
        let mut select = user::Entity::find()
            .find_also_related(mfa_factor::Entity)
            .order_by_asc(user::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            select = select.filter(user::Column::Id.gt(after));
        }
        if let Some(prefix) = username_prefix {
            select = select.filter(user::Column::Username.gte(prefix));
            if let Some(end) = prefix_end(prefix) {
                select = select.filter(user::Column::Username.lt(end));
            }
        }
        let rows = select.all(&self.db).await?;
        Ok(rows
            .into_iter()
            .map(|(user, factor)| {
                let mfa = factor.is_some_and(|factor| factor.enabled_at.is_some());
                (user.into(), mfa)
            })
            .collect())
    }

    /// Disables (as of now, voiding any reset token) or re-enables an
    /// account; `true`, with `event` written, only when its state changed.
    pub async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        event: NewEvent,
    ) -> Result<bool, UserStoreError> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let state = if disabled {
            user::Column::DisabledAt.is_null()
        } else {
            user::Column::DisabledAt.is_not_null()
        };
        let changed = user::Entity::update_many()
            .col_expr(
                user::Column::DisabledAt,
                Expr::value(disabled.then_some(now)),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .filter(state)
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if disabled {
            void_reset_tokens(&txn, id).await?;
        }
        if changed {
            audit::insert(&txn, now, &event.user(id)).await?;
        }
        txn.commit().await?;
        Ok(changed)
    }

    /// Deletes an account and its reset token, clears the personal data of
    /// its events and writes `event`; `false` when there was no account.
    pub async fn delete(&self, id: Uuid, event: NewEvent) -> Result<bool, UserStoreError> {
        let txn = self.db.begin().await?;
        // Not left to the foreign key's cascade: SQLite enforces it only
        // where the connection turned foreign keys on.
        void_reset_tokens(&txn, id).await?;
        let result = user::Entity::delete_by_id(id).exec(&txn).await?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        audit::forget_user(&txn, self.clock.now(), id, event.user(id)).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Stores a new reset token for a user, replacing (voiding) any earlier
    /// one in the same statement, with its `event`; when it expires.
    pub async fn issue_reset_token(
        &self,
        user_id: Uuid,
        digest: &SecretDigest,
        ttl: Duration,
        event: NewEvent,
    ) -> Result<DateTime<Utc>, UserStoreError> {
        let now = self.clock.now();
        let expires_at = now + ttl;
        let txn = self.db.begin().await?;
        let row = password_reset::ActiveModel {
            user_id: Set(user_id),
            token_hash: Set(digest.as_str().to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
        };
        password_reset::Entity::insert(row)
            .on_conflict(
                OnConflict::column(password_reset::Column::UserId)
                    .update_columns([
                        password_reset::Column::TokenHash,
                        password_reset::Column::CreatedAt,
                        password_reset::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        let event = event
            .user(user_id)
            .detail(serde_json::json!({ "expires_at": expires_at }));
        audit::insert(&txn, now, &event).await?;
        txn.commit().await?;
        Ok(expires_at)
    }

    /// The user an unexpired reset token resets, if it is outstanding.
    pub async fn find_reset(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<PendingReset>, UserStoreError> {
        let reset = password_reset::Entity::find()
            .filter(password_reset::Column::TokenHash.eq(digest.as_str()))
            .filter(password_reset::Column::ExpiresAt.gt(self.clock.now()))
            .all(&self.db)
            .await?
            .into_iter()
            .next();
        let Some(reset) = reset else {
            return Ok(None);
        };
        let stored = SecretDigest::from_stored(reset.token_hash);
        if !digest.matches(&stored) {
            return Ok(None);
        }
        let user = self.unique(user::Entity::find_by_id(reset.user_id)).await?;
        Ok(user.map(|user| PendingReset {
            user: user.into(),
            digest: stored,
        }))
    }

    /// Spends a reset token, sets the password it was issued for and
    /// unlocks a locked second factor, in one transaction; `false` when the token was no longer outstanding (spent
    /// by a concurrent redemption, replaced, voided or expired meanwhile).
    /// The conditional delete decides: of concurrent redemptions, exactly
    /// one deletes the row.
    pub async fn redeem_reset(
        &self,
        reset: &PendingReset,
        password_hash: String,
        event: NewEvent,
    ) -> Result<bool, UserStoreError> {
        let txn = self.db.begin().await?;
        let spent = password_reset::Entity::delete_many()
            .filter(password_reset::Column::TokenHash.eq(reset.digest.as_str()))
            .filter(password_reset::Column::UserId.eq(reset.user.id))
            .filter(password_reset::Column::ExpiresAt.gt(self.clock.now()))
            .exec(&txn)
            .await?;
        if spent.rows_affected != 1 {
            return Ok(false);
        }
        self.set_new_password(&txn, reset.user.id, password_hash)
            .await?;
        // A reset is how a user locked out of their second factor by wrong
        // codes gets back in (the factor itself stays on).
        crate::mfa::store::unlock(&txn, reset.user.id).await?;
        audit::insert(&txn, self.clock.now(), &event.user(reset.user.id)).await?;
        txn.commit().await?;
        Ok(true)
    }

    async fn set_new_password(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
        password_hash: String,
    ) -> Result<(), UserStoreError> {
        let now = self.clock.now();
        user::ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            password_changed_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(db)
        .await?;
        Ok(())
    }

    /// The one row a lookup by a unique key finds. Not `.one()`: its bound
    /// `LIMIT ?` makes SQLite re-prepare the statement on every execution,
    /// which cost `/v1/me` a third of its throughput.
    async fn unique(&self, select: Select<user::Entity>) -> Result<Option<user::Model>, DbErr> {
        Ok(select.all(&self.db).await?.into_iter().next())
    }

    /// Readiness: one round-trip to the database.
    pub async fn ping(&self) -> Result<(), UserStoreError> {
        Ok(self.db.ping().await?)
    }
}

/// The least string greater than every string that starts with `prefix`
/// (byte order): the prefix with its last character moved one up. `None`
/// when no such string exists.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Voids a user's outstanding reset token, if any.
async fn void_reset_tokens(db: &impl ConnectionTrait, user_id: Uuid) -> Result<(), DbErr> {
    password_reset::Entity::delete_many()
        .filter(password_reset::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

impl From<user::Model> for User {
    fn from(model: user::Model) -> Self {
        User {
            id: model.id,
            username: Username::from_trusted(model.username),
            created_at: model.created_at,
            disabled_at: model.disabled_at,
            password_changed_at: model.password_changed_at,
            last_signin_at: model.last_signin_at,
        }
    }
}

impl From<user::Model> for StoredCredentials {
    fn from(model: user::Model) -> Self {
        StoredCredentials {
            password_hash: model.password_hash.clone(),
            user: model.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_just_past_its_last_character() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a-").as_deref(), Some("a."));
        assert_eq!(prefix_end("z").as_deref(), Some("{"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end(&char::MAX.to_string()), None);
    }
}
