use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use super::{ApiTags, Context};

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum State {
    Ok,
    Unavailable,
}

/// Overall state and each dependency's.
#[derive(Object)]
struct Readiness {
    status: State,
    database: State,
    redis: State,
}

#[derive(ApiResponse)]
enum LiveResponse {
    /// The process is running.
    #[oai(status = 200)]
    Live,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency does not answer; the body says which.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Object)]
struct Jwks {
    /// Public keys that verify access tokens: the signing key and, during a
    /// rotation, the retired ones. Empty for HS256.
    keys: Vec<serde_json::Value>,
}

#[derive(ApiResponse)]
enum JwksResponse {
    /// The public keys.
    #[oai(status = 200)]
    Ok(Json<Jwks>, #[oai(header = "Cache-Control")] String),
}

pub struct OpsApi;

fn state(ok: bool) -> State {
    if ok { State::Ok } else { State::Unavailable }
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness
    #[oai(path = "/health/live", method = "get", operation_id = "live")]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Live
    }

    /// Readiness: the database and Redis answer
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, context: Context<'_>) -> ReadyResponse {
        let stores = &context.stores;
        let (database, redis) = tokio::join!(stores.users.ping(), stores.sessions.ping());
        let (database, redis) = (database.is_ok(), redis.is_ok());
        let readiness = Readiness {
            status: state(database && redis),
            database: state(database),
            redis: state(redis),
        };
        if database && redis {
            ReadyResponse::Ready(Json(readiness))
        } else {
            ReadyResponse::NotReady(Json(readiness))
        }
    }

    /// Public keys of access tokens
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, context: Context<'_>) -> JwksResponse {
        let keys = context
            .access_tokens
            .jwks()
            .keys
            .iter()
            .filter_map(|key| serde_json::to_value(key).ok())
            .collect();
        let cache = format!("public, max-age={}", context.jwks_max_age_secs);
        JwksResponse::Ok(Json(Jwks { keys }), cache)
    }
}
