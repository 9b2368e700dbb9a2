//! Admin tokens for the back office: the only code that touches the
//! `admin_tokens` table. A token (`tsa_…`) is shown once when created and
//! stored only as its SHA-256, under a unique name operators use for it.

use std::fmt;

use chrono::{DateTime, Utc};
use entity::admin_token;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait, sea_query::Expr,
};

use crate::{
    audit::{self, Acting, EventType},
    clock::Clock,
    secrets::{ADMIN_TOKEN, Revealed, SecretDigest},
    users::UserStoreError,
};

/// `[a-z0-9._-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenName(String);

#[derive(Debug, thiserror::Error)]
#[error("an admin token name is 1–64 characters of `a-z`, `0-9`, `.`, `_` and `-`")]
pub struct InvalidTokenName;

impl AdminTokenName {
    pub fn parse(raw: &str) -> Result<Self, InvalidTokenName> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        valid
            .then(|| AdminTokenName(raw.to_owned()))
            .ok_or(InvalidTokenName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminTokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An admin token as listed: never the token itself.
#[derive(Debug, Clone)]
pub struct AdminToken {
    pub name: AdminTokenName,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A token just created: shown once.
pub struct CreatedAdminToken {
    pub token: AdminToken,
    pub text: Revealed,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("an admin token of that name exists")]
    NameTaken,
    #[error("the admin token store")]
    Store(#[from] UserStoreError),
}

#[derive(Clone)]
pub struct AdminTokenStore {
    db: DatabaseConnection,
    clock: Clock,
}

impl AdminTokenStore {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        AdminTokenStore { db, clock }
    }

    /// Creates a token, with an `admin.token_created` event by `by`; the
    /// unique name settles races.
    pub async fn create(
        &self,
        name: AdminTokenName,
        lifetime: Option<chrono::TimeDelta>,
        by: &Acting,
    ) -> Result<CreatedAdminToken, AdminTokenError> {
        let issued = ADMIN_TOKEN.generate();
        let now = self.clock.now();
        let expires_at = lifetime.map(|lifetime| now + lifetime);
        let event = EventType::AdminTokenCreated
            .by(by)
            .detail(serde_json::json!({ "name": name.as_str(), "expires_at": expires_at }));
        let txn = self.db.begin().await.map_err(UserStoreError::from)?;
        let inserted = admin_token::ActiveModel {
            name: Set(name.as_str().to_owned()),
            token_hash: Set(issued.digest.as_str().to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            last_used_at: Set(None),
        }
        .insert(&txn)
        .await;
        let model = match inserted.map_err(UserStoreError::from) {
            Ok(model) => model,
            Err(UserStoreError::UsernameTaken) => return Err(AdminTokenError::NameTaken),
            Err(err) => return Err(err.into()),
        };
        audit::insert(&txn, now, &event)
            .await
            .map_err(UserStoreError::from)?;
        txn.commit().await.map_err(UserStoreError::from)?;
        Ok(CreatedAdminToken {
            token: model.into(),
            text: issued.text,
        })
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<AdminToken>, AdminTokenError> {
        let models = admin_token::Entity::find()
            .order_by_asc(admin_token::Column::CreatedAt)
            .order_by_asc(admin_token::Column::Name)
            .all(&self.db)
            .await
            .map_err(UserStoreError::from)?;
        Ok(models.into_iter().map(AdminToken::from).collect())
    }

    /// The name of the live (unexpired, unrevoked) token whose digest this
    /// is, stamping its last use; checked against the database on every
    /// call, so a revocation counts on every instance at once.
    pub async fn authenticate(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<AdminTokenName>, AdminTokenError> {
        let now = self.clock.now();
        let found = admin_token::Entity::find()
            .filter(admin_token::Column::TokenHash.eq(digest.as_str()))
            .all(&self.db)
            .await
            .map_err(UserStoreError::from)?
            .into_iter()
            .next()
            .filter(|token| {
                digest.matches(&SecretDigest::from_stored(token.token_hash.clone()))
                    && token.expires_at.is_none_or(|at| at > now)
            });
        let Some(token) = found else {
            return Ok(None);
        };
        admin_token::Entity::update_many()
            .col_expr(admin_token::Column::LastUsedAt, Expr::value(now))
            .filter(admin_token::Column::Name.eq(token.name.as_str()))
            .exec(&self.db)
            .await
            .map_err(UserStoreError::from)?;
        Ok(Some(AdminTokenName(token.name)))
    }

    /// Revokes a token at once (every instance checks the table on every
    /// call), with an `admin.token_revoked` event by `by`; `false` when
    /// there was none of that name.
    pub async fn revoke(
        &self,
        name: &AdminTokenName,
        by: &Acting,
    ) -> Result<bool, AdminTokenError> {
        let revoking = async {
            let txn = self.db.begin().await?;
            let result = admin_token::Entity::delete_by_id(name.as_str().to_owned())
                .exec(&txn)
                .await?;
            if result.rows_affected != 1 {
                return Ok(false);
            }
            let event = EventType::AdminTokenRevoked
                .by(by)
                .detail(serde_json::json!({ "name": name.as_str() }));
            audit::insert(&txn, self.clock.now(), &event).await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>(true)
        };
        Ok(revoking.await.map_err(UserStoreError::from)?)
    }
}

impl From<admin_token::Model> for AdminToken {
    fn from(model: admin_token::Model) -> Self {
        AdminToken {
            name: AdminTokenName(model.name),
            created_at: model.created_at,
            expires_at: model.expires_at,
            last_used_at: model.last_used_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lower_case_words() {
        for good in ["backoffice", "ops.eu-1", "a", "x_y", &"a".repeat(64)] {
            assert!(AdminTokenName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Backoffice", "back office", "é", "a/b", &"a".repeat(65)] {
            assert!(AdminTokenName::parse(bad).is_err(), "{bad}");
        }
    }
}
