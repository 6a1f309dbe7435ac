//! `POST /admin/journeys/{name}/pause` and `POST /admin/journeys/{name}/resume`: the
//! emergency stop of a journey (see [`crate::process::pause`]).

use super::{AdminState, store_error};
use crate::ingest::error;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn pause(
    State(state): State<Arc<AdminState>>,
    Path(journey): Path<String>,
) -> Response {
    if let Some(refusal) = unknown_journey(&state, &journey) {
        return refusal;
    }
    match state.core.pause_journey(&journey).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => store_error(&e),
    }
}

pub(super) async fn resume(
    State(state): State<Arc<AdminState>>,
    Path(journey): Path<String>,
) -> Response {
    // A paused journey the active plan lacks (after a rollback) can still be resumed.
    let paused = match state.core.store.paused_journeys().await {
        Ok(paused) => paused.iter().any(|p| p.journey == journey),
        Err(e) => return store_error(&e),
    };
    if !paused && let Some(refusal) = unknown_journey(&state, &journey) {
        return refusal;
    }
    match state.core.resume_journey(&journey).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => store_error(&e),
    }
}

/// A 404 naming the active plan's journeys unless it has `journey`.
fn unknown_journey(state: &AdminState, journey: &str) -> Option<Response> {
    let Some(active) = state.core.active_plan() else {
        return Some(error(StatusCode::CONFLICT, "no plan is deployed yet"));
    };
    if active.plan.journeys.contains_key(journey) {
        return None;
    }
    let known: Vec<String> = active
        .plan
        .journeys
        .keys()
        .map(|name| format!("`{name}`"))
        .collect();
    let known = if known.is_empty() {
        "it has none".to_string()
    } else {
        format!("known ones are {}", known.join(", "))
    };
    Some(error(
        StatusCode::NOT_FOUND,
        format!(
            "no journey `{journey}` in the active plan (version {}): {known}",
            active.version
        ),
    ))
}
