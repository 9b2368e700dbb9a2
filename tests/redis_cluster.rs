//! Tessera on a real Redis Cluster (three primaries on loopback, formed by
//! `redis-cli --cluster create`): every session operation and rate limit
//! works, and each user's keys sit in one hash slot while users spread over
//! the nodes. A multi-key script across slots would fail here with CROSSSLOT.

mod common;

use std::collections::HashSet;

use common::{Backend, TestApp, TokenPair, assert_problem, redis_servers::RedisCluster};
use reqwest::StatusCode;
use serde_json::Value;
use tessera::sessions::layout::CompactId;

async fn on_cluster(cluster: &RedisCluster, overrides: &[(&str, &str)]) -> TestApp {
    TestApp::with(Backend::Sqlite)
        .set("redis.url", &cluster.url())
        .set_all(overrides)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_rotate_converge_list_and_revoke_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let app = on_cluster(&cluster, &[]).await;

    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);

    // Enough users that their hash slots land on more than one node.
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(app.new_session().await);
    }
    let (username, first) = users[0].clone();

    // Rotation, and two tabs converging on one successor.
    let (tab_a, tab_b) = tokio::join!(
        app.refresh(&first.refresh_token),
        app.refresh(&first.refresh_token)
    );
    let tab_a: TokenPair = tab_a.json().await.unwrap();
    let tab_b: TokenPair = tab_b.json().await.unwrap();
    assert_eq!(tab_a.refresh_token, tab_b.refresh_token);
    assert_eq!(tab_a.session_id, first.session_id);

    // A second session, listed beside the first; revoke it by id.
    let second = app.sign_in_ok(&username).await;
    let listed: Value = app
        .get_with_token("/v1/sessions", &tab_a.access_token)
        .await
        .json()
        .await
        .unwrap();
    let ids: HashSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        HashSet::from([
            first.session_id.to_string().as_str(),
            second.session_id.to_string().as_str()
        ])
    );
    let revoked = app
        .delete_session(&tab_a.access_token, second.session_id)
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_rejected(&second.refresh_token).await;

    // Each user's keys live on exactly one node; the users spread over several.
    let per_node = cluster.keys_per_node(&app.key_prefix).await;
    let mut nodes_used = HashSet::new();
    for (_, tokens) in &users {
        let holding: Vec<usize> = per_node
            .iter()
            .enumerate()
            .filter(|(_, keys)| {
                keys.iter()
                    .any(|key| key.contains(&CompactId(tokens.session_id).to_string()))
            })
            .map(|(node, _)| node)
            .collect();
        assert_eq!(holding.len(), 1, "{per_node:?}");
        nodes_used.insert(holding[0]);
    }
    assert!(nodes_used.len() > 1, "{per_node:?}");

    // Sign-out everywhere, and theft detection, on another user.
    let (_, other) = users[1].clone();
    let signed_out = app.signout_all(&other.access_token).await;
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_rejected(&other.refresh_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_rate_limits_and_access_checks_work_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let app = on_cluster(
        &cluster,
        &[
            ("session.reuse_grace_secs", "0"),
            ("session.check_on_access", "true"),
            ("rate_limit.signin_failures", "2"),
        ],
    )
    .await;

    // A replayed refresh token revokes its session.
    let (username, first) = app.new_session().await;
    let second: TokenPair = app.refreshed(&first.refresh_token).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.assert_refresh_rejected(&first.refresh_token).await;
    app.assert_refresh_rejected(&second.refresh_token).await;
    // With check-on-access, the revoked session's access token is refused too.
    assert_problem(
        app.get_with_token("/v1/me", &second.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // The failed sign-in limit counts on the cluster.
    for _ in 0..2 {
        let failed = app.signin(&username, "wrong-Password-123456").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = app.signin(&username, "wrong-Password-123456").await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Sign-out by refresh token.
    let (_, tokens) = app.new_session().await;
    let signed_out = app.signout(&tokens.refresh_token).await;
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_rejected(&tokens.refresh_token).await;
}
