//! Every error under `/v1` is `application/problem+json`, never a 500.

mod common;

use common::{Backend, STRONG_PASSWORD, TestApp, assert_problem};
use reqwest::{Body, StatusCode};
use serde_json::json;

const SIGNUP: &str = "/v1/auth/signup";

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(SIGNUP)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    for body in [
        "{\"username\": \"bob\"",
        "not json",
        "",
        "[]",
        "null",
        "{\"username\": \"bob\", \"password\": \"x\" trailing",
    ] {
        let response = post_raw(&app, Some("application/json"), body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
    let invalid_utf8 = post_raw(&app, Some("application/json"), vec![b'{', 0xff, 0xfe, b'}']).await;
    assert_problem(invalid_utf8, StatusCode::BAD_REQUEST, "malformed_request").await;
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_400_and_never_echoes_values() {
    let app = TestApp::spawn().await;
    let secret = "123456789012345";
    for body in [
        json!({"username": "bob"}),
        json!({"password": STRONG_PASSWORD}),
        json!({"username": "bob", "password": 123456789012345_u64}),
        json!({"username": ["bob"], "password": STRONG_PASSWORD}),
        json!({"username": "bob", "password": true}),
        json!({"username": null, "password": STRONG_PASSWORD}),
    ] {
        let response = app.post_json(SIGNUP, &body).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
        let text = problem.to_string();
        assert!(
            !text.contains(secret) && !text.contains(STRONG_PASSWORD),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let body = json!({"username": "bob", "password": STRONG_PASSWORD}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = post_raw(&app, content_type, body.clone()).await;
        assert_problem(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_over_16_kib_is_413() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(16 * 1024);
    let body = json!({"username": "bob", "password": padding}).to_string();
    let response = post_raw(&app, Some("application/json"), body.clone()).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Without a declared length (chunked), the body is cut at the limit too.
    let chunks = futures::stream::iter(
        body.into_bytes()
            .chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = post_raw(&app, Some("application/json"), Body::wrap_stream(chunks)).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // A body just under the limit is read as usual.
    let under = json!({"username": "bob", "password": "y".repeat(16 * 1024 - 64)});
    let response = app.post_json(SIGNUP, &under).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/nope",
        "/v1/auth",
        "/v1/auth/signup/extra",
        "/v2/auth/signup",
    ] {
        assert_problem(app.get(path).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app.get(SIGNUP).await;
    assert_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let response = app.client.delete(app.url(SIGNUP)).send().await.unwrap();
    assert_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn a_lost_database_is_503_and_readiness_says_so() {
    let app = TestApp::with(Backend::Postgres).start().await;
    assert_eq!(
        app.signup("before", STRONG_PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // Take the database away from under the running server.
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sea_orm::Database::connect(app.database_url.replace(&name, "postgres"))
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let response = app.signup("after", STRONG_PASSWORD).await;
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("database"),
        "{problem}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "unavailable", "{body}");
}
