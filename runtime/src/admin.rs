//! The admin API (bearer token): deploys and rollbacks, status, a contact's trace; and
//! the open `/healthz` and `/metrics`.
//!
//! The response types are shared with [`crate::client`], which `cairn deploy` and
//! `cairn status` use.

mod events;
mod import;
mod pause;
mod preview;
mod rights;
mod trace;

pub use import::ImportReport;
pub use preview::{TEST_CONTACT, test_send_router};

use crate::ingest::{error, secret_hash};
use crate::process::Core;
use crate::store::StoreError;
use crate::store::admin::{EndCount, StepCount, Totals};
use crate::store::outbox::OutboxCounts;
use crate::store::plans::{Deployed, PlanVersion};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_plan::Plan;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `GET /admin/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub project: Option<String>,
    pub active_version: Option<i64>,
    pub versions: Vec<PlanVersion>,
    pub journeys: Vec<JourneyStatus>,
    pub totals: TotalsView,
    pub outbox: OutboxView,
    /// Journeys paused by `cairn pause`, with the runs each holds.
    #[serde(default)]
    pub paused: Vec<crate::store::pause::PausedJourney>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyStatus {
    pub name: String,
    /// Steps in the active plan, in a stable order.
    pub steps: Vec<String>,
    /// Runs in flight by version, step and state.
    pub in_flight: Vec<StepRuns>,
    /// Ended runs by reason.
    pub ended: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRuns {
    pub plan_version: i64,
    pub step: Option<String>,
    pub state: String,
    pub runs: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TotalsView {
    pub contacts: i64,
    pub events: i64,
    pub runs_in_flight: i64,
    pub timers: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutboxView {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

struct AdminState {
    core: Arc<Core>,
}

/// The admin routes, to be put [`behind_token`].
pub fn router(core: Arc<Core>) -> Router {
    let state = Arc::new(AdminState { core });
    Router::new()
        .route("/admin/deploy", post(deploy))
        .route("/admin/status", get(status))
        .route("/admin/messages", get(messages))
        .route("/admin/events", get(events::events))
        .route("/admin/plan", get(active_plan))
        .route("/admin/contacts/{id}", get(contact))
        .route("/admin/contacts/{id}/export", get(rights::export))
        .route("/admin/contacts/{id}/trace", get(trace::trace))
        .route("/admin/contacts/{id}/erase", post(rights::erase))
        .route("/admin/contacts/import", post(import::import))
        .route("/admin/stats", get(rights::stats))
        .route("/admin/journeys/{name}/pause", post(pause::pause))
        .route("/admin/journeys/{name}/resume", post(pause::resume))
        .with_state(state)
}

/// The routes open to anyone: health and metrics.
pub fn open_router(core: Arc<Core>) -> Router {
    let state = Arc::new(AdminState { core });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `routes`, each answering 401 to a request without `Authorization: Bearer <admin
/// token>` before its handler parses any path, query or body: every admin route of
/// the daemon goes through this one check.
pub fn behind_token(routes: Router, admin_token_sha256: String) -> Router {
    let token = Arc::new(admin_token_sha256);
    routes.route_layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let token = token.clone();
            async move {
                if authorised(request.headers(), &token) {
                    next.run(request).await
                } else {
                    unauthorised()
                }
            }
        },
    ))
}

fn authorised(headers: &HeaderMap, token_sha256: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| !token.is_empty() && secret_hash(token.trim()) == token_sha256)
}

/// `GET /admin/messages?state=&contact=&channel=&limit=`: outbox messages, newest first,
/// with their state, attempts and the reason of the last failure.
#[derive(Debug, Deserialize)]
struct MessagesQuery {
    state: Option<String>,
    contact: Option<String>,
    channel: Option<String>,
    limit: Option<i64>,
}

async fn messages(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<MessagesQuery>,
) -> Response {
    if let Some(s) = &query.state
        && !["pending", "sending", "sent", "failed"].contains(&s.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`state` is `{s}`: expected pending, sending, sent or failed"),
        );
    }
    let filter = crate::store::channels::MessageFilter {
        state: query.state,
        contact_id: query.contact,
        channel: query.channel,
        limit: query.limit.unwrap_or(100),
    };
    match state.core.store.list_messages(&filter).await {
        Ok(rows) => axum::Json(serde_json::json!({ "messages": rows })).into_response(),
        Err(e) => store_error(&e),
    }
}

fn unauthorised() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "the admin API needs `Authorization: Bearer <admin token>`",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::Conflict(message) => error(StatusCode::CONFLICT, message.clone()),
        other => {
            tracing::error!(error = %other, "an admin request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

#[derive(Debug, Deserialize)]
struct DeployQuery {
    rollback: Option<String>,
    /// Deploy even when runs in flight would be stranded (they stay on their version).
    strand: Option<String>,
}

/// `POST /admin/deploy` with a plan's JSON; `?rollback` re-activates the previous
/// version instead.
async fn deploy(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<DeployQuery>,
    body: String,
) -> Response {
    let core = &state.core;
    let result = if query.rollback.is_some() {
        match crate::retention::check_rollback(core).await {
            Ok(()) => core.store.rollback().await,
            Err(e) => Err(e),
        }
    } else {
        match check_plan(&body) {
            Ok(plan) => deploy_plan(core, &body, &plan, query.strand.is_some()).await,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        }
    };
    match result {
        Ok(deployed) => {
            if let Err(e) = core.reload_active().await {
                return store_error(&e);
            }
            tracing::info!(
                version = deployed.version,
                changed = deployed.changed,
                "deployed"
            );
            axum::Json(deployed).into_response()
        }
        Err(e) => store_error(&e),
    }
}

/// Stores `text` (the JSON of `plan`, already checked) as the next version and moves
/// the runs in flight as [`crate::inflight`] decides, in one transaction. A plan that
/// would strand runs is refused with a [`StoreError::Conflict`] naming each step and
/// how many contacts wait there, unless `strand` is set: then those runs stay on their
/// version.
pub async fn deploy_plan(
    core: &Core,
    text: &str,
    plan: &Plan,
    strand: bool,
) -> Result<Deployed, StoreError> {
    // The retention purge must not delete what this plan reads.
    crate::retention::check_plan(plan, core.retention).map_err(StoreError::Conflict)?;
    // The plans the runs in flight are on, to re-point runs at a changed `wait for`.
    // Stored versions never change, so reading them before the deploy's transaction is
    // safe.
    let mut versions = std::collections::BTreeMap::new();
    for stored in core.store.versions().await? {
        if let Some(text) = core.store.plan_text(stored.version).await?
            && let Ok(old) = Plan::from_json(&text)
        {
            versions.insert(stored.version, old);
        }
    }
    let mut moved = 0;
    let deployed = core
        .store
        .deploy_moving_runs(
            text,
            &plan.content_hash,
            plan.git_commit.as_deref(),
            core.now(),
            |in_flight| {
                let transition = crate::inflight::transition_after(plan, &versions, in_flight);
                if let Some(refusal) = transition.refusal() {
                    if !strand {
                        return Err(refusal);
                    }
                    for stranded in &transition.stranded {
                        tracing::warn!("deployed with --strand: {}", stranded.sentence());
                    }
                }
                moved = transition
                    .moves
                    .iter()
                    .filter(|m| m.migrated || m.rewait.is_some())
                    .count();
                Ok(transition.moves)
            },
            || core.forget_cached_contacts(),
        )
        .await?;
    if moved > 0 {
        core.timers_changed.notify_one();
    }
    // A pause outlives deploys while its journey does.
    let journeys: Vec<&str> = plan.journeys.keys().map(String::as_str).collect();
    for journey in core.store.unpause_journeys_except(&journeys).await? {
        tracing::warn!(%journey, "the deployed plan has no journey `{journey}`: its pause ended");
    }
    Ok(deployed)
}

/// `GET /admin/plan`: the active plan's JSON, as deployed.
async fn active_plan(State(state): State<Arc<AdminState>>) -> Response {
    match state.core.store.active_plan().await {
        Ok(Some((_, text))) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no plan is deployed yet"),
        Err(e) => store_error(&e),
    }
}

/// A plan the daemon can run: it loads (format version, references) and its hash is
/// its content's.
pub fn check_plan(text: &str) -> Result<Plan, String> {
    let plan = Plan::from_json(text).map_err(|e| e.to_string())?;
    if !plan.verify_hash() {
        return Err(format!(
            "the plan's `content_hash` does not match its content (expected {}): rebuild it with `cairn build`",
            plan.compute_hash()
        ));
    }
    Ok(plan)
}

async fn status(State(state): State<Arc<AdminState>>) -> Response {
    match build_status(&state.core).await {
        Ok(status) => axum::Json(status).into_response(),
        Err(e) => store_error(&e),
    }
}

/// The status report.
pub async fn build_status(core: &Core) -> Result<Status, StoreError> {
    let store = &core.store;
    let versions = store.versions().await?;
    let steps: Vec<StepCount> = store.step_counts().await?;
    let ends: Vec<EndCount> = store.end_counts().await?;
    let totals: Totals = store.totals().await?;
    let outbox: OutboxCounts = store.outbox_counts().await?;
    let paused = store.paused_journeys().await?;
    let active = core.active_plan();
    let mut journeys: BTreeMap<String, JourneyStatus> = BTreeMap::new();
    if let Some(active) = &active {
        for (name, journey) in &active.plan.journeys {
            journeys.insert(
                name.clone(),
                JourneyStatus {
                    name: name.clone(),
                    steps: journey.steps.keys().map(|s| s.0.clone()).collect(),
                    in_flight: Vec::new(),
                    ended: BTreeMap::new(),
                },
            );
        }
    }
    let blank = |name: &str| JourneyStatus {
        name: name.to_string(),
        steps: Vec::new(),
        in_flight: Vec::new(),
        ended: BTreeMap::new(),
    };
    for count in steps {
        journeys
            .entry(count.journey.clone())
            .or_insert_with(|| blank(&count.journey))
            .in_flight
            .push(StepRuns {
                plan_version: count.plan_version,
                step: count.step,
                state: count.state,
                runs: count.runs,
            });
    }
    for count in ends {
        journeys
            .entry(count.journey.clone())
            .or_insert_with(|| blank(&count.journey))
            .ended
            .insert(count.reason, count.runs);
    }
    Ok(Status {
        project: active.as_ref().map(|a| a.plan.project.clone()),
        active_version: active.as_ref().map(|a| a.version),
        versions,
        journeys: journeys.into_values().collect(),
        totals: TotalsView {
            contacts: totals.contacts,
            events: totals.events,
            runs_in_flight: totals.runs_in_flight,
            timers: totals.timers,
        },
        outbox: OutboxView {
            pending: outbox.pending,
            sent: outbox.sent,
            failed: outbox.failed,
        },
        paused,
    })
}

#[derive(Debug, Deserialize)]
struct TraceQuery {
    limit: Option<i64>,
}

/// `GET /admin/contacts/{id}`: the contact, its events, runs and outcomes.
async fn contact(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(query): Query<TraceQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(1_000).clamp(1, 100_000);
    match state.core.store.contact_trace(&id, limit).await {
        Ok(Some(trace)) => axum::Json(trace).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no contact `{id}`")),
        Err(e) => store_error(&e),
    }
}

async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    match state.core.store.schema_version().await {
        Ok(schema) => axum::Json(serde_json::json!({
            "status": "ok",
            "schema_version": schema,
            "active_version": state.core.active_plan().map(|a| a.version),
        }))
        .into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database is unreachable: {e}"),
        ),
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let core = &state.core;
    let due = core.store.timers_due(core.now()).await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        core.metrics.render(due),
    )
        .into_response()
}

/// A [`Deployed`] as `cairn deploy` prints it.
pub fn describe_deploy(deployed: &Deployed) -> String {
    let short: String = deployed.content_hash.chars().take(12).collect();
    if deployed.changed {
        format!("version {} is active (hash {short}…)", deployed.version)
    } else {
        format!(
            "version {} (hash {short}…) is already active; nothing changed",
            deployed.version
        )
    }
}
