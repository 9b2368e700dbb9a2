//! `/v1/me`, `/v1/sessions`, sign-out and sign-out-all, and the
//! check-on-access mode of the bearer check.

mod common;

use std::time::Duration;

use common::{Backend, STRONG_PASSWORD, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn sessions_of(app: &TestApp, access_token: &str) -> Vec<Value> {
    let response = app.get_with_token("/v1/sessions", access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn me_returns_the_signed_in_user() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;
    let response = app.get_with_token("/v1/me", &tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], username);
    assert!(me["id"].is_string() && me["created_at"].is_string());
    assert!(me.get("password_hash").is_none());
}

#[tokio::test]
async fn sessions_list_only_the_callers_live_sessions() {
    let app = TestApp::spawn().await;
    let (username, first) = app.new_session().await;
    let response = app
        .client
        .post(app.url("/v1/auth/signin"))
        .header("user-agent", "tessera-test-browser/1.0")
        .json(&json!({"username": username, "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    let second: common::TokenPair = response.json().await.unwrap();
    let (_, stranger) = app.new_session().await;

    let sessions = sessions_of(&app, &second.access_token).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], second.session_id.to_string());
    assert_eq!(current[0]["user_agent"], "tessera-test-browser/1.0");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    for session in &sessions {
        for field in ["created_at", "last_used_at", "idle_expires_at"] {
            chrono::DateTime::parse_from_rfc3339(session[field].as_str().unwrap()).unwrap();
        }
        assert_ne!(session["id"], stranger.session_id.to_string());
    }
    let _ = first;
}

#[tokio::test]
async fn revoking_a_session_ends_it_and_others_sessions_are_404() {
    let app = TestApp::spawn().await;
    let (username, first) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;
    let (_, stranger) = app.new_session().await;

    // Someone else's session is not found, and stays alive.
    let response = app
        .delete_session(&first.access_token, &stranger.session_id.to_string())
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.refresh(&stranger.refresh_token).await.status(),
        StatusCode::OK
    );

    let response = app
        .delete_session(&first.access_token, &second.session_id.to_string())
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&second.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let sessions = sessions_of(&app, &first.access_token).await;
    assert_eq!(sessions.len(), 1);

    // Revoking it again: no longer live.
    let response = app
        .delete_session(&first.access_token, &second.session_id.to_string())
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.delete_session(&first.access_token, "not-a-uuid").await;
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
}

#[tokio::test]
async fn signout_is_idempotent_and_reveals_nothing() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.new_session().await;
    for _ in 0..2 {
        assert_eq!(
            app.signout(&tokens.refresh_token).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for unknown in ["", "garbage", "tsr_AAAA"] {
        assert_eq!(app.signout(unknown).await.status(), StatusCode::NO_CONTENT);
    }
    let response = app.post_json("/v1/auth/signout", &json!({})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn signout_all_revokes_every_session_of_the_caller_only() {
    let app = TestApp::spawn().await;
    let (username, first) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;
    let (_, stranger) = app.new_session().await;
    let response = app.signout_all(&first.access_token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for tokens in [&first, &second] {
        assert_eq!(
            app.refresh(&tokens.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(sessions_of(&app, &first.access_token).await.is_empty());
    assert_eq!(
        app.refresh(&stranger.refresh_token).await.status(),
        StatusCode::OK
    );
    let response = app
        .client
        .post(app.url("/v1/auth/signout-all"))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn expired_sessions_leave_no_ghosts_in_the_list() {
    let app = TestApp::with(Backend::Sqlite)
        .set("session.idle_timeout_secs", "0.3")
        .start()
        .await;
    let (username, first) = app.new_session().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = app.sign_in_ok(&username).await;
    let sessions = sessions_of(&app, &second.access_token).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["id"], second.session_id.to_string());
    let _ = first;
}

#[tokio::test]
async fn by_default_access_tokens_outlive_signout() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.new_session().await;
    app.signout(&tokens.refresh_token).await;
    // Stateless by default: the token stays valid until it expires.
    let me = app.get_with_token("/v1/me", &tokens.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_check_on_access_signout_cuts_off_access_tokens_at_once() {
    let app = TestApp::with(Backend::Sqlite)
        .set("session.check_on_access", "true")
        .start()
        .await;
    let (username, tokens) = app.new_session().await;
    assert_eq!(
        app.get_with_token("/v1/me", &tokens.access_token)
            .await
            .status(),
        StatusCode::OK
    );
    app.signout(&tokens.refresh_token).await;
    let response = app.get_with_token("/v1/me", &tokens.access_token).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // Revoking one session and signing out everywhere cut off too.
    let first = app.sign_in_ok(&username).await;
    let second = app.sign_in_ok(&username).await;
    app.delete_session(&first.access_token, &second.session_id.to_string())
        .await;
    let response = app.get_with_token("/v1/me", &second.access_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_with_token("/v1/me", &first.access_token)
            .await
            .status(),
        StatusCode::OK
    );
    app.signout_all(&first.access_token).await;
    let response = app.get_with_token("/v1/me", &first.access_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_sign_in_beyond_the_cap_evicts_the_least_recently_used_session() {
    let app = TestApp::with(Backend::Sqlite)
        .set_all(&[
            ("session.max_per_user", "3"),
            ("session.check_on_access", "true"),
        ])
        .start()
        .await;
    let (username, oldest) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;
    let third = app.sign_in_ok(&username).await;
    // The oldest is used again: the second is now the least recently used.
    let oldest = app.refreshed(&oldest.refresh_token).await;
    let fourth = app.sign_in_ok(&username).await;

    app.assert_refresh_rejected(&second.refresh_token).await;
    let cut_off = app.get_with_token("/v1/me", &second.access_token).await;
    assert_problem(cut_off, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let mut listed: Vec<String> = sessions_of(&app, &fourth.access_token)
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = [&oldest, &third, &fourth]
        .iter()
        .map(|t| t.session_id.to_string())
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    app.refreshed(&oldest.refresh_token).await;
    app.refreshed(&third.refresh_token).await;
}

/// The user agent is stored in pieces (`sessions/mod.rs`): whatever its
/// length, it comes back whole up to 256 characters, cut there, and the
/// session's hash stays compact (a listpack, not a hashtable).
#[tokio::test]
async fn a_user_agent_comes_back_whole_up_to_its_limit_from_a_compact_hash() {
    let app = TestApp::spawn().await;
    let (username, _) = app.new_session().await;
    let mut redis = common::redis_connection().await;
    // Printable ASCII that differs at every position, so a lost or
    // repeated piece shows.
    let agent: String = (0..8000)
        .map(|i| char::from(b'!' + (i % 94) as u8))
        .collect();
    for length in [1, 63, 64, 65, 128, 129, 255, 256, 257, 8000] {
        let response = app
            .client
            .post(app.url("/v1/auth/signin"))
            .header("user-agent", &agent[..length])
            .json(&json!({"username": username, "password": STRONG_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let tokens: common::TokenPair = response.json().await.unwrap();
        let sessions = sessions_of(&app, &tokens.access_token).await;
        let current = sessions.iter().find(|s| s["current"] == true).unwrap();
        assert_eq!(
            current["user_agent"].as_str().unwrap(),
            &agent[..length.min(256)],
            "{length} characters"
        );
        let encoding: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(app.session_key(&tokens).await)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(encoding, "listpack", "{length} characters");
    }
}

/// "Which endpoints check the session": whatever `CHECK_ON_ACCESS` says, a
/// signed-out session's access token cannot sign its owner out or revoke
/// their sessions, nor can the token of a disabled account.
#[tokio::test]
async fn a_dead_session_cannot_change_the_sessions_even_with_check_on_access_off() {
    let app = TestApp::spawn().await;
    let (username, stale) = app.new_session().await;
    let live = app.sign_in_ok(&username).await;
    app.signout(&stale.refresh_token).await;
    // The token itself still passes where the session is not checked.
    let me = app.get_with_token("/v1/me", &stale.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    for response in [
        app.signout_all(&stale.access_token).await,
        app.delete_session(&stale.access_token, live.session_id)
            .await,
    ] {
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // Nothing happened to the live session.
    app.refreshed(&live.refresh_token).await;
}

#[tokio::test]
async fn a_disabled_account_cannot_change_its_sessions() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;
    let other = app.sign_in_ok(&username).await;
    let operator = app.operator().await;
    let user = tessera::users::UserRef::Name(tessera::domain::Username::parse(&username).unwrap());
    // Disabled in the database only, as if the epoch move were lost: the
    // account's state is checked on its own.
    let found = tessera::flows::find_user(&operator, &user).await.unwrap();
    let event = tessera::audit::EventType::Disabled.by(&tessera::audit::Acting::cli());
    operator
        .users
        .set_disabled(found.id, true, event)
        .await
        .unwrap();
    for response in [
        app.delete_session(&tokens.access_token, other.session_id)
            .await,
        app.signout_all(&tokens.access_token).await,
    ] {
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
}
