//! The one HTTP error type and its one mapping to `application/problem+json`
//! (RFC 9457). Every error the server answers, its own or the framework's,
//! leaves through [`ApiError::into_problem_response`].

use std::marker::PhantomData;

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
    auth::hashing::HashingError, keyspace::RedisUnavailable, rate_limit::RateLimitError,
    users::UserStoreError,
};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
const PROBLEM_TYPE_BASE: &str = "https://tessera.dev/problems/";

/// One broken rule of a well-formed request.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct FieldError {
    /// The request field, e.g. `password`.
    pub field: String,
    /// Stable code: `too_short`, `too_long`, `common`, `contains_username`,
    /// `too_weak`, `invalid_username`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
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
}

/// Which dependency is missing when the server answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Database,
    Redis,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Database => "database",
            Dependency::Redis => "redis",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    MalformedRequest(String),
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
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("rate limited for {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("overloaded")]
    Overloaded { retry_after_secs: u64 },
    #[error("{} unavailable", .0.name())]
    Unavailable(Dependency),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingBearer | ApiError::InvalidToken | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code that ends the problem `type`.
    fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::MissingBearer | ApiError::InvalidToken => "invalid_token",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedRequest(_) => "Malformed request",
            ApiError::MissingBearer => "Authentication required",
            ApiError::InvalidToken => "Invalid token",
            ApiError::InvalidCredentials => "Invalid credentials",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PayloadTooLarge => "Payload too large",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::Validation(_) => "Validation failed",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal => "Internal server error",
        }
    }

    /// Never echoes request content: a detail may only carry our own words
    /// and field names.
    fn detail(&self) -> String {
        match self {
            ApiError::MalformedRequest(detail) => detail.clone(),
            ApiError::MissingBearer => {
                "This endpoint needs an `Authorization: Bearer` access token.".into()
            }
            ApiError::InvalidToken => "The token is invalid, expired or revoked.".into(),
            ApiError::InvalidCredentials => "The username or password is incorrect.".into(),
            ApiError::NotFound => "No such resource.".into(),
            ApiError::MethodNotAllowed => {
                "This resource does not support the request method.".into()
            }
            ApiError::Conflict(what) => (*what).into(),
            ApiError::PayloadTooLarge => "The request body exceeds the size limit.".into(),
            ApiError::UnsupportedMediaType => "Send the request body as `application/json`.".into(),
            ApiError::Validation(errors) => {
                format!("{} rule(s) broken; see `errors`.", errors.len())
            }
            ApiError::RateLimited { retry_after_secs } => {
                format!("Too many attempts; retry in {retry_after_secs} s.")
            }
            ApiError::Overloaded { retry_after_secs } => {
                format!("The server is busy; retry in {retry_after_secs} s.")
            }
            ApiError::Unavailable(dependency) => {
                format!("The {} is unavailable; retry shortly.", dependency.name())
            }
            ApiError::Internal => "An unexpected error occurred.".into(),
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{}", self.code()),
            title: self.title().into(),
            status: self.status().as_u16(),
            detail: self.detail(),
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }

    pub fn into_problem_response(self) -> Response {
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
            ApiError::RateLimited { retry_after_secs }
            | ApiError::Overloaded { retry_after_secs } => {
                builder = builder.header(header::RETRY_AFTER, retry_after_secs.max(1))
            }
            ApiError::Unavailable(_) => builder = builder.header(header::RETRY_AFTER, 1),
            _ => {}
        }
        builder.body(body)
    }

    /// Translates an error raised by poem or poem-openapi (routing, content
    /// negotiation, payload parsing, security schemes) into ours.
    pub fn from_framework(err: &poem::Error) -> ApiError {
        match err.status() {
            // Parser messages can quote the offending value, which may be a
            // password: they stay out of the body.
            StatusCode::BAD_REQUEST => ApiError::MalformedRequest(
                "The request is not valid JSON or does not fit the operation's schema.".into(),
            ),
            StatusCode::UNAUTHORIZED => ApiError::MissingBearer,
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            status => {
                tracing::error!(%status, error = %err, "unexpected framework error");
                ApiError::Internal
            }
        }
    }
}

impl From<HashingError> for ApiError {
    fn from(err: HashingError) -> Self {
        match err {
            HashingError::Overloaded => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            HashingError::Failed(reason) => {
                tracing::error!(%reason, "password hashing failed");
                ApiError::Internal
            }
        }
    }
}

impl From<RateLimitError> for ApiError {
    fn from(err: RateLimitError) -> Self {
        match err {
            RateLimitError::Limited(left) => ApiError::RateLimited {
                retry_after_secs: left.as_millis().div_ceil(1000) as u64,
            },
            RateLimitError::Unavailable(err) => err.into(),
        }
    }
}

impl From<RedisUnavailable> for ApiError {
    fn from(err: RedisUnavailable) -> Self {
        tracing::warn!(error = %err, "redis unavailable");
        ApiError::Unavailable(Dependency::Redis)
    }
}

impl From<UserStoreError> for ApiError {
    fn from(err: UserStoreError) -> Self {
        match err {
            UserStoreError::UsernameTaken => ApiError::Conflict("The username is already taken."),
            UserStoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                ApiError::Unavailable(Dependency::Database)
            }
        }
    }
}

/// The problem responses an operation can give, for its OpenAPI entry.
pub trait ErrorSet: Send + Sync + 'static {
    const STATUSES: &'static [u16];
}

/// Declares an [`ErrorSet`] marker type per operation.
macro_rules! error_set {
    ($($name:ident = [$($status:literal),+ $(,)?];)+) => {
        $(
            pub struct $name;
            impl $crate::error::ErrorSet for $name {
                const STATUSES: &'static [u16] = &[$($status),+];
            }
        )+
    };
}
pub(crate) use error_set;

/// An [`ApiError`] as an operation's documented failure: the set `S` lists
/// the statuses the OpenAPI document shows, each with the problem schema.
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

impl<S: ErrorSet> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&status| MetaResponse {
                    description: status_description(status),
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

fn status_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed request: not JSON, or not the operation's shape (`malformed_request`).",
        401 => "Not authenticated (`invalid_credentials` or `invalid_token`).",
        404 => "Not found (`not_found`).",
        409 => "Conflict with existing state (`conflict`).",
        413 => "Request body over the size limit.",
        415 => "Request body is not `application/json`.",
        422 => "Well-formed input that breaks a rule (`validation`); see `errors`.",
        429 => "Rate limited (`rate_limited`); see `Retry-After`.",
        503 => "A dependency is down or the server is overloaded (`unavailable`).",
        _ => "Error.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_every_error() {
        let problem = ApiError::Validation(vec![
            FieldError::new("password", "too_short", "short"),
            FieldError::new("password", "common", "common"),
        ])
        .problem();
        assert_eq!(problem.kind, "https://tessera.dev/problems/validation");
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors.unwrap().len(), 2);
    }

    #[test]
    fn only_validation_carries_errors() {
        assert!(ApiError::Conflict("taken").problem().errors.is_none());
    }
}
