//! Building the server from settings and running it until told to stop.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::sync::watch;

use poem::{
    EndpointExt, Route, Server,
    endpoint::BoxEndpoint,
    get,
    http::{Method, header},
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    middleware::Cors,
};

use crate::{
    api::{self, ApiContext, ClientIpResolver, RefreshCookie},
    audit::AuditLog,
    auth::{hashing::HashingPool, jwt::AccessTokens},
    clock::Clock,
    domain::PasswordPolicy,
    error::Causes,
    flows::{ConnectError, Stores},
    metrics::{Metrics, Scrape, record_requests},
    middleware::{self, BodyLimit, Surface, log_request, problem_responses, security_headers},
    sessions::RefreshTokenKeys,
    settings::{JwtKeys, Secret, Settings},
    telemetry,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{}", Causes(.0))]
    Connect(#[from] ConnectError),
    #[error("password hashing: {0}")]
    Hashing(#[from] crate::auth::hashing::HashingError),
    #[error("access token keys: {0}")]
    Keys(#[from] crate::auth::jwt::KeyError),
    #[error("managed signing keys: {}", Causes(.0))]
    SigningKeys(#[from] crate::auth::signing_keys::SigningKeyError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A built server: listening, migrated, not yet serving.
pub struct App {
    acceptor: TcpAcceptor,
    endpoint: BoxEndpoint<'static>,
    local_addr: SocketAddr,
    metrics: Option<SideListener>,
    admin: Option<SideListener>,
    shutdown_timeout: Duration,
    idle_timeout: Duration,
    audit: AuditLog,
}

/// A listener apart from the public one: Prometheus, or the admin API.
struct SideListener {
    acceptor: TcpAcceptor,
    endpoint: BoxEndpoint<'static>,
    local_addr: SocketAddr,
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, StartupError> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// As [`App::build`], reading time from `clock` for what the instance
    /// stamps itself (tests model a host whose clock is off this way).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<App, StartupError> {
        let mut stores = Stores::connect(&settings, clock).await?;
        if settings.server.user_cache_capacity > 0 {
            stores.user_cache = stores
                .user_cache
                .clone()
                .subscribing(&settings.redis, settings.server.user_cache_capacity);
        }
        if let Some(retention) = settings.audit.retention {
            stores
                .audit
                .spawn_pruning(retention, settings.audit.prune_interval);
        }
        let audit = stores.audit.clone();
        let access_tokens = match settings.jwt.keys {
            JwtKeys::Configured => AccessTokens::from_settings(&settings.jwt, clock)?,
            JwtKeys::Managed => {
                AccessTokens::new(&settings.jwt, clock, stores.signing_keys.maintain().await?)
            }
        };
        let metrics = Arc::new(Metrics::new(audit.dropped_counter()));
        let context = Arc::new(ApiContext {
            stores,
            hashing: HashingPool::new(&settings.password).await?,
            password_policy: PasswordPolicy {
                min_score: settings.password.min_score,
            },
            client_ip: ClientIpResolver::new(settings.server.trusted_proxies.clone()),
            refresh_keys: RefreshTokenKeys::from_settings(&settings.session),
            access_tokens,
            jwks_max_age_secs: settings.jwt.jwks_max_age_secs,
            refresh_cookie: RefreshCookie {
                secure: settings.session.cookie_secure,
            },
            check_session_on_access: settings.session.check_on_access,
            reset_ttl: settings.password.reset_ttl,
            introspection_clients: settings.introspection.clients.clone(),
            metrics,
        });
        if settings.jwt.keys == JwtKeys::Managed {
            follow_managed_keys(Arc::clone(&context));
        }
        let (acceptor, local_addr) = bind(settings.server.bind).await?;
        let metrics = match settings.metrics.bind {
            Some(addr) => {
                let (acceptor, local_addr) = bind(addr).await?;
                let scrape = Route::new()
                    .at("/metrics", get(scrape(&context, None)))
                    .around(problem_responses);
                Some(SideListener {
                    acceptor,
                    endpoint: scrape.boxed(),
                    local_addr,
                })
            }
            None => None,
        };
        let admin = match (settings.admin.enabled, settings.admin.bind) {
            (true, Some(addr)) => {
                let (acceptor, local_addr) = bind(addr).await?;
                Some(SideListener {
                    acceptor,
                    endpoint: routes(Arc::clone(&context), &settings, Surface::Admin).boxed(),
                    local_addr,
                })
            }
            _ => None,
        };
        let public = Surface::Public {
            with_admin: settings.admin.enabled && settings.admin.bind.is_none(),
        };
        Ok(App {
            acceptor,
            endpoint: routes(context, &settings, public).boxed(),
            local_addr,
            metrics,
            admin,
            shutdown_timeout: settings.server.shutdown_timeout,
            idle_timeout: settings.server.idle_timeout,
            audit,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the metrics listener listens, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|metrics| metrics.local_addr)
    }

    /// Where the admin API's own listener listens, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|admin| admin.local_addr)
    }

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes (tests stop servers this way).
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // One stop signal, heard by every listener.
        let (stopping, stopped) = watch::channel(false);
        let signal = tokio::spawn(async move {
            stop.await;
            let _ = stopping.send(true);
        });
        let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        let serve = |acceptor, endpoint, stopped| {
            Server::new_with_acceptor(acceptor)
                .idle_timeout(self.idle_timeout)
                .run_with_graceful_shutdown(
                    endpoint,
                    until_stopped(stopped),
                    Some(self.shutdown_timeout),
                )
        };
        telemetry::announce(format_args!("listening on http://{}", self.local_addr));
        let api = serve(self.acceptor, self.endpoint, stopped.clone());
        let apart = |listener: Option<SideListener>, what: &'static str, stopped| async move {
            let Some(listener) = listener else {
                return Ok(());
            };
            telemetry::announce(format_args!("{what} on http://{}", listener.local_addr));
            serve(listener.acceptor, listener.endpoint, stopped).await
        };
        let metrics = apart(self.metrics, "metrics", stopped.clone());
        let admin = apart(self.admin, "admin", stopped);
        let result = tokio::try_join!(api, metrics, admin).map(|_| ());
        signal.abort();
        // Events still queued for a database that was down get a moment
        // more; what is left is counted as dropped.
        self.audit.flush(AUDIT_FLUSH_GRACE).await;
        result
    }
}

/// Keeps the instance's signing key the one the database chooses: re-read
/// every [`crate::auth::signing_keys::ManagedKeys::refresh_interval`], with
/// the next key created when due. A failed read keeps the keys in use.
fn follow_managed_keys(context: Arc<ApiContext>) {
    tokio::spawn(async move {
        let keys = &context.stores.signing_keys;
        loop {
            tokio::time::sleep(keys.refresh_interval()).await;
            match keys.maintain().await {
                Ok(set) => context.access_tokens.replace_keys(set),
                Err(err) => {
                    tracing::warn!(error = %Causes(&err), "could not refresh the managed signing keys")
                }
            }
        }
    });
}

/// How long a stopping server waits for queued audit events.
const AUDIT_FLUSH_GRACE: Duration = Duration::from_secs(2);

async fn bind(addr: SocketAddr) -> Result<(TcpAcceptor, SocketAddr), StartupError> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local_addr = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .ok_or(StartupError::Bind {
            addr,
            source: std::io::Error::other("no local address"),
        })?;
    Ok((acceptor, local_addr))
}

/// The scrape endpoint over the server's own metrics and hashing pool.
fn scrape(context: &ApiContext, token: Option<Secret>) -> Scrape {
    Scrape {
        metrics: Arc::clone(&context.metrics),
        hashing: context.hashing.clone(),
        token,
    }
}

fn routes(
    context: Arc<ApiContext>,
    settings: &Settings,
    surface: Surface,
) -> impl poem::Endpoint<Output = poem::Response> + 'static {
    let api = api::openapi_service();
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let origins = &settings.server.cors_allowed_origins;
    let cors_on = !origins.is_empty();
    // Credentials (the refresh cookie) only ever for the listed origins.
    let cors = Cors::new()
        .allow_origins(origins.iter().map(String::as_str))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(600);
    let metrics = Arc::clone(&context.metrics);
    let mut route = Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api);
    // `/metrics` on the public listener only behind its own bearer token.
    if let Some(token) = &settings.metrics.token {
        route = route.at("/metrics", get(scrape(&context, Some(token.clone()))));
    }
    route
        .data(context)
        .around(move |next, req| middleware::surface(surface, next, req))
        .with(BodyLimit {
            max_bytes: settings.server.body_limit_bytes,
        })
        .around(problem_responses)
        .with_if(cors_on, cors)
        // Once more, for the CORS layer's own refusals.
        .around(problem_responses)
        .around(move |next, req| record_requests(Arc::clone(&metrics), next, req))
        .around(move |next, req| security_headers(cors_on, next, req))
        .around(log_request)
}

/// The OpenAPI document, as `tessera openapi` prints it.
pub fn openapi_document() -> String {
    api::openapi_service().spec()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
