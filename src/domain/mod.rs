//! Values parsed once at the edge: once a value has one of these types it is
//! valid, and nothing downstream checks it again.

mod password;
mod username;
mod violation;

pub use password::{NewPassword, PasswordAttempt, PasswordPolicy};
pub use username::Username;
pub use violation::{Rule, Violation, Violations};

/// The most items one page of any list holds (`limit` is 1 to this).
pub const MAX_PAGE: u64 = 200;
