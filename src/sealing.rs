//! Secrets sealed at rest (TOTP secrets, managed signing keys):
//! XChaCha20-Poly1305 with a random 192-bit nonce, the key derived from a
//! configured secret with HKDF-SHA256 under an info string of its own per
//! purpose, and associated data that binds each ciphertext to its row (the
//! user id, the key id), so a ciphertext copied to another row does not
//! open. Each sealed value names the key that sealed it; retired keys still
//! open what they sealed.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{secrets::lower_hex, settings::Secret};

const NONCE_BYTES: usize = 24;

/// What a sealing key is for: its HKDF info, and what names its key ids.
#[derive(Debug, Clone, Copy)]
pub struct Purpose {
    info: &'static [u8],
    key_id_info: &'static [u8],
}

/// TOTP secrets, under `mfa.encryption_key`.
pub const MFA_SECRETS: Purpose = Purpose {
    info: b"tessera/mfa/v1",
    key_id_info: b"tessera/mfa/key-id/v1",
};

/// Managed signing keys, under `jwt.key_encryption_key`.
pub const SIGNING_KEYS: Purpose = Purpose {
    info: b"tessera/jwt-keys/v1",
    key_id_info: b"tessera/jwt-keys/key-id/v1",
};

/// A value as stored: which key sealed it, and nonce ‖ ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// Base64 (standard, unpadded) of the nonce followed by the ciphertext.
    pub ciphertext: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no configured key has the id `{0}`")]
    UnknownKey(String),
    #[error("the sealed value does not open (wrong key, row or corrupted)")]
    Corrupt,
}

struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The current key and the retired ones that still open.
pub struct SealingKeys {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl SealingKeys {
    pub fn new(purpose: Purpose, current: &Secret, previous: &[Secret]) -> Self {
        SealingKeys {
            current: SealingKey::derive(purpose, current),
            previous: previous
                .iter()
                .map(|secret| SealingKey::derive(purpose, secret))
                .collect(),
        }
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for the row `aad` names.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
        let mut stored = nonce.to_vec();
        stored.extend(sealed);
        Sealed {
            key_id: self.current.id.clone(),
            ciphertext: STANDARD_NO_PAD.encode(stored),
        }
    }

    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        let stored = STANDARD_NO_PAD
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Corrupt)?;
        if stored.len() < NONCE_BYTES {
            return Err(OpenError::Corrupt);
        }
        let (nonce, ciphertext) = stored.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Corrupt)?;
        key.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Corrupt)
    }
}

/// HKDF-SHA256 of `secret` under `info`: 32 bytes.
pub fn derive_key(secret: &Secret, info: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, secret.expose().as_bytes())
        .expand(info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

impl SealingKey {
    fn derive(purpose: Purpose, secret: &Secret) -> Self {
        let key = derive_key(secret, purpose.info);
        // Names the key without revealing it: a hash of the derived key.
        let id = lower_hex(&Sha256::digest([purpose.key_id_info, &key].concat())[..6]);
        SealingKey {
            id,
            cipher: XChaCha20Poly1305::new((&key).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use uuid::Uuid;

    fn keys(current: &str, previous: &[&str]) -> SealingKeys {
        let previous: Vec<Secret> = previous.iter().map(|key| key.parse().unwrap()).collect();
        SealingKeys::new(MFA_SECRETS, &current.parse().unwrap(), &previous)
    }

    #[test]
    fn a_sealed_value_opens_for_its_user_only() {
        let keys = keys("one key", &[]);
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = keys.seal(alice.as_bytes(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(
            keys.open(alice.as_bytes(), &sealed).unwrap(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(!sealed.ciphertext.contains("JBSWY3DP"));
        assert!(matches!(
            keys.open(bob.as_bytes(), &sealed),
            Err(OpenError::Corrupt)
        ));
        // A fresh nonce each time.
        assert_ne!(
            keys.seal(alice.as_bytes(), b"x").ciphertext,
            keys.seal(alice.as_bytes(), b"x").ciphertext
        );
    }

    #[test]
    fn retired_keys_still_open_and_unknown_ones_are_named() {
        let user = Uuid::now_v7();
        let old = keys("old key", &[]).seal(user.as_bytes(), b"secret");
        let rotated = keys("new key", &["old key"]);
        assert_eq!(rotated.open(user.as_bytes(), &old).unwrap(), b"secret");
        assert_ne!(rotated.current_key_id(), old.key_id);
        let forgotten = keys("new key", &[]);
        assert!(matches!(
            forgotten.open(user.as_bytes(), &old),
            Err(OpenError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let keys = keys("one key", &[]);
        let user = Uuid::now_v7();
        let mut sealed = keys.seal(user.as_bytes(), b"secret");
        let mut bytes = STANDARD_NO_PAD.decode(&sealed.ciphertext).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        sealed.ciphertext = STANDARD_NO_PAD.encode(bytes);
        assert!(matches!(
            keys.open(user.as_bytes(), &sealed),
            Err(OpenError::Corrupt)
        ));
        sealed.ciphertext = "short".into();
        assert!(matches!(
            keys.open(user.as_bytes(), &sealed),
            Err(OpenError::Corrupt)
        ));
    }
}

#[cfg(test)]
mod purposes {
    use super::*;

    #[test]
    fn one_secret_seals_apart_for_each_purpose() {
        let secret: Secret = "one configured secret".parse().unwrap();
        let mfa = SealingKeys::new(MFA_SECRETS, &secret, &[]);
        let jwt = SealingKeys::new(SIGNING_KEYS, &secret, &[]);
        assert_ne!(mfa.current_key_id(), jwt.current_key_id());
        let mut sealed = mfa.seal(b"row", b"secret");
        sealed.key_id = jwt.current_key_id().to_owned();
        assert!(matches!(jwt.open(b"row", &sealed), Err(OpenError::Corrupt)));
    }
}
