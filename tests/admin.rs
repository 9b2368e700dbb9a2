//! The operator CLI (`tessera users …`, `tessera sessions …`), run as the real
//! binary against a running test server's database and Redis prefix.

mod common;

use std::{
    io::Write,
    process::{Output, Stdio},
};

use common::{Backend, STRONG_PASSWORD, TestApp, TokenPair, assert_problem, unique_username};
use reqwest::StatusCode;
use sea_orm::EntityTrait;

/// Runs `tessera ARGS…` on the server's storage, `stdin` piped in.
fn tessera(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    tessera_with(app, args, stdin, &[])
}

/// [`tessera`], with some variables set otherwise.
fn tessera_with(app: &TestApp, args: &[&str], stdin: &str, overrides: &[(&str, &str)]) -> Output {
    let mut child = common::tessera_command()
        .args(args)
        .env("TESSERA_ENV", "test")
        .env("TESSERA__DATABASE__URL", &app.database_url)
        .env("TESSERA__REDIS__URL", common::redis_url())
        .env("TESSERA__REDIS__KEY_PREFIX", &app.key_prefix)
        .envs(overrides.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tessera binary");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("tessera output")
}

/// Succeeds and returns standard output.
fn ok(app: &TestApp, args: &[&str]) -> String {
    let output = tessera(app, args, "");
    assert!(
        output.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Fails with a non-zero exit and a message on standard error; returns it.
fn fails(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let output = tessera(app, args, stdin);
    assert!(!output.status.success(), "tessera {args:?} succeeded");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("utf-8 output");
    assert!(stderr.starts_with("tessera: "), "{stderr}");
    stderr
}

async fn users_create_list_disable_enable_delete(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let username = unique_username();

    // Created from the CLI, with the password on standard input; it signs in.
    let output = tessera(
        &app,
        &["users", "create", &username.to_uppercase()],
        &format!("{STRONG_PASSWORD}\n"),
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!("created user {username} (")),
        "{stdout}"
    );
    let tokens = app.sign_in_ok(&username).await;
    let listed = ok(&app, &["users", "list"]);
    let row = listed
        .lines()
        .find(|l| l.contains(&username))
        .expect("listed");
    assert!(row.ends_with("active"), "{listed}");
    assert!(listed.starts_with("ID "), "{listed}");

    // Its sessions, listed and revoked one by one.
    let second = app.sign_in_ok(&username).await;
    let sessions = ok(&app, &["sessions", "list", &username]);
    assert_eq!(sessions.lines().count(), 3, "{sessions}");
    assert!(
        sessions.contains(&second.session_id.to_string()),
        "{sessions}"
    );
    let revoked = ok(
        &app,
        &[
            "sessions",
            "revoke",
            &username,
            &second.session_id.to_string(),
        ],
    );
    assert!(revoked.contains("revoked session"), "{revoked}");
    assert_eq!(
        app.refresh(&second.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Disabled: sessions revoked at once, sign-in and /v1/me refused.
    let disabled = ok(&app, &["users", "disable", &username]);
    assert!(disabled.contains("1 session(s) revoked"), "{disabled}");
    app.assert_refresh_rejected(&tokens.refresh_token).await;
    assert_problem(
        app.signin(&username, STRONG_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.get_with_token("/v1/me", &tokens.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let listed = ok(&app, &["users", "list"]);
    let row = listed.lines().find(|l| l.contains(&username)).unwrap();
    assert!(row.contains("disabled 20"), "{listed}");
    // The name stays taken while the account is disabled.
    assert_eq!(
        app.signup(&username, STRONG_PASSWORD).await.status(),
        StatusCode::CONFLICT
    );

    // Enabled again (by id this time): signs in.
    let id = row.split_whitespace().next().unwrap().to_owned();
    ok(&app, &["users", "enable", &id]);
    let again: TokenPair = app.sign_in_ok(&username).await;

    // Deleted: sessions revoked, sign-in refused, the name free again.
    let deleted = ok(&app, &["users", "delete", &username]);
    assert!(deleted.contains("1 session(s) revoked"), "{deleted}");
    assert_eq!(
        app.refresh(&again.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.signin(&username, STRONG_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!ok(&app, &["users", "list"]).contains(&username));
    assert_eq!(
        app.signup(&username, STRONG_PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

async fn sessions_revoke_without_an_id_revokes_them_all(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, first) = app.new_session().await;
    let second = app.sign_in_ok(&username).await;
    let revoked = ok(&app, &["sessions", "revoke", &username]);
    assert!(revoked.starts_with("revoked 2 session(s)"), "{revoked}");
    for tokens in [first, second] {
        assert_eq!(
            app.refresh(&tokens.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let sessions = ok(&app, &["sessions", "list", &username]);
    assert_eq!(sessions.lines().count(), 1, "{sessions}");
}

/// `users reset-password` prints the token once, as its last line, and
/// stores only its SHA-256; a second one replaces the first.
async fn users_reset_password_prints_a_token_that_resets_the_password(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, tokens) = app.new_session().await;
    let first = ok(&app, &["users", "reset-password", &username]);
    let first_token = first.lines().last().unwrap().to_owned();
    assert!(
        first.starts_with(&format!("reset token for {username} (")),
        "{first}"
    );
    let printed = ok(&app, &["users", "reset-password", &username]);
    let token = printed.lines().last().unwrap().to_owned();
    assert!(token.starts_with("tsp_") && token.len() == 47, "{printed}");
    assert_ne!(token, first_token);

    let stored = entity::password_reset::Entity::find()
        .all(&app.database().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].token_hash, common::sha256_hex(token.as_bytes()));
    assert_problem(
        app.reset_password(&first_token, common::NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let response = app.reset_password(&token, common::NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_rejected(&tokens.refresh_token).await;
    app.sign_in_ok_with(&username, common::NEW_PASSWORD).await;

    let stderr = fails(&app, &["users", "reset-password", "nobody-here"], "");
    assert!(stderr.contains("no user nobody-here"), "{stderr}");
}

/// `users reset-mfa` and `mfa reencrypt` run against the server's storage.
async fn the_second_factor_commands_run(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let (username, tokens) = app.new_session().await;
    let output = ok(&app, &["users", "reset-mfa", &username]);
    assert!(
        output.starts_with(&format!("no second factor to remove for {username} (")),
        "{output}"
    );
    assert!(output.contains("1 session(s) revoked"), "{output}");
    app.assert_refresh_rejected(&tokens.refresh_token).await;
    let output = ok(&app, &["mfa", "reencrypt"]);
    assert_eq!(
        output.trim(),
        "re-sealed 0 TOTP secret(s) under the current key"
    );
}

/// `admin-tokens create | list | revoke`: the token printed once (last
/// line), stored only as its SHA-256, never listed; names unique and checked.
async fn admin_tokens_are_created_listed_and_revoked(backend: Backend) {
    let app = TestApp::with(backend).start().await;
    let created = ok(
        &app,
        &["admin-tokens", "create", "backoffice", "--expires-in", "30"],
    );
    assert!(
        created.starts_with("created admin token backoffice (expires "),
        "{created}"
    );
    let token = created.lines().last().unwrap();
    assert!(token.starts_with("tsa_") && token.len() == 47, "{created}");
    let forever = ok(&app, &["admin-tokens", "create", "ops.eu-1"]);
    assert!(forever.contains("never expires"), "{forever}");

    let stored = entity::admin_token::Entity::find()
        .all(&app.database().await)
        .await
        .unwrap();
    let backoffice = stored.iter().find(|t| t.name == "backoffice").unwrap();
    assert_eq!(backoffice.token_hash, common::sha256_hex(token.as_bytes()));
    let days = (backoffice.expires_at.unwrap() - backoffice.created_at).num_days();
    assert_eq!(days, 30);

    let listed = ok(&app, &["admin-tokens", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{listed}");
    assert!(
        lines[1].starts_with("backoffice") && lines[1].ends_with("never"),
        "{listed}"
    );
    assert!(lines[2].starts_with("ops.eu-1"), "{listed}");
    assert!(!listed.contains(&token[4..]), "{listed}");

    for (args, message) in [
        (
            vec!["admin-tokens", "create", "backoffice"],
            "an admin token named backoffice exists",
        ),
        (
            vec!["admin-tokens", "create", "Back Office"],
            "1–64 characters",
        ),
        (
            vec!["admin-tokens", "create", "x", "--expires-in", "0"],
            "at least 1",
        ),
        (
            vec!["admin-tokens", "revoke", "nobody"],
            "no admin token named nobody",
        ),
    ] {
        let stderr = fails(&app, &args, "");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(
        ok(&app, &["admin-tokens", "revoke", "backoffice"]).trim(),
        "revoked admin token backoffice"
    );
    let listed = ok(&app, &["admin-tokens", "list"]);
    assert!(!listed.contains("backoffice"), "{listed}");
}

on_both_backends!(
    admin_tokens_are_created_listed_and_revoked,
    the_second_factor_commands_run,
    users_create_list_disable_enable_delete,
    sessions_revoke_without_an_id_revokes_them_all,
    users_reset_password_prints_a_token_that_resets_the_password,
);

/// "Sessions never outlive the account's state": Redis is changed first,
/// so without it the command fails before the database is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_disable_and_delete_fail_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;
    for command in ["disable", "delete"] {
        let output = tessera_with(
            &app,
            &["users", command, &username],
            "",
            &[("TESSERA__REDIS__URL", "redis://127.0.0.1:1")],
        );
        assert!(!output.status.success(), "users {command} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("tessera: redis"), "{stderr}");
    }
    let user = ok(&app, &["users", "list"]);
    assert!(
        user.contains(&username) && !user.contains("disabled"),
        "{user}"
    );
    app.refreshed(&tokens.refresh_token).await;
    app.sign_in_ok(&username).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_exit_non_zero_with_a_message_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (username, tokens) = app.new_session().await;

    let stderr = fails(&app, &["users", "disable", "nobody-here"], "");
    assert!(stderr.contains("no user nobody-here"), "{stderr}");
    let stderr = fails(&app, &["users", "delete", "Not a name!"], "");
    assert!(
        stderr.contains("neither a user id nor a valid username"),
        "{stderr}"
    );
    let stderr = fails(
        &app,
        &[
            "sessions",
            "revoke",
            &username,
            &uuid::Uuid::now_v7().to_string(),
        ],
        "",
    );
    assert!(stderr.contains("has no live session"), "{stderr}");

    // The password policy of sign-up applies, and nothing echoes the password.
    let weak = "abcabcabcabc";
    let stderr = fails(
        &app,
        &["users", "create", "someone-new"],
        &format!("{weak}\n"),
    );
    assert!(stderr.contains("too_weak"), "{stderr}");
    assert!(!stderr.contains(weak), "{stderr}");
    let stderr = fails(
        &app,
        &["users", "create", &username],
        &format!("{STRONG_PASSWORD}\n"),
    );
    assert!(stderr.contains("already taken"), "{stderr}");

    // Unknown commands are clap's usage errors, also non-zero.
    let output = tessera(&app, &["users", "frobnicate"], "");
    assert!(!output.status.success());

    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::OK
    );
    assert!(!ok(&app, &["users", "list"]).contains("someone-new"));
}
