//! Respect for the contact, over HTTP: one-click unsubscribe (RFC 8058), the
//! preference page, double opt-in activation, the open pixel and tracked clicks, bounce
//! and complaint webhooks, and the admin routes of the suppression list; plus the
//! dispatcher's last check before a message leaves ([`hold_back_suppressed`]).
//!
//! Every change a contact makes here becomes an input of the ordinary pipeline
//! ([`Core::ingest`]): `unsubscribed {scope, via}`, `consent_granted {consent, source}`,
//! `email_opened`, `email_clicked {url}`, `email_bounced {kind}`, `email_complained`,
//! the feedback events carrying the `journey`, `run` and `step` of their message. So
//! consents change with their source and time, the events are in the history, and the
//! engine sees them (`exit when unsubscribed`, `when consent X granted`, `opened(step)`)
//! exactly as if they had come through the tracking API.

use crate::ingest::segment::{Input, InputKind};
use crate::ingest::{error, secret_hash};
use crate::links::{self, Link, LinkError};
use crate::process::Core;
use crate::store::outbox::ClaimedMessage;
use crate::store::respect::{MessageRef, SuppressionReason};
use crate::store::{Store, StoreError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The consent source of an activation through a confirmation link.
pub const DOUBLE_OPT_IN_SOURCE: &str = "double_opt_in";

/// How long a double opt-in confirmation link stays valid.
pub const CONFIRM_LINK_TTL_SECS: i64 = 7 * 86_400;

/// How long a signed webhook's timestamp is accepted.
const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// What the project configured (`cairn.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Consent name to the transactional email template that asks to confirm it.
    /// Granting one of these (by `identify`, the preference page, a `consent_granted`
    /// event from elsewhere) sends the confirmation instead; only its link grants it.
    pub double_opt_in: BTreeMap<String, String>,
}

/// Checks the settings against the plan: each double opt-in consent is declared, and
/// its template is a transactional email that uses `confirm_url`.
pub fn check_settings(plan: &cairn_plan::Plan, settings: &Settings) -> Result<(), String> {
    for (consent, template) in &settings.double_opt_in {
        if !plan.schema.consents.contains_key(consent) {
            return Err(format!(
                "`[double_opt_in]` names the consent `{consent}`, which the project does not declare"
            ));
        }
        let Some(tpl) = plan.templates.get(template) else {
            return Err(format!(
                "`[double_opt_in]` sends the template `{template}` for `{consent}`, which the project does not declare"
            ));
        };
        if tpl.channel != cairn_plan::Channel::Email || !tpl.transactional {
            return Err(format!(
                "`[double_opt_in]`: the template `{template}` must be a transactional email (`template {template} email transactional`)"
            ));
        }
        if !tpl.parts.values().any(|p| p.source.contains("confirm_url")) {
            return Err(format!(
                "`[double_opt_in]`: the template `{template}` never uses `{{{{ confirm_url }}}}`, the link that confirms `{consent}`"
            ));
        }
    }
    Ok(())
}

/// The key of signed links: `configured` (`CAIRN_LINK_SECRET`) or the one stored in
/// the database, generated on first start (shared by every daemon on the database).
pub async fn link_secret(store: &Store, configured: Option<&str>) -> Result<String, StoreError> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.to_string());
    }
    let mut bytes = [0u8; 32];
    let fresh = match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(_) => secret_hash(&format!(
            "{:?}{}",
            std::time::SystemTime::now(),
            std::process::id()
        )),
    };
    store.setting_or_insert("link_secret", &fresh).await
}

// ------------------------------------------------------------------ dispatch

/// The messages of `claimed` that may go out now. The others are recorded as
/// suppressed (`failed`, `suppressed: REASON`, and a `suppressed` outcome): the
/// contact unsubscribed, bounced or complained, lost the consent, or was erased after
/// the step queued the message.
pub async fn hold_back_suppressed(
    core: &Core,
    claimed: Vec<ClaimedMessage>,
) -> Vec<ClaimedMessage> {
    let plan = core.active_plan();
    let mut sendable = Vec::with_capacity(claimed.len());
    for message in claimed {
        let consents: Vec<String> = plan
            .iter()
            .flat_map(|p| p.plan.schema.consents.values())
            .filter(|c| c.channel.as_str() == message.channel)
            .map(|c| c.name.clone())
            .collect();
        // An address an erased contact had is refused whoever it belongs to now.
        let block = match core
            .store
            .is_erased_address(&message.channel, &message.address)
            .await
        {
            Ok(true) => Ok(Some("erased".to_string())),
            Ok(false) => core.store.dispatch_block(&message, &consents).await,
            Err(e) => Err(e),
        };
        match block {
            Ok(None) => sendable.push(message),
            Ok(Some(reason)) => {
                tracing::info!(key = %message.idempotency_key(), %reason, "message suppressed");
                match core
                    .store
                    .mark_suppressed(&message, &core.worker_id, &reason, core.now())
                    .await
                {
                    Ok(()) => core.metrics.record_send(&message.channel, "suppressed"),
                    Err(e) => {
                        tracing::warn!(key = %message.idempotency_key(), error = %e, "could not record a suppressed message");
                    }
                }
            }
            // Not knowing is not a reason to send: the lease expires and the message is
            // looked at again.
            Err(e) => {
                tracing::warn!(key = %message.idempotency_key(), error = %e, "could not check the suppression list; the message waits");
            }
        }
    }
    sendable
}

// ------------------------------------------------------------------ HTTP

struct RespectState {
    core: Arc<Core>,
    webhook_secret: String,
}

/// The contact-facing routes (signed links) and the provider webhook.
pub fn router(core: Arc<Core>, webhook_secret: String) -> Router {
    let state = Arc::new(RespectState {
        core,
        webhook_secret,
    });
    Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route(
            "/preferences/{token}",
            get(preferences_page).post(preferences),
        )
        .route("/confirm/{token}", get(confirm_page).post(confirm))
        .route("/o/{token}", get(open_pixel))
        .route("/c/{token}", get(click))
        .route("/v1/webhooks/email", axum::routing::post(email_webhook))
        .with_state(state)
}

/// The admin routes of the suppression list and double opt-in statistics, to be put
/// behind the admin token ([`crate::admin::behind_token`]).
pub fn admin_router(core: Arc<Core>) -> Router {
    let state = Arc::new(RespectState {
        core,
        webhook_secret: String::new(),
    });
    Router::new()
        .route(
            "/admin/suppressions",
            get(list_suppressions)
                .post(add_suppression)
                .delete(remove_suppression),
        )
        .route("/admin/double-opt-in", get(double_opt_in_stats))
        .with_state(state)
}

type Shared = State<Arc<RespectState>>;

/// A refused link: 400 when it is not a link at all, 403 when it is forged or
/// tampered with, 410 when it expired. The page says so and changes nothing.
fn refused(e: &LinkError) -> Response {
    let status = match e {
        LinkError::Malformed => StatusCode::BAD_REQUEST,
        LinkError::BadSignature | LinkError::WrongPurpose { .. } => StatusCode::FORBIDDEN,
        LinkError::Expired => StatusCode::GONE,
    };
    page(
        status,
        "This link cannot be used",
        &format!("<p>{}.</p>", escape(&e.to_string())),
    )
}

fn failed(e: &StoreError) -> Response {
    tracing::error!(error = %e, "a contact request failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<p>Something went wrong on our side; nothing was changed. Please try again in a minute.</p>",
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.5rem 1rem}}label{{display:block;margin:.5rem 0}}</style>\
         </head><body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Hands one built-in event about `contact` to the pipeline, as the tracking API would.
/// `message_id` makes a repeat (a pixel loaded twice) a no-op.
async fn feed(
    core: &Core,
    contact: &str,
    event: &str,
    payload: Json,
    message_id: Option<String>,
) -> Result<(), StoreError> {
    // A test message's links (`cairn preview --send-to`) are signed for a contact that
    // does not exist: following them shows the pages and changes nothing.
    if contact == crate::admin::TEST_CONTACT {
        return Ok(());
    }
    let now = core.now();
    let input = Input {
        user_id: Some(contact.to_string()),
        anonymous_id: None,
        message_id,
        occurred_at: now,
        kind: InputKind::Track {
            event: event.to_string(),
            payload: Arc::new(payload),
        },
    };
    core.ingest(&[vec![input]], now).await.map(|_| ())
}

/// The feedback fields of an event about `message`: what `opened(step)` reads.
fn feedback(message: Option<&MessageRef>) -> serde_json::Map<String, Json> {
    let mut payload = serde_json::Map::new();
    if let Some(m) = message {
        payload.insert("journey".into(), json!(m.journey));
        payload.insert("run".into(), json!(m.run_id));
        payload.insert("step".into(), json!(m.step));
    }
    payload
}

async fn message_of(core: &Core, link: &Link) -> Result<Option<MessageRef>, StoreError> {
    let Some(reference) = &link.outbox_id else {
        return Ok(None);
    };
    // A link names the contact it was made for: a message of someone else is ignored.
    Ok(core
        .store
        .message_ref(reference)
        .await?
        .filter(|m| m.contact_id == link.contact_id))
}

fn secret(state: &RespectState) -> &[u8] {
    &state.core.links.secret
}

// ------------------------------------------------------------------ unsubscribe

/// `GET /unsubscribe/{token}`: a confirmation page; nothing changes until its button
/// POSTs (mail scanners follow GET links on their own).
async fn unsubscribe_page(state: Shared, Path(token): Path<String>) -> Response {
    if let Err(e) = links::verify_unsubscribe(secret(&state), &token) {
        return refused(&e);
    }
    page(
        StatusCode::OK,
        "Unsubscribe",
        "<p>Do you want to stop receiving these emails?</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form>",
    )
}

/// `POST /unsubscribe/{token}` (RFC 8058 one-click, or the page's button): revokes the
/// consents of the message's channel and puts its address on the suppression list.
async fn unsubscribe(state: Shared, Path(token): Path<String>) -> Response {
    let link = match links::verify_unsubscribe(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    let core = &state.core;
    let result = async {
        let message = message_of(core, &link).await?;
        let channel = message
            .as_ref()
            .map_or("email", |m| m.channel.as_str())
            .to_string();
        let address = match &message {
            Some(m) => Some(m.address.clone()),
            None => {
                core.store
                    .contact_address(&link.contact_id, &["email"])
                    .await?
            }
        };
        if let Some(address) = &address {
            core.store
                .suppress(
                    &channel,
                    address,
                    SuppressionReason::Unsubscribed,
                    Some(&link.contact_id),
                    "one_click",
                    core.now(),
                )
                .await?;
        }
        let mut payload = feedback(message.as_ref());
        payload.insert("scope".into(), json!(channel));
        payload.insert("via".into(), json!("one_click"));
        feed(
            core,
            &link.contact_id,
            "unsubscribed",
            Json::Object(payload),
            None,
        )
        .await
    }
    .await;
    match result {
        Ok(()) => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!(
                "<p>You will not receive these messages any more.</p>\
                 <p><a href=\"{}\">Manage your preferences</a></p>",
                escape(&links::preferences_url(
                    &core.links.base_url,
                    &core.links.secret,
                    &link.contact_id
                ))
            ),
        ),
        Err(e) => failed(&e),
    }
}

// ------------------------------------------------------------------ preferences

/// `GET /preferences/{token}`: the project's consents with the contact's state.
async fn preferences_page(state: Shared, Path(token): Path<String>) -> Response {
    let link = match links::verify_preferences(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    match preferences_form(&state.core, &link.contact_id, None).await {
        Ok(response) => response,
        Err(e) => failed(&e),
    }
}

async fn preferences_form(
    core: &Core,
    contact_id: &str,
    notice: Option<&str>,
) -> Result<Response, StoreError> {
    let records = core.store.consent_records(contact_id).await?;
    let plan = core.active_plan();
    let mut body = String::new();
    if let Some(notice) = notice {
        body.push_str(&format!("<p><strong>{}</strong></p>", escape(notice)));
    }
    body.push_str("<form method=\"post\">");
    for consent in plan.iter().flat_map(|p| p.plan.schema.consents.values()) {
        let record = records.iter().find(|r| r.consent == consent.name);
        let granted = record.is_some_and(|r| r.granted);
        let pending = !granted && core.respect.double_opt_in.contains_key(&consent.name);
        body.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"consent\" value=\"{name}\"{checked}> \
             {name} <small>({channel}{since}{note})</small></label>",
            name = escape(&consent.name),
            checked = if granted { " checked" } else { "" },
            channel = consent.channel.as_str(),
            since = record
                .and_then(|r| jiff::Timestamp::from_millisecond(r.changed_at).ok())
                .map(|t| format!(
                    ", {} since {}",
                    if granted { "on" } else { "off" },
                    t.strftime("%Y-%m-%d")
                ))
                .unwrap_or_default(),
            note = if pending {
                ", needs confirming by email"
            } else {
                ""
            },
        ));
    }
    body.push_str(
        "<p><button type=\"submit\">Save</button> \
         <button type=\"submit\" name=\"all\" value=\"unsubscribe\">Unsubscribe from everything</button></p>\
         </form>",
    );
    Ok(page(StatusCode::OK, "Your preferences", &body))
}

/// `POST /preferences/{token}` (form): the consents ticked are granted (or, for double
/// opt-in ones, confirmed by email first), the others revoked; `all=unsubscribe`
/// revokes every consent and suppresses the contact's email address for marketing.
async fn preferences(state: Shared, Path(token): Path<String>, body: Bytes) -> Response {
    let link = match links::verify_preferences(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    let core = &state.core;
    let Some(plan) = core.active_plan() else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "<p>No journeys are deployed yet.</p>",
        );
    };
    let mut wanted = BTreeSet::new();
    let mut all = false;
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "consent" if plan.plan.schema.consents.contains_key(value.as_ref()) => {
                wanted.insert(value.into_owned());
            }
            "consent" => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Unknown choice",
                    &format!(
                        "<p>There is no `{}` to choose; nothing was changed.</p>",
                        escape(&value)
                    ),
                );
            }
            "all" => all = value == "unsubscribe",
            _ => {}
        }
    }
    let result = async {
        let records = core.store.consent_records(&link.contact_id).await?;
        let granted = |name: &str| records.iter().any(|r| r.consent == name && r.granted);
        if all {
            if let Some(address) = core
                .store
                .contact_address(&link.contact_id, &["email"])
                .await?
            {
                core.store
                    .suppress(
                        "email",
                        &address,
                        SuppressionReason::Unsubscribed,
                        Some(&link.contact_id),
                        "preferences",
                        core.now(),
                    )
                    .await?;
            }
            return feed(
                core,
                &link.contact_id,
                "unsubscribed",
                json!({ "scope": "all", "via": "preferences" }),
                None,
            )
            .await
            .map(|()| "You are unsubscribed from everything.");
        }
        let mut confirming = false;
        for consent in plan.plan.schema.consents.values() {
            let want = wanted.contains(&consent.name);
            if want && !granted(&consent.name) {
                confirming |= core.respect.double_opt_in.contains_key(&consent.name);
                feed(
                    core,
                    &link.contact_id,
                    "consent_granted",
                    json!({ "consent": consent.name, "source": "preferences" }),
                    None,
                )
                .await?;
            } else if !want && granted(&consent.name) {
                feed(
                    core,
                    &link.contact_id,
                    "unsubscribed",
                    json!({ "scope": consent.name, "via": "preferences" }),
                    None,
                )
                .await?;
            }
        }
        Ok(if confirming {
            "Saved. We sent you an email: follow its link to confirm."
        } else {
            "Your preferences are saved."
        })
    }
    .await;
    match result {
        Ok(notice) => preferences_form(core, &link.contact_id, Some(notice))
            .await
            .unwrap_or_else(|e| failed(&e)),
        Err(e) => failed(&e),
    }
}

// ------------------------------------------------------------------ double opt-in

/// `GET /confirm/{token}`: a page whose button activates the consent.
async fn confirm_page(state: Shared, Path(token): Path<String>) -> Response {
    let link = match links::verify_confirm(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    page(
        StatusCode::OK,
        "Confirm your subscription",
        &format!(
            "<p>Confirm that you want to receive <strong>{}</strong> messages.</p>\
             <form method=\"post\"><button type=\"submit\">Confirm</button></form>",
            escape(link.consent.as_deref().unwrap_or_default())
        ),
    )
}

/// `POST /confirm/{token}`: grants the consent with source `double_opt_in`.
async fn confirm(state: Shared, Path(token): Path<String>) -> Response {
    let link = match links::verify_confirm(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    let consent = link.consent.clone().unwrap_or_default();
    let core = &state.core;
    let known = core
        .active_plan()
        .is_some_and(|p| p.plan.schema.consents.contains_key(&consent));
    if !known {
        return page(
            StatusCode::GONE,
            "This link cannot be used",
            "<p>This subscription no longer exists.</p>",
        );
    }
    let payload = json!({ "consent": consent, "source": DOUBLE_OPT_IN_SOURCE });
    match feed(core, &link.contact_id, "consent_granted", payload, None).await {
        Ok(()) => page(
            StatusCode::OK,
            "Thank you",
            "<p>Your subscription is confirmed.</p>",
        ),
        Err(e) => failed(&e),
    }
}

// ------------------------------------------------------------------ tracking

/// A transparent 1x1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `GET /o/{token}`: records `email_opened` (once per message) and answers the pixel.
async fn open_pixel(state: Shared, Path(token): Path<String>) -> Response {
    let link = match links::verify_open(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    let core = &state.core;
    let result = async {
        let Some(message) = message_of(core, &link).await? else {
            return Ok(());
        };
        let payload = Json::Object(feedback(Some(&message)));
        let id = format!("cairn:opened:{}", message.id);
        feed(core, &link.contact_id, "email_opened", payload, Some(id)).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record an open");
    }
    let mut response = (StatusCode::OK, PIXEL).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    response
}

/// `GET /c/{token}`: records `email_clicked {url}` (once per message and URL) and
/// redirects to the signed target, which is never taken from anywhere else.
async fn click(state: Shared, Path(token): Path<String>) -> Response {
    let link = match links::verify_click(secret(&state), &token) {
        Ok(link) => link,
        Err(e) => return refused(&e),
    };
    let target = link.target.clone().unwrap_or_default();
    let lower = target.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return refused(&LinkError::Malformed);
    }
    let Ok(location) = HeaderValue::from_str(&target) else {
        return refused(&LinkError::Malformed);
    };
    let core = &state.core;
    let result = async {
        let Some(message) = message_of(core, &link).await? else {
            return Ok(());
        };
        let mut payload = feedback(Some(&message));
        payload.insert("url".into(), json!(target));
        let id = format!("cairn:clicked:{}:{}", message.id, secret_hash(&target));
        feed(
            core,
            &link.contact_id,
            "email_clicked",
            Json::Object(payload),
            Some(id),
        )
        .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record a click");
    }
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ------------------------------------------------------------------ provider webhooks

/// One notification of `POST /v1/webhooks/email`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailNotice {
    /// `bounce` or `complaint`.
    #[serde(rename = "type")]
    kind: String,
    /// The recipient address.
    email: String,
    /// For bounces: `hard` (the address does not exist) or `soft` (full mailbox...).
    bounce: Option<String>,
    /// The outbox message it is about: its id or idempotency key, when the provider
    /// kept it (Cairn sends it as `X-Cairn-Message`).
    message: Option<String>,
}

fn webhook_authorised(state: &RespectState, headers: &HeaderMap, body: &[u8]) -> bool {
    let secret = &state.webhook_secret;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| secret_hash(t.trim()) == secret_hash(secret));
    if bearer {
        return true;
    }
    let timestamp = headers
        .get("X-Cairn-Timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let signature = headers
        .get("X-Cairn-Signature")
        .and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let now = jiff::Timestamp::now().as_second();
    (now - timestamp).abs() <= WEBHOOK_TOLERANCE_SECS
        // Compared as hashes: the same length whatever was sent, so no early exit leaks
        // how much of the signature matched.
        && secret_hash(&crate::dispatch::sign(secret, timestamp, body)) == secret_hash(signature.trim())
}

/// `POST /v1/webhooks/email`: a bounce or complaint (one object, or an array).
/// Authenticated by `Authorization: Bearer <webhook secret>` or by `X-Cairn-Timestamp`
/// and `X-Cairn-Signature: sha256=HMAC(secret, "{timestamp}.{body}")`. A hard bounce or
/// a complaint suppresses the address; each notice becomes `email_bounced {kind}` or
/// `email_complained` for the contact it concerns. The whole request is checked before
/// anything is changed.
async fn email_webhook(state: Shared, headers: HeaderMap, body: Bytes) -> Response {
    if !webhook_authorised(&state, &headers, &body) {
        return error(
            StatusCode::UNAUTHORIZED,
            "the email webhook needs `Authorization: Bearer <webhook secret>` or a valid `X-Cairn-Signature`",
        );
    }
    let value: Json = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let items = match value {
        Json::Array(items) => items,
        other => vec![other],
    };
    let mut notices = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let notice: EmailNotice = match serde_json::from_value(item) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("notice {i}: {e}")),
        };
        match (notice.kind.as_str(), notice.bounce.as_deref()) {
            ("bounce", Some("hard" | "soft")) | ("complaint", None) => {}
            ("bounce", _) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("notice {i}: a bounce needs `bounce`: `hard` or `soft`"),
                );
            }
            ("complaint", Some(_)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("notice {i}: `bounce` is only for bounces"),
                );
            }
            (other, _) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("notice {i}: `type` is `{other}`: expected `bounce` or `complaint`"),
                );
            }
        }
        if !notice.email.contains('@') {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "notice {i}: `email` is `{}`: not an email address",
                    notice.email
                ),
            );
        }
        notices.push(notice);
    }
    let core = &state.core;
    let mut handled = 0;
    for notice in &notices {
        let result = async {
            let message = match &notice.message {
                Some(reference) => core
                    .store
                    .message_ref(reference)
                    .await?
                    .filter(|m| m.address.eq_ignore_ascii_case(notice.email.trim())),
                None => None,
            };
            let contact = match &message {
                Some(m) => Some(m.contact_id.clone()),
                None => core.store.contact_by_email(&notice.email).await?,
            };
            let (reason, event, mut payload) = match notice.bounce.as_deref() {
                Some(kind) => (
                    (kind == "hard").then_some(SuppressionReason::HardBounce),
                    "email_bounced",
                    feedback(message.as_ref()),
                ),
                None => (
                    Some(SuppressionReason::Complaint),
                    "email_complained",
                    feedback(message.as_ref()),
                ),
            };
            if let Some(kind) = &notice.bounce {
                payload.insert("kind".into(), json!(kind));
            }
            if let Some(reason) = reason {
                core.store
                    .suppress(
                        "email",
                        &notice.email,
                        reason,
                        contact.as_deref(),
                        "webhook",
                        core.now(),
                    )
                    .await?;
            }
            if let Some(contact) = contact {
                feed(core, &contact, event, Json::Object(payload), None).await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "an email webhook failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{e}; retry the request (notices before it were recorded, and repeating them is harmless)"
                ),
            );
        }
        handled += 1;
    }
    (StatusCode::OK, axum::Json(json!({ "handled": handled }))).into_response()
}

// ------------------------------------------------------------------ admin

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionQuery {
    channel: Option<String>,
    address: Option<String>,
    reason: Option<String>,
}

fn parse_reason(reason: Option<&str>) -> Result<SuppressionReason, String> {
    match reason {
        Some("unsubscribed") => Ok(SuppressionReason::Unsubscribed),
        Some("hard_bounce") => Ok(SuppressionReason::HardBounce),
        Some("complaint") => Ok(SuppressionReason::Complaint),
        other => Err(format!(
            "`reason` is {}: expected `unsubscribed`, `hard_bounce` or `complaint`",
            other.map_or("missing".to_string(), |r| format!("`{r}`"))
        )),
    }
}

fn parse_target(channel: Option<&str>, address: Option<&str>) -> Result<(String, String), String> {
    let channel = channel.unwrap_or("email");
    if !matches!(channel, "email" | "sms" | "push") {
        return Err(format!(
            "`channel` is `{channel}`: expected `email`, `sms` or `push`"
        ));
    }
    match address.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => Ok((channel.to_string(), a.to_string())),
        None => Err("`address` is missing".to_string()),
    }
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// `GET /admin/suppressions[?channel=&address=]`.
async fn list_suppressions(state: Shared, Query(q): Query<SuppressionQuery>) -> Response {
    let filter = match &q.address {
        Some(_) => match parse_target(q.channel.as_deref(), q.address.as_deref()) {
            Ok(t) => Some(t),
            Err(m) => return bad_request(m),
        },
        None => None,
    };
    match state
        .core
        .store
        .suppressions(filter.as_ref().map(|(c, a)| (c.as_str(), a.as_str())))
        .await
    {
        Ok(list) => axum::Json(json!({ "suppressions": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /admin/suppressions` with `{channel?, address, reason}`.
async fn add_suppression(state: Shared, body: Bytes) -> Response {
    let q: SuppressionQuery = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a suppression: {e}"),
            );
        }
    };
    let (channel, address) = match parse_target(q.channel.as_deref(), q.address.as_deref()) {
        Ok(t) => t,
        Err(m) => return bad_request(m),
    };
    let reason = match parse_reason(q.reason.as_deref()) {
        Ok(r) => r,
        Err(m) => return bad_request(m),
    };
    let core = &state.core;
    match core
        .store
        .suppress(&channel, &address, reason, None, "admin", core.now())
        .await
    {
        Ok(()) => (
            StatusCode::CREATED,
            axum::Json(json!({ "suppressed": address })),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `DELETE /admin/suppressions?channel=&address=&reason=`.
async fn remove_suppression(state: Shared, Query(q): Query<SuppressionQuery>) -> Response {
    let (channel, address) = match parse_target(q.channel.as_deref(), q.address.as_deref()) {
        Ok(t) => t,
        Err(m) => return bad_request(m),
    };
    let reason = match parse_reason(q.reason.as_deref()) {
        Ok(r) => r,
        Err(m) => return bad_request(m),
    };
    match state
        .core
        .store
        .unsuppress(&channel, &address, reason)
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("`{address}` is not suppressed for `{}`", reason.as_str()),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /admin/double-opt-in`: confirmations requested and activated, by consent.
async fn double_opt_in_stats(state: Shared) -> Response {
    match state.core.store.double_opt_in_stats().await {
        Ok(stats) => {
            let consents: Vec<Json> = stats
                .iter()
                .map(|s| json!({ "consent": s.consent, "requested": s.requested, "activated": s.activated, "activation_rate": s.activation_rate() }))
                .collect();
            axum::Json(json!({ "double_opt_in": consents })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{DispatchConfig, Dispatcher};
    use crate::engine::Links;
    use crate::model::{Effects, OutboxMessage};
    use crate::store::tests::on_both;
    use crate::time::SystemClock;
    use cairn_plan::Plan;

    /// A plan with one marketing email template, one transactional one, and the
    /// `email_marketing` consent.
    fn plan() -> Plan {
        let mut plan = Plan::new("respect");
        for (name, transactional) in [("news", false), ("receipt", true)] {
            plan.templates.insert(
                name.into(),
                cairn_plan::Template {
                    name: name.into(),
                    channel: cairn_plan::Channel::Email,
                    transactional,
                    parts: BTreeMap::new(),
                },
            );
        }
        plan.schema.consents.insert(
            "email_marketing".into(),
            cairn_plan::schema::Consent {
                name: "email_marketing".into(),
                channel: cairn_plan::Channel::Email,
            },
        );
        for event in cairn_plan::schema::builtin_events() {
            plan.schema.events.insert(event.name.clone(), event);
        }
        plan.seal();
        plan
    }

    fn email(step: &str, template: &str) -> OutboxMessage {
        OutboxMessage {
            run_id: "cart/ana/1".into(),
            step: step.into(),
            visit: 1,
            channel: "email".into(),
            template: Some(template.into()),
            address: "Ana@Example.com".into(),
            payload: json!({"subject": "Hello", "html": "<p>Hi</p>"}),
            not_before: 0,
        }
    }

    /// A daemon's core on `store` with `plan` deployed, Ana consenting to marketing
    /// email, and `messages` queued for her.
    async fn setup(store: &Store, messages: Vec<OutboxMessage>) -> Arc<Core> {
        let plan = plan();
        store
            .deploy(&plan.to_json_pretty(), &plan.content_hash, None, 0)
            .await
            .expect("deploy");
        let core = Arc::new(Core::new(
            store.clone(),
            Arc::new(SystemClock),
            Links::default(),
            "dispatcher-1".into(),
        ));
        core.reload_active().await.expect("load the plan");
        feed(
            &core,
            "ana",
            "consent_granted",
            json!({"consent": "email_marketing", "source": "form"}),
            None,
        )
        .await
        .expect("grant");
        let now = core.now();
        let mut tx = store.begin().await.expect("begin");
        let mut state = tx.load_state("ana", now).await.expect("state");
        let effects = Effects {
            messages,
            ..Effects::default()
        };
        tx.apply_effects(&mut state, &effects, &plan, now)
            .await
            .expect("queue");
        tx.commit().await.expect("commit");
        core
    }

    async fn outbox_state(store: &Store, step: &str) -> (String, Option<String>) {
        store.outbox_fate(step).await.expect("the message")
    }

    async fn outcome_kinds(store: &Store) -> Vec<(String, Json)> {
        store.all_outcomes().await.expect("outcomes")
    }

    /// The links of a test message (signed for the test-send contact) show their pages
    /// but record nothing: no contact appears, nothing is unsubscribed or consented.
    #[tokio::test]
    async fn a_test_messages_links_change_nothing() {
        on_both("respect_test_send", |store| async move {
            let core = setup(&store, Vec::new()).await;
            let test = crate::admin::TEST_CONTACT;
            let state = || {
                State(Arc::new(RespectState {
                    core: core.clone(),
                    webhook_secret: String::new(),
                }))
            };
            let token = |url: String| url.rsplit('/').next().unwrap_or_default().to_string();
            let secret = core.links.secret.clone();
            let unsubscribe_token = token(links::unsubscribe_url("https://x", &secret, test, "0"));
            let response = unsubscribe(state(), Path(unsubscribe_token)).await;
            assert_eq!(response.status(), StatusCode::OK);
            let preferences_token = token(links::preferences_url("https://x", &secret, test));
            let response = preferences(
                state(),
                Path(preferences_token),
                Bytes::from_static(b"consent=email_marketing"),
            )
            .await;
            assert!(response.status().is_success(), "{}", response.status());
            assert!(
                store.export_contact(test).await.expect("export").is_none(),
                "the test contact was created"
            );
            let suppressed = store.suppressions(None).await.expect("suppressions");
            assert!(suppressed.is_empty(), "{suppressed:?}");
            // Ana's own links still work.
            let ana = token(links::unsubscribe_url("https://x", &secret, "ana", "0"));
            let response = unsubscribe(state(), Path(ana)).await;
            assert_eq!(response.status(), StatusCode::OK);
            let names = store.event_names("ana").await.expect("events");
            assert!(names.iter().any(|n| n == "unsubscribed"), "{names:?}");
        })
        .await;
    }

    /// The race: the dispatcher has claimed the message, then Ana unsubscribes, then
    /// it comes to send. She receives nothing, and the message says why.
    #[tokio::test]
    async fn an_unsubscribe_after_the_claim_holds_the_message_back() {
        on_both("respect_claim_race", |store| async move {
            let core = setup(&store, vec![email("remind", "news")]).await;
            let now = core.now();
            let claimed = store
                .claim_messages("dispatcher-1", now, now + 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(claimed.len(), 1);

            // Between the claim and the hand-over: one-click unsubscribe.
            store
                .suppress(
                    "email",
                    "ana@example.com",
                    SuppressionReason::Unsubscribed,
                    Some("ana"),
                    "one_click",
                    now,
                )
                .await
                .expect("suppress");
            feed(
                &core,
                "ana",
                "unsubscribed",
                json!({"scope": "email", "via": "one_click"}),
                None,
            )
            .await
            .expect("unsubscribe");

            let sendable = hold_back_suppressed(&core, claimed).await;
            assert!(sendable.is_empty(), "{sendable:?}");
            assert_eq!(
                outbox_state(&store, "remind").await,
                (
                    "failed".to_string(),
                    Some("suppressed: unsubscribed".to_string())
                )
            );
            let outcomes = outcome_kinds(&store).await;
            let suppressed: Vec<&Json> = outcomes
                .iter()
                .filter(|(k, _)| k == "suppressed")
                .map(|(_, d)| d)
                .collect();
            assert_eq!(suppressed.len(), 1, "{outcomes:?}");
            assert_eq!(suppressed[0]["reason"], json!("unsubscribed"));
            // The consent change is recorded with its source.
            let records = store.consent_records("ana").await.expect("consents");
            assert_eq!(records.len(), 1);
            assert!(!records[0].granted);
            assert_eq!(records[0].source.as_deref(), Some("one_click"));
            assert_eq!(core.metrics.sends("email", "suppressed"), 1);

            // Subscribing again lifts the unsubscribe (not the list entry's history).
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            feed(
                &core,
                "ana",
                "consent_granted",
                json!({"consent": "email_marketing", "source": "preferences"}),
                None,
            )
            .await
            .expect("grant again");
            let mut again = email("again", "news");
            again.run_id = "cart/ana/2".into();
            let mut tx = store.begin().await.expect("begin");
            let mut state = tx.load_state("ana", core.now()).await.expect("state");
            tx.apply_effects(
                &mut state,
                &Effects {
                    messages: vec![again],
                    ..Effects::default()
                },
                &plan(),
                core.now(),
            )
            .await
            .expect("queue");
            tx.commit().await.expect("commit");
            let now = core.now();
            let claimed = store
                .claim_messages("dispatcher-1", now, now + 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(hold_back_suppressed(&core, claimed).await.len(), 1);
        })
        .await;
    }

    /// Through the real dispatcher and file channel: a marketing message to an
    /// unsubscribed address is suppressed and no file is written; a transactional one
    /// still goes; a hard bounce stops both.
    #[tokio::test]
    async fn the_dispatcher_checks_the_list_at_hand_over() {
        on_both("respect_dispatcher", |store| async move {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let core = setup(
                &store,
                vec![email("a_news", "news"), email("b_receipt", "receipt")],
            )
            .await;
            store
                .suppress(
                    "email",
                    "ana@example.com",
                    SuppressionReason::Unsubscribed,
                    Some("ana"),
                    "one_click",
                    core.now(),
                )
                .await
                .expect("suppress");
            let config = DispatchConfig::new(dir.path().join("outbox"), "whs".into());
            let dispatcher = Dispatcher::new(core.clone(), config).expect("dispatcher");
            dispatcher.dispatch_once().await.expect("dispatch");
            assert_eq!(
                outbox_state(&store, "a_news").await,
                (
                    "failed".to_string(),
                    Some("suppressed: unsubscribed".to_string())
                )
            );
            assert_eq!(outbox_state(&store, "b_receipt").await.0, "sent");
            let files: Vec<String> = std::fs::read_dir(dir.path().join("outbox/email"))
                .expect("the email outbox")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(files.len(), 1, "{files:?}");
            assert!(files[0].contains("b_receipt"), "{files:?}");

            // A hard bounce blocks transactional messages too.
            let store2 = store.clone();
            store2
                .suppress(
                    "email",
                    "ANA@example.com ",
                    SuppressionReason::HardBounce,
                    None,
                    "webhook",
                    core.now(),
                )
                .await
                .expect("suppress");
            let list = store
                .suppressions(Some(("email", "ana@example.com")))
                .await
                .expect("list");
            assert_eq!(list.len(), 2, "{list:?}");
            let mut receipt = email("c_receipt", "receipt");
            receipt.run_id = "order/ana/1".into();
            let plan = plan();
            let mut tx = store.begin().await.expect("begin");
            let mut state = tx.load_state("ana", core.now()).await.expect("state");
            tx.apply_effects(
                &mut state,
                &Effects {
                    messages: vec![receipt],
                    ..Effects::default()
                },
                &plan,
                core.now(),
            )
            .await
            .expect("queue");
            tx.commit().await.expect("commit");
            dispatcher.dispatch_once().await.expect("dispatch");
            assert_eq!(
                outbox_state(&store, "c_receipt").await,
                (
                    "failed".to_string(),
                    Some("suppressed: hard_bounce".to_string())
                )
            );
            // Lifting the bounce and the unsubscribe empties the list for her.
            assert!(
                store
                    .unsuppress("email", "ana@example.com", SuppressionReason::HardBounce)
                    .await
                    .expect("lift")
            );
            assert!(
                !store
                    .unsuppress("email", "ana@example.com", SuppressionReason::HardBounce)
                    .await
                    .expect("lift")
            );
        })
        .await;
    }

    /// What a signed link names is found by row id or idempotency key, with its
    /// journey; an address leads back to its contact.
    #[tokio::test]
    async fn links_find_their_message_and_contact() {
        on_both("respect_message_ref", |store| async move {
            let core = setup(&store, vec![email("remind", "news")]).await;
            let by_key = store
                .message_ref("cart/ana/1/remind/1")
                .await
                .expect("lookup")
                .expect("found by key");
            assert_eq!(
                (by_key.run_id.as_str(), by_key.step.as_str(), by_key.visit),
                ("cart/ana/1", "remind", 1)
            );
            let by_id = store
                .message_ref(&by_key.id.to_string())
                .await
                .expect("lookup")
                .expect("found by id");
            assert_eq!(by_id, by_key);
            assert_eq!(
                store
                    .message_ref("cart/ana/1/remind/2")
                    .await
                    .expect("lookup"),
                None
            );
            assert_eq!(store.message_ref("nonsense").await.expect("lookup"), None);
            assert_eq!(
                store
                    .contact_by_email("ANA@example.com")
                    .await
                    .expect("lookup")
                    .as_deref(),
                Some("ana")
            );
            let records = store.consent_records("ana").await.expect("consents");
            assert_eq!(records[0].source.as_deref(), Some("form"));
            assert!(records[0].changed_at > 0);
            drop(core);
        })
        .await;
    }

    /// A revoked consent (not an unsubscribe link: a profile update) also holds a
    /// queued marketing message back.
    #[tokio::test]
    async fn a_consent_revoked_after_queueing_holds_marketing_back() {
        on_both("respect_consent_revoked", |store| async move {
            let core = setup(&store, vec![email("remind", "news")]).await;
            feed(
                &core,
                "ana",
                "unsubscribed",
                json!({"scope": "email_marketing", "via": "crm"}),
                None,
            )
            .await
            .expect("revoke");
            let now = core.now();
            let claimed = store
                .claim_messages("dispatcher-1", now, now + 60_000, 10)
                .await
                .expect("claim");
            assert!(hold_back_suppressed(&core, claimed).await.is_empty());
            assert_eq!(
                outbox_state(&store, "remind").await.1.as_deref(),
                Some("suppressed: no_consent")
            );
        })
        .await;
    }

    /// A double opt-in consent granted from a form is not granted: a confirmation is
    /// queued (once a day), and the confirmation link's source grants it; the
    /// statistics count both.
    #[tokio::test]
    async fn double_opt_in_requests_then_activates() {
        on_both("respect_double_opt_in", |store| async move {
            let mut plan = plan();
            plan.templates
                .get_mut("receipt")
                .expect("template")
                .parts
                .insert(
                    "html".into(),
                    cairn_plan::TemplatePart {
                        source: "<a href=\"{{ confirm_url }}\">Confirm</a>".into(),
                        file: None,
                    },
                );
            plan.schema.contact.push(cairn_plan::schema::Field {
                name: "email".into(),
                ty: cairn_plan::schema::Type::Scalar {
                    name: "email".into(),
                },
                optional: true,
                default: None,
            });
            plan.seal();
            store
                .deploy(&plan.to_json_pretty(), &plan.content_hash, None, 0)
                .await
                .expect("deploy");
            let mut core = Core::new(
                store.clone(),
                Arc::new(SystemClock),
                Links::default(),
                "w".into(),
            );
            core.respect
                .double_opt_in
                .insert("email_marketing".into(), "receipt".into());
            let core = Arc::new(core);
            core.reload_active().await.expect("load");
            let identify = Input {
                user_id: Some("bo".into()),
                anonymous_id: None,
                message_id: None,
                occurred_at: core.now(),
                kind: InputKind::Identify {
                    traits: serde_json::Map::from_iter([(
                        "email".to_string(),
                        json!("bo@example.com"),
                    )]),
                    consents: vec![("email_marketing".into(), true)],
                },
            };
            core.ingest(&[vec![identify.clone()]], core.now())
                .await
                .expect("identify");
            core.ingest(&[vec![identify]], core.now())
                .await
                .expect("identify again");
            assert!(
                store
                    .consent_records("bo")
                    .await
                    .expect("consents")
                    .is_empty()
            );
            let stats = store.double_opt_in_stats().await.expect("stats");
            assert_eq!(stats.len(), 1);
            assert_eq!((stats[0].requested, stats[0].activated), (1, 0));
            let message = store
                .message_ref(&format!(
                    "opt_in/email_marketing/bo/confirm/{}",
                    core.now() / 86_400_000
                ))
                .await
                .expect("lookup")
                .expect("the confirmation is queued");
            assert_eq!(message.address, "bo@example.com");

            feed(
                &core,
                "bo",
                "consent_granted",
                json!({"consent": "email_marketing", "source": DOUBLE_OPT_IN_SOURCE}),
                None,
            )
            .await
            .expect("activate");
            let records = store.consent_records("bo").await.expect("consents");
            assert_eq!(records[0].source.as_deref(), Some(DOUBLE_OPT_IN_SOURCE));
            assert!(records[0].granted);
            let stats = store.double_opt_in_stats().await.expect("stats");
            assert_eq!((stats[0].requested, stats[0].activated), (1, 1));
            assert!((stats[0].activation_rate() - 1.0).abs() < f64::EPSILON);
        })
        .await;
    }
}
