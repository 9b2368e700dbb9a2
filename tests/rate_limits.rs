//! Rate limits: failed sign-ins per username and IP, sign-ups per IP,
//! refreshes per session; 429 with `Retry-After`.

mod common;

use common::{Backend, STRONG_PASSWORD, TestApp, assert_problem, unique_username};
use reqwest::StatusCode;
use serde_json::json;

const WRONG: &str = "wrong-Horse-battery-9-staple";

async fn assert_rate_limited(response: reqwest::Response, max_retry_after: u64) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=max_retry_after).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn the_eleventh_failed_signin_is_429_and_other_usernames_stay_free() {
    let app = TestApp::spawn().await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    for attempt in 1..=10 {
        let status = app.signin(&username, WRONG).await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Case-insensitive: the same account by another spelling is limited too.
    assert_rate_limited(app.signin(&username.to_uppercase(), WRONG).await, 900).await;
    // Even the right password waits out the window: the limit is checked first.
    assert_rate_limited(app.signin(&username, STRONG_PASSWORD).await, 900).await;

    let other = unique_username();
    app.signup(&other, STRONG_PASSWORD).await;
    assert_eq!(
        app.signin(&other, WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.signin(&other, STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn successful_signins_never_count() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.signin_failures", "2")
        .start()
        .await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(
            app.signin(&username, STRONG_PASSWORD).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        app.signin(&username, WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.signin(&username, WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_rate_limited(app.signin(&username, WRONG).await, 900).await;
}

#[tokio::test]
async fn the_window_passes() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.signin_failures", "1")
        .set("rate_limit.signin_window_secs", "0.5")
        .start()
        .await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    assert_eq!(
        app.signin(&username, WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Retry-After is whole seconds, rounded up.
    assert_rate_limited(app.signin(&username, WRONG).await, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        app.signin(&username, STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn signups_are_limited_per_client_ip() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.signups_per_ip", "3")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.signup(&unique_username(), STRONG_PASSWORD)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    assert_rate_limited(app.signup(&unique_username(), STRONG_PASSWORD).await, 600).await;
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let signup_from = |app: &TestApp, forwarded: &'static str| {
        let request = app
            .client
            .post(app.url("/v1/auth/signup"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": unique_username(), "password": STRONG_PASSWORD}));
        async move { request.send().await.unwrap().status() }
    };
    // Untrusted peer: X-Forwarded-For is ignored, every request is 127.0.0.1.
    let direct = TestApp::with(Backend::Sqlite)
        .set("rate_limit.signups_per_ip", "1")
        .start()
        .await;
    assert_eq!(
        signup_from(&direct, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        signup_from(&direct, "198.51.100.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Behind a trusted proxy: each forwarded client has its own budget.
    let proxied = TestApp::with(Backend::Sqlite)
        .set("rate_limit.signups_per_ip", "1")
        .set("server.trusted_proxies", "127.0.0.1/32,::1/128")
        .start()
        .await;
    assert_eq!(
        signup_from(&proxied, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        signup_from(&proxied, "198.51.100.2").await,
        StatusCode::CREATED
    );
    assert_eq!(
        signup_from(&proxied, "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn refreshes_are_limited_per_session() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.refreshes_per_session", "3")
        .start()
        .await;
    let (username, mut tokens) = app.new_session().await;
    for _ in 0..3 {
        let response = app.refresh(&tokens.refresh_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        tokens = response.json().await.unwrap();
    }
    assert_rate_limited(app.refresh(&tokens.refresh_token).await, 60).await;
    // Another session of the same user is not affected.
    let other = app.sign_in_ok(&username).await;
    assert_eq!(
        app.refresh(&other.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn limits_can_be_switched_off() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.enabled", "false")
        .set("rate_limit.signin_failures", "1")
        .start()
        .await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            app.signin(&username, WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
