use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags, Context, bearer::Bearer, cookie::refresh_token_from_cookie, strict::StrictString,
};
use crate::{
    auth::hashing::Verification,
    domain::{PasswordAttempt, Username},
    error::{ApiError, Failure, error_set},
    metrics::{RefreshOutcome, SigninOutcome},
    sessions::{ClientInfo, RefreshToken, Rotation},
    users::User,
};

error_set! {
    SignupErrors = [400, 409, 413, 415, 422, 429, 503];
    SigninErrors = [400, 401, 413, 415, 429, 503];
    RefreshErrors = [400, 401, 413, 415, 429, 503];
    SignoutErrors = [400, 413, 415, 503];
    SignoutAllErrors = [401, 503];
}

/// Username and password, as sent to sign-up and sign-in.
#[derive(Object)]
struct Credentials {
    /// 3–32 characters of `[A-Za-z0-9._-]`, starting with a letter or digit; case-insensitive.
    username: StrictString,
    /// 12–128 characters; not common, not containing the username, strong enough.
    password: StrictString,
}

impl Credentials {
    fn into_parts(self) -> (String, String) {
        (self.username.0, self.password.0)
    }
}

/// A refresh token in the body; browsers may send `{}` and rely on the cookie.
#[derive(Object)]
struct RefreshRequest {
    /// Wins over the `tessera_refresh` cookie when both are sent.
    refresh_token: Option<StrictString>,
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

/// An access token and the refresh token of its session.
#[derive(Object)]
struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Opaque; rotates on every refresh.
    refresh_token: String,
    /// Seconds until the session expires if left idle.
    refresh_expires_in: u64,
    session_id: Uuid,
}

#[derive(ApiResponse)]
enum SignupResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum TokenResponse {
    /// A new token pair; the refresh token is also set as an `HttpOnly` cookie.
    #[oai(status = 200)]
    Issued(
        Json<TokenPair>,
        #[oai(header = "Set-Cookie")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
enum SignoutResponse {
    /// The session is revoked (or was not live); the cookie is cleared.
    #[oai(status = 204)]
    SignedOut(#[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum SignoutAllResponse {
    /// Every session of the caller is revoked.
    #[oai(status = 204)]
    SignedOut,
}

pub struct AuthApi;

#[OpenApi(prefix_path = "/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Reports every broken username and password rule at once (422).
    #[oai(path = "/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<Credentials>,
    ) -> Result<SignupResponse, Failure<SignupErrors>> {
        let (username, password) = body.0.into_parts();
        let (username, password) = context
            .password_policy
            .parse_new_account(&username, password)
            .map_err(ApiError::Validation)?;
        // Reserved before any I/O: under overload the refusal costs no Redis
        // or database call.
        let slot = context.hashing.reserve()?;
        context
            .rate_limits
            .hit_signup(context.client_ip.resolve(req))
            .await?;
        let hash = slot.hash(password).await?;
        let user = context.users.create(username, hash).await?;
        Ok(SignupResponse::Created(Json(user.into()), "/v1/me".into()))
    }

    /// Sign in
    ///
    /// Answers the same 401 `invalid_credentials`, in the same time, for an
    /// unknown user and for a wrong password.
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<Credentials>,
    ) -> Result<TokenResponse, Failure<SigninErrors>> {
        let result = sign_in(&context, req, body.0).await;
        context.metrics.signin(match &result {
            Ok(_) => SigninOutcome::Success,
            Err(ApiError::InvalidCredentials) => SigninOutcome::Invalid,
            Err(ApiError::RateLimited { .. }) => SigninOutcome::Limited,
            Err(_) => SigninOutcome::Unavailable,
        });
        Ok(result?)
    }

    /// Refresh the token pair
    ///
    /// Rotates the refresh token (from the body, else the `tessera_refresh`
    /// cookie). The previous token keeps working for the reuse grace window
    /// and returns the same successor; any older token revokes the session.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<TokenResponse, Failure<RefreshErrors>> {
        let (outcome, result) = match refresh_session(&context, req, body.0).await {
            Ok(rotation) => rotation,
            Err(err) => {
                let outcome = match err {
                    ApiError::RateLimited { .. } => RefreshOutcome::Limited,
                    ApiError::InvalidToken => RefreshOutcome::Invalid,
                    _ => RefreshOutcome::Unavailable,
                };
                (outcome, Err(err))
            }
        };
        context.metrics.refresh(outcome);
        Ok(result?)
    }

    /// Sign out
    ///
    /// Revokes the session of the refresh token (body, else cookie) and clears
    /// the cookie. 204 also for unknown tokens.
    #[oai(path = "/signout", method = "post", operation_id = "signout")]
    async fn signout(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<SignoutResponse, Failure<SignoutErrors>> {
        if let Some(token) = presented_refresh_token(&context, req, body.0) {
            context
                .sessions
                .revoke(token.user_id, token.session_id)
                .await?;
        }
        Ok(SignoutResponse::SignedOut(context.refresh_cookie.clear()))
    }

    /// Sign out everywhere
    ///
    /// Revokes every session of the caller.
    #[oai(path = "/signout-all", method = "post", operation_id = "signoutAll")]
    async fn signout_all(
        &self,
        context: Context<'_>,
        auth: Bearer,
    ) -> Result<SignoutAllResponse, Failure<SignoutAllErrors>> {
        context.sessions.revoke_all(auth.0.user_id).await?;
        Ok(SignoutAllResponse::SignedOut)
    }
}

/// Sign-in proper; the handler counts its outcome.
async fn sign_in(
    context: &Context<'_>,
    req: &Request,
    credentials: Credentials,
) -> Result<TokenResponse, ApiError> {
    let (username, password) = credentials.into_parts();
    // Reserved before any I/O: under overload the refusal is cheap.
    let slot = context.hashing.reserve()?;
    let ip = context.client_ip.resolve(req);
    context.rate_limits.check_signin(&username, ip).await?;
    // An unparseable name cannot exist, but it still costs one hash.
    let credentials = match Username::parse(&username) {
        Ok(username) => context.users.find_credentials(&username).await?,
        Err(_) => None,
    };
    let (user, stored_hash) = match credentials {
        Some(found) => (Some(found.user), Some(found.password_hash)),
        None => (None, None),
    };
    let verification = slot
        .verify(PasswordAttempt::new(password), stored_hash)
        .await?;
    let (Some(user), Verification::Match { upgraded_hash }) = (user, verification) else {
        context
            .rate_limits
            .record_signin_failure(&username, ip)
            .await?;
        return Err(ApiError::InvalidCredentials);
    };
    if let Some(hash) = upgraded_hash {
        // The old hash still verifies; failing to upgrade it is not the caller's problem.
        if let Err(err) = context.users.update_password_hash(user.id, hash).await {
            tracing::warn!(error = %err, "could not store an upgraded password hash");
        }
    }
    let client = ClientInfo {
        user_agent: user_agent(req),
        ip: Some(ip.to_string()),
    };
    let session = context.sessions.create(user.id, client).await?;
    token_response(context, session.token, session.idle_expires_in)
}

/// Refresh proper. Failures before the rotation are the outer error; the
/// rotation's own result comes with its outcome (for metrics).
async fn refresh_session(
    context: &Context<'_>,
    req: &Request,
    body: RefreshRequest,
) -> Result<(RefreshOutcome, Result<TokenResponse, ApiError>), ApiError> {
    let presented = presented_refresh_token(context, req, body).ok_or(ApiError::InvalidToken)?;
    context
        .rate_limits
        .hit_refresh(presented.session_id)
        .await?;
    match context.sessions.rotate(presented).await? {
        Rotation::Rotated {
            token,
            idle_expires_in,
            converged,
        } => {
            let outcome = if converged {
                RefreshOutcome::Converged
            } else {
                RefreshOutcome::Rotated
            };
            Ok((outcome, token_response(context, token, idle_expires_in)))
        }
        Rotation::ReuseDetected => {
            tracing::warn!(session_id = %presented.session_id, "refresh token reuse: session revoked");
            Ok((RefreshOutcome::ReuseDetected, Err(ApiError::InvalidToken)))
        }
        Rotation::Invalid => Ok((RefreshOutcome::Invalid, Err(ApiError::InvalidToken))),
    }
}

/// The authenticated refresh token from the body, or else from the cookie.
fn presented_refresh_token(
    context: &Context<'_>,
    req: &Request,
    body: RefreshRequest,
) -> Option<RefreshToken> {
    let raw = body
        .refresh_token
        .map(|StrictString(token)| token)
        .or_else(|| refresh_token_from_cookie(req))?;
    context.refresh_keys.verify(&raw)
}

fn token_response(
    context: &Context<'_>,
    token: RefreshToken,
    idle_expires_in: Duration,
) -> Result<TokenResponse, ApiError> {
    let access_token = context
        .access_tokens
        .issue(token.user_id, token.session_id)
        .map_err(|err| {
            tracing::error!(error = %err, "cannot sign an access token");
            ApiError::Internal
        })?;
    let refresh_token = context.refresh_keys.issue(token);
    let cookie = context.refresh_cookie.set(&refresh_token, idle_expires_in);
    let pair = TokenPair {
        access_token,
        token_type: "Bearer".into(),
        expires_in: context.access_tokens.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: whole_seconds(idle_expires_in),
        session_id: token.session_id,
    };
    Ok(TokenResponse::Issued(Json(pair), cookie, "no-store".into()))
}

/// Rounded up, so that a session with time left never reports 0.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

/// The client's user agent, as the session list shows it.
fn user_agent(req: &Request) -> Option<String> {
    const MAX_USER_AGENT_CHARS: usize = 256;
    req.headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect())
}
