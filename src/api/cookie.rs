//! The refresh cookie for browsers: the refresh token where script cannot read it.

use std::time::Duration;

use poem::Request;

pub const REFRESH_COOKIE: &str = "tessera_refresh";
/// Only refresh and sign-out need it.
const COOKIE_PATH: &str = "/v1/auth";

#[derive(Debug, Clone, Copy)]
pub struct RefreshCookie {
    pub secure: bool,
}

impl RefreshCookie {
    pub fn set(&self, token: &str, max_age: Duration) -> String {
        self.render(token, max_age.as_millis().div_ceil(1000) as u64)
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

/// The refresh token from the `Cookie` header, if one was sent.
pub fn refresh_token_from_cookie(req: &Request) -> Option<String> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
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

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let req = Request::builder()
            .header("cookie", "a=1; tessera_refresh=tsr_abc; b=2")
            .finish();
        assert_eq!(refresh_token_from_cookie(&req).as_deref(), Some("tsr_abc"));
        let req = Request::builder().header("cookie", "a=1").finish();
        assert_eq!(refresh_token_from_cookie(&req), None);
    }
}
