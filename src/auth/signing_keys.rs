//! Managed signing keys (`jwt.keys = "managed"`): Ed25519 keys Tessera
//! generates, seals in the `signing_keys` table and rotates. The database
//! decides, so every instance signs with the same key: each one re-reads the
//! table at least every minute, and creates the next key when it is due;
//! the unique generation number lets exactly one of several instances doing
//! so at once succeed.
//!
//! A key's life, from its times and the next generation's:
//! - published from its creation, at least `rotation_overlap` before it signs
//!   (so every JWKS cache has it before the first token it signs);
//! - signing from `signs_from` until the next generation's `signs_from`;
//! - then retired: still published for `access_ttl + leeway + jwks_max_age`,
//!   so its last tokens verify until they expire;
//! - withdrawn at once by `tessera keys rotate --now --revoke-old`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::signing_key;
use jsonwebtoken::EncodingKey;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};

use super::jwt::{KeyError, KeySet, public_jwk};
use crate::{
    clock::Clock,
    error::Causes,
    sealing::{SIGNING_KEYS, Sealed, SealingKeys},
    settings::JwtSettings,
    users::UserStoreError,
};

/// The PKCS#8 v1 DER of an Ed25519 key, up to its 32-byte seed (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Where a key is in its life (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Pending,
    Signing,
    Retired,
    /// Retired long enough that no token it signed is still valid.
    Expired,
    Withdrawn,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Signing => "signing",
            KeyState::Retired => "retired",
            KeyState::Expired => "expired",
            KeyState::Withdrawn => "withdrawn",
        }
    }

    fn published(self) -> bool {
        matches!(
            self,
            KeyState::Pending | KeyState::Signing | KeyState::Retired
        )
    }
}

/// A key as `tessera keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub generation: i64,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    /// When the next key took over, if it has.
    pub retired_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("the signing key store")]
    Store(#[from] UserStoreError),
    #[error("no managed key can sign now (all withdrawn, or none opens)")]
    NoSigningKey,
    #[error("a signing key: {0}")]
    Key(#[from] KeyError),
}

impl From<sea_orm::DbErr> for SigningKeyError {
    fn from(err: sea_orm::DbErr) -> Self {
        SigningKeyError::Store(err.into())
    }
}

pub struct ManagedKeys {
    db: DatabaseConnection,
    sealing: SealingKeys,
    clock: Clock,
    rotation: Option<Duration>,
    overlap: Duration,
    /// How long a retired key stays published.
    retired_for: Duration,
}

impl ManagedKeys {
    pub fn new(db: DatabaseConnection, settings: &JwtSettings, clock: Clock) -> Self {
        ManagedKeys {
            db,
            sealing: SealingKeys::new(
                SIGNING_KEYS,
                &settings.key_encryption_key,
                &settings.previous_key_encryption_keys,
            ),
            clock,
            rotation: settings.rotation,
            overlap: settings.rotation_overlap,
            retired_for: settings.access_ttl
                + Duration::from_secs(settings.leeway_secs + settings.jwks_max_age_secs),
        }
    }

    /// How often an instance re-reads the table: at least every minute, and
    /// often enough that a new key is known long before it signs.
    pub fn refresh_interval(&self) -> Duration {
        (self.overlap / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
    }

    /// Creates the first key when there is none and the next one when a
    /// rotation is due, then the keys to sign and verify with now.
    pub async fn maintain(&self) -> Result<KeySet, SigningKeyError> {
        let rows = self.rows().await?;
        let now = self.clock.now();
        let next = match rows.last() {
            // Nothing was ever signed: the first key signs at once.
            None => Some((1, now)),
            Some(latest) => self.rotation.and_then(|rotation| {
                let due = latest.signs_from + rotation - self.overlap;
                (latest.signs_from <= now && due <= now).then(|| {
                    let signs_from = (now + self.overlap).max(latest.signs_from + rotation);
                    (latest.generation + 1, signs_from)
                })
            }),
        };
        // The table is read again only when this instance (or a racing
        // one) may have added a key: not on every periodic refresh.
        let rows = match next {
            Some((generation, signs_from)) => {
                self.create(generation, signs_from).await?;
                self.rows().await?
            }
            None => rows,
        };
        self.key_set(&rows)
    }

    /// Schedules a new key (`tessera keys rotate`): signing after the
    /// overlap, or at once (`now`); `revoke_old` also withdraws every older
    /// key from the JWKS, so every token they signed is refused.
    pub async fn rotate(&self, now: bool, revoke_old: bool) -> Result<KeyInfo, SigningKeyError> {
        let at = self.clock.now();
        let signs_from = if now { at } else { at + self.overlap };
        let rows = self.rows().await?;
        let generation = match rows.last() {
            // A key already waiting to sign is moved up rather than doubled.
            Some(latest) if latest.signs_from > at && latest.withdrawn_at.is_none() => {
                if now {
                    signing_key::Entity::update_many()
                        .col_expr(signing_key::Column::SignsFrom, Expr::value(at))
                        .filter(signing_key::Column::Kid.eq(latest.kid.as_str()))
                        .exec(&self.db)
                        .await?;
                }
                latest.generation
            }
            Some(latest) => {
                self.create(latest.generation + 1, signs_from).await?;
                latest.generation + 1
            }
            // Nothing was ever signed: nothing to overlap with.
            None => {
                self.create(1, at).await?;
                1
            }
        };
        if revoke_old {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::WithdrawnAt, Expr::value(at))
                .filter(signing_key::Column::Generation.lt(generation))
                .filter(signing_key::Column::WithdrawnAt.is_null())
                .exec(&self.db)
                .await?;
        }
        self.list()
            .await?
            .into_iter()
            .find(|key| key.generation == generation)
            .ok_or(SigningKeyError::NoSigningKey)
    }

    /// Every key, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, SigningKeyError> {
        let rows = self.rows().await?;
        let now = self.clock.now();
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, row)| self.info(row, rows.get(i + 1), now))
            .collect())
    }

    /// The keys to use now: the signing key and every published one that
    /// opens (one that does not is logged and left out).
    fn key_set(&self, rows: &[signing_key::Model]) -> Result<KeySet, SigningKeyError> {
        let now = self.clock.now();
        let mut signing = None;
        let mut published = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let info = self.info(row, rows.get(i + 1), now);
            if !info.state.published() {
                continue;
            }
            let key = match self.open(row) {
                Ok(key) => key,
                Err(err) => {
                    tracing::error!(kid = %row.kid, error = %Causes(&err), "a managed signing key that no configured key-encryption key opens");
                    continue;
                }
            };
            if info.state == KeyState::Signing {
                signing = Some(key);
            } else {
                published.push(public_jwk(&key, "jwt.keys")?);
            }
        }
        let signing = signing.ok_or(SigningKeyError::NoSigningKey)?;
        Ok(KeySet::ed25519(signing, published, "jwt.keys")?)
    }

    fn info(
        &self,
        row: &signing_key::Model,
        next: Option<&signing_key::Model>,
        now: DateTime<Utc>,
    ) -> KeyInfo {
        let retired_at = next.map(|next| next.signs_from).filter(|at| *at <= now);
        let state = if row.withdrawn_at.is_some() {
            KeyState::Withdrawn
        } else if row.signs_from > now {
            KeyState::Pending
        } else {
            match retired_at {
                None => KeyState::Signing,
                Some(at) if at + self.retired_for > now => KeyState::Retired,
                Some(_) => KeyState::Expired,
            }
        };
        KeyInfo {
            kid: row.kid.clone(),
            generation: row.generation,
            state,
            created_at: row.created_at,
            signs_from: row.signs_from,
            retired_at,
            withdrawn_at: row.withdrawn_at,
        }
    }

    async fn rows(&self) -> Result<Vec<signing_key::Model>, SigningKeyError> {
        Ok(signing_key::Entity::find()
            .order_by_asc(signing_key::Column::Generation)
            .all(&self.db)
            .await?)
    }

    /// A new key of `generation`; when another instance created that
    /// generation first, theirs stands and this one is dropped.
    async fn create(
        &self,
        generation: i64,
        signs_from: DateTime<Utc>,
    ) -> Result<(), SigningKeyError> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let key = encoding_key(&seed);
        // The RFC 7638 thumbprint of the public key.
        let kid = public_jwk(&key, "jwt.keys")?
            .common
            .key_id
            .unwrap_or_default();
        let sealed = self.sealing.seal(kid.as_bytes(), &seed);
        let inserted = signing_key::Entity::insert(signing_key::ActiveModel {
            kid: Set(kid.clone()),
            generation: Set(generation),
            sealing_key_id: Set(sealed.key_id),
            sealed_key: Set(sealed.ciphertext),
            created_at: Set(self.clock.now()),
            signs_from: Set(signs_from),
            withdrawn_at: Set(None),
        })
        .exec_without_returning(&self.db)
        .await;
        match inserted.map_err(UserStoreError::from) {
            Ok(_) => {
                tracing::info!(%kid, generation, signs_from = %signs_from, "created a managed signing key");
                Ok(())
            }
            Err(UserStoreError::UsernameTaken) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    fn open(&self, row: &signing_key::Model) -> Result<EncodingKey, SigningKeyError> {
        let sealed = Sealed {
            key_id: row.sealing_key_id.clone(),
            ciphertext: row.sealed_key.clone(),
        };
        let unreadable = |reason: String| KeyError::Invalid {
            key: "jwt.key_encryption_key",
            reason,
        };
        let seed = self
            .sealing
            .open(row.kid.as_bytes(), &sealed)
            .map_err(|err| unreadable(err.to_string()))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| unreadable("a sealed key of the wrong length".into()))?;
        Ok(encoding_key(&seed))
    }
}

fn encoding_key(seed: &[u8; 32]) -> EncodingKey {
    let mut der = PKCS8_ED25519_PREFIX.to_vec();
    der.extend_from_slice(seed);
    EncodingKey::from_ed_der(&der)
}
