use std::fmt;

use super::{Rule, Violation};

pub(super) const MIN_CHARS: usize = 3;
pub(super) const MAX_CHARS: usize = 32;

/// A valid, lower-cased username: 3–32 of `[a-z0-9._-]`, starting with a
/// letter or digit. `Alice` and `alice` parse to the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let len = raw.chars().count();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let valid = (MIN_CHARS..=MAX_CHARS).contains(&len)
            && raw.chars().all(allowed)
            && raw.starts_with(|c: char| c.is_ascii_alphanumeric());
        if valid {
            Ok(Username(raw.to_ascii_lowercase()))
        } else {
            Err(Violation::new("username", Rule::InvalidUsername))
        }
    }

    /// A stored value, already valid when it was written.
    pub fn from_trusted(stored: String) -> Self {
        Username(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases_valid_names() {
        for raw in ["abc", "Alice", "a.b_c-d", "9lives", &"x".repeat(32)] {
            let name = Username::parse(raw).unwrap();
            assert_eq!(name.as_str(), raw.to_ascii_lowercase());
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for raw in [
            "",
            "ab",
            &"x".repeat(33),
            "_alice",
            ".alice",
            "-alice",
            "al ice",
            "alice!",
            "ålice",
            "al\u{0}ice",
            "алиса",
        ] {
            let err = Username::parse(raw).unwrap_err();
            assert_eq!(err.rule, Rule::InvalidUsername, "{raw:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_the_contract_shape(raw in "\\PC{0,40}") {
            if let Ok(name) = Username::parse(&raw) {
                let name = name.as_str();
                proptest::prop_assert!((3..=32).contains(&name.len()));
                proptest::prop_assert!(name.chars().all(|c| c.is_ascii_lowercase()
                    || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')));
                proptest::prop_assert!(name.starts_with(|c: char| c.is_ascii_alphanumeric()));
                let again = Username::parse(name).unwrap();
                proptest::prop_assert_eq!(again.as_str(), name);
            }
        }

        #[test]
        fn every_name_of_the_contract_shape_parses(raw in "[A-Za-z0-9][A-Za-z0-9._-]{2,31}") {
            let name = Username::parse(&raw).unwrap();
            proptest::prop_assert_eq!(name.as_str(), raw.to_ascii_lowercase());
        }
    }
}
