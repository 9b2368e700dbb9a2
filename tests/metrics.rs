//! Prometheus metrics: on their own listener by default, or on the main
//! listener behind a bearer token; counting requests by route pattern,
//! sign-in and refresh outcomes, replayed tokens and the hashing load.

mod common;

use std::time::Duration;

use common::{Backend, STRONG_PASSWORD, TestApp, TokenPair, assert_problem, unique_username};
use reqwest::StatusCode;
use uuid::Uuid;

async fn scrape(app: &TestApp) -> String {
    let url = format!(
        "http://{}/metrics",
        app.metrics_addr.expect("metrics listener")
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

fn assert_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "`{line}` not in the scrape:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_counts_routes_outcomes_and_replays() {
    let app = TestApp::with(Backend::Sqlite)
        .set("session.reuse_grace_secs", "0")
        .set("rate_limit.signin_failures", "1")
        .start()
        .await;
    let (username, first) = app.new_session().await;
    let wrong = "wrong-Password-123456";
    assert_eq!(
        app.signin(&username, wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.signin(&username, wrong).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let second: TokenPair = app.refreshed(&first.refresh_token).await;
    // While the session is live (revoking needs a live one).
    let revoke = app
        .delete_session(&second.access_token, Uuid::now_v7())
        .await;
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The replay revokes the session: theft detected.
    assert_eq!(
        app.refresh(&first.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh("tsr_garbage").await.status(),
        StatusCode::UNAUTHORIZED
    );
    for path in ["/nowhere", "/also/nowhere"] {
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND);
    }

    let text = scrape(&app).await;
    for line in [
        r#"tessera_signins_total{outcome="success"} 1"#,
        r#"tessera_signins_total{outcome="invalid"} 1"#,
        r#"tessera_signins_total{outcome="limited"} 1"#,
        r#"tessera_refreshes_total{outcome="rotated"} 1"#,
        r#"tessera_refreshes_total{outcome="reuse_detected"} 1"#,
        r#"tessera_refreshes_total{outcome="invalid"} 1"#,
        "tessera_refresh_token_reuse_detected_total 1",
        r#"tessera_http_requests_total{route="/v1/auth/signin",method="POST",status="200"} 1"#,
        r#"tessera_http_requests_total{route="/v1/auth/signin",method="POST",status="401"} 1"#,
        r#"tessera_http_requests_total{route="/v1/auth/signin",method="POST",status="429"} 1"#,
        r#"tessera_http_requests_total{route="/v1/auth/signup",method="POST",status="201"} 1"#,
        r#"tessera_http_request_duration_seconds_count{route="/v1/auth/signin",method="POST"} 3"#,
        // Ids never become labels: paths are patterns, and unmatched paths share one series.
        r#"tessera_http_requests_total{route="/v1/sessions/:param0",method="DELETE",status="404"} 1"#,
        r#"tessera_http_requests_total{route="unmatched",method="GET",status="404"} 2"#,
        "tessera_hashing_active_jobs 0",
        "tessera_hashing_queue_depth 0",
    ] {
        assert_line(&text, line);
    }
    assert!(!text.contains(&first.session_id.to_string()), "{text}");
    assert!(!text.contains(&username), "{text}");

    let url = format!("http://{}/metrics", app.metrics_addr.unwrap());
    let posted = app.client.post(url).send().await.unwrap();
    assert_problem(posted, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // Not on the public listener unless a token is configured.
    assert_problem(
        app.get("/metrics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_the_main_listener_answer_only_to_their_token() {
    let token = "metrics-token-for-the-test-suite-0123456789";
    let app = TestApp::with(Backend::Sqlite)
        .set("metrics.bind", "")
        .set("metrics.token", token)
        .start()
        .await;
    assert_eq!(app.metrics_addr, None);

    let missing = app.get("/metrics").await;
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_problem(missing, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-for-the-test-suite-012345678X")
        .send()
        .await
        .unwrap();
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let scraped = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert_line(&text, "tessera_hashing_active_jobs 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_gauges_show_running_and_queued_hashes() {
    let app = TestApp::with(Backend::Sqlite)
        .set("password.hashing_workers", "1")
        .set("rate_limit.enabled", "false")
        .start()
        .await;
    let signups = futures::future::join_all(
        (0..12).map(|_| async { app.signup(&unique_username(), STRONG_PASSWORD).await }),
    );
    let watch = async {
        // Poll until one hash runs while others wait; the signups take far longer.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let text = scrape(&app).await;
            let queued = text
                .lines()
                .find_map(|l| l.strip_prefix("tessera_hashing_queue_depth "))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if text.lines().any(|l| l == "tessera_hashing_active_jobs 1") && queued >= 1 {
                return queued;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        0
    };
    let (responses, queued) = tokio::join!(signups, watch);
    assert!(responses.iter().all(|r| r.status() == StatusCode::CREATED));
    assert!(queued >= 1);
    assert_line(&scrape(&app).await, "tessera_hashing_queue_depth 0");
}

/// The scrape with every sample value zeroed: what a scrape costs to store,
/// whatever the counts.
fn series(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, _value) = line.rsplit_once(' ').expect("a sample line");
            format!("{series} 0")
        })
        .collect()
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_series() {
    let app = TestApp::spawn().await;
    let send = |method: String, path: String| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client.request(method, app.url(&path)).send()
    };
    let paths = |i: usize| {
        [
            format!("/{i}"),
            format!("/v1/{i}"),
            format!("/v1/sessions/{i}"),
            format!("/docs/{i}"),
            "/v1/me".to_owned(),
        ]
    };
    // Each shape of request once, so that its series exist.
    for path in paths(0) {
        for method in ["GET", "BREW"] {
            send(method.to_owned(), path.clone()).await.unwrap();
        }
    }
    let before = series(&scrape(&app).await);
    for i in 1..=60 {
        for path in paths(i) {
            send(format!("BREW{i}"), path).await.unwrap();
        }
    }
    let after = series(&scrape(&app).await);
    let added: Vec<&String> = after
        .iter()
        .filter(|s| !before.contains(s))
        .take(5)
        .collect();
    assert!(added.is_empty(), "new series, for example {added:?}");
    assert_eq!(before.len(), after.len());
    assert_eq!(before.concat().len(), after.concat().len());
}
