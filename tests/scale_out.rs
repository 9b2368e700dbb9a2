//! Two Tessera instances on one PostgreSQL database and one Redis, as behind
//! a load balancer: whatever one does, the other sees at once. The first test
//! runs them as two OS processes of the real binary; the others run them in
//! the test process, where each is still a separate server with its own
//! pools and connections.

mod common;

use common::{Backend, TesseraProcess, TestApp, TokenPair, assert_problem};
use reqwest::StatusCode;
use serde_json::json;
use tessera::clock::Clock;

/// Instance A and instance B of one deployment (B on A's database and prefix).
async fn two_instances(overrides: &[(&str, &str)]) -> (TestApp, TestApp) {
    let a = TestApp::with(Backend::Postgres)
        .set_all(overrides)
        .start()
        .await;
    let b = TestApp::with(Backend::Postgres)
        .sharing_storage_of(&a)
        .set_all(overrides)
        .start()
        .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sign_in_on_a_refresh_on_b_revoke_on_a_and_b_refuses() {
    // The test server owns (and drops) the database and prefix; both processes use them.
    let owner = TestApp::with(Backend::Postgres).start().await;
    let shared = [
        ("TESSERA__DATABASE__URL", owner.database_url.as_str()),
        ("TESSERA__REDIS__URL", &common::redis_url()),
        ("TESSERA__REDIS__KEY_PREFIX", owner.key_prefix.as_str()),
    ];
    let a = TesseraProcess::spawn(&shared);
    let b = TesseraProcess::spawn(&shared);
    assert_ne!(a.pid(), b.pid());
    let http = &owner.client;
    let username = common::unique_username();
    let credentials = json!({"username": username, "password": common::STRONG_PASSWORD});

    let created = http
        .post(a.url("/v1/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let on_a: TokenPair = http
        .post(a.url("/v1/auth/signin"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refreshed = http
        .post(b.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": on_a.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let on_b: TokenPair = refreshed.json().await.unwrap();
    assert_eq!(on_b.session_id, on_a.session_id);

    let revoked = http
        .delete(a.url(&format!("/v1/sessions/{}", on_b.session_id)))
        .bearer_auth(&on_b.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = http
        .post(b.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": on_b.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::UNAUTHORIZED, "invalid_token").await;

    for process in [a, b] {
        assert!(process.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_on_a_refresh_on_b_revoke_on_a_and_b_refuses() {
    let (a, b) = two_instances(&[]).await;
    assert_ne!(a.addr, b.addr);

    // Signed up and in on A; B knows the user and accepts A's access token.
    let (username, on_a) = a.new_session().await;
    let me = b.get_with_token("/v1/me", &on_a.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["username"], username);

    // Refreshed on B: same session, new token, and A sees the rotation.
    let on_b: TokenPair = b.refreshed(&on_a.refresh_token).await;
    assert_eq!(on_b.session_id, on_a.session_id);
    assert_ne!(on_b.refresh_token, on_a.refresh_token);
    let sessions: serde_json::Value = a
        .get_with_token("/v1/sessions", &on_b.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");

    // Revoked on A (through B's access token: any instance verifies any token).
    let revoked = a.delete_session(&on_b.access_token, on_b.session_id).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    // B refuses the session's current refresh token.
    b.assert_refresh_rejected(&on_b.refresh_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_on_one_instance_revokes_the_session_on_both() {
    let (a, b) = two_instances(&[("session.reuse_grace_secs", "0")]).await;
    let (_, first) = a.new_session().await;
    let second: TokenPair = a.refreshed(&first.refresh_token).await;
    // No grace at all, but not within the same millisecond either.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // The rotated-out token comes back on B: theft, the session is gone everywhere.
    b.assert_refresh_rejected(&first.refresh_token).await;
    a.assert_refresh_rejected(&second.refresh_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_refreshing_on_different_instances_converge_on_one_token() {
    let (a, b) = two_instances(&[]).await;
    let (_, tokens) = a.new_session().await;
    let (on_a, on_b) = tokio::join!(
        a.refresh(&tokens.refresh_token),
        b.refresh(&tokens.refresh_token)
    );
    let on_a: TokenPair = on_a.json().await.unwrap();
    let on_b: TokenPair = on_b.json().await.unwrap();
    assert_eq!(on_a.refresh_token, on_b.refresh_token);
    assert_eq!(
        b.refresh(&on_a.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_check_on_access_a_sign_out_on_a_cuts_off_access_on_b() {
    let (a, b) = two_instances(&[("session.check_on_access", "true")]).await;
    let (_, tokens) = a.new_session().await;
    assert_eq!(
        b.get_with_token("/v1/me", &tokens.access_token)
            .await
            .status(),
        StatusCode::OK
    );
    let signed_out = a.signout(&tokens.refresh_token).await;
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    assert_problem(
        b.get_with_token("/v1/me", &tokens.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_username_signed_up_on_both_instances_at_once_exists_once() {
    let (a, b) = two_instances(&[]).await;
    let username = common::unique_username();
    let (on_a, on_b) = tokio::join!(
        a.signup(&username, common::STRONG_PASSWORD),
        b.signup(&username, common::STRONG_PASSWORD)
    );
    let mut statuses = [on_a.status(), on_b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_an_empty_database_all_come_up() {
    // Each start migrates; without the migration lock the losers of the race fail to start.
    let apps = TestApp::with(Backend::Postgres).start_together(4).await;
    for app in &apps {
        assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    }
    let (_, tokens) = apps[0].new_session().await;
    let refreshed = apps[3].refresh(&tokens.refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

/// Sessions are timed by Redis (`TIME` in the scripts), not by the instance:
/// were B's own clock used, an hour ahead it would see every rotation by A as
/// long past the grace window and revoke the session as a replay (and A would
/// see B's rotations as an hour old).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_whose_clocks_differ_agree_on_the_grace_window() {
    let grace = [("session.reuse_grace_secs", "5")];
    let a = TestApp::with(Backend::Sqlite).set_all(&grace).start().await;
    let b = TestApp::with(Backend::Sqlite)
        .sharing_storage_of(&a)
        .set_all(&grace)
        .clock(Clock::skewed(chrono::TimeDelta::hours(1)))
        .start()
        .await;
    let (_, first) = a.new_session().await;
    let second = a.refreshed(&first.refresh_token).await;
    // A second tab presents the previous token on B, within the grace window.
    let converged = b.refreshed(&first.refresh_token).await;
    assert_eq!(converged.refresh_token, second.refresh_token);
    // B rotates; A honours B's rotation time for the tab that lags behind.
    let third = b.refreshed(&second.refresh_token).await;
    let converged = a.refreshed(&second.refresh_token).await;
    assert_eq!(converged.refresh_token, third.refresh_token);
    assert_eq!(converged.session_id, first.session_id);
}
