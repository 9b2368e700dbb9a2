//! The second factor: TOTP secrets, recovery codes, how a presented code is
//! told apart, and the sealing of secrets at rest. Storage is
//! [`store::MfaStore`]; the flows that use them are in `crate::flows::mfa`.

mod challenges;
mod recovery;
pub mod store;
mod totp;

pub use challenges::{Challenge, ChallengeStore};
pub use recovery::{CODES_PER_SET, RecoveryCode};
pub use store::{Factor, FactorSummary, MfaStore};
pub use totp::TotpSecret;

use crate::{
    sealing::{MFA_SECRETS, SealingKeys, derive_key},
    settings::Settings,
};

pub use crate::sealing::{OpenError, Sealed};

/// The second factor's settings, as the flows use them.
pub struct MfaPolicy {
    /// Seal TOTP secrets (the user id as associated data).
    pub keys: SealingKeys,
    /// Key recovery-code hashes, the current key first: another HKDF output
    /// of each `mfa.encryption_key` (codes issued before a rotation still count).
    code_keys: Vec<[u8; 32]>,
    pub issuer: String,
    /// Wrong codes in a row that lock the factor.
    pub max_consecutive_failures: u32,
}

impl MfaPolicy {
    pub fn new(settings: &Settings) -> Self {
        let mfa = &settings.mfa;
        MfaPolicy {
            keys: SealingKeys::new(
                MFA_SECRETS,
                &mfa.encryption_key,
                &mfa.previous_encryption_keys,
            ),
            code_keys: std::iter::once(&mfa.encryption_key)
                .chain(&mfa.previous_encryption_keys)
                .map(|secret| derive_key(secret, b"tessera/mfa/recovery-codes/v1"))
                .collect(),
            issuer: mfa.issuer.clone(),
            max_consecutive_failures: settings.rate_limit.mfa_max_consecutive_failures.get(),
        }
    }

    /// The key new recovery codes are hashed under.
    pub fn current_code_key(&self) -> &[u8; 32] {
        &self.code_keys[0]
    }

    /// Every key a recovery code may have been hashed under.
    pub fn code_mac_keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.code_keys.iter()
    }
}

/// A code as presented wherever a body takes `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedCode {
    /// Exactly 6 ASCII digits (surrounding spaces ignored).
    Totp(String),
    /// Anything else: tried as a recovery code (`None` when it cannot be one).
    Recovery(Option<RecoveryCode>),
}

impl PresentedCode {
    pub fn parse(raw: &str) -> Self {
        let trimmed = raw.trim_matches(' ');
        if trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            PresentedCode::Totp(trimmed.to_owned())
        } else {
            PresentedCode::Recovery(RecoveryCode::parse(raw))
        }
    }
}

/// How a session's sign-in was completed (RFC 8176 `amr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    PasswordAndTotp,
    PasswordAndRecoveryCode,
}

impl SignInMethod {
    /// The `amr` claim.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            SignInMethod::Password => &["pwd"],
            SignInMethod::PasswordAndTotp => &["pwd", "otp", "mfa"],
            SignInMethod::PasswordAndRecoveryCode => &["pwd", "mfa"],
        }
    }

    /// The compact form a session record keeps.
    pub fn as_stored(self) -> &'static str {
        match self {
            SignInMethod::Password => "p",
            SignInMethod::PasswordAndTotp => "pt",
            SignInMethod::PasswordAndRecoveryCode => "pr",
        }
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        match stored {
            "p" => Some(SignInMethod::Password),
            "pt" => Some(SignInMethod::PasswordAndTotp),
            "pr" => Some(SignInMethod::PasswordAndRecoveryCode),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_are_totp_and_anything_else_a_recovery_code() {
        assert_eq!(
            PresentedCode::parse("123456"),
            PresentedCode::Totp("123456".into())
        );
        assert_eq!(
            PresentedCode::parse("  123456 "),
            PresentedCode::Totp("123456".into())
        );
        assert!(matches!(
            PresentedCode::parse("12345"),
            PresentedCode::Recovery(None)
        ));
        assert!(matches!(
            PresentedCode::parse("１２３４５６"),
            PresentedCode::Recovery(None)
        ));
        assert!(matches!(
            PresentedCode::parse("1234567"),
            PresentedCode::Recovery(None)
        ));
        let code = RecoveryCode::generate();
        assert_eq!(
            PresentedCode::parse(&code.display()),
            PresentedCode::Recovery(Some(code))
        );
    }

    #[test]
    fn stored_methods_read_back() {
        for method in [
            SignInMethod::Password,
            SignInMethod::PasswordAndTotp,
            SignInMethod::PasswordAndRecoveryCode,
        ] {
            assert_eq!(SignInMethod::from_stored(method.as_stored()), Some(method));
        }
    }
}
