//! Security headers on every response, and CORS: off unless origins are listed.

mod common;

use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.new_session().await;
    let responses = [
        app.get("/health/live").await,
        app.get("/v1/nope").await,
        app.get_with_token("/v1/me", &tokens.access_token).await,
        app.get("/openapi.json").await,
    ];
    for response in responses {
        let headers = response.headers();
        assert_eq!(
            headers["x-content-type-options"],
            "nosniff",
            "{}",
            response.url()
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
    }
    let me = app.get_with_token("/v1/me", &tokens.access_token).await;
    assert_eq!(me.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn swagger_ui_may_run_its_scripts() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.headers().get("content-security-policy").is_none());
    assert_eq!(docs.headers()["x-content-type-options"], "nosniff");
}

fn allows_cors(response: &reqwest::Response) -> bool {
    response
        .headers()
        .contains_key("access-control-allow-origin")
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/v1/auth/refresh"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = TestApp::spawn().await;
    let response = preflight(&app, "https://app.example.com").await;
    assert!(!allows_cors(&response));
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(!allows_cors(&response));
}

#[tokio::test]
async fn listed_origins_get_cors_with_credentials_and_others_do_not() {
    let app = TestApp::with(Backend::Sqlite)
        .set("server.cors_allowed_origins", "https://app.example.com")
        .start()
        .await;
    let response = preflight(&app, "https://app.example.com").await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");

    let response = preflight(&app, "https://evil.example.com").await;
    assert!(!allows_cors(&response));
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(!allows_cors(&response));
}

#[tokio::test]
async fn an_unlisted_origin_gets_a_problem_with_the_security_headers() {
    let app = TestApp::with(Backend::Sqlite)
        .set("server.cors_allowed_origins", "https://app.example.com")
        .start()
        .await;
    let simple = app
        .client
        .get(app.url("/v1/me"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    for response in [simple, preflight(&app, "https://evil.example.com").await] {
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            response.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(response.headers()["vary"], "Origin");
        assert!(!allows_cors(&response));
        common::assert_problem(response, StatusCode::FORBIDDEN, "cors_refused").await;
    }
}

#[tokio::test]
async fn with_cors_on_every_response_varies_by_origin() {
    let app = TestApp::with(Backend::Sqlite)
        .set("server.cors_allowed_origins", "https://app.example.com")
        .start()
        .await;
    for path in [
        "/.well-known/jwks.json",
        "/openapi.json",
        "/health/live",
        "/v1/nope",
    ] {
        for origin in [None, Some("https://app.example.com")] {
            let mut request = app.client.get(app.url(path));
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.headers().get("vary").map(|v| v.to_str().unwrap()),
                Some("Origin"),
                "{path} with origin {origin:?}"
            );
        }
    }
}
