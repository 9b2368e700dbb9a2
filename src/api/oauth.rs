//! For resource servers: token introspection (RFC 7662) and revocation
//! (RFC 7009) under `/oauth/`, with form bodies (RFC 6749 §3.1: unknown
//! parameters ignored, a repeated one refused) and HTTP Basic clients from
//! `introspection.clients`.

use std::sync::Arc;

use chrono::Utc;
use poem::{
    Request,
    web::headers::{Authorization, HeaderMapExt, authorization::Basic},
};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, payload::Form, payload::Json};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{ApiContext, ApiTags, Context, client_info};
use crate::{
    audit::Acting,
    error::{ApiError, Failure, error_set},
    flows::{self, Introspection, TokenKeys},
    settings::IntrospectionClient,
};

error_set! {
    IntrospectErrors = [MalformedRequest, InvalidClient, PayloadTooLarge, UnsupportedMediaType, Unavailable];
    RevokeTokenErrors = [MalformedRequest, InvalidClient, PayloadTooLarge, UnsupportedMediaType, Unavailable];
}

/// `Authorization: Basic` with the id and secret of a client listed in
/// `introspection.clients`.
#[derive(SecurityScheme)]
#[oai(rename = "introspectionClient", ty = "basic", checker = "check_client")]
struct ClientCredentials(#[allow(dead_code)] String);

async fn check_client(req: &Request, basic: poem_openapi::auth::Basic) -> poem::Result<String> {
    let context = req
        .data::<Arc<ApiContext>>()
        .ok_or_else(|| ApiError::internal("the API context is missing from the request"))?;
    authenticate(
        &context.introspection_clients,
        &basic.username,
        &basic.password,
    )
    .ok_or_else(|| ApiError::InvalidClient.into())
}

/// The configured client these credentials name, compared in constant time
/// against every client (how many are configured shows, not which matched).
fn authenticate(clients: &[IntrospectionClient], id: &str, secret: &str) -> Option<String> {
    let mut found = None;
    for client in clients {
        let matched = client.id.as_bytes().ct_eq(id.as_bytes())
            & client.secret.expose().as_bytes().ct_eq(secret.as_bytes());
        if bool::from(matched) {
            found = Some(client.id.clone());
        }
    }
    found
}

/// An introspection or revocation request (RFC 7662 §2.1, RFC 7009 §2.1).
#[derive(Object, Deserialize)]
struct TokenForm {
    /// The token: an access token or a refresh token.
    token: Option<String>,
    /// `access_token` or `refresh_token`. Optional, and only a hint: Tessera
    /// tells the kind from the token itself (unknown values are ignored).
    #[oai(rename = "token_type_hint")]
    #[serde(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

impl TokenForm {
    fn token(self) -> Result<String, ApiError> {
        self.token.ok_or(ApiError::InvalidRequest(
            "The `token` parameter is required.",
        ))
    }
}

/// What introspection says (RFC 7662 §2.2). Anything not live is exactly
/// `{"active": false}`.
#[derive(Object, Default)]
struct IntrospectionResult {
    active: bool,
    /// `Bearer`, for access tokens.
    #[oai(skip_serializing_if_is_none)]
    token_type: Option<String>,
    /// `access_token` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    tessera_token_kind: Option<String>,
    /// The user id.
    #[oai(skip_serializing_if_is_none)]
    sub: Option<Uuid>,
    /// The session id.
    #[oai(skip_serializing_if_is_none)]
    sid: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    client_id: Option<String>,
    /// Unix seconds: the access token's expiry, or the refresh session's
    /// idle expiry.
    #[oai(skip_serializing_if_is_none)]
    exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    jti: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    auth_time: Option<i64>,
    /// RFC 8176 methods (an open set).
    #[oai(skip_serializing_if_is_none)]
    amr: Option<Vec<String>>,
}

impl From<Introspection> for IntrospectionResult {
    fn from(found: Introspection) -> Self {
        match found {
            Introspection::Inactive => IntrospectionResult::default(),
            Introspection::Access { claims, username } => IntrospectionResult {
                active: true,
                token_type: Some("Bearer".into()),
                tessera_token_kind: Some("access_token".into()),
                sub: Some(claims.sub),
                sid: Some(claims.sid),
                username: Some(username.to_string()),
                client_id: Some(claims.client_id),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                iss: Some(claims.iss),
                aud: Some(claims.aud),
                jti: Some(claims.jti),
                auth_time: Some(claims.auth_time),
                amr: Some(claims.amr),
            },
            Introspection::Refresh {
                token,
                username,
                expires_in,
            } => IntrospectionResult {
                active: true,
                tessera_token_kind: Some("refresh_token".into()),
                sub: Some(token.user_id),
                sid: Some(token.session_id),
                username: Some(username.to_string()),
                exp: Some(Utc::now().timestamp() + expires_in.as_secs() as i64),
                ..IntrospectionResult::default()
            },
        }
    }
}

#[derive(ApiResponse)]
enum IntrospectResponse {
    /// Whether the token is live, and what it says if so.
    #[oai(status = 200)]
    Ok(Json<IntrospectionResult>),
}

#[derive(ApiResponse)]
enum RevokeTokenResponse {
    /// Done, with an empty body, also for unknown, malformed or expired
    /// tokens (RFC 7009 §2.2).
    #[oai(status = 200)]
    Revoked,
}

pub struct OauthApi;

#[OpenApi(prefix_path = "/oauth", tag = "ApiTags::ResourceServers")]
impl OauthApi {
    /// Introspect a token (RFC 7662)
    ///
    /// For resource servers that must see a revocation before the access
    /// token expires. Live means: signature and claims valid, the session
    /// live and the user enabled (access tokens), or the session's current
    /// refresh token. Never rotates a refresh token or resets its idle
    /// timer. An outage is 503, never `active: false`.
    #[oai(
        path = "/introspect",
        method = "post",
        operation_id = "introspectToken"
    )]
    async fn introspect(
        &self,
        context: Context<'_>,
        _client: ClientCredentials,
        body: Form<TokenForm>,
    ) -> Result<IntrospectResponse, Failure<IntrospectErrors>> {
        let token = body.0.token()?;
        let found = flows::introspect(&context.stores, token_keys(&context), &token).await?;
        Ok(IntrospectResponse::Ok(Json(found.into())))
    }

    /// Revoke a token (RFC 7009)
    ///
    /// A refresh token (of any generation) or a valid access token ends its
    /// session, as sign-out does. No client authentication is needed (the
    /// token is the credential); HTTP Basic, if sent, must name a
    /// configured client.
    #[oai(path = "/revoke", method = "post", operation_id = "revokeToken")]
    async fn revoke(
        &self,
        context: Context<'_>,
        req: &Request,
        body: Form<TokenForm>,
    ) -> Result<RevokeTokenResponse, Failure<RevokeTokenErrors>> {
        if req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION)
        {
            let basic = req
                .headers()
                .typed_get::<Authorization<Basic>>()
                .ok_or(ApiError::InvalidClient)?;
            authenticate(
                &context.introspection_clients,
                basic.username(),
                basic.password(),
            )
            .ok_or(ApiError::InvalidClient)?;
        }
        let token = body.0.token()?;
        let by = Acting::user(&client_info(&context, req));
        flows::revoke_token(&context.stores, token_keys(&context), &token, &by).await?;
        Ok(RevokeTokenResponse::Revoked)
    }
}

fn token_keys<'a>(context: &'a ApiContext) -> TokenKeys<'a> {
    TokenKeys {
        access: &context.access_tokens,
        refresh: &context.refresh_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_id_with_its_own_secret_authenticates() {
        let client = |id: &str, secret: &str| IntrospectionClient {
            id: id.into(),
            secret: secret.parse().unwrap(),
        };
        let clients = [
            client("catalog", "a".repeat(32).as_str()),
            client("billing", "b".repeat(32).as_str()),
        ];
        assert_eq!(
            authenticate(&clients, "billing", &"b".repeat(32)).as_deref(),
            Some("billing")
        );
        assert_eq!(authenticate(&clients, "billing", &"a".repeat(32)), None);
        assert_eq!(authenticate(&clients, "unknown", &"a".repeat(32)), None);
        assert_eq!(authenticate(&clients, "catalog", ""), None);
        assert_eq!(authenticate(&[], "catalog", &"a".repeat(32)), None);
    }
}
