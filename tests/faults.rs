//! Behaviour under faults: Redis killed or hung, the database taken away, and
//! recovery — without a server restart — once they come back; and a stored
//! value corrupted under the server.
//!
//! Redis faults use a private `redis-server` that each test owns (the shared
//! one is never touched); database faults rename the test's own PostgreSQL
//! database away from under the running server and back.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, DatabaseAway, STRONG_PASSWORD, TestApp, TokenPair, assert_problem,
    redis_servers::PrivateRedis, unique_username,
};
use reqwest::{Response, StatusCode};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;

/// Redis down or hung: sign-in, refresh and signout answer 503 within this.
const REDIS_OUTAGE_ANSWER: Duration = Duration::from_secs(2);
/// Database down: signup, sign-in and `/v1/me` answer 503 within this.
const DATABASE_OUTAGE_ANSWER: Duration = Duration::from_secs(3);
/// Once the dependency is back, the server works again within this.
const RECOVERY: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Redis

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_fast_and_the_server_recovers_by_itself() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::with(Backend::Sqlite)
        .set("redis.url", &redis.url())
        .start()
        .await;
    let (username, first) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;
    let (_, other) = app.new_session().await;

    redis.kill();

    let signin = app.signin(&username, STRONG_PASSWORD);
    assert_unavailable_within("sign-in, Redis down", REDIS_OUTAGE_ANSWER, signin).await;
    let refresh = app.refresh(&first.refresh_token);
    assert_unavailable_within("refresh, Redis down", REDIS_OUTAGE_ANSWER, refresh).await;
    let signout_second = app.signout(&second.refresh_token);
    assert_unavailable_within("signout, Redis down", REDIS_OUTAGE_ANSWER, signout_second).await;
    // By default the bearer check touches no storage.
    let me = app.get_with_token("/v1/me", &first.access_token).await;
    assert_eq!(me.status(), StatusCode::OK, "/v1/me while Redis is down");
    assert_not_ready(&app, "redis", "database").await;

    // Redis comes back with its data (append-only file); the server is not restarted.
    redis.spawn().await;
    let (response, waited) = until_available(|| app.refresh(&first.refresh_token)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "refresh with a pre-outage token, {waited:?} after Redis answered again"
    );
    let rotated: TokenPair = response.json().await.unwrap();
    assert_eq!(rotated.session_id, first.session_id);

    // No live session was lost, the failed signout included.
    let response = app.refresh(&second.refresh_token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the session signout failed to end"
    );
    let second: TokenPair = response.json().await.unwrap();
    let response = app.refresh(&other.refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK, "another user's session");
    assert_eq!(
        app.signout(&second.refresh_token).await.status(),
        StatusCode::NO_CONTENT
    );
    app.sign_in_ok(&username).await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_answers_503_in_time_instead_of_hanging() {
    let redis = PrivateRedis::start().await;
    let app = TestApp::with(Backend::Sqlite)
        .set("redis.url", &redis.url())
        .start()
        .await;
    let (username, first) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;

    // Stopped, not dead: connections stay open and nothing answers.
    redis.pause();

    let signin = app.signin(&username, STRONG_PASSWORD);
    assert_unavailable_within("sign-in, Redis hung", REDIS_OUTAGE_ANSWER, signin).await;
    let refresh = app.refresh(&first.refresh_token);
    assert_unavailable_within("refresh, Redis hung", REDIS_OUTAGE_ANSWER, refresh).await;
    let me = app.get_with_token("/v1/me", &first.access_token).await;
    assert_eq!(me.status(), StatusCode::OK, "/v1/me while Redis is hung");
    let started = Instant::now();
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["redis"], "unavailable", "{ready}");
    assert!(
        started.elapsed() < REDIS_OUTAGE_ANSWER,
        "readiness took {:?}",
        started.elapsed()
    );

    let resumed = Instant::now();
    redis.resume();
    let (response, waited) = until_available(|| app.refresh(&second.refresh_token)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "refresh {waited:?} after SIGCONT"
    );
    eprintln!("Redis hang: refresh worked again {waited:?} after SIGCONT");
    // A client that got 503 and retries its refresh is not signed out.
    let response = app.refresh(&first.refresh_token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "retrying the refresh that got 503, {:?} after SIGCONT",
        resumed.elapsed()
    );
    app.sign_in_ok(&username).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_check_on_access_a_redis_outage_makes_bearer_calls_503() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::with(Backend::Sqlite)
        .set("redis.url", &redis.url())
        .set("session.check_on_access", "true")
        .start()
        .await;
    let (_, tokens) = app.new_session().await;
    let me = app.get_with_token("/v1/me", &tokens.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);

    redis.kill();

    // Neither 200 (the session cannot be checked) nor 401 (it was not revoked).
    let me = app.get_with_token("/v1/me", &tokens.access_token);
    assert_unavailable_within(
        "/v1/me with check_on_access, Redis down",
        REDIS_OUTAGE_ANSWER,
        me,
    )
    .await;

    redis.spawn().await;
    let (response, waited) =
        until_available(|| app.get_with_token("/v1/me", &tokens.access_token)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "/v1/me {waited:?} after Redis returned"
    );
}

// ---------------------------------------------------------------------------
// Database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_fast_keeps_sessions_working_and_recovers() {
    let app = TestApp::with(Backend::Postgres).start().await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.new_session().await);
    }
    let users_before = count_users(&app).await;
    assert_eq!(users_before, 3);
    let (username, tokens) = &sessions[0];

    let mut away = DatabaseAway::take(&app.database_url).await;

    let newcomer = unique_username();
    let signup = app.signup(&newcomer, STRONG_PASSWORD);
    assert_unavailable_within("signup, database down", DATABASE_OUTAGE_ANSWER, signup).await;
    let signin = app.signin(username, STRONG_PASSWORD);
    assert_unavailable_within("sign-in, database down", DATABASE_OUTAGE_ANSWER, signin).await;
    let me = app.get_with_token("/v1/me", &tokens.access_token);
    assert_unavailable_within("/v1/me, database down", DATABASE_OUTAGE_ANSWER, me).await;
    // Sessions live in Redis: refresh and signout do not need the database.
    let response = app.refresh(&tokens.refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK, "refresh, database down");
    let refreshed: TokenPair = response.json().await.unwrap();
    let signed_out = &sessions[1].1;
    assert_eq!(
        app.signout(&signed_out.refresh_token).await.status(),
        StatusCode::NO_CONTENT,
        "signout, database down"
    );
    assert_not_ready(&app, "database", "redis").await;

    let restored = Instant::now();
    away.restore().await;
    let (response, waited) =
        until_available(|| app.get_with_token("/v1/me", &refreshed.access_token)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "/v1/me {waited:?} after the database returned"
    );
    let me: Value = response.json().await.unwrap();
    assert_eq!(&me["username"], username);
    eprintln!("Database outage: /v1/me worked again {waited:?} after the database returned");
    app.sign_in_ok(username).await;
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    eprintln!(
        "Database outage: ready again {:?} after it returned",
        restored.elapsed()
    );

    // The sign-out's event waited for the database and was written after.
    let deadline = Instant::now() + Duration::from_secs(5);
    while signed_out_events(&app).await != 1 {
        assert!(
            Instant::now() < deadline,
            "the queued sign-out event was not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The failed signup stored nothing, and what was signed out stays signed out.
    assert_eq!(count_users(&app).await, users_before);
    assert_eq!(
        app.refresh(&signed_out.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------
// Helpers

async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let response = app.get("/health/ready").await;
    let status = response.status();
    (status, response.json().await.expect("readiness body"))
}

/// Readiness answers 503, naming `down` as unavailable and `up` as ok.
async fn assert_not_ready(app: &TestApp, down: &str, up: &str) {
    let (status, ready) = readiness(app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready[down], "unavailable", "{ready}");
    assert_eq!(ready[up], "ok", "{ready}");
}

/// Asserts that `request` answers the 503 `unavailable` problem within `limit`.
async fn assert_unavailable_within(
    what: &str,
    limit: Duration,
    request: impl Future<Output = Response>,
) {
    let started = Instant::now();
    let response = request.await;
    let elapsed = started.elapsed();
    eprintln!("{what}: {} in {elapsed:?}", response.status());
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(elapsed < limit, "{what} took {elapsed:?}, over {limit:?}");
}

/// Repeats `attempt` while it answers 503, for at most [`RECOVERY`]: the last
/// response and how long the wait took.
async fn until_available<F, R>(mut attempt: F) -> (Response, Duration)
where
    F: FnMut() -> R,
    R: Future<Output = Response>,
{
    let started = Instant::now();
    loop {
        let response = attempt().await;
        if response.status() != StatusCode::SERVICE_UNAVAILABLE || started.elapsed() > RECOVERY {
            return (response, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_users(app: &TestApp) -> u64 {
    let db = app.database().await;
    let count = entity::user::Entity::find()
        .count(&db)
        .await
        .expect("count users");
    db.close().await.ok();
    count
}

async fn signed_out_events(app: &TestApp) -> u64 {
    use sea_orm::{ColumnTrait, QueryFilter};
    let db = app.database().await;
    let count = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Type.eq("session.signed_out"))
        .count(&db)
        .await
        .expect("count events");
    db.close().await.ok();
    count
}

/// A stored value no code of ours writes is a bug or corruption: a 500
/// (`internal`), not a 503 that tells the client to come back later.
#[tokio::test]
async fn a_corrupt_session_record_is_an_internal_error_not_an_outage() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.new_session().await;
    let key = app.session_key(&tokens).await;
    let mut redis = common::redis_connection().await;
    let corrupt = |field: &'static str, value: String| {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key).arg(field).arg(value);
        cmd
    };
    let () = corrupt("c", "yesterday".into())
        .query_async(&mut redis)
        .await
        .unwrap();
    let listed = app
        .get_with_token("/v1/sessions", &tokens.access_token)
        .await;
    assert_problem(listed, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    let () = corrupt("m", "a sign-in method no code of ours stores".into())
        .query_async(&mut redis)
        .await
        .unwrap();
    let refreshed = app.refresh(&tokens.refresh_token).await;
    assert_problem(refreshed, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
}
