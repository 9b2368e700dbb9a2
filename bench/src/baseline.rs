//! The baselines each Tessera scenario is compared with, measured in the same
//! run on the same machine and load shape, so a ratio says how much of the
//! available speed Tessera keeps rather than how fast this machine is.
//!
//! - `framework`: a bare poem server answering `/me` with a body shaped like
//!   Tessera's, plain or behind an HS256 bearer check (the floor for `me`).
//! - `hashing`: Argon2id verifications per second at Tessera's parameters (the
//!   ceiling for anything that hashes a password: sign-in, sign-up).
//! - `storage`: the Redis round-trip one refresh needs (the ceiling for refresh).

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
use poem::{EndpointExt, Request, Route, get, handler};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::load::{self, Connection, Measurement, Outcome, Recorder, Window, served};

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

/// The bare framework server, on its own runtime and threads.
pub struct FrameworkServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FrameworkServer {
    /// Starts serving `/me` (plain) and `/me-bearer` (checked).
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
                        .data(me)
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

/// Argon2id verifications, one OS thread per core, over one window.
///
/// Blocking threads, not tasks: this is the CPU ceiling with nothing else
/// running, which a server that hashes on all cores can at best approach.
pub fn hashing(threads: usize, warmup: Duration, duration: Duration) -> Measurement {
    let password = crate::tessera::PASSWORD.as_bytes();
    let stored = argon2()
        .hash_password(password)
        .expect("hashing a password works")
        .to_string();
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

/// One refresh's worth of Redis work in one round-trip: read the session hash,
/// rewrite its token fields, push its idle expiry, and touch the user's
/// session index (a sorted set scored by last use).
const REFRESH_SCRIPT: &str = r"
local session = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'previous', ARGV[2], 'last_used', ARGV[3], 'user', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
return #session
";

/// One storage task: its own session key, on a clone of the shared
/// multiplexed connection (as a server process would use one).
pub struct StorageConnection {
    redis: MultiplexedConnection,
    script: Arc<redis::Script>,
    session_key: String,
    index_key: String,
    session_id: String,
    rotations: u64,
}

impl StorageConnection {
    pub fn new(
        redis: MultiplexedConnection,
        script: Arc<redis::Script>,
        prefix: &str,
        index: usize,
    ) -> Self {
        StorageConnection {
            redis,
            script,
            session_key: format!("{prefix}session:{index}"),
            index_key: format!("{prefix}user-sessions:{index}"),
            session_id: uuid::Uuid::now_v7().to_string(),
            rotations: 0,
        }
    }
}

impl Connection for StorageConnection {
    async fn request(&mut self) -> Outcome {
        self.rotations += 1;
        // Token digests are 43 base64url characters in practice; so are these.
        let token = format!("{:0>43}", self.rotations);
        let previous = format!("{:0>43}", self.rotations - 1);
        let now_ms = Utc::now().timestamp_millis();
        let idle_ms: u64 = 3_600_000;
        self.script
            .key(&self.session_key)
            .key(&self.index_key)
            .arg(token)
            .arg(previous)
            .arg(now_ms)
            .arg(&self.session_id)
            .arg(idle_ms)
            .arg(&self.session_id)
            .invoke_async::<i64>(&mut self.redis)
            .await
            .map(served)
            .map_err(|err| format!("storage: {err}"))
    }
}

/// The `storage` baseline: `tasks` concurrent refresh-equivalent round-trips.
pub async fn storage(
    redis: &MultiplexedConnection,
    prefix: &str,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> Measurement {
    let script = Arc::new(redis::Script::new(REFRESH_SCRIPT));
    let connections = (0..tasks)
        .map(|i| StorageConnection::new(redis.clone(), Arc::clone(&script), prefix, i))
        .collect();
    load::run(connections, warmup, duration).await
}
