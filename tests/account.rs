//! The account's owner changes the password or deletes the account
//! (contract v1.1 "Account (self-service, bearer)"): the order of checks, the
//! password re-check counted as a failed sign-in, which sessions end, and
//! that a dead or stale session can change nothing.

mod common;

use common::{
    Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, TokenPair, assert_problem,
    redis_servers::PrivateRedis,
};
use futures::future::join_all;
use reqwest::StatusCode;
use sea_orm::{EntityTrait, QueryFilter};
use serde_json::json;
use tessera::audit::Acting;
use tessera::{domain::Username, flows, users::UserRef};

fn by_name(username: &str) -> UserRef {
    UserRef::Name(Username::parse(username).unwrap())
}

async fn stored_hash(app: &TestApp, username: &str) -> String {
    use sea_orm::ColumnTrait;
    entity::user::Entity::find()
        .filter(entity::user::Column::Username.eq(username))
        .all(&app.database().await)
        .await
        .unwrap()
        .remove(0)
        .password_hash
}

async fn a_password_change_keeps_the_calling_session_and_ends_every_other(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, caller) = app.new_session().await;
    let other = app.sign_in_ok(&username).await;
    let third = app.sign_in_ok(&username).await;
    let operator = app.operator().await;
    let before = flows::find_user(&operator, &by_name(&username))
        .await
        .unwrap();
    assert!(before.password_changed_at.is_none());

    let response = app
        .change_password(&caller.access_token, STRONG_PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // The calling session goes on: its refresh token rotates, its access
    // token still passes the session check.
    let rotated = app.refreshed(&caller.refresh_token).await;
    assert_eq!(rotated.session_id, caller.session_id);
    let sessions = app
        .get_with_token("/v1/sessions", &rotated.access_token)
        .await;
    let sessions: serde_json::Value = sessions.json().await.unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    // Every other session is gone, and its access token can change nothing.
    app.assert_refresh_rejected(&other.refresh_token).await;
    app.assert_refresh_rejected(&third.refresh_token).await;
    assert_problem(
        app.signout_all(&other.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_problem(
        app.change_password(&other.access_token, NEW_PASSWORD, STRONG_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // Only the new password signs in.
    app.assert_signin_refused(&username, STRONG_PASSWORD).await;
    assert_eq!(
        app.signin(&username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let after = flows::find_user(&operator, &by_name(&username))
        .await
        .unwrap();
    assert!(after.password_changed_at.is_some());
    // Changing again, from the kept session, works too.
    let response = app
        .change_password(&rotated.access_token, NEW_PASSWORD, STRONG_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.refreshed(&rotated.refresh_token).await;
}

async fn the_checks_come_in_the_contract_order(backend: Backend) {
    // Two failures allowed, one of them spent on purpose below: a check
    // that counted a failure where it must not would show as a 429.
    let app = TestApp::with(backend)
        .set("rate_limit.signin_failures", "2")
        .start()
        .await;
    let (username, tokens) = app.new_session().await;
    let token = &tokens.access_token;

    // Body shape first.
    for body in [
        json!({"current_password": STRONG_PASSWORD}),
        json!({"current_password": STRONG_PASSWORD, "new_password": 12345678901234_u64}),
        json!([]),
    ] {
        let response = app
            .post_json_with_token("/v1/me/password", token, &body)
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
    // Then the new password's rules, every broken one, before the current
    // password is looked at (a wrong one is not counted).
    for _ in 0..3 {
        let body = assert_problem(
            app.change_password(token, "wrong-password-entirely", "short")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        )
        .await;
        let errors = body["errors"].as_array().unwrap();
        assert!(errors.len() >= 2, "{body}");
        assert!(
            errors.iter().all(|e| e["field"] == "new_password"),
            "{body}"
        );
    }
    let body = assert_problem(
        app.change_password(
            token,
            STRONG_PASSWORD,
            &format!("{username}-Horse-9-staple!"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "contains_username", "{body}");
    // Then the current password: wrong is 401 even when the new one equals it.
    assert_problem(
        app.change_password(token, NEW_PASSWORD, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // Right, but unchanged: 422 on new_password. Not a failure: no 429.
    let body = assert_problem(
        app.change_password(token, STRONG_PASSWORD, STRONG_PASSWORD)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_eq!(
        body["errors"],
        json!([{"field": "new_password", "code": "unchanged", "message": "must differ from the current password"}])
    );
    // Nothing of it changed the password, and nothing echoes one.
    assert!(!body.to_string().contains(STRONG_PASSWORD));
    assert_eq!(
        app.signin(&username, STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn a_deleted_account_is_gone_with_its_sessions_and_its_name_is_free(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, caller) = app.new_session().await;
    let other = app.sign_in_ok(&username).await;
    let reset = app.issue_reset(&username).await;

    assert_problem(
        app.delete_account(&caller.access_token, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    app.refreshed(&other.refresh_token).await;

    let response = app
        .delete_account(&caller.access_token, STRONG_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("tessera_refresh=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    app.assert_refresh_rejected(&caller.refresh_token).await;
    app.assert_refresh_rejected(&other.refresh_token).await;
    app.assert_signin_refused(&username, STRONG_PASSWORD).await;
    // The reset token went with the account.
    assert_problem(
        app.reset_password(&reset, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert!(
        entity::password_reset::Entity::find()
            .all(&app.database().await)
            .await
            .unwrap()
            .is_empty()
    );
    // The old access token proves nothing any more.
    assert_problem(
        app.delete_account(&caller.access_token, STRONG_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // The name can be registered again at once, by someone else.
    assert_eq!(
        app.signup(&username, NEW_PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let newcomer: TokenPair = app
        .signin(&username, NEW_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(newcomer.session_id, caller.session_id);
}

on_both_backends!(
    a_password_change_keeps_the_calling_session_and_ends_every_other,
    the_checks_come_in_the_contract_order,
    a_deleted_account_is_gone_with_its_sessions_and_its_name_is_free,
);

/// A stolen access token is no password oracle: wrong current passwords,
/// fired at once, count against the same budget as sign-ins, and a sign-in
/// from that client is refused once it is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_fired_at_once_spend_the_sign_in_budget() {
    let app = TestApp::with(Backend::Sqlite)
        .set("rate_limit.signin_failures", "3")
        .start()
        .await;
    let (username, tokens) = app.new_session().await;
    let guesses = (0..12).map(|i| {
        let guess = format!("guess-{i}-Horse-battery-staple");
        let token = tokens.access_token.clone();
        let app = &app;
        async move {
            if i % 2 == 0 {
                app.change_password(&token, &guess, NEW_PASSWORD).await
            } else {
                app.delete_account(&token, &guess).await
            }
        }
    });
    let statuses: Vec<StatusCode> = join_all(guesses)
        .await
        .into_iter()
        .map(|response| response.status())
        .collect();
    let wrong = common::count(&statuses, StatusCode::UNAUTHORIZED);
    let limited = common::count(&statuses, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!((wrong, limited), (3, 9), "{statuses:?}");
    // The budget is the sign-in's: the right password is refused too now.
    assert_problem(
        app.signin(&username, STRONG_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_problem(
        app.change_password(&tokens.access_token, STRONG_PASSWORD, NEW_PASSWORD)
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

/// "Which endpoints check the session": a signed-out session's access token,
/// or a disabled account's, still passes the offline bearer check but
/// changes nothing, whatever `session.check_on_access` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_or_disabled_callers_token_changes_nothing() {
    let app = TestApp::spawn().await;
    let (username, signed_out) = app.new_session().await;
    let live = app.sign_in_ok(&username).await;
    app.signout(&signed_out.refresh_token).await;
    assert_eq!(
        app.get_with_token("/v1/me", &signed_out.access_token)
            .await
            .status(),
        StatusCode::OK,
        "the offline check alone still passes"
    );
    for response in [
        app.change_password(&signed_out.access_token, STRONG_PASSWORD, NEW_PASSWORD)
            .await,
        app.delete_account(&signed_out.access_token, STRONG_PASSWORD)
            .await,
    ] {
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // Disabled (and enabled again: the epoch moved), the live one is dead too.
    let operator = app.operator().await;
    flows::disable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();
    assert_problem(
        app.change_password(&live.access_token, STRONG_PASSWORD, NEW_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    flows::enable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();
    assert_problem(
        app.delete_account(&live.access_token, STRONG_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.signin(&username, STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// With `check_on_access`, the other sessions' access tokens are refused
/// everywhere at once; the caller's keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_check_on_access_a_change_cuts_off_the_other_access_tokens_at_once() {
    let app = TestApp::with(Backend::Sqlite)
        .set("session.check_on_access", "true")
        .start()
        .await;
    let (username, caller) = app.new_session().await;
    let other = app.sign_in_ok(&username).await;
    let response = app
        .change_password(&caller.access_token, STRONG_PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_with_token("/v1/me", &other.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.get_with_token("/v1/me", &caller.access_token)
            .await
            .status(),
        StatusCode::OK
    );
}

/// A change voids an outstanding reset token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_voids_an_outstanding_reset_token() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;
    let reset = app.issue_reset(&username).await;
    let response = app
        .change_password(&tokens.access_token, STRONG_PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.reset_password(&reset, "third-Password-of-9-kinds")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.signin(&username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// Redis down: a change or a delete answers 503 and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_change_or_delete_changes_nothing() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::with(Backend::Sqlite)
        .set("redis.url", &redis.url())
        .start()
        .await;
    let (username, tokens) = app.new_session().await;
    let hash = stored_hash(&app, &username).await;
    redis.kill();
    assert_problem(
        app.change_password(&tokens.access_token, STRONG_PASSWORD, NEW_PASSWORD)
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    assert_problem(
        app.delete_account(&tokens.access_token, STRONG_PASSWORD)
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    assert_eq!(stored_hash(&app, &username).await, hash);
    let user = flows::find_user(&app.operator().await, &by_name(&username))
        .await
        .unwrap();
    assert!(user.password_changed_at.is_none());
    assert_eq!(user.username.as_str(), username);
}
