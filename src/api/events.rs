//! Security events as users and the back office read them: `listMyEvents`
//! here, `adminListEvents` in [`super::admin`], one view for both.

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json};
use uuid::Uuid;

use super::{ApiTags, Context, account::live_caller, bearer::Bearer, paging::page_limit};
use crate::{
    audit::{Event, EventFilter, EventPage},
    error::{Failure, error_set},
    flows,
};

error_set! {
    ListMyEventsErrors = [MalformedRequest, InvalidToken, MissingBearer, Validation, Unavailable];
}

/// Who acted.
#[derive(Object)]
pub(super) struct EventActor {
    /// `user`, `admin_token`, `cli` or `system` (clients ignore kinds they
    /// do not know).
    kind: String,
    /// The admin token's name (never the token); `null` otherwise, and
    /// always in a user's own list.
    #[oai(nullable)]
    name: Option<String>,
}

/// A security event.
#[derive(Object)]
#[oai(rename = "Event")]
pub(super) struct EventView {
    id: Uuid,
    at: DateTime<Utc>,
    /// `user.signed_in`, `session.revoked`, … (an open set: clients ignore
    /// types they do not know).
    #[oai(rename = "type")]
    kind: String,
    #[oai(nullable)]
    user_id: Option<Uuid>,
    #[oai(nullable)]
    session_id: Option<Uuid>,
    actor: EventActor,
    /// The caller's address (the user's for self-service, the back
    /// office's for the admin API); cleared when the user is deleted.
    #[oai(nullable)]
    ip: Option<String>,
    #[oai(nullable)]
    user_agent: Option<String>,
    /// Type-specific facts (a JSON object).
    #[oai(nullable)]
    detail: Option<serde_json::Value>,
}

/// A page of events, newest first.
#[derive(Object)]
pub(super) struct EventsPage {
    events: Vec<EventView>,
    /// Pass back as `after` for the next page; `null` exactly at the end.
    #[oai(nullable)]
    next: Option<String>,
}

#[derive(ApiResponse)]
pub(super) enum EventsResponse {
    /// Events, newest first.
    #[oai(status = 200)]
    Ok(Json<EventsPage>),
}

impl EventsResponse {
    /// The page as shown: with admin token names for the back office only.
    pub(super) fn page(page: EventPage, with_token_names: bool) -> Self {
        let view = |event: Event| EventView {
            id: event.id,
            at: event.at,
            kind: event.kind,
            user_id: event.user_id,
            session_id: event.session_id,
            actor: EventActor {
                kind: event.actor_kind,
                name: event.actor_name.filter(|_| with_token_names),
            },
            ip: event.ip,
            user_agent: event.user_agent,
            detail: event.detail,
        };
        EventsResponse::Ok(Json(EventsPage {
            events: page.events.into_iter().map(view).collect(),
            next: page.next.map(|id| id.to_string()),
        }))
    }
}

pub struct EventsApi;

#[OpenApi(prefix_path = "/v1/me", tag = "ApiTags::Account")]
impl EventsApi {
    /// The caller's security events
    ///
    /// Newest first, `limit` (1–200, default 50) per page; `next` is the
    /// cursor of the next page. Failed sign-ins from other addresses are
    /// shown too: a user sees that their password was tried.
    #[oai(path = "/events", method = "get", operation_id = "listMyEvents")]
    async fn list_my_events(
        &self,
        context: Context<'_>,
        req: &Request,
        auth: Bearer,
        after: Query<Option<Uuid>>,
        limit: Query<Option<i64>>,
    ) -> Result<EventsResponse, Failure<ListMyEventsErrors>> {
        let caller = live_caller(&context, req, auth).await?;
        let limit = page_limit(limit.0)?;
        let filter = EventFilter {
            user_id: Some(caller.user_id),
            ..EventFilter::default()
        };
        let page = flows::list_events(&context.stores, &filter, after.0, limit).await?;
        Ok(EventsResponse::page(page, false))
    }
}
