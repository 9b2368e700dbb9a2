//! `POST /v1/auth/signup`, on SQLite and on PostgreSQL.

mod common;

use common::{Backend, STRONG_PASSWORD, TestApp, assert_problem, unique_username};
use entity::user;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

on_both_backends!(
    signup_creates_a_user,
    usernames_are_case_insensitive,
    every_password_rule_has_its_code,
    every_broken_rule_is_reported_at_once,
    invalid_usernames_are_rejected,
    concurrent_signups_of_one_name_give_exactly_one_201,
    the_password_is_stored_only_as_an_argon2id_hash,
);

async fn signup_creates_a_user(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let response = app.signup("Alice.Smith-1", STRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/v1/me");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "alice.smith-1");
    let id = body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    let created_at = body["created_at"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(created_at).expect("created_at is RFC 3339");
    assert!(!body.to_string().contains(STRONG_PASSWORD));
}

async fn usernames_are_case_insensitive(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    assert_eq!(
        app.signup("Alice", STRONG_PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let again = app.signup("aLICE", "another-Horse-battery-7-staple").await;
    let body = assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    assert!(!body.to_string().contains("another-Horse"));
}

async fn rejected_codes(app: &TestApp, username: &str, password: &str) -> Vec<String> {
    let response = app.signup(username, password).await;
    let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(
        !body.to_string().contains(password),
        "the password is echoed: {body}"
    );
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["field"].is_string() && e["message"].is_string(), "{e}");
            e["code"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn every_password_rule_has_its_code(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let name = unique_username();
    assert!(
        rejected_codes(&app, &name, "Sh0rt-pw!")
            .await
            .contains(&"too_short".into())
    );
    assert_eq!(
        rejected_codes(&app, &name, &"aB3$xY7!".repeat(17)).await,
        ["too_long"]
    );
    // Common passwords also score low: both rules are reported.
    assert!(
        rejected_codes(&app, &name, "password1234")
            .await
            .contains(&"common".into())
    );
    assert_eq!(
        rejected_codes(&app, &name, "abcabcabcabc").await,
        ["too_weak"]
    );
    assert_eq!(
        rejected_codes(&app, "horsey", "correct-HORSEY-battery-9-staple").await,
        ["contains_username"]
    );
    // Nothing was created along the way.
    assert_eq!(
        app.signup(&name, STRONG_PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

async fn every_broken_rule_is_reported_at_once(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let codes = rejected_codes(&app, "-bad", "-bad").await;
    for code in ["invalid_username", "too_short", "too_weak"] {
        assert!(codes.contains(&code.to_string()), "{codes:?}");
    }
    let codes = rejected_codes(&app, "carol", "carol").await;
    for code in ["too_short", "contains_username", "too_weak"] {
        assert!(codes.contains(&code.to_string()), "{codes:?}");
    }
}

async fn invalid_usernames_are_rejected(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let too_long = "a".repeat(33);
    for username in [
        "ab",
        too_long.as_str(),
        "_alice",
        ".alice",
        "al ice",
        "al!ce",
        "ålice",
        "",
    ] {
        let codes = rejected_codes(&app, username, STRONG_PASSWORD).await;
        assert_eq!(codes, ["invalid_username"], "{username:?}");
    }
    let longest = "b".repeat(32);
    for username in ["abc", longest.as_str(), "9lives", "a.b_c-d"] {
        assert_eq!(
            app.signup(username, STRONG_PASSWORD).await.status(),
            StatusCode::CREATED
        );
    }
}

async fn concurrent_signups_of_one_name_give_exactly_one_201(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let attempts = (0..20).map(|i| {
        // Mixed case: the race is on the lower-cased name.
        let name = if i % 2 == 0 { "Racer" } else { "racer" };
        app.signup(name, STRONG_PASSWORD)
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    let db = app.database().await;
    let stored = user::Entity::find()
        .filter(user::Column::Username.eq("racer"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
}

async fn the_password_is_stored_only_as_an_argon2id_hash(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    app.signup("dora", STRONG_PASSWORD).await;
    let db = app.database().await;
    let stored = user::Entity::find()
        .filter(user::Column::Username.eq("dora"))
        .one(&db)
        .await
        .unwrap()
        .expect("user stored");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    assert!(!stored.password_hash.contains(STRONG_PASSWORD));
    assert_eq!(
        stored.password_hash.split('$').count(),
        6,
        "PHC: $id$v$params$salt$hash"
    );
}
