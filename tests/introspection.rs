//! For resource servers (contract v1.1 "For resource servers (RFC 7662,
//! RFC 7009)"): introspection answers from the session and the user, never
//! changes a refresh session, and says `active: false` for everything not
//! live but 503 for an outage; revocation ends the token's session.

mod common;

use std::time::Duration;

use common::{Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, TokenPair, assert_problem};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const CLIENT_ID: &str = "catalog";
const CLIENT_SECRET: &str = "catalog-secret-0123456789abcdefghij";

fn with_client(backend: Backend) -> common::TestAppBuilder {
    TestApp::with(backend).set(
        "introspection.clients",
        &format!("{CLIENT_ID}:{CLIENT_SECRET},other:{}", "o".repeat(40)),
    )
}

/// `POST /oauth/introspect` as a resource server sends it.
async fn introspect(app: &TestApp, token: &str) -> Value {
    let response = introspect_raw(app, &[("token", token)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn introspect_raw(app: &TestApp, form: &[(&str, &str)]) -> Response {
    app.client
        .post(app.url("/oauth/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn revoke(app: &TestApp, token: &str) -> Response {
    app.client
        .post(app.url("/oauth/revoke"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

fn inactive() -> Value {
    json!({"active": false})
}

async fn access_tokens_are_live_only_while_their_session_and_user_are(backend: Backend) {
    let app = with_client(backend)
        .set("session.reuse_grace_secs", "0")
        .start()
        .await;
    let (username, tokens) = app.new_session().await;

    let live = introspect(&app, &tokens.access_token).await;
    let me: Value = app
        .get_with_token("/v1/me", &tokens.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live["active"], true);
    assert_eq!(live["token_type"], "Bearer");
    assert_eq!(live["tessera_token_kind"], "access_token");
    assert_eq!(live["sub"], me["id"]);
    assert_eq!(live["sid"], tokens.session_id.to_string());
    assert_eq!(live["username"], username.to_lowercase());
    assert_eq!(live["client_id"], "tessera");
    assert_eq!(
        (&live["iss"], &live["aud"]),
        (&json!("tessera"), &json!("tessera"))
    );
    assert_eq!(live["amr"], json!(["pwd"]));
    for claim in ["exp", "iat", "auth_time"] {
        assert!(live[claim].is_i64(), "{claim}: {live}");
    }
    assert_eq!(
        live["exp"].as_i64().unwrap() - live["iat"].as_i64().unwrap(),
        900
    );
    assert!(live["jti"].is_string());

    // Signed out: the JWT still verifies offline (no CHECK_ON_ACCESS), but
    // introspection refuses it at once.
    let signed_out = app.sign_in_ok(&username).await;
    assert_eq!(
        app.signout(&signed_out.refresh_token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(introspect(&app, &signed_out.access_token).await, inactive());
    assert_eq!(
        app.get_with_token("/v1/me", &signed_out.access_token)
            .await
            .status(),
        StatusCode::OK
    );

    // A replayed refresh token revoked its session.
    let stolen = app.sign_in_ok(&username).await;
    app.refreshed(&stolen.refresh_token).await;
    app.assert_refresh_rejected(&stolen.refresh_token).await;
    assert_eq!(introspect(&app, &stolen.access_token).await, inactive());

    // A password change ends the other sessions (epoch), not the caller's.
    let other = app.sign_in_ok(&username).await;
    let changed = app
        .change_password(&tokens.access_token, STRONG_PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(introspect(&app, &other.access_token).await, inactive());
    assert_eq!(introspect(&app, &tokens.access_token).await["active"], true);

    // A disabled user's tokens are not live.
    let operator = app.operator().await;
    let user = tessera::users::UserRef::Name(tessera::domain::Username::parse(&username).unwrap());
    tessera::flows::disable_user(&operator, &user, &tessera::audit::Acting::cli())
        .await
        .unwrap();
    assert_eq!(introspect(&app, &tokens.access_token).await, inactive());

    // Tokens that are not ours, or not any more.
    let forged = format!("{}x", &tokens.access_token);
    for token in ["", "junk", forged.as_str(), "tsr_AAAA"] {
        assert_eq!(introspect(&app, token).await, inactive(), "{token:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_are_live_only_while_their_session_and_user_are_on_sqlite() {
    access_tokens_are_live_only_while_their_session_and_user_are(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_are_live_only_while_their_session_and_user_are_on_postgres() {
    access_tokens_are_live_only_while_their_session_and_user_are(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspecting_a_refresh_token_changes_nothing() {
    let app = with_client(Backend::Sqlite)
        .set_all(&[
            ("session.idle_timeout_secs", "1.5"),
            ("session.reuse_grace_secs", "0.3"),
        ])
        .start()
        .await;
    let (username, first) = app.new_session().await;
    let live = introspect(&app, &first.refresh_token).await;
    assert_eq!(live["active"], true);
    assert_eq!(live["tessera_token_kind"], "refresh_token");
    assert_eq!(live["sid"], first.session_id.to_string());
    assert_eq!(live["username"], username.to_lowercase());
    let now = chrono::Utc::now().timestamp();
    let exp = live["exp"].as_i64().unwrap();
    assert!(
        (now..=now + 2).contains(&exp),
        "idle expiry {exp}, now {now}"
    );
    assert_eq!(
        live.as_object().unwrap().len(),
        6,
        "active, kind, sub, sid, username, exp: {live}"
    );

    // Only the current generation is live; the previous one, even inside
    // the grace window, is not, and asking about it is no replay.
    let second = app.refreshed(&first.refresh_token).await;
    assert_eq!(introspect(&app, &first.refresh_token).await, inactive());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(introspect(&app, &first.refresh_token).await, inactive());
    assert_eq!(
        introspect(&app, &second.refresh_token).await["active"],
        true
    );
    // Introspection never rotated it: the same token refreshes.
    let third = app.refreshed(&second.refresh_token).await;

    // Nor does it reset the idle timer: asked about every 0.4 s, the
    // session still goes idle 1.5 s after its last refresh.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(introspect(&app, &third.refresh_token).await["active"], true);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(introspect(&app, &third.refresh_token).await, inactive());
    app.assert_refresh_rejected(&third.refresh_token).await;
}

#[tokio::test]
async fn only_configured_clients_introspect_with_a_well_formed_form() {
    let app = with_client(Backend::Sqlite).start().await;
    let (_, tokens) = app.new_session().await;
    let send = |auth: Option<(&'static str, String)>| {
        let mut request = app
            .client
            .post(app.url("/oauth/introspect"))
            .form(&[("token", tokens.access_token.as_str())]);
        if let Some((id, secret)) = auth {
            request = request.basic_auth(id, Some(secret));
        }
        request.send()
    };
    for auth in [
        None,
        Some((CLIENT_ID, "wrong-secret-0123456789abcdefghijkl".to_owned())),
        Some(("other", CLIENT_SECRET.to_owned())),
        Some(("nobody", CLIENT_SECRET.to_owned())),
    ] {
        let response = send(auth.clone()).await.unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="tessera", charset="UTF-8""#,
            "{auth:?}"
        );
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert_eq!(problem["error"], "invalid_client");
        assert!(!problem.to_string().contains(CLIENT_SECRET));
    }
    // The second client is a client too.
    let response = send(Some(("other", "o".repeat(40)))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A user's bearer token is no client credential.
    let response = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&tokens.access_token)
        .form(&[("token", tokens.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // Unknown parameters and hints are ignored; the kind is found anyway.
    let hinted = introspect_raw(
        &app,
        &[
            ("token", tokens.access_token.as_str()),
            ("token_type_hint", "refresh_token"),
            ("resource", "https://catalog.example"),
        ],
    )
    .await;
    assert_eq!(hinted.json::<Value>().await.unwrap()["active"], true);
    let missing = introspect_raw(&app, &[("token_type_hint", "access_token")]).await;
    let problem = assert_problem(missing, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert_eq!(problem["error"], "invalid_request");
    let repeated = introspect_raw(&app, &[("token", "a"), ("token", "b")]).await;
    assert_problem(repeated, StatusCode::BAD_REQUEST, "malformed_request").await;
    let json_body = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .json(&json!({"token": tokens.access_token}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(
        json_body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("application/x-www-form-urlencoded")
    );

    // Without configured clients nobody may introspect.
    let closed = TestApp::spawn().await;
    let response = closed
        .client
        .post(closed.url("/oauth/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

async fn revocation_ends_the_tokens_session(backend: Backend) {
    let app = with_client(backend).start().await;
    let (username, tokens) = app.new_session().await;
    let user_id = introspect(&app, &tokens.access_token).await["sub"].clone();

    // A refresh token of an older generation still names its session.
    let rotated = app.refreshed(&tokens.refresh_token).await;
    let response = revoke(&app, &tokens.refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "0");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.bytes().await.unwrap().is_empty());
    app.assert_refresh_rejected(&rotated.refresh_token).await;
    assert_eq!(introspect(&app, &rotated.access_token).await, inactive());

    // A valid access token revokes its session too.
    let other: TokenPair = app.sign_in_ok(&username).await;
    assert_eq!(
        revoke(&app, &other.access_token).await.status(),
        StatusCode::OK
    );
    app.assert_refresh_rejected(&other.refresh_token).await;

    // Anything else: 200, nothing happens.
    let kept = app.sign_in_ok(&username).await;
    let forged = format!("{}x", &kept.access_token);
    for token in ["", "junk", forged.as_str(), "tsr_AAAA"] {
        assert_eq!(
            revoke(&app, token).await.status(),
            StatusCode::OK,
            "{token:?}"
        );
    }
    assert_eq!(introspect(&app, &kept.refresh_token).await["active"], true);
    // Basic is optional, but if sent it must be a configured client's.
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(CLIENT_ID, Some("not-the-secret-0123456789abcdefghijkl"))
        .form(&[("token", kept.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(introspect(&app, &kept.refresh_token).await["active"], true);
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", kept.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &kept.refresh_token).await, inactive());

    // Each revocation is a `session.revoked` event of the user.
    let (_, admin) = app.admin_token(None).await;
    let events: Value = app
        .client
        .get(app.url(&format!(
            "/v1/admin/events?user_id={}&type=session.revoked",
            user_id.as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 3, "{events}");
}

#[tokio::test]
async fn revocation_ends_the_tokens_session_on_sqlite() {
    revocation_ends_the_tokens_session(Backend::Sqlite).await;
}

#[tokio::test]
async fn revocation_ends_the_tokens_session_on_postgres() {
    revocation_ends_the_tokens_session(Backend::Postgres).await;
}

/// An outage is never `active: false`: that would sign every user out at
/// every resource server.
#[tokio::test]
async fn with_redis_down_introspection_and_revocation_answer_503() {
    let app = with_client(Backend::Sqlite).start().await;
    let (_, tokens) = app.new_session().await;
    let cut_off = with_client(Backend::Sqlite)
        .sharing_storage_of(&app)
        .set_all(&[
            ("redis.url", "redis://127.0.0.1:1"),
            ("redis.command_timeout_ms", "200"),
        ])
        .start()
        .await;
    for token in [&tokens.access_token, &tokens.refresh_token] {
        let response = introspect_raw(&cut_off, &[("token", token)]).await;
        assert!(response.headers().contains_key("retry-after"));
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        let response = revoke(&cut_off, token).await;
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    // Nothing was revoked meanwhile.
    assert_eq!(
        introspect(&app, &tokens.refresh_token).await["active"],
        true
    );
}
