//! The one place tests start Tessera: the real server on port 0 with its own
//! SQLite file or PostgreSQL database and its own Redis key prefix, dropped
//! again when the test ends.

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod redis_servers;

use std::{net::SocketAddr, time::Duration};

use reqwest::{Client, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tessera::{app::App, clock::Clock, flows::Stores, settings::Settings};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const STRONG_PASSWORD: &str = "correct-Horse-battery-9-staple";
/// Another password that passes the policy, for changes and resets.
pub const NEW_PASSWORD: &str = "quiet-Lantern-river-7-orchard";

/// A sign-in or refresh response body.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
}

/// Where a test server keeps its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the suite creates its databases in.
fn postgres_base_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis server the suite shares, each test under its own prefix.
pub fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The Prometheus listener (`metrics.bind`), when there is one.
    pub metrics_addr: Option<SocketAddr>,
    /// The admin API's own listener (`admin.bind`), when it has one.
    pub admin_addr: Option<SocketAddr>,
    pub client: Client,
    pub database_url: String,
    pub key_prefix: String,
    /// The settings the server runs with.
    pub settings: Settings,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    storage: Storage,
}

enum Storage {
    Sqlite(#[allow(unused)] tempfile::TempDir),
    Postgres {
        name: String,
    },
    /// Another test server's database and Redis prefix: that server cleans up.
    Shared,
}

/// Builder for a test server: `TestApp::spawn()` or
/// `TestApp::with(Backend::Postgres).set("session.idle_timeout_secs", "2").start()`.
pub struct TestAppBuilder {
    backend: Backend,
    overrides: Vec<(String, String)>,
    shared: Option<(String, String)>,
    clock: Clock,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::with(Backend::Sqlite).start().await
    }

    pub fn with(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            overrides: Vec::new(),
            shared: None,
            clock: Clock::system(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request failed")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    pub async fn signup(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/signup",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn signin(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/signin",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Signs up a fresh user and signs in: the user's name and the token pair.
    pub async fn new_session(&self) -> (String, TokenPair) {
        let username = unique_username();
        let created = self.signup(&username, STRONG_PASSWORD).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let tokens = self.sign_in_ok(&username).await;
        (username, tokens)
    }

    /// Signs an existing user in (with [`STRONG_PASSWORD`]), expecting success.
    pub async fn sign_in_ok(&self, username: &str) -> TokenPair {
        self.sign_in_ok_with(username, STRONG_PASSWORD).await
    }

    /// Signs an existing user in with `password`, expecting success.
    pub async fn sign_in_ok_with(&self, username: &str, password: &str) -> TokenPair {
        let response = self.signin(username, password).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("token pair")
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/v1/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// `method path` with a bearer token (an access token, or an admin token).
    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_with_token(&self, path: &str, access_token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request failed")
    }

    /// Refreshes, expecting a new token pair (never cached).
    pub async fn refreshed(&self, refresh_token: &str) -> TokenPair {
        let response = self.refresh(refresh_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.expect("token pair")
    }

    /// Signing in with this password answers 401 `invalid_credentials`.
    pub async fn assert_signin_refused(&self, username: &str, password: &str) {
        assert_problem(
            self.signin(username, password).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }

    /// Refreshing with this token answers 401 `invalid_token`.
    pub async fn assert_refresh_rejected(&self, refresh_token: &str) {
        assert_problem(
            self.refresh(refresh_token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }

    pub async fn signout(&self, refresh_token: &str) -> Response {
        self.post_json("/v1/auth/signout", &json!({"refresh_token": refresh_token}))
            .await
    }

    pub async fn signout_all(&self, access_token: &str) -> Response {
        self.client
            .post(self.url("/v1/auth/signout-all"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request failed")
    }

    /// A JSON `POST` with a bearer token.
    pub async fn post_json_with_token(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request failed")
    }

    /// `changePassword` as the holder of `access_token`.
    pub async fn change_password(&self, access_token: &str, current: &str, new: &str) -> Response {
        self.post_json_with_token(
            "/v1/me/password",
            access_token,
            &json!({"current_password": current, "new_password": new}),
        )
        .await
    }

    /// `deleteAccount` as the holder of `access_token`.
    pub async fn delete_account(&self, access_token: &str, password: &str) -> Response {
        self.post_json_with_token(
            "/v1/me/delete",
            access_token,
            &json!({"password": password}),
        )
        .await
    }

    /// `resetPassword`.
    pub async fn reset_password(&self, reset_token: &str, new_password: &str) -> Response {
        self.post_json(
            "/v1/auth/password-reset",
            &json!({"reset_token": reset_token, "new_password": new_password}),
        )
        .await
    }

    /// A reset token for `username`, issued as `tessera users reset-password`
    /// issues it (the same flow), valid for `password.reset_ttl_secs`.
    pub async fn issue_reset(&self, username: &str) -> String {
        let user = tessera::users::UserRef::Name(
            tessera::domain::Username::parse(username).expect("a valid username"),
        );
        tessera::flows::issue_password_reset(
            &self.operator().await,
            &user,
            self.settings.password.reset_ttl,
            &tessera::audit::Acting::cli(),
        )
        .await
        .expect("issue a reset token")
        .token
        .expose()
        .to_owned()
    }

    /// `DELETE /v1/sessions/{id}`.
    /// A new admin token, created as `tessera admin-tokens create` creates
    /// it: its name and the token.
    pub async fn admin_token(&self, lifetime: Option<chrono::TimeDelta>) -> (String, String) {
        let name = format!("t-{}", &Uuid::now_v7().simple().to_string()[20..]);
        let created = self
            .operator()
            .await
            .admin_tokens
            .create(
                tessera::admin_tokens::AdminTokenName::parse(&name).unwrap(),
                lifetime,
                &tessera::audit::Acting::cli(),
            )
            .await
            .unwrap();
        (name, created.text.expose().to_owned())
    }

    pub async fn delete_session(&self, access_token: &str, id: impl std::fmt::Display) -> Response {
        self.client
            .delete(self.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request failed")
    }

    /// The Redis key of the session `tokens` belong to, prefix included
    /// (the user's id read from `/v1/me`).
    pub async fn session_key(&self, tokens: &TokenPair) -> String {
        let me: Value = self
            .get_with_token("/v1/me", &tokens.access_token)
            .await
            .json()
            .await
            .expect("a /v1/me body");
        let user = me["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a user id");
        let key = tessera::sessions::layout::Key::Session {
            user,
            session: tokens.session_id,
        };
        format!("{}{key}", self.key_prefix)
    }

    /// A direct connection to this test's database, to check what is stored.
    pub async fn database(&self) -> DatabaseConnection {
        Database::connect(&self.database_url)
            .await
            .expect("connect to test database")
    }

    /// The stores of this server's deployment, connected apart from the
    /// server, as the admin CLI or another instance connects them.
    pub async fn operator(&self) -> Stores {
        Stores::connect(&self.settings, Clock::system())
            .await
            .expect("connect the operator's stores")
    }

    /// Stops the server (as SIGTERM would) and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl TestAppBuilder {
    /// Overrides one setting by its `section.key` path.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Overrides several settings, as [`TestAppBuilder::set`] does one.
    pub fn set_all(self, overrides: &[(&str, &str)]) -> Self {
        overrides
            .iter()
            .fold(self, |builder, (key, value)| builder.set(key, value))
    }

    /// Reads its own time from `clock` (a host whose clock is off).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs on `other`'s database and Redis prefix: a second instance of the
    /// same deployment, as behind a load balancer.
    pub fn sharing_storage_of(mut self, other: &TestApp) -> Self {
        self.shared = Some((other.database_url.clone(), other.key_prefix.clone()));
        self
    }

    pub async fn start(self) -> TestApp {
        let key_prefix = fresh_key_prefix();
        let (database_url, key_prefix, storage) = match self.shared.clone() {
            Some((database_url, key_prefix)) => (database_url, key_prefix, Storage::Shared),
            None => {
                let (database_url, storage) = fresh_storage(self.backend).await;
                (database_url, key_prefix, storage)
            }
        };
        self.start_on(database_url, key_prefix, storage).await
    }

    /// Starts `count` instances at once on one fresh database and Redis
    /// prefix, as a deployment rolling out does.
    pub async fn start_together(self, count: usize) -> Vec<TestApp> {
        let key_prefix = fresh_key_prefix();
        let (database_url, storage) = fresh_storage(self.backend).await;
        let mut storages = vec![storage];
        storages.extend((1..count).map(|_| Storage::Shared));
        let starts = storages.into_iter().map(|storage| {
            let builder = TestAppBuilder {
                backend: self.backend,
                overrides: self.overrides.clone(),
                shared: None,
                clock: self.clock,
            };
            builder.start_on(database_url.clone(), key_prefix.clone(), storage)
        });
        futures::future::join_all(starts).await
    }

    async fn start_on(self, database_url: String, key_prefix: String, storage: Storage) -> TestApp {
        let mut overrides = vec![
            ("server.bind".to_string(), "127.0.0.1:0".to_string()),
            ("database.url".to_string(), database_url.clone()),
            ("redis.url".to_string(), redis_url()),
            ("redis.key_prefix".to_string(), key_prefix.clone()),
        ];
        overrides.extend(self.overrides);
        // Overrides go in as the `TESSERA__SECTION__KEY` variables an operator would set.
        let variables = overrides.into_iter().map(|(key, value)| {
            (
                format!("TESSERA__{}", key.replace('.', "__").to_uppercase()),
                value,
            )
        });
        let settings = Settings::load("test", variables).expect("test settings");
        let app = App::build_with_clock(settings.clone(), self.clock)
            .await
            .expect("build app");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let admin_addr = app.admin_addr();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        TestApp {
            addr,
            metrics_addr,
            admin_addr,
            client,
            database_url,
            key_prefix,
            settings,
            stop: Some(stop),
            server: Some(server),
            storage,
        }
    }
}

/// Managed Ed25519 keys rotating in seconds: a new key every 4 s, published
/// 2 s before it signs, the JWKS cacheable for 1 s, access tokens valid 4 s.
pub const FAST_KEY_ROTATION: [(&str, &str); 6] = [
    ("jwt.algorithm", "EdDSA"),
    ("jwt.keys", "managed"),
    ("jwt.rotation_days", "0.0000462963"),
    ("jwt.rotation_overlap_secs", "2"),
    ("jwt.jwks_max_age_secs", "1"),
    ("jwt.access_ttl_secs", "4"),
];

/// A Redis key prefix no other test server uses.
pub fn fresh_key_prefix() -> String {
    format!("tessera-test:{}:", Uuid::now_v7().simple())
}

/// The URL of a new SQLite file, and the temporary directory holding it
/// (removed when dropped).
pub fn sqlite_in_tempdir() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tessera.db").display()
    );
    (url, dir)
}

/// A new SQLite file or PostgreSQL database for one test server.
async fn fresh_storage(backend: Backend) -> (String, Storage) {
    match backend {
        Backend::Sqlite => {
            let (url, dir) = sqlite_in_tempdir();
            (url, Storage::Sqlite(dir))
        }
        Backend::Postgres => {
            let name = format!("tessera_test_{}", Uuid::now_v7().simple());
            admin_execute(&format!(r#"CREATE DATABASE "{name}""#)).await;
            (
                format!("{}/{name}", postgres_base_url()),
                Storage::Postgres { name },
            )
        }
    }
}

/// Runs one statement on the PostgreSQL maintenance database.
async fn admin_execute(sql: &str) {
    let admin = Database::connect(format!("{}/postgres", postgres_base_url()))
        .await
        .expect("connect to PostgreSQL");
    admin.execute_unprepared(sql).await.expect(sql);
    admin.close().await.ok();
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let database = match &self.storage {
            Storage::Postgres { name } => Some(name.clone()),
            Storage::Sqlite(_) => None,
            Storage::Shared => return,
        };
        let prefix = self.key_prefix.clone();
        // Drop runs inside the test's runtime, which cannot block on itself:
        // clean up from a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Some(name) = database {
                    admin_execute(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                        .await;
                }
                delete_redis_keys(&prefix).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// A connection to the tests' Redis, to look at or tamper with what is stored.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("the Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Every key under a test's prefix.
pub async fn redis_keys(prefix: &str) -> Vec<String> {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return Vec::new();
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Vec::new();
    };
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default()
}

/// Deletes every key under a test's prefix.
pub async fn delete_redis_keys(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if keys.is_empty() {
        return;
    }
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts a problem+json response of the given status and type code, and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(
        body["type"],
        format!("https://tessera.dev/problems/{code}"),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert_eq!(
        body.get("errors").is_some(),
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "{body}"
    );
    body
}

/// How many of `statuses` are `status`.
pub fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// A unique, valid username for tests that need a fresh account.
pub fn unique_username() -> String {
    format!("user-{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// Runs each named async test fn (taking a [`Backend`]) once on SQLite and
/// once on PostgreSQL, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// The `tessera` binary, run from the repository (where `config/` is).
pub fn tessera_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// `tessera serve` as its own OS process on port 0, with the given
/// `TESSERA__*` variables; killed when dropped.
pub struct TesseraProcess {
    child: std::process::Child,
    pub addr: String,
    /// The log line that said where it listens, as written.
    pub announced: String,
    /// Every later log line, as written.
    later: std::sync::mpsc::Receiver<String>,
}

/// The address in a `listening on http://ADDR` log line, text or JSON.
fn listening_addr(line: &str) -> Option<String> {
    const ANNOUNCEMENT: &str = "listening on http://";
    let message = match serde_json::from_str::<Value>(line) {
        Ok(object) => object["message"].as_str()?.to_owned(),
        Err(_) => line.to_owned(),
    };
    let at = message.find(ANNOUNCEMENT)?;
    Some(message[at + ANNOUNCEMENT.len()..].trim().to_owned())
}

impl TesseraProcess {
    pub fn spawn(variables: &[(&str, &str)]) -> TesseraProcess {
        use std::io::BufRead;
        let mut child = tessera_command()
            .env("TESSERA_ENV", "test")
            // The `test` filter (`warn`) and a pipe for stdout, as a script
            // that starts Tessera would have them.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
            .envs(variables.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tessera");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (announced, addr) = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let addr = listening_addr(&line)?;
                Some((line, addr))
            })
            .expect("a `listening on` line");
        // Keep reading the log so the process never blocks on a full pipe.
        let (send, later) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        TesseraProcess {
            child,
            addr,
            announced,
            later,
        }
    }

    /// The first later log line containing `text`, waiting up to 10 s.
    pub fn line_containing(&self, text: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.later.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status, which must come within 10 s.
    pub fn terminate(self) -> std::process::ExitStatus {
        let sent = self.send_sigterm();
        self.exit_status(sent)
    }

    /// Sends SIGTERM without waiting; returns when it went out.
    pub fn send_sigterm(&self) -> std::time::Instant {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        std::time::Instant::now()
    }

    /// Waits for the exit status, which must come within 10 s of `sigterm`
    /// (when [`TesseraProcess::send_sigterm`] sent it).
    pub fn exit_status(mut self, sigterm: std::time::Instant) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for tessera") {
                return status;
            }
            assert!(
                sigterm.elapsed() < Duration::from_secs(10),
                "no exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TesseraProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RFC 6238 code (SHA-1, 6 digits, 30 s) written here from the RFC, not
/// taken from the server: a base32 secret and a unix time in seconds.
pub fn totp_code(secret_base32: &str, unix_secs: i64) -> String {
    use hmac::{Hmac, Mac};
    let mut bits = 0u64;
    let mut count = 0;
    let mut key = Vec::new();
    for c in secret_base32.trim_end_matches('=').chars() {
        let value = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .find(c.to_ascii_uppercase())
            .expect("a base32 secret") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            key.push((bits >> count) as u8);
        }
    }
    let counter = (unix_secs.div_euclid(30) as u64).to_be_bytes();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&counter);
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let number = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", number % 1_000_000)
}

/// Takes a test's PostgreSQL database away from the running server by
/// renaming it to `{name}_away`. [`DatabaseAway::restore`] gives it back; if
/// the test fails first, dropping the guard does, so the test server's own
/// cleanup still finds the database to drop.
pub struct DatabaseAway {
    admin_url: String,
    name: String,
    away: bool,
}

impl DatabaseAway {
    pub async fn take(database_url: &str) -> DatabaseAway {
        let (base, name) = database_url.rsplit_once('/').expect("database url");
        let guard = DatabaseAway {
            admin_url: format!("{base}/postgres"),
            name: name.to_owned(),
            away: true,
        };
        rename_database(&guard.admin_url, name, &guard.away_name()).await;
        guard
    }

    pub async fn restore(&mut self) {
        if self.away {
            rename_database(&self.admin_url, &self.away_name(), &self.name).await;
            self.away = false;
        }
    }

    fn away_name(&self) -> String {
        format!("{}_away", self.name)
    }
}

impl Drop for DatabaseAway {
    fn drop(&mut self) {
        if !self.away {
            return;
        }
        let (admin_url, from, to) = (self.admin_url.clone(), self.away_name(), self.name.clone());
        // As in `TestApp`'s drop: the test's runtime cannot block on itself.
        let restore = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("restore runtime")
                .block_on(rename_database(&admin_url, &from, &to));
        });
        let _ = restore.join();
    }
}

/// Renames a database after disconnecting everyone using it; retried because
/// a connection pool may reconnect in between.
async fn rename_database(admin_url: &str, from: &str, to: &str) {
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to the maintenance database");
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{from}' AND pid <> pg_backend_pid()"
    );
    let rename = format!(r#"ALTER DATABASE "{from}" RENAME TO "{to}""#);
    for attempt in 1.. {
        admin
            .execute_unprepared(&terminate)
            .await
            .expect(&terminate);
        match admin.execute_unprepared(&rename).await {
            Ok(_) => break,
            Err(err) if attempt < 20 => {
                eprintln!("renaming {from}, attempt {attempt}: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{rename}: {err}"),
        }
    }
    admin.close().await.ok();
}
