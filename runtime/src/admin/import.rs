//! `POST /admin/contacts/import[?dry_run][&skip_invalid]`: one chunk of a contacts
//! import (what `cairn contacts import` sends, 1,000 contacts at a time), as
//! `{"rows": [{"line", "id", "traits", "consents"}]}`.
//!
//! Each row's traits are checked against the deployed plan's contact schema as an
//! `identify`'s are; consents must be the plan's, each `true`/`false` or
//! `{"granted", "at", "source"}`. A chunk with any bad row imports nothing (400, every
//! error with its line) unless `skip_invalid`; `dry_run` only checks and counts. An
//! import starts no journey: see `docs/operations.md`.

use super::{AdminState, store_error};
use crate::ingest::error;
use crate::ingest::schema::{Context, Path, check_fields_owned, parse_instant};
use crate::model::Millis;
use crate::store::import::{
    IMPORT_SOURCE, ImportConsent, ImportContact, ImportCounts, ImportError, ImportMode,
};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_plan::Plan;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// Rows one request may carry.
pub const MAX_ROWS: usize = 10_000;
/// The longest source a consent may name.
const MAX_SOURCE: usize = 100;

#[derive(Debug, Deserialize)]
pub(super) struct ImportQuery {
    dry_run: Option<String>,
    skip_invalid: Option<String>,
}

/// The answer: what the chunk did (or, with `dry_run` or refused rows, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    #[serde(flatten)]
    pub counts: ImportCounts,
    /// Whether the chunk was written.
    pub applied: bool,
    /// Every refused row's problems, by line.
    pub errors: Vec<ImportError>,
}

pub(super) async fn import(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<ImportQuery>,
    body: String,
) -> Response {
    let core = &state.core;
    let Some(active) = core.active_plan() else {
        return error(StatusCode::CONFLICT, "no plan is deployed");
    };
    let rows = match serde_json::from_str::<Json>(&body) {
        Ok(Json::Object(mut object)) => match object.remove("rows") {
            Some(Json::Array(rows)) if rows.len() <= MAX_ROWS => rows,
            Some(Json::Array(_)) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a request may carry {MAX_ROWS} rows at most"),
                );
            }
            _ => return error(StatusCode::BAD_REQUEST, "the body needs a `rows` list"),
        },
        Ok(_) => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let now = core.now();
    let mut report = ImportReport::default();
    let mut checked = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        match check_row(index, row, &active.plan, now) {
            Ok(contact) => checked.push(contact),
            Err(errors) => {
                report.counts.rejected += 1;
                report.errors.extend(errors);
            }
        }
    }
    let skip_invalid = query.skip_invalid.is_some();
    let mode = ImportMode {
        // A chunk with bad rows is only counted, unless they are to be skipped.
        dry_run: query.dry_run.is_some() || (!report.errors.is_empty() && !skip_invalid),
        skip_invalid,
    };
    let outcome = crate::store::retrying("an import", || {
        core.store
            .import_contacts(&checked, now, mode, || core.forget_cached_contacts())
    })
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return store_error(&e),
    };
    report.counts.add(&outcome.counts);
    report.errors.extend(outcome.errors);
    report.errors.sort_by_key(|e| e.line);
    report.applied = outcome.applied;
    if report.applied && report.counts.created + report.counts.updated > 0 {
        tracing::info!(
            created = report.counts.created,
            updated = report.counts.updated,
            rejected = report.counts.rejected,
            "imported contacts"
        );
    }
    let status = if report.applied || query.dry_run.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, axum::Json(report)).into_response()
}

/// One row, checked against the plan: its contact, or every problem it has.
fn check_row(
    index: usize,
    row: Json,
    plan: &Plan,
    now: Millis,
) -> Result<ImportContact, Vec<ImportError>> {
    let line = row
        .get("line")
        .and_then(Json::as_u64)
        .unwrap_or(index as u64 + 1);
    let mut errors: Vec<String> = Vec::new();
    let Json::Object(mut object) = row else {
        return Err(vec![ImportError {
            line,
            message: "a row must be a JSON object".into(),
        }]);
    };
    object.remove("line");
    let id = match object.remove("id") {
        Some(Json::String(s)) if !s.trim().is_empty() => s,
        Some(Json::Number(n)) => n.to_string(),
        _ => {
            errors.push("`id` is required: the contact's id (Segment's `userId`)".into());
            String::new()
        }
    };
    let traits = match object.remove("traits") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(traits)) => traits,
        Some(_) => {
            errors.push("`traits` must be an object".into());
            Map::new()
        }
    };
    if traits.contains_key("consents") {
        errors.push("consents go in `consents`, not in `traits`".into());
    }
    let context = Context {
        records: &plan.schema.records,
        currency: plan.default_currency.as_deref(),
    };
    let traits = check_fields_owned(
        traits,
        &plan.schema.contact,
        &context,
        true,
        &Path::Root("traits"),
        &mut errors,
    );
    let consents = match object.remove("consents") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Object(consents)) => consents
            .into_iter()
            .filter_map(|(name, value)| check_consent(&name, value, plan, now, &mut errors))
            .collect(),
        Some(_) => {
            errors.push(
                "`consents` must be an object of consent names to `true`, `false` or `{\"granted\", \"at\", \"source\"}`"
                    .into(),
            );
            Vec::new()
        }
    };
    for key in object.keys() {
        errors.push(format!(
            "unknown field `{key}`: a row has `id`, `traits` and `consents`"
        ));
    }
    if errors.is_empty() {
        Ok(ImportContact {
            line,
            id,
            traits,
            consents,
        })
    } else {
        Err(errors
            .into_iter()
            .map(|message| ImportError { line, message })
            .collect())
    }
}

/// One consent of a row: `true`, `false`, or `{"granted", "at", "source"}`.
fn check_consent(
    name: &str,
    value: Json,
    plan: &Plan,
    now: Millis,
    errors: &mut Vec<String>,
) -> Option<ImportConsent> {
    if !plan.schema.consents.contains_key(name) {
        errors.push(format!(
            "unknown consent `{name}`: the plan declares no consent with this name"
        ));
        return None;
    }
    let (granted, at, source) = match value {
        Json::Bool(granted) => (granted, None, None),
        Json::Object(mut object) => {
            let granted = match object.remove("granted") {
                Some(Json::Bool(granted)) => granted,
                _ => {
                    errors.push(format!(
                        "consent `{name}`: `granted` must be `true` or `false`"
                    ));
                    return None;
                }
            };
            let at = match object.remove("at") {
                None | Some(Json::Null) => None,
                Some(Json::String(text)) => match parse_instant(&text) {
                    Some(t) if t.as_millisecond() <= now => Some(t.as_millisecond()),
                    Some(_) => {
                        errors.push(format!("consent `{name}`: `at` is `{text}`, in the future"));
                        return None;
                    }
                    None => {
                        errors.push(format!(
                            "consent `{name}`: `at` must be an ISO 8601 date and time (`2026-03-01T10:00:00Z`), not `{text}`"
                        ));
                        return None;
                    }
                },
                Some(_) => {
                    errors.push(format!(
                        "consent `{name}`: `at` must be an ISO 8601 date and time (`2026-03-01T10:00:00Z`)"
                    ));
                    return None;
                }
            };
            let source = match object.remove("source") {
                None | Some(Json::Null) => None,
                Some(Json::String(s))
                    if !s.trim().is_empty() && s.trim().chars().count() <= MAX_SOURCE =>
                {
                    Some(s.trim().to_string())
                }
                Some(_) => {
                    errors.push(format!(
                        "consent `{name}`: `source` must be a non-empty string of at most {MAX_SOURCE} characters"
                    ));
                    return None;
                }
            };
            if let Some(key) = object.keys().next() {
                errors.push(format!(
                    "consent `{name}`: unknown field `{key}`: a consent has `granted`, `at` and `source`"
                ));
                return None;
            }
            (granted, at, source)
        }
        _ => {
            errors.push(format!(
                "consent `{name}` must be `true`, `false` or `{{\"granted\", \"at\", \"source\"}}`"
            ));
            return None;
        }
    };
    Some(ImportConsent {
        consent: name.to_string(),
        granted,
        at: at.unwrap_or(now),
        source: match source {
            Some(source) => format!("{IMPORT_SOURCE}:{source}"),
            None => IMPORT_SOURCE.to_string(),
        },
    })
}
