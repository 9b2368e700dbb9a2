//! Refresh sessions in Redis.
//!
//! Keys, all under the configured prefix, `U` and `S` being the user's and
//! the session's ids in base64url (22 characters, [`layout::CompactId`]),
//! and all of one user in one Redis Cluster hash slot (the `{U}` hash tag),
//! so every script touches a single slot ([`layout::Key`] names them):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{U}:s:{S}` | hash | the session, fields below; its TTL is the idle timeout, reset on each refresh and never past the absolute lifetime |
//! | `{U}:sessions` | sorted set | the user's session ids (`S`) scored by idle expiry, so listing and sign-out-all never see expired sessions; never more than `session.max_per_user` (a sign-in beyond it ends the least recently used session) |
//! | `{U}:epoch` | string | the user's session epoch, a counter (absent: 0) that every account change (disable, delete, password change or reset) moves |
//!
//! The session hash's fields (its absolute expiry is `c` plus the configured
//! absolute lifetime, so shortening that applies to open sessions too):
//!
//! | field | value |
//! |---|---|
//! | `c` | created, unix ms |
//! | `u` | last used: when the current generation was handed out (at creation or by the last rotation), unix ms; the predecessor's grace window starts here |
//! | `g` | generation of the current refresh token |
//! | `e` | the epoch the session was stamped with (absent: 0) |
//! | `m`, `t` | how and when the sign-in was completed: the access tokens' `amr` (as [`SignInMethod::as_stored`]) and `auth_time` (unix s) |
//! | `ip` | the client's address at sign-in |
//! | `a0` … `a3` | the user agent at sign-in, in pieces of up to 64 bytes (absent: none) |
//! | `n`, `w` | refreshes counted in the current rate-limit window and the window's end, unix ms (absent until the first refresh) |
//!
//! Why so short: a session is a few hundred bytes, so names are a good part
//! of it, and Redis keeps a small hash compact (a listpack) only while every
//! value is at most `hash-max-listpack-value` bytes (64 by default), hence
//! the user agent in pieces. 100,000 sessions with a 120-character user
//! agent and an IPv4 address take 586 bytes each, index included
//! (BENCHMARKS.md, `bench/scripts/session_memory.py`).
//!
//! Creation, rotation and the liveness check compare a session's epoch with
//! the user's current one in the same script, so a session of an older
//! epoch, or a sign-in that read the epoch before the account changed, never
//! comes (back) to life; a password change re-stamps the calling session
//! with the new one.
//!
//! Every change is one Lua script, so concurrent refreshes cannot interleave,
//! and every script reads the time from Redis (`TIME`), so instances whose
//! clocks differ still agree on grace windows and expiry. The scripts need
//! Redis 7.0 or later (`PEXPIREAT … GT`).

pub mod layout;
mod token;

use std::{net::IpAddr, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use redis::{Script, ScriptInvocation};
use uuid::Uuid;

pub use token::{RefreshToken, RefreshTokenKeys};

use layout::{CompactId, Key};

use crate::{
    keyspace::{Keyspace, RedisError},
    mfa::SignInMethod,
    settings::SessionSettings,
};

/// The session store's one failure: Redis could not answer, or answered
/// with something no script of ours writes.
pub type SessionError = RedisError;

/// A user's session epoch, as a sign-in reads it before checking the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl Epoch {
    /// An epoch as recorded elsewhere (a sign-in challenge).
    pub fn new(value: u64) -> Self {
        Epoch(value)
    }

    pub fn value(self) -> u64 {
        self.0
    }
}

/// How and when a session's sign-in was completed: what its access tokens
/// say (`amr`, `auth_time`), refresh after refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionAuth {
    pub method: SignInMethod,
    /// Unix seconds.
    pub auth_time: i64,
}

/// A session's current token generation, how long it lives if left idle,
/// and how it was signed in.
#[derive(Debug, Clone, Copy)]
pub struct NewSession {
    pub token: RefreshToken,
    pub idle_expires_in: Duration,
    pub auth: SessionAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was current (or its predecessor within the grace
    /// window): `token` is the one to hand out.
    Rotated {
        token: RefreshToken,
        idle_expires_in: Duration,
        auth: SessionAuth,
        /// The previous token within the grace window: `token` is the
        /// successor an earlier refresh already handed out.
        converged: bool,
    },
    /// Unknown, expired or revoked.
    Invalid,
    /// An old token came back: the session is revoked (RFC 9700 §4.14).
    ReuseDetected,
    /// The session used up its refreshes for the window; nothing changed.
    Limited { retry_after: Duration },
}

/// Refreshes allowed per session per window, checked in the rotation's
/// own script.
#[derive(Debug, Clone, Copy)]
pub struct RefreshLimit {
    pub per_window: u64,
    pub window: Duration,
}

/// A live session as listed to its user.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// The longest user agent a session keeps: four pieces of 64, all that
/// `list.lua` reads back. A header value is ASCII, so characters are bytes.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// Who opened a session, as shown when listing sessions.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: IpAddr,
}

struct Scripts {
    create: Script,
    rotate: Script,
    live: Script,
    inspect: Script,
    revoke: Script,
    revoke_all: Script,
    list: Script,
}

pub struct SessionStore {
    keyspace: Keyspace,
    idle: Duration,
    absolute: Duration,
    grace: Duration,
    max_per_user: u32,
    /// `None`: refreshes are not limited (rate limits off).
    refresh_limit: Option<RefreshLimit>,
    scripts: Scripts,
}

impl SessionStore {
    pub fn new(
        keyspace: Keyspace,
        session: &SessionSettings,
        refresh_limit: Option<RefreshLimit>,
    ) -> Self {
        SessionStore {
            keyspace,
            refresh_limit,
            idle: session.idle_timeout,
            absolute: session.absolute_lifetime,
            grace: session.reuse_grace,
            max_per_user: session.max_per_user.get(),
            scripts: Scripts {
                create: Script::new(include_str!("scripts/create.lua")),
                rotate: Script::new(include_str!("scripts/rotate.lua")),
                live: Script::new(include_str!("scripts/live.lua")),
                inspect: Script::new(include_str!("scripts/inspect.lua")),
                revoke: Script::new(include_str!("scripts/revoke.lua")),
                revoke_all: Script::new(include_str!("scripts/revoke_all.lua")),
                list: Script::new(include_str!("scripts/list.lua")),
            },
        }
    }

    /// The user's current session epoch.
    pub async fn epoch(&self, user_id: Uuid) -> Result<Epoch, SessionError> {
        let key = self.epoch_key(user_id);
        let epoch: Option<u64> = self
            .keyspace
            .run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await?;
        Ok(Epoch(epoch.unwrap_or(0)))
    }

    /// Opens a session if the user's epoch is still `epoch`; `None` when the
    /// account changed since it was read.
    pub async fn create(
        &self,
        user_id: Uuid,
        epoch: Epoch,
        client: ClientInfo,
        auth: SessionAuth,
    ) -> Result<Option<NewSession>, SessionError> {
        let session_id = Uuid::now_v7();
        let mut invocation = self.scripts.create.prepare_invoke();
        invocation
            .key(self.session_key(user_id, session_id))
            .key(self.user_index_key(user_id))
            .key(self.epoch_key(user_id))
            .arg(CompactId(session_id))
            .arg(millis(self.idle))
            .arg(millis(self.absolute))
            .arg(client.user_agent.unwrap_or_default())
            .arg(client.ip.to_string())
            .arg(epoch.0)
            .arg(self.max_per_user)
            .arg(self.session_key_prefix(user_id))
            .arg(auth.method.as_stored())
            .arg(auth.auth_time);
        let idle_ms: i64 = self.invoke(invocation).await?;
        let Ok(idle_ms) = u64::try_from(idle_ms) else {
            return Ok(None);
        };
        Ok(Some(NewSession {
            token: RefreshToken {
                user_id,
                session_id,
                generation: 0,
            },
            idle_expires_in: Duration::from_millis(idle_ms),
            auth,
        }))
    }

    pub async fn rotate(&self, presented: RefreshToken) -> Result<Rotation, SessionError> {
        let mut invocation = self.scripts.rotate.prepare_invoke();
        invocation
            .key(self.session_key(presented.user_id, presented.session_id))
            .key(self.user_index_key(presented.user_id))
            .key(self.epoch_key(presented.user_id))
            .arg(CompactId(presented.session_id))
            .arg(presented.generation)
            .arg(millis(self.idle))
            .arg(millis(self.grace))
            .arg(self.refresh_limit.map_or(0, |limit| limit.per_window))
            .arg(self.refresh_limit.map_or(0, |limit| millis(limit.window)))
            .arg(millis(self.absolute));
        let reply: Vec<redis::Value> = self.invoke(invocation).await?;
        let field = |i: usize| reply.get(i).cloned().unwrap_or(redis::Value::Nil);
        let status: String = redis::from_redis_value(field(0))?;
        let converged = match status.as_str() {
            rotate_status::ROTATED => false,
            rotate_status::CONVERGED => true,
            rotate_status::REUSED => return Ok(Rotation::ReuseDetected),
            rotate_status::INVALID => return Ok(Rotation::Invalid),
            rotate_status::LIMITED => {
                let left: u64 = redis::from_redis_value(field(1))?;
                return Ok(Rotation::Limited {
                    retry_after: Duration::from_millis(left),
                });
            }
            _ => return Err(unexpected("rotation status")),
        };
        let generation: u64 = redis::from_redis_value(field(1))?;
        let idle_ms: u64 = redis::from_redis_value(field(2))?;
        let method: String = redis::from_redis_value(field(3))?;
        let auth_time: i64 = redis::from_redis_value(field(4))?;
        let method = SignInMethod::from_stored(&method).ok_or_else(|| unexpected("amr"))?;
        Ok(Rotation::Rotated {
            token: RefreshToken {
                generation,
                ..presented
            },
            idle_expires_in: Duration::from_millis(idle_ms),
            auth: SessionAuth { method, auth_time },
            converged,
        })
    }

    /// Revokes a session if it is live and belongs to `user_id`. Idempotent.
    pub async fn revoke(&self, user_id: Uuid, session_id: Uuid) -> Result<bool, SessionError> {
        let mut invocation = self.scripts.revoke.prepare_invoke();
        invocation
            .key(self.session_key(user_id, session_id))
            .key(self.user_index_key(user_id))
            .arg(CompactId(session_id));
        let revoked: u8 = self.invoke(invocation).await?;
        Ok(revoked == 1)
    }

    /// Revokes every session of a user (signing out everywhere); how many were live.
    pub async fn revoke_all(&self, user_id: Uuid) -> Result<u64, SessionError> {
        self.end_all(user_id, Duration::ZERO, None).await
    }

    /// Moves the user's session epoch and revokes every session but `keep`
    /// (re-stamped with the new epoch if it was live): after an account
    /// change, no other session from before it, and none whose sign-in read
    /// the epoch before it, can be created or refreshed. How many ended.
    pub async fn supersede(&self, user_id: Uuid, keep: Option<Uuid>) -> Result<u64, SessionError> {
        // Kept as long as a session stamped with it could live.
        self.end_all(user_id, self.absolute, keep).await
    }

    async fn end_all(
        &self,
        user_id: Uuid,
        epoch_lifetime: Duration,
        keep: Option<Uuid>,
    ) -> Result<u64, SessionError> {
        let mut invocation = self.scripts.revoke_all.prepare_invoke();
        invocation
            .key(self.user_index_key(user_id))
            .key(self.epoch_key(user_id))
            .arg(self.session_key_prefix(user_id))
            .arg(millis(epoch_lifetime))
            .arg(keep.map(|id| CompactId(id).to_string()).unwrap_or_default());
        self.invoke(invocation).await
    }

    pub async fn list(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, SessionError> {
        let mut invocation = self.scripts.list.prepare_invoke();
        invocation
            .key(self.user_index_key(user_id))
            .arg(self.session_key_prefix(user_id));
        let flat: Vec<String> = self.invoke(invocation).await?;
        flat.chunks_exact(6)
            .map(|row| {
                let time = |raw: &str| {
                    raw.parse::<i64>()
                        .ok()
                        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                        .ok_or_else(|| unexpected("timestamp"))
                };
                let optional = |raw: &str| (!raw.is_empty()).then(|| raw.to_owned());
                Ok(SessionInfo {
                    id: CompactId::parse(&row[0]).ok_or_else(|| unexpected("session id"))?,
                    created_at: time(&row[1])?,
                    last_used_at: time(&row[2])?,
                    idle_expires_at: time(&row[3])?,
                    user_agent: optional(&row[4]),
                    ip: optional(&row[5]),
                })
            })
            .collect()
    }

    /// The session exists and is of the user's current epoch.
    pub async fn is_live(&self, user_id: Uuid, session_id: Uuid) -> Result<bool, SessionError> {
        let mut invocation = self.scripts.live.prepare_invoke();
        invocation
            .key(self.session_key(user_id, session_id))
            .key(self.epoch_key(user_id));
        let live: u8 = self.invoke(invocation).await?;
        Ok(live == 1)
    }

    /// How long until the session of `presented` goes idle, if `presented`
    /// is its current token (the previous one, even inside the grace
    /// window, is not); nothing about the session changes.
    pub async fn inspect(&self, presented: RefreshToken) -> Result<Option<Duration>, SessionError> {
        let mut invocation = self.scripts.inspect.prepare_invoke();
        invocation
            .key(self.session_key(presented.user_id, presented.session_id))
            .key(self.epoch_key(presented.user_id))
            .arg(presented.generation);
        let left: i64 = self.invoke(invocation).await?;
        Ok(u64::try_from(left).ok().map(Duration::from_millis))
    }

    /// Readiness: one round-trip.
    pub async fn ping(&self) -> Result<(), SessionError> {
        self.keyspace.ping().await
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, SessionError> {
        self.keyspace
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    fn session_key_prefix(&self, user: Uuid) -> String {
        self.keyspace
            .key(format_args!("{}", Key::SessionPrefix { user }))
    }

    fn session_key(&self, user: Uuid, session: Uuid) -> String {
        self.keyspace
            .key(format_args!("{}", Key::Session { user, session }))
    }

    fn user_index_key(&self, user: Uuid) -> String {
        self.keyspace.key(format_args!("{}", Key::Index { user }))
    }

    fn epoch_key(&self, user: Uuid) -> String {
        self.keyspace.key(format_args!("{}", Key::Epoch { user }))
    }
}

/// The statuses `rotate.lua` answers with (its header names them too).
mod rotate_status {
    pub const ROTATED: &str = "rotated";
    pub const CONVERGED: &str = "converged";
    pub const INVALID: &str = "invalid";
    pub const REUSED: &str = "reused";
    pub const LIMITED: &str = "limited";
}

fn unexpected(what: &str) -> SessionError {
    RedisError::Unexpected(format!("{what} in a session record"))
}

/// Scripts take whole milliseconds (settings are at least 1 ms).
fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}
