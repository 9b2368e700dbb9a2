//! The audit log: events written now or queued, read back in pages, and
//! pruned after the retention period.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::audit_event;
use prometheus_client::metrics::counter::Counter;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Event, NewEvent, write};
use crate::{clock::Clock, domain::MAX_PAGE, error::Causes, users::UserStoreError};

/// The first retry of a queued event, doubled up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Rows one pruning statement deletes: small enough that no statement holds
/// locks (or SQLite's one writer) for long.
const PRUNE_BATCH: u64 = 500;

/// Which events a listing shows; every filter set must hold.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub user_id: Option<Uuid>,
    /// Any of these types (exact match); empty: every type.
    pub types: Vec<String>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

/// A page of events, newest first, and the cursor of the next page (`None`
/// exactly when no event follows).
pub struct EventPage {
    pub events: Vec<Event>,
    pub next: Option<Uuid>,
}

/// An event stamped when it happened, waiting to be written.
struct Queued {
    id: Uuid,
    at: DateTime<Utc>,
    event: NewEvent,
}

impl Queued {
    fn now(clock: &Clock, event: NewEvent) -> Self {
        Queued {
            id: Uuid::now_v7(),
            at: clock.now(),
            event,
        }
    }
}

#[derive(Clone)]
pub struct AuditLog {
    db: DatabaseConnection,
    clock: Clock,
    queue: mpsc::Sender<Queued>,
    /// Queued and not yet written (the writer's event in hand included).
    waiting: Arc<AtomicUsize>,
    /// The last write failed (and the writer has not succeeded since).
    failing: Arc<AtomicBool>,
    dropped: Counter,
}

impl AuditLog {
    /// The log over `db`, with its writer task started on the current
    /// runtime. At most `capacity` events wait for the database; past it,
    /// new ones are dropped (and counted), so an outage cannot grow memory
    /// without bound.
    pub fn new(db: DatabaseConnection, clock: Clock, capacity: NonZeroUsize) -> Self {
        let (queue, queued) = mpsc::channel(capacity.get());
        let waiting = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_queued(
            db.clone(),
            queued,
            Arc::clone(&waiting),
            Arc::clone(&failing),
        ));
        AuditLog {
            db,
            clock,
            queue,
            waiting,
            failing,
            dropped: Counter::default(),
        }
    }

    /// `tessera_audit_events_dropped_total`'s counter, for the registry.
    pub fn dropped_counter(&self) -> Counter {
        self.dropped.clone()
    }

    /// The event of a Redis-only change: written before the answer when the
    /// database answers, else queued and retried (the change stands either
    /// way). While writes fail, it is queued at once: an outage costs each
    /// request no database timeout after the first.
    pub async fn record(&self, event: NewEvent) {
        let queued = Queued::now(&self.clock, event);
        if !self.failing.load(Ordering::Acquire) {
            match write(&self.db, queued.id, queued.at, &queued.event).await {
                Ok(()) => return,
                Err(err) => {
                    self.failing.store(true, Ordering::Release);
                    tracing::warn!(error = %Causes(&err), "audit event not written; queued for retry");
                }
            }
        }
        self.enqueue(queued);
    }

    /// The event of a refused request: queued, written off the response path.
    pub fn record_later(&self, event: NewEvent) {
        self.enqueue(Queued::now(&self.clock, event));
    }

    fn enqueue(&self, queued: Queued) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = self.queue.try_send(queued) {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.dropped.inc();
            let kind = match &err {
                mpsc::error::TrySendError::Full(queued)
                | mpsc::error::TrySendError::Closed(queued) => queued.event.kind.as_str(),
            };
            tracing::warn!(event = kind, "audit event dropped: the queue is full");
        }
    }

    /// Waits up to `grace` for queued events to be written; what is still
    /// waiting then is counted as dropped (the process is about to exit).
    pub async fn flush(&self, grace: Duration) {
        let drained = tokio::time::timeout(grace, async {
            while self.waiting.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if drained.is_err() {
            let left = self.waiting.swap(0, Ordering::AcqRel);
            self.dropped.inc_by(left as u64);
            tracing::warn!(
                events = left,
                "audit events dropped at shutdown: the database did not take them"
            );
        }
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) events older than the cursor,
    /// newest first.
    pub async fn list(
        &self,
        filter: &EventFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<EventPage, UserStoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut select = audit_event::Entity::find()
            .order_by_desc(audit_event::Column::Id)
            .limit(limit + 1);
        if let Some(after) = after {
            select = select.filter(audit_event::Column::Id.lt(after));
        }
        if let Some(user_id) = filter.user_id {
            select = select.filter(audit_event::Column::UserId.eq(user_id));
        }
        if !filter.types.is_empty() {
            select = select.filter(audit_event::Column::Type.is_in(filter.types.iter().cloned()));
        }
        if let Some(since) = filter.since {
            select = select.filter(audit_event::Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            select = select.filter(audit_event::Column::At.lt(until));
        }
        let mut events: Vec<Event> = select
            .all(&self.db)
            .await?
            .into_iter()
            .map(Event::from)
            .collect();
        let more = events.len() as u64 > limit;
        events.truncate(limit as usize);
        let next = more.then(|| events.last().map(|event| event.id)).flatten();
        Ok(EventPage { events, next })
    }

    /// Deletes events older than `retention`, one small batch at a time;
    /// how many went. Several instances may prune at once: each batch
    /// deletes whatever of its rows is still there.
    pub async fn prune(&self, retention: Duration) -> Result<u64, UserStoreError> {
        let cutoff = self.clock.now() - retention;
        let mut pruned = 0;
        loop {
            let batch = audit_event::Entity::find()
                .select_only()
                .column(audit_event::Column::Id)
                .filter(audit_event::Column::At.lt(cutoff))
                .order_by_asc(audit_event::Column::At)
                .limit(PRUNE_BATCH)
                .into_query();
            let deleted = audit_event::Entity::delete_many()
                .filter(audit_event::Column::Id.in_subquery(batch))
                .exec(&self.db)
                .await?
                .rows_affected;
            pruned += deleted;
            if deleted < PRUNE_BATCH {
                return Ok(pruned);
            }
            // Lets other writers in between batches.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Prunes every `interval` for as long as the server runs.
    pub fn spawn_pruning(&self, retention: Duration, interval: Duration) {
        let log = self.clone();
        tokio::spawn(async move {
            loop {
                match log.prune(retention).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "pruned audit events past retention"),
                    Err(err) => {
                        tracing::warn!(error = %Causes(&err), "could not prune audit events")
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
    }
}

/// Writes queued events in order, retrying each until the database takes
/// it. Events queued meanwhile wait behind it.
async fn write_queued(
    db: DatabaseConnection,
    mut queued: mpsc::Receiver<Queued>,
    waiting: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
) {
    while let Some(Queued { id, at, event }) = queued.recv().await {
        let mut pause = FIRST_RETRY_PAUSE;
        while let Err(err) = write(&db, id, at, &event).await {
            failing.store(true, Ordering::Release);
            tracing::debug!(error = %Causes(&err), "audit event not written yet; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
        failing.store(false, Ordering::Release);
        // Saturating: a flush at shutdown may have zeroed it.
        let _ = waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}
