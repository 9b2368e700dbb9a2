//! A broken rule of a well-formed value, as the domain reports it. The HTTP
//! layer turns it into a problem's `errors[]` entry and the admin CLI prints
//! it; both take the code and message from here.

use std::fmt;

/// One broken rule of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The request field the rule is about, e.g. `password`.
    pub field: &'static str,
    pub rule: Rule,
}

/// The rules the contract names, each with its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    InvalidUsername,
    TooShort {
        min_chars: usize,
    },
    TooLong {
        max_chars: usize,
    },
    Common,
    ContainsUsername,
    TooWeak {
        score: u8,
        min_score: u8,
    },
    /// A new password that is the current one.
    Unchanged,
    /// A second-factor code that is not the right one.
    InvalidCode,
    /// A number outside what the parameter allows.
    OutOfRange {
        min: u64,
        max: u64,
    },
}

impl Rule {
    /// The contract's code for this rule (`errors[].code`).
    pub fn code(self) -> &'static str {
        match self {
            Rule::InvalidUsername => "invalid_username",
            Rule::TooShort { .. } => "too_short",
            Rule::TooLong { .. } => "too_long",
            Rule::Common => "common",
            Rule::ContainsUsername => "contains_username",
            Rule::TooWeak { .. } => "too_weak",
            Rule::Unchanged => "unchanged",
            Rule::InvalidCode => "invalid_code",
            Rule::OutOfRange { .. } => "out_of_range",
        }
    }

    /// Our own words and numbers only: never the offending value.
    pub fn message(self) -> String {
        match self {
            Rule::InvalidUsername => {
                use super::username::{MAX_CHARS, MIN_CHARS};
                format!(
                    "must be {MIN_CHARS}–{MAX_CHARS} characters of letters, digits, `.`, `_` or `-`, \
                     starting with a letter or digit"
                )
            }
            Rule::TooShort { min_chars } => format!("must be at least {min_chars} characters"),
            Rule::TooLong { max_chars } => format!("must be at most {max_chars} characters"),
            Rule::Common => "is on a list of commonly used passwords".into(),
            Rule::ContainsUsername => "must not contain the username".into(),
            Rule::TooWeak { score, min_score } => format!(
                "is too easy to guess (strength {score} of 100, at least {min_score} required)"
            ),
            Rule::Unchanged => "must differ from the current password".into(),
            Rule::InvalidCode => "is not a valid code from the authenticator".into(),
            Rule::OutOfRange { min, max } => format!("must be between {min} and {max}"),
        }
    }
}

impl Violation {
    pub fn new(field: &'static str, rule: Rule) -> Self {
        Violation { field, rule }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.field,
            self.rule.code(),
            self.rule.message()
        )
    }
}

/// Every broken rule of a value, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

impl Violations {
    /// The same rules, reported against another request field (a new
    /// password is `new_password` where the current one is also sent).
    pub fn for_field(self, field: &'static str) -> Self {
        Violations(
            self.0
                .into_iter()
                .map(|violation| Violation { field, ..violation })
                .collect(),
        )
    }
}

impl std::error::Error for Violations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_print_field_code_and_message() {
        let violations = Violations(vec![
            Violation::new("password", Rule::TooShort { min_chars: 12 }),
            Violation::new("username", Rule::InvalidUsername),
        ]);
        let text = violations.to_string();
        assert!(
            text.starts_with(
                "password (too_short): must be at least 12 characters; username (invalid_username)"
            ),
            "{text}"
        );
    }
}
