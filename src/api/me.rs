use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{ApiTags, Context, account::live_caller, bearer::Bearer};
use crate::{
    error::{ApiError, Failure, error_set},
    flows,
    sessions::SessionInfo,
    users::User,
};

error_set! {
    GetMeErrors = [InvalidToken, MissingBearer, Unavailable];
    ListSessionsErrors = [InvalidToken, MissingBearer, Unavailable];
    RevokeSessionErrors = [MalformedRequest, InvalidToken, MissingBearer, NotFound, Unavailable];
}

/// A user as clients see it.
#[derive(Object)]
pub struct UserView {
    id: Uuid,
    /// Lower-cased.
    username: String,
    created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            username: user.username.to_string(),
            created_at: user.created_at,
        }
    }
}

/// A live refresh session of the caller.
#[derive(Object)]
struct SessionView {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    /// When the session expires unless refreshed before.
    idle_expires_at: DateTime<Utc>,
    /// `null` when the client sent none.
    #[oai(nullable)]
    user_agent: Option<String>,
    #[oai(nullable)]
    ip: Option<String>,
    /// Whether this is the session of the access token making the request.
    current: bool,
}

/// The signed-in user, with the state of their second factor.
#[derive(Object)]
struct MeView {
    id: Uuid,
    /// Lower-cased.
    username: String,
    created_at: DateTime<Utc>,
    /// Whether TOTP is on (sign-in then asks for a code).
    mfa_enabled: bool,
    /// Unused recovery codes; `null` while TOTP is off.
    #[oai(nullable)]
    recovery_codes_left: Option<u32>,
}

#[derive(ApiResponse)]
enum MeResponse {
    /// The signed-in user.
    #[oai(status = 200)]
    Ok(Json<MeView>),
}

#[derive(ApiResponse)]
enum SessionsResponse {
    /// The caller's live sessions.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionView>>),
}

#[derive(ApiResponse)]
enum RevokeResponse {
    /// The session is revoked.
    #[oai(status = 204)]
    Revoked,
}

pub struct MeApi;

#[OpenApi(prefix_path = "/v1", tag = "ApiTags::Account")]
impl MeApi {
    /// The signed-in user
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn get_me(
        &self,
        context: Context<'_>,
        auth: Bearer,
    ) -> Result<MeResponse, Failure<GetMeErrors>> {
        // A valid token for a user that no longer exists, or was disabled, proves nothing.
        let stores = &context.stores;
        let (user, factor) = stores
            .user_cache
            .get_or_load(auth.0.user_id, async || {
                stores.users.find_active_with_factor(auth.0.user_id).await
            })
            .await?
            .ok_or(ApiError::InvalidToken)?;
        Ok(MeResponse::Ok(Json(MeView {
            id: user.id,
            username: user.username.to_string(),
            created_at: user.created_at,
            mfa_enabled: factor.enabled,
            recovery_codes_left: factor.recovery_codes_left,
        })))
    }

    /// The caller's live sessions
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list_sessions(
        &self,
        context: Context<'_>,
        auth: Bearer,
    ) -> Result<SessionsResponse, Failure<ListSessionsErrors>> {
        let sessions = context.stores.sessions.list(auth.0.user_id).await?;
        let current = auth.0.session_id;
        let views = sessions
            .into_iter()
            .map(|session| SessionView::new(session, current))
            .collect();
        Ok(SessionsResponse::Ok(Json(views)))
    }

    /// Revoke one of the caller's sessions
    #[oai(
        path = "/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke_session(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        id: Path<Uuid>,
    ) -> Result<RevokeResponse, Failure<RevokeSessionErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        // Another user's session is as absent as a dead one: no oracle.
        flows::revoke_session(&context.stores, caller.user_id, id.0, &caller.acting()).await?;
        Ok(RevokeResponse::Revoked)
    }
}

impl SessionView {
    fn new(session: SessionInfo, current: Uuid) -> Self {
        SessionView {
            current: session.id == current,
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            idle_expires_at: session.idle_expires_at,
            user_agent: session.user_agent,
            ip: session.ip,
        }
    }
}
