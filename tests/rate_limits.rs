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

/// The session's refresh budget is counted in the rotation's own script: a
/// refresh is one Redis round trip, as `MONITOR` sees the server's commands.
#[tokio::test]
async fn a_refresh_is_one_redis_round_trip_with_its_limit() {
    use std::io::{BufRead, BufReader};
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.refreshes_per_session", "4")
        .start()
        .await;
    let (_, mut tokens) = app.new_session().await;
    // The first call of a script loads it (EVALSHA, then EVAL): not counted.
    tokens = app.refreshed(&tokens.refresh_token).await;

    let mut monitor = std::process::Command::new("redis-cli")
        .args(["-u", &common::redis_url(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli monitor");
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    for _ in 0..3 {
        tokens = app.refreshed(&tokens.refresh_token).await;
    }
    // The fifth refresh is over the budget of four: refused in the same one call.
    assert_rate_limited(app.refresh(&tokens.refresh_token).await, 60).await;
    // A marker that ends what is read.
    let marker = format!("{}end-of-test", app.key_prefix);
    let mut redis = common::redis_connection().await;
    let _: Option<String> = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut ours = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains(&marker) {
            break;
        }
        // Commands a script runs inside Redis show as `[db lua]`: not round trips.
        if line.contains(&app.key_prefix) && !line.contains(" lua] ") {
            ours.push(line);
        }
    }
    monitor.kill().ok();
    monitor.wait().ok();
    assert_eq!(ours.len(), 4, "one command per refresh: {ours:#?}");
    assert!(
        ours.iter().all(|line| line.contains("\"EVALSHA\"")),
        "{ours:#?}"
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

/// Signs in through the trusted local proxy as client `ip`.
async fn signin_from(app: &TestApp, ip: &str, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/signin"))
        .header("x-forwarded-for", ip)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_outrun_the_limit() {
    let app = TestApp::spawn().await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    let attempts = (0..50).map(|_| app.signin(&username, WRONG));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    let unauthorized = count(&statuses, StatusCode::UNAUTHORIZED);
    let limited = count(&statuses, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        unauthorized <= 10,
        "{unauthorized} wrong passwords were evaluated"
    );
    assert_eq!(unauthorized + limited, 50, "{statuses:?}");
    // The right password waits out the window too.
    assert_rate_limited(app.signin(&username, STRONG_PASSWORD).await, 900).await;
}

#[tokio::test]
async fn one_client_spraying_many_usernames_runs_out_of_its_failure_budget() {
    let app = TestApp::with(Backend::Sqlite)
        .set_all(&[
            ("rate_limit.signin_failures_per_ip", "5"),
            ("server.trusted_proxies", "127.0.0.1/32"),
        ])
        .start()
        .await;
    let victim = unique_username();
    app.signup(&victim, STRONG_PASSWORD).await;
    // Concurrently, so the budget must be taken before the hashes run.
    let sprayed: Vec<String> = (0..20).map(|_| unique_username()).collect();
    let attempts = sprayed
        .iter()
        .map(|name| signin_from(&app, "198.51.100.7", name, WRONG));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    assert_eq!(
        count(&statuses, StatusCode::UNAUTHORIZED),
        5,
        "{statuses:?}"
    );
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 15);
    // Whatever the username and password: the address has spent its budget.
    assert_rate_limited(
        signin_from(&app, "198.51.100.7", &victim, STRONG_PASSWORD).await,
        900,
    )
    .await;
    // Another client is not affected.
    assert_eq!(
        signin_from(&app, "198.51.100.8", &victim, STRONG_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_slash_64() {
    let app = TestApp::with(Backend::Sqlite)
        .set_all(&[
            ("rate_limit.signin_failures_per_ip", "3"),
            ("rate_limit.signups_per_ip", "2"),
            ("server.trusted_proxies", "127.0.0.1/32"),
        ])
        .start()
        .await;
    // One host rotating through the addresses of its /64.
    for host in [
        "2001:db8:7:8::1",
        "2001:db8:7:8::2",
        "2001:db8:7:8:ffff:1:2:3",
    ] {
        assert_eq!(
            signin_from(&app, host, &unique_username(), WRONG)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_rate_limited(
        signin_from(&app, "2001:db8:7:8::4", &unique_username(), WRONG).await,
        900,
    )
    .await;
    // The next /64 is another client.
    assert_eq!(
        signin_from(&app, "2001:db8:7:9::1", &unique_username(), WRONG)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Sign-ups per IP are bucketed alike.
    let signup_from = |ip: &'static str| {
        app.client
            .post(app.url("/v1/auth/signup"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": unique_username(), "password": STRONG_PASSWORD}))
            .send()
    };
    assert_eq!(
        signup_from("2001:db8:5:6::1").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        signup_from("2001:db8:5:6::2").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_rate_limited(signup_from("2001:db8:5:6::3").await.unwrap(), 600).await;
}

#[tokio::test]
async fn rate_limit_keys_name_no_username_or_address() {
    let app = TestApp::with(Backend::Sqlite)
        .set("server.trusted_proxies", "127.0.0.1/32")
        .start()
        .await;
    let username = unique_username();
    signin_from(&app, "198.51.100.9", &username, WRONG).await;
    let keys = common::redis_keys(&app.key_prefix).await;
    assert!(!keys.is_empty());
    for key in keys {
        assert!(
            !key.contains(&username) && !key.contains("198.51.100.9"),
            "{key}"
        );
        // A bare hash of the subject could be tried against guessed names.
        let bare = common::sha256_hex(format!("{username}\u{0}198.51.100.9").as_bytes());
        assert!(!key.contains(&bare[..32]), "{key}");
    }
}
