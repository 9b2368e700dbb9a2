//! Tessera's side: its HTTP API, the seeded users and sessions, and one
//! [`Connection`] type per scenario.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::{self, BearerGet};
use crate::load::{Answer, Connection, Outcome, served};

/// Strong enough for Tessera's policy (scores 98) and contains no username.
pub const PASSWORD: &str = "correct-Horse-battery-9-staple";
/// Users signed up before the load; sign-ins cycle over them.
pub const SEED_USERS: usize = 16;
/// Sign-ins and sign-ups in flight at once while seeding: enough to use both
/// cores' hashing slots, well under Tessera's hashing queue (64).
const SEED_CONCURRENCY: usize = 8;

const SIGNUP: &str = "/v1/auth/signup";
const SIGNIN: &str = "/v1/auth/signin";
const REFRESH: &str = "/v1/auth/refresh";
pub const ME: &str = "/v1/me";

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
struct TokenPair {
    access_token: String,
    refresh_token: String,
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
        let body = RefreshRequest { refresh_token };
        let response = self.0.post_json(REFRESH, &body).await;
        let response = response.map_err(|err| format!("refresh: {err}"))?;
        TokenPair::parse("refresh", &response.success_body("refresh")?)
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
}

/// How many sessions each selected scenario needs.
pub struct SeedPlan {
    pub me_sessions: usize,
    pub refresh_sessions: usize,
    pub mixed_sessions: usize,
}

/// Signs up the seeded users, then signs in every session the plan asks for
/// (each on a connection of its own).
pub async fn seed(api: Api, run_id: &str, plan: &SeedPlan) -> Result<Fixture, String> {
    let users: Arc<[Credentials]> = (0..SEED_USERS)
        .map(|i| Credentials::seeded(i, run_id))
        .collect();
    concurrently(users.len(), {
        let users = Arc::clone(&users);
        move |i| {
            let user = users[i].clone();
            async move { api.connect().signup(&user).await }
        }
    })
    .await
    .map_err(|err| format!("seeding users: {err}"))?;

    let sessions = |count: usize| {
        let users = Arc::clone(&users);
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
        me_sessions: sessions(plan.me_sessions).await?,
        refresh_sessions: sessions(plan.refresh_sessions).await?,
        mixed_sessions: sessions(plan.mixed_sessions).await?,
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
