use std::fmt;

use super::{Rule, Username, Violation, Violations};

const MIN_CHARS: usize = 12;
const MAX_CHARS: usize = 128;

/// The strength rules a new password must meet.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Minimum score (0–100) of the `passwords` crate's scorer.
    pub min_score: u8,
}

/// A password that passed the policy; only ever hashed, never printed.
pub struct NewPassword(String);

/// A password offered at sign-in; only ever verified, never printed.
pub struct PasswordAttempt(String);

impl PasswordPolicy {
    /// A new account's username and password, with every broken rule of
    /// both reported at once (sign-up and `tessera users create`).
    pub fn parse_new_account(
        &self,
        username: &str,
        password: String,
    ) -> Result<(Username, NewPassword), Violations> {
        let username = Username::parse(username);
        let password = self.parse(password, username.as_ref().ok());
        match (username, password) {
            (Ok(username), Ok(password)) => Ok((username, password)),
            (username, password) => Err(Violations(
                username
                    .err()
                    .into_iter()
                    .chain(password.err().into_iter().flat_map(|broken| broken.0))
                    .collect(),
            )),
        }
    }

    /// Checks every rule and reports every broken one at once. The username,
    /// when valid, is needed for the `contains_username` rule.
    pub fn parse(
        &self,
        raw: String,
        username: Option<&Username>,
    ) -> Result<NewPassword, Violations> {
        let mut broken = Vec::new();
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            broken.push(Rule::TooShort {
                min_chars: MIN_CHARS,
            });
        }
        if chars > MAX_CHARS {
            broken.push(Rule::TooLong {
                max_chars: MAX_CHARS,
            });
        }
        let analyzed = passwords::analyzer::analyze(&raw);
        let lowered = raw.to_lowercase();
        if analyzed.is_common() || passwords::analyzer::is_common_password(&lowered) {
            broken.push(Rule::Common);
        }
        if username.is_some_and(|name| lowered.contains(name.as_str())) {
            broken.push(Rule::ContainsUsername);
        }
        let score = passwords::scorer::score(&analyzed);
        if score < f64::from(self.min_score) {
            broken.push(Rule::TooWeak {
                // The scorer's range is 0–100.
                score: score.round().clamp(0.0, 100.0) as u8,
                min_score: self.min_score,
            });
        }
        if broken.is_empty() {
            Ok(NewPassword(raw))
        } else {
            Err(Violations(
                broken
                    .into_iter()
                    .map(|rule| Violation::new(PASSWORD_FIELD, rule))
                    .collect(),
            ))
        }
    }
}

const PASSWORD_FIELD: &str = "password";

impl NewPassword {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl PasswordAttempt {
    pub fn new(raw: String) -> Self {
        PasswordAttempt(raw)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

impl fmt::Debug for PasswordAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordAttempt([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_score: 60 };

    fn codes(raw: &str, username: Option<&str>) -> Vec<String> {
        let username = username.map(|u| Username::parse(u).unwrap());
        match POLICY.parse(raw.to_string(), username.as_ref()) {
            Ok(_) => vec![],
            Err(errors) => errors.0.into_iter().map(|e| e.rule.code().into()).collect(),
        }
    }

    #[test]
    fn the_contract_examples_score_as_documented() {
        let score = |p: &str| passwords::scorer::score(&passwords::analyzer::analyze(p));
        assert_eq!(score("abcabcabcabc").round(), 45.0);
        assert_eq!(score("correct-Horse-battery-9-staple").round(), 98.0);
    }

    #[test]
    fn strong_password_passes() {
        assert!(codes("correct-Horse-battery-9-staple", Some("alice")).is_empty());
    }

    #[test]
    fn each_rule_has_its_code() {
        assert!(codes("password1234", None).contains(&"common".to_string()));
        assert_eq!(codes("abcabcabcabc", None), ["too_weak"]);
        assert!(codes("Sh0rt!x", None).contains(&"too_short".to_string()));
        let long = "aB3$".repeat(33);
        assert_eq!(codes(&long, None), ["too_long"]);
        assert_eq!(
            codes("my-Alice-horse-9-staple", Some("ALICE")),
            ["contains_username"]
        );
    }

    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let codes = codes("alice", Some("alice"));
        for code in ["too_short", "contains_username", "too_weak"] {
            assert!(codes.contains(&code.to_string()), "{codes:?}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 12 two-byte characters: long enough, though 24 bytes.
        assert!(!codes("éèêëàâäôöûüç", None).contains(&"too_short".to_string()));
        // 128 four-byte characters are not too long.
        assert!(!codes(&"𝄞".repeat(128), None).contains(&"too_long".to_string()));
    }

    #[test]
    fn debug_never_prints_the_password() {
        let password = POLICY
            .parse("correct-Horse-battery-9-staple".into(), None)
            .unwrap();
        assert!(!format!("{password:?}").contains("Horse"));
    }

    #[test]
    fn a_new_account_reports_username_and_password_rules_together() {
        let errors = POLICY
            .parse_new_account("-bad name", "short".into())
            .err()
            .unwrap();
        let codes: Vec<&str> = errors.0.iter().map(|e| e.rule.code()).collect();
        assert_eq!(codes[0], "invalid_username");
        assert!(codes.contains(&"too_short"), "{codes:?}");
        let (name, _) = POLICY
            .parse_new_account("Alice", "correct-Horse-battery-9-staple".into())
            .unwrap();
        assert_eq!(name.as_str(), "alice");
        let errors = POLICY
            .parse_new_account("alice", "alice-Horse-battery-9-staple".into())
            .err()
            .unwrap();
        assert_eq!(errors.0[0].rule, Rule::ContainsUsername);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_reports_only_known_codes(raw in "\\PC{0,200}", name in "[a-z0-9]{3,8}") {
            let username = Username::parse(&name).unwrap();
            match POLICY.parse(raw.clone(), Some(&username)) {
                Ok(_) => {
                    let chars = raw.chars().count();
                    proptest::prop_assert!((12..=128).contains(&chars));
                    proptest::prop_assert!(!raw.to_lowercase().contains(username.as_str()));
                }
                Err(errors) => {
                    proptest::prop_assert!(!errors.0.is_empty());
                    for error in errors.0 {
                        proptest::prop_assert!(["too_short", "too_long", "common", "contains_username", "too_weak"]
                            .contains(&error.rule.code()));
                        // Messages are fixed text with numbers; a string of a few
                        // characters can occur in them by chance ("6" in "at least 60").
                        proptest::prop_assert!(raw.chars().count() < 4 || !error.rule.message().contains(&raw));
                    }
                }
            }
        }
    }
}
