//! The closed-loop driver: N connections, each sending its next request only
//! when the previous one has answered, for a warm-up and then a measured window.
//!
//! A closed loop measures what the server sustains at a fixed concurrency
//! (like N busy clients) rather than how it queues under an arrival rate it
//! cannot keep up with; that is the shape every scenario and baseline shares,
//! so their ratios compare like with like.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Distinct error messages kept per scenario, to say *what* failed.
const ERROR_SAMPLES: usize = 8;
/// Latencies are recorded in microseconds, up to a minute, 3 significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// One request's result: `Err` carries a short message (e.g. `me: HTTP 401`).
pub type Outcome = Result<Answer, String>;

/// How an answered request counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Served (2xx): a latency sample.
    Served,
    /// Turned away by design (`flood`: 503 with `Retry-After` when the
    /// hashing queue is full): counted and timed apart, not an error.
    Shed,
}

/// For `.map(served)` on whatever a successful request returns.
pub fn served<T>(_: T) -> Answer {
    Answer::Served
}

/// When recording starts (after the warm-up) and when the loops stop.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    measure_from: Instant,
    until: Instant,
    duration: Duration,
}

impl Window {
    pub fn starting_now(warmup: Duration, duration: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Window {
            measure_from,
            until: measure_from + duration,
            duration,
        }
    }

    /// Whether a loop should send another request.
    pub fn running(&self) -> bool {
        Instant::now() < self.until
    }
}

/// One connection's (or thread's) tally; merged into a [`Measurement`] at the end.
pub struct Recorder {
    window: Window,
    latencies: Histogram<u64>,
    /// Latencies of shed requests, made on the first one.
    shed: Option<Histogram<u64>>,
    errors: u64,
    warmup_errors: u64,
    error_samples: BTreeMap<String, u64>,
    reconnects: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

impl Recorder {
    pub fn new(window: Window) -> Self {
        Recorder {
            window,
            latencies: histogram(),
            shed: None,
            errors: 0,
            warmup_errors: 0,
            error_samples: BTreeMap::new(),
            reconnects: 0,
        }
    }

    /// Records a request that started at `started` and has just finished.
    ///
    /// The requests that finish inside the measured window count, wherever
    /// they started: in a closed loop that is the rate the server sustains.
    /// (Counting only those that also start inside it would miss a share
    /// latency/window long: 20% of 2-second sign-ins in a 10-second window.)
    /// Errors during the warm-up are counted apart: a smoke run must see them.
    pub fn record(&mut self, started: Instant, outcome: Outcome) {
        let finished = Instant::now();
        let measured = finished >= self.window.measure_from && finished <= self.window.until;
        let micros = || {
            let micros = finished.duration_since(started).as_micros();
            u64::try_from(micros).unwrap_or(u64::MAX).max(1)
        };
        match outcome {
            Ok(Answer::Served) if measured => self.latencies.saturating_record(micros()),
            Ok(Answer::Shed) if measured => {
                self.shed
                    .get_or_insert_with(histogram)
                    .saturating_record(micros());
            }
            Ok(_) => {}
            Err(message) => {
                if measured {
                    self.errors += 1;
                } else if finished < self.window.measure_from {
                    self.warmup_errors += 1;
                }
                self.sample_error(message);
            }
        }
    }

    fn sample_error(&mut self, message: String) {
        if let Some(count) = self.error_samples.get_mut(&message) {
            *count += 1;
        } else if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.insert(message, 1);
        }
    }

    fn merge(&mut self, other: Recorder) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms share bounds");
        if let Some(shed) = other.shed {
            self.shed
                .get_or_insert_with(histogram)
                .add(shed)
                .expect("histograms share bounds");
        }
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        self.warmup_errors += other.warmup_errors;
        for (message, count) in other.error_samples {
            if let Some(total) = self.error_samples.get_mut(&message) {
                *total += count;
            } else if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.insert(message, count);
            }
        }
    }

    /// Merges every recorder into the scenario's summary.
    pub fn summarise(recorders: impl IntoIterator<Item = Recorder>) -> Measurement {
        let mut recorders = recorders.into_iter();
        let mut total = recorders.next().expect("at least one connection");
        for recorder in recorders {
            total.merge(recorder);
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        let successes = total.latencies.len();
        let seconds = total.window.duration.as_secs_f64();
        let shed = total.shed.as_ref().map_or(0, Histogram::len);
        Measurement {
            requests: successes,
            errors: total.errors,
            warmup_errors: total.warmup_errors,
            requests_per_sec: successes as f64 / seconds,
            p50_ms: ms(total.latencies.value_at_quantile(0.50)),
            p99_ms: ms(total.latencies.value_at_quantile(0.99)),
            p999_ms: ms(total.latencies.value_at_quantile(0.999)),
            max_ms: ms(total.latencies.max()),
            mean_ms: total.latencies.mean() / 1000.0,
            shed,
            shed_per_sec: shed as f64 / seconds,
            shed_p99_ms: total.shed.map(|h| ms(h.value_at_quantile(0.99))),
            reconnects: total.reconnects,
            error_samples: total.error_samples,
        }
    }
}

/// A scenario's result over its measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Successful (2xx) requests completed inside the window.
    pub requests: u64,
    /// Non-2xx answers and transport errors inside the window.
    pub errors: u64,
    pub warmup_errors: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Requests turned away by design (only `flood` has any), and their p99.
    pub shed: u64,
    pub shed_per_sec: f64,
    pub shed_p99_ms: Option<f64>,
    /// Connections the server closed and the client opened again (warm-up included).
    pub reconnects: u64,
    /// Up to a few distinct error messages with their counts (warm-up included).
    pub error_samples: BTreeMap<String, u64>,
}

impl Measurement {
    /// Anything a smoke run must refuse: errors at any point, or no success at all.
    pub fn is_clean(&self) -> bool {
        self.errors == 0 && self.warmup_errors == 0 && self.requests > 0
    }
}

/// One keep-alive connection's worth of client state.
pub trait Connection: Send + 'static {
    /// Sends one request and waits for its full answer.
    fn request(&mut self) -> impl Future<Output = Outcome> + Send;

    /// How often its connection had to be opened again.
    fn reconnects(&self) -> u64 {
        0
    }
}

/// Runs every connection in its own task as a closed loop over one window.
pub async fn run<C: Connection>(
    connections: Vec<C>,
    warmup: Duration,
    duration: Duration,
) -> Measurement {
    run_in(Window::starting_now(warmup, duration), connections).await
}

/// [`run`] over a given window (for loads that run side by side).
pub async fn run_in<C: Connection>(window: Window, connections: Vec<C>) -> Measurement {
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            tokio::spawn(async move {
                let mut recorder = Recorder::new(window);
                while window.running() {
                    let started = Instant::now();
                    let outcome = connection.request().await;
                    recorder.record(started, outcome);
                }
                recorder.reconnects = connection.reconnects();
                recorder
            })
        })
        .collect();
    let mut recorders = Vec::with_capacity(tasks.len());
    for task in tasks {
        recorders.push(task.await.expect("a load task panicked"));
    }
    Recorder::summarise(recorders)
}
