//! Secrets Tessera hands out ("Secrets Tessera hands out" in the contract):
//! a kind prefix and base64url of 32 random bytes, shown once and stored only
//! as their SHA-256, by which they are looked up. A secret of one kind never
//! parses as another, so it is unknown wherever another kind is expected.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

const RANDOM_BYTES: usize = 32;

/// One kind of handed-out secret, told apart by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretKind {
    prefix: &'static str,
}

/// Operator-issued password reset tokens.
pub const RESET_TOKEN: SecretKind = SecretKind { prefix: "tsp_" };
/// The back office's admin tokens.
pub const ADMIN_TOKEN: SecretKind = SecretKind { prefix: "tsa_" };
/// The challenge of a two-step sign-in.
pub const MFA_TOKEN: SecretKind = SecretKind { prefix: "tsm_" };

/// A secret just generated: the text to show once, and what to store.
pub struct Issued {
    pub text: Revealed,
    pub digest: SecretDigest,
}

/// A secret's text; never printed by `Debug`.
pub struct Revealed(String);

/// The SHA-256 of a secret, as stored and looked up (lower-case hex).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest(String);

/// Lower-case hex: how digests, MACs and key ids derived from secrets are
/// written wherever they are stored or named.
pub fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

impl SecretKind {
    pub fn generate(self) -> Issued {
        let mut bytes = [0u8; RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let text = format!("{}{}", self.prefix, URL_SAFE_NO_PAD.encode(bytes));
        Issued {
            digest: SecretDigest::of(&text),
            text: Revealed(text),
        }
    }

    /// The digest of a presented secret of this kind; `None` for anything
    /// that is not one (another kind's prefix, wrong length, bad encoding),
    /// which is then answered as unknown.
    pub fn parse(self, presented: &str) -> Option<SecretDigest> {
        let encoded = presented.strip_prefix(self.prefix)?;
        let decoded = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        (decoded.len() == RANDOM_BYTES)
            .then(|| SecretDigest::of(&format!("{}{encoded}", self.prefix)))
    }
}

impl SecretDigest {
    fn of(text: &str) -> Self {
        let digest = Sha256::digest(text.as_bytes());
        SecretDigest(lower_hex(&digest))
    }

    /// A digest read back from storage.
    pub fn from_stored(hex: String) -> Self {
        SecretDigest(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time: a lookup by digest found `stored`; this confirms it
    /// without a timing signal about how much of it matched.
    pub fn matches(&self, stored: &SecretDigest) -> bool {
        self.0.as_bytes().ct_eq(stored.0.as_bytes()).into()
    }
}

impl Revealed {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Revealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Revealed([redacted])")
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_has_the_contract_format_and_parses_back_to_its_digest() {
        let issued = RESET_TOKEN.generate();
        let text = issued.text.expose();
        assert!(text.starts_with("tsp_"));
        // base64url of 32 bytes, unpadded.
        assert_eq!(text.len(), 4 + 43);
        assert!(
            text[4..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let parsed = RESET_TOKEN.parse(text).unwrap();
        assert!(parsed.matches(&issued.digest));
        assert_eq!(parsed.as_str().len(), 64);
        assert_ne!(RESET_TOKEN.generate().text.expose(), text);
    }

    #[test]
    fn other_kinds_and_malformed_text_do_not_parse() {
        let issued = RESET_TOKEN.generate();
        let body = &issued.text.expose()[4..];
        let other = SecretKind { prefix: "tsa_" };
        assert!(other.parse(issued.text.expose()).is_none());
        assert!(RESET_TOKEN.parse(&format!("tsa_{body}")).is_none());
        assert!(RESET_TOKEN.parse(&format!("tsp_{}", &body[1..])).is_none());
        assert!(RESET_TOKEN.parse(&format!("tsp_{body}=")).is_none());
        assert!(RESET_TOKEN.parse("tsp_").is_none());
        assert!(RESET_TOKEN.parse("").is_none());
        assert!(RESET_TOKEN.parse(&format!("tsp_{body}\u{e9}")).is_none());
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(lower_hex(&[]), "");
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let issued = RESET_TOKEN.generate();
        assert!(!format!("{:?}", issued.text).contains("tsp_"));
        assert!(!format!("{:?}", issued.digest).contains(issued.digest.as_str()));
    }
}
