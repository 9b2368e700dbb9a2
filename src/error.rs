//! The one HTTP error type and its one mapping to `application/problem+json`
//! (RFC 9457). Every error the server answers, its own or the framework's,
//! leaves through [`ApiError::into_problem_response`], where it is also
//! logged, once.

use std::{marker::PhantomData, time::Duration};

use poem::{
    Response,
    http::{StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{ToJSON, Type},
};

use crate::{
    admin_tokens::AdminTokenError,
    auth::hashing::HashingError,
    clock::whole_seconds,
    domain::{Violation, Violations},
    flows::{
        AccountError, IntrospectionError, RefreshError, RevokeError, SigninError, SignupError,
        UserOpError,
    },
    keyspace::RedisError,
    rate_limit::RateLimitError,
    users::UserStoreError,
};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
const PROBLEM_TYPE_BASE: &str = "https://tessera.dev/problems/";

/// Any error kept as the cause of a 5xx, for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One broken rule of a well-formed request.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct FieldError {
    /// The request field, e.g. `password`.
    pub field: String,
    /// Stable code: `too_short`, `too_long`, `common`, `contains_username`,
    /// `too_weak`, `invalid_username`, `unchanged`, `invalid_code`, `out_of_range`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl From<&Violation> for FieldError {
    fn from(violation: &Violation) -> Self {
        FieldError {
            field: violation.field.to_owned(),
            code: violation.rule.code().to_owned(),
            message: violation.rule.message(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Object)]
#[oai(rename = "Problem")]
pub struct Problem {
    /// URI whose last segment is a stable code clients can switch on.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The broken rules; present on 422 only.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldError>>,
    /// The RFC 6749 §5.2 error code, under `/oauth/` only
    /// (`invalid_client`, `invalid_request`).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// The kinds of problem the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    MalformedRequest,
    MissingBearer,
    InvalidToken,
    InvalidCredentials,
    NotFound,
    MethodNotAllowed,
    CorsRefused,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Validation,
    RateLimited,
    MfaLocked,
    InvalidClient,
    Unavailable,
    Internal,
}

/// What a kind of problem looks like on the wire and in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemSpec {
    pub status: StatusCode,
    /// Ends the problem `type`.
    pub code: &'static str,
    pub title: &'static str,
    /// The response description in the OpenAPI document.
    pub description: &'static str,
}

impl ProblemKind {
    /// The table of problems: one row per kind.
    pub const fn spec(self) -> ProblemSpec {
        const fn row(
            status: StatusCode,
            code: &'static str,
            title: &'static str,
            description: &'static str,
        ) -> ProblemSpec {
            ProblemSpec {
                status,
                code,
                title,
                description,
            }
        }
        use ProblemKind as K;
        match self {
            K::MalformedRequest => row(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "Malformed request",
                "Not JSON, or not the operation's shape (`malformed_request`).",
            ),
            K::MissingBearer => row(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Authentication required",
                "No access token (`invalid_token`, `WWW-Authenticate: Bearer`).",
            ),
            K::InvalidToken => row(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Invalid token",
                "The token is invalid, expired or revoked (`invalid_token`).",
            ),
            K::InvalidCredentials => row(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "Unknown user, or a wrong password or second-factor code (`invalid_credentials`).",
            ),
            K::NotFound => row(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "Not found (`not_found`).",
            ),
            K::MethodNotAllowed => row(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "The resource does not support the method (`method_not_allowed`).",
            ),
            K::CorsRefused => row(
                StatusCode::FORBIDDEN,
                "cors_refused",
                "Cross-origin request refused",
                "The browser origin, method or header is not allowed by CORS (`cors_refused`).",
            ),
            K::Conflict => row(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "Conflict with existing state (`conflict`).",
            ),
            K::PayloadTooLarge => row(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "Request body over the size limit (`payload_too_large`).",
            ),
            K::UnsupportedMediaType => row(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "Request body is not of the operation's type: `application/json`, or `application/x-www-form-urlencoded` under `/oauth/` (`unsupported_media_type`).",
            ),
            K::Validation => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Validation failed",
                "Well-formed input that breaks a rule (`validation`); see `errors`.",
            ),
            K::RateLimited => row(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                "Rate limited (`rate_limited`); see `Retry-After`.",
            ),
            K::MfaLocked => row(
                StatusCode::TOO_MANY_REQUESTS,
                "mfa_locked",
                "Second factor locked",
                "Too many wrong codes in a row: the second factor is locked until an operator resets it or the password is reset (`mfa_locked`).",
            ),
            K::InvalidClient => row(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Invalid client",
                "No or wrong HTTP Basic client credentials (`invalid_client`, `WWW-Authenticate: Basic`).",
            ),
            K::Unavailable => row(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "A dependency is down or the server is overloaded (`unavailable`); see `Retry-After`.",
            ),
            K::Internal => row(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
                "A bug (`internal`).",
            ),
        }
    }
}

/// Which dependency is missing when the server answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Database,
    Redis,
    /// The key a user's second-factor secret is sealed under.
    MfaKey,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Database => "database",
            Dependency::Redis => "redis",
            Dependency::MfaKey => "second-factor key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// An RFC 6749 request missing what it needs (`/oauth/`).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Missing or wrong HTTP Basic client credentials (`/oauth/`).
    #[error("invalid client")]
    InvalidClient,
    #[error("missing bearer token")]
    MissingBearer,
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("cross-origin request refused")]
    CorsRefused,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType { expected: &'static str },
    #[error("validation failed: {0}")]
    Validation(Violations),
    #[error("rate limited for {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("second factor locked")]
    MfaLocked,
    #[error("overloaded")]
    Overloaded,
    #[error("{} unavailable", .dependency.name())]
    Unavailable {
        dependency: Dependency,
        #[source]
        source: BoxError,
    },
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// How long a client should wait after a 503.
const RETRY_UNAVAILABLE_AFTER_SECS: u64 = 1;

impl ApiError {
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        ApiError::Internal(cause.into())
    }

    pub fn kind(&self) -> ProblemKind {
        match self {
            ApiError::MalformedRequest(_) | ApiError::InvalidRequest(_) => {
                ProblemKind::MalformedRequest
            }
            ApiError::InvalidClient => ProblemKind::InvalidClient,
            ApiError::MissingBearer => ProblemKind::MissingBearer,
            ApiError::InvalidToken => ProblemKind::InvalidToken,
            ApiError::InvalidCredentials => ProblemKind::InvalidCredentials,
            ApiError::NotFound => ProblemKind::NotFound,
            ApiError::MethodNotAllowed => ProblemKind::MethodNotAllowed,
            ApiError::CorsRefused => ProblemKind::CorsRefused,
            ApiError::Conflict(_) => ProblemKind::Conflict,
            ApiError::PayloadTooLarge => ProblemKind::PayloadTooLarge,
            ApiError::UnsupportedMediaType { .. } => ProblemKind::UnsupportedMediaType,
            ApiError::Validation(_) => ProblemKind::Validation,
            ApiError::RateLimited { .. } => ProblemKind::RateLimited,
            ApiError::MfaLocked => ProblemKind::MfaLocked,
            ApiError::Overloaded | ApiError::Unavailable { .. } => ProblemKind::Unavailable,
            ApiError::Internal(_) => ProblemKind::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().spec().status
    }

    /// Never echoes request content: a detail may only carry our own words
    /// and field names.
    fn detail(&self) -> String {
        match self {
            ApiError::MalformedRequest(detail) | ApiError::InvalidRequest(detail) => {
                (*detail).into()
            }
            ApiError::InvalidClient => {
                "This endpoint needs the HTTP Basic credentials of a configured client.".into()
            }
            ApiError::MissingBearer => {
                "This endpoint needs an `Authorization: Bearer` access token.".into()
            }
            ApiError::InvalidToken => "The token is invalid, expired or revoked.".into(),
            ApiError::InvalidCredentials => "The username or password is incorrect.".into(),
            ApiError::NotFound => "No such resource.".into(),
            ApiError::MethodNotAllowed => {
                "This resource does not support the request method.".into()
            }
            ApiError::CorsRefused => {
                "This origin, method or header is not allowed for cross-origin requests.".into()
            }
            ApiError::Conflict(what) => (*what).into(),
            ApiError::PayloadTooLarge => "The request body exceeds the size limit.".into(),
            ApiError::UnsupportedMediaType { expected } => {
                format!("Send the request body as `{expected}`.")
            }
            ApiError::Validation(broken) => {
                format!("{} rule(s) broken; see `errors`.", broken.0.len())
            }
            ApiError::RateLimited { .. } => format!(
                "Too many attempts; retry in {} s.",
                self.retry_after_secs().unwrap_or(1)
            ),
            ApiError::MfaLocked => {
                "Too many wrong codes: the second factor is locked; ask an operator to reset it."
                    .into()
            }
            ApiError::Overloaded => {
                format!("The server is busy; retry in {RETRY_UNAVAILABLE_AFTER_SECS} s.")
            }
            ApiError::Unavailable { dependency, .. } => {
                format!("The {} is unavailable; retry shortly.", dependency.name())
            }
            ApiError::Internal(_) => "An unexpected error occurred.".into(),
        }
    }

    /// Whole seconds, rounded up and at least 1, for `Retry-After`.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after } => Some(whole_seconds(*retry_after).max(1)),
            ApiError::Overloaded | ApiError::Unavailable { .. } => {
                Some(RETRY_UNAVAILABLE_AFTER_SECS)
            }
            _ => None,
        }
    }

    pub fn problem(&self) -> Problem {
        let spec = self.kind().spec();
        Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{}", spec.code),
            title: spec.title.into(),
            status: spec.status.as_u16(),
            detail: self.detail(),
            errors: match self {
                ApiError::Validation(broken) => {
                    Some(broken.0.iter().map(FieldError::from).collect())
                }
                _ => None,
            },
            error: match self {
                ApiError::InvalidClient => Some("invalid_client".into()),
                ApiError::InvalidRequest(_) => Some("invalid_request".into()),
                _ => None,
            },
        }
    }

    /// Logs a failure that is ours to look into (5xx) with its causes;
    /// the client's own mistakes are only counted, by the request log.
    fn log(&self) {
        match self {
            ApiError::Unavailable { dependency, source } => tracing::warn!(
                dependency = dependency.name(),
                error = %Causes(source.as_ref()),
                "dependency unavailable"
            ),
            ApiError::Internal(source) => {
                tracing::error!(error = %Causes(source.as_ref()), "internal error")
            }
            _ => {}
        }
    }

    pub fn into_problem_response(self) -> Response {
        self.log();
        let body = self.problem().to_json_string();
        let mut builder = Response::builder()
            .status(self.status())
            .content_type(PROBLEM_CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store");
        match self {
            ApiError::MissingBearer => builder = builder.header(header::WWW_AUTHENTICATE, "Bearer"),
            ApiError::InvalidToken => {
                builder =
                    builder.header(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)
            }
            ApiError::InvalidClient => {
                builder = builder.header(
                    header::WWW_AUTHENTICATE,
                    r#"Basic realm="tessera", charset="UTF-8""#,
                )
            }
            _ => {}
        }
        if let Some(secs) = self.retry_after_secs() {
            builder = builder.header(header::RETRY_AFTER, secs);
        }
        builder.body(body)
    }

    /// Translates an error raised by poem or poem-openapi (routing, content
    /// negotiation, payload parsing, security schemes) into ours; `oauth`
    /// for the RFC 6749 endpoints, whose bodies are forms and whose callers
    /// authenticate with HTTP Basic.
    pub fn from_framework(err: poem::Error, oauth: bool) -> ApiError {
        match err.status() {
            // Parser messages can quote the offending value, which may be a
            // password: they stay out of the body.
            StatusCode::BAD_REQUEST if oauth => ApiError::MalformedRequest(
                "The request is not a form of the operation's parameters (each given once).",
            ),
            StatusCode::BAD_REQUEST => ApiError::MalformedRequest(
                "The request is not valid JSON or does not fit the operation's schema.",
            ),
            StatusCode::UNAUTHORIZED if oauth => ApiError::InvalidClient,
            StatusCode::UNAUTHORIZED => ApiError::MissingBearer,
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            // Only the CORS layer refuses with 403.
            StatusCode::FORBIDDEN => ApiError::CorsRefused,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType {
                expected: if oauth {
                    "application/x-www-form-urlencoded"
                } else {
                    "application/json"
                },
            },
            status => ApiError::internal(format!("unexpected framework error {status}: {err}")),
        }
    }
}

/// An error and its sources, `: `-separated, for one log field or one line
/// of the CLI.
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl From<Violations> for ApiError {
    fn from(broken: Violations) -> Self {
        ApiError::Validation(broken)
    }
}

impl From<HashingError> for ApiError {
    fn from(err: HashingError) -> Self {
        match err {
            HashingError::Overloaded => ApiError::Overloaded,
            failed @ HashingError::Failed(_) => ApiError::internal(failed),
        }
    }
}

impl From<RateLimitError> for ApiError {
    fn from(err: RateLimitError) -> Self {
        match err {
            RateLimitError::Limited { retry_after } => ApiError::RateLimited { retry_after },
            RateLimitError::Redis(err) => err.into(),
        }
    }
}

impl From<RedisError> for ApiError {
    fn from(err: RedisError) -> Self {
        if err.is_outage() {
            ApiError::Unavailable {
                dependency: Dependency::Redis,
                source: err.into(),
            }
        } else {
            ApiError::internal(err)
        }
    }
}

impl From<UserStoreError> for ApiError {
    fn from(err: UserStoreError) -> Self {
        match err {
            UserStoreError::UsernameTaken => ApiError::Conflict("The username is already taken."),
            UserStoreError::NotFound => ApiError::NotFound,
            UserStoreError::Unavailable(source) => ApiError::Unavailable {
                dependency: Dependency::Database,
                source: source.into(),
            },
            unexpected @ UserStoreError::Unexpected(_) => ApiError::internal(unexpected),
        }
    }
}

impl From<SignupError> for ApiError {
    fn from(err: SignupError) -> Self {
        match err {
            SignupError::Hashing(err) => err.into(),
            SignupError::RateLimit(err) => err.into(),
            SignupError::Users(err) => err.into(),
        }
    }
}

impl From<SigninError> for ApiError {
    fn from(err: SigninError) -> Self {
        match err {
            SigninError::InvalidCredentials | SigninError::Superseded => {
                ApiError::InvalidCredentials
            }
            SigninError::Hashing(err) => err.into(),
            SigninError::RateLimit(err) => err.into(),
            SigninError::Users(err) => err.into(),
            SigninError::Sessions(err) => err.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::InvalidToken => ApiError::InvalidToken,
            AccountError::InvalidCredentials | AccountError::WrongCode => {
                ApiError::InvalidCredentials
            }
            AccountError::MfaLocked => ApiError::MfaLocked,
            AccountError::Conflict(what) => ApiError::Conflict(what),
            AccountError::SecretUnreadable => ApiError::Unavailable {
                dependency: Dependency::MfaKey,
                source: "no configured mfa.encryption_key opens the user's TOTP secret".into(),
            },
            AccountError::Invalid(broken) => ApiError::Validation(broken),
            AccountError::Hashing(err) => err.into(),
            AccountError::RateLimit(err) => err.into(),
            AccountError::Users(err) => err.into(),
            AccountError::Sessions(err) => err.into(),
        }
    }
}

impl From<UserOpError> for ApiError {
    fn from(err: UserOpError) -> Self {
        match err {
            UserOpError::NoSuchUser => ApiError::NotFound,
            UserOpError::Users(err) => err.into(),
            UserOpError::Sessions(err) => err.into(),
        }
    }
}

impl From<AdminTokenError> for ApiError {
    fn from(err: AdminTokenError) -> Self {
        match err {
            AdminTokenError::NameTaken => ApiError::Conflict("An admin token of that name exists."),
            AdminTokenError::Store(err) => err.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(err: RefreshError) -> Self {
        match err {
            RefreshError::Invalid | RefreshError::ReuseDetected { .. } => ApiError::InvalidToken,
            RefreshError::RateLimit(err) => err.into(),
            RefreshError::Sessions(err) => err.into(),
        }
    }
}

impl From<RevokeError> for ApiError {
    fn from(err: RevokeError) -> Self {
        match err {
            RevokeError::NotFound => ApiError::NotFound,
            RevokeError::Sessions(err) => err.into(),
        }
    }
}

impl From<IntrospectionError> for ApiError {
    /// An outage is 503, never `active: false`: that would sign every user
    /// out at every resource server.
    fn from(err: IntrospectionError) -> Self {
        match err {
            IntrospectionError::Sessions(err) => err.into(),
            IntrospectionError::Users(err) => err.into(),
        }
    }
}

/// The problem responses an operation can give, for its OpenAPI entry.
pub trait ErrorSet: Send + Sync + 'static {
    const KINDS: &'static [ProblemKind];
}

/// Declares an [`ErrorSet`] marker type per operation, listing its
/// [`ProblemKind`]s; their statuses and descriptions come from the table.
macro_rules! error_set {
    ($($name:ident = [$($kind:ident),+ $(,)?];)+) => {
        $(
            pub struct $name;
            impl $crate::error::ErrorSet for $name {
                const KINDS: &'static [$crate::error::ProblemKind] =
                    &[$($crate::error::ProblemKind::$kind),+];
            }
        )+
    };
}
pub(crate) use error_set;

/// An [`ApiError`] as an operation's documented failure: the set `S` lists
/// the problems the OpenAPI document shows, each with the problem schema.
#[derive(Debug)]
pub struct Failure<S>(pub ApiError, PhantomData<S>);

impl<S, E: Into<ApiError>> From<E> for Failure<S> {
    fn from(err: E) -> Self {
        Failure(err.into(), PhantomData)
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        let status = err.status();
        poem::Error::new(err, status)
    }
}

impl<S> From<Failure<S>> for poem::Error {
    fn from(failure: Failure<S>) -> Self {
        failure.0.into()
    }
}

/// The documented responses of a set of problems: one per status, in
/// ascending order; kinds that share a status share its entry.
pub fn documented_responses(kinds: &[ProblemKind]) -> Vec<(u16, String)> {
    let mut responses: Vec<(u16, String)> = Vec::new();
    for spec in kinds.iter().map(|kind| kind.spec()) {
        let status = spec.status.as_u16();
        match responses.iter_mut().find(|(known, _)| *known == status) {
            Some((_, description)) => {
                description.push(' ');
                description.push_str(spec.description);
            }
            None => responses.push((status, spec.description.to_owned())),
        }
    }
    responses.sort_by_key(|(status, _)| *status);
    responses
}

/// The document wants `'static` descriptions; the sets are few and fixed,
/// so each distinct text is kept once for the life of the process.
fn intern(text: String) -> &'static str {
    static TEXTS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut texts = TEXTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = texts.iter().find(|known| **known == text) {
        return known;
    }
    let text: &'static str = Box::leak(text.into_boxed_str());
    texts.push(text);
    text
}

impl<S: ErrorSet> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: documented_responses(S::KINDS)
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description: intern(description),
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_CONTENT_TYPE,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rule;

    #[test]
    fn validation_problem_lists_every_error() {
        let problem = ApiError::Validation(Violations(vec![
            Violation::new("password", Rule::TooShort { min_chars: 12 }),
            Violation::new("password", Rule::Common),
        ]))
        .problem();
        assert_eq!(problem.kind, "https://tessera.dev/problems/validation");
        assert_eq!(problem.status, 422);
        let errors = problem.errors.unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code, "too_short");
        assert_eq!(errors[0].field, "password");
    }

    #[test]
    fn only_validation_carries_errors() {
        assert!(ApiError::Conflict("taken").problem().errors.is_none());
    }

    #[test]
    fn kinds_that_share_a_status_share_one_documented_response() {
        let responses = documented_responses(&[
            ProblemKind::Unavailable,
            ProblemKind::MissingBearer,
            ProblemKind::InvalidToken,
        ]);
        let statuses: Vec<u16> = responses.iter().map(|(status, _)| *status).collect();
        assert_eq!(statuses, [401, 503]);
        assert!(responses[0].1.contains("No access token"));
        assert!(responses[0].1.contains("revoked"));
    }

    #[test]
    fn outages_are_503_and_bad_values_500() {
        let outage = ApiError::from(RedisError::TimedOut(Duration::from_secs(1)));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        let corrupt = ApiError::from(RedisError::Unexpected("rotation status".into()));
        assert_eq!(corrupt.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let vanished = ApiError::from(UserStoreError::NotFound);
        assert_eq!(vanished.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let limited = ApiError::RateLimited {
            retry_after: Duration::from_millis(1200),
        };
        assert_eq!(limited.retry_after_secs(), Some(2));
        let soon = ApiError::RateLimited {
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(soon.retry_after_secs(), Some(1));
    }
}
