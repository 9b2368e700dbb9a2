//! Access tokens: short-lived JWTs that any service can check without storage.
//!
//! Keys come from the configuration, or from the database when managed
//! ([`super::signing_keys`]). One key signs; it and the other published
//! keys verify, picked by the header's `kid`. The algorithm is
//! pinned: a token whose header names any other algorithm, `none` included,
//! is refused before its signature is looked at.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    clock::Clock,
    secrets::lower_hex,
    sessions::SessionAuth,
    settings::{JwtAlgorithm, JwtSettings},
};

/// `typ` of our access tokens (RFC 9068), so no other JWT passes for one.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The refresh session the token was issued for.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// When the session's sign-in was completed (unix seconds). Absent from
    /// tokens of earlier versions, as the next two are.
    #[serde(default)]
    pub auth_time: i64,
    /// How (RFC 8176): `pwd`, with `otp` and `mfa` after a TOTP code, or
    /// `mfa` after a recovery code.
    #[serde(default)]
    pub amr: Vec<String>,
    /// RFC 9068 §2.2: the client the token was issued to (Tessera itself).
    #[serde(default)]
    pub client_id: String,
}

/// The `client_id` of every access token Tessera issues.
pub const CLIENT_ID: &str = "tessera";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("`{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidToken;

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

/// The keys tokens are signed and checked with at one moment: one signs;
/// it and the others published (retired keys still in use, a managed key
/// about to sign) verify, picked by the header's `kid`.
pub struct KeySet {
    signing_kid: String,
    signing_key: EncodingKey,
    verifying: Vec<VerifyingKey>,
    jwks: JwkSet,
}

impl KeySet {
    /// The keys of the configuration: the HS256 secret or the Ed25519 key
    /// files, current and previous.
    pub fn configured(settings: &JwtSettings) -> Result<KeySet, KeyError> {
        match settings.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = settings.secret.expose().as_bytes();
                let verifying = std::iter::once(secret)
                    .chain(
                        settings
                            .previous_secrets
                            .iter()
                            .map(|s| s.expose().as_bytes()),
                    )
                    .map(|secret| VerifyingKey {
                        kid: hmac_kid(secret),
                        key: DecodingKey::from_secret(secret),
                    })
                    .collect();
                // Symmetric keys are never published.
                Ok(KeySet {
                    signing_kid: hmac_kid(secret),
                    signing_key: EncodingKey::from_secret(secret),
                    verifying,
                    jwks: JwkSet::default(),
                })
            }
            JwtAlgorithm::EdDSA => {
                const KEY: &str = "jwt.ed25519_private_key_path";
                let path = settings
                    .ed25519_private_key_path
                    .as_ref()
                    .ok_or(KeyError::Invalid {
                        key: KEY,
                        reason: "required for EdDSA".into(),
                    })?;
                let signing = read_ed25519(path, KEY)?;
                let mut published = Vec::new();
                for path in &settings.previous_ed25519_private_key_paths {
                    let retired = read_ed25519(path, "jwt.previous_ed25519_private_key_paths")?;
                    published.push(public_jwk(
                        &retired,
                        "jwt.previous_ed25519_private_key_paths",
                    )?);
                }
                KeySet::ed25519(signing, published, KEY)
            }
        }
    }

    /// Ed25519 keys: `signing` signs and is published first, then `others`.
    pub fn ed25519(
        signing: EncodingKey,
        others: Vec<Jwk>,
        key: &'static str,
    ) -> Result<KeySet, KeyError> {
        let signing_jwk = public_jwk(&signing, key)?;
        let signing_kid = signing_jwk.common.key_id.clone().unwrap_or_default();
        let keys: Vec<Jwk> = std::iter::once(signing_jwk)
            .chain(
                others
                    .into_iter()
                    .filter(|jwk| jwk.common.key_id.as_deref() != Some(signing_kid.as_str())),
            )
            .collect();
        let verifying = keys
            .iter()
            .map(|jwk| {
                Ok(VerifyingKey {
                    kid: jwk.common.key_id.clone().unwrap_or_default(),
                    key: DecodingKey::from_jwk(jwk).map_err(|err| KeyError::Invalid {
                        key,
                        reason: err.to_string(),
                    })?,
                })
            })
            .collect::<Result<_, KeyError>>()?;
        Ok(KeySet {
            signing_kid,
            signing_key: signing,
            verifying,
            jwks: JwkSet { keys },
        })
    }
}

pub struct AccessTokens {
    algorithm: Algorithm,
    /// Swapped whole when managed keys rotate; read per token.
    keys: RwLock<Arc<KeySet>>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    clock: Clock,
}

impl AccessTokens {
    /// With the configured keys.
    pub fn from_settings(settings: &JwtSettings, clock: Clock) -> Result<Self, KeyError> {
        Ok(Self::new(settings, clock, KeySet::configured(settings)?))
    }

    pub fn new(settings: &JwtSettings, clock: Clock, keys: KeySet) -> Self {
        let algorithm = match settings.algorithm {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        AccessTokens {
            algorithm,
            keys: RwLock::new(Arc::new(keys)),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            // JWT times are whole seconds.
            ttl: Duration::from_secs(settings.access_ttl.as_secs_f64().ceil() as u64),
            clock,
        }
    }

    /// From now on, sign and verify with `keys` (a managed rotation).
    pub fn replace_keys(&self, keys: KeySet) {
        *self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
    }

    fn keys(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The public keys for `/.well-known/jwks.json` (none for HS256).
    pub fn jwks(&self) -> JwkSet {
        self.keys().jwks.clone()
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        auth: SessionAuth,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = self.clock.now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: Uuid::now_v7(),
            auth_time: auth.auth_time,
            amr: auth
                .method
                .amr()
                .iter()
                .map(|amr| (*amr).to_owned())
                .collect(),
            client_id: CLIENT_ID.into(),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        let keys = self.keys();
        header.kid = Some(keys.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &keys.signing_key)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken)?;
        // RFC 7515 §4.1.11: `crit` names extensions the verifier must
        // understand, and we understand none.
        if header.alg != self.algorithm
            || header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE)
            || header.crit.is_some()
        {
            return Err(InvalidToken);
        }
        let kid = header.kid.ok_or(InvalidToken)?;
        let keys = self.keys();
        let key = keys
            .verifying
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(InvalidToken)?;
        jsonwebtoken::decode::<AccessClaims>(token, &key.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| InvalidToken)
    }
}

/// A key id that names an HMAC secret without revealing it.
fn hmac_kid(secret: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"tessera-hs256-kid:")
        .chain_update(secret)
        .finalize();
    lower_hex(&digest[..8])
}

fn read_ed25519(path: &std::path::Path, key: &'static str) -> Result<EncodingKey, KeyError> {
    let pem = std::fs::read(path).map_err(|err| KeyError::Invalid {
        key,
        reason: format!("reading {}: {err}", path.display()),
    })?;
    EncodingKey::from_ed_pem(&pem).map_err(|err| KeyError::Invalid {
        key,
        reason: format!("{}: not a PKCS#8 Ed25519 PEM key ({err})", path.display()),
    })
}

/// The public half as a JWK whose `kid` is its RFC 7638 thumbprint.
pub(crate) fn public_jwk(signing: &EncodingKey, key: &'static str) -> Result<Jwk, KeyError> {
    let invalid = |err: jsonwebtoken::errors::Error| KeyError::Invalid {
        key,
        reason: err.to_string(),
    };
    let mut jwk = Jwk::from_encoding_key(signing, Algorithm::EdDSA).map_err(invalid)?;
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256).map_err(invalid)?);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::SignInMethod;

    const AUTH: SessionAuth = SessionAuth {
        method: SignInMethod::Password,
        auth_time: 0,
    };
    use crate::settings::Secret;

    fn settings(secret: &str, previous: &[&str]) -> JwtSettings {
        let to_secret = |s: &str| serde_json::from_value::<Secret>(serde_json::json!(s)).unwrap();
        JwtSettings {
            algorithm: JwtAlgorithm::HS256,
            secret: to_secret(secret),
            previous_secrets: previous.iter().map(|s| to_secret(s)).collect(),
            ed25519_private_key_path: None,
            previous_ed25519_private_key_paths: vec![],
            issuer: "tessera".into(),
            audience: "tessera".into(),
            access_ttl: Duration::from_secs(900),
            leeway_secs: 0,
            keys: crate::settings::JwtKeys::Configured,
            key_encryption_key: to_secret("unused"),
            previous_key_encryption_keys: vec![],
            rotation: None,
            rotation_overlap: Duration::from_secs(86_400),
            jwks_max_age_secs: 300,
        }
    }

    fn part(token: &str, index: usize) -> serde_json::Value {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let raw = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap()
    }

    #[test]
    fn issued_tokens_carry_the_contract_claims_and_header() {
        let tokens =
            AccessTokens::from_settings(&settings("one-secret", &[]), Clock::system()).unwrap();
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let token = tokens.issue(user, session, AUTH).unwrap();
        let header = part(&token, 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "at+jwt");
        assert!(header["kid"].is_string());
        let claims = part(&token, 1);
        for claim in ["iss", "aud", "sub", "sid", "iat", "exp", "jti"] {
            assert!(claims.get(claim).is_some(), "{claim}");
        }
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );
        let verified = tokens.verify(&token).unwrap();
        assert_eq!((verified.sub, verified.sid), (user, session));
    }

    #[test]
    fn the_kid_does_not_reveal_the_secret() {
        let kid = hmac_kid(b"one-secret");
        assert_eq!(kid.len(), 16);
        assert!(!kid.contains("one-secret"));
    }

    #[test]
    fn retired_secrets_verify_but_do_not_sign() {
        let old =
            AccessTokens::from_settings(&settings("old-secret", &[]), Clock::system()).unwrap();
        let rotated =
            AccessTokens::from_settings(&settings("new-secret", &["old-secret"]), Clock::system())
                .unwrap();
        let old_token = old.issue(Uuid::now_v7(), Uuid::now_v7(), AUTH).unwrap();
        assert!(rotated.verify(&old_token).is_ok());
        let new_token = rotated.issue(Uuid::now_v7(), Uuid::now_v7(), AUTH).unwrap();
        assert!(old.verify(&new_token).is_err());
        let retired =
            AccessTokens::from_settings(&settings("new-secret", &[]), Clock::system()).unwrap();
        assert!(retired.verify(&old_token).is_err());
    }

    #[test]
    fn tokens_of_another_issuer_or_audience_fail() {
        let tokens = AccessTokens::from_settings(&settings("s", &[]), Clock::system()).unwrap();
        let mut other = settings("s", &[]);
        other.audience = "someone-else".into();
        let foreign = AccessTokens::from_settings(&other, Clock::system()).unwrap();
        assert!(
            tokens
                .verify(&foreign.issue(Uuid::now_v7(), Uuid::now_v7(), AUTH).unwrap())
                .is_err()
        );
        let mut other = settings("s", &[]);
        other.issuer = "evil".into();
        let foreign = AccessTokens::from_settings(&other, Clock::system()).unwrap();
        assert!(
            tokens
                .verify(&foreign.issue(Uuid::now_v7(), Uuid::now_v7(), AUTH).unwrap())
                .is_err()
        );
    }

    #[test]
    fn garbage_never_verifies() {
        let tokens = AccessTokens::from_settings(&settings("s", &[]), Clock::system()).unwrap();
        for token in ["", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "....", "🦀.🦀.🦀"] {
            assert!(tokens.verify(token).is_err(), "{token}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics_or_verifies(raw in "\\PC{0,200}") {
            let tokens = AccessTokens::from_settings(&settings("s", &[]), Clock::system()).unwrap();
            proptest::prop_assert!(tokens.verify(&raw).is_err());
        }

        #[test]
        fn forged_headers_never_verify(header in "\\PC{0,120}") {
            use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
            let tokens = AccessTokens::from_settings(&settings("s", &[]), Clock::system()).unwrap();
            let real = tokens.issue(Uuid::now_v7(), Uuid::now_v7(), AUTH).unwrap();
            let (_, rest) = real.split_once('.').unwrap();
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.as_bytes()));
            proptest::prop_assert!(tokens.verify(&forged).is_err());
        }
    }
}
