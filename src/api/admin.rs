//! The admin API under `/v1/admin`, for the back office: authenticated by
//! admin tokens (`tsa_…`, `tessera admin-tokens`), never by user access
//! tokens. Each operation runs the same flow as its CLI command.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{
    ApiResponse, Object, OpenApi, SecurityScheme,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiContext, ApiTags, Context, events::EventsResponse, paging::page_limit, strict::StrictString,
};
use crate::{
    admin_tokens::AdminTokenName,
    audit::{Acting, Actor, EventFilter},
    clock::whole_seconds,
    error::{ApiError, Failure, error_set},
    flows::{self, Origin, Stores},
    secrets::ADMIN_TOKEN,
    sessions::SessionInfo,
    users::{User, UserRef},
};

error_set! {
    AdminUserErrors = [MalformedRequest, InvalidToken, MissingBearer, NotFound, Unavailable];
    AdminListErrors = [MalformedRequest, InvalidToken, MissingBearer, Validation, Unavailable];
    AdminCreateUserErrors = [MalformedRequest, InvalidToken, MissingBearer, Conflict, PayloadTooLarge, UnsupportedMediaType, Validation, Unavailable];
}

/// `Authorization: Bearer tsa_…`: an admin token from `tessera admin-tokens create`.
#[derive(SecurityScheme)]
#[oai(
    rename = "adminToken",
    ty = "bearer",
    bearer_format = "tsa_…",
    checker = "check_admin_token"
)]
pub struct AdminToken(AdminTokenName);

/// Looks the token up on every call: a revoked or expired one is refused
/// on every instance at the next request. Anything but an admin token (a
/// user's access token included) is refused as unknown. Which token made
/// the call is logged by its name (never the token).
async fn check_admin_token(
    req: &Request,
    bearer: poem_openapi::auth::Bearer,
) -> poem::Result<AdminTokenName> {
    let context = req
        .data::<Arc<ApiContext>>()
        .ok_or_else(|| ApiError::internal("the API context is missing from the request"))?;
    let digest = ADMIN_TOKEN
        .parse(&bearer.token)
        .ok_or(ApiError::InvalidToken)?;
    let name = context
        .stores
        .admin_tokens
        .authenticate(&digest)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::InvalidToken)?;
    tracing::info!(admin_token = %name, method = %req.method(), path = req.uri().path(), "admin call");
    Ok(name)
}

impl AdminToken {
    /// The back office, calling with this token, as events record it.
    fn acting(&self, context: &ApiContext, req: &Request) -> Acting {
        Acting::new(
            Actor::AdminToken(self.0.to_string()),
            &super::client_info(context, req),
        )
    }
}

/// A user as the back office sees it.
#[derive(Object)]
struct AdminUser {
    id: Uuid,
    username: String,
    created_at: DateTime<Utc>,
    disabled: bool,
    #[oai(nullable)]
    disabled_at: Option<DateTime<Utc>>,
    mfa_enabled: bool,
    /// `null` until the first change or reset.
    #[oai(nullable)]
    password_changed_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    last_signin_at: Option<DateTime<Utc>>,
}

/// A live session of a user, as the back office sees it.
#[derive(Object)]
struct AdminSession {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    idle_expires_at: DateTime<Utc>,
    #[oai(nullable)]
    user_agent: Option<String>,
    #[oai(nullable)]
    ip: Option<String>,
}

#[derive(Object)]
struct AdminSessions {
    /// Every live session (at most `session.max_per_user`).
    sessions: Vec<AdminSession>,
}

/// A page of users.
#[derive(Object)]
struct AdminUsers {
    users: Vec<AdminUser>,
    /// Pass as `after` for the next page; `null` exactly when no user follows.
    #[oai(nullable)]
    next: Option<String>,
}

#[derive(Object)]
struct AdminCreateUserRequest {
    /// The sign-up rules apply.
    username: StrictString,
    password: StrictString,
}

#[derive(Object)]
struct IssuedPasswordReset {
    /// `tsp_…`, shown once: hand it to the user for `resetPassword`.
    reset_token: String,
    /// Seconds until it expires.
    expires_in: u64,
}

#[derive(ApiResponse)]
enum AdminUserResponse {
    /// The user.
    #[oai(status = 200)]
    Ok(Json<AdminUser>),
}

#[derive(ApiResponse)]
enum AdminUsersResponse {
    /// Users in ascending id.
    #[oai(status = 200)]
    Ok(Json<AdminUsers>),
}

#[derive(ApiResponse)]
enum AdminCreatedResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<AdminUser>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum AdminDoneResponse {
    /// Done (also when there was nothing to change).
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum AdminResetResponse {
    /// A new reset token; any earlier one is void.
    #[oai(status = 200)]
    Issued(Json<IssuedPasswordReset>),
}

#[derive(ApiResponse)]
enum AdminSessionsResponse {
    /// The user's live sessions.
    #[oai(status = 200)]
    Ok(Json<AdminSessions>),
}

pub struct AdminApi;

#[OpenApi(prefix_path = "/v1/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    ///
    /// Ascending id, `limit` (1–200, default 50) per page; `next` is the
    /// cursor of the next page. `username_prefix` is a literal,
    /// case-insensitive prefix.
    #[oai(path = "/users", method = "get", operation_id = "adminListUsers")]
    async fn list_users(
        &self,
        context: Context<'_>,
        _token: AdminToken,
        after: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
        username_prefix: Query<Option<String>>,
    ) -> Result<AdminUsersResponse, Failure<AdminListErrors>> {
        let limit = page_limit(limit.0)?;
        let page = flows::list_users(
            &context.stores,
            after.0,
            limit,
            username_prefix.0.as_deref(),
        )
        .await?;
        let users = page
            .users
            .into_iter()
            .map(|(user, mfa_enabled)| AdminUser::new(user, mfa_enabled))
            .collect();
        Ok(AdminUsersResponse::Ok(Json(AdminUsers {
            users,
            next: page.next.map(|id| id.to_string()),
        })))
    }

    /// Create a user
    #[oai(path = "/users", method = "post", operation_id = "adminCreateUser")]
    async fn create_user(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        body: Json<AdminCreateUserRequest>,
    ) -> Result<AdminCreatedResponse, Failure<AdminCreateUserErrors>> {
        let AdminCreateUserRequest { username, password } = body.0;
        let (username, password) = context
            .password_policy
            .parse_new_account(&username.0, password.0)?;
        let user = flows::sign_up(
            &context.stores,
            &context.hashing,
            Origin::Operator(token.acting(&context, req)),
            username,
            password,
        )
        .await?;
        let location = format!("/v1/admin/users/{}", user.id);
        let view = admin_user(&context.stores, user).await?;
        Ok(AdminCreatedResponse::Created(Json(view), location))
    }

    /// A user
    #[oai(path = "/users/:id", method = "get", operation_id = "adminGetUser")]
    async fn get_user(
        &self,
        context: Context<'_>,
        _token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminUserResponse, Failure<AdminUserErrors>> {
        let user = flows::find_user(&context.stores, &UserRef::Id(id.0)).await?;
        Ok(AdminUserResponse::Ok(Json(
            admin_user(&context.stores, user).await?,
        )))
    }

    /// Disable a user
    ///
    /// Idempotent; every session of the user is revoked.
    #[oai(
        path = "/users/:id/disable",
        method = "post",
        operation_id = "adminDisableUser"
    )]
    async fn disable_user(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminDoneResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        flows::disable_user(&context.stores, &UserRef::Id(id.0), &by).await?;
        Ok(AdminDoneResponse::Done)
    }

    /// Enable a user
    ///
    /// Idempotent; the sessions from before the disable stay revoked.
    #[oai(
        path = "/users/:id/enable",
        method = "post",
        operation_id = "adminEnableUser"
    )]
    async fn enable_user(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminDoneResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        flows::enable_user(&context.stores, &UserRef::Id(id.0), &by).await?;
        Ok(AdminDoneResponse::Done)
    }

    /// Delete a user
    ///
    /// The user, every session, the second factor and any reset token go.
    #[oai(
        path = "/users/:id",
        method = "delete",
        operation_id = "adminDeleteUser"
    )]
    async fn delete_user(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminDoneResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        flows::delete_user(&context.stores, &UserRef::Id(id.0), &by).await?;
        Ok(AdminDoneResponse::Done)
    }

    /// Issue a password reset token
    #[oai(
        path = "/users/:id/password-reset",
        method = "post",
        operation_id = "adminIssuePasswordReset"
    )]
    async fn issue_password_reset(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminResetResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        let ttl = context.reset_ttl;
        let issued =
            flows::issue_password_reset(&context.stores, &UserRef::Id(id.0), ttl, &by).await?;
        Ok(AdminResetResponse::Issued(Json(IssuedPasswordReset {
            reset_token: issued.token.expose().to_owned(),
            expires_in: whole_seconds(ttl),
        })))
    }

    /// Reset the second factor (a lost device)
    ///
    /// The factor, its recovery codes and any lock go; every session of the
    /// user is revoked. 204 also when no factor was on.
    #[oai(
        path = "/users/:id/mfa",
        method = "delete",
        operation_id = "adminResetMfa"
    )]
    async fn reset_mfa(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminDoneResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        flows::reset_mfa(&context.stores, &UserRef::Id(id.0), &by).await?;
        Ok(AdminDoneResponse::Done)
    }

    /// A user's live sessions
    #[oai(
        path = "/users/:id/sessions",
        method = "get",
        operation_id = "adminListSessions"
    )]
    async fn list_sessions(
        &self,
        context: Context<'_>,
        _token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminSessionsResponse, Failure<AdminUserErrors>> {
        let (_, sessions) = flows::list_sessions(&context.stores, &UserRef::Id(id.0)).await?;
        Ok(AdminSessionsResponse::Ok(Json(AdminSessions {
            sessions: sessions.into_iter().map(AdminSession::from).collect(),
        })))
    }

    /// Revoke every session of a user
    #[oai(
        path = "/users/:id/sessions",
        method = "delete",
        operation_id = "adminRevokeSessions"
    )]
    async fn revoke_sessions(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
    ) -> Result<AdminDoneResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        let user = flows::find_user(&context.stores, &UserRef::Id(id.0)).await?;
        flows::sign_out_everywhere(&context.stores, user.id, &by).await?;
        Ok(AdminDoneResponse::Done)
    }

    /// Revoke one session of a user
    ///
    /// 404 when it is not a live session of that user.
    #[oai(
        path = "/users/:id/sessions/:sid",
        method = "delete",
        operation_id = "adminRevokeSession"
    )]
    async fn revoke_session(
        &self,
        context: Context<'_>,
        req: &Request,
        token: AdminToken,
        id: Path<Uuid>,
        sid: Path<Uuid>,
    ) -> Result<AdminDoneResponse, Failure<AdminUserErrors>> {
        let by = token.acting(&context, req);
        let user = flows::find_user(&context.stores, &UserRef::Id(id.0)).await?;
        flows::revoke_session(&context.stores, user.id, sid.0, &by).await?;
        Ok(AdminDoneResponse::Done)
    }

    /// Query the audit log
    ///
    /// Newest first, `limit` (1–200, default 50) per page; `next` is the
    /// cursor of the next page. Every filter given must hold: `user_id`,
    /// `type` (repeatable, exact match, any of them), `since` (inclusive)
    /// and `until` (exclusive), RFC 3339.
    #[oai(path = "/events", method = "get", operation_id = "adminListEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn list_events(
        &self,
        context: Context<'_>,
        _token: AdminToken,
        after: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
        user_id: Query<Option<Uuid>>,
        #[oai(name = "type")] types: Query<Option<Vec<String>>>,
        since: Query<Option<DateTime<Utc>>>,
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<EventsResponse, Failure<AdminListErrors>> {
        let limit = page_limit(limit.0)?;
        let filter = EventFilter {
            user_id: user_id.0,
            types: types.0.unwrap_or_default(),
            since: since.0,
            until: until.0,
        };
        let page = flows::list_events(&context.stores, &filter, after.0, limit).await?;
        Ok(EventsResponse::page(page, true))
    }
}

async fn admin_user(stores: &Stores, user: User) -> Result<AdminUser, ApiError> {
    let factor = stores.mfa.find(user.id).await?;
    Ok(AdminUser::new(
        user,
        factor.is_some_and(|factor| factor.enabled),
    ))
}

impl AdminUser {
    fn new(user: User, mfa_enabled: bool) -> Self {
        AdminUser {
            id: user.id,
            username: user.username.to_string(),
            created_at: user.created_at,
            disabled: user.disabled_at.is_some(),
            disabled_at: user.disabled_at,
            mfa_enabled,
            password_changed_at: user.password_changed_at,
            last_signin_at: user.last_signin_at,
        }
    }
}

impl From<SessionInfo> for AdminSession {
    fn from(session: SessionInfo) -> Self {
        AdminSession {
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            idle_expires_at: session.idle_expires_at,
            user_agent: session.user_agent,
            ip: session.ip,
        }
    }
}
