//! Cross-cutting HTTP layers: request logging, security headers, the
//! problem+json boundary and the body size limit.

use std::time::{Duration, Instant};

use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result,
    error::ReadBodyError,
    http::{HeaderValue, header},
    web::headers::{ContentLength, HeaderMapExt},
};

use crate::error::ApiError;

/// Logs method, path, status and latency of every request; never bodies,
/// query strings or headers, which may carry passwords and tokens. The path
/// is the client's choice, so only its start is kept.
pub async fn log_request<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    const MAX_LOGGED_PATH_CHARS: usize = 128;
    let started = Instant::now();
    let method = req.method().clone();
    let path: String = req
        .uri()
        .path()
        .chars()
        .take(MAX_LOGGED_PATH_CHARS)
        .collect();
    let response = next.call(req).await.map(IntoResponse::into_response);
    let status = match &response {
        Ok(response) => response.status(),
        Err(err) => err.status(),
    };
    tracing::info!(
        %method,
        %path,
        status = status.as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Headers every response carries; the Swagger UI pages need scripts and
/// styles, so only they go without the restrictive content policy. With
/// CORS on, every response depends on `Origin`, so caches must key on it.
/// Which part of the API a listener serves: the public one (with or without
/// the admin API under `/v1/admin`) or, on `admin.bind`, the admin API alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Public { with_admin: bool },
    Admin,
}

impl Surface {
    fn serves(self, path: &str) -> bool {
        let admin = path == "/v1/admin" || path.starts_with("/v1/admin/");
        match self {
            Surface::Public { with_admin } => with_admin || !admin,
            Surface::Admin => admin,
        }
    }
}

/// Paths a listener does not serve are not found there.
pub async fn surface<E: Endpoint>(surface: Surface, next: E, req: Request) -> Result<Response> {
    if !surface.serves(req.uri().path()) {
        return Err(ApiError::NotFound.into());
    }
    Ok(next.call(req).await?.into_response())
}

pub async fn security_headers<E: Endpoint>(
    vary_by_origin: bool,
    next: E,
    req: Request,
) -> Result<Response> {
    let path = req.uri().path();
    let is_docs = path == "/docs" || path.starts_with("/docs/");
    let is_api = path.starts_with("/v1/") || path.starts_with("/oauth/");
    let mut response = next.call(req).await?.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let varies_by_origin = headers
        .get_all(header::VARY)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"origin"));
    if vary_by_origin && !varies_by_origin {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if !is_docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    // Nothing an auth API answers belongs in a shared cache.
    if is_api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// The boundary where every error, ours or the framework's, becomes problem+json.
pub async fn problem_responses<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let oauth = req.uri().path().starts_with("/oauth/");
    Ok(match next.call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => {
            // The matched route stays known to the metrics outside this boundary.
            let route = err.data::<PathPattern>().cloned();
            let mut response = match err.downcast::<ApiError>() {
                Ok(api_error) => api_error.into_problem_response(),
                Err(other) => ApiError::from_framework(other, oauth).into_problem_response(),
            };
            if let Some(route) = route {
                response.set_data(route);
            }
            response
        }
    })
}

/// Caps request bodies. A declared length over the limit is refused; a body
/// without a declared length is read up to the limit and no further.
pub struct BodyLimit {
    pub max_bytes: std::num::NonZeroUsize,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            max_bytes: self.max_bytes.get(),
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: usize,
}

/// How much of an oversized body is read and dropped so that the client,
/// still sending, sees the 413 instead of a reset connection.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        match req.headers().typed_get::<ContentLength>() {
            Some(ContentLength(declared)) if declared > self.max_bytes as u64 => {
                if declared <= DRAIN_BYTES as u64 {
                    let body = req.take_body().into_bytes_limit(DRAIN_BYTES);
                    let _ = tokio::time::timeout(DRAIN_TIME, body).await;
                }
                return Err(ApiError::PayloadTooLarge.into());
            }
            Some(_) => {}
            None => {
                let body = req
                    .take_body()
                    .into_bytes_limit(self.max_bytes)
                    .await
                    .map_err(|err| match err {
                        ReadBodyError::PayloadTooLarge => ApiError::PayloadTooLarge,
                        _ => ApiError::MalformedRequest("The request body could not be read."),
                    })?;
                req.set_body(body);
            }
        }
        self.inner.call(req).await
    }
}
