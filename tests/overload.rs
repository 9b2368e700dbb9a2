//! Overload: past the hashing queue, sign-ins are shed with 503 at once while
//! requests that need no hashing keep answering.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, STRONG_PASSWORD, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signin_flood_past_the_queue_is_shed_while_me_keeps_answering() {
    let app = TestApp::with(Backend::Sqlite)
        .set("password.hashing_workers", "1")
        .set("password.hashing_queue", "4")
        // Every sign-in counts as a failure until its password checks out:
        // 40 at once for one user would hit that limit before the queue.
        .set("rate_limit.signin_failures", "1000")
        .start()
        .await;
    let (username, tokens) = app.new_session().await;

    const FLOOD: usize = 40;
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/v1/auth/signin"))
                .json(&json!({"username": username, "password": STRONG_PASSWORD}));
            tokio::spawn(async move {
                let started = Instant::now();
                let response = request.send().await.unwrap();
                (response, started.elapsed(), Instant::now())
            })
        })
        .collect();
    // While the flood is being hashed, a bearer request does no hashing and answers.
    let me = app.get_with_token("/v1/me", &tokens.access_token).await;
    let me_answered = Instant::now();
    assert_eq!(me.status(), StatusCode::OK);

    let (mut signed_in, mut shed) = (0, 0);
    let mut last_signin_answered = me_answered;
    for task in flood {
        let (response, latency, answered) = task.await.unwrap();
        last_signin_answered = last_signin_answered.max(answered);
        match response.status() {
            StatusCode::OK => signed_in += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                // Refused at once, not after waiting for a slot.
                assert!(latency < Duration::from_secs(2), "503 after {latency:?}");
                assert_eq!(response.headers()["retry-after"], "1");
                assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // One hashing and four waiting at most at any moment: most of 40 are shed.
    assert!(signed_in >= 5, "{signed_in} signed in");
    assert!(shed >= FLOOD / 2, "{shed} shed of {FLOOD}");
    // `/v1/me` did not queue behind the hashes: it was answered while sign-ins still waited.
    assert!(
        me_answered < last_signin_answered,
        "/v1/me was answered only after every sign-in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_signups_never_see_503_by_default() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..20).map(|_| common::unique_username()).collect();
    let signups = names.iter().map(|name| app.signup(name, STRONG_PASSWORD));
    for response in futures::future::join_all(signups).await {
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}
