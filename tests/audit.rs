//! Audit events (contract v1.1 "Audit events"): every type Tessera emits,
//! with its actor, address and user agent; `listMyEvents` and
//! `adminListEvents` with their pages and filters; the durability rules
//! (same transaction, queued while the database refuses, after the answer
//! for refused requests); what a deletion clears; retention pruning.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{
    Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, TestAppBuilder, assert_problem, totp_code,
    unique_username,
};
use reqwest::{Method, Response, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tessera::audit::{Acting, EventType};
use uuid::Uuid;

/// The contract's list, spelled out here rather than taken from the code.
const CONTRACT_TYPES: [&str; 24] = [
    "user.signed_up",
    "user.created",
    "user.signed_in",
    "user.signin_failed",
    "user.signin_limited",
    "user.password_changed",
    "user.password_reset_issued",
    "user.password_reset",
    "user.mfa_enabled",
    "user.mfa_disabled",
    "user.mfa_reset",
    "user.mfa_failed",
    "user.mfa_locked",
    "user.recovery_code_used",
    "user.recovery_codes_regenerated",
    "session.signed_out",
    "session.revoked",
    "session.all_revoked",
    "session.reuse_detected",
    "user.disabled",
    "user.enabled",
    "user.deleted",
    "admin.token_created",
    "admin.token_revoked",
];

/// Events refused requests write after the answer show up within this.
const AFTER_THE_ANSWER: Duration = Duration::from_secs(3);

/// One page of `adminListEvents`.
async fn admin_events(app: &TestApp, admin: &str, query: &str) -> Value {
    let response = app
        .call(Method::GET, &format!("/v1/admin/events?{query}"), admin)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "?{query}");
    response.json().await.unwrap()
}

/// Every event `adminListEvents` shows for `query`, newest first, read
/// page by page.
async fn all_admin_events(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let page = admin_events(app, admin, &format!("{query}&limit=200{after}")).await;
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return events,
        }
    }
}

async fn my_events(app: &TestApp, access_token: &str, query: &str) -> Value {
    let response = app
        .call(Method::GET, &format!("/v1/me/events?{query}"), access_token)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "?{query}");
    response.json().await.unwrap()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Waits for events written off the response path: every type in `wanted`
/// among the events of `query`.
async fn until_recorded(app: &TestApp, admin: &str, query: &str, wanted: &[&str]) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + AFTER_THE_ANSWER;
    loop {
        let events = all_admin_events(app, admin, query).await;
        let seen = types(&events);
        if wanted.iter().all(|kind| seen.contains(kind)) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still missing {wanted:?} in {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn user_id_of(tokens_access: &str, app: &TestApp) -> String {
    let me: Value = app
        .get_with_token("/v1/me", tokens_access)
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Response {
    app.post_json_with_token(path, token, &body).await
}

/// Turns TOTP on for a signed-in user; the secret and the recovery codes.
async fn enable_totp(app: &TestApp, access_token: &str) -> (String, Vec<String>) {
    let started: Value = post(
        app,
        "/v1/me/mfa/totp",
        access_token,
        json!({"password": STRONG_PASSWORD}),
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = started["secret"].as_str().unwrap().to_owned();
    let code = totp_code(&secret, Utc::now().timestamp());
    let confirmed = post(
        app,
        "/v1/me/mfa/totp/confirm",
        access_token,
        json!({ "code": code }),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// Does what the contract lists, once each, and finds an event of every
/// type in `adminListEvents`.
async fn every_listed_type_is_written(backend: Backend) {
    let app = TestApp::with(backend)
        .set_all(&[
            ("rate_limit.signin_failures", "2"),
            ("rate_limit.mfa_max_consecutive_failures", "3"),
            ("session.reuse_grace_secs", "0"),
        ])
        .start()
        .await;
    let (_, admin) = app.admin_token(None).await;
    let (retired, _) = app.admin_token(None).await;
    let name = tessera::admin_tokens::AdminTokenName::parse(&retired).unwrap();
    assert!(
        app.operator()
            .await
            .admin_tokens
            .revoke(&name, &Acting::cli())
            .await
            .unwrap()
    );

    // Sign-up, sign-in, and a password tried until the limit.
    let (limited, _) = app.new_session().await;
    for _ in 0..2 {
        app.assert_signin_refused(&limited, "wrong-password-123")
            .await;
    }
    assert_eq!(
        app.signin(&limited, "wrong-password-123").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // The password changed, then reset by the back office.
    let (alice, tokens) = app.new_session().await;
    let alice_id = user_id_of(&tokens.access_token, &app).await;
    let changed = app
        .change_password(&tokens.access_token, STRONG_PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let issued: Value = app
        .call(
            Method::POST,
            &format!("/v1/admin/users/{alice_id}/password-reset"),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    let reset = app
        .reset_password(issued["reset_token"].as_str().unwrap(), STRONG_PASSWORD)
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);

    // The second factor: on, a wrong code, recovery codes used and
    // regenerated, off.
    let tokens = app.sign_in_ok(&alice).await;
    let (_, codes) = enable_totp(&app, &tokens.access_token).await;
    let wrong = post(
        &app,
        "/v1/me/mfa/recovery-codes",
        &tokens.access_token,
        json!({"password": STRONG_PASSWORD, "code": "aaaa-bbbb-cccc-dddd"}),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let regenerated: Value = post(
        &app,
        "/v1/me/mfa/recovery-codes",
        &tokens.access_token,
        json!({"password": STRONG_PASSWORD, "code": codes[0]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let disabled = post(
        &app,
        "/v1/me/mfa/totp/disable",
        &tokens.access_token,
        json!({"password": STRONG_PASSWORD, "code": regenerated["recovery_codes"][0]}),
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);

    // A factor locked by wrong codes, then reset by the back office.
    let (_, bob) = app.new_session().await;
    let bob_id = user_id_of(&bob.access_token, &app).await;
    enable_totp(&app, &bob.access_token).await;
    for _ in 0..3 {
        let response = post(
            &app,
            "/v1/me/mfa/recovery-codes",
            &bob.access_token,
            json!({"password": STRONG_PASSWORD, "code": "aaaa-bbbb-cccc-dddd"}),
        )
        .await;
        assert_ne!(response.status(), StatusCode::OK);
    }
    let reset_mfa = app
        .call(
            Method::DELETE,
            &format!("/v1/admin/users/{bob_id}/mfa"),
            &admin,
        )
        .await;
    assert_eq!(reset_mfa.status(), StatusCode::NO_CONTENT);

    // Sessions: signed out, revoked one by one, all at once, and a replay.
    let first = app.sign_in_ok(&alice).await;
    let second = app.sign_in_ok(&alice).await;
    assert_eq!(
        app.signout(&first.refresh_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let third = app.sign_in_ok(&alice).await;
    let revoked = app
        .delete_session(&third.access_token, second.session_id)
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.signout_all(&third.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let stolen = app.sign_in_ok(&alice).await;
    app.refreshed(&stolen.refresh_token).await;
    app.assert_refresh_rejected(&stolen.refresh_token).await;

    // The back office creates, disables, enables and deletes a user.
    let created: Value = app
        .client
        .post(app.url("/v1/admin/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": unique_username(), "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dave = format!("/v1/admin/users/{}", created["id"].as_str().unwrap());
    for (method, path) in [
        (Method::POST, format!("{dave}/disable")),
        (Method::POST, format!("{dave}/enable")),
        (Method::DELETE, dave.clone()),
    ] {
        let response = app.call(method, &path, &admin).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
    }

    let events = until_recorded(&app, &admin, "", &CONTRACT_TYPES).await;
    let seen = types(&events);
    for kind in CONTRACT_TYPES {
        assert!(seen.contains(&kind), "no {kind} event in {seen:?}");
    }
    // What the code knows is what the contract lists.
    let known: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(
        {
            let mut known = known.clone();
            known.sort();
            known
        },
        {
            let mut listed = CONTRACT_TYPES.to_vec();
            listed.sort();
            listed
        }
    );
    // A limit hit is recorded once per window, however often it is hit.
    assert_eq!(
        app.signin(&limited, "wrong-password-123").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = all_admin_events(&app, &admin, "type=user.signin_limited").await;
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_type_is_written_on_sqlite() {
    every_listed_type_is_written(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_type_is_written_on_postgres() {
    every_listed_type_is_written(Backend::Postgres).await;
}

#[tokio::test]
async fn events_say_who_acted_from_where_and_users_see_their_own() {
    let app = TestApp::spawn().await;
    let (token_name, admin) = app.admin_token(None).await;
    let (username, tokens) = app.new_session().await;
    let user_id = user_id_of(&tokens.access_token, &app).await;
    let (_, other) = app.new_session().await;

    // The back office, from its own address and agent.
    let issued = app
        .client
        .post(app.url(&format!("/v1/admin/users/{user_id}/password-reset")))
        .bearer_auth(&admin)
        .header("User-Agent", "backoffice/2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::OK);
    let page = admin_events(
        &app,
        &admin,
        &format!("user_id={user_id}&type=user.password_reset_issued"),
    )
    .await;
    let event = &page["events"][0];
    assert_eq!(
        event["actor"],
        json!({"kind": "admin_token", "name": token_name})
    );
    assert_eq!(event["ip"], "127.0.0.1");
    assert_eq!(event["user_agent"], "backoffice/2.1");
    assert_eq!(event["user_id"], user_id.as_str());
    assert!(event["detail"]["expires_at"].is_string(), "{event}");
    // Never the token itself.
    assert!(!page.to_string().contains(&admin));

    // The user's own list: newest first, the token's name hidden, nobody
    // else's events, and a password tried by someone else shown.
    app.assert_signin_refused(&username, "not-my-password-42")
        .await;
    let deadline = tokio::time::Instant::now() + AFTER_THE_ANSWER;
    let mine = loop {
        let mine = my_events(&app, &tokens.access_token, "").await;
        let listed = mine["events"].as_array().unwrap().clone();
        if types(&listed).contains(&"user.signin_failed") || tokio::time::Instant::now() > deadline
        {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        types(&mine),
        [
            "user.signin_failed",
            "user.password_reset_issued",
            "user.signed_in",
            "user.signed_up"
        ]
    );
    assert_eq!(
        mine[1]["actor"],
        json!({"kind": "admin_token", "name": null})
    );
    assert_eq!(mine[2]["actor"], json!({"kind": "user", "name": null}));
    assert_eq!(mine[2]["session_id"], tokens.session_id.to_string());
    assert_eq!(mine[2]["detail"], json!({"amr": ["pwd"]}));
    assert!(mine.iter().all(|e| e["user_id"] == user_id.as_str()));
    let ats: Vec<&str> = mine.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut newest_first = ats.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, newest_first);
    let theirs = my_events(&app, &other.access_token, "").await;
    assert_eq!(
        types(theirs["events"].as_array().unwrap()),
        ["user.signed_in", "user.signed_up"]
    );

    // The session is checked: a signed-out caller cannot read its history.
    assert_eq!(
        app.signout_all(&tokens.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = app
        .call(Method::GET, "/v1/me/events", &tokens.access_token)
        .await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // And the routes do not mix their tokens.
    let response = app.call(Method::GET, "/v1/me/events", &admin).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let response = app
        .call(Method::GET, "/v1/admin/events", &other.access_token)
        .await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn pages_and_filters(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (_, admin) = app.admin_token(None).await;
    let (username, tokens) = app.new_session().await;
    let user_id = user_id_of(&tokens.access_token, &app).await;
    for _ in 0..4 {
        app.sign_in_ok(&username).await;
    }
    // signed_up and five signed_in: two pages of three, the last one ending
    // the list exactly.
    let query = format!("user_id={user_id}&limit=3");
    let first = admin_events(&app, &admin, &query).await;
    assert_eq!(first["events"].as_array().unwrap().len(), 3);
    let next = first["next"].as_str().unwrap().to_owned();
    // An event written between the pages is newer than the cursor: it
    // neither shows up later nor shifts what follows.
    app.sign_in_ok(&username).await;
    let second = admin_events(&app, &admin, &format!("{query}&after={next}")).await;
    let second_events = second["events"].as_array().unwrap();
    assert_eq!(
        types(second_events),
        ["user.signed_in", "user.signed_in", "user.signed_up"]
    );
    assert_eq!(second["next"], Value::Null);
    let first_ids: Vec<&Value> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert!(second_events.iter().all(|e| !first_ids.contains(&&e["id"])));
    let all = all_admin_events(&app, &admin, &format!("user_id={user_id}")).await;
    assert_eq!(all.len(), 7);
    let mine = my_events(&app, &tokens.access_token, "limit=7").await;
    assert_eq!(mine["events"].as_array().unwrap().len(), 7);
    assert_eq!(mine["next"], Value::Null);

    // Filters: `type` repeatable and exact, `since` inclusive, `until` exclusive.
    let signout = app.sign_in_ok(&username).await;
    assert_eq!(
        app.signout(&signout.refresh_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let both = all_admin_events(
        &app,
        &admin,
        &format!("user_id={user_id}&type=user.signed_up&type=session.signed_out"),
    )
    .await;
    assert_eq!(types(&both), ["session.signed_out", "user.signed_up"]);
    let none = all_admin_events(&app, &admin, &format!("user_id={user_id}&type=user.signed")).await;
    assert!(none.is_empty());
    let at = both[0]["at"].as_str().unwrap();
    let encoded = |at: &str| at.replace('+', "%2B");
    let since = all_admin_events(
        &app,
        &admin,
        &format!("user_id={user_id}&since={}", encoded(at)),
    )
    .await;
    assert_eq!(types(&since), ["session.signed_out"]);
    let until = all_admin_events(
        &app,
        &admin,
        &format!("user_id={user_id}&until={}", encoded(at)),
    )
    .await;
    assert_eq!(until.len(), all.len() + 1, "everything before the sign-out");
    let later = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
    let page = admin_events(&app, &admin, &format!("since={}", encoded(&later))).await;
    assert_eq!(page, json!({"events": [], "next": null}));

    // Bad paging and filter input.
    for (query, status, code) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        ("limit=201", StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        ("limit=ten", StatusCode::BAD_REQUEST, "malformed_request"),
        (
            "after=not-a-uuid",
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        ("user_id=42", StatusCode::BAD_REQUEST, "malformed_request"),
        (
            "since=yesterday",
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
    ] {
        let response = app
            .call(Method::GET, &format!("/v1/admin/events?{query}"), &admin)
            .await;
        let problem = assert_problem(response, status, code).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(problem["errors"][0]["code"], "out_of_range", "{query}");
        }
    }
    let response = app
        .call(Method::GET, "/v1/me/events?limit=0", &tokens.access_token)
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
}

#[tokio::test]
async fn pages_and_filters_on_sqlite() {
    pages_and_filters(Backend::Sqlite).await;
}

#[tokio::test]
async fn pages_and_filters_on_postgres() {
    pages_and_filters(Backend::Postgres).await;
}

#[tokio::test]
async fn refreshes_and_unknown_users_write_nothing() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin_token(None).await;
    let (known, tokens) = app.new_session().await;
    let before = all_admin_events(&app, &admin, "").await.len();
    let refreshed = app.refreshed(&tokens.refresh_token).await;
    app.refreshed(&refreshed.refresh_token).await;
    app.assert_signin_refused(&unique_username(), "some-password-123")
        .await;
    // Refused requests' events are written in order, after the answer: once
    // the known user's failure is there, the unknown one's would be too.
    app.assert_signin_refused(&known, "some-password-123").await;
    let events = until_recorded(&app, &admin, "", &["user.signin_failed"]).await;
    assert_eq!(events.len(), before + 1, "{:?}", types(&events));
}

#[tokio::test]
async fn a_deleted_users_events_keep_what_happened_but_not_where_from() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin_token(None).await;
    let (_, tokens) = app.new_session().await;
    let user_id = user_id_of(&tokens.access_token, &app).await;
    let before = all_admin_events(&app, &admin, &format!("user_id={user_id}")).await;
    assert!(before.iter().all(|e| e["ip"] == "127.0.0.1"));
    let deleted = app
        .delete_account(&tokens.access_token, STRONG_PASSWORD)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = all_admin_events(&app, &admin, &format!("user_id={user_id}")).await;
    assert_eq!(
        types(&after),
        ["user.deleted", "user.signed_in", "user.signed_up"]
    );
    for (event, earlier) in after[1..].iter().zip(&before) {
        assert_eq!(
            (
                &event["id"],
                &event["at"],
                &event["actor"],
                &event["session_id"]
            ),
            (
                &earlier["id"],
                &earlier["at"],
                &earlier["actor"],
                &earlier["session_id"]
            )
        );
    }
    for event in &after {
        assert_eq!(
            (&event["ip"], &event["user_agent"], &event["detail"]),
            (&Value::Null, &Value::Null, &Value::Null),
            "{event}"
        );
        assert_eq!(event["user_id"], user_id.as_str());
    }
    assert_eq!(after[0]["actor"]["kind"], "user");
}

/// Inserts into `audit_events` refused, as a full disk or a lost grant
/// would: everything else in the database still works.
async fn refuse_event_inserts(app: &TestApp, refuse: bool) {
    let statement = if refuse {
        "ALTER TABLE audit_events ADD CONSTRAINT refuse_events CHECK (false) NOT VALID"
    } else {
        "ALTER TABLE audit_events DROP CONSTRAINT refuse_events"
    };
    app.database()
        .await
        .execute_unprepared(statement)
        .await
        .unwrap();
}

async fn dropped_events(app: &TestApp) -> u64 {
    let url = format!("http://{}/metrics", app.metrics_addr.unwrap());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("tessera_audit_events_dropped_total "))
        .expect("the drop counter is exported")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_event_cannot_be_written_is_not_made_but_session_events_wait() {
    let app = TestApp::with(Backend::Postgres)
        .set("audit.queue_capacity", "2")
        .start()
        .await;
    let (_, admin) = app.admin_token(None).await;
    let (username, tokens) = app.new_session().await;
    let user_id = user_id_of(&tokens.access_token, &app).await;
    let sessions: Vec<_> = {
        let mut sessions = Vec::new();
        for _ in 0..5 {
            sessions.push(app.sign_in_ok(&username).await);
        }
        sessions
    };
    assert_eq!(dropped_events(&app).await, 0);

    refuse_event_inserts(&app, true).await;
    // A Redis-only change stands; its event waits (two fit, the rest drop).
    for session in &sessions[..4] {
        assert_eq!(
            app.signout(&session.refresh_token).await.status(),
            StatusCode::NO_CONTENT
        );
        app.assert_refresh_rejected(&session.refresh_token).await;
    }
    // A database change and its event are one transaction: neither happens
    // (the sessions they end first stay ended, as for any database failure).
    let change = app
        .change_password(&tokens.access_token, STRONG_PASSWORD, NEW_PASSWORD)
        .await;
    assert_problem(change, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let disable = app
        .call(
            Method::POST,
            &format!("/v1/admin/users/{user_id}/disable"),
            &admin,
        )
        .await;
    assert_problem(disable, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(dropped_events(&app).await >= 1);
    refuse_event_inserts(&app, false).await;

    let waited = until_recorded(
        &app,
        &admin,
        &format!("user_id={user_id}&type=session.signed_out"),
        &["session.signed_out"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = all_admin_events(
        &app,
        &admin,
        &format!("user_id={user_id}&type=session.signed_out"),
    )
    .await
    .len() as u64;
    assert!(!waited.is_empty());
    assert_eq!(
        written + dropped_events(&app).await,
        4,
        "every event written or counted"
    );
    // Neither refused change happened: the account is enabled and the old
    // password still signs in.
    let user: Value = app
        .call(Method::GET, &format!("/v1/admin/users/{user_id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["disabled"], false);
    assert_eq!(user["password_changed_at"], Value::Null);
    app.sign_in_ok(&username).await;
    let kinds = types(&all_admin_events(&app, &admin, &format!("user_id={user_id}")).await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        !kinds
            .iter()
            .any(|k| k == "user.disabled" || k == "user.password_changed")
    );
}

/// Old events, stamped as of `days` ago, straight into the table.
async fn old_events(app: &TestApp, count: usize, days: i64) {
    let db = app.database().await;
    let at = Utc::now() - TimeDelta::days(days);
    let event = EventType::SignedIn.by(&Acting::cli()).user(Uuid::now_v7());
    for _ in 0..count {
        tessera::audit::insert(&db, at, &event).await.unwrap();
    }
}

async fn retention_prunes_in_batches_on_every_instance(builder: TestAppBuilder) {
    let keeper = builder.set("audit.retention_days", "0").start().await;
    let (_, admin) = keeper.admin_token(None).await;
    old_events(&keeper, 1_234, 91).await;
    old_events(&keeper, 3, 89).await;
    let total = all_admin_events(&keeper, &admin, "").await.len();
    assert_eq!(total, 1_234 + 3 + 1, "with the admin token's own event");

    // Two instances pruning at once, every 0.1 s.
    let pruning = |keeper: &TestApp| {
        TestApp::with(Backend::Sqlite)
            .sharing_storage_of(keeper)
            .set_all(&[
                ("audit.retention_days", "90"),
                ("audit.prune_interval_secs", "0.1"),
            ])
            .start()
    };
    let (first, second) = tokio::join!(pruning(&keeper), pruning(&keeper));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = all_admin_events(&keeper, &admin, "").await.len();
        if left == 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{left} events left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_in_batches_on_every_instance_on_sqlite() {
    retention_prunes_in_batches_on_every_instance(TestApp::with(Backend::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_in_batches_on_every_instance_on_postgres() {
    retention_prunes_in_batches_on_every_instance(TestApp::with(Backend::Postgres)).await;
}
