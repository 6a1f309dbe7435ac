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

    let state_dir = std::env::temp_dir().join(format!(
        "cairn-bench-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| BenchError::Setup(format!("cannot create `{}`: {e}", state_dir.display())))?;
    let database = options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", state_dir.join("bench.db").display()));
    let write_key = "wk_bench".to_string();
    let mut config = ServeConfig::new(database, state_dir.clone());
    config.plan = Some(plan);
    config.write_key = Some(write_key.clone());
    config.admin_token = Some("at_bench".into());
    config.ingest = IngestLimits {
        queue: 4 * options.connections.max(1),
        ..IngestLimits::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::Setup(format!("cannot listen on loopback: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
    let daemon = tokio::spawn(async move {
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
            let error = daemon
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?
                .err()
                .map_or_else(|| "the daemon did not start".to_string(), |e| e.to_string());
            return Err(BenchError::Setup(error));
        }
    };
    let report = drive(
        &format!("http://{address}"),
        &write_key,
        &generator,
        options,
        backend,
    )
    .await;
    let _ = stop_tx.send(());
    let _ = daemon.await;
    let _ = std::fs::remove_dir_all(&state_dir);
    report
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
