//! `POST /admin/templates/{name}/test-send`: a template of the active plan rendered for
//! sample data ([`crate::preview`]) and sent to the address the operator gives, through
//! the channel its messages use (the file outbox unless SMTP or a provider is
//! configured), marked as a test: `[test] ` before its subject (title, text) and an
//! `X-Cairn-Test: 1` header. It belongs to no contact or run, skips consent, quiet
//! hours and caps, is neither queued, retried nor counted, and is logged.

use crate::dispatch::{Delivery, TestSender};
use crate::ingest::error;
use crate::preview::{self, PreviewError, TestSend, TestSent};
use crate::process::Core;
use crate::store::outbox::ClaimedMessage;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value as Json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The contact id test messages' links name: never a real contact's.
pub const TEST_CONTACT: &str = "cairn-test-send";

struct TestSendState {
    core: Arc<Core>,
    sender: TestSender,
    /// Numbers test sends, so two in one millisecond get different keys.
    sent: AtomicU64,
}

/// The test-send route, to be put behind the admin token.
pub fn test_send_router(core: Arc<Core>, sender: TestSender) -> Router {
    let state = Arc::new(TestSendState {
        core,
        sender,
        sent: AtomicU64::new(0),
    });
    Router::new()
        .route("/admin/templates/{name}/test-send", post(test_send))
        .with_state(state)
}

async fn test_send(
    State(state): State<Arc<TestSendState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let request: TestSend = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be a JSON object `{{\"to\": ADDRESS, \"contact\": {{...}}, \
                     \"bindings\": {{...}}}}`: {e}"
                ),
            );
        }
    };
    let core = &state.core;
    let Some(active) = core.active_plan() else {
        return error(StatusCode::NOT_FOUND, "no plan is deployed yet");
    };
    let plan = &active.plan;
    let tpl = match preview::template(plan, &name) {
        Ok(tpl) => tpl,
        Err(e) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("{e} (in the active plan, version {})", active.version),
            );
        }
    };
    let to = request.to.trim().to_string();
    let channel = tpl.channel;
    if !crate::engine::valid_address(channel, &to) {
        let expected = match channel {
            cairn_plan::schema::Channel::Email => "an email address such as `ana@example.com`",
            cairn_plan::schema::Channel::Sms => {
                "a phone number in E.164 form such as `+33612345678`"
            }
            cairn_plan::schema::Channel::Push => "a push token",
        };
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "`{to}` is not an address for template `{name}`, which is sent by {}: expected {expected}",
                channel.as_str()
            ),
        );
    }
    let mut sample = match preview::sample(plan, &name, &request.sample) {
        Ok(sample) => sample,
        Err(e) => return refused(&e),
    };
    sample.contact.id = TEST_CONTACT.to_string();
    let now = core.now();
    let n = state.sent.fetch_add(1, Ordering::Relaxed);
    let run_id = format!("test/{now}-{n}");
    let key = format!("{run_id}/{name}/1");
    let rendered = match preview::render(plan, &core.links, &name, &sample, &key, now) {
        Ok(rendered) => rendered,
        Err(e) => return refused(&e),
    };
    let mut parts = rendered.parts;
    preview::mark_as_test(channel, &mut parts);
    let message = ClaimedMessage {
        id: 0,
        run_id,
        step: name.clone(),
        visit: 1,
        contact_id: TEST_CONTACT.to_string(),
        channel: channel.as_str().to_string(),
        template: Some(name.clone()),
        address: to.clone(),
        payload: Json::Object(parts),
        attempts: 1,
        created_at: now,
        marketing: false,
    };
    match state.sender.send(&message).await {
        Delivery::Sent(provider_ref) => {
            tracing::info!(
                template = %name,
                channel = channel.as_str(),
                to = %to,
                key = %key,
                plan_version = active.version,
                "sent a test message"
            );
            axum::Json(TestSent {
                template: name,
                channel,
                to,
                key,
                provider_ref,
                plan_version: active.version,
            })
            .into_response()
        }
        Delivery::Retry(why) | Delivery::Failed(_, why) => {
            tracing::warn!(template = %name, to = %to, error = %why, "a test message was not sent");
            error(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the {} channel did not take the test message: {why}",
                    channel.as_str()
                ),
            )
        }
    }
}

fn refused(e: &PreviewError) -> Response {
    let status = match e {
        PreviewError::UnknownTemplate { .. } => StatusCode::NOT_FOUND,
        PreviewError::Sample(_) => StatusCode::BAD_REQUEST,
        PreviewError::Render(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.to_string())
}
