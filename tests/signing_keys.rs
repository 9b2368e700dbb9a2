//! Managed signing keys (contract v1.1, "Managed signing keys"): Ed25519
//! keys generated and sealed in the database, each published before it
//! signs and after its last signature until its tokens expire; every
//! instance signs with the key the database chooses; `tessera keys`.

mod common;

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{Backend, TestApp, TestAppBuilder};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera::{app::App, settings::Settings};

/// Managed, rotated only by hand.
const BY_HAND: [(&str, &str); 4] = [
    ("jwt.algorithm", "EdDSA"),
    ("jwt.keys", "managed"),
    ("jwt.rotation_days", "0"),
    ("jwt.rotation_overlap_secs", "2"),
];

fn managed(backend: Backend, settings: &[(&str, &str)]) -> TestAppBuilder {
    TestApp::with(backend)
        .set_all(settings)
        .set("jwt.jwks_max_age_secs", "1")
}

/// The published keys' ids, and the `Cache-Control` they came with.
async fn jwks(app: &TestApp) -> (Vec<String>, Value, String) {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let document: Value = response.json().await.unwrap();
    let kids = document["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    (kids, document, cache)
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    header["kid"].as_str().unwrap().to_owned()
}

/// RFC 7638: SHA-256 of the required members in lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["kty"].as_str().unwrap(),
        jwk["x"].as_str().unwrap()
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

async fn me_status(app: &TestApp, access_token: &str) -> StatusCode {
    app.get_with_token("/v1/me", access_token).await.status()
}

async fn until<F: AsyncFnMut() -> bool>(what: &str, within: Duration, mut check: F) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_themselves_and_no_token_is_refused_on_the_way() {
    let app = managed(Backend::Sqlite, &common::FAST_KEY_ROTATION)
        .set("session.reuse_grace_secs", "0")
        .start()
        .await;
    let (first_kids, document, cache) = jwks(&app).await;
    assert_eq!(cache, "public, max-age=1");
    assert_eq!(first_kids.len(), 1, "{document}");
    let jwk = &document["keys"][0];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"]),
        (&"OKP".into(), &"Ed25519".into())
    );
    assert_eq!(
        thumbprint(jwk),
        first_kids[0],
        "the kid is the RFC 7638 thumbprint"
    );
    assert!(jwk.get("d").is_none(), "only the public half is published");

    let (username, tokens) = app.new_session().await;
    assert_eq!(kid_of(&tokens.access_token), first_kids[0]);

    // The next key shows up in the JWKS before any token is signed with it.
    let published = until(
        "a second key published",
        Duration::from_secs(8),
        async || jwks(&app).await.0.len() == 2,
    )
    .await;
    let next = jwks(&app)
        .await
        .0
        .into_iter()
        .find(|kid| *kid != first_kids[0])
        .unwrap();
    // Signs in until the new key signs, keeping the old key's last token.
    let (mut last_old, mut last) = (tokens.clone(), tokens.clone());
    let signing = until("the next key signing", Duration::from_secs(8), async || {
        let pair = app.sign_in_ok(&username).await;
        let switched = kid_of(&pair.access_token) == next;
        if switched {
            last = pair;
        } else {
            last_old = pair;
        }
        switched
    })
    .await;
    let lead = signing - published;
    eprintln!("the next key was published {lead:?} before it signed");
    // Two seconds of overlap, minus what polling the table may cost each side.
    assert!(
        lead >= Duration::from_millis(1_000),
        "published only {lead:?} before signing"
    );
    // The old key's last token still passes while it lives, and so does
    // the new one's.
    assert_eq!(kid_of(&last_old.access_token), first_kids[0]);
    assert_eq!(
        me_status(&app, &last_old.access_token).await,
        StatusCode::OK
    );
    assert_eq!(me_status(&app, &last.access_token).await, StatusCode::OK);
    assert!(jwks(&app).await.0.contains(&first_kids[0]));

    // Retired long enough (TTL + leeway + JWKS max-age), the old key goes.
    until(
        "the first key withdrawn from the JWKS",
        Duration::from_secs(10),
        async || !jwks(&app).await.0.contains(&first_kids[0]),
    )
    .await;
    // A refreshed session gets a token of the current key.
    let refreshed = app.refreshed(&last.refresh_token).await;
    assert_eq!(
        me_status(&app, &refreshed.access_token).await,
        StatusCode::OK
    );
}

/// On PostgreSQL, where several instances share one database (SQLite is
/// one instance's file: its migrations do not run side by side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_started_together_create_one_key() {
    let apps = managed(Backend::Postgres, &BY_HAND).start_together(3).await;
    let mut kids = Vec::new();
    for app in &apps {
        kids.push(jwks(app).await.0);
    }
    assert_eq!(kids[0].len(), 1, "{kids:?}");
    assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
    let rows = tessera::flows::Stores::connect(&apps[0].settings, tessera::clock::Clock::system())
        .await
        .unwrap()
        .signing_keys
        .list()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    // A token from one instance passes on the others.
    let (_, tokens) = apps[0].new_session().await;
    for app in &apps[1..] {
        assert_eq!(me_status(app, &tokens.access_token).await, StatusCode::OK);
    }
}

/// `tessera keys rotate`, `--now`, `--now --revoke-old`, through the same
/// functions the CLI runs, seen by two instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rotates_at_once_and_withdraws_a_compromised_key() {
    let a = managed(Backend::Postgres, &BY_HAND).start().await;
    let b = managed(Backend::Postgres, &BY_HAND)
        .sharing_storage_of(&a)
        .start()
        .await;
    let operator = a.operator().await;
    let keys = &operator.signing_keys;
    let (username, old) = a.new_session().await;
    let first = kid_of(&old.access_token);

    // Scheduled: published now, signing after the overlap.
    let scheduled = keys.rotate(false, false).await.unwrap();
    assert_eq!(scheduled.state.as_str(), "pending");
    for app in [&a, &b] {
        until(
            "the scheduled key published",
            Duration::from_secs(3),
            async || jwks(app).await.0.contains(&scheduled.kid),
        )
        .await;
    }
    assert_eq!(kid_of(&a.sign_in_ok(&username).await.access_token), first);

    // At once: the scheduled key signs now; the old key's tokens still pass.
    let now = keys.rotate(true, false).await.unwrap();
    assert_eq!(
        now.kid, scheduled.kid,
        "the waiting key is moved up, not doubled"
    );
    for app in [&a, &b] {
        until("the new key signing", Duration::from_secs(3), async || {
            kid_of(&app.sign_in_ok(&username).await.access_token) == now.kid
        })
        .await;
        assert_eq!(me_status(app, &old.access_token).await, StatusCode::OK);
    }
    let listed = keys.list().await.unwrap();
    let states: Vec<&str> = listed.iter().map(|key| key.state.as_str()).collect();
    assert_eq!(states, ["retired", "signing"]);

    // Compromise: a new key at once, every older one withdrawn; their
    // tokens are refused everywhere.
    let current = a.sign_in_ok(&username).await;
    let replaced = keys.rotate(true, true).await.unwrap();
    for app in [&a, &b] {
        until(
            "the withdrawn keys' tokens refused",
            Duration::from_secs(3),
            async || {
                me_status(app, &current.access_token).await == StatusCode::UNAUTHORIZED
                    && me_status(app, &old.access_token).await == StatusCode::UNAUTHORIZED
            },
        )
        .await;
        assert_eq!(jwks(app).await.0, std::slice::from_ref(&replaced.kid));
        let fresh = app.sign_in_ok(&username).await;
        assert_eq!(kid_of(&fresh.access_token), replaced.kid);
        assert_eq!(me_status(app, &fresh.access_token).await, StatusCode::OK);
    }
    let states: Vec<String> = keys
        .list()
        .await
        .unwrap()
        .iter()
        .map(|key| key.state.as_str().to_owned())
        .collect();
    assert_eq!(states, ["withdrawn", "withdrawn", "signing"]);
}

/// The private keys are sealed under `jwt.key_encryption_key`: an instance
/// with another key cannot sign with them, and says so at start-up.
#[tokio::test]
async fn keys_sealed_under_another_key_encryption_key_do_not_open() {
    let app = managed(Backend::Sqlite, &BY_HAND).start().await;
    let mut settings: Settings = app.settings.clone();
    settings.server.bind = "127.0.0.1:0".parse().unwrap();
    let other = Settings::load(
        "test",
        [(
            "TESSERA__JWT__KEY_ENCRYPTION_KEY".to_string(),
            "another-key-encryption-key-0123456789".to_string(),
        )],
    )
    .unwrap();
    settings.jwt.key_encryption_key = other.jwt.key_encryption_key;
    let Err(err) = App::build(settings).await else {
        panic!("an instance that cannot open the signing key started");
    };
    assert!(err.to_string().contains("no managed key can sign"), "{err}");
}

#[tokio::test]
async fn managed_keys_need_ed25519_and_an_overlap_of_two_cache_lifetimes() {
    for (overrides, key) in [
        (vec![("jwt.keys", "managed")], "jwt.keys"),
        (
            vec![
                ("jwt.algorithm", "EdDSA"),
                ("jwt.keys", "managed"),
                ("jwt.jwks_max_age_secs", "300"),
                ("jwt.rotation_overlap_secs", "599"),
            ],
            "jwt.rotation_overlap_secs",
        ),
    ] {
        let variables = overrides.iter().map(|(key, value)| {
            (
                format!("TESSERA__{}", key.replace('.', "__").to_uppercase()),
                value.to_string(),
            )
        });
        let err = Settings::load("test", variables).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
}
