//! Health, the OpenAPI document, Swagger UI, the CLI and shutdown.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use common::{Backend, TesseraProcess, TestApp, tessera_command};
use reqwest::StatusCode;
use serde_json::Value;

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
#[test]
fn sigterm_exits_cleanly_with_idle_keep_alive_connections() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let server = TesseraProcess::spawn(&[("TESSERA__DATABASE__URL", &database_url)]);
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    write!(idle, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}
