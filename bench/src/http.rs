//! The HTTP client side shared by the Tessera scenarios and the framework baseline.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, Response, Url};

use crate::load::{Connection, Outcome};

/// A client for one load connection.
///
/// One idle connection per host and one client per load task means each task
/// keeps exactly one keep-alive TCP connection, like a real client would,
/// instead of reqwest spreading the load over a shared pool.
pub fn connection_client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        // A request stuck this long is a failure, not a latency sample; it also
        // stops a hung server from hanging the benchmark.
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a plain-HTTP reqwest client always builds")
}

/// A client shared by the set-up code (seeding, readiness polling).
pub fn shared_client() -> Client {
    Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a plain-HTTP reqwest client always builds")
}

pub fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("tokens are header-safe ASCII")
}

/// Reads the whole answer (so the connection can be reused) and turns
/// anything but a 2xx into a short, stable message for the error samples.
pub async fn expect_success(
    operation: &str,
    response: reqwest::Result<Response>,
) -> Result<Bytes, String> {
    let response = response.map_err(|err| format!("{operation}: {}", describe(&err)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("{operation}: reading body: {}", describe(&err)))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!(
            "{operation}: HTTP {}{}",
            status.as_u16(),
            problem_code(&body)
        ))
    }
}

/// The stable code at the end of a problem+json `type`, e.g. ` (invalid_token)`.
fn problem_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|problem| {
            let kind = problem.get("type")?.as_str()?;
            Some(format!(" ({})", kind.rsplit('/').next().unwrap_or(kind)))
        })
        .unwrap_or_default()
}

/// reqwest's top-level message says little ("error sending request"); the
/// cause chain says why (connection refused, reset, timed out).
fn describe(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "timed out".to_string()
    } else {
        "transport error".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `GET url` with a fixed `Authorization` header, expecting 2xx: Tessera's
/// `/v1/me` and the framework baseline's `/me` send the very same request.
pub struct BearerGet {
    client: Client,
    url: Url,
    authorization: HeaderValue,
}

impl BearerGet {
    pub fn new(url: Url, authorization: HeaderValue) -> Self {
        BearerGet {
            client: connection_client(),
            url,
            authorization,
        }
    }
}

impl Connection for BearerGet {
    async fn request(&mut self) -> Outcome {
        let response = self
            .client
            .get(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await;
        expect_success("me", response).await.map(drop)
    }
}
