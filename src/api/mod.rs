//! The HTTP surface: one poem-openapi `OpenApi` impl per area, assembled into
//! one document. Handlers parse input into domain types, call the domain and
//! map results to responses; errors leave as [`crate::error::ApiError`].

mod auth;
mod bearer;
mod client_ip;
mod cookie;
mod me;
mod ops;
mod strict;

use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

pub use client_ip::ClientIpResolver;
pub use cookie::RefreshCookie;

use crate::{
    auth::{hashing::HashingPool, jwt::AccessTokens},
    domain::PasswordPolicy,
    metrics::Metrics,
    rate_limit::RateLimiter,
    sessions::{RefreshTokenKeys, SessionStore},
    users::UserStore,
};

/// What every handler may use; built once in [`crate::app::App::build`].
pub struct ApiContext {
    pub users: UserStore,
    pub hashing: HashingPool,
    pub password_policy: PasswordPolicy,
    pub sessions: SessionStore,
    pub refresh_keys: RefreshTokenKeys,
    pub access_tokens: AccessTokens,
    pub refresh_cookie: RefreshCookie,
    pub rate_limits: RateLimiter,
    pub client_ip: ClientIpResolver,
    /// Whether the bearer check also requires the session to be live.
    pub check_session_on_access: bool,
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
}

type Apis = (auth::AuthApi, me::MeApi, ops::OpsApi);

/// The operations and their document. Handlers reach the [`ApiContext`]
/// through request data, so the document can be built without one.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (auth::AuthApi, me::MeApi, ops::OpsApi),
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
