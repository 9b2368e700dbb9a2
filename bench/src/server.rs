//! The Tessera server under test, run as a child process exactly as an
//! operator would run the release binary, in a throw-away environment.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::http;
use crate::tessera::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET};

/// How long start-up may take before the benchmark gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Readiness is polled this often, so the measured ready time is this precise.
const READY_POLL: Duration = Duration::from_millis(5);
/// Tessera promises to exit within 10 s of SIGTERM; a little slack on top.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Output lines kept to explain a failed start.
const LOG_TAIL: usize = 40;
/// A rate limit no run comes near.
pub const UNREACHABLE_LIMIT: u64 = 1_000_000_000_000;

pub struct ServerOptions {
    pub binary: PathBuf,
    pub config_dir: PathBuf,
    pub redis_url: String,
    pub key_prefix: String,
}

/// Memory use of the server process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

type LogTail = Arc<Mutex<VecDeque<String>>>;

pub struct Server {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    pub ready_time: Duration,
    /// `TESSERA__DATABASE__URL`, for the bench to fill `users` through.
    pub database_url: String,
    log_tail: LogTail,
    // The server's working directory, holding the SQLite database if it has
    // one; deleted on drop, after the child has exited.
    _data_dir: TempDir,
}

impl Server {
    /// Spawns the server on a free port, with the database at
    /// `database_url` (none: a fresh SQLite file in its temp dir), and waits
    /// until `/health/ready` answers 200.
    pub async fn start(
        options: &ServerOptions,
        database_url: Option<&str>,
    ) -> Result<Server, String> {
        if !options.binary.is_file() {
            return Err(format!(
                "server binary {} not found: build it first with `cargo build --release --workspace` \
                 (or point --server-bin at it)",
                options.binary.display()
            ));
        }
        // Absolute paths: the child runs in its temp dir, not in ours.
        let binary = options
            .binary
            .canonicalize()
            .map_err(|err| format!("{}: {err}", options.binary.display()))?;
        let config_dir = options
            .config_dir
            .canonicalize()
            .map_err(|err| format!("config dir {}: {err}", options.config_dir.display()))?;
        let data_dir = tempfile::Builder::new()
            .prefix("tessera-bench-")
            .tempdir()
            .map_err(|err| format!("creating a temp dir: {err}"))?;
        let database_url = database_url.map_or_else(
            || format!("sqlite://{}/bench.db?mode=rwc", data_dir.path().display()),
            str::to_string,
        );

        let unreachable = UNREACHABLE_LIMIT.to_string();
        let introspection_client =
            format!("{INTROSPECTION_CLIENT_ID}:{INTROSPECTION_CLIENT_SECRET}");
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .current_dir(data_dir.path())
            .env("TESSERA_ENV", "development")
            .env("TESSERA_CONFIG_DIR", &config_dir)
            .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
            .env("TESSERA__METRICS__BIND", "127.0.0.1:0")
            .env("TESSERA__DATABASE__URL", &database_url)
            .env("TESSERA__REDIS__URL", &options.redis_url)
            .env("TESSERA__REDIS__KEY_PREFIX", &options.key_prefix)
            // Rate limits on, as in production, so a refresh makes the Redis
            // calls it makes there (the `storage` baseline makes the same),
            // but far out of reach: every request comes from one IP and
            // each refresh chain rotates thousands of times a minute. The
            // per-IP sign-in failure budget stays at its default: right
            // passwords never spend it, and `flood --flood-guesses` measures it.
            .env("TESSERA__RATE_LIMIT__ENABLED", "true")
            .env("TESSERA__RATE_LIMIT__SIGNIN_FAILURES", &unreachable)
            .env("TESSERA__RATE_LIMIT__SIGNUPS_PER_IP", &unreachable)
            .env("TESSERA__RATE_LIMIT__REFRESHES_PER_SESSION", &unreachable)
            // The one resource server the introspection scenarios act as.
            .env("TESSERA__INTROSPECTION__CLIENTS", &introspection_client)
            // Quiet: a log line per request would cost the server CPU in the
            // measurement. The `listening on` line comes whatever the filter.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the benchmark itself dies, the server must not outlive it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("spawning {}: {err}", binary.display()))?;
        let pid = child.id().expect("a just-spawned child has a pid");

        // Both pipes are drained for the child's whole life (a full pipe would
        // block its logging); stdout is also where the bound address appears.
        let log_tail: LogTail = Arc::default();
        let (addr_tx, addr_rx) = oneshot::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(drain(stdout, Arc::clone(&log_tail), Some(addr_tx)));
        tokio::spawn(drain(stderr, Arc::clone(&log_tail), None));

        let mut server = Server {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ready_time: Duration::ZERO,
            database_url,
            log_tail,
            _data_dir: data_dir,
        };
        match tokio::time::timeout(START_TIMEOUT, wait_ready(addr_rx)).await {
            Ok(Ok(addr)) => {
                server.addr = addr;
                server.ready_time = started.elapsed();
                Ok(server)
            }
            Ok(Err(err)) => Err(server.failed_start(&err).await),
            Err(_) => Err(server.failed_start("not ready within 30 s").await),
        }
    }

    async fn failed_start(mut self, reason: &str) -> String {
        let _ = self.child.kill().await;
        let tail: Vec<String> = self
            .log_tail
            .lock()
            .expect("log lock")
            .iter()
            .cloned()
            .collect();
        format!(
            "server did not start: {reason}\n--- server output ---\n{}",
            tail.join("\n")
        )
    }

    /// Current and peak resident memory (`VmRSS`, `VmHWM`).
    pub fn memory(&self) -> Result<Memory, String> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).map_err(|err| format!("reading {path}: {err}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("{name} missing from {path}"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            peak_rss_kib: field("VmHWM:")?,
        })
    }

    /// Resets `VmHWM` to the current RSS (`clear_refs` 5), so that it next
    /// reads the peak since now.
    pub fn reset_peak_rss(&self) -> Result<(), String> {
        let path = format!("/proc/{}/clear_refs", self.pid);
        std::fs::write(&path, "5").map_err(|err| format!("writing {path}: {err}"))
    }

    /// SIGTERM, then waits for the graceful exit (killing it if it hangs).
    /// Returns the exit status and how long the shutdown took.
    pub async fn stop(mut self) -> Result<(ExitStatus, Duration), String> {
        let started = Instant::now();
        let pid = libc::pid_t::try_from(self.pid).map_err(|err| err.to_string())?;
        // SAFETY: kill(2) with a valid signal has no memory-safety
        // preconditions; the pid is our own child, not yet reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(format!(
                "SIGTERM failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status
                .map(|status| (status, started.elapsed()))
                .map_err(|err| err.to_string()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "server ignored SIGTERM for {} s; killed",
                    STOP_TIMEOUT.as_secs()
                ))
            }
        }
    }
}

/// Waits for the logged address, then polls `/health/ready` until it is 200.
async fn wait_ready(addr: oneshot::Receiver<SocketAddr>) -> Result<SocketAddr, String> {
    let addr = addr
        .await
        .map_err(|_| "exited before logging `listening on http://ADDR`".to_string())?;
    let mut client = http::Client::new(addr).with_timeout(Duration::from_secs(1));
    loop {
        if let Ok(response) = client.get("/health/ready", None).await
            && response.status == 200
        {
            return Ok(addr);
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Reads one of the child's output streams to the end, keeping the last lines
/// and reporting the first `listening on http://ADDR` it sees.
async fn drain(
    stream: impl AsyncRead + Unpin,
    tail: LogTail,
    mut addr_tx: Option<oneshot::Sender<SocketAddr>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addr) = listening_addr(&line)
            && let Some(tx) = addr_tx.take()
        {
            let _ = tx.send(addr);
        }
        let mut tail = tail.lock().expect("log lock");
        if tail.len() == LOG_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The server binary next to this one (both live in `target/release/`), or
/// `target/release/tessera` under the working directory.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("tessera")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("target/release/tessera"))
}

/// `config/` in the working directory, else the workspace's own.
pub fn default_config_dir() -> PathBuf {
    let local = Path::new("config");
    if local.join("default.toml").is_file() {
        return local.canonicalize().unwrap_or_else(|_| local.to_path_buf());
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_log_line() {
        let line =
            "2026-01-01T00:00:00.000000Z  INFO tessera::app: listening on http://127.0.0.1:41234";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:41234".parse().unwrap())
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(listening_addr("WARN something else"), None);
        assert_eq!(
            listening_addr("INFO tessera::app: metrics on http://127.0.0.1:41235"),
            None
        );
    }
}
