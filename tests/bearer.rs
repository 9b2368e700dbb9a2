//! The bearer check against forged, tampered, foreign and expired tokens;
//! EdDSA signing and the JWKS.

mod common;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{Backend, TestApp, assert_problem};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "bearer-test-secret-of-enough-length-0123456789";

async fn app() -> TestApp {
    TestApp::with(Backend::Sqlite)
        .set("jwt.secret", SECRET)
        .start()
        .await
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Re-signs a real token's claims, changed by `edit`, with `key`.
fn forge(real: &str, key: &[u8], edit: impl FnOnce(&mut Value)) -> String {
    forge_with_header(real, key, |_| {}, edit)
}

/// [`forge`], with the HS256 header (the real `typ` and `kid`) changed by
/// `edit_header`.
fn forge_with_header(
    real: &str,
    key: &[u8],
    edit_header: impl FnOnce(&mut Header),
    edit: impl FnOnce(&mut Value),
) -> String {
    let header = decode_part(real, 0);
    let mut claims = decode_part(real, 1);
    edit(&mut claims);
    let mut forged = Header::new(Algorithm::HS256);
    forged.typ = header["typ"].as_str().map(str::to_owned);
    forged.kid = header["kid"].as_str().map(str::to_owned);
    edit_header(&mut forged);
    jsonwebtoken::encode(&forged, &claims, &EncodingKey::from_secret(key)).unwrap()
}

async fn assert_invalid_token(app: &TestApp, token: &str) {
    let response = app.get_with_token("/v1/me", token).await;
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some(r#"Bearer error="invalid_token""#),
        "{token}"
    );
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn a_missing_header_is_401_with_a_bare_challenge() {
    let app = app().await;
    let response = app.get("/v1/me").await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn a_valid_token_passes_and_a_re_signed_one_with_the_right_key_too() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    assert_eq!(
        app.get_with_token("/v1/me", &tokens.access_token)
            .await
            .status(),
        StatusCode::OK
    );
    // The forging helper itself is sound: same claims, same key, accepted.
    let resigned = forge(&tokens.access_token, SECRET.as_bytes(), |_| {});
    assert_eq!(
        app.get_with_token("/v1/me", &resigned).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn garbage_and_tampered_tokens_are_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    let real = tokens.access_token.as_str();
    for garbage in [
        "garbage",
        "a.b.c",
        "...",
        "eyJ.eyJ.sig",
        &real[..real.len() - 10],
    ] {
        assert_invalid_token(&app, garbage).await;
    }
    // Tampered signature.
    let (unsigned, signature) = real.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0x01;
    assert_invalid_token(
        &app,
        &format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(bytes)),
    )
    .await;
    // Tampered claims under the original signature.
    let mut claims = decode_part(real, 1);
    claims["sub"] = json!(uuid::Uuid::now_v7());
    let header = real.split('.').next().unwrap();
    assert_invalid_token(
        &app,
        &format!("{header}.{}.{signature}", encode_part(&claims)),
    )
    .await;
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    let real = tokens.access_token.as_str();
    let claims = real.split('.').nth(1).unwrap();
    let mut header = decode_part(real, 0);
    for alg in ["none", "None", "NONE"] {
        header["alg"] = json!(alg);
        assert_invalid_token(&app, &format!("{}.{claims}.", encode_part(&header))).await;
    }
    // HS512 with the right secret: still not the pinned algorithm.
    let mut other = Header::new(Algorithm::HS512);
    other.typ = Some("at+jwt".into());
    other.kid = decode_part(real, 0)["kid"].as_str().map(str::to_owned);
    let hs512 = jsonwebtoken::encode(
        &other,
        &decode_part(real, 1),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_invalid_token(&app, &hs512).await;
}

/// Only an access token (`typ: at+jwt`, RFC 9068) passes, not another JWT
/// with the right key and claims; the `at+jwt` control is
/// `a_valid_token_passes_and_a_re_signed_one_with_the_right_key_too`.
#[tokio::test]
async fn a_typ_other_than_at_jwt_is_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    for typ in [Some("JWT"), None] {
        let forged = forge_with_header(
            &tokens.access_token,
            SECRET.as_bytes(),
            |header| header.typ = typ.map(str::to_owned),
            |_| {},
        );
        assert_eq!(
            decode_part(&forged, 0).get("typ").and_then(Value::as_str),
            typ
        );
        assert_invalid_token(&app, &forged).await;
    }
}

#[tokio::test]
async fn tokens_signed_with_another_key_are_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    let forged = forge(
        &tokens.access_token,
        b"someone-elses-secret-0123456789abcdef",
        |_| {},
    );
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    let wrong_aud = forge(&tokens.access_token, SECRET.as_bytes(), |c| {
        c["aud"] = json!("another-api")
    });
    assert_invalid_token(&app, &wrong_aud).await;
    let wrong_iss = forge(&tokens.access_token, SECRET.as_bytes(), |c| {
        c["iss"] = json!("evil")
    });
    assert_invalid_token(&app, &wrong_iss).await;
    let no_aud = forge(&tokens.access_token, SECRET.as_bytes(), |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_invalid_token(&app, &no_aud).await;
}

#[tokio::test]
async fn expired_tokens_are_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    let expired = forge(&tokens.access_token, SECRET.as_bytes(), |c| {
        c["exp"] = json!(chrono::Utc::now().timestamp() - 5);
    });
    assert_invalid_token(&app, &expired).await;
}

#[tokio::test]
async fn access_tokens_expire_after_their_ttl() {
    let app = TestApp::with(Backend::Sqlite)
        .set("jwt.access_ttl_secs", "1")
        .start()
        .await;
    let (_, tokens) = app.new_session().await;
    assert_eq!(tokens.expires_in, 1);
    assert_eq!(
        app.get_with_token("/v1/me", &tokens.access_token)
            .await
            .status(),
        StatusCode::OK
    );
    // `exp` is whole seconds: the token is refused once that second is past.
    let exp = decode_part(&tokens.access_token, 1)["exp"]
        .as_u64()
        .unwrap();
    let expired_at = std::time::UNIX_EPOCH + Duration::from_secs(exp + 1);
    let wait = expired_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_invalid_token(&app, &tokens.access_token).await;
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A server signing with the Ed25519 key `current`, still verifying `previous`.
async fn eddsa_app(current: &str, previous: Option<&str>) -> TestApp {
    let mut app = TestApp::with(Backend::Sqlite)
        .set("jwt.algorithm", "EdDSA")
        .set("jwt.ed25519_private_key_path", &fixture(current));
    if let Some(previous) = previous {
        app = app.set("jwt.previous_ed25519_private_key_paths", &fixture(previous));
    }
    app.start().await
}

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn hs256_publishes_no_keys() {
    let app = app().await;
    assert!(jwks(&app).await.keys.is_empty());
}

#[tokio::test]
async fn eddsa_tokens_verify_with_the_published_jwks() {
    let app = eddsa_app("ed25519-current.pem", Some("ed25519-previous.pem")).await;
    let (_, tokens) = app.new_session().await;
    assert_eq!(
        app.get_with_token("/v1/me", &tokens.access_token)
            .await
            .status(),
        StatusCode::OK
    );
    let header = decode_part(&tokens.access_token, 0);
    assert_eq!(header["alg"], "EdDSA");

    let set = jwks(&app).await;
    assert_eq!(set.keys.len(), 2, "current and previous key");
    let kid = header["kid"].as_str().unwrap();
    let jwk = set.find(kid).expect("the signing key is published");
    let raw = serde_json::to_value(jwk).unwrap();
    assert_eq!(
        (raw["kty"].as_str(), raw["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(raw.get("d").is_none(), "no private part is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["tessera"]);
    validation.set_issuer(&["tessera"]);
    jsonwebtoken::decode::<Value>(
        &tokens.access_token,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("verifies with the published key");
}

#[tokio::test]
async fn eddsa_servers_reject_hs256_tokens_made_with_their_public_key() {
    let app = eddsa_app("ed25519-current.pem", None).await;
    let (_, tokens) = app.new_session().await;
    let set = jwks(&app).await;
    let x = serde_json::to_value(&set.keys[0]).unwrap()["x"]
        .as_str()
        .unwrap()
        .to_owned();
    // Algorithm confusion: HS256 keyed with the public key.
    let forged = forge(&tokens.access_token, x.as_bytes(), |_| {});
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn a_rotated_key_keeps_earlier_tokens_valid() {
    let old = eddsa_app("ed25519-previous.pem", None).await;
    let (_, tokens) = old.new_session().await;
    let claims = decode_part(&tokens.access_token, 1);
    // The same deployment after rotation: new key signs, old key still verifies.
    let rotated = eddsa_app("ed25519-current.pem", Some("ed25519-previous.pem")).await;
    // /v1/me reads the user, who lives in the old server's database: check
    // the token on an endpoint that needs only the bearer.
    let response = rotated
        .get_with_token("/v1/sessions", &tokens.access_token)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{claims}");
    let without_previous = eddsa_app("ed25519-current.pem", None).await;
    let response = without_previous
        .get_with_token("/v1/sessions", &tokens.access_token)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// RFC 7515 §4.1.11: a `crit` header names extensions the verifier must
/// understand, and Tessera understands none.
#[tokio::test]
async fn a_critical_header_extension_is_rejected() {
    let app = app().await;
    let (_, tokens) = app.new_session().await;
    let forged = forge_with_header(
        &tokens.access_token,
        SECRET.as_bytes(),
        |header| header.crit = Some(vec!["exp".into()]),
        |_| {},
    );
    assert!(decode_part(&forged, 0)["crit"].is_array());
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_rejected_and_one_within_the_leeway_passes() {
    let app = TestApp::with(Backend::Sqlite)
        .set_all(&[("jwt.secret", SECRET), ("jwt.leeway_secs", "30")])
        .start()
        .await;
    let (_, tokens) = app.new_session().await;
    let now = chrono::Utc::now().timestamp();
    let later = forge(&tokens.access_token, SECRET.as_bytes(), |c| {
        c["nbf"] = json!(now + 120);
    });
    assert_invalid_token(&app, &later).await;
    let within_leeway = forge(&tokens.access_token, SECRET.as_bytes(), |c| {
        c["nbf"] = json!(now + 10);
    });
    let me = app.get_with_token("/v1/me", &within_leeway).await;
    assert_eq!(me.status(), StatusCode::OK);
}
