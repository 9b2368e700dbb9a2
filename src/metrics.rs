//! Prometheus metrics: what the server counts, and the text it is scraped as.
//!
//! Labels are bounded on purpose: routes are path patterns (never raw paths,
//! which carry ids), outcomes are fixed sets, and nothing identifies a user.

use std::{sync::Arc, time::Duration};

use poem::{
    Endpoint, IntoResponse, PathPattern, Request, Response, Result,
    http::{Method, StatusCode, header},
    web::headers::{Authorization, HeaderMapExt, authorization::Bearer},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use subtle::ConstantTimeEq;

use crate::{
    auth::hashing::{HashingLoad, HashingPool},
    error::ApiError,
    settings::Secret,
};

/// How a sign-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninOutcome {
    Success,
    /// The right password; the second factor is asked for next.
    MfaRequired,
    /// Unknown user or wrong password (one outcome: the API does not tell them apart).
    Invalid,
    /// Refused by the failed-sign-in rate limit.
    Limited,
    /// Shed (hashing overloaded) or a dependency was down.
    Unavailable,
    /// A bug or a corrupt stored value (500).
    Error,
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Rotated,
    /// The previous token within the grace window: the current one handed back.
    Converged,
    /// Unknown, expired, revoked or malformed.
    Invalid,
    /// An old token came back and its session was revoked.
    ReuseDetected,
    Limited,
    Unavailable,
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The route label of a request nothing matched (404s, scans): one series,
/// however many distinct paths arrive.
const UNMATCHED_ROUTE: &str = "unmatched";

/// The method label: HTTP allows any token as a method, so everything
/// beyond the standard ones shares one value.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|standard| *standard == method.as_str())
        .unwrap_or("other")
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    signins: Family<OutcomeLabels, Counter>,
    refreshes: Family<OutcomeLabels, Counter>,
    reuse_detected: Counter,
    hashing_active: Gauge,
    hashing_queued: Gauge,
}

impl Metrics {
    /// The server's metrics, with the audit log's drop counter among them.
    pub fn new(audit_events_dropped: Counter) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "tessera_http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to 10 s: from a bearer check to a request queued for hashing.
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        registry.register(
            "tessera_http_request_duration_seconds",
            "HTTP request latency by route pattern and method",
            durations.clone(),
        );
        let signins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "tessera_signins",
            "Sign-in attempts by outcome (success, invalid, limited, unavailable, error)",
            signins.clone(),
        );
        let refreshes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "tessera_refreshes",
            "Refresh attempts by outcome (rotated, converged, invalid, reuse_detected, limited, unavailable, error)",
            refreshes.clone(),
        );
        let reuse_detected = Counter::default();
        registry.register(
            "tessera_refresh_token_reuse_detected",
            "Replayed refresh tokens (likely theft); each revoked its session",
            reuse_detected.clone(),
        );
        let hashing_active = Gauge::default();
        registry.register(
            "tessera_hashing_active_jobs",
            "Password hashes being computed now",
            hashing_active.clone(),
        );
        registry.register(
            "tessera_audit_events_dropped",
            "Audit events lost: the retry queue was full, or the database had not taken them at shutdown",
            audit_events_dropped,
        );
        let hashing_queued = Gauge::default();
        registry.register(
            "tessera_hashing_queue_depth",
            "Requests holding a hashing slot and waiting for a worker",
            hashing_queued.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            signins,
            refreshes,
            reuse_detected,
            hashing_active,
            hashing_queued,
        }
    }
    pub fn signin(&self, outcome: SigninOutcome) {
        let outcome = match outcome {
            SigninOutcome::Success => "success",
            SigninOutcome::MfaRequired => "mfa_required",
            SigninOutcome::Invalid => "invalid",
            SigninOutcome::Limited => "limited",
            SigninOutcome::Unavailable => "unavailable",
            SigninOutcome::Error => "error",
        };
        self.signins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn refresh(&self, outcome: RefreshOutcome) {
        if outcome == RefreshOutcome::ReuseDetected {
            self.reuse_detected.inc();
        }
        let outcome = match outcome {
            RefreshOutcome::Rotated => "rotated",
            RefreshOutcome::Converged => "converged",
            RefreshOutcome::Invalid => "invalid",
            RefreshOutcome::ReuseDetected => "reuse_detected",
            RefreshOutcome::Limited => "limited",
            RefreshOutcome::Unavailable => "unavailable",
            RefreshOutcome::Error => "error",
        };
        self.refreshes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn request(
        &self,
        route: Option<&PathPattern>,
        method: &Method,
        status: StatusCode,
        took: Duration,
    ) {
        // The catch-all nest of the API matches unknown paths with an empty pattern.
        let route = route
            .map(|pattern| &*pattern.0)
            .filter(|pattern| !pattern.is_empty())
            .unwrap_or(UNMATCHED_ROUTE)
            .to_owned();
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status: status.as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// The scrape: every metric in the Prometheus text format (0.0.4).
    pub fn render(&self, hashing: HashingLoad) -> String {
        self.hashing_active.set(hashing.active as i64);
        self.hashing_queued.set(hashing.queued as i64);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// `GET /metrics`: the scrape, answered to everyone (a listener of its own,
/// off the public network) or only to a bearer token (the main listener).
pub struct Scrape {
    pub metrics: Arc<Metrics>,
    pub hashing: HashingPool,
    pub token: Option<Secret>,
}

impl Endpoint for Scrape {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        if let Some(token) = &self.token {
            let presented = req
                .headers()
                .typed_get::<Authorization<Bearer>>()
                .ok_or(ApiError::MissingBearer)?;
            let matches: bool = presented
                .token()
                .as_bytes()
                .ct_eq(token.expose().as_bytes())
                .into();
            if !matches {
                return Err(ApiError::InvalidToken.into());
            }
        }
        Ok(Response::builder()
            .content_type(prometheus_text::CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store")
            .body(self.metrics.render(self.hashing.load())))
    }
}

/// Counts and times every request by the route pattern that matched it.
/// Sits outside the problem+json boundary, so framework errors count too.
pub async fn record_requests<E: Endpoint>(
    metrics: Arc<Metrics>,
    next: E,
    req: Request,
) -> Result<Response> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let response = next.call(req).await.map(IntoResponse::into_response);
    let (status, route) = match &response {
        Ok(response) => (response.status(), response.data::<PathPattern>()),
        Err(err) => (err.status(), err.data::<PathPattern>()),
    };
    metrics.request(route, &method, status, started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_gauges_render_as_prometheus_text() {
        let metrics = Metrics::new(Counter::default());
        metrics.signin(SigninOutcome::Success);
        metrics.signin(SigninOutcome::Invalid);
        metrics.signin(SigninOutcome::Invalid);
        metrics.refresh(RefreshOutcome::ReuseDetected);
        let text = metrics.render(HashingLoad {
            active: 2,
            queued: 5,
        });
        for line in [
            "tessera_signins_total{outcome=\"success\"} 1",
            "tessera_signins_total{outcome=\"invalid\"} 2",
            "tessera_refreshes_total{outcome=\"reuse_detected\"} 1",
            "tessera_refresh_token_reuse_detected_total 1",
            "tessera_hashing_active_jobs 2",
            "tessera_hashing_queue_depth 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn requests_without_a_route_share_one_series() {
        let metrics = Metrics::new(Counter::default());
        let ok = PathPattern(Arc::from("/v1/sessions/:id"));
        metrics.request(
            Some(&ok),
            &Method::DELETE,
            StatusCode::NO_CONTENT,
            Duration::from_millis(3),
        );
        let caught_by_the_api_nest = PathPattern(Arc::from(""));
        metrics.request(
            Some(&caught_by_the_api_nest),
            &Method::GET,
            StatusCode::NOT_FOUND,
            Duration::from_micros(200),
        );
        for _ in 0..2 {
            metrics.request(
                None,
                &Method::from_bytes(b"BREW").unwrap(),
                StatusCode::NOT_FOUND,
                Duration::from_micros(200),
            );
        }
        let text = metrics.render(HashingLoad::default());
        assert!(text.contains(
            "tessera_http_requests_total{route=\"/v1/sessions/:id\",method=\"DELETE\",status=\"204\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "tessera_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{route=\"/v1/sessions/:id\",method=\"DELETE\",le=\"0.005\"} 1"
        ), "{text}");
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{route=\"/v1/sessions/:id\",method=\"DELETE\",le=\"0.0025\"} 0"
        ), "{text}");
    }
}
