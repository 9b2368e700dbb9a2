//! Recovery codes: 80 random bits as 16 Crockford base32 characters, shown
//! lower-case as `xxxx-xxxx-xxxx-xxxx`; typed back case-insensitively with
//! `-` and spaces ignored (and Crockford's look-alikes: `i`/`l` as `1`, `o`
//! as `0`). Stored only as HMAC-SHA256 under a key derived from
//! `mfa.encryption_key`, each spent at its first use.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::secrets::lower_hex;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHARS: usize = 16;
pub const CODES_PER_SET: usize = 10;

/// A recovery code in its canonical form (16 upper-case Crockford
/// characters); never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 10];
        rand::rng().fill_bytes(&mut bytes);
        // 80 bits, five at a time, most significant first.
        let bits = bytes
            .iter()
            .fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte));
        let code = (0..CHARS)
            .rev()
            .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize] as char)
            .collect();
        RecoveryCode(code)
    }

    /// A set for a user, shown once.
    pub fn generate_set() -> Vec<RecoveryCode> {
        (0..CODES_PER_SET)
            .map(|_| RecoveryCode::generate())
            .collect()
    }

    /// A code as a user types it; `None` unless it is 16 Crockford characters.
    pub fn parse(typed: &str) -> Option<Self> {
        let mut code = String::with_capacity(CHARS);
        for c in typed.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                other => other,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return None;
            }
            code.push(c);
        }
        (code.len() == CHARS).then_some(RecoveryCode(code))
    }

    /// `xxxx-xxxx-xxxx-xxxx`, lower case.
    pub fn display(&self) -> String {
        let lower = self.0.to_ascii_lowercase();
        [&lower[0..4], &lower[4..8], &lower[8..12], &lower[12..16]].join("-")
    }

    /// The stored form under one key (lower-case hex).
    pub fn digest(&self, key: &[u8; 32]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(self.0.as_bytes());
        lower_hex(&mac.finalize().into_bytes())
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_look_as_the_contract_says_and_read_back_however_typed() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 19);
        assert!(
            shown
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_eq!(shown.matches('-').count(), 3);
        assert_eq!(RecoveryCode::parse(&shown), Some(code.clone()));
        let typed = format!(" {} ", shown.to_uppercase().replace('-', " "));
        assert_eq!(RecoveryCode::parse(&typed), Some(code.clone()));
        assert_eq!(RecoveryCode::parse(&shown.replace('-', "")), Some(code));
    }

    #[test]
    fn look_alikes_read_as_crockford_says_and_anything_else_is_refused() {
        assert_eq!(
            RecoveryCode::parse("oooo-iiii-llll-0000").unwrap().0,
            "0000111111110000"
        );
        for bad in [
            "",
            "abcd-efgh-jkmn-pqr",
            "abcd-efgh-jkmn-pqrst",
            "abcd-efgh-jkmn-pqru",
            "abcd-efgh-jkmn-pqé1",
            "123456",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_set_is_ten_distinct_codes_of_80_bits() {
        let set = RecoveryCode::generate_set();
        assert_eq!(set.len(), 10);
        let distinct: std::collections::HashSet<_> =
            set.iter().map(|code| code.0.clone()).collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn digests_depend_on_the_key_and_debug_hides_the_code() {
        let code = RecoveryCode::generate();
        assert_ne!(code.digest(&[1; 32]), code.digest(&[2; 32]));
        assert_eq!(code.digest(&[1; 32]).len(), 64);
        assert!(!format!("{code:?}").contains(&code.0));
    }
}
