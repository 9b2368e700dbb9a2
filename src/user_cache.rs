//! An in-process cache of the users `/v1/me` shows, dropped on every
//! instance when a user changes.
//!
//! Every change to a user (disable, delete, password, second factor; the
//! admin CLI's included) is announced on a Redis channel, and every server
//! subscribes to it: an entry goes within the message's delivery time, far
//! under the contract's second. The cache is used only while the
//! subscription is live: when it is lost, every entry goes and nothing is
//! cached until it is back, so a missed message cannot leave a stale user.
//! A load that raced with a change is not kept (a generation counter moves
//! on every drop).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use uuid::Uuid;

use crate::{
    error::Causes,
    keyspace::{Keyspace, RedisError},
    mfa::FactorSummary,
    settings::{RedisEndpoint, RedisSettings},
    users::User,
};

/// A cached entry also goes after this long, whatever is announced.
const TIME_TO_LIVE: Duration = Duration::from_secs(60);
/// How long a lost subscription waits before subscribing again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(200);

type Entry = (User, FactorSummary);

#[derive(Clone)]
pub struct UserCache {
    keyspace: Keyspace,
    channel: String,
    /// `None` for the admin CLI: it announces changes but caches nothing.
    cache: Option<Local>,
}

#[derive(Clone)]
struct Local {
    entries: moka::future::Cache<Uuid, Entry>,
    subscribed: Arc<AtomicBool>,
    /// Moves on every drop, so a load that started before one is not kept.
    generation: Arc<AtomicU64>,
}

impl UserCache {
    /// Announces changes only (the admin CLI, or a server with the cache off).
    pub fn announcing(keyspace: Keyspace) -> Self {
        let channel = keyspace.key(format_args!("users:changed"));
        UserCache {
            keyspace,
            channel,
            cache: None,
        }
    }

    /// Also caches up to `capacity` users, subscribed to the announcements
    /// through a connection of its own.
    pub fn subscribing(self, redis: &RedisSettings, capacity: u64) -> Self {
        let mut cache = self;
        let local = Local {
            entries: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(TIME_TO_LIVE)
                .build(),
            subscribed: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
        };
        // Classic pub/sub reaches every node of a cluster: the first seed will do.
        let url = match redis.endpoint() {
            Ok(RedisEndpoint::Single(url)) => Some(url),
            Ok(RedisEndpoint::Cluster(nodes)) => nodes.into_iter().next(),
            Err(_) => None,
        };
        if let Some(url) = url {
            tokio::spawn(follow(url, cache.channel.clone(), local.clone()));
        }
        cache.cache = Some(local);
        cache
    }

    /// The user from the cache, or from `load` (kept when the cache may
    /// keep it). Only enabled users are ever cached.
    pub async fn get_or_load<E>(
        &self,
        id: Uuid,
        load: impl AsyncFnOnce() -> Result<Option<Entry>, E>,
    ) -> Result<Option<Entry>, E> {
        let Some(local) = self.cache.as_ref().filter(|local| local.live()) else {
            return load().await;
        };
        if let Some(entry) = local.entries.get(&id).await {
            return Ok(Some(entry));
        }
        let generation = local.generation.load(Ordering::Acquire);
        let loaded = load().await?;
        if let Some(entry) = &loaded
            && local.live()
            && local.generation.load(Ordering::Acquire) == generation
        {
            local.entries.insert(id, entry.clone()).await;
        }
        Ok(loaded)
    }

    /// Tells every instance (this one at once) that `user_id` changed.
    pub async fn announce(&self, user_id: Uuid) -> Result<(), RedisError> {
        if let Some(local) = &self.cache {
            local.drop_entry(user_id).await;
        }
        let (channel, message) = (self.channel.clone(), user_id.to_string());
        self.keyspace
            .run(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(message)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await?;
        Ok(())
    }
}

impl Local {
    fn live(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    async fn drop_entry(&self, user_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(&user_id).await;
    }

    fn drop_entries(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// The subscription is gone: nothing is cached until it is back.
    fn unsubscribed(&self) {
        self.subscribed.store(false, Ordering::Release);
        self.drop_entries();
    }
}

/// Keeps the subscription: drops what it is told to, and everything
/// whenever the subscription is lost.
async fn follow(url: String, channel: String, local: Local) {
    loop {
        match subscribe(&url, &channel).await {
            Ok(mut pubsub) => {
                local.subscribed.store(true, Ordering::Release);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    match message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|id| id.parse().ok())
                    {
                        Some(user_id) => local.drop_entry(user_id).await,
                        // Not ours to read: drop everything rather than guess.
                        None => local.drop_entries(),
                    }
                }
                tracing::warn!("the user cache lost its subscription; cache dropped");
            }
            Err(err) => {
                tracing::debug!(error = %Causes(&err), "the user cache cannot subscribe yet");
            }
        }
        local.unsubscribed();
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

async fn subscribe(url: &str, channel: &str) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = redis::Client::open(url)?.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
