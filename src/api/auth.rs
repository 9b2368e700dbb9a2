use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Cookie, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags, Context, account::live_caller, bearer::Bearer, client_info, me::UserView,
    strict::StrictString,
};
use crate::{
    audit::Acting,
    clock::whole_seconds,
    domain::PasswordAttempt,
    error::{ApiError, Failure, error_set},
    flows::{self, Origin, PasswordReset, SignedIn, SigninRequest},
    metrics::{RefreshOutcome, SigninOutcome},
    sessions::{NewSession, RefreshToken},
};

error_set! {
    SignupErrors = [MalformedRequest, Conflict, PayloadTooLarge, UnsupportedMediaType, Validation, RateLimited, Unavailable];
    SigninErrors = [MalformedRequest, InvalidCredentials, PayloadTooLarge, UnsupportedMediaType, RateLimited, Unavailable];
    SigninMfaErrors = [MalformedRequest, InvalidCredentials, InvalidToken, PayloadTooLarge, UnsupportedMediaType, RateLimited, MfaLocked, Unavailable];
    RefreshErrors = [MalformedRequest, InvalidToken, PayloadTooLarge, UnsupportedMediaType, RateLimited, Unavailable];
    SignoutErrors = [MalformedRequest, PayloadTooLarge, UnsupportedMediaType, Unavailable];
    SignoutAllErrors = [InvalidToken, MissingBearer, Unavailable];
    ResetPasswordErrors = [MalformedRequest, InvalidToken, PayloadTooLarge, UnsupportedMediaType, Validation, RateLimited, Unavailable];
}

/// Username and password, as sent to sign-up and sign-in.
#[derive(Object)]
struct Credentials {
    /// 3–32 characters of `[A-Za-z0-9._-]`, starting with a letter or digit; case-insensitive.
    username: StrictString,
    /// 12–128 characters; not common, not containing the username, strong enough.
    password: StrictString,
}

/// The second step of a sign-in.
#[derive(Object)]
struct SigninMfaRequest {
    /// From the `202` answer of sign-in.
    mfa_token: StrictString,
    /// 6 digits from the authenticator, or an unused recovery code.
    code: StrictString,
}

/// The right password for a user whose second factor is on: send a code
/// with this token to `signinMfa`.
#[derive(Object)]
struct MfaChallengeView {
    /// `tsm_…`; single use.
    mfa_token: String,
    /// Seconds until the token expires.
    expires_in: u64,
    /// What `code` may be: `totp`, and `recovery_code` while one is left.
    /// Later versions may add values; ignore the ones you do not know.
    methods: Vec<String>,
}

/// A refresh token in the body; browsers may send `{}` and rely on the cookie.
#[derive(Object)]
struct RefreshRequest {
    /// Wins over the `tessera_refresh` cookie when both are sent.
    refresh_token: Option<StrictString>,
}

/// A reset token from an operator and the new password.
#[derive(Object)]
struct ResetPasswordRequest {
    /// `tsp_…`, as issued by `tessera users reset-password`.
    reset_token: StrictString,
    /// The sign-up rules apply.
    new_password: StrictString,
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
enum SigninResponse {
    /// A new token pair; the refresh token is also set as an `HttpOnly` cookie.
    #[oai(status = 200)]
    Issued(
        Json<TokenPair>,
        #[oai(header = "Set-Cookie")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The password is right and the second factor is on: no tokens yet.
    #[oai(status = 202)]
    Challenged(
        Json<MfaChallengeView>,
        #[oai(header = "Cache-Control")] String,
    ),
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

#[derive(ApiResponse)]
enum ResetPasswordResponse {
    /// The password is set and every session of the user is revoked.
    #[oai(status = 204)]
    Reset,
}

/// The refresh cookie browsers send instead of a body token.
type RefreshCookieParam = Cookie<Option<String>>;

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
        let Credentials { username, password } = body.0;
        let (username, password) = context
            .password_policy
            .parse_new_account(&username.0, password.0)?;
        let origin = Origin::Client(client_info(&context, req));
        let user = flows::sign_up(
            &context.stores,
            &context.hashing,
            origin,
            username,
            password,
        )
        .await?;
        Ok(SignupResponse::Created(Json(user.into()), "/v1/me".into()))
    }

    /// Sign in
    ///
    /// Answers the same 401 `invalid_credentials`, in the same time, for an
    /// unknown user and for a wrong password. With the second factor on, the
    /// right password answers 202 with an `mfa_token` for `signinMfa`.
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<Credentials>,
    ) -> Result<SigninResponse, Failure<SigninErrors>> {
        let Credentials { username, password } = body.0;
        let request = SigninRequest {
            username: username.0,
            password: PasswordAttempt::new(password.0),
            client: client_info(&context, req),
        };
        let result = flows::sign_in(&context.stores, &context.hashing, request).await;
        context.metrics.signin(SigninOutcome::of(&result));
        match result? {
            SignedIn::Session(session) => {
                let TokenResponse::Issued(pair, cookie, cache) = token_response(&context, session)?;
                Ok(SigninResponse::Issued(pair, cookie, cache))
            }
            SignedIn::Challenge(challenge) => {
                let mut methods = vec!["totp".to_owned()];
                if challenge.recovery_codes_left {
                    methods.push("recovery_code".to_owned());
                }
                let view = MfaChallengeView {
                    mfa_token: challenge.token.expose().to_owned(),
                    expires_in: whole_seconds(challenge.expires_in),
                    methods,
                };
                Ok(SigninResponse::Challenged(Json(view), "no-store".into()))
            }
        }
    }

    /// Sign in: the second step
    ///
    /// The `mfa_token` of a `202` sign-in and a code (TOTP or an unused
    /// recovery code) give the token pair and cookie. A wrong code is 401
    /// `invalid_credentials`; a dead token (spent, expired, too many wrong
    /// codes, or the account changed) 401 `invalid_token`.
    #[oai(path = "/signin/mfa", method = "post", operation_id = "signinMfa")]
    async fn signin_mfa(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<SigninMfaRequest>,
    ) -> Result<TokenResponse, Failure<SigninMfaErrors>> {
        let SigninMfaRequest { mfa_token, code } = body.0;
        let result = flows::sign_in_with_code(
            &context.stores,
            &mfa_token.0,
            &code.0,
            client_info(&context, req),
        )
        .await;
        context
            .metrics
            .signin(SigninOutcome::of_second_step(&result));
        Ok(token_response(&context, result?)?)
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
        #[oai(name = "tessera_refresh")] cookie: RefreshCookieParam,
        body: Json<RefreshRequest>,
    ) -> Result<TokenResponse, Failure<RefreshErrors>> {
        let presented = presented_refresh_token(&context, body.0, cookie);
        let client = client_info(&context, req);
        let result = flows::refresh(&context.stores, presented, &client).await;
        context.metrics.refresh(RefreshOutcome::of(&result));
        Ok(token_response(&context, result?.session)?)
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
        #[oai(name = "tessera_refresh")] cookie: RefreshCookieParam,
        body: Json<RefreshRequest>,
    ) -> Result<SignoutResponse, Failure<SignoutErrors>> {
        let presented = presented_refresh_token(&context, body.0, cookie);
        let by = Acting::user(&client_info(&context, req));
        flows::sign_out(&context.stores, presented, &by).await?;
        Ok(SignoutResponse::SignedOut(context.refresh_cookie.clear()))
    }

    /// Sign out everywhere
    ///
    /// Revokes every session of the caller.
    #[oai(path = "/signout-all", method = "post", operation_id = "signoutAll")]
    async fn signout_all(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
    ) -> Result<SignoutAllResponse, Failure<SignoutAllErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        flows::sign_out_everywhere(&context.stores, caller.user_id, &caller.acting()).await?;
        Ok(SignoutAllResponse::SignedOut)
    }

    /// Reset the password with an operator's reset token
    ///
    /// Spends the token: the password is set and every session of the user
    /// is revoked. An unknown, spent, expired or voided token is the same
    /// 401 `invalid_token`; attempts are limited per client IP.
    #[oai(
        path = "/password-reset",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Json<ResetPasswordRequest>,
    ) -> Result<ResetPasswordResponse, Failure<ResetPasswordErrors>> {
        let ResetPasswordRequest {
            reset_token,
            new_password,
        } = body.0;
        let reset = PasswordReset {
            token: reset_token.0,
            new: new_password.0,
            client: client_info(&context, req),
        };
        flows::reset_password(
            &context.stores,
            &context.hashing,
            &context.password_policy,
            reset,
        )
        .await?;
        Ok(ResetPasswordResponse::Reset)
    }
}

/// The authenticated refresh token from the body, or else from the cookie.
fn presented_refresh_token(
    context: &Context<'_>,
    body: RefreshRequest,
    cookie: RefreshCookieParam,
) -> Option<RefreshToken> {
    let raw = body
        .refresh_token
        .map(|StrictString(token)| token)
        .or(cookie.0)
        .filter(|token| !token.is_empty())?;
    context.refresh_keys.verify(&raw)
}

/// The view of a session just opened or rotated: its tokens and cookie.
fn token_response(context: &Context<'_>, session: NewSession) -> Result<TokenResponse, ApiError> {
    let NewSession {
        token,
        idle_expires_in,
        auth,
    } = session;
    let access_token = context
        .access_tokens
        .issue(token.user_id, token.session_id, auth)
        .map_err(ApiError::internal)?;
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
