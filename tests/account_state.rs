//! Sessions never outlive the account's state: disabling or deleting a user,
//! a password change and a reset end every session (but the changing
//! caller's), also one whose sign-in is in flight, on every instance; and
//! with Redis down the operation changes nothing.

mod common;

use common::{Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, TokenPair, unique_username};
use futures::{StreamExt, stream::FuturesUnordered};
use reqwest::StatusCode;
use tessera::audit::Acting;
use tessera::sessions::layout::Key;
use tessera::{
    clock::Clock,
    domain::Username,
    flows::{self, Stores},
    users::UserRef,
};

fn by_name(username: &str) -> UserRef {
    UserRef::Name(Username::parse(username).unwrap())
}

/// Two instances whose sign-ins queue for one hashing worker each, so that
/// many are in flight at once.
async fn two_slow_instances(backend: Backend) -> (TestApp, TestApp) {
    let overrides = [
        ("password.hashing_workers", "1"),
        ("rate_limit.signin_failures", "1000"),
    ];
    let a = TestApp::with(backend).set_all(&overrides).start().await;
    let b = TestApp::with(backend)
        .set_all(&overrides)
        .sharing_storage_of(&a)
        .start()
        .await;
    (a, b)
}

/// Fires sign-ins at both instances and runs `operation` once the first has
/// answered, while the others are still checking their passwords; returns
/// every token pair handed out.
async fn sign_ins_racing(
    a: &TestApp,
    b: &TestApp,
    username: &str,
    operation: impl AsyncFnOnce(),
) -> Vec<TokenPair> {
    let mut in_flight: FuturesUnordered<_> = (0..16)
        .map(|i| if i % 2 == 0 { a } else { b }.signin(username, STRONG_PASSWORD))
        .collect();
    let mut answers = vec![in_flight.next().await.unwrap()];
    operation().await;
    while let Some(answer) = in_flight.next().await {
        answers.push(answer);
    }
    let mut pairs = Vec::new();
    for answer in answers {
        match answer.status() {
            StatusCode::OK => pairs.push(answer.json().await.unwrap()),
            status => assert_eq!(status, StatusCode::UNAUTHORIZED),
        }
    }
    pairs
}

async fn a_disable_ends_sessions_whose_sign_in_was_in_flight(backend: Backend) {
    let (a, b) = two_slow_instances(backend).await;
    let username = unique_username();
    a.signup(&username, STRONG_PASSWORD).await;
    let operator = a.operator().await;
    let pairs = sign_ins_racing(&a, &b, &username, async || {
        flows::disable_user(&operator, &by_name(&username), &Acting::cli())
            .await
            .unwrap();
    })
    .await;
    assert!(!pairs.is_empty());
    // Enabled again, the account's old sessions still stay dead: it is the
    // epoch that refuses them, not the account's state.
    flows::enable_user(&operator, &by_name(&username), &Acting::cli())
        .await
        .unwrap();
    for pair in &pairs {
        b.assert_refresh_rejected(&pair.refresh_token).await;
        a.assert_refresh_rejected(&pair.refresh_token).await;
    }
    let fresh = a.sign_in_ok(&username).await;
    b.refreshed(&fresh.refresh_token).await;
}

async fn a_delete_ends_sessions_whose_sign_in_was_in_flight(backend: Backend) {
    let (a, b) = two_slow_instances(backend).await;
    let username = unique_username();
    a.signup(&username, STRONG_PASSWORD).await;
    let operator = a.operator().await;
    let pairs = sign_ins_racing(&a, &b, &username, async || {
        flows::delete_user(&operator, &by_name(&username), &Acting::cli())
            .await
            .unwrap();
    })
    .await;
    for pair in &pairs {
        b.assert_refresh_rejected(&pair.refresh_token).await;
    }
}

async fn a_password_change_ends_sessions_whose_sign_in_was_in_flight(backend: Backend) {
    let (a, b) = two_slow_instances(backend).await;
    let username = unique_username();
    a.signup(&username, STRONG_PASSWORD).await;
    let caller = a.sign_in_ok(&username).await;
    let pairs = sign_ins_racing(&a, &b, &username, async || {
        let response = b
            .change_password(&caller.access_token, STRONG_PASSWORD, NEW_PASSWORD)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    })
    .await;
    assert!(!pairs.is_empty());
    for pair in &pairs {
        b.assert_refresh_rejected(&pair.refresh_token).await;
        a.assert_refresh_rejected(&pair.refresh_token).await;
    }
    // The caller's own session went through it, on either instance.
    let kept = a.refreshed(&caller.refresh_token).await;
    b.refreshed(&kept.refresh_token).await;
}

async fn a_reset_ends_sessions_whose_sign_in_was_in_flight(backend: Backend) {
    let (a, b) = two_slow_instances(backend).await;
    let username = unique_username();
    a.signup(&username, STRONG_PASSWORD).await;
    let token = a.issue_reset(&username).await;
    let pairs = sign_ins_racing(&a, &b, &username, async || {
        let response = b.reset_password(&token, NEW_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    })
    .await;
    assert!(!pairs.is_empty());
    for pair in &pairs {
        b.assert_refresh_rejected(&pair.refresh_token).await;
        a.assert_refresh_rejected(&pair.refresh_token).await;
    }
    let fresh = b.sign_in_ok_with(&username, NEW_PASSWORD).await;
    a.refreshed(&fresh.refresh_token).await;
}

on_both_backends!(
    a_disable_ends_sessions_whose_sign_in_was_in_flight,
    a_delete_ends_sessions_whose_sign_in_was_in_flight,
    a_password_change_ends_sessions_whose_sign_in_was_in_flight,
    a_reset_ends_sessions_whose_sign_in_was_in_flight,
);

/// Redis down: the operation answers an error and changes nothing.
#[tokio::test]
async fn with_redis_down_a_disable_changes_nothing() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;
    let mut settings = app.settings.clone();
    settings.redis.url = "redis://127.0.0.1:1".into();
    let unreachable = Stores::connect(&settings, Clock::system()).await.unwrap();
    assert!(
        flows::disable_user(&unreachable, &by_name(&username), &Acting::cli())
            .await
            .is_err()
    );
    assert!(
        flows::delete_user(&unreachable, &by_name(&username), &Acting::cli())
            .await
            .is_err()
    );
    // The account and its session are as they were.
    app.refreshed(&tokens.refresh_token).await;
    app.sign_in_ok(&username).await;
}

/// The narrowest race, made certain: a sign-in that read the old account and
/// the once-moved epoch, and opened its session while the operation was still
/// writing the database. The test holds the user's row locked (PostgreSQL
/// `FOR NO KEY UPDATE`: updates of the row wait, reads and rows that refer
/// to it do not), so the operation waits between its first epoch move and its
/// write; a sign-in with the old password succeeds meanwhile, then the row is
/// released. The epoch move after the write must end that session.
async fn a_session_opened_during_the_write_is_ended_after_it(
    operation: impl AsyncFnOnce(&TestApp, &str),
) {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let app = TestApp::with(Backend::Postgres).start().await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    let operator = app.operator().await;
    let user = flows::find_user(&operator, &by_name(&username))
        .await
        .unwrap();
    let epoch_key = format!("{}{}", app.key_prefix, Key::Epoch { user: user.id });
    let mut redis = common::redis_connection().await;

    let db = app.database().await;
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared(&format!(
        "SELECT id FROM users WHERE username = '{username}' FOR NO KEY UPDATE"
    ))
    .await
    .unwrap();
    let during = async {
        // Until the operation has moved the epoch once: it now waits for the row.
        let mut waited = 0;
        loop {
            let epoch: Option<u64> = redis::cmd("GET")
                .arg(&epoch_key)
                .query_async(&mut redis)
                .await
                .unwrap();
            if epoch.is_some() {
                break;
            }
            waited += 1;
            assert!(waited < 500, "the operation never moved the epoch");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let pair = app.sign_in_ok(&username).await;
        lock.rollback().await.unwrap();
        pair
    };
    let ((), pair) = tokio::join!(operation(&app, &username), during);
    app.assert_refresh_rejected(&pair.refresh_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_during_a_password_change_write_is_ended() {
    a_session_opened_during_the_write_is_ended_after_it(async |app, username| {
        let caller = app.sign_in_ok(username).await;
        let response = app
            .change_password(&caller.access_token, STRONG_PASSWORD, NEW_PASSWORD)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        app.refreshed(&caller.refresh_token).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_during_a_reset_write_is_ended() {
    a_session_opened_during_the_write_is_ended_after_it(async |app, username| {
        let token = app.issue_reset(username).await;
        let response = app.reset_password(&token, NEW_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_during_a_disable_write_is_ended() {
    a_session_opened_during_the_write_is_ended_after_it(async |app, username| {
        flows::disable_user(&app.operator().await, &by_name(username), &Acting::cli())
            .await
            .unwrap();
    })
    .await;
}
