//! The Redis connection shared by sessions and rate limits: one server or a
//! Redis Cluster, every key under the configured prefix, every call bounded
//! by the command timeout.

use std::time::Duration;

use redis::{
    Client, Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
};

use crate::settings::{RedisEndpoint, RedisSettings};

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Down, unreachable or refusing: worth a retry (503).
    #[error("redis unavailable")]
    Unavailable(#[source] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    TimedOut(Duration),
    /// A reply or stored value of a shape we never write: a bug or
    /// corruption, not an outage (500).
    #[error("unexpected value in redis: {0}")]
    Unexpected(String),
}

impl RedisError {
    /// Whether the caller should come back later rather than report a bug.
    pub fn is_outage(&self) -> bool {
        !matches!(self, RedisError::Unexpected(_))
    }
}

impl From<redis::RedisError> for RedisError {
    /// The one place Redis errors are sorted: a reply we cannot read, a
    /// script that failed on what it found, or a key of the wrong type is a
    /// bug or corruption; everything else (refused, dropped, loading, cluster
    /// reshaping) is an outage.
    fn from(err: redis::RedisError) -> Self {
        let text = err.to_string();
        let unexpected = matches!(
            err.kind(),
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
        ) || text.contains("user_script")
            || text.contains("WRONGTYPE");
        if unexpected {
            RedisError::Unexpected(text)
        } else {
            RedisError::Unavailable(err)
        }
    }
}

impl From<redis::ParsingError> for RedisError {
    fn from(err: redis::ParsingError) -> Self {
        RedisError::Unexpected(err.to_string())
    }
}

/// A connection to one Redis server or to a cluster; both reconnect by
/// themselves, and both are cheap to clone per call.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct Keyspace {
    connection: Connection,
    prefix: String,
    timeout: Duration,
}

impl Keyspace {
    /// Connects lazily: the server starts (and reports not ready) while Redis
    /// is down, and the connection comes back by itself when Redis does.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisError> {
        let timeout = settings.command_timeout;
        // `Settings::load` checked the URL already.
        let endpoint = settings.endpoint().map_err(RedisError::Unexpected)?;
        let connection = match endpoint {
            RedisEndpoint::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Connection::Single(ConnectionManager::new_lazy_with_config(
                    Client::open(url.as_str())?,
                    config,
                )?)
            }
            RedisEndpoint::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes).retries(1).build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                Connection::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        Ok(Keyspace {
            connection,
            prefix: settings.key_prefix.clone(),
            timeout,
        })
    }

    /// A key under the prefix.
    pub fn key(&self, name: std::fmt::Arguments<'_>) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one call (command, pipeline or script) within the timeout, so an
    /// outage answers fast instead of hanging.
    pub async fn run<T, F>(&self, call: impl FnOnce(Connection) -> F) -> Result<T, RedisError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, call(self.connection.clone())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisError::TimedOut(self.timeout)),
        }
    }

    /// Readiness: one round-trip (to every primary, on a cluster).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let _: String = self
            .run(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        Ok(())
    }
}
