//! The baselines each Tessera scenario is compared with, measured in the same
//! run on the same machine and load shape, so a ratio says how much of the
//! available speed Tessera keeps rather than how fast this machine is.
//!
//! - `framework`: a bare poem server answering `/me` with a body shaped like
//!   Tessera's, plain or behind an HS256 bearer check (the floor for `me`).
//! - `framework-post`: the same server's `POST /refresh`, a JSON body in and
//!   out shaped and sized like Tessera's refresh (a floor for `refresh`).
//! - `hashing`: Argon2id verifications per second at Tessera's parameters (the
//!   ceiling for anything that hashes a password: sign-in, sign-up).
//! - `storage`: the Redis call one refresh makes, with the server's own
//!   script: the rotation, its rate limit included (the ceiling for refresh).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{SecondsFormat, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Request, Route, get, handler, post};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tessera::sessions::layout::{CompactId, Key};
use tokio::sync::oneshot;

use crate::http;
use crate::load::{self, Answer, Connection, Measurement, Outcome, Recorder, Window, served};

const JWT_SECRET: &[u8] = b"tessera-bench-baseline-secret-of-32-bytes-or-more";
const JWT_ISSUER: &str = "tessera-bench";
const JWT_AUDIENCE: &str = "tessera-bench";

/// Claims like Tessera's access tokens, so encoding and decoding cost the same.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: uuid::Uuid,
    sid: uuid::Uuid,
    iat: i64,
    exp: i64,
    jti: uuid::Uuid,
}

/// What `/me` answers: the shape (and about the size) of Tessera's `/v1/me`.
#[derive(Debug, Clone, Serialize)]
struct Me {
    id: uuid::Uuid,
    username: String,
    created_at: String,
}

/// The lengths of Tessera's tokens as the bench's server issues them: an
/// HS256 access token with its claims (the default issuer and audience) and a
/// refresh token, `tsr_` and 96 base64url characters. Measured from the
/// server; a change to either format needs them changed here.
const ACCESS_TOKEN_LEN: usize = 467;
const REFRESH_TOKEN_LEN: usize = 100;

/// What `/refresh` parses: the body of Tessera's refresh request.
#[derive(Debug, Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// What `/refresh` answers: Tessera's TokenPair, its fields in the order
/// the server writes them, its strings as long as the real ones, its
/// numbers the default settings' (`access_ttl_secs`, `idle_timeout_secs`).
#[derive(Debug, Clone, Serialize)]
struct Refreshed {
    access_token: String,
    expires_in: u64,
    refresh_expires_in: u64,
    refresh_token: String,
    session_id: uuid::Uuid,
    token_type: &'static str,
}

impl Refreshed {
    fn new() -> Self {
        Refreshed {
            access_token: "a".repeat(ACCESS_TOKEN_LEN),
            expires_in: 900,
            refresh_expires_in: 3600,
            refresh_token: placeholder_refresh_token(),
            session_id: uuid::Uuid::now_v7(),
            token_type: "Bearer",
        }
    }
}

/// A string as long as a Tessera refresh token.
fn placeholder_refresh_token() -> String {
    format!("tsr_{}", "r".repeat(REFRESH_TOKEN_LEN - 4))
}

/// The bearer check a real endpoint does: pinned algorithm, `exp`, `iss`, `aud`.
struct BearerCheck {
    key: DecodingKey,
    validation: Validation,
}

impl BearerCheck {
    fn new() -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[JWT_AUDIENCE]);
        validation.set_issuer(&[JWT_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        BearerCheck {
            key: DecodingKey::from_secret(JWT_SECRET),
            validation,
        }
    }

    fn claims(&self, request: &Request) -> Option<Claims> {
        let header = request.header("authorization")?;
        let token = header.strip_prefix("Bearer ")?;
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// An HS256 token the bearer baseline accepts, shaped like Tessera's.
pub fn baseline_token() -> String {
    let now = Utc::now().timestamp();
    let claims = Claims {
        iss: JWT_ISSUER.to_string(),
        aud: JWT_AUDIENCE.to_string(),
        sub: uuid::Uuid::now_v7(),
        sid: uuid::Uuid::now_v7(),
        iat: now,
        exp: now + 3600,
        jti: uuid::Uuid::now_v7(),
    };
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("JWT".to_string());
    header.kid = Some("bench".to_string());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(JWT_SECRET))
        .expect("HS256 encoding of plain claims cannot fail")
}

#[handler]
fn me_plain(me: Data<&Me>) -> Json<Me> {
    Json(me.0.clone())
}

#[handler]
fn me_bearer(request: &Request, me: Data<&Me>, check: Data<&Arc<BearerCheck>>) -> poem::Response {
    use poem::IntoResponse;
    match check.claims(request) {
        // The id comes from the token, as in a real handler.
        Some(claims) => Json(Me {
            id: claims.sub,
            ..me.0.clone()
        })
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Parses the JSON body and answers the token pair; a token of the wrong
/// length is refused, as Tessera refuses one it cannot parse.
#[handler]
fn refresh(body: Json<RefreshBody>, refreshed: Data<&Refreshed>) -> poem::Response {
    use poem::IntoResponse;
    if body.refresh_token.len() == REFRESH_TOKEN_LEN {
        Json(refreshed.0.clone()).into_response()
    } else {
        StatusCode::BAD_REQUEST.into_response()
    }
}

/// `framework-post`'s connection: the `refresh` scenario's own client code
/// against `/refresh`, presenting the token the last answer handed out.
pub struct RefreshExchange {
    client: http::Client,
    refresh_token: String,
}

impl RefreshExchange {
    pub fn new(addr: SocketAddr) -> Self {
        RefreshExchange {
            client: http::Client::new(addr),
            refresh_token: placeholder_refresh_token(),
        }
    }
}

impl Connection for RefreshExchange {
    async fn request(&mut self) -> Outcome {
        let pair =
            crate::tessera::refresh(&mut self.client, "/refresh", &self.refresh_token).await?;
        self.refresh_token = pair.refresh_token;
        Ok(Answer::Served)
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

/// The bare framework server, on its own runtime and threads.
pub struct FrameworkServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FrameworkServer {
    /// Starts serving `/me` (plain), `/me-bearer` (checked) and `/refresh`.
    ///
    /// Its own multi-threaded runtime (as many workers as Tessera's default)
    /// means the server does not share the load generator's workers: the
    /// same split as between the load generator and the Tessera process.
    pub fn start(username: &str) -> std::io::Result<Self> {
        let me = Me {
            id: uuid::Uuid::now_v7(),
            username: username.to_string(),
            created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("baseline-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .thread_name("baseline-worker")
                    .enable_all()
                    .build()
                    .expect("a tokio runtime builds");
                runtime.block_on(async move {
                    let acceptor = match TcpListener::bind("127.0.0.1:0").into_acceptor().await {
                        Ok(acceptor) => acceptor,
                        Err(err) => return drop(addr_tx.send(Err(err))),
                    };
                    let addr = acceptor.local_addr()[0]
                        .as_socket_addr()
                        .copied()
                        .expect("a TCP listener has a socket address");
                    let _ = addr_tx.send(Ok(addr));
                    let app = Route::new()
                        .at("/me", get(me_plain))
                        .at("/me-bearer", get(me_bearer))
                        .at("/refresh", post(refresh))
                        .data(me)
                        .data(Refreshed::new())
                        .data(Arc::new(BearerCheck::new()));
                    let stopped = async move {
                        let _ = stop_rx.await;
                    };
                    let _ = poem::Server::new_with_acceptor(acceptor)
                        .run_with_graceful_shutdown(app, stopped, Some(Duration::from_secs(5)))
                        .await;
                });
            })?;
        let addr = addr_rx
            .recv()
            .map_err(|_| std::io::Error::other("baseline server thread died"))??;
        Ok(FrameworkServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FrameworkServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Tessera's Argon2id cost (the OWASP minimum it refuses to go below).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of the bench's password at Tessera's cost, as the server
/// stores it (a new salt each call).
pub fn password_hash() -> String {
    argon2()
        .hash_password(crate::tessera::PASSWORD.as_bytes())
        .expect("hashing a password works")
        .to_string()
}

/// Argon2id verifications, one OS thread per core, over one window.
///
/// Blocking threads, not tasks: this is the CPU ceiling with nothing else
/// running, which a server that hashes on all cores can at best approach.
pub fn hashing(threads: usize, warmup: Duration, duration: Duration) -> Measurement {
    let password = crate::tessera::PASSWORD.as_bytes();
    let stored = password_hash();
    let window = Window::starting_now(warmup, duration);
    let recorders = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let stored = stored.as_str();
                scope.spawn(move || {
                    let hasher = argon2();
                    let parsed = PasswordHash::new(stored).expect("own hash parses");
                    let mut recorder = Recorder::new(window);
                    while window.running() {
                        let started = Instant::now();
                        let outcome = hasher
                            .verify_password(password, &parsed)
                            .map(served)
                            .map_err(|err| format!("verify: {err}"));
                        recorder.record(started, outcome);
                    }
                    recorder
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a hashing thread panicked"))
            .collect::<Vec<_>>()
    });
    Recorder::summarise(recorders)
}

/// The script a refresh runs, from the server's own source: the rotation,
/// which also counts the session's refreshes. `create` seeds each task's
/// session as a sign-in does.
const CREATE_SCRIPT: &str = include_str!("../../src/sessions/scripts/create.lua");
const ROTATE_SCRIPT: &str = include_str!("../../src/sessions/scripts/rotate.lua");

/// The server's settings the scripts take (`config/default.toml`; the bench
/// changes none of them).
const IDLE_TIMEOUT_MS: u64 = 3_600 * 1000;
const ABSOLUTE_LIFETIME_MS: u64 = 2_592_000 * 1000;
const REUSE_GRACE_MS: u64 = 10 * 1000;
const REFRESH_WINDOW_MS: u64 = 60 * 1000;
/// The bench server's refresh limit (out of reach, as there).
const REFRESHES_PER_WINDOW: u64 = crate::server::UNREACHABLE_LIMIT;
const MAX_SESSIONS_PER_USER: u64 = 50;

pub struct StorageScripts {
    create: redis::Script,
    rotate: redis::Script,
}

impl StorageScripts {
    fn new() -> Self {
        StorageScripts {
            create: redis::Script::new(CREATE_SCRIPT),
            rotate: redis::Script::new(ROTATE_SCRIPT),
        }
    }
}

/// A session's keys under the server's prefix, named by the server's own
/// [`Key`].
struct SessionKeys {
    session_prefix: String,
    session: String,
    index: String,
    epoch: String,
}

impl SessionKeys {
    fn new(prefix: &str, user: uuid::Uuid, session: uuid::Uuid) -> Self {
        SessionKeys {
            session: format!("{prefix}{}", Key::Session { user, session }),
            session_prefix: format!("{prefix}{}", Key::SessionPrefix { user }),
            index: format!("{prefix}{}", Key::Index { user }),
            epoch: format!("{prefix}{}", Key::Epoch { user }),
        }
    }
}

/// One storage task: a session of its own, rotated again and again as one
/// refresh connection rotates its chain, on a clone of the shared
/// multiplexed connection (as a server process would use one).
pub struct StorageConnection {
    redis: MultiplexedConnection,
    scripts: Arc<StorageScripts>,
    prefix: String,
    user: uuid::Uuid,
    session: uuid::Uuid,
    keys: SessionKeys,
    /// The generation the last rotation handed out: the one to present next.
    generation: u64,
}

impl StorageConnection {
    /// Creates the task's session, as a sign-in does.
    pub async fn start(
        redis: MultiplexedConnection,
        scripts: Arc<StorageScripts>,
        prefix: &str,
    ) -> Result<Self, String> {
        let (user, session) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let mut connection = StorageConnection {
            keys: SessionKeys::new(prefix, user, session),
            redis,
            scripts,
            prefix: prefix.to_string(),
            user,
            session,
            generation: 0,
        };
        connection.create().await?;
        Ok(connection)
    }

    async fn create(&mut self) -> Result<(), String> {
        // What a sign-in from the bench's client stores: no user agent.
        self.scripts
            .create
            .key(&self.keys.session)
            .key(&self.keys.index)
            .key(&self.keys.epoch)
            .arg(CompactId(self.session))
            .arg(IDLE_TIMEOUT_MS)
            .arg(ABSOLUTE_LIFETIME_MS)
            .arg("")
            .arg("127.0.0.1")
            .arg(0)
            .arg(MAX_SESSIONS_PER_USER)
            .arg(&self.keys.session_prefix)
            .arg("p")
            .arg(0)
            .invoke_async::<i64>(&mut self.redis)
            .await
            .map_err(|err| format!("storage: create: {err}"))?;
        self.generation = 0;
        Ok(())
    }

    /// One refresh's Redis call: the rotation, its rate limit included.
    async fn refresh(&mut self) -> Result<(), String> {
        let reply: Vec<redis::Value> = self
            .scripts
            .rotate
            .key(&self.keys.session)
            .key(&self.keys.index)
            .key(&self.keys.epoch)
            .arg(CompactId(self.session))
            .arg(self.generation)
            .arg(IDLE_TIMEOUT_MS)
            .arg(REUSE_GRACE_MS)
            .arg(REFRESHES_PER_WINDOW)
            .arg(REFRESH_WINDOW_MS)
            .arg(ABSOLUTE_LIFETIME_MS)
            .invoke_async(&mut self.redis)
            .await
            .map_err(|err| format!("storage: rotate: {err}"))?;
        self.generation = rotated(&reply)?;
        Ok(())
    }
}

/// The generation a rotation handed out, read as the server reads it (with
/// the idle expiry and how and when the session signed in); any status but
/// `rotated` is an error (each task presents its current token).
fn rotated(reply: &[redis::Value]) -> Result<u64, String> {
    let field = |i: usize| reply.get(i).cloned().unwrap_or(redis::Value::Nil);
    let bad = |what: &str| format!("storage: rotate: bad {what}");
    let status: String = redis::from_redis_value(field(0)).map_err(|_| bad("status"))?;
    if status != "rotated" {
        return Err(format!("storage: rotate: {status}"));
    }
    let generation: u64 = redis::from_redis_value(field(1)).map_err(|_| bad("generation"))?;
    let _idle_ms: u64 = redis::from_redis_value(field(2)).map_err(|_| bad("idle expiry"))?;
    let _amr: String = redis::from_redis_value(field(3)).map_err(|_| bad("amr"))?;
    let _auth_time: i64 = redis::from_redis_value(field(4)).map_err(|_| bad("auth time"))?;
    Ok(generation)
}

impl Connection for StorageConnection {
    async fn request(&mut self) -> Outcome {
        let result = self.refresh().await;
        if result.is_err() {
            // The chain is broken (or the session gone): start a new session,
            // so one failure shows as one error, as the refresh scenario's
            // sign-in again does.
            self.session = uuid::Uuid::now_v7();
            self.keys = SessionKeys::new(&self.prefix, self.user, self.session);
            let _ = self.create().await;
        }
        result.map(served)
    }
}

/// The `storage` baseline: `tasks` refresh chains' Redis calls, each task
/// with a session of its own under the server's key layout and `prefix`.
pub async fn storage(
    redis: &MultiplexedConnection,
    prefix: &str,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Measurement, String> {
    let scripts = Arc::new(StorageScripts::new());
    let mut connections = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        connections
            .push(StorageConnection::start(redis.clone(), Arc::clone(&scripts), prefix).await?);
    }
    Ok(load::run(connections, warmup, duration).await)
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    #[test]
    fn the_refresh_exchange_is_as_long_as_tessera_s() {
        // Sizes of a refresh answered by the bench's server (default settings).
        let request = serde_json::json!({ "refresh_token": placeholder_refresh_token() });
        assert_eq!(request.to_string().len(), 120);
        let answer = serde_json::to_string(&Refreshed::new()).unwrap();
        assert_eq!(answer.len(), 722, "{answer}");
    }

    #[test]
    fn keys_follow_the_server_layout() {
        let user: uuid::Uuid = "01a23640-52af-7675-a5fd-cf3ad7263683".parse().unwrap();
        let session: uuid::Uuid = "01a23640-52af-7675-a5fd-cf3b4a3ac26a".parse().unwrap();
        let (compact_user, session_text) = ("AaI2QFKvdnWl_c861yY2gw", "AaI2QFKvdnWl_c87SjrCag");
        let keys = SessionKeys::new("P:", user, session);
        assert_eq!(
            keys.session,
            format!("P:{{{compact_user}}}:s:{session_text}")
        );
        assert_eq!(keys.session_prefix, format!("P:{{{compact_user}}}:s:"));
        assert_eq!(keys.index, format!("P:{{{compact_user}}}:sessions"));
        assert_eq!(keys.epoch, format!("P:{{{compact_user}}}:epoch"));
    }

    fn reply(status: &str, generation: i64) -> Vec<Value> {
        vec![
            Value::BulkString(status.into()),
            Value::Int(generation),
            Value::Int(3_600_000),
            Value::BulkString("p".into()),
            Value::BulkString("1796407672".into()),
        ]
    }

    #[test]
    fn a_rotation_hands_out_the_next_generation() {
        assert_eq!(rotated(&reply("rotated", 8)), Ok(8));
    }

    #[test]
    fn anything_but_rotated_is_an_error() {
        for status in ["converged", "invalid", "reused"] {
            let only_status = [Value::BulkString(status.into())];
            assert_eq!(
                rotated(&only_status),
                Err(format!("storage: rotate: {status}"))
            );
        }
        assert!(rotated(&reply("rotated", 1)[..3]).is_err());
        assert!(rotated(&[Value::Int(1)]).is_err());
    }
}
