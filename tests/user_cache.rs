//! `/v1/me` answers from an in-process cache of users (contract v1.1,
//! "Account"): every instance drops a user within a second of any change to
//! them, the admin CLI's (another process) included; with the database down
//! it keeps answering for cached users and 503 for the others.

mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use common::{Backend, DatabaseAway, STRONG_PASSWORD, TestApp, totp_code};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The contract's bound on how stale a cached user may be.
const WITHIN: Duration = Duration::from_secs(1);

/// `tessera ARGS…` as an operator runs it: its own process.
fn cli(app: &TestApp, args: &[&str]) {
    let output = common::tessera_command()
        .args(args)
        .env("TESSERA_ENV", "test")
        .env("TESSERA__DATABASE__URL", &app.database_url)
        .env("TESSERA__REDIS__URL", common::redis_url())
        .env("TESSERA__REDIS__KEY_PREFIX", &app.key_prefix)
        .stdin(Stdio::null())
        .output()
        .expect("run the tessera binary");
    assert!(output.status.success(), "tessera {args:?}: {output:?}");
}

async fn me(app: &TestApp, access_token: &str) -> (StatusCode, Value) {
    let response = app.get_with_token("/v1/me", access_token).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How long until `/v1/me` on `app` answers `status` (panics past [`WITHIN`]).
async fn until_me(
    app: &TestApp,
    access_token: &str,
    check: impl Fn(StatusCode, &Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = me(app, access_token).await;
        if check(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WITHIN,
            "still {status} {body} after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_anywhere_drops_the_user_from_every_instance_within_a_second() {
    let a = TestApp::with(Backend::Postgres).start().await;
    let b = TestApp::with(Backend::Postgres)
        .sharing_storage_of(&a)
        .start()
        .await;
    let (username, tokens) = a.new_session().await;
    // Cached on both instances.
    for app in [&a, &b] {
        assert_eq!(me(app, &tokens.access_token).await.0, StatusCode::OK);
    }

    // The second factor turned on through instance B: A shows it.
    let started: Value = b
        .post_json_with_token(
            "/v1/me/mfa/totp",
            &tokens.access_token,
            &json!({"password": STRONG_PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    let code = totp_code(
        started["secret"].as_str().unwrap(),
        chrono::Utc::now().timestamp(),
    );
    let confirmed = b
        .post_json_with_token(
            "/v1/me/mfa/totp/confirm",
            &tokens.access_token,
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let took = until_me(&a, &tokens.access_token, |status, body| {
        status == StatusCode::OK && body["mfa_enabled"] == true
    })
    .await;
    eprintln!("second factor on: instance A saw it after {took:?}");
    // On the instance that made the change, at once.
    assert_eq!(me(&b, &tokens.access_token).await.1["mfa_enabled"], true);

    // Disabled by the admin CLI, a process of its own: both refuse the
    // user's token within the second.
    cli(&a, &["users", "disable", &username]);
    for app in [&a, &b] {
        let took = until_me(app, &tokens.access_token, |status, _| {
            status == StatusCode::UNAUTHORIZED
        })
        .await;
        eprintln!("disabled by the CLI: refused after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_cached_users_are_served_and_others_get_503() {
    let app = TestApp::with(Backend::Postgres).start().await;
    let (_, cached) = app.new_session().await;
    let (_, uncached) = app.new_session().await;
    assert_eq!(me(&app, &cached.access_token).await.0, StatusCode::OK);

    let mut away = DatabaseAway::take(&app.database_url).await;
    let (status, body) = me(&app, &cached.access_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = me(&app, &uncached.access_token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    away.restore().await;
}

#[tokio::test]
async fn with_the_cache_off_every_request_reads_the_database() {
    let app = TestApp::with(Backend::Postgres)
        .set("server.user_cache_capacity", "0")
        .start()
        .await;
    let (_, tokens) = app.new_session().await;
    assert_eq!(me(&app, &tokens.access_token).await.0, StatusCode::OK);
    let mut away = DatabaseAway::take(&app.database_url).await;
    assert_eq!(
        me(&app, &tokens.access_token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    away.restore().await;
}
