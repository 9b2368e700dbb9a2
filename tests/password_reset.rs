//! Password reset by an operator (contract v1.1): a one-time `tsp_` token
//! spent by `resetPassword`, which sets the password and ends every session;
//! unknown, spent, expired and voided tokens all answer the same; of
//! concurrent uses exactly one succeeds; attempts are limited per client IP.

mod common;

use std::time::Duration;

use common::{
    Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, assert_problem, redis_servers::PrivateRedis,
};
use futures::future::join_all;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use tessera::audit::Acting;
use tessera::{domain::Username, flows, users::UserRef};

fn by_name(username: &str) -> UserRef {
    UserRef::Name(Username::parse(username).unwrap())
}

async fn a_reset_sets_the_password_ends_every_session_and_spends_the_token(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, first) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;
    let token = app.issue_reset(&username).await;
    assert!(token.starts_with("tsp_"), "{token}");

    let response = app.reset_password(&token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    app.assert_refresh_rejected(&first.refresh_token).await;
    app.assert_refresh_rejected(&second.refresh_token).await;
    app.assert_signin_refused(&username, STRONG_PASSWORD).await;
    assert_eq!(
        app.signin(&username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let user = flows::find_user(&app.operator().await, &by_name(&username))
        .await
        .unwrap();
    assert!(user.password_changed_at.is_some());
    // Spent: a second use is refused and changes nothing.
    let body = assert_problem(
        app.reset_password(&token, "third-Password-of-9-kinds")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert!(!body.to_string().contains(&token[4..]), "{body}");
    assert_eq!(
        app.signin(&username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    assert!(
        entity::password_reset::Entity::find()
            .all(&app.database().await)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Of concurrent uses of one token, on two instances, exactly one succeeds.
async fn of_concurrent_uses_of_one_token_exactly_one_succeeds(backend: Backend) {
    let a = TestApp::with(backend).start().await;
    let b = TestApp::with(backend).sharing_storage_of(&a).start().await;
    let (username, _) = a.new_session().await;
    let token = a.issue_reset(&username).await;
    let passwords: Vec<String> = (0..8)
        .map(|i| format!("racing-Password-{i}-of-many"))
        .collect();
    let uses = passwords.iter().enumerate().map(|(i, password)| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.reset_password(&token, password)
    });
    let statuses: Vec<StatusCode> = join_all(uses)
        .await
        .into_iter()
        .map(|response| response.status())
        .collect();
    let winners: Vec<usize> = (0..statuses.len())
        .filter(|i| statuses[*i] == StatusCode::NO_CONTENT)
        .collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    // The winner's password is the one set.
    assert_eq!(
        a.signin(&username, &passwords[winners[0]]).await.status(),
        StatusCode::OK
    );
}

/// A newer token, a disable and a delete void the earlier token; an
/// expired one is refused; all of them the same way.
async fn voided_and_expired_tokens_are_refused_alike(backend: Backend) {
    let app = TestApp::with(backend)
        .set("password.reset_ttl_secs", "0.5")
        .start()
        .await;
    let (username, _) = app.new_session().await;
    let operator = app.operator().await;

    let older = app.issue_reset(&username).await;
    let newer = app.issue_reset(&username).await;
    let refused = |token: String| {
        let app = &app;
        async move {
            assert_problem(
                app.reset_password(&token, NEW_PASSWORD).await,
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            )
            .await
        }
    };
    let replaced = refused(older).await;

    flows::disable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();
    let disabled = refused(newer).await;
    flows::enable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();

    let expiring = app.issue_reset(&username).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let expired = refused(expiring).await;

    assert_eq!(replaced, disabled);
    assert_eq!(disabled, expired);
    // None of it changed the password.
    assert_eq!(
        app.signin(&username, STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// A token for a disabled account sets the password but does not enable it.
async fn a_reset_of_a_disabled_account_leaves_it_disabled(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, _) = app.new_session().await;
    let operator = app.operator().await;
    flows::disable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();
    let token = app.issue_reset(&username).await;
    let response = app.reset_password(&token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_signin_refused(&username, NEW_PASSWORD).await;
    flows::enable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();
    assert_eq!(
        app.signin(&username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

on_both_backends!(
    a_reset_sets_the_password_ends_every_session_and_spends_the_token,
    of_concurrent_uses_of_one_token_exactly_one_succeeds,
    voided_and_expired_tokens_are_refused_alike,
    a_reset_of_a_disabled_account_leaves_it_disabled,
);

/// Hostile input: other kinds of secret, truncated, padded, huge or empty
/// tokens are all the same 401, never a 500, never echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_an_outstanding_token_is_the_same_401() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.password_resets_per_ip", "100")
        .start()
        .await;
    let (username, tokens) = app.new_session().await;
    let token = app.issue_reset(&username).await;
    let body = &token[4..];
    let hostile = [
        format!("tsa_{body}"),
        format!("tsm_{body}"),
        tokens.refresh_token.clone(),
        tokens.access_token.clone(),
        token[..token.len() - 1].to_string(),
        format!("{token}A"),
        format!("{token}="),
        format!(" {token}"),
        token.to_uppercase(),
        "tsp_".into(),
        String::new(),
        format!("tsp_{}", "A".repeat(10_000)),
        "tsp_\u{0}\u{ffff}'; DROP TABLE users; --".into(),
    ];
    for presented in &hostile {
        let response = app.reset_password(presented, NEW_PASSWORD).await;
        let status = response.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            continue;
        }
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert!(
            presented.len() < 8 || !problem.to_string().contains(&presented[4..]),
            "{problem}"
        );
    }
    // The real one still works after all that.
    let response = app.reset_password(&token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// A new password that breaks a rule is a 422 (field `new_password`) and
/// leaves the token outstanding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_new_password_is_422_and_keeps_the_token() {
    let app = TestApp::spawn().await;
    let (username, _) = app.new_session().await;
    let token = app.issue_reset(&username).await;
    for weak in [
        "short",
        "password1234",
        &format!("{username}-Horse-9-staple"),
    ] {
        let body = assert_problem(
            app.reset_password(&token, weak).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        )
        .await;
        assert!(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["field"] == "new_password"),
            "{body}"
        );
    }
    let response = app.reset_password(&token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// Every attempt counts against the client's budget, taken before any
/// lookup: of attempts fired at once, only the budget gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_fired_at_once_are_limited_per_client_ip() {
    let app = TestApp::with(Backend::Sqlite)
        .set_all(&[
            ("rate_limit.password_resets_per_ip", "3"),
            ("rate_limit.password_reset_window_secs", "60"),
        ])
        .start()
        .await;
    let (username, _) = app.new_session().await;
    let guesses = (0..10).map(|i| {
        let guess = format!("tsp_{i:0>43}");
        let app = &app;
        async move { app.reset_password(&guess, NEW_PASSWORD).await }
    });
    let responses = join_all(guesses).await;
    let limited: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(limited.len(), 7);
    assert!(limited[0].headers().contains_key("retry-after"));
    // The real token is refused too now, from this client: it is the
    // attempts that are limited, not the wrong ones.
    let token = app.issue_reset(&username).await;
    assert_problem(
        app.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

/// Redis down: the reset answers 503 and changes nothing; the token stays
/// outstanding and the password as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_reset_changes_nothing() {
    let mut redis = PrivateRedis::start().await;
    // Without limits, the session epoch is the first thing the reset
    // needs from Redis: the database must not change before it moves.
    let app = TestApp::with(Backend::Sqlite)
        .set_all(&[("redis.url", &redis.url()), ("rate_limit.enabled", "false")])
        .start()
        .await;
    let (username, _) = app.new_session().await;
    let token = app.issue_reset(&username).await;
    redis.kill();
    assert_problem(
        app.reset_password(&token, NEW_PASSWORD).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    let stored = entity::password_reset::Entity::find()
        .all(&app.database().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "the token is still outstanding");
    let user = flows::find_user(&app.operator().await, &by_name(&username))
        .await
        .unwrap();
    assert!(user.password_changed_at.is_none());
}
