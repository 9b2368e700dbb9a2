//! `POST /v1/auth/signin`.

mod common;

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version, password_hash::PasswordHasher};
use chrono::Utc;
use common::{STRONG_PASSWORD, TestApp, TokenPair, assert_problem, unique_username};
use entity::user;
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

#[tokio::test]
async fn signin_returns_a_token_pair_that_is_never_cached() {
    let app = TestApp::spawn().await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    let response = app.signin(&username.to_uppercase(), STRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(!body.to_string().contains(STRONG_PASSWORD));
    let pair: TokenPair = serde_json::from_value(body).unwrap();
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    assert_eq!(pair.refresh_expires_in, 3600);
    assert_eq!(pair.access_token.split('.').count(), 3);
    // At least 256 bits behind the token's prefix.
    assert!(pair.refresh_token.len() >= 4 + 43, "{}", pair.refresh_token);
    let me = app.get_with_token("/v1/me", &pair.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    let mut bodies = Vec::new();
    for (name, password) in [
        (username.as_str(), "wrong-Horse-battery-9-staple"),
        ("nobody-here", STRONG_PASSWORD),
        ("not a valid name!", STRONG_PASSWORD),
        (username.as_str(), ""),
    ] {
        let response = app.signin(name, password).await;
        let body = assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert!(!body.to_string().contains(password) || password.is_empty());
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

/// Not a benchmark: an unknown user that skipped hashing would answer in
/// about a millisecond against tens for a wrong password, a gap no noise hides.
#[tokio::test]
async fn unknown_users_cost_a_full_hash() {
    let app = TestApp::spawn().await;
    let username = unique_username();
    app.signup(&username, STRONG_PASSWORD).await;
    async fn median_time(app: &TestApp, name: &str) -> Duration {
        let mut times = Vec::new();
        for _ in 0..7 {
            let started = Instant::now();
            let response = app.signin(name, "wrong-Horse-battery-9-staple").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            times.push(started.elapsed());
        }
        times.sort();
        times[times.len() / 2]
    }
    let wrong_password = median_time(&app, &username).await;
    let unknown_user = median_time(&app, "nobody-here").await;
    assert!(
        unknown_user * 3 > wrong_password,
        "unknown user {unknown_user:?} vs wrong password {wrong_password:?}"
    );
}

#[tokio::test]
async fn weaker_stored_hashes_are_upgraded_on_signin() {
    let app = TestApp::spawn().await;
    let db = app.database().await;
    let weak_params = Params::new(8192, 1, 1, None).unwrap();
    let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, weak_params)
        .hash_password(STRONG_PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let now = Utc::now();
    user::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        username: Set("legacy".into()),
        password_hash: Set(weak.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
        password_changed_at: Set(None),
        last_signin_at: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();
    assert_eq!(
        app.signin("legacy", STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
    let stored = user::Entity::find()
        .filter(user::Column::Username.eq("legacy"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.password_hash, weak);
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    // And the upgraded hash still takes the same password.
    assert_eq!(
        app.signin("legacy", STRONG_PASSWORD).await.status(),
        StatusCode::OK
    );
}
