//! `cairn bench`: drives a daemon over loopback and reports ingestion throughput
//! through `/v1/batch`, end to end: each event is checked, stored and handed to the
//! engine, whose effects commit with it.
//!
//! By default the daemon runs in this process on a fresh store (a SQLite file in a
//! temporary folder, or `--database`); with `--server` it drives a daemon running
//! elsewhere. Events are generated from the plan's declared events, with values of the
//! declared types, spread over many contacts.

use crate::ingest::IngestLimits;
use crate::server::{self, ServeConfig};
use cairn_plan::Plan;
use cairn_plan::schema::{Event, Field, Type};
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Told how far the bench has got: the phase (`ingestion`, `engine: runs started`,
/// `engine: timers fired`, `memory: timers scheduled`), what is done and the total.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<ReportProgress>>);

type ReportProgress = dyn Fn(&str, u64, u64) + Send + Sync;

impl Progress {
    pub fn new(report: impl Fn(&str, u64, u64) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(report)))
    }

    fn report(&self, phase: &str, done: usize, total: usize) {
        if let Some(report) = &self.0 {
            report(phase, done as u64, total as u64);
        }
    }

    /// Counts a phase's work, done by several tasks, from `before` up to `total`.
    fn tally(&self, phase: &'static str, before: usize, total: usize) -> Tally {
        Tally {
            progress: self.clone(),
            phase,
            done: Arc::new(AtomicUsize::new(before)),
            total,
        }
    }
}

/// A phase's count of work done, shared by its tasks; each step is reported.
#[derive(Clone)]
struct Tally {
    progress: Progress,
    phase: &'static str,
    done: Arc<AtomicUsize>,
    total: usize,
}

impl Tally {
    fn add(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.progress.report(self.phase, done, self.total);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress"
        } else {
            "Progress(none)"
        })
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Events to send in all.
    pub events: usize,
    /// Events per `/v1/batch` request.
    pub batch: usize,
    /// Requests in flight at once.
    pub connections: usize,
    /// Distinct contacts the events belong to.
    pub contacts: usize,
    /// The store of the in-process daemon; a temporary SQLite file when `None`.
    pub database_url: Option<String>,
    /// Drive this daemon instead of starting one (needs `write_key`).
    pub server: Option<String>,
    pub write_key: Option<String>,
    pub progress: Progress,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            events: 100_000,
            batch: 500,
            connections: 4,
            contacts: 10_000,
            database_url: None,
            server: None,
            write_key: None,
            progress: Progress::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: usize,
    pub requests: usize,
    pub seconds: f64,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// `sqlite`, `postgres`, or `remote`.
    pub target: String,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ingested {} events in {:.2} s: {:.0} events/s through /v1/batch ({}, {} requests); \
             request latency p50 {:.1} ms, p99 {:.1} ms",
            self.events,
            self.seconds,
            self.events_per_second,
            self.target,
            self.requests,
            self.p50_ms,
            self.p99_ms
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("the daemon refused a batch ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error(transparent)]
    Serve(#[from] server::ServeError),
}

/// Runs the benchmark on a runtime of its own.
pub fn run_blocking(plan: Plan, options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(plan, options))
}

pub async fn run(plan: Plan, options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let generator = Generator::new(&plan)?;
    if let Some(server) = &options.server {
        let key = options
            .write_key
            .clone()
            .ok_or_else(|| BenchError::Setup("`--server` needs the daemon's write key".into()))?;
        return drive(server, &key, &generator, options, "remote".into()).await;
    }

    let daemon = Daemon::start(plan, options.database_url.clone(), options.connections).await?;
    let report = drive(
        &daemon.url,
        WRITE_KEY,
        &generator,
        options,
        daemon.backend.clone(),
    )
    .await;
    daemon.stop().await;
    report
}

const WRITE_KEY: &str = "wk_bench";

/// A daemon running in this process on a fresh store, for one phase of the bench.
struct Daemon {
    url: String,
    backend: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
    state_dir: std::path::PathBuf,
    /// On PostgreSQL, the schema of its own this phase ran in: (server URL, schema).
    schema: Option<(String, String)>,
}

impl Daemon {
    async fn start(
        plan: Plan,
        database_url: Option<String>,
        connections: usize,
    ) -> Result<Daemon, BenchError> {
        static DAEMONS: AtomicUsize = AtomicUsize::new(0);
        let seq = DAEMONS.fetch_add(1, Ordering::Relaxed);
        let state_dir = std::env::temp_dir().join(format!(
            "cairn-bench-{}-{}-{seq}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond(),
        ));
        std::fs::create_dir_all(&state_dir).map_err(|e| {
            BenchError::Setup(format!("cannot create `{}`: {e}", state_dir.display()))
        })?;
        let (database, schema) = match database_url {
            // Each phase gets a fresh schema, so one phase's rows do not weigh on the next.
            Some(url) if crate::store::is_postgres_url(&url) => {
                let name = format!("cairn_bench_{}_{seq}", std::process::id());
                crate::store::create_postgres_schema(&url, &name)
                    .await
                    .map_err(|e| {
                        BenchError::Setup(format!("cannot create a schema on `{url}`: {e}"))
                    })?;
                (
                    crate::store::postgres_url_in_schema(&url, &name),
                    Some((url, name)),
                )
            }
            Some(url) => (url, None),
            None => (
                format!("sqlite:{}", state_dir.join("bench.db").display()),
                None,
            ),
        };
        let mut config = ServeConfig::new(database, state_dir.clone());
        config.plan = Some(plan);
        config.write_key = Some(WRITE_KEY.into());
        config.admin_token = Some("at_bench".into());
        config.ingest = IngestLimits {
            queue: 4 * connections.max(1),
            ..IngestLimits::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BenchError::Setup(format!("cannot listen on loopback: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stop_rx.await;
            };
            server::run(config, listener, shutdown, move |started| {
                let _ = ready_tx.send(started.backend.as_str().to_string());
            })
            .await
        });
        let backend = match ready_rx.await {
            Ok(backend) => backend,
            Err(_) => {
                let error = task
                    .await
                    .map_err(|e| BenchError::Setup(e.to_string()))?
                    .err()
                    .map_or_else(|| "the daemon did not start".to_string(), |e| e.to_string());
                return Err(BenchError::Setup(error));
            }
        };
        Ok(Daemon {
            url: format!("http://{address}"),
            backend,
            stop,
            task,
            state_dir,
            schema,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        let _ = std::fs::remove_dir_all(&self.state_dir);
        if let Some((url, name)) = self.schema
            && let Err(e) = crate::store::drop_postgres_schema(&url, &name).await
        {
            tracing::warn!(schema = %name, error = %e, "the bench schema was not dropped");
        }
    }
}

/// Sends every batch from `options.connections` concurrent clients.
async fn drive(
    url: &str,
    write_key: &str,
    generator: &Generator,
    options: &BenchOptions,
    target: String,
) -> Result<BenchReport, BenchError> {
    let batch = options.batch.max(1);
    let requests = options.events.div_ceil(batch);
    // Bodies are made before the clock starts: the figure is the daemon's.
    let bodies: Vec<Vec<u8>> = (0..requests)
        .map(|r| {
            let start = r * batch;
            let end = (start + batch).min(options.events);
            let messages: Vec<Json> = (start..end)
                .map(|i| generator.message(i, options.contacts.max(1)))
                .collect();
            serde_json::to_vec(&json!({ "batch": messages })).unwrap_or_default()
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let tally = options.progress.tally("ingestion", 0, options.events);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.connections.max(1))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.connections.max(1) {
        let client = client.clone();
        let bodies = bodies.clone();
        let next = next.clone();
        let url = format!("{url}/v1/batch");
        let key = write_key.to_string();
        let (tally, events) = (tally.clone(), options.events);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok(latencies);
                };
                loop {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .basic_auth(&key, Some(""))
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| BenchError::Setup(format!("a request failed: {e}")))?;
                    let status = response.status().as_u16();
                    if status == 429 {
                        // Overload: back off as the daemon asks, then send it again.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    if status != 200 {
                        let body = response.text().await.unwrap_or_default();
                        return Err(BenchError::Refused { status, body });
                    }
                    latencies.push(sent.elapsed());
                    tally.add(batch.min(events - i * batch));
                    break;
                }
            }
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.map_err(|e| BenchError::Setup(e.to_string()))??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a short list"
        )]
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[index.min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    #[expect(clippy::cast_precision_loss, reason = "a rate for people")]
    let events_per_second = options.events as f64 / seconds.max(f64::EPSILON);
    Ok(BenchReport {
        events: options.events,
        requests,
        seconds,
        events_per_second,
        p50_ms: percentile(0.5),
        p99_ms: percentile(0.99),
        target,
    })
}

/// Makes `track` messages for the plan's declared events, with values of their types.
struct Generator {
    events: Vec<Event>,
    plan: Plan,
}

impl Generator {
    fn new(plan: &Plan) -> Result<Generator, BenchError> {
        let mut events: Vec<Event> = plan
            .schema
            .events
            .values()
            .filter(|e| !e.builtin)
            .cloned()
            .collect();
        if events.is_empty() {
            events = plan
                .schema
                .events
                .values()
                .filter(|e| e.name == "page_viewed")
                .cloned()
                .collect();
        }
        if events.is_empty() {
            return Err(BenchError::Setup(
                "the plan declares no events to send".into(),
            ));
        }
        Ok(Generator {
            events,
            plan: plan.clone(),
        })
    }

    fn message(&self, i: usize, contacts: usize) -> Json {
        let event = &self.events[i % self.events.len()];
        let properties = self.fields(&event.fields, i);
        json!({
            "type": "track",
            "userId": format!("bench-{}", i % contacts),
            "event": event.wire_name.clone().unwrap_or_else(|| event.name.clone()),
            "messageId": format!("bench-{i}-{}", std::process::id()),
            "properties": properties,
        })
    }

    fn fields(&self, fields: &[Field], i: usize) -> Map<String, Json> {
        fields
            .iter()
            .filter(|f| !f.optional)
            .map(|f| (f.name.clone(), self.value(&f.ty, &f.name, i)))
            .collect()
    }

    fn value(&self, ty: &Type, name: &str, i: usize) -> Json {
        let currency = self.plan.default_currency.as_deref().unwrap_or("EUR");
        match ty {
            Type::Scalar { name: scalar } => match scalar.as_str() {
                "money" => json!(format!("{}.{:02} {currency}", 10 + i % 90, i % 100)),
                "number" | "int" | "decimal" | "percent" | "duration" => json!(i % 1000),
                "bool" => json!(i.is_multiple_of(2)),
                "date" => json!("2026-01-15"),
                "datetime" => json!("2026-01-15T10:00:00Z"),
                "time" => json!("09:30"),
                "email" => json!(format!("bench{i}@example.com")),
                "phone" => json!(format!("+3361{:07}", i % 10_000_000)),
                "url" => json!(format!("https://bench.example/{name}/{i}")),
                "timezone" => json!("Europe/Paris"),
                _ => json!(format!("{name}-{i}")),
            },
            Type::Enum { values } => json!(values.get(i % values.len().max(1))),
            Type::List { item } => json!([self.value(item, name, i)]),
            Type::Record { name: record } => match self.plan.schema.records.get(record) {
                Some(r) => Json::Object(self.fields(&r.fields, i)),
                None => json!({}),
            },
        }
    }
}

/// What the engine part of the bench does: journeys moved by timers, and a memory
/// measure with many timers scheduled. The plan must declare the events
/// `bench_start` (a journey that waits 5 s, moves, waits 1 s and ends) and
/// `bench_hold` (a journey that waits 30 days).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Runs started by `bench_start`, each then moved by two timers.
    pub runs: usize,
    /// `bench_start` events per second (0: as fast as the daemon takes them). Each
    /// makes three transitions: the run's start and its two timers.
    pub rate: usize,
    /// Runs left waiting on a 30-day timer, for the memory measure (0: skipped).
    pub timers: usize,
    pub database_url: Option<String>,
    pub connections: usize,
    pub batch: usize,
    pub progress: Progress,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            runs: 100_000,
            rate: 7_000,
            timers: 1_000_000,
            database_url: None,
            connections: 4,
            batch: 500,
            progress: Progress::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineReport {
    pub backend: String,
    pub runs: usize,
    /// Runs created or moved during the phase.
    pub transitions: u64,
    pub seconds: f64,
    pub transitions_per_second: f64,
    /// Transitions per second in the steady state: from when both timers of the first
    /// runs fire until the last run starts, while starts and timers overlap. `None`
    /// when that window is under a second (too few runs for the rate).
    pub steady_per_second: Option<f64>,
    pub timers_fired: u64,
    /// Timer lateness percentiles, as the upper bound of the histogram bucket they
    /// fall in (seconds); `None` beyond the last bucket.
    pub lateness_p50: Option<f64>,
    pub lateness_p99: Option<f64>,
    pub lateness_mean_ms: f64,
    pub memory: Option<MemoryReport>,
}

#[derive(Debug, Clone)]
pub struct MemoryReport {
    pub timers: usize,
    /// Resident memory of this process (daemon and bench client), MiB, before the
    /// timers were scheduled and after each quarter of them.
    pub rss_before_mib: f64,
    pub rss_after_mib: Vec<(usize, f64)>,
    pub seconds: f64,
}

impl std::fmt::Display for EngineReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = |b: Option<f64>| b.map_or_else(|| "> 60 s".to_string(), |b| format!("≤ {b} s"));
        if self.runs > 0 {
            let steady = self.steady_per_second.map_or_else(String::new, |rate| {
                format!(", steady state {rate:.0} transitions/s with timers firing")
            });
            writeln!(
                f,
                "engine: {} runs, {} transitions in {:.2} s: {:.0} transitions/s{steady} ({}), {} timers fired; \
             timer lateness p50 {}, p99 {}, mean {:.0} ms",
                self.runs,
                self.transitions,
                self.seconds,
                self.transitions_per_second,
                self.backend,
                self.timers_fired,
                bound(self.lateness_p50),
                bound(self.lateness_p99),
                self.lateness_mean_ms
            )?;
        }
        if let Some(memory) = &self.memory {
            let last = memory.rss_after_mib.last().map_or(0.0, |(_, m)| *m);
            write!(
                f,
                "memory: {} timers scheduled in {:.1} s; resident memory {:.0} MiB before, {:.0} MiB after (",
                memory.timers, memory.seconds, memory.rss_before_mib, last
            )?;
            for (i, (n, mib)) in memory.rss_after_mib.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{n}: {mib:.0} MiB")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The daemon's counters, read from `/metrics`.
#[derive(Debug, Clone, Default)]
struct Counters {
    transitions: u64,
    timers_fired: u64,
    /// Cumulative lateness buckets: (upper bound in seconds, count).
    lateness: Vec<(f64, u64)>,
    lateness_sum: f64,
    lateness_count: u64,
}

async fn counters(client: &reqwest::Client, url: &str) -> Result<Counters, BenchError> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .map_err(|e| BenchError::Setup(format!("cannot read /metrics: {e}")))?
        .text()
        .await
        .map_err(|e| BenchError::Setup(format!("cannot read /metrics: {e}")))?;
    let mut c = Counters::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let number: f64 = value.parse().unwrap_or(0.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "counters are whole numbers"
        )]
        let whole = number as u64;
        match name {
            "cairn_run_transitions_total" => c.transitions = whole,
            "cairn_timers_fired_total" => c.timers_fired = whole,
            "cairn_timer_lateness_seconds_sum" => c.lateness_sum = number,
            "cairn_timer_lateness_seconds_count" => c.lateness_count = whole,
            _ => {
                if let Some(bound) = name
                    .strip_prefix("cairn_timer_lateness_seconds_bucket{le=\"")
                    .and_then(|b| b.strip_suffix("\"}"))
                    && let Ok(bound) = bound.parse::<f64>()
                {
                    c.lateness.push((bound, whole));
                }
            }
        }
    }
    Ok(c)
}

/// The bucket bound under which fraction `p` of the timers fired (between two reads).
fn lateness_percentile(before: &Counters, after: &Counters, p: f64) -> Option<f64> {
    let total = after.lateness_count.saturating_sub(before.lateness_count);
    if total == 0 {
        return Some(0.0);
    }
    for (bound, count) in after.lateness.iter().filter(|(b, _)| b.is_finite()) {
        let earlier = before
            .lateness
            .iter()
            .find(|(b, _)| b == bound)
            .map_or(0, |(_, n)| *n);
        #[expect(clippy::cast_precision_loss, reason = "a fraction")]
        let fraction = count.saturating_sub(earlier) as f64 / total as f64;
        if fraction >= p {
            return Some(*bound);
        }
    }
    None
}

/// When the steady state begins: the engine project's runs wait 5 s, then 1 s, so from
/// then on starts and both timers come at the same rate.
const STEADY_FROM_SECS: f64 = 6.5;

/// Transitions per second between the first sample at or after `from` seconds and the
/// last sample; `None` when they are less than a second apart.
fn steady_rate(samples: &[(f64, u64)], from: f64) -> Option<f64> {
    let first = samples.iter().find(|(t, _)| *t >= from)?;
    let last = samples.last()?;
    let span = last.0 - first.0;
    #[expect(clippy::cast_precision_loss, reason = "a rate for people")]
    (span >= 1.0).then(|| last.1.saturating_sub(first.1) as f64 / span)
}

/// Resident memory of this process, MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sends `count` events named `event` (wire name), one per contact `prefix-i`, in
/// batches from `connections` clients, at `rate` events/s (0: unpaced). Bodies are made
/// as they are sent, so a million events cost no memory up front. What is sent is
/// counted in `tally`.
#[expect(
    clippy::too_many_arguments,
    reason = "one private helper of two phases"
)]
async fn send_paced(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    prefix: &str,
    count: usize,
    options: &EngineOptions,
    rate: usize,
    tally: &Tally,
) -> Result<(), BenchError> {
    let batch = options.batch.max(1);
    let requests = count.div_ceil(batch);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.connections.max(1) {
        let (client, next) = (client.clone(), next.clone());
        let tally = tally.clone();
        let (url, event, prefix) = (
            format!("{url}/v1/batch"),
            event.to_string(),
            prefix.to_string(),
        );
        tasks.spawn(async move {
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests {
                    return Ok::<(), BenchError>(());
                }
                let start = r * batch;
                let end = (start + batch).min(count);
                if rate > 0 {
                    #[expect(clippy::cast_precision_loss, reason = "a schedule")]
                    let at = Duration::from_secs_f64(start as f64 / rate as f64);
                    tokio::time::sleep_until((started + at).into()).await;
                }
                let messages: Vec<Json> = (start..end)
                    .map(|i| {
                        json!({"type": "track", "userId": format!("{prefix}-{i}"),
                               "messageId": format!("{prefix}-{i}"), "event": event,
                               "properties": {"n": i}})
                    })
                    .collect();
                let body = serde_json::to_vec(&json!({ "batch": messages })).unwrap_or_default();
                loop {
                    let response = client
                        .post(&url)
                        .basic_auth(WRITE_KEY, Some(""))
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| BenchError::Setup(format!("a request failed: {e}")))?;
                    let status = response.status().as_u16();
                    if status == 429 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    if status != 200 {
                        let body = response.text().await.unwrap_or_default();
                        return Err(BenchError::Refused { status, body });
                    }
                    tally.add(end - start);
                    break;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    Ok(())
}

/// The engine bench on a runtime of its own.
pub fn run_engine_blocking(
    plan: Plan,
    options: &EngineOptions,
) -> Result<EngineReport, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_engine(plan, options))
}

/// Starts `runs` journeys at `rate` per second, each moved by a timer 5 s after its
/// start and another 1 s later, and measures transitions per second and how late the
/// timers fired; then schedules `timers` 30-day timers and measures resident memory.
pub async fn run_engine(plan: Plan, options: &EngineOptions) -> Result<EngineReport, BenchError> {
    for event in ["bench_start", "bench_hold"] {
        if !plan.schema.events.contains_key(event) {
            return Err(BenchError::Setup(format!(
                "the engine bench's plan declares no `{event}` event"
            )));
        }
    }
    let daemon = Daemon::start(plan, options.database_url.clone(), options.connections).await?;
    let result = engine_phases(&daemon, options).await;
    daemon.stop().await;
    result
}

async fn engine_phases(
    daemon: &Daemon,
    options: &EngineOptions,
) -> Result<EngineReport, BenchError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.connections.max(1))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let url = &daemon.url;
    let before = counters(&client, url).await?;
    let started = Instant::now();
    // The transitions counter, read every quarter second while runs start.
    let (stop_sampling, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut samples: Vec<(f64, u64)> = Vec::new();
            loop {
                if let Ok(now) = counters(&client, &url).await {
                    samples.push((started.elapsed().as_secs_f64(), now.transitions));
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped.changed() => return samples,
                }
            }
        })
    };
    let sent = send_paced(
        &client,
        url,
        "Bench Start",
        "run",
        options.runs,
        options,
        options.rate,
        &options
            .progress
            .tally("engine: runs started", 0, options.runs),
    )
    .await;
    let _ = stop_sampling.send(true);
    let samples = sampler.await.unwrap_or_default();
    sent?;
    let steady_per_second = steady_rate(&samples, STEADY_FROM_SECS);
    // Every run is moved by two timers.
    let wanted = before.timers_fired + 2 * options.runs as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    let after = loop {
        let now = counters(&client, url).await?;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "counts of this bench's timers"
        )]
        options.progress.report(
            "engine: timers fired",
            now.timers_fired.saturating_sub(before.timers_fired) as usize,
            2 * options.runs,
        );
        if now.timers_fired >= wanted {
            break now;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "the timers did not all fire within 10 minutes ({} of {})",
                now.timers_fired - before.timers_fired,
                2 * options.runs
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    // A timer counts as fired inside its transaction, its transitions once committed:
    // read again once the last batch has surely committed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = Counters {
        transitions: counters(&client, url).await?.transitions,
        ..after
    };
    let transitions = after.transitions - before.transitions;
    let fired = after.lateness_count.saturating_sub(before.lateness_count);
    #[expect(clippy::cast_precision_loss, reason = "rates for people")]
    let report = EngineReport {
        backend: daemon.backend.clone(),
        runs: options.runs,
        transitions,
        seconds,
        transitions_per_second: transitions as f64 / seconds.max(f64::EPSILON),
        steady_per_second,
        timers_fired: after.timers_fired - before.timers_fired,
        lateness_p50: lateness_percentile(&before, &after, 0.5),
        lateness_p99: lateness_percentile(&before, &after, 0.99),
        lateness_mean_ms: (after.lateness_sum - before.lateness_sum) * 1000.0 / fired.max(1) as f64,
        memory: None,
    };
    if options.timers == 0 {
        return Ok(report);
    }
    let rss_before_mib = rss_mib();
    let started = Instant::now();
    let mut rss_after_mib = Vec::new();
    let quarter = options.timers.div_ceil(4);
    let mut done = 0;
    while done < options.timers {
        let n = quarter.min(options.timers - done);
        send_paced(
            &client,
            url,
            "Bench Hold",
            &format!("hold{done}"),
            n,
            options,
            0,
            &options
                .progress
                .tally("memory: timers scheduled", done, options.timers),
        )
        .await?;
        done += n;
        rss_after_mib.push((done, rss_mib()));
    }
    Ok(EngineReport {
        memory: Some(MemoryReport {
            timers: options.timers,
            rss_before_mib,
            rss_after_mib,
            seconds: started.elapsed().as_secs_f64(),
        }),
        ..report
    })
}

#[cfg(test)]
mod tests {
    use super::{BenchOptions, Progress, run, steady_rate};
    use std::sync::{Arc, Mutex};

    /// Ingestion reports its progress as batches are accepted, and ends at the total.
    #[tokio::test]
    async fn ingestion_reports_its_progress_up_to_every_event() {
        let mut plan = crate::test_plans::with_signup("shop");
        plan.seal();
        let reports: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
        let sink = reports.clone();
        let options = BenchOptions {
            events: 1_050,
            batch: 100,
            connections: 2,
            contacts: 50,
            progress: Progress::new(move |phase, done, total| {
                if let Ok(mut reports) = sink.lock() {
                    reports.push((phase.to_string(), done, total));
                }
            }),
            ..BenchOptions::default()
        };
        let report = run(plan, &options).await.expect("the bench runs");
        assert_eq!(report.events, 1_050);
        let reports = reports.lock().expect("reports").clone();
        // One report per request (11: ten of 100, one of 50), each for all 1,050.
        assert_eq!(reports.len(), 11, "{reports:?}");
        assert!(
            reports
                .iter()
                .all(|(phase, _, total)| phase == "ingestion" && *total == 1_050)
        );
        let mut done: Vec<u64> = reports.iter().map(|r| r.1).collect();
        done.sort_unstable();
        assert_eq!(done.last(), Some(&1_050), "{reports:?}");
        assert!(
            done.windows(2).all(|w| w[0] < w[1]),
            "each report counts more: {done:?}"
        );
    }

    #[test]
    fn steady_rate_spans_from_the_start_of_the_window_to_the_last_sample() {
        let samples = [
            (0.0, 0),
            (6.0, 100),
            (6.5, 1_000),
            (7.5, 3_000),
            (8.5, 5_000),
        ];
        assert_eq!(steady_rate(&samples, 6.5), Some(2_000.0));
        // Under a second of steady state says nothing.
        assert_eq!(steady_rate(&samples[..4], 7.0), None);
        assert_eq!(steady_rate(&samples, 9.0), None);
    }
}
