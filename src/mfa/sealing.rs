//! TOTP secrets sealed at rest: XChaCha20-Poly1305 with a random 192-bit
//! nonce, the key derived from `mfa.encryption_key` with HKDF-SHA256 (info
//! `tessera/mfa/v1`), the user id as associated data, so a ciphertext copied
//! to another user's row does not open. Each sealed value names the key that
//! sealed it; retired keys still open what they sealed.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    secrets::lower_hex,
    settings::{MfaSettings, Secret},
};

const NONCE_BYTES: usize = 24;

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
    #[error("the sealed value does not open (wrong key, user or corrupted)")]
    Corrupt,
}

struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
    /// Keys recovery-code hashes (a separate HKDF output of the same secret).
    code_mac_key: [u8; 32],
}

/// The current key and the retired ones that still open.
pub struct SealingKeys {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl SealingKeys {
    pub fn new(settings: &MfaSettings) -> Self {
        SealingKeys {
            current: SealingKey::derive(&settings.encryption_key),
            previous: settings
                .previous_encryption_keys
                .iter()
                .map(SealingKey::derive)
                .collect(),
        }
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    pub fn seal(&self, user_id: Uuid, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: user_id.as_bytes(),
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

    pub fn open(&self, user_id: Uuid, sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
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
                    aad: user_id.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Corrupt)
    }

    /// The key new recovery codes are hashed under.
    pub fn current_code_key(&self) -> &[u8; 32] {
        &self.current.code_mac_key
    }

    /// The keys recovery codes are hashed under, the current one first
    /// (codes issued before a rotation still count).
    pub fn code_mac_keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|key| &key.code_mac_key)
    }
}

impl SealingKey {
    fn derive(secret: &Secret) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, secret.expose().as_bytes());
        let mut key = [0u8; 32];
        hkdf.expand(b"tessera/mfa/v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut code_mac_key = [0u8; 32];
        hkdf.expand(b"tessera/mfa/recovery-codes/v1", &mut code_mac_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        // Names the key without revealing it: a hash of the derived key.
        let id =
            lower_hex(&Sha256::digest([b"tessera/mfa/key-id/v1".as_slice(), &key].concat())[..6]);
        SealingKey {
            id,
            cipher: XChaCha20Poly1305::new((&key).into()),
            code_mac_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &str, previous: &[&str]) -> SealingKeys {
        SealingKeys::new(&MfaSettings {
            encryption_key: current.parse().unwrap(),
            previous_encryption_keys: previous.iter().map(|key| key.parse().unwrap()).collect(),
            issuer: "Tessera".into(),
            challenge_ttl: std::time::Duration::from_secs(300),
            challenge_max_attempts: std::num::NonZeroU32::new(5).unwrap(),
        })
    }

    #[test]
    fn a_sealed_value_opens_for_its_user_only() {
        let keys = keys("one key", &[]);
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = keys.seal(alice, b"JBSWY3DPEHPK3PXP");
        assert_eq!(keys.open(alice, &sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(!sealed.ciphertext.contains("JBSWY3DP"));
        assert!(matches!(keys.open(bob, &sealed), Err(OpenError::Corrupt)));
        // A fresh nonce each time.
        assert_ne!(
            keys.seal(alice, b"x").ciphertext,
            keys.seal(alice, b"x").ciphertext
        );
    }

    #[test]
    fn retired_keys_still_open_and_unknown_ones_are_named() {
        let user = Uuid::now_v7();
        let old = keys("old key", &[]).seal(user, b"secret");
        let rotated = keys("new key", &["old key"]);
        assert_eq!(rotated.open(user, &old).unwrap(), b"secret");
        assert_ne!(rotated.current_key_id(), old.key_id);
        let forgotten = keys("new key", &[]);
        assert!(matches!(
            forgotten.open(user, &old),
            Err(OpenError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let keys = keys("one key", &[]);
        let user = Uuid::now_v7();
        let mut sealed = keys.seal(user, b"secret");
        let mut bytes = STANDARD_NO_PAD.decode(&sealed.ciphertext).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        sealed.ciphertext = STANDARD_NO_PAD.encode(bytes);
        assert!(matches!(keys.open(user, &sealed), Err(OpenError::Corrupt)));
        sealed.ciphertext = "short".into();
        assert!(matches!(keys.open(user, &sealed), Err(OpenError::Corrupt)));
    }
}
