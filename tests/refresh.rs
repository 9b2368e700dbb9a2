//! `POST /v1/auth/refresh`: rotation, idle and absolute expiry, the reuse
//! grace window, theft detection and the refresh cookie.

mod common;

use std::time::Duration;

use common::{TestApp, TokenPair, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn refresh_rotates_the_token_within_the_same_session() {
    let app = TestApp::spawn().await;
    let (_, first) = app.new_session().await;
    let second = app.refreshed(&first.refresh_token).await;
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.token_type, "Bearer");
    assert_eq!(second.expires_in, 900);
    assert_eq!(second.refresh_expires_in, 3600);
    let me = app.get_with_token("/v1/me", &second.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    let third = app.refreshed(&second.refresh_token).await;
    assert_eq!(third.session_id, first.session_id);
}

#[tokio::test]
async fn garbage_and_unknown_tokens_are_401() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.new_session().await;
    let mut tampered = tokens.refresh_token.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for token in ["", "garbage", "tsr_", &tampered, &tokens.access_token] {
        app.assert_refresh_rejected(token).await;
    }
    // A token issued with another deployment's key is unknown here.
    let other = TestApp::with(common::Backend::Sqlite)
        .set(
            "session.refresh_token_key",
            "another-deployment-refresh-key",
        )
        .start()
        .await;
    let (_, foreign) = other.new_session().await;
    app.assert_refresh_rejected(&foreign.refresh_token).await;
    // The genuine session is untouched by all of this.
    app.refreshed(&tokens.refresh_token).await;
}

#[tokio::test]
async fn the_previous_token_within_the_grace_window_returns_the_same_successor() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.reuse_grace_secs", "5")
        .start()
        .await;
    let (_, first) = app.new_session().await;
    let second = app.refreshed(&first.refresh_token).await;
    let again = app.refreshed(&first.refresh_token).await;
    assert_eq!(again.refresh_token, second.refresh_token);
    assert_eq!(again.session_id, second.session_id);
    // The session lives on, and the converged token works.
    let third = app.refreshed(&second.refresh_token).await;
    assert_eq!(third.session_id, first.session_id);
}

#[tokio::test]
async fn the_previous_token_after_the_grace_window_revokes_the_session() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.reuse_grace_secs", "0.3")
        .start()
        .await;
    let (_, first) = app.new_session().await;
    let second = app.refreshed(&first.refresh_token).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    app.assert_refresh_rejected(&first.refresh_token).await;
    // Theft detection: the newest token dies with the session.
    app.assert_refresh_rejected(&second.refresh_token).await;
    let sessions = app
        .get_with_token("/v1/sessions", &second.access_token)
        .await;
    let sessions: Vec<serde_json::Value> = sessions.json().await.unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
}

/// The grace window counts from the rotation: a converged refresh inside it
/// does not move its start, so replaying the old token every so often
/// cannot keep it alive.
#[tokio::test]
async fn converged_refreshes_do_not_stretch_the_grace_window() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.reuse_grace_secs", "0.4")
        .start()
        .await;
    let (_, first) = app.new_session().await;
    let second = app.refreshed(&first.refresh_token).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = app.refreshed(&first.refresh_token).await;
    assert_eq!(again.refresh_token, second.refresh_token);
    tokio::time::sleep(Duration::from_millis(250)).await;
    app.assert_refresh_rejected(&first.refresh_token).await;
    app.assert_refresh_rejected(&second.refresh_token).await;
}

/// "Each success resets the idle timer": a converged refresh is one.
#[tokio::test]
async fn a_converged_refresh_restarts_the_idle_timer() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.idle_timeout_secs", "0.6")
        .set("session.reuse_grace_secs", "5")
        .start()
        .await;
    let (_, first) = app.new_session().await;
    let second = app.refreshed(&first.refresh_token).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.refreshed(&first.refresh_token).await;
    // 0.8 s after the rotation: alive only because the converged refresh
    // restarted the 0.6 s idle timer at 0.4 s.
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.refreshed(&second.refresh_token).await;
}

#[tokio::test]
async fn an_older_token_revokes_the_session_even_within_the_grace_window() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.reuse_grace_secs", "30")
        .start()
        .await;
    let (_, first) = app.new_session().await;
    let second = app.refreshed(&first.refresh_token).await;
    let third = app.refreshed(&second.refresh_token).await;
    // `first` is two generations old: reuse, not a concurrent tab.
    app.assert_refresh_rejected(&first.refresh_token).await;
    app.assert_refresh_rejected(&third.refresh_token).await;
}

#[tokio::test]
async fn twenty_concurrent_refreshes_with_one_token_converge() {
    let app = TestApp::spawn().await;
    let (_, first) = app.new_session().await;
    let refreshes = (0..20).map(|_| app.refresh(&first.refresh_token));
    let responses = futures::future::join_all(refreshes).await;
    let mut successors = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        let pair: TokenPair = response.json().await.unwrap();
        assert_eq!(pair.session_id, first.session_id);
        successors.push(pair.refresh_token);
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "all tabs converge on one successor");
    // The session is intact and moves on from that successor.
    let next = app.refreshed(&successors[0]).await;
    assert_eq!(next.session_id, first.session_id);
}

#[tokio::test]
async fn refreshing_slides_the_idle_timeout() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.idle_timeout_secs", "0.6")
        .set("session.reuse_grace_secs", "0.1")
        .start()
        .await;
    let (_, mut tokens) = app.new_session().await;
    // 0.6 s left, in whole seconds rounded up.
    assert_eq!(tokens.refresh_expires_in, 1);
    // Five refreshes 0.3 s apart span two and a half idle timeouts.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokens = app.refreshed(&tokens.refresh_token).await;
    }
    // One idle period without a refresh and the session is gone.
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.assert_refresh_rejected(&tokens.refresh_token).await;
}

#[tokio::test]
async fn no_session_outlives_its_absolute_lifetime() {
    let app = TestApp::with(common::Backend::Sqlite)
        .set("session.idle_timeout_secs", "1")
        .set("session.absolute_lifetime_secs", "1.5")
        .start()
        .await;
    let (_, tokens) = app.new_session().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let tokens = app.refreshed(&tokens.refresh_token).await;
    // The idle timeout would reach 1.7 s after sign-in; the session's idle
    // expiry is capped at its absolute end, 1.5 s after it started.
    let sessions = app
        .get_with_token("/v1/sessions", &tokens.access_token)
        .await;
    let sessions: Vec<serde_json::Value> = sessions.json().await.unwrap();
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(sessions[0][field].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        time("idle_expires_at") - time("created_at"),
        chrono::TimeDelta::milliseconds(1500),
        "{sessions:?}"
    );
    assert_eq!(tokens.refresh_expires_in, 1);
    // Past the absolute lifetime, though well within the idle timeout of the last refresh.
    tokio::time::sleep(Duration::from_millis(900)).await;
    app.assert_refresh_rejected(&tokens.refresh_token).await;
}

/// The absolute lifetime counts from creation as currently configured: an
/// operator who shortens it (here an instance started with the shorter
/// setting on the same storage) ends sessions opened under the longer one.
#[tokio::test]
async fn a_shortened_absolute_lifetime_applies_to_open_sessions() {
    let long = TestApp::with(common::Backend::Sqlite).start().await;
    let short = TestApp::with(common::Backend::Sqlite)
        .sharing_storage_of(&long)
        .set("session.idle_timeout_secs", "0.5")
        .set("session.absolute_lifetime_secs", "0.5")
        .start()
        .await;
    let (_, tokens) = long.new_session().await;
    // Its hash lives for the long instance's idle hour; only the shorter
    // absolute lifetime, counted from creation, ends it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    short.assert_refresh_rejected(&tokens.refresh_token).await;
    long.assert_refresh_rejected(&tokens.refresh_token).await;
}

fn cookie_value(response: &reqwest::Response) -> String {
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    cookie
        .strip_prefix("tessera_refresh=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn sign_in_and_refresh_set_the_refresh_cookie() {
    let app = TestApp::spawn().await;
    let (username, _) = app.new_session().await;
    let response = app.signin(&username, common::STRONG_PASSWORD).await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/v1/auth",
        "Max-Age=3600",
    ] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute} in {cookie}"
        );
    }
    let value = cookie_value(&response);
    let pair: TokenPair = response.json().await.unwrap();
    assert_eq!(value, pair.refresh_token);

    // `{}` and the cookie: the cookie's token is used, and a new cookie is set.
    let response = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", format!("theme=dark; tessera_refresh={value}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let next_cookie = cookie_value(&response);
    let next: TokenPair = response.json().await.unwrap();
    assert_eq!(next.session_id, pair.session_id);
    assert_eq!(next_cookie, next.refresh_token);

    // A token in the body wins over the cookie (here a stale one).
    let response = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", "tessera_refresh=tsr_stale")
        .json(&json!({"refresh_token": next.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Sign-out by cookie clears it and ends the session.
    let (_, other) = app.new_session().await;
    let response = app
        .client
        .post(app.url("/v1/auth/signout"))
        .header("cookie", format!("tessera_refresh={}", other.refresh_token))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("tessera_refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    app.assert_refresh_rejected(&other.refresh_token).await;
}

#[tokio::test]
async fn no_token_anywhere_is_401() {
    let app = TestApp::spawn().await;
    let response = app.post_json("/v1/auth/refresh", &json!({})).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
