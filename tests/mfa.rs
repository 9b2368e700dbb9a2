//! The second factor (contract v1.1 "Second factor: TOTP and recovery
//! codes", "Second-factor attempts", "Sign-in with a second factor", "What
//! the access token says"). Codes come from `common::totp_code`, written
//! from RFC 6238 here, not from the server's implementation.
//!
//! Each server's clock is set to the middle of a 30 s step when it starts,
//! so a test knows which step the server is in (T) for the next 15 s.

mod common;

use base64::Engine;
use chrono::{TimeDelta, Utc};
use common::{
    Backend, NEW_PASSWORD, STRONG_PASSWORD, TestApp, TestAppBuilder, TokenPair, assert_problem,
    totp_code,
};
use futures::future::join_all;
use reqwest::{Response, StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use tessera::audit::Acting;
use tessera::{clock::Clock, domain::Username, flows, users::UserRef};

#[test]
fn the_test_totp_generator_meets_the_rfc_6238_vectors() {
    // "12345678901234567890" in base32.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for (time, code) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (2_000_000_000, "279037"),
    ] {
        assert_eq!(totp_code(secret, time), code);
    }
}

/// The offset that puts "now" 15 s into a step.
fn mid_step() -> TimeDelta {
    let into_step = Utc::now().timestamp_millis().rem_euclid(30_000);
    TimeDelta::milliseconds(15_000 - into_step)
}

/// A server whose clock is in the middle of a step, and that step's clock.
struct MfaApp {
    app: TestApp,
    offset: TimeDelta,
}

impl MfaApp {
    async fn start(builder: TestAppBuilder) -> MfaApp {
        let offset = mid_step();
        let app = builder.clock(Clock::skewed(offset)).start().await;
        MfaApp { app, offset }
    }

    /// The code of step T + `steps` as the server's clock reads T.
    fn code(&self, secret: &str, steps: i64) -> String {
        let now = (Utc::now() + self.offset).timestamp();
        totp_code(secret, now + 30 * steps)
    }
}

impl std::ops::Deref for MfaApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// A user with TOTP on, confirmed with the code of step T − 1 (so T and T + 1
/// are left for the test).
struct Enrolled {
    username: String,
    tokens: TokenPair,
    secret: String,
    recovery_codes: Vec<String>,
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Response {
    app.post_json_with_token(path, token, &body).await
}

/// `startTotpEnrollment` with the right password: its answer.
async fn start_enrolment(app: &TestApp, access_token: &str) -> Value {
    let started = post(
        app,
        "/v1/me/mfa/totp",
        access_token,
        json!({"password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(started.status(), StatusCode::OK);
    started.json().await.unwrap()
}

async fn enrol(app: &MfaApp) -> Enrolled {
    let (username, tokens) = app.new_session().await;
    let started = start_enrolment(app, &tokens.access_token).await;
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed = post(
        app,
        "/v1/me/mfa/totp/confirm",
        &tokens.access_token,
        json!({"code": app.code(&secret, -1)}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let recovery_codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        username,
        tokens,
        secret,
        recovery_codes,
    }
}

/// Signs in with the password and expects the 202 challenge's token.
async fn challenge(app: &TestApp, username: &str, password: &str) -> String {
    let response = app.signin(username, password).await;
    if response.status() != StatusCode::ACCEPTED {
        panic!("{}: {}", response.status(), response.text().await.unwrap());
    }
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn signin_mfa(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    app.post_json(
        "/v1/auth/signin/mfa",
        &json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
}

fn claims(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn amr(access_token: &str) -> Vec<String> {
    let mut amr: Vec<String> = serde_json::from_value(claims(access_token)["amr"].clone()).unwrap();
    amr.sort();
    amr
}

fn by_name(username: &str) -> UserRef {
    UserRef::Name(Username::parse(username).unwrap())
}

async fn me(app: &TestApp, access_token: &str) -> Value {
    let response = app.get_with_token("/v1/me", access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn enrolment_then_a_two_step_sign_in(backend: Backend) {
    let app = MfaApp::start(TestApp::with(backend)).await;
    let (username, tokens) = app.new_session().await;
    assert_eq!(me(&app, &tokens.access_token).await["mfa_enabled"], false);
    assert_eq!(
        me(&app, &tokens.access_token).await["recovery_codes_left"],
        Value::Null
    );
    assert_eq!(amr(&tokens.access_token), ["pwd"]);
    assert_eq!(claims(&tokens.access_token)["client_id"], "tessera");

    // The password first; a wrong one is a sign-in failure's 401.
    let wrong = post(
        &app,
        "/v1/me/mfa/totp",
        &tokens.access_token,
        json!({"password": NEW_PASSWORD}),
    )
    .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let started = start_enrolment(&app, &tokens.access_token).await;
    let secret = started["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(
        started["otpauth_uri"],
        format!(
            "otpauth://totp/Tessera:{username}?secret={secret}&issuer=Tessera&algorithm=SHA1&digits=6&period=30"
        )
    );
    // Still off until confirmed; a wrong code is 422 on `code`.
    assert_eq!(me(&app, &tokens.access_token).await["mfa_enabled"], false);
    let mut wrong_code = app.code(secret, 0);
    wrong_code.replace_range(
        0..1,
        if wrong_code.starts_with('0') {
            "1"
        } else {
            "0"
        },
    );
    let body = assert_problem(
        post(
            &app,
            "/v1/me/mfa/totp/confirm",
            &tokens.access_token,
            json!({"code": wrong_code}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "code");
    assert_eq!(body["errors"][0]["code"], "invalid_code");
    let confirmed = post(
        &app,
        "/v1/me/mfa/totp/confirm",
        &tokens.access_token,
        json!({"code": app.code(secret, 0)}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    for code in codes {
        let code = code.as_str().unwrap();
        assert_eq!(code.len(), 19, "{code}");
        assert!(
            code.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase()),
            "{code}"
        );
    }
    let me_now = me(&app, &tokens.access_token).await;
    assert_eq!(me_now["mfa_enabled"], true);
    assert_eq!(me_now["recovery_codes_left"], 10);
    // On: a second enrolment or confirmation conflicts.
    for (path, body) in [
        ("/v1/me/mfa/totp", json!({"password": STRONG_PASSWORD})),
        (
            "/v1/me/mfa/totp/confirm",
            json!({"code": app.code(secret, 1)}),
        ),
    ] {
        assert_problem(
            post(&app, path, &tokens.access_token, body).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }

    // Sign-in: 202 with a challenge, then the code.
    let response = app.signin(&username, STRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("access_token").is_none(), "{body}");
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!((1..=300).contains(&expires_in), "{body}");
    let mut methods: Vec<&str> = body["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    methods.sort();
    assert_eq!(methods, ["recovery_code", "totp"]);
    let mfa_token = body["mfa_token"].as_str().unwrap();
    assert!(mfa_token.starts_with("tsm_"));
    assert_problem(
        signin_mfa(&app, mfa_token, "000000").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let response = signin_mfa(&app, mfa_token, &app.code(secret, 1)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("tessera_refresh=")
    );
    let pair: TokenPair = response.json().await.unwrap();
    assert_eq!(amr(&pair.access_token), ["mfa", "otp", "pwd"]);
    let auth_time = claims(&pair.access_token)["auth_time"].as_i64().unwrap();
    assert!((auth_time - (Utc::now() + app.offset).timestamp()).abs() < 10);
    // Refresh keeps how the session was signed in.
    let refreshed = app.refreshed(&pair.refresh_token).await;
    assert_eq!(amr(&refreshed.access_token), ["mfa", "otp", "pwd"]);
    assert_eq!(claims(&refreshed.access_token)["auth_time"], auth_time);
    // The challenge is spent.
    assert_problem(
        signin_mfa(&app, mfa_token, &app.code(secret, 1)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // A recovery code, typed any way, works once.
    let recovery = codes[0].as_str().unwrap().to_uppercase().replace('-', " ");
    let mfa_token = challenge(&app, &username, STRONG_PASSWORD).await;
    let response = signin_mfa(&app, &mfa_token, &recovery).await;
    assert_eq!(response.status(), StatusCode::OK);
    let pair: TokenPair = response.json().await.unwrap();
    assert_eq!(amr(&pair.access_token), ["mfa", "pwd"]);
    assert_eq!(me(&app, &pair.access_token).await["recovery_codes_left"], 9);
    let mfa_token = challenge(&app, &username, STRONG_PASSWORD).await;
    assert_problem(
        signin_mfa(&app, &mfa_token, codes[0].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // The sessions from before TOTP was on keep their `amr`.
    assert_eq!(
        amr(&app.refreshed(&tokens.refresh_token).await.access_token),
        ["pwd"]
    );

    // Wrong password with TOTP on: v1's 401, no challenge.
    app.assert_signin_refused(&username, NEW_PASSWORD).await;
}

/// Replay: a code is accepted only for a step later than the last one
/// accepted, so of concurrent uses of one code on two instances exactly one
/// succeeds; T − 1 and T + 1 are accepted (skew), T ± 2 never.
async fn a_code_works_once_whatever_the_instance(backend: Backend) {
    let app = MfaApp::start(TestApp::with(backend)).await;
    let b = TestApp::with(backend)
        .clock(Clock::skewed(app.offset))
        .sharing_storage_of(&app)
        .start()
        .await;
    // Enrolled with T − 1: it never works again.
    let user = enrol(&app).await;
    let challenges: Vec<String> =
        join_all((0..8).map(|_| challenge(&app, &user.username, STRONG_PASSWORD))).await;
    let stale = signin_mfa(&b, &challenges[7], &app.code(&user.secret, -1)).await;
    assert_problem(stale, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    for steps in [-2, 2] {
        let far = signin_mfa(&app, &challenges[7], &app.code(&user.secret, steps)).await;
        assert_problem(far, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Seven challenges race one code (T) on two instances.
    let code = app.code(&user.secret, 0);
    let answers = join_all(challenges[..7].iter().enumerate().map(|(i, token)| {
        let server: &TestApp = if i % 2 == 0 { &app } else { &b };
        signin_mfa(server, token, &code)
    }))
    .await;
    let statuses: Vec<StatusCode> = answers.iter().map(Response::status).collect();
    let won = common::count(&statuses, StatusCode::OK);
    assert_eq!(won, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    // T + 1 is still ahead; after it, T is behind.
    let next = challenge(&b, &user.username, STRONG_PASSWORD).await;
    assert_eq!(
        signin_mfa(&b, &next, &app.code(&user.secret, 1))
            .await
            .status(),
        StatusCode::OK
    );
}

/// A recovery code used at once from many challenges: one session.
async fn a_recovery_code_works_once_under_concurrency(backend: Backend) {
    let app = MfaApp::start(TestApp::with(backend)).await;
    let user = enrol(&app).await;
    let challenges: Vec<String> =
        join_all((0..6).map(|_| challenge(&app, &user.username, STRONG_PASSWORD))).await;
    let answers = join_all(
        challenges
            .iter()
            .map(|token| signin_mfa(&app, token, &user.recovery_codes[3])),
    )
    .await;
    let won = answers
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
    assert_eq!(
        me(&app, &user.tokens.access_token).await["recovery_codes_left"],
        9
    );
}

on_both_backends!(
    enrolment_then_a_two_step_sign_in,
    a_code_works_once_whatever_the_instance,
    a_recovery_code_works_once_under_concurrency,
    secrets_are_sealed_to_their_user,
);

/// Five wrong codes kill the challenge, even for the right code after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_kill_the_challenge() {
    let app = MfaApp::start(TestApp::with(Backend::Sqlite)).await;
    let user = enrol(&app).await;
    let mfa_token = challenge(&app, &user.username, STRONG_PASSWORD).await;
    for _ in 0..5 {
        assert_problem(
            signin_mfa(&app, &mfa_token, "000000").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    assert_problem(
        signin_mfa(&app, &mfa_token, &app.code(&user.secret, 0)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // Anything that is not an outstanding challenge is the same.
    for dead in [
        "tsm_",
        "",
        user.tokens.refresh_token.as_str(),
        &mfa_token.replacen("tsm_", "tsp_", 1),
    ] {
        assert_problem(
            signin_mfa(&app, dead, &app.code(&user.secret, 0)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
}

/// One counter per user for every code check, whatever the client IP and
/// endpoint, atomic under concurrency: past it, even a right code is 429.
/// Password failures count apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_from_any_ip_and_endpoint_share_one_counter() {
    let app = MfaApp::start(TestApp::with(Backend::Sqlite).set_all(&[
        ("rate_limit.mfa_failures", "4"),
        ("rate_limit.signin_failures", "6"),
        ("server.trusted_proxies", "127.0.0.1/32"),
    ]))
    .await;
    let user = enrol(&app).await;
    // Wrong passwords do not touch the code counter.
    for _ in 0..2 {
        app.signin(&user.username, NEW_PASSWORD).await;
    }
    let challenges: Vec<String> =
        join_all((0..3).map(|_| challenge(&app, &user.username, STRONG_PASSWORD))).await;
    let guesses = (0..10).map(|i| {
        let app = &app;
        let challenges = &challenges;
        let token = user.tokens.access_token.clone();
        async move {
            let code = format!("{:06}", 100_000 + i);
            match i % 3 {
                0 => app
                    .client
                    .post(app.url("/v1/auth/signin/mfa"))
                    .header("x-forwarded-for", format!("198.51.100.{i}"))
                    .json(&json!({"mfa_token": challenges[(i / 3) % 3], "code": code}))
                    .send()
                    .await
                    .unwrap(),
                1 => app
                    .client
                    .post(app.url("/v1/me/mfa/recovery-codes"))
                    .header("x-forwarded-for", format!("203.0.113.{i}"))
                    .bearer_auth(&token)
                    .json(&json!({"password": STRONG_PASSWORD, "code": code}))
                    .send()
                    .await
                    .unwrap(),
                _ => {
                    app.post_json_with_token(
                        "/v1/me/password",
                        &token,
                        &json!({"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD, "code": code}),
                    )
                    .await
                }
            }
        }
    });
    let statuses: Vec<StatusCode> = join_all(guesses)
        .await
        .iter()
        .map(Response::status)
        .collect();
    let wrong = common::count(&statuses, StatusCode::UNAUTHORIZED);
    let limited = common::count(&statuses, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!((wrong, limited), (4, 6), "{statuses:?}");
    // The right code is refused now, everywhere, with Retry-After.
    let mfa_token = challenge(&app, &user.username, STRONG_PASSWORD).await;
    let refused = signin_mfa(&app, &mfa_token, &app.code(&user.secret, 0)).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // And wrong codes never counted as password failures: one more wrong
    // password is still a 401, not a 429.
    app.assert_signin_refused(&user.username, NEW_PASSWORD)
        .await;
}

/// After the consecutive maximum, the factor locks (`mfa_locked`) until an
/// operator resets it or the password is reset; the operator's reset also
/// ends the user's sessions and outstanding challenges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_wrong_codes_lock_the_factor_until_a_reset() {
    let app = MfaApp::start(
        TestApp::with(Backend::Sqlite).set("rate_limit.mfa_max_consecutive_failures", "3"),
    )
    .await;
    let user = enrol(&app).await;
    let mfa_token = challenge(&app, &user.username, STRONG_PASSWORD).await;
    for _ in 0..2 {
        assert_problem(
            signin_mfa(&app, &mfa_token, "000000").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    let locking = challenge(&app, &user.username, STRONG_PASSWORD).await;
    assert_problem(
        signin_mfa(&app, &locking, "000000").await,
        StatusCode::TOO_MANY_REQUESTS,
        "mfa_locked",
    )
    .await;
    // Locked: the right code, and a recovery code, are refused everywhere.
    let fresh = challenge(&app, &user.username, STRONG_PASSWORD).await;
    for code in [app.code(&user.secret, 0), user.recovery_codes[0].clone()] {
        assert_problem(
            signin_mfa(&app, &fresh, &code).await,
            StatusCode::TOO_MANY_REQUESTS,
            "mfa_locked",
        )
        .await;
    }
    // A password reset unlocks (the factor stays on).
    let reset = app.issue_reset(&user.username).await;
    assert_eq!(
        app.reset_password(&reset, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    let unlocked = challenge(&app, &user.username, NEW_PASSWORD).await;
    assert_eq!(
        signin_mfa(&app, &unlocked, &app.code(&user.secret, 0))
            .await
            .status(),
        StatusCode::OK
    );
    // Locked again; the operator's reset removes the factor and ends the
    // sessions and challenges.
    let pair = sign_in_ok_with_code(&app, &user, NEW_PASSWORD, &app.code(&user.secret, 1)).await;
    let mfa_token = challenge(&app, &user.username, NEW_PASSWORD).await;
    for _ in 0..3 {
        signin_mfa(&app, &mfa_token, "000000").await;
    }
    let pending = challenge(&app, &user.username, NEW_PASSWORD).await;
    let (_, removed, _) = flows::reset_mfa(
        &app.operator().await,
        &by_name(&user.username),
        &Acting::cli(),
    )
    .await
    .unwrap();
    assert!(removed);
    app.assert_refresh_rejected(&pair.refresh_token).await;
    assert_problem(
        signin_mfa(&app, &pending, &user.recovery_codes[1]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let tokens = app.sign_in_ok_with(&user.username, NEW_PASSWORD).await;
    assert_eq!(me(&app, &tokens.access_token).await["mfa_enabled"], false);
}

/// Both steps of a sign-in, expecting success.
async fn sign_in_ok_with_code(
    app: &TestApp,
    user: &Enrolled,
    password: &str,
    code: &str,
) -> TokenPair {
    let mfa_token = challenge(app, &user.username, password).await;
    let response = signin_mfa(app, &mfa_token, code).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// With TOTP on, changing the password, deleting the account, turning TOTP
/// off and new recovery codes need a code; a change or a disable kills
/// outstanding challenges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_need_the_code_when_the_factor_is_on() {
    let app = MfaApp::start(TestApp::with(Backend::Sqlite)).await;
    let user = enrol(&app).await;
    let token = &user.tokens.access_token;
    let pending = challenge(&app, &user.username, STRONG_PASSWORD).await;
    for code in [None, Some("000000")] {
        let mut body = json!({"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD});
        if let Some(code) = code {
            body["code"] = json!(code);
        }
        assert_problem(
            post(&app, "/v1/me/password", token, body).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
        assert_problem(
            post(
                &app,
                "/v1/me/delete",
                token,
                json!({"password": STRONG_PASSWORD, "code": code}),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    let changed = post(
        &app,
        "/v1/me/password",
        token,
        json!({"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD, "code": app.code(&user.secret, 0)}),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    // The change moved the epoch: the challenge from before is dead.
    assert_problem(
        signin_mfa(&app, &pending, &user.recovery_codes[0]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // New recovery codes: the old ones stop working.
    let regenerated = post(
        &app,
        "/v1/me/mfa/recovery-codes",
        token,
        json!({"password": NEW_PASSWORD, "code": user.recovery_codes[1]}),
    )
    .await;
    assert_eq!(regenerated.status(), StatusCode::OK);
    let regenerated: Value = regenerated.json().await.unwrap();
    let new_codes = regenerated["recovery_codes"].as_array().unwrap();
    assert_eq!(me(&app, token).await["recovery_codes_left"], 10);
    let pending = challenge(&app, &user.username, NEW_PASSWORD).await;
    assert_problem(
        signin_mfa(&app, &pending, &user.recovery_codes[2]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // Off: the outstanding challenge dies with the factor.
    let disabled = post(
        &app,
        "/v1/me/mfa/totp/disable",
        token,
        json!({"password": NEW_PASSWORD, "code": new_codes[0]}),
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    assert_problem(
        signin_mfa(&app, &pending, new_codes[1].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(me(&app, token).await["recovery_codes_left"], Value::Null);
    assert_problem(
        post(
            &app,
            "/v1/me/mfa/totp/disable",
            token,
            json!({"password": NEW_PASSWORD, "code": "000000"}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    app.sign_in_ok_with(&user.username, NEW_PASSWORD).await;
    // Deleting takes the factor's rows with the account.
    let user = enrol(&app).await;
    let deleted = post(
        &app,
        "/v1/me/delete",
        &user.tokens.access_token,
        json!({"password": STRONG_PASSWORD, "code": user.recovery_codes[0]}),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let db = app.database().await;
    let factors = entity::mfa_factor::Entity::find().all(&db).await.unwrap();
    assert!(factors.is_empty(), "{factors:?}");
    assert!(
        entity::recovery_code::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Encryption at rest: the stored secret is not the base32 secret, and
/// another user's ciphertext, copied into your row, does not open under your
/// id (503 for your code checks, not a code check against their secret).
async fn secrets_are_sealed_to_their_user(backend: Backend) {
    let app = MfaApp::start(TestApp::with(backend)).await;
    let alice = enrol(&app).await;
    let bob = enrol(&app).await;
    let db = app.database().await;
    let operator = app.operator().await;
    let alice_id = flows::find_user(&operator, &by_name(&alice.username))
        .await
        .unwrap()
        .id;
    let bob_id = flows::find_user(&operator, &by_name(&bob.username))
        .await
        .unwrap()
        .id;
    let alice_row = entity::mfa_factor::Entity::find_by_id(alice_id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&alice_row.sealed_secret)
        .unwrap();
    assert!(!alice_row.sealed_secret.contains(&alice.secret));
    assert!(!String::from_utf8_lossy(&raw).contains(&alice.secret));
    assert!(raw.len() >= 24 + 20 + 16, "nonce, secret, tag");
    // Bob's row gets Alice's ciphertext.
    entity::mfa_factor::ActiveModel {
        user_id: Set(bob_id),
        sealed_secret: Set(alice_row.sealed_secret.clone()),
        key_id: Set(alice_row.key_id.clone()),
        ..Default::default()
    }
    .update(&db)
    .await
    .unwrap();
    let mfa_token = challenge(&app, &bob.username, STRONG_PASSWORD).await;
    assert_problem(
        signin_mfa(&app, &mfa_token, &app.code(&alice.secret, 0)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    // Alice's own code still works.
    sign_in_ok_with_code(&app, &alice, STRONG_PASSWORD, &app.code(&alice.secret, 0)).await;
}

/// Key rotation: a new key with the old one retired still opens every
/// secret; `tessera mfa reencrypt` re-seals them under the new key, after
/// which the old key can go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_still_opens_and_reencrypt_reseals() {
    let old_key = "an-old-mfa-encryption-key-0123456789";
    let new_key = "a-new-mfa-encryption-key-9876543210";
    let app =
        MfaApp::start(TestApp::with(Backend::Sqlite).set("mfa.encryption_key", old_key)).await;
    let user = enrol(&app).await;
    let rotated = MfaApp {
        app: TestApp::with(Backend::Sqlite)
            .clock(Clock::skewed(app.offset))
            .set_all(&[
                ("mfa.encryption_key", new_key),
                ("mfa.previous_encryption_keys", old_key),
            ])
            .sharing_storage_of(&app)
            .start()
            .await,
        offset: app.offset,
    };
    sign_in_ok_with_code(
        &rotated,
        &user,
        STRONG_PASSWORD,
        &rotated.code(&user.secret, 0),
    )
    .await;
    let (resealed, unreadable) = flows::reseal_secrets(&rotated.operator().await)
        .await
        .unwrap();
    assert_eq!((resealed, unreadable), (1, 0));
    let only_new = MfaApp {
        app: TestApp::with(Backend::Sqlite)
            .clock(Clock::skewed(app.offset))
            .set("mfa.encryption_key", new_key)
            .sharing_storage_of(&app)
            .start()
            .await,
        offset: app.offset,
    };
    sign_in_ok_with_code(
        &only_new,
        &user,
        STRONG_PASSWORD,
        &only_new.code(&user.secret, 1),
    )
    .await;
    // The old key alone no longer opens it: 503, not a wrong code.
    let mfa_token = challenge(&app, &user.username, STRONG_PASSWORD).await;
    assert_problem(
        signin_mfa(&app, &mfa_token, &app.code(&user.secret, 1)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
}

/// A pending secret lives 10 minutes and a new enrolment replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_secret_is_replaced_and_expires_after_ten_minutes() {
    let app = MfaApp::start(TestApp::with(Backend::Sqlite)).await;
    let (_, tokens) = app.new_session().await;
    let start = || async {
        start_enrolment(&app, &tokens.access_token).await["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = start().await;
    let second = start().await;
    assert_ne!(first, second);
    let confirm = |app: &TestApp, code: String| {
        let app = app.client.post(app.url("/v1/me/mfa/totp/confirm"));
        app.bearer_auth(&tokens.access_token)
            .json(&json!({"code": code}))
            .send()
    };
    let replaced = confirm(&app, app.code(&first, 0)).await.unwrap();
    assert_problem(replaced, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    // Eleven minutes later (a second instance whose clock is ahead), the
    // pending secret is gone.
    let later = MfaApp {
        offset: app.offset + TimeDelta::minutes(11),
        app: TestApp::with(Backend::Sqlite)
            .clock(Clock::skewed(app.offset + TimeDelta::minutes(11)))
            .sharing_storage_of(&app)
            .start()
            .await,
    };
    let expired = confirm(&later, later.code(&second, 0)).await.unwrap();
    assert_problem(expired, StatusCode::CONFLICT, "conflict").await;
    let confirmed = confirm(&app, app.code(&second, 0)).await.unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
}
