//! The HTTP surface: one poem-openapi `OpenApi` impl per area, assembled into
//! one document. Handlers parse input into domain types, call the domain and
//! map results to responses; errors leave as [`crate::error::ApiError`].

mod account;
mod admin;
mod auth;
mod bearer;
mod client_ip;
mod cookie;
mod events;
mod me;
mod mfa;
mod oauth;
mod ops;
mod paging;
mod strict;

use std::sync::Arc;

use poem::Request;
use poem_openapi::{OpenApiService, Tags};

pub use client_ip::ClientIpResolver;
pub use cookie::RefreshCookie;

use crate::{
    auth::{hashing::HashingPool, jwt::AccessTokens},
    domain::PasswordPolicy,
    flows::Stores,
    metrics::Metrics,
    sessions::{ClientInfo, RefreshTokenKeys},
};

/// What every handler may use; built once in [`crate::app::App::build`].
pub struct ApiContext {
    pub stores: Stores,
    pub hashing: HashingPool,
    pub password_policy: PasswordPolicy,
    pub refresh_keys: RefreshTokenKeys,
    pub access_tokens: AccessTokens,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age_secs: u64,
    pub refresh_cookie: RefreshCookie,
    pub client_ip: ClientIpResolver,
    /// Whether the bearer check also requires the session to be live.
    pub check_session_on_access: bool,
    /// How long a reset token issued through the admin API stays valid.
    pub reset_ttl: std::time::Duration,
    /// The resource servers that may introspect tokens.
    pub introspection_clients: Vec<crate::settings::IntrospectionClient>,
    pub metrics: Arc<Metrics>,
}

#[derive(Tags)]
enum ApiTags {
    /// Sign-up, sign-in, token refresh and sign-out.
    Auth,
    /// The signed-in user and their sessions.
    Account,
    /// Liveness and readiness for orchestrators.
    Operations,
    /// For resource servers: token introspection (RFC 7662) and revocation (RFC 7009).
    ResourceServers,
    /// The back office: users, their sessions and second factor, and the
    /// audit log, with an admin token.
    Admin,
}

type Apis = (
    auth::AuthApi,
    me::MeApi,
    account::AccountApi,
    events::EventsApi,
    mfa::MfaApi,
    ops::OpsApi,
    oauth::OauthApi,
    admin::AdminApi,
);

/// The operations and their document. Handlers reach the [`ApiContext`]
/// through request data, so the document can be built without one.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            me::MeApi,
            account::AccountApi,
            events::EventsApi,
            mfa::MfaApi,
            ops::OpsApi,
            oauth::OauthApi,
            admin::AdminApi,
        ),
        "Tessera",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A stateless token authentication server. \
             Every error is `application/problem+json` (RFC 9457).",
    )
}

/// Shared handler state, as handlers take it: `context: Context<'_>`.
pub type Context<'a> = poem::web::Data<&'a Arc<ApiContext>>;

/// Who is calling, as a new session records it.
fn client_info(context: &ApiContext, req: &Request) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|ua| {
            ua.chars()
                .take(crate::sessions::MAX_USER_AGENT_CHARS)
                .collect()
        });
    ClientInfo {
        user_agent,
        ip: context.client_ip.resolve(req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_cookie_parameter_is_the_cookie_we_set() {
        let document: serde_json::Value = serde_json::from_str(&openapi_service().spec()).unwrap();
        for path in ["/v1/auth/refresh", "/v1/auth/signout"] {
            let parameters = &document["paths"][path]["post"]["parameters"];
            assert_eq!(parameters[0]["in"], "cookie", "{path}: {parameters}");
            assert_eq!(parameters[0]["name"], cookie::REFRESH_COOKIE, "{path}");
        }
    }
}
