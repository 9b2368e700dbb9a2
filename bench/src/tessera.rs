//! Tessera's side: its HTTP API, the seeded users and sessions, and one
//! [`Connection`] type per scenario.

use std::future::Future;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, Url};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::{bearer, connection_client, expect_success};
use crate::load::{Connection, Outcome};

/// Strong enough for Tessera's policy (scores 98) and contains no username.
pub const PASSWORD: &str = "correct-Horse-battery-9-staple";
/// Users signed up before the load; sign-ins cycle over them.
pub const SEED_USERS: usize = 16;
/// Sign-ins and sign-ups in flight at once while seeding: enough to use both
/// cores' hashing slots, well under Tessera's hashing queue (64).
const SEED_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
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
}

/// The part of a TokenPair the load needs.
#[derive(Debug, Deserialize)]
struct TokenPair {
    access_token: String,
    refresh_token: String,
}

/// Tessera's endpoints over one client; URLs parsed once, not per request.
#[derive(Clone)]
pub struct Api {
    client: Client,
    signup: Url,
    signin: Url,
    refresh: Url,
    me: Url,
}

impl Api {
    pub fn new(base: &Url, client: Client) -> Self {
        let at = |path: &str| base.join(path).expect("static paths join onto a base URL");
        Api {
            client,
            signup: at("/v1/auth/signup"),
            signin: at("/v1/auth/signin"),
            refresh: at("/v1/auth/refresh"),
            me: at("/v1/me"),
        }
    }

    /// The same API over a fresh single-connection client, for one load task.
    fn for_connection(&self) -> Self {
        Api {
            client: connection_client(),
            ..self.clone()
        }
    }

    pub fn me_url(&self) -> Url {
        self.me.clone()
    }

    pub async fn signup(&self, user: &Credentials) -> Outcome {
        let body = json!({ "username": user.username, "password": user.password });
        let response = self
            .client
            .post(self.signup.clone())
            .json(&body)
            .send()
            .await;
        expect_success("signup", response).await.map(drop)
    }

    async fn signin(&self, user: &Credentials) -> Result<TokenPair, String> {
        let body = json!({ "username": user.username, "password": user.password });
        let response = self
            .client
            .post(self.signin.clone())
            .json(&body)
            .send()
            .await;
        let body = expect_success("signin", response).await?;
        serde_json::from_slice(&body).map_err(|err| format!("signin: bad TokenPair: {err}"))
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, String> {
        let body = json!({ "refresh_token": refresh_token });
        let response = self
            .client
            .post(self.refresh.clone())
            .json(&body)
            .send()
            .await;
        let body = expect_success("refresh", response).await?;
        serde_json::from_slice(&body).map_err(|err| format!("refresh: bad TokenPair: {err}"))
    }

    async fn me(&self, authorization: &HeaderValue) -> Outcome {
        let response = self
            .client
            .get(self.me.clone())
            .header(AUTHORIZATION, authorization.clone())
            .send()
            .await;
        expect_success("me", response).await.map(drop)
    }
}

/// One refresh chain: a signed-in session whose latest tokens are kept.
#[derive(Debug, Clone)]
pub struct Session {
    user: Credentials,
    authorization: HeaderValue,
    refresh_token: String,
}

impl Session {
    async fn start(api: &Api, user: Credentials) -> Result<Self, String> {
        let pair = api.signin(&user).await?;
        Ok(Session {
            user,
            authorization: bearer(&pair.access_token),
            refresh_token: pair.refresh_token,
        })
    }

    pub fn authorization(&self) -> HeaderValue {
        self.authorization.clone()
    }

    /// Rotates the chain's refresh token. When a refresh fails the old token
    /// is dead (or the session revoked), so the chain signs in again: one
    /// failure then shows as one error, not as an error on every later request.
    async fn refresh(&mut self, api: &Api) -> Outcome {
        match api.refresh(&self.refresh_token).await {
            Ok(pair) => {
                self.authorization = bearer(&pair.access_token);
                self.refresh_token = pair.refresh_token;
                Ok(())
            }
            Err(err) => {
                if let Ok(fresh) = Session::start(api, self.user.clone()).await {
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

/// Signs up the seeded users, then signs in every session the plan asks for.
pub async fn seed(api: &Api, run_id: &str, plan: &SeedPlan) -> Result<Fixture, String> {
    let users: Arc<[Credentials]> = (0..SEED_USERS)
        .map(|i| Credentials::seeded(i, run_id))
        .collect();
    concurrently(users.len(), {
        let (api, users) = (api.clone(), Arc::clone(&users));
        move |i| {
            let (api, users) = (api.clone(), Arc::clone(&users));
            async move { api.signup(&users[i]).await }
        }
    })
    .await
    .map_err(|err| format!("seeding users: {err}"))?;

    let sessions = |count: usize| {
        let (api, users) = (api.clone(), Arc::clone(&users));
        async move {
            concurrently(count, move |i| {
                let api = api.clone();
                let user = users[i % users.len()].clone();
                async move { Session::start(&api, user).await }
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

/// `signin`: signs the seeded users in, one after another, with the right password.
pub struct SigninConnection {
    api: Api,
    users: Arc<[Credentials]>,
    next: usize,
}

impl SigninConnection {
    pub fn new(api: &Api, users: Arc<[Credentials]>, index: usize) -> Self {
        SigninConnection {
            api: api.for_connection(),
            users,
            next: index,
        }
    }
}

impl Connection for SigninConnection {
    async fn request(&mut self) -> Outcome {
        let user = &self.users[self.next % self.users.len()];
        self.next += 1;
        self.api.signin(user).await.map(drop)
    }
}

/// `refresh`: rotates its own session's refresh token, again and again.
pub struct RefreshConnection {
    api: Api,
    session: Session,
}

impl RefreshConnection {
    pub fn new(api: &Api, session: Session) -> Self {
        RefreshConnection {
            api: api.for_connection(),
            session,
        }
    }
}

impl Connection for RefreshConnection {
    async fn request(&mut self) -> Outcome {
        self.session.refresh(&self.api).await
    }
}

/// `signup`: creates a new user per request.
pub struct SignupConnection {
    api: Api,
    index: usize,
    counter: u64,
    run_id: Arc<str>,
}

impl SignupConnection {
    pub fn new(api: &Api, index: usize, run_id: Arc<str>) -> Self {
        SignupConnection {
            api: api.for_connection(),
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
        self.api.signup(&user).await
    }
}

/// `mixed`: per request, 90% `me`, 8% refresh of its own chain, 2% sign-in,
/// roughly what an app's traffic looks like once users are signed in.
pub struct MixedConnection {
    api: Api,
    session: Session,
    users: Arc<[Credentials]>,
    next_user: usize,
    dice: SmallRng,
}

impl MixedConnection {
    pub fn new(api: &Api, session: Session, users: Arc<[Credentials]>, index: usize) -> Self {
        MixedConnection {
            api: api.for_connection(),
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
            0..90 => self.api.me(&self.session.authorization).await,
            90..98 => self.session.refresh(&self.api).await,
            _ => {
                let user = &self.users[self.next_user % self.users.len()];
                self.next_user += 1;
                self.api.signin(user).await.map(drop)
            }
        }
    }
}
