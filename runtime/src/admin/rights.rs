//! Data rights and statistics on the admin API: `GET /admin/contacts/{id}/export`
//! (everything held about a contact), `POST /admin/contacts/{id}/erase`, and
//! `GET /admin/stats?journey=NAME` (the funnels `cairn stats` prints).

use super::{AdminState, store_error};
use crate::ingest::error;
use crate::stats::StatsError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// `GET /admin/contacts/{id}/export`: the contact's record, aliases, consents, tags,
/// scores, segments, events, runs, outcomes, messages and suppression entries. An
/// erased contact's export says so (`erased`, `erased_at`) and holds what is left.
pub(super) async fn export(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Response {
    match state.core.store.export_contact(&id).await {
        Ok(Some(export)) => axum::Json(export).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no contact `{id}`")),
        Err(e) => store_error(&e),
    }
}

/// `POST /admin/contacts/{id}/erase`: erases the contact; erasing it again is a no-op
/// that answers the same way, with `already_erased`.
pub(super) async fn erase(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Response {
    match state.core.erase_contact(&id).await {
        Ok(Some(erasure)) => {
            if !erasure.already_erased {
                tracing::info!(
                    runs_ended = erasure.runs_ended,
                    messages_cancelled = erasure.messages_cancelled,
                    "erased a contact"
                );
            }
            axum::Json(erasure).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no contact `{id}`")),
        Err(e) => store_error(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StatsQuery {
    journey: Option<String>,
}

/// `GET /admin/stats?journey=NAME`: the funnel of one journey, or of all without
/// `journey`.
pub(super) async fn stats(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<StatsQuery>,
) -> Response {
    let journey = query.journey.as_deref().filter(|j| !j.is_empty());
    match crate::stats::build(&state.core, journey).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e @ StatsError::UnknownJourney { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(StatsError::Store(e)) => store_error(&e),
    }
}
