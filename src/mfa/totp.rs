//! RFC 6238 TOTP as the contract fixes it: SHA-1, 6 digits, 30 s steps, a
//! 160-bit secret shown as unpadded upper-case base32. The HOTP arithmetic is
//! `totp-rs`'s; which steps are tried, and replay, are ours.

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

const SECRET_BYTES: usize = 20;
const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;

/// A TOTP secret; never printed by `Debug`.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// A secret as opened from storage; `None` unless it is 160 bits.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() == SECRET_BYTES).then_some(TotpSecret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, upper case, unpadded: 32 characters.
    pub fn base32(&self) -> String {
        self.totp().get_secret_base32()
    }

    /// `otpauth://totp/{issuer}:{username}?secret=…&issuer={issuer}&…`, the
    /// issuer and label percent-encoded.
    pub fn otpauth_uri(&self, issuer: &str, username: &str) -> String {
        let issuer = percent_encoded(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            percent_encoded(username),
            self.base32(),
        )
    }

    /// The step of `unix_secs`.
    pub fn step_at(unix_secs: u64) -> u64 {
        unix_secs / STEP_SECS
    }

    /// The code of one step.
    pub fn code_at_step(&self, step: u64) -> String {
        self.totp().generate(step * STEP_SECS)
    }

    /// The step among T−1, T and T+1 whose code `code` is, if it is later
    /// than `after` (the last step accepted for the user): replays and
    /// older codes never match. Every candidate is compared in constant time.
    pub fn matching_step(&self, code: &str, now_unix_secs: u64, after: u64) -> Option<u64> {
        let now = Self::step_at(now_unix_secs);
        let mut matched = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            let equal: bool = self
                .code_at_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if equal && step > after {
                matched = Some(step);
            }
        }
        matched
    }

    fn totp(&self) -> TOTP {
        // Only fails for secrets under 128 bits or a digit count outside
        // 6–8: neither can be built here.
        TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP_SECS, self.0.clone())
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// RFC 3986: everything but the unreserved characters is percent-encoded.
fn percent_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the 8-digit vectors' last 6 digits).
    #[test]
    fn the_rfc_6238_test_vectors_hold() {
        let secret = TotpSecret(b"12345678901234567890".to_vec());
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(
                secret.code_at_step(TotpSecret::step_at(time)),
                code,
                "{time}"
            );
        }
    }

    #[test]
    fn a_code_matches_one_step_either_side_and_only_after_the_last_accepted() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_000;
        let step = TotpSecret::step_at(now);
        for offset in [-1i64, 0, 1] {
            let code = secret.code_at_step((step as i64 + offset) as u64);
            assert_eq!(
                secret.matching_step(&code, now, 0),
                Some((step as i64 + offset) as u64)
            );
        }
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step - 2), now, 0),
            None
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step + 2), now, 0),
            None
        );
        // Replay: the step already accepted, or an earlier one, never again.
        let code = secret.code_at_step(step);
        assert_eq!(secret.matching_step(&code, now, step), None);
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step - 1), now, step),
            None
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step + 1), now, step),
            Some(step + 1)
        );
        assert_eq!(secret.matching_step("12345", now, 0), None);
    }

    #[test]
    fn the_secret_shows_as_32_base32_characters_and_the_uri_is_encoded() {
        let secret = TotpSecret::generate();
        let base32 = secret.base32();
        assert_eq!(base32.len(), 32);
        assert!(
            base32
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        assert_eq!(
            secret.otpauth_uri("Acme Co", "alice"),
            format!(
                "otpauth://totp/Acme%20Co:alice?secret={base32}&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
            )
        );
        assert!(!format!("{secret:?}").contains(&base32));
    }
}
