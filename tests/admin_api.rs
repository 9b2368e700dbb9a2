//! The admin API under `/v1/admin` (contract v1.1 "Admin API"): admin tokens
//! only (user access tokens refused there, admin tokens everywhere else),
//! checked on every call; each operation the CLI's flow; `ADMIN__ENABLED`
//! and `ADMIN__BIND`.

mod common;

use chrono::TimeDelta;
use common::{Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, assert_problem, unique_username};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera::clock::Clock;
use uuid::Uuid;

async fn user_id(app: &TestApp, username: &str) -> Uuid {
    let user = tessera::flows::find_user(
        &app.operator().await,
        &tessera::users::UserRef::Name(tessera::domain::Username::parse(username).unwrap()),
    )
    .await
    .unwrap();
    user.id
}

async fn the_back_office_runs_users_and_their_sessions(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let token = app.admin_token(None).await.1;

    // Create: 201 with Location; the sign-up rules; a taken name is 409.
    let username = unique_username();
    let created = app
        .client
        .post(app.url("/v1/admin/users"))
        .bearer_auth(&token)
        .json(&json!({"username": username, "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = created.json().await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/admin/users/{id}"));
    assert_eq!(user["disabled"], false);
    assert_eq!(user["mfa_enabled"], false);
    assert_eq!(user["last_signin_at"], Value::Null);
    assert_eq!(user["password_changed_at"], Value::Null);
    for (body, status, code) in [
        (
            json!({"username": username, "password": STRONG_PASSWORD}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"username": unique_username(), "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            json!({"username": 1}),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
    ] {
        let response = app
            .client
            .post(app.url("/v1/admin/users"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, status, code).await;
    }

    // The user signs in twice; the back office sees it and the sessions.
    let first = app.sign_in_ok(&username).await;
    let second = app.sign_in_ok(&username).await;
    // Stamped off the response path: shortly after the answer.
    let mut user = Value::Null;
    for _ in 0..100 {
        user = app
            .call(Method::GET, &location, &token)
            .await
            .json()
            .await
            .unwrap();
        if user["last_signin_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(user["last_signin_at"].is_string(), "{user}");
    let sessions: Value = app
        .call(Method::GET, &format!("{location}/sessions"), &token)
        .await
        .json()
        .await
        .unwrap();
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0].get("current").is_none());
    // One session, then all.
    let response = app
        .call(
            Method::DELETE,
            &format!("{location}/sessions/{}", first.session_id),
            &token,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_rejected(&first.refresh_token).await;
    let again = app
        .call(
            Method::DELETE,
            &format!("{location}/sessions/{}", first.session_id),
            &token,
        )
        .await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;
    for _ in 0..2 {
        let response = app
            .call(Method::DELETE, &format!("{location}/sessions"), &token)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    app.assert_refresh_rejected(&second.refresh_token).await;

    // Disable (idempotent) ends the sessions and refuses sign-in; enable.
    let session = app.sign_in_ok(&username).await;
    for _ in 0..2 {
        let response = app
            .call(Method::POST, &format!("{location}/disable"), &token)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    app.assert_refresh_rejected(&session.refresh_token).await;
    app.assert_signin_refused(&username, STRONG_PASSWORD).await;
    let user: Value = app
        .call(Method::GET, &location, &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["disabled"], true);
    assert!(user["disabled_at"].is_string());
    for _ in 0..2 {
        let response = app
            .call(Method::POST, &format!("{location}/enable"), &token)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    app.sign_in_ok(&username).await;

    // A reset token for the user, spent by resetPassword.
    let issued = app
        .call(Method::POST, &format!("{location}/password-reset"), &token)
        .await;
    assert_eq!(issued.status(), StatusCode::OK);
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let issued: Value = issued.json().await.unwrap();
    assert_eq!(issued["expires_in"], 3600);
    let reset = app
        .reset_password(issued["reset_token"].as_str().unwrap(), NEW_PASSWORD)
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let user: Value = app
        .call(Method::GET, &location, &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(user["password_changed_at"].is_string(), "{user}");

    // The second factor's reset: 204 also without a factor; ends sessions.
    let session = app.sign_in_ok_with(&username, NEW_PASSWORD).await;
    let response = app
        .call(Method::DELETE, &format!("{location}/mfa"), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_rejected(&session.refresh_token).await;

    // Delete, then the user is 404 everywhere under it.
    let response = app.call(Method::DELETE, &location, &token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for (method, path) in [
        (Method::GET, location.clone()),
        (Method::DELETE, location.clone()),
        (Method::POST, format!("{location}/disable")),
        (Method::POST, format!("{location}/enable")),
        (Method::POST, format!("{location}/password-reset")),
        (Method::DELETE, format!("{location}/mfa")),
        (Method::GET, format!("{location}/sessions")),
        (Method::DELETE, format!("{location}/sessions")),
    ] {
        let response = app.call(method.clone(), &path, &token).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    // A malformed id is a malformed request.
    for path in ["/v1/admin/users/not-a-uuid", "/v1/admin/users/1/sessions"] {
        let response = app.call(Method::GET, path, &token).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
}

/// Admin tokens only under `/v1/admin`, and only there; checked against the
/// database on every call: revoked and expired tokens are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_live_admin_tokens_open_the_admin_api_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;
    let path = format!("/v1/admin/users/{}", user_id(&app, &username).await);
    let token = app.admin_token(None).await.1;
    assert_eq!(
        app.call(Method::GET, &path, &token).await.status(),
        StatusCode::OK
    );

    // A user's access token, another kind of secret, nothing at all.
    for refused in [
        tokens.access_token.as_str(),
        tokens.refresh_token.as_str(),
        &token.replacen("tsa_", "tsp_", 1),
        &token[..token.len() - 1],
    ] {
        let response = app.call(Method::GET, &path, refused).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let bare = app.get(&path).await;
    assert_problem(bare, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The admin token is nobody's access token.
    let me = app.get_with_token("/v1/me", &token).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // Revoked: refused at the next call. The list shows when it was last used.
    let operator = app.operator().await;
    let listed = operator.admin_tokens.list().await.unwrap();
    let used = listed.iter().find(|t| t.last_used_at.is_some()).unwrap();
    assert!(
        operator
            .admin_tokens
            .revoke(&used.name, &tessera::audit::Acting::cli())
            .await
            .unwrap()
    );
    let response = app.call(Method::GET, &path, &token).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // Expired: a server whose clock is two days ahead of a one-day token.
    let expiring = app.admin_token(Some(TimeDelta::days(1))).await.1;
    let later = TestApp::with(Backend::Sqlite)
        .clock(Clock::skewed(TimeDelta::days(2)))
        .sharing_storage_of(&app)
        .start()
        .await;
    assert_eq!(
        app.call(Method::GET, &path, &expiring).await.status(),
        StatusCode::OK
    );
    let response = later.call(Method::GET, &path, &expiring).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// `ADMIN__ENABLED=false`: every admin path is 404, whatever the token.
/// `ADMIN__BIND`: the admin API only there, and only it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_can_be_turned_off_or_served_apart() {
    let off = TestApp::with(Backend::Sqlite)
        .set("admin.enabled", "false")
        .start()
        .await;
    let (username, _) = off.new_session().await;
    let path = format!("/v1/admin/users/{}", user_id(&off, &username).await);
    let token = off.admin_token(None).await.1;
    assert!(off.admin_addr.is_none());
    for path in [path.as_str(), "/v1/admin/users", "/v1/admin"] {
        let response = off.call(Method::GET, path, &token).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }

    let apart = TestApp::with(Backend::Sqlite)
        .set("admin.bind", "127.0.0.1:0")
        .start()
        .await;
    let (username, tokens) = apart.new_session().await;
    let path = format!("/v1/admin/users/{}", user_id(&apart, &username).await);
    let token = apart.admin_token(None).await.1;
    let public = apart.call(Method::GET, &path, &token).await;
    assert_problem(public, StatusCode::NOT_FOUND, "not_found").await;
    let admin = format!("http://{}", apart.admin_addr.expect("an admin listener"));
    let response = apart
        .client
        .get(format!("{admin}{path}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["username"], username);
    // Nothing but the admin API there.
    for other in ["/v1/me", "/health/live", "/openapi.json"] {
        let response = apart
            .client
            .get(format!("{admin}{other}"))
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{other}");
    }
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app
        .call(Method::GET, &format!("/v1/admin/users?{query}"), token)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect()
}

/// Keyset pagination: ascending id, `next` null exactly at the end, stable
/// when users are created between pages; `limit` bounds; a literal,
/// case-insensitive username prefix, served by the unique index.
async fn users_are_listed_in_pages_that_inserts_do_not_shift(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let token = app.admin_token(None).await.1;
    let stamp = &Uuid::now_v7().simple().to_string()[24..];
    let mut expected = Vec::new();
    for i in 0..5 {
        let name = format!("p{stamp}-{i}");
        app.signup(&name, STRONG_PASSWORD).await;
        expected.push(name);
    }
    let first = page(&app, &token, "limit=2").await;
    assert_eq!(names(&first), expected[..2]);
    let next = first["next"].as_str().unwrap().to_owned();
    // Created between pages: after the cursor's users in id order, so it
    // joins the end and nobody is seen twice or skipped.
    let late = format!("p{stamp}-late");
    app.signup(&late, STRONG_PASSWORD).await;
    expected.push(late);
    let mut seen = names(&first);
    let mut after = next;
    loop {
        let page = page(&app, &token, &format!("limit=2&after={after}")).await;
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let everyone = page(&app, &token, "").await;
    assert_eq!(everyone["users"].as_array().unwrap().len(), 6);
    assert_eq!(everyone["next"], Value::Null);

    // The prefix: case-insensitive, and `_`/`%` are literal.
    let prefixed = page(
        &app,
        &token,
        &format!("username_prefix=P{}", &stamp.to_uppercase()),
    )
    .await;
    assert_eq!(names(&prefixed).len(), 6);
    let one = page(&app, &token, &format!("username_prefix=p{stamp}-3")).await;
    assert_eq!(names(&one), [format!("p{stamp}-3")]);
    for literal in [
        format!("p{stamp}_"),
        format!("p{stamp}%"),
        "zzzz".to_owned(),
    ] {
        assert!(
            names(
                &page(
                    &app,
                    &token,
                    &format!("username_prefix={}", urlencode(&literal))
                )
                .await
            )
            .is_empty()
        );
    }

    // limit: an integer 1–200.
    for bad in ["0", "201", "-1"] {
        let response = app
            .call(Method::GET, &format!("/v1/admin/users?limit={bad}"), &token)
            .await;
        let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(body["errors"][0]["field"], "limit");
        assert_eq!(body["errors"][0]["code"], "out_of_range");
    }
    for bad in ["limit=ten", "limit=2.5", "after=nope"] {
        let response = app
            .call(Method::GET, &format!("/v1/admin/users?{bad}"), &token)
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
    assert_eq!(names(&page(&app, &token, "limit=200").await).len(), 6);

    // The prefix search is a range over the unique index.
    let db = app.database().await;
    let plan = query_plan(&db, backend, &format!("p{stamp}")).await;
    assert!(plan.contains("username"), "{plan}");
    assert!(plan.contains("index"), "{plan}");
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The plan of the store's prefix query, as the database explains it.
async fn query_plan(db: &sea_orm::DatabaseConnection, backend: Backend, prefix: &str) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let end = format!(
        "{}{}",
        &prefix[..prefix.len() - 1],
        (prefix.as_bytes()[prefix.len() - 1] + 1) as char
    );
    let (explain, sql) = match backend {
        Backend::Sqlite => (
            "EXPLAIN QUERY PLAN",
            format!("SELECT id FROM users WHERE username >= '{prefix}' AND username < '{end}'"),
        ),
        Backend::Postgres => {
            // A tiny table is cheaper to scan: ask what the index can do.
            db.execute_unprepared("SET enable_seqscan = off")
                .await
                .unwrap();
            (
                "EXPLAIN",
                format!("SELECT id FROM users WHERE username >= '{prefix}' AND username < '{end}'"),
            )
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("{explain} {sql}"),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            row.try_get_by_index::<String>(if backend == Backend::Sqlite { 3 } else { 0 })
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase()
}

on_both_backends!(
    the_back_office_runs_users_and_their_sessions,
    users_are_listed_in_pages_that_inserts_do_not_shift,
);
