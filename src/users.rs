//! The users repository over SeaORM: the only code that touches the `users` table.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Select, SqlErr,
};
use uuid::Uuid;

use crate::{clock::Clock, domain::Username};

/// A user as the rest of the server sees it; the hash stays in here unless asked for.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: Username,
    pub created_at: DateTime<Utc>,
    /// When an operator disabled the account; disabled accounts cannot sign in.
    pub disabled_at: Option<DateTime<Utc>>,
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

    /// Inserts a user; the unique index on `username` settles races.
    pub async fn create(
        &self,
        username: Username,
        password_hash: String,
    ) -> Result<User, UserStoreError> {
        let now = self.clock.now();
        let model = user::ActiveModel {
            id: Set(Uuid::now_v7()),
            username: Set(username.as_str().to_owned()),
            password_hash: Set(password_hash),
            created_at: Set(now),
            updated_at: Set(now),
            disabled_at: Set(None),
        }
        .insert(&self.db)
        .await?;
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
        Ok(model.map(|model| StoredCredentials {
            password_hash: model.password_hash.clone(),
            user: model.into(),
        }))
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

    /// Every user, oldest first.
    pub async fn list(&self) -> Result<Vec<User>, UserStoreError> {
        let models = user::Entity::find()
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await?;
        Ok(models.into_iter().map(User::from).collect())
    }

    /// Disables (as of now) or re-enables an account.
    pub async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), UserStoreError> {
        let now = self.clock.now();
        user::ActiveModel {
            id: Set(id),
            disabled_at: Set(disabled.then_some(now)),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// Deletes an account; `false` when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, UserStoreError> {
        let result = user::Entity::delete_by_id(id).exec(&self.db).await?;
        Ok(result.rows_affected == 1)
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

impl From<user::Model> for User {
    fn from(model: user::Model) -> Self {
        User {
            id: model.id,
            username: Username::from_trusted(model.username),
            created_at: model.created_at,
            disabled_at: model.disabled_at,
        }
    }
}
