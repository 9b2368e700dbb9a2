//! The HTTP surface: one poem-openapi `OpenApi` impl per area, assembled into
//! one document. Handlers parse input into domain types, call the domain and
//! map results to responses; errors leave as [`crate::error::ApiError`].

mod auth;
mod ops;
mod strict;

use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

use crate::{auth::hashing::HashingPool, domain::PasswordPolicy, users::UserStore};

/// What every handler may use; built once in [`crate::app::App::build`].
pub struct ApiContext {
    pub users: UserStore,
    pub hashing: HashingPool,
    pub password_policy: PasswordPolicy,
}

#[derive(Tags)]
enum ApiTags {
    /// Sign-up, sign-in, token refresh and sign-out.
    Auth,
    /// Liveness and readiness for orchestrators.
    Operations,
}

type Apis = (auth::AuthApi, ops::OpsApi);

/// The operations and their document. Handlers reach the [`ApiContext`]
/// through request data, so the document can be built without one.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (auth::AuthApi, ops::OpsApi),
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
