//! tessera-bench: load-tests a release build of Tessera and, in the same run,
//! the baselines that bound it (see `baseline.rs`), then prints a table and
//! writes JSON.

mod baseline;
mod database;
mod http;
mod load;
mod report;
mod scenario;
mod server;
mod tessera;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use redis::aio::MultiplexedConnection;

use crate::baseline::RefreshExchange;
use crate::database::{Backend, FilledUsers, RunDatabase};
use crate::http::BearerGet;
use crate::load::{Measurement, Window};
use crate::report::{DatabaseReport, FloodResult, Report, ScenarioResult, ServerReport};
use crate::scenario::{FLOOD_ME_CONNECTIONS, Plan, Scenario, Step};
use crate::server::{Server, ServerOptions};
use crate::tessera::{
    Api, Credentials, Fixture, IntrospectConnection, MixedConnection, RefreshConnection, SeedPlan,
    SigninConnection, SignupConnection, TokenKind,
};

const LONG_ABOUT: &str = "\
Load-tests Tessera's release binary and, in the same run, the baselines that
bound it: a bare poem server (plain, behind an HS256 bearer check, and a JSON
POST the size of a refresh), Argon2id verifications per core, and the Redis
round-trip of one refresh.

It builds nothing. From the workspace root, the one command is:

    cargo build --release --workspace && target/release/tessera-bench

It starts target/release/tessera on a free port with a temporary SQLite
database (or one of its own on the PostgreSQL server of --database-url),
rate limits on but out of reach and a random Redis key prefix (Redis must
run at --redis-url), and removes all of it at the end. Each Tessera
scenario is followed at once by its baselines, while the server sits idle,
so each ratio compares measurements taken back to back. Results: a table on
stdout and JSON in --out.";

/// Usernames a guessing flood sprays: each stays under the per-username
/// limit for a while, so only the per-IP budget stops the flood early.
const FLOOD_GUESSED_USERNAMES: usize = 10_000;

/// How long the server sits without requests before its idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(3);

#[derive(Parser)]
#[command(version, about, long_about = LONG_ABOUT)]
struct Cli {
    /// Measured seconds per scenario [default: 10; 2 with --smoke]
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Unmeasured warm-up seconds before each scenario [default: 3; 1 with --smoke]
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// Comma-separated scenarios to run (the baseline of each is added and
    /// run right after it) [default: all but flood]
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Connections of every scenario run, baselines included (hashing: that
    /// many threads, at most one per core; flood: the sign-in connections)
    /// [default: per scenario]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    connections: Option<u16>,
    /// Where to write the JSON results
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Quick check: short scenarios; exit non-zero if any scenario sees an error
    #[arg(long)]
    smoke: bool,
    /// The server binary [default: `tessera` next to this binary, else target/release/tessera]
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Tessera's config directory [default: ./config, else the workspace's]
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// `flood` as an attacker's: wrong passwords for made-up usernames from
    /// one address (the server's per-IP sign-in budget stays at its default)
    #[arg(long)]
    flood_guesses: bool,
    /// Redis used by the server and the storage baseline
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// A PostgreSQL server for Tessera, e.g.
    /// postgres://postgres@127.0.0.1:5432/test: the bench creates a database
    /// of the run's own there (through the URL's database) and drops it at
    /// the end [default: a temporary SQLite file]
    #[arg(long, value_parser = database::postgres_url)]
    database_url: Option<String>,
    /// Users to add by SQL, in bulk, once the server has migrated its
    /// database and before seeding; then ANALYZE and the query plans of the
    /// server's statements on `users`
    #[arg(long, default_value_t = 0)]
    users: u64,
}

/// The settings every scenario runs with.
struct Run {
    run_id: Arc<str>,
    key_prefix: String,
    warmup: Duration,
    duration: Duration,
    cores: usize,
    /// `--connections`, for every scenario.
    connections: Option<usize>,
    /// `--flood-guesses`.
    flood_guesses: bool,
    /// `--database-url`.
    database_url: Option<String>,
    /// `--users`.
    users: u64,
}

impl Run {
    /// `--connections` if given, else the scenario's own count. `hashing`
    /// takes at most one thread per core even then: it is a ceiling, and more
    /// threads than cores only measure oversubscription (32 threads on 2
    /// cores hashed at about half the rate of 2).
    fn connections(&self, scenario: Scenario) -> usize {
        match self.connections {
            Some(n) if scenario == Scenario::Hashing => n.min(self.cores),
            Some(n) => n,
            None => scenario.connections(self.cores),
        }
    }

    fn backend(&self) -> Backend {
        if self.database_url.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    fn progress(&self, step: Step) {
        let scenario = step.scenario;
        let extra = if scenario == Scenario::Flood {
            format!(" + {FLOOD_ME_CONNECTIONS} me")
        } else {
            String::new()
        };
        eprintln!(
            "running {} ({}{extra} connections, {} s warm-up + {} s)",
            step.label(),
            self.connections(scenario),
            self.warmup.as_secs(),
            self.duration.as_secs()
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let duration_secs = cli
        .duration_secs
        .unwrap_or(if cli.smoke { 2 } else { 10 })
        .max(1);
    let warmup_secs = cli.warmup_secs.unwrap_or(if cli.smoke { 1 } else { 3 });
    let run_id: Arc<str> = format!("{:08x}", rand::random::<u32>()).into();
    let run = Run {
        key_prefix: format!("tessera-bench:{run_id}:"),
        run_id,
        warmup: Duration::from_secs(warmup_secs),
        duration: Duration::from_secs(duration_secs),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        connections: cli.connections.map(usize::from),
        flood_guesses: cli.flood_guesses,
        database_url: cli.database_url.clone(),
        users: cli.users,
    };
    let plan = scenario::plan(&cli.scenarios);

    let mut report = Report {
        run_id: run.run_id.to_string(),
        started_at: chrono::Utc::now().to_rfc3339(),
        cores: run.cores,
        duration_secs,
        warmup_secs,
        smoke: cli.smoke,
        server: None,
        database: None,
        scenarios: Vec::new(),
        redis_keys_deleted: None,
    };
    let redis = connect_redis(&cli.redis_url).await;

    if !plan.paired.is_empty() {
        let options = ServerOptions {
            binary: cli
                .server_bin
                .clone()
                .unwrap_or_else(server::default_binary),
            config_dir: cli
                .config_dir
                .clone()
                .unwrap_or_else(server::default_config_dir),
            redis_url: cli.redis_url.clone(),
            key_prefix: run.key_prefix.clone(),
        };
        run_paired(&run, &options, &plan, &redis, &mut report).await;
    }
    for &baseline in &plan.standalone {
        let step = Step::alone(baseline);
        run.progress(step);
        let result = run_baseline(&run, baseline, &redis).await;
        report
            .scenarios
            .push(ScenarioResult::new(step, run.connections(baseline), result));
    }

    match &redis {
        Ok(redis) => match delete_keys(redis.clone(), &run.key_prefix).await {
            Ok(deleted) => report.redis_keys_deleted = Some(deleted),
            Err(err) => eprintln!("warning: could not delete Redis keys: {err}"),
        },
        Err(err) => eprintln!("warning: no Redis, nothing cleaned up: {err}"),
    }

    report.compute_ratios();
    print!("{}", report.table());
    if let Err(err) = report.write_json(&cli.out) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    println!("results: {}", cli.out.display());
    verdict(&report)
}

/// Failure when a scenario could not run at all, or (with --smoke) saw any error.
fn verdict(report: &Report) -> ExitCode {
    let failed: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.failure.is_some() || (report.smoke && !s.is_clean()))
        .map(|s| s.label.as_str())
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

async fn connect_redis(url: &str) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|err| format!("{url}: {err}"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|err| format!("{url}: {err}"))
}

/// Runs the plan's paired steps with the server up: each Tessera scenario,
/// then its baselines while the server sits idle, into `report`. Stops the
/// server at the end and drops the database made for the run, if any. A
/// database, server or seeding failure fails the Tessera scenarios only:
/// the baselines still run.
async fn run_paired(
    run: &Run,
    options: &ServerOptions,
    plan: &Plan,
    redis: &Result<MultiplexedConnection, String>,
    report: &mut Report,
) {
    let database = match &run.database_url {
        Some(url) => RunDatabase::create(url, &run.run_id).await.map(Some),
        None => Ok(None),
    };
    let mut server = match &database {
        Ok(database) => {
            let url = database.as_ref().map(|database| database.url.as_str());
            SeededServer::start(run, options, url, &plan.tessera()).await
        }
        Err(err) => {
            eprintln!("{err}");
            Err(err.clone())
        }
    };
    for &step in &plan.paired {
        run.progress(step);
        let connections = run.connections(step.scenario);
        let result = if step.scenario.is_baseline() {
            let measurement = run_baseline(run, step.scenario, redis).await;
            ScenarioResult::new(step, connections, measurement)
        } else {
            match &mut server {
                Ok(server) => server.run(run, step).await,
                Err(err) => ScenarioResult::new(step, connections, Err(err.clone())),
            }
        };
        report.scenarios.push(result);
    }
    let mut database_report = DatabaseReport {
        backend: run.backend(),
        name: None,
        drop_error: None,
        users: None,
    };
    if let Ok(mut server) = server {
        database_report.users = server.users.take();
        report.server = Some(server.stop().await);
    }
    // After the server has stopped: PostgreSQL drops no database in use.
    if let Ok(Some(database)) = database {
        database_report.name = Some(database.name.clone());
        database_report.drop_error = database.remove().await.err();
        if let Some(err) = &database_report.drop_error {
            eprintln!("warning: {err}");
        }
    }
    report.database = Some(database_report);
}

/// The Tessera server, seeded for the run's scenarios.
struct SeededServer {
    server: Server,
    api: Api,
    /// Users and sessions, or why seeding failed (which fails every scenario
    /// but `signup`).
    fixture: Result<Fixture, String>,
    report: ServerReport,
    /// `--users`: what the bench added by SQL before seeding.
    users: Option<FilledUsers>,
}

impl SeededServer {
    /// Starts the server on the database at `database_url` (none: SQLite),
    /// adds `--users` and seeds what `scenarios` need.
    async fn start(
        run: &Run,
        options: &ServerOptions,
        database_url: Option<&str>,
        scenarios: &[Scenario],
    ) -> Result<Self, String> {
        eprintln!("starting {}", options.binary.display());
        let server = Server::start(options, database_url)
            .await
            .inspect_err(|err| {
                eprintln!("{err}");
            })?;
        let mut report = ServerReport {
            binary: options.binary.display().to_string(),
            ready_ms: server.ready_time.as_secs_f64() * 1000.0,
            startup_rss_kib: server.memory().ok().map(|m| m.rss_kib),
            ..ServerReport::default()
        };
        eprintln!(
            "server ready at http://{} in {:.1} ms",
            server.addr, report.ready_ms
        );
        let users = add_users(run, &server).await?;

        let api = Api { addr: server.addr };
        let connections = |s: Scenario| {
            if scenarios.contains(&s) {
                run.connections(s)
            } else {
                0
            }
        };
        let plan = SeedPlan {
            me_sessions: if scenarios.contains(&Scenario::Me)
                || scenarios.contains(&Scenario::Flood)
            {
                tessera::SEED_USERS
            } else {
                0
            },
            refresh_sessions: connections(Scenario::Refresh),
            mixed_sessions: connections(Scenario::Mixed),
            introspect_sessions: if scenarios.contains(&Scenario::IntrospectAccess)
                || scenarios.contains(&Scenario::IntrospectRefresh)
            {
                tessera::SEED_USERS
            } else {
                0
            },
        };
        // Only scenarios that need users wait on seeding: sign-up runs without it.
        let needs_seed = scenarios.iter().any(|&s| s != Scenario::Signup);
        let fixture = if needs_seed {
            eprintln!("seeding users and sessions");
            tessera::seed(api, &run.run_id, &plan).await.map_err(|err| {
                eprintln!("seeding failed: {err}");
                format!("seeding failed: {err}")
            })
        } else {
            Err("not seeded".to_string())
        };
        // Idle means idle: the server's hashing workers give their Argon2
        // memory back after 2 s without work.
        tokio::time::sleep(IDLE_SETTLE).await;
        report.idle_rss_kib = server.memory().ok().map(|m| m.rss_kib);
        Ok(SeededServer {
            server,
            api,
            fixture,
            report,
            users,
        })
    }

    /// Runs one Tessera scenario.
    async fn run(&mut self, run: &Run, step: Step) -> ScenarioResult {
        let (scenario, api) = (step.scenario, self.api);
        let mut flood = None;
        let result = match (&self.fixture, scenario) {
            (_, Scenario::Signup) => Ok(run_signup(run, api).await),
            (Ok(fixture), Scenario::Flood) => {
                // `flood` resets `VmHWM` to measure its own peak: keep the run's first.
                note_peak_rss(&mut self.report, &self.server);
                let reset = self.server.reset_peak_rss();
                let (signins, result) = run_flood(run, api, fixture).await;
                flood = Some(FloodResult {
                    server_peak_rss_kib: reset
                        .and_then(|()| self.server.memory())
                        .ok()
                        .map(|m| m.peak_rss_kib),
                    ..result
                });
                Ok(signins)
            }
            (Ok(fixture), _) => Ok(run_seeded(run, api, fixture, scenario).await),
            (Err(err), _) => Err(err.clone()),
        };
        let mut result = ScenarioResult::new(step, run.connections(scenario), result);
        result.flood = flood;
        result
    }

    /// Stops the server (SIGTERM) and returns its report.
    async fn stop(mut self) -> ServerReport {
        note_peak_rss(&mut self.report, &self.server);
        match self.server.stop().await {
            Ok((status, took)) => {
                self.report.exit_code = status.code();
                self.report.shutdown_ms = Some(took.as_secs_f64() * 1000.0);
            }
            Err(err) => self.report.stop_error = Some(err),
        }
        self.report
    }
}

/// `--users`: fills the server's (migrated) database before seeding; a
/// failure fails the Tessera scenarios, which would not measure what was
/// asked for.
async fn add_users(run: &Run, server: &Server) -> Result<Option<FilledUsers>, String> {
    if run.users == 0 {
        return Ok(None);
    }
    eprintln!("adding {} users by SQL", run.users);
    let hash = baseline::password_hash();
    let filled = database::fill_users(&server.database_url, run.users, &run.run_id, &hash)
        .await
        .inspect_err(|err| eprintln!("{err}"))?;
    eprintln!(
        "added in {:.1} s, ANALYZE {:.1} s",
        filled.fill_secs, filled.analyze_secs
    );
    Ok(Some(filled))
}

/// Keeps the server's `VmHWM` so far in its report.
fn note_peak_rss(report: &mut ServerReport, server: &Server) {
    let peak = server.memory().ok().map(|m| m.peak_rss_kib);
    report.peak_rss_kib = report.peak_rss_kib.max(peak);
}

async fn run_signup(run: &Run, api: Api) -> Measurement {
    let connections = (0..run.connections(Scenario::Signup))
        .map(|i| SignupConnection::new(api, i, Arc::clone(&run.run_id)))
        .collect();
    load::run(connections, run.warmup, run.duration).await
}

/// `flood`: sign-ins on many connections and `/v1/me` on a few, side by side
/// over one window. Returns the sign-ins' measurement and the flood's summary.
async fn run_flood(run: &Run, api: Api, fixture: &Fixture) -> (Measurement, FloodResult) {
    let window = Window::starting_now(run.warmup, run.duration);
    let users = if run.flood_guesses {
        Credentials::guesses(FLOOD_GUESSED_USERNAMES, &run.run_id)
    } else {
        Arc::clone(&fixture.users)
    };
    let signins = (0..run.connections(Scenario::Flood))
        .map(|i| SigninConnection::flood(api, Arc::clone(&users), i, run.flood_guesses))
        .collect();
    let sessions = &fixture.me_sessions;
    let readers = (0..FLOOD_ME_CONNECTIONS)
        .map(|i| tessera::me_connection(api, &sessions[i % sessions.len()]))
        .collect();
    let (signins, me) = tokio::join!(load::run_in(window, signins), load::run_in(window, readers));
    let flood = FloodResult::new(&signins, me, FLOOD_ME_CONNECTIONS);
    (signins, flood)
}

/// The scenarios that start from seeded users and sessions.
async fn run_seeded(run: &Run, api: Api, fixture: &Fixture, scenario: Scenario) -> Measurement {
    let count = run.connections(scenario);
    let (warmup, duration) = (run.warmup, run.duration);
    let users = || Arc::clone(&fixture.users);
    match scenario {
        Scenario::Me => {
            let sessions = &fixture.me_sessions;
            let connections = (0..count)
                .map(|i| tessera::me_connection(api, &sessions[i % sessions.len()]))
                .collect();
            load::run(connections, warmup, duration).await
        }
        Scenario::Signin => {
            let connections = (0..count)
                .map(|i| SigninConnection::new(api, users(), i))
                .collect();
            load::run(connections, warmup, duration).await
        }
        Scenario::Refresh => {
            let connections = fixture
                .refresh_sessions
                .iter()
                .map(|session| RefreshConnection::new(api, session.clone()))
                .collect();
            load::run(connections, warmup, duration).await
        }
        Scenario::Mixed => {
            let connections = fixture
                .mixed_sessions
                .iter()
                .enumerate()
                .map(|(i, session)| MixedConnection::new(api, session.clone(), users(), i))
                .collect();
            load::run(connections, warmup, duration).await
        }
        Scenario::IntrospectAccess | Scenario::IntrospectRefresh => {
            let kind = if scenario == Scenario::IntrospectAccess {
                TokenKind::Access
            } else {
                TokenKind::Refresh
            };
            let bodies = fixture.introspect_bodies(kind);
            let connections = (0..count)
                .map(|i| IntrospectConnection::new(api, Arc::clone(&bodies), i))
                .collect();
            load::run(connections, warmup, duration).await
        }
        _ => unreachable!("{} is not a seeded Tessera scenario", scenario.name()),
    }
}

async fn run_baseline(
    run: &Run,
    scenario: Scenario,
    redis: &Result<MultiplexedConnection, String>,
) -> Result<Measurement, String> {
    let count = run.connections(scenario);
    let (warmup, duration) = (run.warmup, run.duration);
    match scenario {
        Scenario::Framework | Scenario::FrameworkBearer | Scenario::FrameworkPost => {
            run_framework(run, scenario).await
        }
        Scenario::Hashing => {
            tokio::task::spawn_blocking(move || baseline::hashing(count, warmup, duration))
                .await
                .map_err(|err| format!("hashing: {err}"))
        }
        Scenario::Storage => {
            let redis = redis.as_ref().map_err(|err| format!("no Redis: {err}"))?;
            // The server's prefix: its keys and these differ by their ids only.
            baseline::storage(redis, &run.key_prefix, count, warmup, duration).await
        }
        _ => unreachable!("{} is not a baseline", scenario.name()),
    }
}

/// A framework baseline, against a bare framework server of its own.
async fn run_framework(run: &Run, scenario: Scenario) -> Result<Measurement, String> {
    let count = run.connections(scenario);
    // A username as long as the seeded ones, so the bodies match in size.
    let username = Credentials::seeded(0, &run.run_id).username;
    let server = baseline::FrameworkServer::start(&username)
        .map_err(|err| format!("baseline server: {err}"))?;
    let addr = server.addr;
    let measurement = if scenario == Scenario::FrameworkPost {
        let connections = (0..count).map(|_| RefreshExchange::new(addr)).collect();
        load::run(connections, run.warmup, run.duration).await
    } else {
        let path = if scenario == Scenario::Framework {
            "/me"
        } else {
            "/me-bearer"
        };
        // The same header either way: the plain run only skips checking it.
        let token = baseline::baseline_token();
        let connections = (0..count)
            .map(|_| BearerGet::new(addr, path, &token))
            .collect();
        load::run(connections, run.warmup, run.duration).await
    };
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .map_err(|err| err.to_string())?;
    Ok(measurement)
}

/// Deletes every key under this run's prefix (the server's and the storage
/// baseline's). `KEYS` is fine on a benchmark Redis; it would not be in production.
async fn delete_keys(mut redis: MultiplexedConnection, prefix: &str) -> Result<usize, String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .map_err(|err| err.to_string())?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<()>(&mut redis)
            .await
            .map_err(|err| err.to_string())?;
    }
    Ok(keys.len())
}
