//! `GET /admin/events?from=T&to=T`: the events stored for a window of time, as the
//! Segment messages that would replay them, one JSON object per line (what
//! `cairn simulate --against-server` reads).
//!
//! Before a contact's first event the stream holds an `identify` with the contact's
//! traits and consents *as they are now* (the store keeps no history of traits). The
//! `contact_created` events Cairn adds are left out: a replay adds its own. The stream
//! is read from the store a page at a time, so a long window does not sit in memory.

use super::AdminState;
use crate::ingest::error;
use crate::model::Millis;
use crate::store::replay::StoredEvent;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Events read from the store at a time.
const PAGE: i64 = 2_000;

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    from: Option<String>,
    to: Option<String>,
}

fn instant(name: &str, value: Option<&str>) -> Result<Millis, String> {
    let Some(text) = value else {
        return Err(format!("`{name}` is required: an ISO 8601 date or instant"));
    };
    crate::ingest::schema::parse_instant(text)
        .map(|t| t.as_millisecond())
        .ok_or_else(|| format!("`{name}` must be an ISO 8601 date or instant, not `{text}`"))
}

pub(super) async fn events(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let window = instant("from", query.from.as_deref())
        .and_then(|from| Ok((from, instant("to", query.to.as_deref())?)));
    let (from, to) = match window {
        Ok((from, to)) if from < to => (from, to),
        Ok(_) => return error(StatusCode::BAD_REQUEST, "`to` must be later than `from`"),
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let core = state.core.clone();
    let pages =
        futures_util::stream::unfold(Some((None, HashSet::<String>::new())), move |cursor| {
            let core = core.clone();
            async move {
                let (after, mut seen) = cursor?;
                let page = match core.store.events_between(from, to, after, PAGE).await {
                    Ok(page) if page.is_empty() => return None,
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "reading events for a replay failed");
                        return Some((Err(std::io::Error::other(e.to_string())), None));
                    }
                };
                let last = page.last().map(|e| (e.occurred_at, e.id));
                let mut first_at: BTreeMap<String, Millis> = BTreeMap::new();
                for event in &page {
                    if let Some(id) = &event.contact_id
                        && !seen.contains(id)
                    {
                        first_at.entry(id.clone()).or_insert(event.occurred_at);
                    }
                }
                let ids: Vec<String> = first_at.keys().cloned().collect();
                let contacts = match core.store.contacts_now(&ids).await {
                    Ok(contacts) => contacts,
                    Err(e) => {
                        tracing::error!(error = %e, "reading contacts for a replay failed");
                        return Some((Err(std::io::Error::other(e.to_string())), None));
                    }
                };
                let mut text = String::new();
                for contact in contacts.iter().filter(|c| !c.erased) {
                    let at = first_at.get(&contact.id).copied().unwrap_or(from);
                    let mut traits: Map<String, Json> =
                        contact.traits.clone().into_iter().collect();
                    traits.insert("consents".into(), json!(contact.consents));
                    let line = json!({
                        "type": "identify", "userId": contact.id, "traits": traits,
                        "timestamp": crate::time::timestamp(at).to_string(),
                    });
                    text.push_str(&line.to_string());
                    text.push('\n');
                }
                seen.extend(ids);
                for event in page.iter().filter(|e| e.name != "contact_created") {
                    text.push_str(&track_line(event).to_string());
                    text.push('\n');
                }
                Some((Ok::<String, std::io::Error>(text), Some((last, seen))))
            }
        });
    let mut response = Body::from_stream(pages).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A stored event as the `track` call that would store it again.
fn track_line(event: &StoredEvent) -> Json {
    let mut line = json!({
        "type": "track",
        "event": event.name,
        "properties": event.payload,
        "timestamp": crate::time::timestamp(event.occurred_at).to_string(),
    });
    if let Some(id) = &event.contact_id {
        line["userId"] = json!(id);
    } else if let Some(id) = &event.anonymous_id {
        line["anonymousId"] = json!(id);
    }
    if let Some(id) = &event.message_id {
        line["messageId"] = json!(id);
    }
    line
}
