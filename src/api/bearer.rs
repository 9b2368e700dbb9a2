//! The bearer extractor: a handler that needs a signed-in caller takes one
//! `Bearer` argument, and that is all.

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use uuid::Uuid;

use super::ApiContext;
use crate::error::ApiError;

/// Who is calling, as proven by a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl Principal {
    /// What every endpoint that changes the account or its sessions requires
    /// ("Which endpoints check the session"), whatever
    /// `session.check_on_access` says: the token's session live in Redis
    /// (of the user's current epoch) and the account existing and enabled.
    pub async fn require_live(self, context: &ApiContext) -> Result<Principal, ApiError> {
        let stores = &context.stores;
        let (live, user) = tokio::try_join!(
            async {
                stores
                    .sessions
                    .is_live(self.user_id, self.session_id)
                    .await
                    .map_err(ApiError::from)
            },
            async {
                stores
                    .users
                    .find_active(self.user_id)
                    .await
                    .map_err(ApiError::from)
            },
        )?;
        if !live || user.is_none() {
            return Err(ApiError::InvalidToken);
        }
        Ok(self)
    }
}

/// `Authorization: Bearer <JWT>`: an access token from sign-in or refresh.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_access_token"
)]
pub struct Bearer(pub Principal);

/// Checks signature, algorithm, `exp`, `iss` and `aud` without storage; with
/// `session.check_on_access` also that the session is still live in Redis.
async fn check_access_token(
    req: &Request,
    bearer: poem_openapi::auth::Bearer,
) -> poem::Result<Principal> {
    let context = req
        .data::<Arc<ApiContext>>()
        .ok_or_else(|| ApiError::internal("the API context is missing from the request"))?;
    let claims = context
        .access_tokens
        .verify(&bearer.token)
        .map_err(|_| ApiError::InvalidToken)?;
    if context.check_session_on_access
        && !context
            .stores
            .sessions
            .is_live(claims.sub, claims.sid)
            .await
            .map_err(ApiError::from)?
    {
        return Err(ApiError::InvalidToken.into());
    }
    Ok(Principal {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}
