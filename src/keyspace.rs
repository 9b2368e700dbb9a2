//! The Redis connection shared by sessions and rate limits: every key under
//! the configured prefix, every call bounded by the command timeout.

use std::time::Duration;

use redis::{
    Client,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::settings::RedisSettings;

#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisUnavailable(pub String);

impl From<redis::RedisError> for RedisUnavailable {
    fn from(err: redis::RedisError) -> Self {
        RedisUnavailable(err.to_string())
    }
}

impl From<redis::ParsingError> for RedisUnavailable {
    fn from(err: redis::ParsingError) -> Self {
        RedisUnavailable(err.to_string())
    }
}

#[derive(Clone)]
pub struct Keyspace {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl Keyspace {
    /// Connects lazily: the server starts (and reports not ready) while Redis
    /// is down, and the manager reconnects by itself when it returns.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisUnavailable> {
        let timeout = Duration::from_millis(settings.command_timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let client = Client::open(settings.url.as_str())?;
        Ok(Keyspace {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: settings.key_prefix.clone(),
            timeout,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key under the prefix.
    pub fn key(&self, name: std::fmt::Arguments<'_>) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one call (command, pipeline or script) within the timeout, so an
    /// outage answers fast instead of hanging.
    pub async fn run<T, F>(
        &self,
        call: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, RedisUnavailable>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, call(self.connection.clone())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisUnavailable("timed out".into())),
        }
    }

    /// Readiness: one round-trip.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        let _: String = self
            .run(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        Ok(())
    }
}
