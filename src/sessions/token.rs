//! Opaque refresh tokens derived from a server key, so Redis never holds a
//! usable token: it keeps only each session's generation counter.
//!
//! `tsr_` + base64url(user id ‖ session id ‖ generation ‖ HMAC-SHA256(key, all three)).
//! The 256-bit MAC is what cannot be guessed; the same (session, generation)
//! always gives the same token, which is how concurrent refreshes within the
//! grace window converge on one successor. The user id names the Redis hash
//! slot the session lives in (see `sessions`), so a token finds its session on
//! a Redis Cluster without a lookup.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::settings::SessionSettings;

const PREFIX: &str = "tsr_";
const MAC_DOMAIN: &[u8] = b"tessera.refresh.v2";
const MAC_LEN: usize = 32;
const RAW_LEN: usize = 16 + 16 + 8 + MAC_LEN;
const ENCODED_LEN: usize = match base64::encoded_len(RAW_LEN, false) {
    Some(len) => len,
    None => panic!("a refresh token's length fits a usize"),
};

type HmacSha256 = Hmac<Sha256>;

/// A refresh token whose MAC checked out: it was issued by us for this
/// session and generation (whether that generation is still current is the
/// session store's question).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshToken {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub generation: u64,
}

#[derive(Clone)]
pub struct RefreshTokenKeys {
    /// The first key issues; every key verifies (rotation without sign-outs).
    /// Each is keyed and fed the domain once, here: a token's MAC starts from
    /// a copy instead of hashing the key's pads anew.
    keys: Vec<HmacSha256>,
}

impl RefreshTokenKeys {
    pub fn from_settings(settings: &SessionSettings) -> Self {
        let keys = std::iter::once(&settings.refresh_token_key)
            .chain(&settings.previous_refresh_token_keys)
            .map(|key| keyed(key.expose().as_bytes()))
            .collect();
        RefreshTokenKeys { keys }
    }

    pub fn issue(&self, token: RefreshToken) -> String {
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.extend_from_slice(token.user_id.as_bytes());
        raw.extend_from_slice(token.session_id.as_bytes());
        raw.extend_from_slice(&token.generation.to_be_bytes());
        raw.extend_from_slice(&mac(&self.keys[0], &raw).finalize().into_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Parses and authenticates a presented token; anything else is `None`,
    /// with no detail about why.
    pub fn verify(&self, presented: &str) -> Option<RefreshToken> {
        let encoded = presented.strip_prefix(PREFIX)?;
        // Check the length before decoding: bounded work for any input.
        if encoded.len() != ENCODED_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN];
        if URL_SAFE_NO_PAD.decode_slice(encoded, &mut raw).ok()? != RAW_LEN {
            return None;
        }
        let (body, tag) = raw.split_at(RAW_LEN - MAC_LEN);
        // `verify_slice` compares in constant time.
        self.keys
            .iter()
            .any(|key| mac(key, body).verify_slice(tag).is_ok())
            .then(|| RefreshToken {
                user_id: Uuid::from_slice(&body[..16]).expect("16 bytes"),
                session_id: Uuid::from_slice(&body[16..32]).expect("16 bytes"),
                generation: u64::from_be_bytes(body[32..40].try_into().expect("8 bytes")),
            })
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(MAC_DOMAIN);
    mac
}

fn mac(key: &HmacSha256, body: &[u8]) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(keys: &[&str]) -> RefreshTokenKeys {
        RefreshTokenKeys {
            keys: keys.iter().map(|k| keyed(k.as_bytes())).collect(),
        }
    }

    fn token(generation: u64) -> RefreshToken {
        RefreshToken {
            user_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            generation,
        }
    }

    #[test]
    fn issued_tokens_verify_to_their_session_and_generation() {
        let keys = keys(&["k"]);
        let issued = token(7);
        let text = keys.issue(issued);
        assert!(text.starts_with("tsr_") && text.len() == 4 + 96, "{text}");
        assert_eq!(keys.verify(&text), Some(issued));
    }

    #[test]
    fn the_same_generation_gives_the_same_token() {
        let keys = keys(&["k"]);
        let issued = token(3);
        assert_eq!(keys.issue(issued), keys.issue(issued));
        assert_ne!(
            keys.issue(issued),
            keys.issue(RefreshToken {
                generation: 4,
                ..issued
            })
        );
    }

    #[test]
    fn tampered_tokens_and_garbage_fail() {
        let keys = keys(&["k"]);
        let text = keys.issue(token(1));
        let mut bytes = text.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(keys.verify(std::str::from_utf8(&bytes).unwrap()), None);
        for garbage in [
            "",
            "tsr_",
            "tsr_!!!",
            &text[..text.len() - 1],
            &format!("{text}A"),
            &text[4..],
        ] {
            assert_eq!(keys.verify(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn retired_keys_verify_and_unknown_keys_do_not() {
        let old = keys(&["old"]);
        let rotated = keys(&["new", "old"]);
        let text = old.issue(token(1));
        assert!(rotated.verify(&text).is_some());
        assert!(keys(&["new"]).verify(&text).is_none());
        assert!(old.verify(&rotated.issue(token(1))).is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics_or_verifies(raw in "\\PC{0,140}") {
            proptest::prop_assert_eq!(keys(&["k"]).verify(&raw), None);
            let prefixed = format!("tsr_{raw}");
            proptest::prop_assert_eq!(keys(&["k"]).verify(&prefixed), None);
        }

        #[test]
        fn issued_tokens_round_trip(user in proptest::prelude::any::<u128>(), id in proptest::prelude::any::<u128>(), generation in proptest::prelude::any::<u64>()) {
            let keys = keys(&["k"]);
            let token = RefreshToken { user_id: Uuid::from_u128(user), session_id: Uuid::from_u128(id), generation };
            proptest::prop_assert_eq!(keys.verify(&keys.issue(token)), Some(token));
        }

        #[test]
        fn any_single_change_is_rejected(generation in 0u64..1000, at in 4usize..100, replacement in "[A-Za-z0-9_-]") {
            let keys = keys(&["k"]);
            let text = keys.issue(RefreshToken { user_id: Uuid::from_u128(3), session_id: Uuid::from_u128(7), generation });
            let mut changed = text.clone();
            changed.replace_range(at..at + 1, &replacement);
            if changed != text {
                // The last character carries padding bits that decoding may ignore.
                let decoded_equal = URL_SAFE_NO_PAD.decode(&changed[4..]).ok() == URL_SAFE_NO_PAD.decode(&text[4..]).ok();
                proptest::prop_assert!(decoded_equal || keys.verify(&changed).is_none());
            }
        }
    }
}
