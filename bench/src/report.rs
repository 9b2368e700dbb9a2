//! The results: a table on stdout and the same data as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::database::{Backend, FilledUsers};
use crate::load::Measurement;
use crate::scenario::{Scenario, Step};

#[derive(Debug, Serialize)]
pub struct Report {
    pub run_id: String,
    pub started_at: String,
    pub cores: usize,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub smoke: bool,
    pub server: Option<ServerReport>,
    /// The server's database; `None` when no Tessera scenario ran.
    pub database: Option<DatabaseReport>,
    pub scenarios: Vec<ScenarioResult>,
    pub redis_keys_deleted: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct DatabaseReport {
    pub backend: Backend,
    /// PostgreSQL: the database made for the run, dropped at its end.
    pub name: Option<String>,
    pub drop_error: Option<String>,
    /// `--users`: what was added, and the plans of the hot statements.
    pub users: Option<FilledUsers>,
}

#[derive(Debug, Default, Serialize)]
pub struct ServerReport {
    pub binary: String,
    /// From spawn to the first 200 from `/health/ready`.
    pub ready_ms: f64,
    /// `VmRSS` as soon as the server is ready.
    pub startup_rss_kib: Option<u64>,
    /// `VmRSS` after seeding (which hashes passwords), before any load.
    pub idle_rss_kib: Option<u64>,
    /// `VmHWM` at the end of the Tessera scenarios.
    pub peak_rss_kib: Option<u64>,
    /// From SIGTERM to exit.
    pub shutdown_ms: Option<f64>,
    pub exit_code: Option<i32>,
    pub stop_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub name: &'static str,
    /// `name`, and for a baseline the scenario it was measured after.
    #[serde(skip)]
    pub label: String,
    pub baseline_scenario: bool,
    /// For a baseline: the Tessera scenario measured right before it, whose
    /// ratio uses this measurement. `None` for a baseline run on its own.
    pub paired_with: Option<&'static str>,
    pub connections: usize,
    pub measurement: Option<Measurement>,
    /// Why the scenario could not run (server or seeding failure).
    pub failure: Option<String>,
    /// The baselines this scenario is read against, each with its ratio.
    pub baselines: Vec<Ratio>,
    /// `flood` only; its `measurement` is that of the sign-ins (`requests`
    /// accepted ones, `shed` the 503s).
    pub flood: Option<FloodResult>,
}

/// A Tessera scenario against one of its baselines.
#[derive(Debug, PartialEq, Serialize)]
pub struct Ratio {
    /// The baseline.
    pub name: &'static str,
    /// requests/s of the scenario over requests/s of the baseline, as
    /// measured right after it (the baseline result paired with this one);
    /// `None` where either did not run.
    pub ratio: Option<f64>,
}

/// What `flood` shows: how many sign-ins get through and how fast the rest
/// are turned away, and whether cheap requests still get served meanwhile.
#[derive(Debug, Serialize)]
pub struct FloodResult {
    pub signin_accepted_per_sec: f64,
    /// 503 with `Retry-After` per second.
    pub signin_rejected_per_sec: f64,
    /// Of the accepted sign-ins.
    pub signin_p99_ms: f64,
    pub signin_rejected_p99_ms: Option<f64>,
    pub me_connections: usize,
    pub me_requests_per_sec: f64,
    pub me_p50_ms: f64,
    pub me_p99_ms: f64,
    pub me: Measurement,
    /// `VmHWM` over the flood alone (reset before it).
    pub server_peak_rss_kib: Option<u64>,
}

impl FloodResult {
    pub fn new(signin: &Measurement, me: Measurement, me_connections: usize) -> Self {
        FloodResult {
            signin_accepted_per_sec: signin.requests_per_sec,
            signin_rejected_per_sec: signin.shed_per_sec,
            signin_p99_ms: signin.p99_ms,
            signin_rejected_p99_ms: signin.shed_p99_ms,
            me_connections,
            me_requests_per_sec: me.requests_per_sec,
            me_p50_ms: me.p50_ms,
            me_p99_ms: me.p99_ms,
            me,
            server_peak_rss_kib: None,
        }
    }
}

impl ScenarioResult {
    pub fn new(step: Step, connections: usize, result: Result<Measurement, String>) -> Self {
        let scenario = step.scenario;
        let (measurement, failure) = match result {
            Ok(measurement) => (Some(measurement), None),
            Err(failure) => (None, Some(failure)),
        };
        ScenarioResult {
            name: scenario.name(),
            label: step.label(),
            baseline_scenario: scenario.is_baseline(),
            paired_with: step.paired_with.map(Scenario::name),
            connections,
            measurement,
            failure,
            baselines: scenario
                .baselines()
                .iter()
                .map(|baseline| Ratio {
                    name: baseline.name(),
                    ratio: None,
                })
                .collect(),
            flood: None,
        }
    }

    /// Whether a smoke run accepts this scenario.
    pub fn is_clean(&self) -> bool {
        self.measurement.as_ref().is_some_and(Measurement::is_clean)
            && self.flood.as_ref().is_none_or(|flood| flood.me.is_clean())
    }
}

impl Report {
    /// Fills in each scenario's ratio to each of its baselines, measured
    /// right after it, where both ran.
    pub fn compute_ratios(&mut self) {
        let ratios: Vec<Vec<Option<f64>>> = self
            .scenarios
            .iter()
            .map(|s| s.baselines.iter().map(|b| self.ratio(s, b.name)).collect())
            .collect();
        for (scenario, ratios) in self.scenarios.iter_mut().zip(ratios) {
            for (baseline, ratio) in scenario.baselines.iter_mut().zip(ratios) {
                baseline.ratio = ratio;
            }
        }
    }

    /// `scenario`'s requests/s over those of `baseline` measured right after it.
    fn ratio(&self, scenario: &ScenarioResult, baseline: &str) -> Option<f64> {
        let own = scenario.measurement.as_ref()?.requests_per_sec;
        let paired = self
            .scenarios
            .iter()
            .find(|s| s.name == baseline && s.paired_with == Some(scenario.name))?;
        let base = paired.measurement.as_ref()?.requests_per_sec;
        (base > 0.0).then(|| own / base)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .scenarios
            .iter()
            .map(|s| s.label.len())
            .max()
            .unwrap_or(0)
            .max("  me meanwhile".len());
        let _ = writeln!(
            out,
            "{:<width$} {:>5} {:>10} {:>8} {:>8} {:>8} {:>7}  vs baseline",
            "scenario", "conns", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
        );
        for s in &self.scenarios {
            let _ = write!(out, "{:<width$} {:>5} ", s.label, s.connections);
            let Some(m) = &s.measurement else {
                let reason = s.failure.as_deref().unwrap_or("did not run");
                let _ = writeln!(out, "FAILED: {}", reason.lines().next().unwrap_or(""));
                continue;
            };
            write_numbers(&mut out, m);
            if let Some(flood) = &s.flood {
                let _ = write!(out, "  sign-ins accepted (200)");
                let _ = write!(out, "\n{:<width$} {:>5} ", "  turned away", s.connections);
                let p99 = m
                    .shed_p99_ms
                    .map_or("-".to_string(), |p99| format!("{p99:.3}"));
                let _ = write!(out, "{:>10.1} {:>8} {p99:>8}", m.shed_per_sec, "-");
                let _ = write!(
                    out,
                    "\n{:<width$} {:>5} ",
                    "  me meanwhile", flood.me_connections
                );
                write_numbers(&mut out, &flood.me);
            }
            let versus: Vec<String> = s.baselines.iter().map(Ratio::to_string).collect();
            if !versus.is_empty() {
                let _ = write!(out, "  {}", versus.join(", "));
            }
            out.push('\n');
        }
        for s in &self.scenarios {
            let Some(m) = &s.measurement else { continue };
            let flood_me = s.flood.as_ref().map(|flood| ("flood me", &flood.me));
            for (name, m) in [(s.label.as_str(), m)].into_iter().chain(flood_me) {
                if m.warmup_errors > 0 {
                    let _ = writeln!(out, "{name}: {} errors during warm-up", m.warmup_errors);
                }
                for (message, count) in &m.error_samples {
                    let _ = writeln!(out, "{name}: {count} x {message}");
                }
                if m.reconnects > 0 {
                    let _ = writeln!(out, "{name}: {} reconnects", m.reconnects);
                }
            }
            if let Some(rss) = s.flood.as_ref().and_then(|f| f.server_peak_rss_kib) {
                let _ = writeln!(out, "{}: server peak RSS {}", s.name, mib(rss));
            }
        }
        if let Some(database) = &self.database {
            write_database(&mut out, database);
        }
        if let Some(server) = &self.server {
            let _ = writeln!(out, "\nserver: ready in {:.1} ms", server.ready_ms);
            let mib = |kib: Option<u64>| kib.map_or("n/a".to_string(), mib);
            let _ = writeln!(
                out,
                "server: RSS {} when ready, {} idle after seeding, peak {}",
                mib(server.startup_rss_kib),
                mib(server.idle_rss_kib),
                mib(server.peak_rss_kib)
            );
            match (&server.stop_error, server.shutdown_ms) {
                (Some(err), _) => {
                    let _ = writeln!(out, "server: stop failed: {err}");
                }
                (None, Some(ms)) => {
                    let code = server
                        .exit_code
                        .map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
                    let _ = writeln!(out, "server: SIGTERM -> {code} in {ms:.1} ms");
                }
                (None, None) => {}
            }
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("creating {}: {err}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self).expect("the report serialises");
        std::fs::write(path, json + "\n")
            .map_err(|err| format!("writing {}: {err}", path.display()))
    }
}

impl std::fmt::Display for Ratio {
    /// `0.412 x storage`, or `(storage not measured)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ratio {
            Some(ratio) => write!(f, "{ratio:.3} x {}", self.name),
            None => write!(f, "({} not measured)", self.name),
        }
    }
}

/// The backend, and with `--users` the fill and the plans.
fn write_database(out: &mut String, database: &DatabaseReport) {
    let _ = write!(out, "\ndatabase: {}", database.backend.name());
    match (&database.name, &database.drop_error) {
        (Some(name), None) => {
            let _ = write!(out, " ({name}, dropped)");
        }
        (Some(name), Some(err)) => {
            let _ = write!(out, " ({name}, NOT dropped: {err})");
        }
        (None, _) => {}
    }
    out.push('\n');
    let Some(users) = &database.users else {
        return;
    };
    let _ = writeln!(
        out,
        "database: {} users added in {:.1} s, ANALYZE {:.1} s",
        users.count, users.fill_secs, users.analyze_secs
    );
    for plan in &users.plans {
        let _ = writeln!(out, "plan of {}:", plan.statement);
        if plan.plan.is_empty() {
            let _ = writeln!(out, "  (no rows)");
        }
        for line in &plan.plan {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// req/s, p50, p99, p99.9 and errors, in the table's columns.
fn write_numbers(out: &mut String, m: &Measurement) {
    let _ = write!(
        out,
        "{:>10.1} {:>8.3} {:>8.3} {:>8.3} {:>7}",
        m.requests_per_sec, m.p50_ms, m.p99_ms, m.p999_ms, m.errors
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scenario::Scenario::*;

    fn measured(step: Step, requests_per_sec: f64) -> ScenarioResult {
        let measurement = Measurement {
            requests: 1,
            errors: 0,
            warmup_errors: 0,
            requests_per_sec,
            p50_ms: 1.0,
            p99_ms: 1.0,
            p999_ms: 1.0,
            max_ms: 1.0,
            mean_ms: 1.0,
            shed: 0,
            shed_per_sec: 0.0,
            shed_p99_ms: None,
            reconnects: 0,
            error_samples: BTreeMap::new(),
        };
        ScenarioResult::new(step, 1, Ok(measurement))
    }

    fn report(scenarios: Vec<ScenarioResult>) -> Report {
        Report {
            run_id: "test".to_string(),
            started_at: String::new(),
            cores: 2,
            duration_secs: 1,
            warmup_secs: 0,
            smoke: false,
            server: None,
            database: None,
            scenarios,
            redis_keys_deleted: None,
        }
    }

    #[test]
    fn each_ratio_uses_the_baseline_measured_right_after_it() {
        let mut report = report(vec![
            measured(Step::alone(Signin), 50.0),
            measured(Step::after(Hashing, Signin), 100.0),
            measured(Step::alone(Signup), 40.0),
            measured(Step::after(Hashing, Signup), 50.0),
            measured(Step::alone(Hashing), 1000.0),
        ]);
        report.compute_ratios();
        let ratios: Vec<_> = report
            .scenarios
            .iter()
            .map(|s| s.baselines.first().and_then(|b| b.ratio))
            .collect();
        assert_eq!(ratios, [Some(0.5), None, Some(0.8), None, None]);
        let table = report.table();
        assert!(table.contains("hashing (after signup)"), "{table}");
        assert!(table.contains("0.800 x hashing"), "{table}");
    }

    #[test]
    fn no_ratio_without_a_paired_measurement() {
        let mut report = report(vec![
            measured(Step::alone(Refresh), 50.0),
            ScenarioResult::new(
                Step::after(Storage, Refresh),
                1,
                Err("no Redis".to_string()),
            ),
        ]);
        report.compute_ratios();
        let storage = Ratio {
            name: "storage",
            ratio: None,
        };
        assert_eq!(report.scenarios[0].baselines[0], storage);
        assert!(report.table().contains("(storage not measured)"));
    }

    #[test]
    fn refresh_shows_its_ratio_to_each_baseline() {
        let mut report = report(vec![
            measured(Step::alone(Refresh), 50.0),
            measured(Step::after(Storage, Refresh), 200.0),
            measured(Step::after(FrameworkPost, Refresh), 500.0),
        ]);
        report.compute_ratios();
        let ratios: Vec<_> = report.scenarios[0]
            .baselines
            .iter()
            .map(|b| (b.name, b.ratio))
            .collect();
        assert_eq!(
            ratios,
            [("storage", Some(0.25)), ("framework-post", Some(0.1))]
        );
        let table = report.table();
        assert!(
            table.contains("0.250 x storage, 0.100 x framework-post"),
            "{table}"
        );
    }
}
