//! Delivery status callbacks: `POST /v1/channels/{sms,push}/status`.
//!
//! - Twilio's form callbacks (`application/x-www-form-urlencoded`: `MessageSid`,
//!   `MessageStatus`, `ErrorCode`), checked with `X-Twilio-Signature`
//!   (base64 HMAC-SHA1, keyed with the auth token, of the callback URL followed by
//!   every field's name and value in name order).
//! - JSON callbacks (`{"id", "status", "error"}`), checked with `X-Cairn-Timestamp`
//!   and `X-Cairn-Signature` (HMAC-SHA256 of `"{timestamp}.{body}"`, keyed with the
//!   provider's token, like outgoing webhooks), at most five minutes old.
//!
//! The status is recorded on the message the provider knows by that id; `delivered`
//! (SMS) and `opened` (push) are fed to the engine as `sms_delivered` and
//! `push_opened`, once per message however often the provider repeats itself.

use super::SmsApi;
use crate::ingest::segment::{Input, InputKind};
use crate::process::Core;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Value as Json, json};
use std::sync::Arc;

/// What the callback endpoint checks signatures with.
#[derive(Debug, Clone, Default)]
pub struct CallbackKeys {
    /// The SMS provider's API and token.
    pub sms: Option<(SmsApi, String)>,
    /// The push provider's token.
    pub push: Option<String>,
    /// The daemon's public URL: Twilio signs the URL it called.
    pub public_url: String,
}

struct CallbackState {
    core: Arc<Core>,
    keys: CallbackKeys,
}

pub fn router(core: Arc<Core>, keys: CallbackKeys) -> Router {
    Router::new()
        .route("/v1/channels/{channel}/status", post(status))
        .with_state(Arc::new(CallbackState { core, keys }))
}

/// How long a signed JSON callback stays acceptable.
const MAX_AGE_SECONDS: i64 = 300;

async fn status(
    State(state): State<Arc<CallbackState>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Json>) {
    let refuse = |code: StatusCode, why: &str| (code, axum::Json(json!({ "error": why })));
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let (id, status, error) = match (channel.as_str(), form) {
        ("sms", true) => {
            let Some((SmsApi::Twilio { .. }, token)) = &state.keys.sms else {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "no Twilio SMS provider is configured",
                );
            };
            let fields: Vec<(String, String)> = match serde_urlencoded(&body) {
                Some(fields) => fields,
                None => return refuse(StatusCode::BAD_REQUEST, "the form is malformed"),
            };
            let url = format!(
                "{}/v1/channels/sms/status",
                state.keys.public_url.trim_end_matches('/')
            );
            let given = headers
                .get("X-Twilio-Signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !twilio_signature_matches(token, &url, &fields, given) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the X-Twilio-Signature does not match",
                );
            }
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let (Some(id), Some(status)) = (field("MessageSid"), field("MessageStatus")) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "MessageSid and MessageStatus are required",
                );
            };
            let error = field("ErrorCode").filter(|c| !c.is_empty()).map(|code| {
                match field("ErrorMessage") {
                    Some(m) if !m.is_empty() => format!("the provider reported error {code}: {m}"),
                    _ => format!("the provider reported error {code}"),
                }
            });
            (id, status, error)
        }
        ("sms" | "push", false) => {
            let token = match channel.as_str() {
                "sms" => state.keys.sms.as_ref().map(|(_, t)| t),
                _ => state.keys.push.as_ref(),
            };
            let Some(token) = token else {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "no provider with a token is configured for this channel",
                );
            };
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
            };
            let Ok(timestamp) = header("X-Cairn-Timestamp").parse::<i64>() else {
                return refuse(StatusCode::UNAUTHORIZED, "X-Cairn-Timestamp is missing");
            };
            let expected = crate::dispatch::sign(token, timestamp, &body);
            if !constant_time_eq(expected.as_bytes(), header("X-Cairn-Signature").as_bytes()) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the X-Cairn-Signature does not match",
                );
            }
            if (jiff::Timestamp::now().as_second() - timestamp).abs() > MAX_AGE_SECONDS {
                return refuse(StatusCode::FORBIDDEN, "the callback is too old");
            }
            let Ok(json) = serde_json::from_slice::<Json>(&body) else {
                return refuse(StatusCode::BAD_REQUEST, "the body is not JSON");
            };
            let text = |name: &str| json.get(name).and_then(Json::as_str).map(str::to_string);
            let (Some(id), Some(status)) = (text("id"), text("status")) else {
                return refuse(StatusCode::BAD_REQUEST, "`id` and `status` are required");
            };
            let error = text("error").map(|e| format!("the provider reported: {e}"));
            (id, status, error)
        }
        _ => return refuse(StatusCode::NOT_FOUND, "callbacks are for `sms` and `push`"),
    };
    let status = status.to_ascii_lowercase();
    let failed = matches!(status.as_str(), "failed" | "undelivered");
    let error = if failed {
        error.or_else(|| Some(format!("the provider reported `{status}`")))
    } else {
        None
    };
    let now = state.core.now();
    let recorded = state
        .core
        .store
        .record_delivery_status(&channel, &id, &status, error.as_deref(), now)
        .await;
    let message = match recorded {
        Ok(Some(message)) => message,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no message has this id"),
        Err(e) => {
            tracing::warn!(error = %e, "could not record a delivery status");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    let event = match (channel.as_str(), status.as_str()) {
        ("sms", "delivered") => Some("sms_delivered"),
        ("push", "opened") => Some("push_opened"),
        _ => None,
    };
    if let Some(event) = event {
        let mut payload = serde_json::Map::new();
        payload.insert("run".into(), json!(message.run_id));
        payload.insert("step".into(), json!(message.step));
        if let Some(journey) = &message.journey {
            payload.insert("journey".into(), json!(journey));
        }
        let input = Input {
            user_id: Some(message.contact_id.clone()),
            anonymous_id: None,
            // The same for every repeat of this callback: ingestion keeps one.
            message_id: Some(format!("cairn-{event}-{}", message.id)),
            occurred_at: now,
            kind: InputKind::Track {
                event: event.to_string(),
                payload: Arc::new(Json::Object(payload)),
            },
        };
        if let Err(e) = state.core.ingest(&[vec![input]], now).await {
            tracing::warn!(error = %e, "could not feed a delivery event to the engine");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "message": message.id, "status": status })),
    )
}

/// `application/x-www-form-urlencoded` fields, in order.
fn serde_urlencoded(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Some(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Twilio's request signature: base64 HMAC-SHA1 of the URL and the sorted fields.
pub fn twilio_signature(token: &str, url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let mut mac = <hmac::Hmac<sha1::Sha1>>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn twilio_signature_matches(
    token: &str,
    url: &str,
    fields: &[(String, String)],
    given: &str,
) -> bool {
    constant_time_eq(
        twilio_signature(token, url, fields).as_bytes(),
        given.as_bytes(),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[expect(
    clippy::panic,
    reason = "HMAC takes keys of any length, so this cannot happen"
)]
fn unreachable_hmac() -> hmac::Hmac<sha1::Sha1> {
    panic!("HMAC-SHA1 accepts every key length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signatures_are_hmac_sha1_of_url_and_sorted_fields() {
        // Computed independently, with Python's `hmac` and `base64` modules.
        let fields: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://example.com/myapp.php?foo=1&bar=2",
                &fields
            ),
            "vNe7KK2kJwCsxc9K3OLkkKB3qqI="
        );
    }

    #[test]
    fn forms_decode() {
        assert_eq!(
            serde_urlencoded(b"MessageSid=SM1&MessageStatus=delivered&Body=a+b%21"),
            Some(vec![
                ("MessageSid".into(), "SM1".into()),
                ("MessageStatus".into(), "delivered".into()),
                ("Body".into(), "a b!".into()),
            ])
        );
        assert_eq!(serde_urlencoded(b"a=%zz"), None);
    }
}
