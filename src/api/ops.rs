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

pub struct OpsApi;

fn state(ok: bool) -> State {
    if ok { State::Ok } else { State::Unavailable }
}

#[OpenApi(prefix_path = "/health", tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness
    #[oai(path = "/live", method = "get", operation_id = "live")]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Live
    }

    /// Readiness: the database answers
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, context: Context<'_>) -> ReadyResponse {
        let database = context.users.ping().await.is_ok();
        let readiness = Readiness {
            status: state(database),
            database: state(database),
        };
        if database {
            ReadyResponse::Ready(Json(readiness))
        } else {
            ReadyResponse::NotReady(Json(readiness))
        }
    }
}
