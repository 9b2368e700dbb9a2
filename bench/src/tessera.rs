//! Tessera's side: its HTTP API, the seeded users and sessions, and one
//! [`Connection`] type per scenario.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::{self, BearerGet, Prepared};
use crate::load::{Answer, Connection, Outcome, served};

/// Strong enough for Tessera's policy (scores 98) and contains no username.
pub const PASSWORD: &str = "correct-Horse-battery-9-staple";
/// Users signed up before the load; sign-ins cycle over them.
pub const SEED_USERS: usize = 16;
/// The introspection client the bench configures the server with
/// (`introspection.clients`). A benchmark-only credential: it opens nothing
/// but the throw-away server the bench starts.
pub const INTROSPECTION_CLIENT_ID: &str = "bench";
/// 40 characters of `[A-Za-z0-9._~-]` (the server wants 32 or more).
pub const INTROSPECTION_CLIENT_SECRET: &str = "tessera-bench-introspection-not-a-secret";
/// Sign-ins and sign-ups in flight at once while seeding: enough to use both
/// cores' hashing slots, well under Tessera's hashing queue (64).
const SEED_CONCURRENCY: usize = 8;

const SIGNUP: &str = "/v1/auth/signup";
const SIGNIN: &str = "/v1/auth/signin";
const REFRESH: &str = "/v1/auth/refresh";
pub const ME: &str = "/v1/me";
const INTROSPECT: &str = "/oauth/introspect";

/// A sign-up or sign-in body.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// The `i`-th seeded user of this run.
    pub fn seeded(i: usize, run_id: &str) -> Self {
        Credentials {
            username: format!("u{i}-{run_id}"),
            password: PASSWORD.to_string(),
        }
    }

    /// The `i`-th user whose session the introspection scenarios read:
    /// users of their own, whom no scenario signs in, so no sign-in past
    /// `session.max_per_user` evicts that session (least recently used
    /// first, and introspection does not count as use).
    pub fn introspected(i: usize, run_id: &str) -> Self {
        Credentials {
            username: format!("i{i}-{run_id}"),
            password: PASSWORD.to_string(),
        }
    }

    /// An attacker's guesses: wrong passwords for `count` made-up usernames,
    /// every one of which costs the server a (dummy) hash unless limited.
    pub fn guesses(count: usize, run_id: &str) -> Arc<[Credentials]> {
        (0..count)
            .map(|i| Credentials {
                username: format!("g{i}-{run_id}"),
                password: "wrong-Horse-battery-9-staple".to_string(),
            })
            .collect()
    }
}

#[derive(Serialize)]
struct RefreshRequest<'a> {
    refresh_token: &'a str,
}

/// The part of a TokenPair the load needs.
#[derive(Debug, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

impl TokenPair {
    fn parse(operation: &str, body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|err| format!("{operation}: bad TokenPair: {err}"))
    }
}

/// Where Tessera listens; [`Api::connect`] gives one connection to it.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub addr: SocketAddr,
}

impl Api {
    pub fn connect(&self) -> Client {
        Client(http::Client::new(self.addr))
    }
}

/// Tessera's operations over one keep-alive connection.
pub struct Client(http::Client);

impl Client {
    pub async fn signup(&mut self, user: &Credentials) -> Outcome {
        let response = self.0.post_json(SIGNUP, user).await;
        let response = response.map_err(|err| format!("signup: {err}"))?;
        response.success_body("signup").map(served)
    }

    /// A sign-in whose tokens are not needed: the body is not parsed.
    async fn signin(&mut self, user: &Credentials) -> Outcome {
        let response = self.0.post_json(SIGNIN, user).await;
        let response = response.map_err(|err| format!("signin: {err}"))?;
        response.success_body("signin").map(served)
    }

    async fn signin_tokens(&mut self, user: &Credentials) -> Result<TokenPair, String> {
        let response = self.0.post_json(SIGNIN, user).await;
        let response = response.map_err(|err| format!("signin: {err}"))?;
        TokenPair::parse("signin", &response.success_body("signin")?)
    }

    /// A sign-in that may be turned away: 503 (hashing overloaded) or 429
    /// (the client's sign-in budget spent) with `Retry-After` is
    /// [`Answer::Shed`], and so is 401 when `guessing`.
    async fn signin_or_shed(&mut self, user: &Credentials, guessing: bool) -> Outcome {
        let response = self.0.post_json(SIGNIN, user).await;
        let response = response.map_err(|err| format!("signin: {err}"))?;
        match response.status {
            503 | 429 => match response.header("retry-after") {
                Some(_) => Ok(Answer::Shed),
                None => Err(format!(
                    "signin: HTTP {} without Retry-After",
                    response.status
                )),
            },
            401 if guessing => Ok(Answer::Shed),
            _ => response.success_body("signin").map(served),
        }
    }

    async fn refresh(&mut self, refresh_token: &str) -> Result<TokenPair, String> {
        refresh(&mut self.0, REFRESH, refresh_token).await
    }

    async fn me(&mut self, access_token: &str) -> Outcome {
        let response = self.0.get(ME, Some(access_token)).await;
        let response = response.map_err(|err| format!("me: {err}"))?;
        response.success_body("me").map(served)
    }

    fn reconnects(&self) -> u64 {
        self.0.reconnects()
    }
}

/// A refresh as the load sends it: `{"refresh_token": …}` to `path`, the
/// answer read as a TokenPair. The `framework-post` baseline sends its own
/// through this too, so both pay the same client cost per request.
pub async fn refresh(
    client: &mut http::Client,
    path: &str,
    refresh_token: &str,
) -> Result<TokenPair, String> {
    let body = RefreshRequest { refresh_token };
    let response = client.post_json(path, &body).await;
    let response = response.map_err(|err| format!("refresh: {err}"))?;
    TokenPair::parse("refresh", &response.success_body("refresh")?)
}

/// One refresh chain: a signed-in session whose latest tokens are kept.
#[derive(Debug, Clone)]
pub struct Session {
    user: Credentials,
    pub access_token: String,
    refresh_token: String,
}

impl Session {
    async fn start(client: &mut Client, user: Credentials) -> Result<Self, String> {
        let pair = client.signin_tokens(&user).await?;
        Ok(Session {
            user,
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
        })
    }

    /// Rotates the chain's refresh token. When a refresh fails the old token
    /// is dead (or the session revoked), so the chain signs in again: one
    /// failure then shows as one error, not as an error on every later request.
    async fn refresh(&mut self, client: &mut Client) -> Outcome {
        match client.refresh(&self.refresh_token).await {
            Ok(pair) => {
                self.access_token = pair.access_token;
                self.refresh_token = pair.refresh_token;
                Ok(Answer::Served)
            }
            Err(err) => {
                if let Ok(fresh) = Session::start(client, self.user.clone()).await {
                    *self = fresh;
                }
                Err(err)
            }
        }
    }
}

/// Users and sessions made before the load starts.
pub struct Fixture {
    pub users: Arc<[Credentials]>,
    /// One session per seeded user; `me` connections share their access tokens.
    pub me_sessions: Vec<Session>,
    pub refresh_sessions: Vec<Session>,
    pub mixed_sessions: Vec<Session>,
    /// One session per user of their own ([`Credentials::introspected`]),
    /// never refreshed: `introspect-access` reads their access tokens,
    /// `introspect-refresh` their refresh tokens.
    pub introspect_sessions: Vec<Session>,
}

/// The kind of token an introspection scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl Fixture {
    /// The introspection sessions' `token=…` form bodies of one kind.
    pub fn introspect_bodies(&self, kind: TokenKind) -> Arc<[Bytes]> {
        self.introspect_sessions
            .iter()
            .map(|session| {
                let token = match kind {
                    TokenKind::Access => &session.access_token,
                    TokenKind::Refresh => &session.refresh_token,
                };
                Bytes::from(format!("token={}", http::form_value(token)))
            })
            .collect()
    }
}

/// How many sessions each selected scenario needs.
pub struct SeedPlan {
    pub me_sessions: usize,
    pub refresh_sessions: usize,
    pub mixed_sessions: usize,
    /// Also how many users of their own are signed up for them.
    pub introspect_sessions: usize,
}

/// Signs up the seeded users (and the introspection scenarios' own), then
/// signs in every session the plan asks for (each on a connection of its own).
pub async fn seed(api: Api, run_id: &str, plan: &SeedPlan) -> Result<Fixture, String> {
    let users: Arc<[Credentials]> = (0..SEED_USERS)
        .map(|i| Credentials::seeded(i, run_id))
        .collect();
    let introspected: Arc<[Credentials]> = (0..plan.introspect_sessions)
        .map(|i| Credentials::introspected(i, run_id))
        .collect();
    let everyone: Arc<[Credentials]> = users.iter().chain(introspected.iter()).cloned().collect();
    concurrently(everyone.len(), move |i| {
        let user = everyone[i].clone();
        async move { api.connect().signup(&user).await }
    })
    .await
    .map_err(|err| format!("seeding users: {err}"))?;

    // `count` sessions, the `i`-th of `users[i % users.len()]`.
    let sessions = |users: &Arc<[Credentials]>, count: usize| {
        let users = Arc::clone(users);
        async move {
            concurrently(count, move |i| {
                let user = users[i % users.len()].clone();
                async move { Session::start(&mut api.connect(), user).await }
            })
            .await
            .map_err(|err| format!("seeding sessions: {err}"))
        }
    };
    Ok(Fixture {
        me_sessions: sessions(&users, plan.me_sessions).await?,
        refresh_sessions: sessions(&users, plan.refresh_sessions).await?,
        mixed_sessions: sessions(&users, plan.mixed_sessions).await?,
        introspect_sessions: sessions(&introspected, plan.introspect_sessions).await?,
        users,
    })
}

/// Runs `task(0..count)` with at most [`SEED_CONCURRENCY`] in flight; results
/// in index order, or the first error.
async fn concurrently<T, F, Fut>(count: usize, task: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(SEED_CONCURRENCY));
    let mut running = JoinSet::new();
    for i in 0..count {
        let (slots, work) = (Arc::clone(&slots), task(i));
        running.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            (i, work.await)
        });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        let (i, result) = joined.map_err(|err| err.to_string())?;
        results[i] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

/// `me` (and `flood`'s readers): `GET /v1/me` with a seeded session's token.
pub fn me_connection(api: Api, session: &Session) -> BearerGet {
    BearerGet::new(api.addr, ME, &session.access_token)
}

/// `introspect-access` / `introspect-refresh`: `POST /oauth/introspect` as a
/// resource server would, cycling over the seeded tokens of one kind from
/// its own place in them. Only a 200 saying `"active":true` is a success.
pub struct IntrospectConnection {
    client: http::Client,
    request: Prepared,
    bodies: Arc<[Bytes]>,
    next: usize,
}

impl IntrospectConnection {
    pub fn new(api: Api, bodies: Arc<[Bytes]>, index: usize) -> Self {
        let client = http::Client::new(api.addr);
        let request = client
            .prepare_form(
                INTROSPECT,
                INTROSPECTION_CLIENT_ID,
                INTROSPECTION_CLIENT_SECRET,
            )
            .expect("a fixed path and fixed credentials form a valid request");
        IntrospectConnection {
            client,
            request,
            bodies,
            next: index,
        }
    }
}

impl Connection for IntrospectConnection {
    async fn request(&mut self) -> Outcome {
        let body = self.bodies[self.next % self.bodies.len()].clone();
        self.next += 1;
        let response = self.client.send(&self.request, body).await;
        let response = response.map_err(|err| format!("introspect: {err}"))?;
        let status = response.status;
        let body = response.success_body("introspect")?;
        if status != 200 {
            Err(format!("introspect: HTTP {status}"))
        } else if !says_active(&body) {
            Err("introspect: not active".to_string())
        } else {
            Ok(Answer::Served)
        }
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

/// Whether an introspection answer says `"active":true` (its first field).
fn says_active(body: &[u8]) -> bool {
    const ACTIVE: &[u8] = br#""active":true"#;
    body.windows(ACTIVE.len()).any(|window| window == ACTIVE)
}

/// `signin`: signs the seeded users in, one after another, with the right password.
pub struct SigninConnection {
    client: Client,
    users: Arc<[Credentials]>,
    next: usize,
    /// `flood`: being turned away is an expected answer, not an error.
    may_shed: bool,
    /// `flood --flood-guesses`: the passwords are wrong.
    guessing: bool,
}

impl SigninConnection {
    pub fn new(api: Api, users: Arc<[Credentials]>, index: usize) -> Self {
        SigninConnection {
            client: api.connect(),
            users,
            next: index,
            may_shed: false,
            guessing: false,
        }
    }

    /// For `flood`: sign-ins far past the hashing queue, most of them turned
    /// away; `guessing`: with wrong passwords.
    pub fn flood(api: Api, users: Arc<[Credentials]>, index: usize, guessing: bool) -> Self {
        SigninConnection {
            may_shed: true,
            guessing,
            ..SigninConnection::new(api, users, index)
        }
    }
}

impl Connection for SigninConnection {
    async fn request(&mut self) -> Outcome {
        let user = &self.users[self.next % self.users.len()];
        self.next += 1;
        if self.may_shed {
            self.client.signin_or_shed(user, self.guessing).await
        } else {
            self.client.signin(user).await
        }
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

/// `refresh`: rotates its own session's refresh token, again and again.
pub struct RefreshConnection {
    client: Client,
    session: Session,
}

impl RefreshConnection {
    pub fn new(api: Api, session: Session) -> Self {
        RefreshConnection {
            client: api.connect(),
            session,
        }
    }
}

impl Connection for RefreshConnection {
    async fn request(&mut self) -> Outcome {
        self.session.refresh(&mut self.client).await
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

/// `signup`: creates a new user per request.
pub struct SignupConnection {
    client: Client,
    index: usize,
    counter: u64,
    run_id: Arc<str>,
}

impl SignupConnection {
    pub fn new(api: Api, index: usize, run_id: Arc<str>) -> Self {
        SignupConnection {
            client: api.connect(),
            index,
            counter: 0,
            run_id,
        }
    }
}

impl Connection for SignupConnection {
    async fn request(&mut self) -> Outcome {
        self.counter += 1;
        // `b<conn>-<counter>-<run id>`: unique, and within the 32-character limit.
        let user = Credentials {
            username: format!("b{}-{}-{}", self.index, self.counter, self.run_id),
            password: PASSWORD.to_string(),
        };
        self.client.signup(&user).await
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

/// `mixed`: per request, 90% `me`, 8% refresh of its own chain, 2% sign-in,
/// roughly what an app's traffic looks like once users are signed in.
pub struct MixedConnection {
    client: Client,
    session: Session,
    users: Arc<[Credentials]>,
    next_user: usize,
    dice: SmallRng,
}

impl MixedConnection {
    pub fn new(api: Api, session: Session, users: Arc<[Credentials]>, index: usize) -> Self {
        MixedConnection {
            client: api.connect(),
            session,
            users,
            next_user: index,
            // Seeded per connection so runs draw the same sequence.
            dice: SmallRng::seed_from_u64(index as u64),
        }
    }
}

impl Connection for MixedConnection {
    async fn request(&mut self) -> Outcome {
        match self.dice.random_range(0..100) {
            0..90 => self.client.me(&self.session.access_token).await,
            90..98 => self.session.refresh(&mut self.client).await,
            _ => {
                let user = &self.users[self.next_user % self.users.len()];
                self.next_user += 1;
                self.client.signin(user).await
            }
        }
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_introspection_secret_is_one_the_server_accepts() {
        // `introspection.clients`: ids `[A-Za-z0-9._-]{1,64}`, secrets `[A-Za-z0-9._~-]{32,}`.
        let id = INTROSPECTION_CLIENT_ID;
        assert!((1..=64).contains(&id.len()));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        let secret = INTROSPECTION_CLIENT_SECRET;
        assert_eq!(secret.len(), 40);
        assert!(
            secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        );
    }

    #[test]
    fn only_active_answers_are_active() {
        assert!(says_active(br#"{"active":true,"sub":"x"}"#));
        assert!(!says_active(br#"{"active":false}"#));
        assert!(!says_active(b""));
    }

    #[test]
    fn introspected_users_are_not_the_seeded_ones() {
        let seeded: Vec<_> = (0..SEED_USERS)
            .map(|i| Credentials::seeded(i, "0123abcd").username)
            .collect();
        for i in 0..SEED_USERS {
            let username = Credentials::introspected(i, "0123abcd").username;
            assert!(!seeded.contains(&username));
            assert!(username.len() <= 32);
        }
    }
}
