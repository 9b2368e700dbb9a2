//! Health, the OpenAPI document, Swagger UI, the CLI and shutdown.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::{
    Backend, STRONG_PASSWORD, TesseraProcess, TestApp, TokenPair, tessera_command, unique_username,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn health_endpoints_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "ok");
}

#[tokio::test]
async fn readiness_names_a_missing_redis() {
    let app = TestApp::with(Backend::Sqlite)
        .set("redis.url", "redis://127.0.0.1:1")
        .start()
        .await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        (body["database"].as_str(), body["redis"].as_str()),
        (Some("ok"), Some("unavailable"))
    );
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_describes_every_operation() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut operation_ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}"));
            operation_ids.push(id.to_owned());
            assert!(operation["summary"].is_string(), "{id} has a summary");
            assert!(
                !operation["tags"].as_array().unwrap().is_empty(),
                "{id} has a tag"
            );
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || (status.starts_with('5') && path.starts_with("/v1")) {
                    let schema = &response["content"]["application/problem+json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/Problem",
                        "{id} {status}"
                    );
                }
            }
        }
    }
    for id in [
        "signup",
        "signin",
        "refresh",
        "signout",
        "signoutAll",
        "getMe",
        "listSessions",
        "revokeSession",
        "live",
        "ready",
        "jwks",
    ] {
        assert!(
            operation_ids.contains(&id.to_owned()),
            "missing {id}: {operation_ids:?}"
        );
    }
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in ["type", "title", "status", "detail", "errors"] {
        assert!(problem.get(field).is_some(), "Problem.{field}");
    }
    // The API sends `null` for them (API.md: `str|null`): generated clients must expect it.
    let session = &doc["components"]["schemas"]["SessionView"]["properties"];
    for field in ["user_agent", "ip"] {
        assert_eq!(session[field]["nullable"], true, "SessionView.{field}");
    }
    let signup = &doc["paths"]["/v1/auth/signup"]["post"]["responses"];
    for status in ["201", "400", "409", "413", "415", "422", "429", "503"] {
        assert!(signup.get(status).is_some(), "signup documents {status}");
    }
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    for (path, method) in [
        ("/v1/me", "get"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{id}", "delete"),
        ("/v1/auth/signout-all", "post"),
    ] {
        let security = &doc["paths"][path][method]["security"];
        assert_eq!(
            security[0]["bearerAuth"],
            serde_json::json!([]),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}

#[test]
fn the_cli_prints_the_openapi_document() {
    let output = tessera_command().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["paths"]["/v1/auth/signup"]["post"].is_object());
}

#[test]
fn the_cli_migrates_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/tessera.db");
    let output = tessera_command()
        .arg("migrate")
        .env("TESSERA_ENV", "test")
        .env(
            "TESSERA__DATABASE__URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(db.exists());
}

#[test]
fn a_bad_setting_stops_the_server_naming_the_key() {
    let output = tessera_command()
        .env("TESSERA_ENV", "test")
        .env("TESSERA__SESSION__IDLE_TIMEOUT_SECS", "an hour")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("idle_timeout_secs"), "{stderr}");
    let output = tessera_command()
        .env("TESSERA_ENV", "production")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("jwt.secret"));
}

/// SIGTERM: stop accepting, finish, exit 0 within 10 s even with an idle
/// keep-alive connection open.
/// Scripts find the port from the log whatever its filter (the `test`
/// environment's is `warn`), and a pipe gets no terminal colour codes.
#[test]
fn the_listening_line_is_written_plainly_whatever_the_filter() {
    let (database_url, _dir) = common::sqlite_in_tempdir();
    let server = TesseraProcess::spawn(&[("TESSERA__DATABASE__URL", &database_url)]);
    assert!(
        server
            .announced
            .contains(&format!("listening on http://{}", server.addr)),
        "{}",
        server.announced
    );
    assert!(
        !server.announced.contains('\u{1b}'),
        "{:?}",
        server.announced
    );
}

/// With `admin.bind`, the admin listener says where it listens, as the
/// main one does, whatever the filter; and it serves the admin API.
#[test]
fn the_admin_listener_is_announced_whatever_the_filter() {
    let (database_url, _dir) = common::sqlite_in_tempdir();
    let server = TesseraProcess::spawn(&[
        ("TESSERA__DATABASE__URL", &database_url),
        ("TESSERA__ADMIN__BIND", "127.0.0.1:0"),
    ]);
    let line = server
        .line_containing("admin on http://")
        .expect("an `admin on` line");
    let addr = line.split("admin on http://").nth(1).unwrap().trim();
    assert_ne!(addr, server.addr);
    // Its own listener: the admin API answers there (401 without a token).
    use std::io::{Read, Write};
    let mut connection = std::net::TcpStream::connect(addr).expect("connect");
    connection
        .write_all(b"GET /v1/admin/users HTTP/1.1\r\nHost: tessera\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

/// `log.format = "json"`: one object per line, the message exactly the text.
#[test]
fn json_logs_are_one_object_per_line() {
    let (database_url, _dir) = common::sqlite_in_tempdir();
    let server = TesseraProcess::spawn(&[
        ("TESSERA__DATABASE__URL", &database_url),
        ("TESSERA__LOG__FORMAT", "json"),
    ]);
    let line: serde_json::Value = serde_json::from_str(&server.announced).expect("a JSON line");
    assert_eq!(
        line["message"],
        format!("listening on http://{}", server.addr),
        "{line}"
    );
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["target"].is_string(), "{line}");
    let timestamp = line["timestamp"].as_str().expect("a timestamp");
    let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339");
    assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC: {timestamp}");
    assert!(
        line.get("fields").is_none(),
        "event fields are flattened: {line}"
    );
}

#[test]
fn sigterm_exits_cleanly_with_idle_keep_alive_connections() {
    let (database_url, _dir) = common::sqlite_in_tempdir();
    let server = TesseraProcess::spawn(&[("TESSERA__DATABASE__URL", &database_url)]);
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    write!(idle, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// SIGTERM while sign-ins queue for the one hashing worker: the server stops
/// accepting connections at once, still answers every request it has
/// received, then exits 0 within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let (database_url, _dir) = common::sqlite_in_tempdir();
    let key_prefix = common::fresh_key_prefix();
    let server = TesseraProcess::spawn(&[
        ("TESSERA__DATABASE__URL", &database_url),
        ("TESSERA__REDIS__URL", &common::redis_url()),
        ("TESSERA__REDIS__KEY_PREFIX", &key_prefix),
        ("TESSERA__PASSWORD__HASHING_WORKERS", "1"),
    ]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let credentials = json!({"username": unique_username(), "password": STRONG_PASSWORD});
    let created = client
        .post(server.url("/v1/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Six sign-ins, one Argon2 hash each, answered one after another.
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let signins: Vec<_> = (0..6)
        .map(|_| {
            let request = client
                .post(server.url("/v1/auth/signin"))
                .json(&credentials);
            let answered = answered.clone();
            tokio::spawn(async move {
                let response = request.send().await;
                let at = Instant::now();
                let _ = answered.send(());
                let response = response.expect("an answer, not a dropped connection");
                (at, response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    // The first answer took a whole hash: by then the server has read the
    // other five requests, which wait for the worker.
    answers.recv().await.unwrap();
    let sigterm = server.send_sigterm();

    // The listener closes at once, while the server is still answering: a
    // new connection is refused (or reset, when it was still waiting to be
    // accepted as the listener closed).
    let refused = loop {
        match tokio::net::TcpStream::connect(&server.addr).await {
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break Instant::now();
            }
            Err(err) => panic!("connecting after SIGTERM: {err}"),
            Ok(_) => {
                assert!(
                    sigterm.elapsed() < Duration::from_secs(2),
                    "still accepting connections 2 s after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    let mut answered_at = Vec::new();
    for signin in signins {
        let (at, status, body) = signin.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let tokens: TokenPair = serde_json::from_str(&body).expect("a token pair");
        assert_eq!(tokens.token_type, "Bearer");
        assert!(!tokens.access_token.is_empty() && !tokens.refresh_token.is_empty());
        answered_at.push(at);
    }
    let after_sigterm: Vec<Duration> = answered_at
        .iter()
        .filter_map(|at| at.checked_duration_since(sigterm))
        .collect();
    assert!(
        !after_sigterm.is_empty(),
        "every sign-in was answered before SIGTERM: nothing was in flight"
    );
    let last = answered_at.iter().max().unwrap();
    assert!(
        refused < *last,
        "a new connection was refused only after the last answer \
         ({:?} after SIGTERM; answers {after_sigterm:?} after it)",
        refused - sigterm
    );
    let status = tokio::task::spawn_blocking(move || server.exit_status(sigterm))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    common::delete_redis_keys(&key_prefix).await;
}
