//! The Segment-compatible tracking API: `POST /v1/identify`, `/v1/track`, `/v1/page`,
//! `/v1/screen`, `/v1/group`, `/v1/alias` and `/v1/batch`.
//!
//! A request is authenticated (the write key as HTTP basic auth user), size-checked,
//! parsed and checked against the active plan *before* anything is stored: a request
//! with one bad message is refused whole with a 400 naming each rejected message and
//! why. Accepted requests go through a bounded queue to the writers, which commit
//! several requests per transaction (each event stored and handed to the engine in that
//! same transaction) and answer once committed; a full queue answers 429 with
//! `Retry-After`.

pub mod schema;
pub mod segment;

use crate::process::{Core, IngestReport};
use crate::store::StoreError;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use segment::{Call, IngestSchema, Input, Rejected};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

/// Limits of the tracking API.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// One message, alone or inside a batch (Segment's 32 KB).
    pub max_message_bytes: usize,
    /// One batch request (Segment's 500 KB).
    pub max_batch_bytes: usize,
    /// Requests waiting for a writer before new ones get 429.
    pub queue: usize,
    /// Messages one writer transaction takes at most.
    pub max_group: usize,
    /// Writer tasks: one on SQLite (one writer anyway), more on PostgreSQL.
    pub writers: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_message_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
            queue: 512,
            max_group: 4_000,
            writers: 1,
        }
    }
}

/// One accepted request waiting for a writer.
struct Job {
    inputs: Vec<Input>,
    received_at: i64,
    reply: oneshot::Sender<Result<IngestReport, String>>,
}

/// What the handlers share.
pub struct IngestState {
    core: Arc<Core>,
    /// SHA-256 of the write key, hex.
    write_key_sha256: String,
    limits: IngestLimits,
    queue: mpsc::Sender<Job>,
    /// The active plan's schema, by version, rebuilt when the version changes.
    schema: RwLock<Option<(i64, Arc<IngestSchema>)>>,
}

/// Hex SHA-256 of a secret: what the store keeps of write keys and tokens.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tracking API's routes, and the writer tasks behind them (they end when the
/// router is dropped and the queue drained).
pub fn router(
    core: Arc<Core>,
    write_key_sha256: String,
    limits: IngestLimits,
) -> (Router, Vec<tokio::task::JoinHandle<()>>) {
    let (queue, receiver) = mpsc::channel(limits.queue.max(1));
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let writers = (0..limits.writers.max(1))
        .map(|_| {
            let core = core.clone();
            let receiver = receiver.clone();
            let max_group = limits.max_group;
            tokio::spawn(async move { writer(core, receiver, max_group).await })
        })
        .collect();
    let state = Arc::new(IngestState {
        core,
        write_key_sha256,
        limits,
        queue,
        schema: RwLock::new(None),
    });
    let router = Router::new()
        .route("/v1/identify", post(identify))
        .route("/v1/track", post(track))
        .route("/v1/page", post(page))
        .route("/v1/screen", post(screen))
        .route("/v1/group", post(group))
        .route("/v1/alias", post(alias))
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .with_state(state);
    (router, writers)
}

async fn identify(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, Some(Call::Identify), request).await
}
async fn track(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, Some(Call::Track), request).await
}
async fn page(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, Some(Call::Page), request).await
}
async fn screen(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, Some(Call::Screen), request).await
}
async fn group(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, Some(Call::Group), request).await
}
async fn alias(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, Some(Call::Alias), request).await
}
async fn batch(State(s): State<Arc<IngestState>>, request: Request) -> Response {
    handle(&s, None, request).await
}

/// A JSON error response.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// A response sent before the request body was read: it asks the client to close the
/// connection, since the unread body leaves it unusable for the next request (a client
/// that reused it would see its next request fail).
fn unread_body(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `call` is the endpoint's kind; `None` for a batch.
async fn handle(state: &IngestState, call: Option<Call>, request: Request) -> Response {
    let metrics = &state.core.metrics;
    let (parts, body) = request.into_parts();
    if !authorised(&parts.headers, &state.write_key_sha256) {
        metrics.events_rejected.inc();
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a valid write key is required as the HTTP basic auth user name",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"cairn\""),
        );
        return unread_body(response);
    }
    if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING)
        && encoding.as_bytes() != b"identity"
    {
        return unread_body(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "compressed request bodies are not supported: send plain JSON",
        ));
    }
    let limit = match call {
        None => state.limits.max_batch_bytes,
        Some(_) => state.limits.max_message_bytes,
    };
    let too_large = || {
        metrics.events_rejected.inc();
        unread_body(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} KB, the limit for {}",
                limit / 1024,
                if call.is_none() {
                    "a batch"
                } else {
                    "one message"
                }
            ),
        ))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), limit).await else {
        return too_large();
    };
    let received_at = state.core.now();
    let Some(schema) = schema(state) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no plan is deployed yet: deploy one with `cairn deploy` before sending events",
        );
    };

    let (inputs, rejected) = match read(state, &schema, call, &bytes, received_at) {
        Ok(read) => read,
        Err(response) => return *response,
    };
    if !rejected.is_empty() {
        let total = inputs.len() + rejected.len();
        metrics.events_rejected.add(rejected.len() as u64);
        let status = if rejected
            .iter()
            .any(|r| r.errors.iter().any(|e| e.starts_with("message is")))
        {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        return (
            status,
            axum::Json(json!({
                "error": format!(
                    "{} of {total} message{} rejected; nothing was stored",
                    rejected.len(),
                    if total == 1 { " was" } else { "s were" }
                ),
                "rejected": rejected,
            })),
        )
            .into_response();
    }

    let (reply, answer) = oneshot::channel();
    let job = Job {
        inputs,
        received_at,
        reply,
    };
    if let Err(e) = state.queue.try_send(job) {
        return match e {
            mpsc::error::TrySendError::Full(_) => {
                metrics.requests_throttled.inc();
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "the daemon is busy: retry after the time in `Retry-After`",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            mpsc::error::TrySendError::Closed(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon is shutting down",
            ),
        };
    }
    match answer.await {
        Ok(Ok(report)) => {
            metrics.events_duplicate.add(report.duplicates);
            axum::Json(json!({ "success": true })).into_response()
        }
        Ok(Err(message)) => error(StatusCode::SERVICE_UNAVAILABLE, message),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        ),
    }
}

/// The messages of a request: accepted inputs and rejections, or an error response
/// for a body that is not a request at all.
fn read(
    state: &IngestState,
    schema: &IngestSchema,
    call: Option<Call>,
    bytes: &[u8],
    received_at: i64,
) -> Result<(Vec<Input>, Vec<Rejected>), Box<Response>> {
    let invalid_json = |e: serde_json::Error| {
        state.core.metrics.events_rejected.inc();
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        ))
    };
    let mut inputs = Vec::new();
    let mut rejected = Vec::new();
    match call {
        Some(call) => {
            let message: Json = serde_json::from_slice(bytes).map_err(invalid_json)?;
            match schema.read(0, &message, Some(call), None, received_at) {
                Ok(input) => inputs.push(input),
                Err(r) => rejected.push(r),
            }
        }
        None => {
            #[derive(serde::Deserialize)]
            struct BatchBody<'a> {
                #[serde(borrow)]
                batch: Option<Vec<&'a serde_json::value::RawValue>>,
                #[serde(rename = "sentAt")]
                sent_at: Option<Json>,
            }
            let body: BatchBody<'_> = serde_json::from_slice(bytes).map_err(invalid_json)?;
            let Some(messages) = body.batch else {
                state.core.metrics.events_rejected.inc();
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "a batch needs a `batch` list of messages",
                )));
            };
            for (index, raw) in messages.iter().enumerate() {
                let size = raw.get().len();
                if size > state.limits.max_message_bytes {
                    rejected.push(Rejected {
                        index,
                        message_id: None,
                        call: None,
                        event: None,
                        errors: vec![format!(
                            "message is {size} bytes; the limit for one message is {} KB",
                            state.limits.max_message_bytes / 1024
                        )],
                    });
                    continue;
                }
                let message: Json = match serde_json::from_str(raw.get()) {
                    Ok(m) => m,
                    Err(e) => {
                        rejected.push(Rejected {
                            index,
                            message_id: None,
                            call: None,
                            event: None,
                            errors: vec![format!("not valid JSON: {e}")],
                        });
                        continue;
                    }
                };
                match schema.read(index, &message, None, body.sent_at.as_ref(), received_at) {
                    Ok(input) => inputs.push(input),
                    Err(r) => rejected.push(r),
                }
            }
        }
    }
    Ok((inputs, rejected))
}

/// The active plan's ingestion schema, cached by version.
fn schema(state: &IngestState) -> Option<Arc<IngestSchema>> {
    let active = state.core.active_plan()?;
    if let Ok(cached) = state.schema.read()
        && let Some((version, schema)) = cached.as_ref()
        && *version == active.version
    {
        return Some(schema.clone());
    }
    let schema = Arc::new(IngestSchema::new(active.plan.clone()));
    if let Ok(mut cached) = state.schema.write() {
        *cached = Some((active.version, schema.clone()));
    }
    Some(schema)
}

/// Whether the request carries the write key as its basic auth user name.
fn authorised(headers: &HeaderMap, write_key_sha256: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    !user.is_empty() && secret_hash(user) == write_key_sha256
}

/// Takes queued requests, several per transaction, and answers each once committed.
async fn writer(
    core: Arc<Core>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    max_group: usize,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut count = first.inputs.len();
            jobs.push(first);
            while count < max_group {
                match receiver.try_recv() {
                    Ok(job) => {
                        count += job.inputs.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        commit(&core, jobs).await;
    }
}

/// Commits a group of requests together; when that fails, each alone, so one request
/// the database refuses does not fail the others.
async fn commit(core: &Core, jobs: Vec<Job>) {
    let received_at = jobs.iter().map(|j| j.received_at).max().unwrap_or_default();
    let (batches, replies): (Vec<Vec<Input>>, Vec<_>) = jobs
        .into_iter()
        .map(|j| (j.inputs, (j.reply, j.received_at)))
        .unzip();
    match core.ingest(&batches, received_at).await {
        Ok(report) => {
            // The report is for the group; each request is told it succeeded.
            let shares = split_report(&report, replies.len());
            for ((reply, _), share) in replies.into_iter().zip(shares) {
                let _ = reply.send(Ok(share));
            }
        }
        Err(e) if replies.len() > 1 => {
            tracing::warn!(error = %e, "a group of requests failed; committing them one by one");
            for (inputs, (reply, received_at)) in batches.iter().zip(replies) {
                let result = core
                    .ingest(std::slice::from_ref(inputs), received_at)
                    .await
                    .map_err(|e| failure(&e));
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "an ingest transaction failed");
            for (reply, _) in replies {
                let _ = reply.send(Err(failure(&e)));
            }
        }
    }
}

/// The group's duplicates, counted once (on the first request).
fn split_report(report: &IngestReport, n: usize) -> Vec<IngestReport> {
    (0..n)
        .map(|i| {
            if i == 0 {
                report.clone()
            } else {
                IngestReport::default()
            }
        })
        .collect()
}

fn failure(e: &StoreError) -> String {
    match e {
        StoreError::Conflict(message) => message.clone(),
        _ => format!("the events could not be stored: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Links;
    use crate::store::Store;
    use crate::time::SystemClock;
    use std::time::Duration;

    /// With the writer stuck (something else holds the SQLite write lock) and the queue
    /// full, a request is refused at once with 429 and `Retry-After`.
    #[tokio::test]
    async fn a_full_queue_answers_429_with_retry_after() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open_sqlite_file(&dir.path().join("cairn.db"))
            .await
            .expect("open");
        let mut plan = cairn_plan::Plan::new("shop");
        for event in cairn_plan::schema::builtin_events() {
            plan.schema.events.insert(event.name.clone(), event);
        }
        plan.seal();
        store
            .deploy(&plan.to_json_pretty(), &plan.content_hash, None, 0)
            .await
            .expect("deploy");
        let core = Arc::new(Core::new(
            store.clone(),
            Arc::new(SystemClock),
            Links::default(),
            "test".into(),
        ));
        core.reload_active().await.expect("load the plan");
        let limits = IngestLimits {
            queue: 1,
            writers: 1,
            ..IngestLimits::default()
        };
        let (router, _writers) = router(core.clone(), secret_hash("wk"), limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let url = format!("http://{}/v1/page", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });

        // Hold the one SQLite writer: the ingest writer waits behind it.
        let held = store.begin().await.expect("hold the writer");
        let http = reqwest::Client::new();
        let page = |n: u32| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.post(url)
                    .basic_auth("wk", Some(""))
                    .json(&serde_json::json!({
                        "userId": "ana", "messageId": format!("p{n}"),
                        "properties": {"url": "https://shop.example/"}
                    }))
                    .send()
                    .await
                    .expect("an answer")
            }
        };
        // The stuck writer holds at most two requests (the one it took and one it
        // grouped with it) and the queue one more: of six at once, the others are
        // refused while the writer is still held.
        let requests: Vec<_> = (0..6).map(|n| tokio::spawn(page(n))).collect();
        for _ in 0..500 {
            if requests.iter().filter(|r| r.is_finished()).count() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (finished, waiting): (Vec<_>, Vec<_>) =
            requests.into_iter().partition(|r| r.is_finished());
        let refused = finished.len();
        assert!(refused >= 3, "{refused} refused");
        for answer in finished {
            let answer = answer.await.expect("join");
            assert_eq!(answer.status().as_u16(), 429);
            assert_eq!(
                answer
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1")
            );
        }
        assert_eq!(core.metrics.requests_throttled.get(), refused as u64);
        held.rollback().await.expect("release the writer");
        for answer in waiting {
            assert_eq!(answer.await.expect("join").status().as_u16(), 200);
        }
    }
}
