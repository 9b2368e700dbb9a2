//! Typed, validated configuration: `config/default.toml`, overlaid by
//! `config/{TESSERA_ENV}.toml`, overlaid by `TESSERA__SECTION__KEY` variables.
//!
//! Everything is checked once here, at start-up; the rest of the server
//! takes these values as given.

use std::{
    fmt,
    net::SocketAddr,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;
use serde::Deserialize;

/// The JWT secret shipped in `config/default.toml`; `production` refuses it.
pub const DEVELOPMENT_JWT_SECRET: &str = "tessera-development-jwt-secret-not-for-production";
/// The refresh-token key shipped in `config/default.toml`; `production` refuses it.
pub const DEVELOPMENT_REFRESH_KEY: &str = "tessera-development-refresh-key-not-for-production";
pub const DEVELOPMENT_MFA_KEY: &str = "tessera-development-mfa-key-not-for-production";
pub const DEVELOPMENT_KEY_ENCRYPTION_KEY: &str =
    "tessera-development-key-encryption-key-not-for-production";
/// Secrets shorter than this are refused in `production` (256 bits).
const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

/// Which `config/{name}.toml` overlays the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    fn parse(name: &str) -> Result<Self, SettingsError> {
        match name {
            "development" => Ok(Environment::Development),
            "test" => Ok(Environment::Test),
            "production" => Ok(Environment::Production),
            other => Err(SettingsError::invalid(
                "TESSERA_ENV",
                format!("`{other}` is not one of development, test, production"),
            )),
        }
    }
}

/// A secret value: never printed, not even by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Secret(raw.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip, default = "default_environment")]
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub session: SessionSettings,
    pub jwt: JwtSettings,
    pub password: PasswordSettings,
    pub rate_limit: RateLimitSettings,
    pub mfa: MfaSettings,
    pub admin: AdminSettings,
    pub audit: AuditSettings,
    pub introspection: IntrospectionSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
}

fn default_environment() -> Environment {
    Environment::Development
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub body_limit_bytes: NonZeroUsize,
    /// In-flight requests get this long to finish after SIGTERM.
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "seconds")]
    pub shutdown_timeout: Duration,
    /// Connections with no activity for this long are closed.
    #[serde(rename = "idle_timeout_secs", deserialize_with = "seconds")]
    pub idle_timeout: Duration,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    #[serde(default, deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// Browser origins allowed by CORS; empty turns CORS off.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// Users `/v1/me` keeps in memory (dropped on every instance when one
    /// changes); `0` turns the cache off.
    pub user_cache_capacity: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: NonZeroU32,
    #[serde(rename = "connect_timeout_ms", deserialize_with = "millis")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port` for one server, `redis+cluster://host:port,host:port`
    /// for a Redis Cluster (the hosts are seed nodes).
    pub url: String,
    pub key_prefix: String,
    #[serde(rename = "command_timeout_ms", deserialize_with = "millis")]
    pub command_timeout: Duration,
}

/// Where Redis is, as `redis.url` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisEndpoint {
    Single(String),
    /// Seed node URLs of a Redis Cluster.
    Cluster(Vec<String>),
}

const CLUSTER_SCHEME: &str = "redis+cluster://";

impl RedisSettings {
    pub fn endpoint(&self) -> Result<RedisEndpoint, String> {
        let Some(rest) = self.url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(RedisEndpoint::Single(self.url.clone()));
        };
        // Credentials, when given once, apply to every node.
        let (credentials, hosts) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
            None => (String::new(), rest),
        };
        let nodes: Vec<String> = hosts
            .trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| format!("redis://{credentials}{host}"))
            .collect();
        if nodes.is_empty() {
            return Err(format!(
                "{CLUSTER_SCHEME} needs at least one host:port, e.g. {CLUSTER_SCHEME}10.0.0.1:6379,10.0.0.2:6379"
            ));
        }
        Ok(RedisEndpoint::Cluster(nodes))
    }
}

/// Prometheus metrics: on a listener of their own (keep it off the public
/// network), and/or on the main listener behind a bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address of the metrics listener; empty: no metrics listener.
    #[serde(deserialize_with = "empty_as_none")]
    pub bind: Option<SocketAddr>,
    /// When set, `/metrics` on the main listener answers to this bearer token.
    #[serde(deserialize_with = "empty_as_none")]
    pub token: Option<Secret>,
}

/// CIDR ranges, where a bare address means just that host.
fn networks<'de, D>(deserializer: D) -> Result<Vec<IpNet>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|raw| {
            let raw = raw.trim();
            raw.parse::<IpNet>()
                .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "`{raw}` is neither an IP address nor a CIDR range"
                    ))
                })
        })
        .collect()
}

/// An optional value that environment variables and TOML can both leave empty.
fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let raw = String::deserialize(deserializer)?;
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(serde::de::Error::custom)
}

/// A count where `0` means "choose for me".
fn zero_as_none<'de, D>(deserializer: D) -> Result<Option<NonZeroUsize>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(NonZeroUsize::new(usize::deserialize(deserializer)?))
}

/// Days, decimals allowed, `0` meaning never.
fn decimal_days_or_never<'de, D>(deserializer: D) -> Result<Option<Duration>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let days = f64::deserialize(deserializer)?;
    if !days.is_finite() || days < 0.0 {
        return Err(D::Error::custom("a number of days, 0 or more"));
    }
    Ok((days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0)))
}

/// Whole days, `0` meaning no limit.
fn days_or_forever<'de, D>(deserializer: D) -> Result<Option<Duration>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    const DAY: u64 = 24 * 60 * 60;
    let days = u64::deserialize(deserializer)?;
    Ok((days > 0).then(|| Duration::from_secs(days.saturating_mul(DAY))))
}

/// A `…_SECS` value: whole or decimal seconds (`0.25` is a quarter of a
/// second, which tests use for short windows), greater than zero.
fn seconds<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    positive(seconds_or_zero(deserializer)?)
}

/// A `…_SECS` value that may be `0` (a window that is off).
fn seconds_or_zero<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let seconds = deserializer.deserialize_any(NumberVisitor)?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| serde::de::Error::custom(format!("`{seconds}` is not a number of seconds")))
}

/// A `…_MS` value: whole milliseconds, greater than zero.
fn millis<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let millis = deserializer.deserialize_any(NumberVisitor)?;
    if millis.fract() != 0.0 || !(0.0..=u64::MAX as f64).contains(&millis) {
        return Err(serde::de::Error::custom(format!(
            "`{millis}` is not a whole number of milliseconds"
        )));
    }
    positive(Duration::from_millis(millis as u64))
}

/// Redis and the timers work in milliseconds: anything shorter would be 0.
fn positive<E: serde::de::Error>(duration: Duration) -> Result<Duration, E> {
    if duration < Duration::from_millis(1) {
        return Err(E::custom("must be at least 1 ms (0.001 s)"));
    }
    Ok(duration)
}

/// A number as TOML or an environment variable gives it.
struct NumberVisitor;

impl serde::de::Visitor<'_> for NumberVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, such as 60 or 0.5")
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<f64, E> {
        Ok(value)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<f64, E> {
        value
            .trim()
            .parse()
            .map_err(|_| E::custom(format!("`{value}` is not a number")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    #[serde(rename = "idle_timeout_secs", deserialize_with = "seconds")]
    pub idle_timeout: Duration,
    #[serde(rename = "absolute_lifetime_secs", deserialize_with = "seconds")]
    pub absolute_lifetime: Duration,
    /// `0` turns the grace window off.
    #[serde(rename = "reuse_grace_secs", deserialize_with = "seconds_or_zero")]
    pub reuse_grace: Duration,
    pub check_on_access: bool,
    pub cookie_secure: bool,
    /// Key that refresh tokens are derived from (HMAC-SHA256).
    pub refresh_token_key: Secret,
    /// Keys that still verify refresh tokens during a rotation.
    #[serde(default)]
    pub previous_refresh_token_keys: Vec<Secret>,
    /// Live sessions per user; a sign-in beyond it evicts the least recently used.
    pub max_per_user: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    EdDSA,
}

/// Where signing keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JwtKeys {
    /// The HS256 secret or the Ed25519 key files of the configuration.
    Configured,
    /// Ed25519 keys Tessera generates, seals in the database and rotates.
    Managed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub algorithm: JwtAlgorithm,
    pub secret: Secret,
    /// HS256 secrets that still verify tokens during a rotation.
    #[serde(default)]
    pub previous_secrets: Vec<Secret>,
    /// PKCS#8 PEM file with the Ed25519 signing key (EdDSA only).
    #[serde(default)]
    pub ed25519_private_key_path: Option<PathBuf>,
    /// PKCS#8 PEM files of retired Ed25519 keys that still verify (EdDSA only).
    #[serde(default)]
    pub previous_ed25519_private_key_paths: Vec<PathBuf>,
    pub issuer: String,
    pub audience: String,
    #[serde(rename = "access_ttl_secs", deserialize_with = "seconds")]
    pub access_ttl: Duration,
    /// Whole seconds: what JWT validation works in.
    pub leeway_secs: u64,
    pub keys: JwtKeys,
    /// Seals managed signing keys in the database.
    pub key_encryption_key: Secret,
    /// Retired key-encryption keys that still open.
    #[serde(default)]
    pub previous_key_encryption_keys: Vec<Secret>,
    /// How often managed keys rotate; `0` (`None`): only by hand. Decimal
    /// days are taken (tests rotate in seconds).
    #[serde(rename = "rotation_days", deserialize_with = "decimal_days_or_never")]
    pub rotation: Option<Duration>,
    /// How long a new managed key is published before it signs.
    #[serde(rename = "rotation_overlap_secs", deserialize_with = "seconds")]
    pub rotation_overlap: Duration,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub min_score: u8,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashes computed at once; `0` (`None`) means one per CPU core.
    #[serde(deserialize_with = "zero_as_none")]
    pub hashing_workers: Option<NonZeroUsize>,
    /// Requests that may wait for a hashing slot before the server sheds load.
    pub hashing_queue: usize,
    /// How long an operator-issued reset token stays valid.
    #[serde(rename = "reset_ttl_secs", deserialize_with = "seconds")]
    pub reset_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Failed sign-ins allowed per username and client IP per window.
    pub signin_failures: NonZeroU64,
    /// Failed sign-ins allowed per client IP, across all usernames, per window.
    pub signin_failures_per_ip: NonZeroU64,
    #[serde(rename = "signin_window_secs", deserialize_with = "seconds")]
    pub signin_window: Duration,
    /// Sign-ups (that reach password hashing) allowed per client IP per window.
    pub signups_per_ip: NonZeroU64,
    #[serde(rename = "signup_window_secs", deserialize_with = "seconds")]
    pub signup_window: Duration,
    /// Refreshes allowed per session per window.
    pub refreshes_per_session: NonZeroU64,
    #[serde(rename = "refresh_window_secs", deserialize_with = "seconds")]
    pub refresh_window: Duration,
    /// Wrong second-factor codes per user (whatever the client) per window.
    pub mfa_failures: NonZeroU64,
    #[serde(rename = "mfa_window_secs", deserialize_with = "seconds")]
    pub mfa_window: Duration,
    /// Wrong codes in a row, with no right one between, that lock the factor.
    pub mfa_max_consecutive_failures: NonZeroU32,
    /// Password-reset attempts (spending a reset token) per client IP per window.
    pub password_resets_per_ip: NonZeroU64,
    #[serde(rename = "password_reset_window_secs", deserialize_with = "seconds")]
    pub password_reset_window: Duration,
    /// Per-IP limits count IPv6 clients by this prefix (one host holds a /64).
    pub ipv6_prefix: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// `false`: every `/v1/admin` path is 404.
    pub enabled: bool,
    /// When set, the admin API is served only on this listener of its own
    /// (logged as `admin on http://ADDR`), never on the public one.
    #[serde(deserialize_with = "empty_as_none")]
    pub bind: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// The resource servers that may call `POST /oauth/introspect`, as
    /// `id:secret`; none: it answers 401 to everyone.
    #[serde(default, deserialize_with = "introspection_clients")]
    pub clients: Vec<IntrospectionClient>,
}

/// A resource server's HTTP Basic credentials for introspection.
#[derive(Debug, Clone)]
pub struct IntrospectionClient {
    /// `[A-Za-z0-9._-]{1,64}`.
    pub id: String,
    /// `[A-Za-z0-9._~-]{32,}`: urlencoding leaves it as it is.
    pub secret: Secret,
}

fn introspection_clients<'de, D>(deserializer: D) -> Result<Vec<IntrospectionClient>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    const MIN_SECRET_CHARS: usize = 32;
    let entries = Vec::<String>::deserialize(deserializer)?;
    let mut clients: Vec<IntrospectionClient> = Vec::new();
    for entry in entries.iter().filter(|entry| !entry.is_empty()) {
        let (id, secret) = entry
            .split_once(':')
            .ok_or_else(|| D::Error::custom("each client is `id:secret`"))?;
        let id_ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(D::Error::custom(
                "a client id is 1-64 characters of `A-Z`, `a-z`, `0-9`, `.`, `_` and `-`",
            ));
        }
        let secret_ok = secret.len() >= MIN_SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
        if !secret_ok {
            // Never the secret itself in the message.
            return Err(D::Error::custom(format!(
                "the secret of client `{id}` must be at least {MIN_SECRET_CHARS} characters of `A-Z`, `a-z`, `0-9`, `.`, `_`, `~` and `-`"
            )));
        }
        if clients.iter().any(|client| client.id == id) {
            return Err(D::Error::custom(format!("client `{id}` is listed twice")));
        }
        clients.push(IntrospectionClient {
            id: id.to_owned(),
            secret: Secret(secret.to_owned()),
        });
    }
    Ok(clients)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Events older than this are pruned; `0` (`None`) keeps them forever.
    #[serde(rename = "retention_days", deserialize_with = "days_or_forever")]
    pub retention: Option<Duration>,
    /// How often each instance looks for events past retention.
    #[serde(rename = "prune_interval_secs", deserialize_with = "seconds")]
    pub prune_interval: Duration,
    /// Events of Redis-only changes that may wait for a database that is
    /// down; past it they are dropped and counted.
    pub queue_capacity: NonZeroUsize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSettings {
    /// Seals TOTP secrets and keys recovery-code hashes.
    pub encryption_key: Secret,
    /// Retired keys that still open secrets sealed under them.
    #[serde(default)]
    pub previous_encryption_keys: Vec<Secret>,
    /// The otpauth issuer authenticator apps show.
    pub issuer: String,
    /// How long an `mfa_token` from a two-step sign-in lives.
    #[serde(rename = "challenge_ttl_secs", deserialize_with = "seconds")]
    pub challenge_ttl: Duration,
    /// Wrong codes an `mfa_token` survives.
    pub challenge_max_attempts: NonZeroU32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing_subscriber::EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
    pub format: LogFormat,
}

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for collectors.
    Json,
}

/// A configuration problem; the message always names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl SettingsError {
    fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key,
            reason: reason.into(),
        }
    }
}

impl Settings {
    /// Loads the configuration the way the server does: `TESSERA_ENV` picks the
    /// environment file and `TESSERA__*` variables override both files.
    pub fn from_env() -> Result<Self, SettingsError> {
        let environment = std::env::var("TESSERA_ENV").unwrap_or_else(|_| "development".into());
        Self::load(&environment, std::env::vars())
    }

    /// Loads an environment's configuration with the given `TESSERA__*`
    /// variables instead of the process environment (tests run many servers
    /// in one process).
    pub fn load(
        environment: &str,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let environment = Environment::parse(environment)?;
        let dir = config_dir();
        let variables = variables
            .into_iter()
            .filter(|(name, _)| name.starts_with("TESSERA__"))
            .collect();
        let mut settings: Settings = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")))
            .add_source(config::File::from(
                dir.join(format!("{}.toml", environment.as_str())),
            ))
            .add_source(
                config::Environment::with_prefix("TESSERA")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("session.previous_refresh_token_keys")
                    .with_list_parse_key("jwt.previous_secrets")
                    .with_list_parse_key("jwt.previous_ed25519_private_key_paths")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("server.cors_allowed_origins")
                    .with_list_parse_key("mfa.previous_encryption_keys")
                    .with_list_parse_key("introspection.clients")
                    .with_list_parse_key("jwt.previous_key_encryption_keys")
                    .try_parsing(true)
                    .source(Some(variables)),
            )
            .build()?
            .try_deserialize()?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.session.absolute_lifetime < self.session.idle_timeout {
            return Err(SettingsError::invalid(
                "session.absolute_lifetime_secs",
                "must not be shorter than session.idle_timeout_secs",
            ));
        }
        if self.jwt.keys == JwtKeys::Managed && self.jwt.algorithm != JwtAlgorithm::EdDSA {
            return Err(SettingsError::invalid(
                "jwt.keys",
                "managed keys are Ed25519: set jwt.algorithm = \"EdDSA\"",
            ));
        }
        if self.jwt.rotation_overlap < Duration::from_secs(2 * self.jwt.jwks_max_age_secs) {
            return Err(SettingsError::invalid(
                "jwt.rotation_overlap_secs",
                "must be at least twice jwt.jwks_max_age_secs, so every cache sees a new key before it signs",
            ));
        }
        for origin in &self.server.cors_allowed_origins {
            check_origin(origin)
                .map_err(|reason| SettingsError::invalid("server.cors_allowed_origins", reason))?;
        }
        if self.rate_limit.ipv6_prefix > 128 {
            return Err(SettingsError::invalid(
                "rate_limit.ipv6_prefix",
                "must be a prefix length between 0 and 128",
            ));
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(['{', '}']) {
            return Err(SettingsError::invalid(
                "redis.key_prefix",
                "must be non-empty and free of `{` and `}` (they would change Redis Cluster hash slots)",
            ));
        }
        self.redis
            .endpoint()
            .map_err(|reason| SettingsError::invalid("redis.url", reason))?;
        if self.password.min_score > 100 {
            return Err(SettingsError::invalid(
                "password.min_score",
                "must be between 0 and 100",
            ));
        }
        if self.password.argon2_memory_kib < 19_456
            || self.password.argon2_iterations < 2
            || self.password.argon2_parallelism < 1
        {
            return Err(SettingsError::invalid(
                "password.argon2_memory_kib",
                "Argon2id parameters must be at least m=19456 KiB, t=2, p=1 (OWASP minimum)",
            ));
        }
        if self.jwt.secret.expose().is_empty() {
            return Err(SettingsError::invalid("jwt.secret", "must not be empty"));
        }
        if self.jwt.algorithm == JwtAlgorithm::EdDSA
            && self.jwt.keys == JwtKeys::Configured
            && self.jwt.ed25519_private_key_path.is_none()
        {
            return Err(SettingsError::invalid(
                "jwt.ed25519_private_key_path",
                "is required when jwt.algorithm is EdDSA (or set jwt.keys = \"managed\")",
            ));
        }
        if !self.session.cookie_secure && self.environment != Environment::Development {
            return Err(SettingsError::invalid(
                "session.cookie_secure",
                "the refresh cookie may drop `Secure` only in development",
            ));
        }
        if !self.server.bind.ip().is_loopback() {
            self.refuse_development_secrets()?;
        }
        if self.environment == Environment::Production {
            self.validate_production()?;
        }
        Ok(())
    }

    /// Every key and secret, current and retired: (key, value, its development value).
    fn secrets(&self) -> Vec<(&'static str, &Secret, Option<&'static str>)> {
        let mut secrets = vec![
            ("jwt.secret", &self.jwt.secret, Some(DEVELOPMENT_JWT_SECRET)),
            (
                "session.refresh_token_key",
                &self.session.refresh_token_key,
                Some(DEVELOPMENT_REFRESH_KEY),
            ),
        ];
        // A retired key is as good as a current one to a forger.
        secrets.extend(
            self.jwt
                .previous_secrets
                .iter()
                .map(|secret| ("jwt.previous_secrets", secret, Some(DEVELOPMENT_JWT_SECRET))),
        );
        secrets.extend(
            self.session
                .previous_refresh_token_keys
                .iter()
                .map(|secret| {
                    (
                        "session.previous_refresh_token_keys",
                        secret,
                        Some(DEVELOPMENT_REFRESH_KEY),
                    )
                }),
        );
        if self.jwt.keys == JwtKeys::Managed {
            secrets.push((
                "jwt.key_encryption_key",
                &self.jwt.key_encryption_key,
                Some(DEVELOPMENT_KEY_ENCRYPTION_KEY),
            ));
            secrets.extend(self.jwt.previous_key_encryption_keys.iter().map(|key| {
                (
                    "jwt.previous_key_encryption_keys",
                    key,
                    Some(DEVELOPMENT_KEY_ENCRYPTION_KEY),
                )
            }));
        }
        secrets.push((
            "mfa.encryption_key",
            &self.mfa.encryption_key,
            Some(DEVELOPMENT_MFA_KEY),
        ));
        secrets.extend(self.mfa.previous_encryption_keys.iter().map(|key| {
            (
                "mfa.previous_encryption_keys",
                key,
                Some(DEVELOPMENT_MFA_KEY),
            )
        }));
        secrets.extend(
            self.metrics
                .token
                .iter()
                .map(|token| ("metrics.token", token, None)),
        );
        secrets
    }

    /// The development secrets are public: they may only guard a server that
    /// nobody else can reach.
    fn refuse_development_secrets(&self) -> Result<(), SettingsError> {
        let mut keys: Vec<&str> = self
            .secrets()
            .into_iter()
            .filter(|(_, secret, development)| development.is_some_and(|d| secret.expose() == d))
            .map(|(key, _, _)| key)
            .collect();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        Err(SettingsError::invalid(
            "server.bind",
            format!(
                "{} is not a loopback address, so the development values of {} are refused; set {}",
                self.server.bind,
                keys.join(", "),
                keys.iter()
                    .map(|key| format!("TESSERA__{}", key.replace('.', "__").to_uppercase()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    /// Production refuses what is only fit for a laptop, for current and
    /// retired keys alike.
    fn validate_production(&self) -> Result<(), SettingsError> {
        for (key, secret, development) in self.secrets() {
            if development.is_some_and(|d| secret.expose() == d) {
                return Err(SettingsError::invalid(
                    key,
                    "the development value is refused in production; set a random secret",
                ));
            }
            if secret.expose().len() < MIN_PRODUCTION_SECRET_BYTES {
                return Err(SettingsError::invalid(
                    key,
                    format!("must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes in production"),
                ));
            }
        }
        Ok(())
    }
}

/// A CORS origin exactly as browsers send it: `scheme://host[:port]`, no
/// path, no trailing slash, nothing that cannot go in a header.
fn check_origin(origin: &str) -> Result<(), String> {
    let refused = |why: &str| {
        Err(format!(
            "{origin:?} is not an origin like https://app.example.com ({why})"
        ))
    };
    if origin == "*" {
        return refused("wildcards are refused: credentials go only to listed origins");
    }
    let Ok(uri) = origin.parse::<poem::http::Uri>() else {
        return refused("not a URL");
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return refused("scheme and host are required");
    };
    if !matches!(scheme, "http" | "https") {
        return refused("the scheme must be http or https");
    }
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return refused("a host without user information is required");
    }
    if origin != format!("{scheme}://{authority}") {
        return refused("no path, query or trailing slash");
    }
    Ok(())
}

/// `TESSERA_CONFIG_DIR`, or `config/` in the working directory.
fn config_dir() -> PathBuf {
    std::env::var_os("TESSERA_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads with `section.key` overrides, as the matching variables.
    fn load(environment: &str, overrides: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let variables = overrides.iter().map(|(key, value)| {
            let name = format!("TESSERA__{}", key.replace('.', "__").to_uppercase());
            (name, value.to_string())
        });
        Settings::load(environment, variables)
    }

    #[test]
    fn defaults_match_the_contract() {
        let settings = load("development", &[]).unwrap();
        assert_eq!(settings.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.database.url, "sqlite://data/tessera.db?mode=rwc");
        assert_eq!(settings.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(settings.redis.key_prefix, "tessera:");
        assert_eq!(settings.session.idle_timeout, Duration::from_secs(3600));
        assert_eq!(
            settings.session.absolute_lifetime,
            Duration::from_secs(2_592_000)
        );
        assert_eq!(settings.session.reuse_grace, Duration::from_secs(10));
        assert!(!settings.session.check_on_access);
        assert_eq!(settings.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(settings.jwt.leeway_secs, 5);
        assert_eq!(settings.jwt.secret.expose(), DEVELOPMENT_JWT_SECRET);
        assert_eq!(settings.password.min_score, 60);
        assert!(settings.rate_limit.enabled);
        assert_eq!(settings.log.format, LogFormat::Text);
        assert_eq!(
            settings.audit.retention,
            Some(Duration::from_secs(90 * 24 * 60 * 60))
        );
        // v1.1's new settings.
        assert_eq!(settings.password.reset_ttl, Duration::from_secs(3600));
        assert_eq!(settings.rate_limit.password_resets_per_ip.get(), 20);
        assert_eq!(settings.rate_limit.signin_failures_per_ip.get(), 100);
        assert_eq!(settings.rate_limit.mfa_failures.get(), 10);
        assert_eq!(settings.rate_limit.mfa_max_consecutive_failures.get(), 100);
        assert_eq!(settings.session.max_per_user.get(), 50);
        assert_eq!(settings.mfa.issuer, "Tessera");
        assert_eq!(settings.mfa.challenge_ttl, Duration::from_secs(300));
        assert_eq!(settings.mfa.challenge_max_attempts.get(), 5);
        assert!(settings.admin.enabled && settings.admin.bind.is_none());
        assert!(settings.introspection.clients.is_empty());
        assert_eq!(settings.jwt.keys, JwtKeys::Configured);
        assert_eq!(
            settings.jwt.rotation,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(settings.jwt.rotation_overlap, Duration::from_secs(86_400));
        assert_eq!(settings.jwt.jwks_max_age_secs, 300);
    }

    #[test]
    fn environment_variables_override_files() {
        let variables = vec![
            (
                "TESSERA__SESSION__IDLE_TIMEOUT_SECS".to_string(),
                "2".to_string(),
            ),
            (
                "TESSERA__SESSION__CHECK_ON_ACCESS".to_string(),
                "true".to_string(),
            ),
            ("TESSERA__REDIS__KEY_PREFIX".to_string(), "t1:".to_string()),
        ];
        let settings = Settings::load("development", variables).unwrap();
        assert_eq!(settings.session.idle_timeout, Duration::from_secs(2));
        assert!(settings.session.check_on_access);
        assert_eq!(settings.redis.key_prefix, "t1:");
    }

    #[test]
    fn durations_take_decimal_seconds_and_whole_milliseconds() {
        let settings = load(
            "test",
            &[
                ("session.idle_timeout_secs", "0.25"),
                ("session.reuse_grace_secs", "0"),
                ("redis.command_timeout_ms", "150"),
                ("password.hashing_workers", "0"),
            ],
        )
        .unwrap();
        assert_eq!(settings.session.idle_timeout, Duration::from_millis(250));
        assert_eq!(settings.session.reuse_grace, Duration::ZERO);
        assert_eq!(settings.redis.command_timeout, Duration::from_millis(150));
        assert_eq!(settings.password.hashing_workers, None);
        for (key, value) in [
            ("session.idle_timeout_secs", "0"),
            ("session.idle_timeout_secs", "-1"),
            ("redis.command_timeout_ms", "0"),
            ("redis.command_timeout_ms", "0.5"),
            ("rate_limit.signin_failures", "0"),
            ("database.max_connections", "0"),
            ("server.body_limit_bytes", "0"),
        ] {
            let err = load("test", &[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn lists_are_comma_separated() {
        let settings = load(
            "development",
            &[("jwt.previous_secrets", "old-one,old-two")],
        )
        .unwrap();
        let previous: Vec<&str> = settings
            .jwt
            .previous_secrets
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(previous, ["old-one", "old-two"]);
    }

    #[test]
    fn trusted_proxies_parse_as_networks() {
        let settings = load(
            "development",
            &[("server.trusted_proxies", "10.0.0.0/8,::1/128,192.0.2.7")],
        )
        .unwrap();
        assert_eq!(
            settings.server.trusted_proxies,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap()
            ]
        );
        let err = load(
            "development",
            &[("server.trusted_proxies", "not-a-network")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
    }

    #[test]
    fn cors_origins_must_be_scheme_host_and_port() {
        for origin in [
            "https://app.example.com\u{7}",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "app.example.com",
            "https://",
        ] {
            let err = load("development", &[("server.cors_allowed_origins", origin)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`server.cors_allowed_origins`"),
                "{origin}: {err}"
            );
        }
        let settings = load(
            "development",
            &[(
                "server.cors_allowed_origins",
                "https://app.example.com,http://localhost:5173",
            )],
        )
        .unwrap();
        assert_eq!(settings.server.cors_allowed_origins.len(), 2);
    }

    #[test]
    fn development_secrets_only_guard_a_loopback_bind() {
        let strong = "0123456789abcdef0123456789abcdef-strong";
        for environment in ["development", "test"] {
            let err = load(environment, &[("server.bind", "0.0.0.0:8080")])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("TESSERA__JWT__SECRET")
                    && err.contains("TESSERA__SESSION__REFRESH_TOKEN_KEY"),
                "{err}"
            );
            let err = load(
                environment,
                &[
                    ("server.bind", "[::]:8080"),
                    ("jwt.secret", strong),
                    ("session.refresh_token_key", strong),
                    ("mfa.encryption_key", strong),
                    ("jwt.previous_secrets", DEVELOPMENT_JWT_SECRET),
                ],
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("jwt.previous_secrets"), "{err}");
            load(
                environment,
                &[
                    ("server.bind", "192.0.2.1:8080"),
                    ("jwt.secret", strong),
                    ("session.refresh_token_key", strong),
                    ("mfa.encryption_key", strong),
                ],
            )
            .unwrap();
            load(environment, &[("server.bind", "[::1]:0")]).unwrap();
        }
    }

    #[test]
    fn production_checks_retired_keys_like_current_ones() {
        let strong = "0123456789abcdef0123456789abcdef-strong";
        let current = [
            ("jwt.secret", strong),
            ("session.refresh_token_key", strong),
            ("mfa.encryption_key", strong),
        ];
        for (key, value) in [
            ("jwt.previous_secrets", DEVELOPMENT_JWT_SECRET),
            ("jwt.previous_secrets", "short-old-secret"),
            (
                "session.previous_refresh_token_keys",
                DEVELOPMENT_REFRESH_KEY,
            ),
            ("session.previous_refresh_token_keys", "short-old-key"),
            ("mfa.previous_encryption_keys", DEVELOPMENT_MFA_KEY),
            ("mfa.previous_encryption_keys", "short-old-key"),
        ] {
            let mut overrides = current.to_vec();
            overrides.push((key, value));
            let err = load("production", &overrides).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
        let mut overrides = current.to_vec();
        overrides.push((
            "jwt.previous_secrets",
            "an-old-but-long-enough-secret-0123456789",
        ));
        load("production", &overrides).unwrap();
    }

    #[test]
    fn wildcard_cors_origins_are_refused() {
        let err = load("development", &[("server.cors_allowed_origins", "*")]).unwrap_err();
        assert!(
            err.to_string().contains("server.cors_allowed_origins"),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_url_lists_its_seed_nodes() {
        let cluster = |url: &str| load("test", &[("redis.url", url)]);
        let settings = cluster("redis+cluster://10.0.0.1:7000, 10.0.0.2:7001/").unwrap();
        assert_eq!(
            settings.redis.endpoint(),
            Ok(RedisEndpoint::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ]))
        );
        let settings = cluster("redis+cluster://user:pw@a:1,b:2").unwrap();
        assert_eq!(
            settings.redis.endpoint(),
            Ok(RedisEndpoint::Cluster(vec![
                "redis://user:pw@a:1".into(),
                "redis://user:pw@b:2".into()
            ]))
        );
        let err = cluster("redis+cluster://").unwrap_err().to_string();
        assert!(err.contains("`redis.url`"), "{err}");
        let single = load("test", &[]).unwrap().redis.endpoint();
        assert_eq!(
            single,
            Ok(RedisEndpoint::Single("redis://127.0.0.1:6379".into()))
        );
    }

    #[test]
    fn a_key_prefix_with_a_hash_tag_is_refused() {
        let err = load("test", &[("redis.key_prefix", "app:{x}:")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`redis.key_prefix`"), "{err}");
    }

    #[test]
    fn metrics_listen_apart_unless_turned_off() {
        let settings = load("development", &[]).unwrap();
        assert_eq!(
            settings.metrics.bind,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert!(settings.metrics.token.is_none());
        let off = load("development", &[("metrics.bind", "")]).unwrap();
        assert_eq!(off.metrics.bind, None);
        let err = load("development", &[("metrics.bind", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.bind"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load("development", &[("session.idle_timeout_secs", "soon")]).unwrap_err();
        assert!(err.to_string().contains("idle_timeout_secs"), "{err}");
        let err = load("development", &[("jwt.access_ttl_secs", "0")]).unwrap_err();
        assert!(err.to_string().contains("jwt.access_ttl_secs"), "{err}");
    }

    #[test]
    fn an_unknown_environment_is_refused() {
        let err = load("staging", &[]).unwrap_err();
        assert!(err.to_string().contains("TESSERA_ENV"), "{err}");
    }

    #[test]
    fn production_refuses_development_and_short_secrets() {
        let strong = "0123456789abcdef0123456789abcdef-strong";
        let err = load("production", &[("session.refresh_token_key", strong)]).unwrap_err();
        assert!(err.to_string().contains("jwt.secret"), "{err}");
        let err = load(
            "production",
            &[
                ("jwt.secret", strong),
                ("session.refresh_token_key", strong),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("mfa.encryption_key"), "{err}");
        let err = load(
            "production",
            &[
                ("jwt.secret", "short"),
                ("session.refresh_token_key", strong),
                ("mfa.encryption_key", strong),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let err = load(
            "production",
            &[
                ("jwt.secret", strong),
                ("session.refresh_token_key", strong),
                ("mfa.encryption_key", strong),
                ("session.cookie_secure", "false"),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("session.cookie_secure"), "{err}");
        let err = load(
            "production",
            &[
                ("jwt.secret", strong),
                ("session.refresh_token_key", strong),
                ("mfa.encryption_key", strong),
                ("metrics.token", "short"),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("metrics.token"), "{err}");
        load(
            "production",
            &[
                ("jwt.secret", strong),
                ("session.refresh_token_key", strong),
                ("mfa.encryption_key", strong),
            ],
        )
        .unwrap();
    }

    #[test]
    fn only_development_may_drop_the_secure_cookie() {
        load("development", &[("session.cookie_secure", "false")]).unwrap();
        let err = load("test", &[("session.cookie_secure", "false")]).unwrap_err();
        assert!(err.to_string().contains("session.cookie_secure"), "{err}");
    }

    #[test]
    fn introspection_clients_are_ids_with_long_urlsafe_secrets() {
        let secret = "s3cr3t-for-the-catalog-service.v1~";
        let settings = load(
            "development",
            &[(
                "introspection.clients",
                &format!("catalog:{secret},billing.eu-1:{secret}"),
            )],
        )
        .unwrap();
        let ids: Vec<&str> = settings
            .introspection
            .clients
            .iter()
            .map(|client| client.id.as_str())
            .collect();
        assert_eq!(ids, ["catalog", "billing.eu-1"]);
        assert_eq!(settings.introspection.clients[0].secret.expose(), secret);
        assert!(
            load("development", &[])
                .unwrap()
                .introspection
                .clients
                .is_empty()
        );
        for bad in [
            "no-colon".to_owned(),
            format!("bad id:{secret}"),
            "catalog:too-short".to_owned(),
            format!("catalog:{secret}+plus"),
            format!("catalog:{secret},catalog:{secret}"),
        ] {
            let err = load("development", &[("introspection.clients", &bad)]).unwrap_err();
            assert!(
                err.to_string().contains("introspection.clients"),
                "{bad}: {err}"
            );
            assert!(
                !err.to_string().contains(secret),
                "{bad}: the secret leaked: {err}"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let settings = load("development", &[]).unwrap();
        assert!(!format!("{settings:?}").contains(DEVELOPMENT_JWT_SECRET));
    }
}
