//! `GET /admin/contacts/{id}/trace?journey=NAME&since=TIME`: the contact's runs, line
//! by line, and why it is not in the other journeys (what `cairn trace` prints).

use super::{AdminState, store_error};
use crate::ingest::error;
use crate::trace::{TraceError, TraceFilter};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub(super) struct TraceQuery {
    journey: Option<String>,
    since: Option<String>,
}

pub(super) async fn trace(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(query): Query<TraceQuery>,
) -> Response {
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match crate::ingest::schema::parse_instant(text) {
            Some(t) => Some(t.as_millisecond()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("`since` must be an ISO 8601 date or instant, not `{text}`"),
                );
            }
        },
    };
    let filter = TraceFilter {
        journey: query.journey.filter(|j| !j.is_empty()),
        since,
    };
    match crate::trace::build(&state.core, &id, &filter).await {
        Ok(Some(trace)) => axum::Json(trace).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no contact `{id}`")),
        Err(e @ TraceError::UnknownJourney { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(TraceError::Store(e)) => store_error(&e),
    }
}
