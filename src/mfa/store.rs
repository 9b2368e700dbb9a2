//! The second-factor repository over SeaORM: the only code that touches the
//! `mfa_factors` and `recovery_codes` tables. Every rule that must hold under
//! concurrency is one conditional statement here: accepting a TOTP step
//! (`last_step < step`), spending a recovery code (a delete that finds it),
//! confirming a pending factor, locking after too many wrong codes.

use chrono::{DateTime, Utc};
use entity::{mfa_factor, recovery_code};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{RecoveryCode, Sealed};
use crate::{
    audit::{self, NewEvent},
    clock::Clock,
    users::UserStoreError,
};

/// A user's factor as stored.
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: Uuid,
    pub user_id: Uuid,
    pub sealed: Sealed,
    pub created_at: DateTime<Utc>,
    /// Confirmed by a first code; pending otherwise.
    pub enabled: bool,
    pub last_step: u64,
    pub locked: bool,
    pub recovery_codes_left: u32,
}

/// What `/v1/me` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorSummary {
    pub enabled: bool,
    pub recovery_codes_left: Option<u32>,
}

#[derive(Clone)]
pub struct MfaStore {
    db: DatabaseConnection,
    clock: Clock,
}

impl MfaStore {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        MfaStore { db, clock }
    }

    pub async fn find(&self, user_id: Uuid) -> Result<Option<Factor>, UserStoreError> {
        let model = mfa_factor::Entity::find_by_id(user_id)
            .all(&self.db)
            .await?
            .into_iter()
            .next();
        Ok(model.map(Factor::from))
    }

    /// Stores a new pending secret, replacing a pending one; `false` (and
    /// nothing changed) when the user's factor is on.
    pub async fn start_pending(
        &self,
        user_id: Uuid,
        sealed: Sealed,
    ) -> Result<bool, UserStoreError> {
        let txn = self.db.begin().await?;
        mfa_factor::Entity::delete_many()
            .filter(mfa_factor::Column::UserId.eq(user_id))
            .filter(mfa_factor::Column::EnabledAt.is_null())
            .exec(&txn)
            .await?;
        let inserted = mfa_factor::Entity::insert(mfa_factor::ActiveModel {
            user_id: Set(user_id),
            id: Set(Uuid::now_v7()),
            key_id: Set(sealed.key_id),
            sealed_secret: Set(sealed.ciphertext),
            created_at: Set(self.clock.now()),
            enabled_at: Set(None),
            last_step: Set(0),
            consecutive_failures: Set(0),
            locked_at: Set(None),
            recovery_codes_left: Set(0),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted.map_err(UserStoreError::from) {
            Ok(_) => {
                txn.commit().await?;
                Ok(true)
            }
            // The row left is an enabled factor (or a concurrent enrolment's).
            Err(UserStoreError::UsernameTaken) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Accepts a TOTP step for the factor if it is later than the last one
    /// accepted: of concurrent uses of one code, on any instance, exactly
    /// one gets `true`. A right code also ends the run of wrong ones.
    pub async fn accept_step(
        &self,
        user_id: Uuid,
        factor_id: Uuid,
        step: u64,
    ) -> Result<bool, UserStoreError> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let result = mfa_factor::Entity::update_many()
            .col_expr(mfa_factor::Column::LastStep, Expr::value(step))
            .col_expr(mfa_factor::Column::ConsecutiveFailures, Expr::value(0))
            .filter(mfa_factor::Column::UserId.eq(user_id))
            .filter(mfa_factor::Column::Id.eq(factor_id))
            .filter(mfa_factor::Column::LastStep.lt(step))
            .filter(mfa_factor::Column::LockedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Spends one of the user's unused recovery codes whose hash is among
    /// `digests` (one per sealing key): `true` for the one use that finds
    /// it, which writes `used`.
    pub async fn spend_recovery_code(
        &self,
        user_id: Uuid,
        digests: Vec<String>,
        used: NewEvent,
    ) -> Result<bool, UserStoreError> {
        let txn = self.db.begin().await?;
        let spent = recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::CodeHash.is_in(digests))
            .exec(&txn)
            .await?;
        if spent.rows_affected == 0 {
            return Ok(false);
        }
        mfa_factor::Entity::update_many()
            .col_expr(
                mfa_factor::Column::RecoveryCodesLeft,
                Expr::col(mfa_factor::Column::RecoveryCodesLeft)
                    .sub(i32::try_from(spent.rows_affected).unwrap_or(i32::MAX)),
            )
            .col_expr(mfa_factor::Column::ConsecutiveFailures, Expr::value(0))
            .filter(mfa_factor::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        audit::insert(&txn, self.clock.now(), &used.user(user_id)).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Counts a wrong code; `true` when this one locked the factor (`max`
    /// wrong codes in a row; the one that locks it writes `locked`) or it
    /// was locked already.
    pub async fn count_failure(
        &self,
        user_id: Uuid,
        max: u32,
        locked: NewEvent,
    ) -> Result<bool, UserStoreError> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        mfa_factor::Entity::update_many()
            .col_expr(
                mfa_factor::Column::ConsecutiveFailures,
                Expr::col(mfa_factor::Column::ConsecutiveFailures).add(1),
            )
            .filter(mfa_factor::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let max = i32::try_from(max).unwrap_or(i32::MAX);
        let locking = mfa_factor::Entity::update_many()
            .col_expr(mfa_factor::Column::LockedAt, Expr::value(now))
            .filter(mfa_factor::Column::UserId.eq(user_id))
            .filter(mfa_factor::Column::LockedAt.is_null())
            .filter(mfa_factor::Column::ConsecutiveFailures.gte(max))
            .exec(&txn)
            .await?;
        if locking.rows_affected == 1 {
            audit::insert(&txn, now, &locked.user(user_id)).await?;
        }
        txn.commit().await?;
        Ok(self
            .find(user_id)
            .await?
            .is_some_and(|factor| factor.locked))
    }

    /// Turns the pending factor on with its first recovery codes; `false`
    /// when it is no longer that pending factor (replaced, removed, or
    /// confirmed by a concurrent request).
    pub async fn enable(
        &self,
        user_id: Uuid,
        factor_id: Uuid,
        codes: &[RecoveryCode],
        key: &[u8; 32],
        event: NewEvent,
    ) -> Result<bool, UserStoreError> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let enabled = mfa_factor::Entity::update_many()
            .col_expr(mfa_factor::Column::EnabledAt, Expr::value(now))
            .filter(mfa_factor::Column::UserId.eq(user_id))
            .filter(mfa_factor::Column::Id.eq(factor_id))
            .filter(mfa_factor::Column::EnabledAt.is_null())
            .exec(&txn)
            .await?;
        if enabled.rows_affected != 1 {
            return Ok(false);
        }
        store_codes(&txn, user_id, codes, key).await?;
        audit::insert(&txn, now, &event.user(user_id)).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Replaces the user's recovery codes (the old ones stop working).
    pub async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        codes: &[RecoveryCode],
        key: &[u8; 32],
        event: NewEvent,
    ) -> Result<(), UserStoreError> {
        let txn = self.db.begin().await?;
        store_codes(&txn, user_id, codes, key).await?;
        audit::insert(&txn, self.clock.now(), &event.user(user_id)).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Removes the factor and its recovery codes, writing `event` (also
    /// when there was no factor: an operator's reset is recorded either
    /// way); `false` when there was none.
    pub async fn remove(&self, user_id: Uuid, event: NewEvent) -> Result<bool, UserStoreError> {
        let txn = self.db.begin().await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let removed = mfa_factor::Entity::delete_by_id(user_id).exec(&txn).await?;
        audit::insert(&txn, self.clock.now(), &event.user(user_id)).await?;
        txn.commit().await?;
        Ok(removed.rows_affected == 1)
    }

    /// Every factor whose secret is sealed under another key than `current`.
    pub async fn sealed_under_other_keys(
        &self,
        current: &str,
    ) -> Result<Vec<Factor>, UserStoreError> {
        let models = mfa_factor::Entity::find()
            .filter(mfa_factor::Column::KeyId.ne(current))
            .all(&self.db)
            .await?;
        Ok(models.into_iter().map(Factor::from).collect())
    }

    /// Stores a factor's secret sealed anew, unless the factor changed meanwhile.
    pub async fn reseal(&self, factor: &Factor, sealed: Sealed) -> Result<bool, UserStoreError> {
        let result = mfa_factor::Entity::update_many()
            .col_expr(mfa_factor::Column::KeyId, Expr::value(sealed.key_id))
            .col_expr(
                mfa_factor::Column::SealedSecret,
                Expr::value(sealed.ciphertext),
            )
            .filter(mfa_factor::Column::UserId.eq(factor.user_id))
            .filter(mfa_factor::Column::Id.eq(factor.id))
            .filter(mfa_factor::Column::KeyId.eq(factor.sealed.key_id.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

/// Clears a lock and the run of wrong codes (a password reset does).
pub(crate) async fn unlock(db: &impl ConnectionTrait, user_id: Uuid) -> Result<(), sea_orm::DbErr> {
    mfa_factor::Entity::update_many()
        .col_expr(
            mfa_factor::Column::LockedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(mfa_factor::Column::ConsecutiveFailures, Expr::value(0))
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn store_codes(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    codes: &[RecoveryCode],
    key: &[u8; 32],
) -> Result<(), UserStoreError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    let rows = codes.iter().map(|code| recovery_code::ActiveModel {
        user_id: Set(user_id),
        code_hash: Set(code.digest(key)),
    });
    recovery_code::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    mfa_factor::Entity::update_many()
        .col_expr(
            mfa_factor::Column::RecoveryCodesLeft,
            Expr::value(i32::try_from(codes.len()).unwrap_or(i32::MAX)),
        )
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

impl From<mfa_factor::Model> for Factor {
    fn from(model: mfa_factor::Model) -> Self {
        Factor {
            id: model.id,
            user_id: model.user_id,
            sealed: Sealed {
                key_id: model.key_id,
                ciphertext: model.sealed_secret,
            },
            created_at: model.created_at,
            enabled: model.enabled_at.is_some(),
            last_step: u64::try_from(model.last_step).unwrap_or(0),
            locked: model.locked_at.is_some(),
            recovery_codes_left: u32::try_from(model.recovery_codes_left).unwrap_or(0),
        }
    }
}
