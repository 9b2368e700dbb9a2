//! Reading the audit log: a user's own events, or the back office's query.

use uuid::Uuid;

use super::Stores;
use crate::{
    audit::{EventFilter, EventPage},
    users::UserStoreError,
};

/// Up to `limit` events matching `filter` after the cursor, newest first.
pub async fn list_events(
    stores: &Stores,
    filter: &EventFilter,
    after: Option<Uuid>,
    limit: u64,
) -> Result<EventPage, UserStoreError> {
    stores.audit.list(filter, after, limit).await
}
