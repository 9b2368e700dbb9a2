//! The refresh cookie for browsers: the refresh token where script cannot read it.

use std::time::Duration;

use crate::clock::whole_seconds;

/// The cookie's name; the refresh and sign-out operations declare it as
/// their cookie parameter (a test checks the two agree).
pub const REFRESH_COOKIE: &str = "tessera_refresh";
/// Only refresh and sign-out need it.
const COOKIE_PATH: &str = "/v1/auth";

#[derive(Debug, Clone, Copy)]
pub struct RefreshCookie {
    pub secure: bool,
}

impl RefreshCookie {
    pub fn set(&self, token: &str, max_age: Duration) -> String {
        self.render(token, whole_seconds(max_age))
    }

    pub fn clear(&self) -> String {
        self.render("", 0)
    }

    fn render(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{REFRESH_COOKIE}={value}; HttpOnly{secure}; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={max_age}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_has_every_contract_attribute() {
        let cookie = RefreshCookie { secure: true }.set("tok", Duration::from_secs(3600));
        assert_eq!(
            cookie,
            "tessera_refresh=tok; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age=3600"
        );
        assert!(
            RefreshCookie { secure: true }
                .clear()
                .ends_with("Max-Age=0")
        );
    }
}
