//! Segment's tracking API messages (`identify`, `track`, `page`, `alias`), read and
//! checked against the active plan. A message becomes an [`Input`] the pipeline stores
//! and hands to the engine, or a [`Rejected`] naming why; nothing is stored from a
//! request with any rejected message.

use super::schema::{Context, Path, check_fields_owned, parse_instant, snake_case};
use crate::model::Millis;
use cairn_plan::Plan;
use cairn_plan::schema::Event;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// The kinds of call, as `type` names them in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Identify,
    Track,
    Page,
    Screen,
    Alias,
    Group,
}

impl Call {
    pub fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "identify" => Call::Identify,
            "track" => Call::Track,
            "page" => Call::Page,
            "screen" => Call::Screen,
            "alias" => Call::Alias,
            "group" => Call::Group,
            _ => return None,
        })
    }
}

/// A checked message, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub message_id: Option<String>,
    /// When it happened, corrected for the sender's clock (`sentAt`).
    pub occurred_at: Millis,
    pub kind: InputKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// Traits to merge into the contact (checked ones in stored form, unknown ones as
    /// they came), and consents the traits granted or revoked.
    Identify {
        traits: Map<String, Json>,
        consents: Vec<(String, bool)>,
    },
    /// An event of the plan, by its plan name, with its payload in stored form.
    Track { event: String, payload: Arc<Json> },
    /// `previousId` (an anonymous id, usually) is the contact `user_id`.
    Alias { previous_id: String },
    /// A call Cairn accepts but keeps nothing of (`group`, `screen`).
    Ignored,
}

/// Why one message of a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Its position in the batch (0 for a single call).
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub errors: Vec<String>,
}

/// A message's properties and traits: taken from a message the reader owns, or
/// (traits) still in a borrowed one.
struct Body<'m> {
    properties: Option<Json>,
    traits: Option<Json>,
    borrowed_traits: Option<&'m Json>,
}

/// The plan as ingestion reads it: events by every name a client may use.
pub struct IngestSchema {
    plan: std::sync::Arc<Plan>,
    /// Wire name, plan name and snake_case name → plan name.
    events: HashMap<String, String>,
}

impl IngestSchema {
    pub fn new(plan: std::sync::Arc<Plan>) -> IngestSchema {
        let mut events = HashMap::new();
        // Plan names first, wire names last: an explicit wire name wins.
        for event in plan.schema.events.values() {
            events.insert(event.name.clone(), event.name.clone());
        }
        for event in plan.schema.events.values() {
            if let Some(wire) = &event.wire_name {
                events.insert(wire.clone(), event.name.clone());
            }
        }
        IngestSchema { plan, events }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan's event a `track` call names: by wire name, by name, or by the
    /// snake_case of the name.
    pub fn event(&self, wire: &str) -> Option<&Event> {
        let name = self
            .events
            .get(wire)
            .or_else(|| self.events.get(&snake_case(wire)))?;
        self.plan.schema.events.get(name)
    }

    /// Reads one message. `call` is the endpoint's kind, or `None` for a batch item,
    /// whose `type` says it. `sent_at` is the batch's `sentAt` when the message has none.
    pub fn read(
        &self,
        index: usize,
        message: &Json,
        call: Option<Call>,
        batch_sent_at: Option<&Json>,
        received_at: Millis,
    ) -> Result<Input, Rejected> {
        let object = message.as_object();
        let body = Body {
            properties: object.and_then(|o| o.get("properties")).cloned(),
            traits: None,
            borrowed_traits: object.and_then(|o| o.get("traits")),
        };
        self.read_body(index, message, body, call, batch_sent_at, received_at)
    }

    /// [`read`](Self::read) of a message the caller gives up: its properties or traits
    /// move into the input instead of being copied.
    pub fn read_owned(
        &self,
        index: usize,
        mut message: Json,
        call: Option<Call>,
        batch_sent_at: Option<&Json>,
        received_at: Millis,
    ) -> Result<Input, Rejected> {
        let (properties, traits) = match message.as_object_mut() {
            Some(object) => (object.remove("properties"), object.remove("traits")),
            None => (None, None),
        };
        let body = Body {
            properties,
            traits,
            borrowed_traits: None,
        };
        self.read_body(index, &message, body, call, batch_sent_at, received_at)
    }

    /// Reads `message`, whose properties and traits are in `body`.
    fn read_body(
        &self,
        index: usize,
        message: &Json,
        body: Body<'_>,
        call: Option<Call>,
        batch_sent_at: Option<&Json>,
        received_at: Millis,
    ) -> Result<Input, Rejected> {
        let rejected = |call: Option<&str>, event: Option<&str>, errors: Vec<String>| Rejected {
            index,
            message_id: message
                .get("messageId")
                .and_then(Json::as_str)
                .map(str::to_string),
            call: call.map(str::to_string),
            event: event.map(str::to_string),
            errors,
        };
        let Some(object) = message.as_object() else {
            return Err(rejected(
                None,
                None,
                vec!["a message must be a JSON object".into()],
            ));
        };
        let call = match call {
            Some(call) => call,
            None => match object.get("type").and_then(Json::as_str) {
                Some(name) => match Call::parse(name) {
                    Some(call) => call,
                    None => {
                        return Err(rejected(
                            Some(name),
                            None,
                            vec![format!(
                                "unknown message type `{name}`: expected `identify`, `track`, `page`, `screen`, `group` or `alias`"
                            )],
                        ));
                    }
                },
                None => {
                    return Err(rejected(
                        None,
                        None,
                        vec!["a batch message needs a `type`".into()],
                    ));
                }
            },
        };
        let mut errors = Vec::new();
        let errors_ref = &mut errors;

        let user_id = id_field(object, "userId", errors_ref);
        let anonymous_id = id_field(object, "anonymousId", errors_ref);
        if user_id.is_none() && anonymous_id.is_none() && call != Call::Alias {
            errors_ref.push("a message needs a `userId` or an `anonymousId`".into());
        }
        let message_id = match object.get("messageId") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                errors_ref.push("`messageId` must be a non-empty string".into());
                None
            }
        };
        let occurred_at = occurred_at(object, batch_sent_at, received_at, errors_ref);

        let plan = &*self.plan;
        let Body {
            properties: body_properties,
            traits: body_traits,
            borrowed_traits,
        } = body;
        let call_currency: Option<String> = body_properties
            .as_ref()
            .and_then(|p| p.get("currency"))
            .and_then(Json::as_str)
            .filter(|c| c.len() == 3)
            .map(str::to_string);
        let context = Context {
            records: &plan.schema.records,
            currency: call_currency
                .as_deref()
                .or(plan.default_currency.as_deref()),
        };
        let mut event_name: Option<&str> = None;
        let kind = match call {
            Call::Identify => {
                let traits = match body_traits.or_else(|| borrowed_traits.cloned()) {
                    None | Some(Json::Null) => Map::new(),
                    Some(Json::Object(t)) => t,
                    Some(_) => {
                        errors_ref.push("`traits` must be an object".into());
                        Map::new()
                    }
                };
                let mut traits = traits;
                let consents = self.consents(traits.remove("consents"), errors_ref);
                let traits = check_fields_owned(
                    traits,
                    &plan.schema.contact,
                    &context,
                    true,
                    &Path::Root("traits"),
                    errors_ref,
                );
                InputKind::Identify { traits, consents }
            }
            Call::Track => match object.get("event") {
                Some(Json::String(name)) if !name.trim().is_empty() => {
                    event_name = Some(name);
                    match self.event(name) {
                        Some(event) => {
                            let properties = properties(body_properties, errors_ref);
                            let payload = check_fields_owned(
                                properties,
                                &event.fields,
                                &context,
                                false,
                                &Path::Root("properties"),
                                errors_ref,
                            );
                            self.check_builtin(&event.name, &payload, errors_ref);
                            InputKind::Track {
                                event: event.name.clone(),
                                payload: Arc::new(Json::Object(payload)),
                            }
                        }
                        None => {
                            errors_ref.push(format!(
                                "unknown event `{name}`: the plan declares no event with this name or wire name"
                            ));
                            InputKind::Ignored
                        }
                    }
                }
                _ => {
                    errors_ref.push("a `track` call needs an `event` name".into());
                    InputKind::Ignored
                }
            },
            Call::Page => {
                event_name = Some("page_viewed");
                let payload = page_payload(object, body_properties, errors_ref);
                match plan.schema.events.get("page_viewed") {
                    Some(event) => {
                        let payload = check_fields_owned(
                            payload,
                            &event.fields,
                            &context,
                            false,
                            &Path::Root("properties"),
                            errors_ref,
                        );
                        InputKind::Track {
                            event: "page_viewed".into(),
                            payload: Arc::new(Json::Object(payload)),
                        }
                    }
                    None => InputKind::Track {
                        event: "page_viewed".into(),
                        payload: Arc::new(Json::Object(payload)),
                    },
                }
            }
            Call::Alias => match id_field(object, "previousId", errors_ref) {
                Some(previous_id) if user_id.is_some() => InputKind::Alias { previous_id },
                _ => {
                    errors_ref.push("an `alias` call needs a `previousId` and a `userId`".into());
                    InputKind::Ignored
                }
            },
            Call::Screen | Call::Group => InputKind::Ignored,
        };
        if !errors.is_empty() {
            return Err(rejected(Some(call_name(call)), event_name, errors));
        }
        Ok(Input {
            user_id,
            anonymous_id,
            message_id,
            occurred_at,
            kind,
        })
    }

    /// The `consents` trait: a list of granted consent names, or an object of names to
    /// `true`/`false`. Every name must be a consent of the plan.
    fn consents(&self, value: Option<Json>, errors: &mut Vec<String>) -> Vec<(String, bool)> {
        let pairs: Vec<(String, bool)> = match value {
            None | Some(Json::Null) => return Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .filter_map(|i| match i.as_str() {
                    Some(s) => Some((s.to_string(), true)),
                    None => {
                        errors.push("`traits.consents` must list consent names".into());
                        None
                    }
                })
                .collect(),
            Some(Json::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| match v.as_bool() {
                    Some(b) => Some((k.clone(), b)),
                    None => {
                        errors.push(format!("`traits.consents.{k}` must be `true` or `false`"));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                errors.push(
                    "`traits.consents` must be a list of consent names or an object of names to booleans"
                        .into(),
                );
                return Vec::new();
            }
        };
        for (name, _) in &pairs {
            if !self.plan.schema.consents.contains_key(name) {
                errors.push(format!("unknown consent `{name}` in `traits.consents`"));
            }
        }
        pairs
    }

    /// Built-in events whose fields name parts of the plan.
    fn check_builtin(&self, event: &str, payload: &Map<String, Json>, errors: &mut Vec<String>) {
        if event == "consent_granted"
            && let Some(name) = payload.get("consent").and_then(Json::as_str)
            && !self.plan.schema.consents.contains_key(name)
        {
            errors.push(format!("unknown consent `{name}` in `properties.consent`"));
        }
    }
}

fn call_name(call: Call) -> &'static str {
    match call {
        Call::Identify => "identify",
        Call::Track => "track",
        Call::Page => "page",
        Call::Screen => "screen",
        Call::Alias => "alias",
        Call::Group => "group",
    }
}

/// `userId`, `anonymousId`, `previousId`: strings, or numbers taken as their text.
fn id_field(object: &Map<String, Json>, key: &str, errors: &mut Vec<String>) -> Option<String> {
    match object.get(key) {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.trim().is_empty() => None,
        Some(Json::String(s)) if s.len() > 256 => {
            errors.push(format!("`{key}` is longer than 256 characters"));
            None
        }
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errors.push(format!("`{key}` must be a string"));
            None
        }
    }
}

/// A message's `properties`, taken from it.
fn properties(properties: Option<Json>, errors: &mut Vec<String>) -> Map<String, Json> {
    match properties {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(p)) => p,
        Some(_) => {
            errors.push("`properties` must be an object".into());
            Map::new()
        }
    }
}

/// A `page` call as `page_viewed {url, path, category?, referrer?}`: from its
/// properties, else from `context.page`; `path` is the URL's path when not given.
fn page_payload(
    object: &Map<String, Json>,
    properties_taken: Option<Json>,
    errors: &mut Vec<String>,
) -> Map<String, Json> {
    let mut payload = properties(properties_taken, errors);
    let context_page = object.get("context").and_then(|c| c.get("page"));
    for key in ["url", "path", "referrer"] {
        if !payload.contains_key(key)
            && let Some(v) = context_page
                .and_then(|p| p.get(key))
                .filter(|v| v.is_string())
        {
            payload.insert(key.into(), v.clone());
        }
    }
    if !payload.contains_key("category")
        && let Some(c) = object.get("category").filter(|c| c.is_string())
    {
        payload.insert("category".into(), c.clone());
    }
    if !payload.contains_key("name")
        && let Some(n) = object.get("name").filter(|n| n.is_string())
    {
        payload.insert("name".into(), n.clone());
    }
    if !payload.contains_key("path")
        && let Some(url) = payload.get("url").and_then(Json::as_str)
    {
        payload.insert("path".into(), Json::String(url_path(url)));
    }
    if payload.get("referrer").and_then(Json::as_str) == Some("") {
        payload.remove("referrer");
    }
    payload
}

/// The path of a URL, without its query or fragment.
pub fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path[..end].to_string()
}

/// When the message happened: `timestamp` (or `originalTimestamp`) moved by the
/// difference between the sender's clock (`sentAt`) and ours, as Segment does; the
/// arrival time without a timestamp. Never later than the arrival.
fn occurred_at(
    object: &Map<String, Json>,
    batch_sent_at: Option<&Json>,
    received_at: Millis,
    errors: &mut Vec<String>,
) -> Millis {
    let mut instant = |key: &str, value: Option<&Json>| -> Option<Millis> {
        match value {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => match parse_instant(s) {
                Some(t) => Some(t.as_millisecond()),
                None => {
                    errors.push(format!(
                        "`{key}` must be an ISO 8601 date and time, not `{s}`"
                    ));
                    None
                }
            },
            Some(_) => {
                errors.push(format!("`{key}` must be an ISO 8601 date and time"));
                None
            }
        }
    };
    let timestamp = instant(
        "timestamp",
        object
            .get("timestamp")
            .or_else(|| object.get("originalTimestamp")),
    );
    let sent_at = instant("sentAt", object.get("sentAt").or(batch_sent_at));
    let at = match (timestamp, sent_at) {
        (Some(t), Some(sent)) => received_at - (sent - t),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    at.min(received_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plan::schema::{Consent, Field, Type, builtin_events};
    use serde_json::json;
    use std::sync::Arc;

    fn schema() -> IngestSchema {
        let mut plan = Plan::new("shop");
        plan.default_currency = Some("EUR".into());
        plan.schema.contact = vec![
            Field {
                name: "email".into(),
                ty: Type::scalar("email"),
                optional: true,
                default: None,
            },
            Field {
                name: "birthday".into(),
                ty: Type::scalar("date"),
                optional: true,
                default: None,
            },
        ];
        for event in builtin_events() {
            plan.schema.events.insert(event.name.clone(), event);
        }
        plan.schema.events.insert(
            "order_completed".into(),
            Event {
                name: "order_completed".into(),
                wire_name: Some("Order Completed".into()),
                fields: vec![
                    Field {
                        name: "order_id".into(),
                        ty: Type::scalar("string"),
                        optional: false,
                        default: None,
                    },
                    Field {
                        name: "total".into(),
                        ty: Type::scalar("money"),
                        optional: false,
                        default: None,
                    },
                ],
                builtin: false,
            },
        );
        plan.schema.events.insert(
            "cart_updated".into(),
            Event {
                name: "cart_updated".into(),
                wire_name: None,
                fields: vec![],
                builtin: false,
            },
        );
        plan.schema.consents.insert(
            "email_marketing".into(),
            Consent {
                name: "email_marketing".into(),
                channel: cairn_plan::Channel::Email,
            },
        );
        IngestSchema::new(Arc::new(plan))
    }

    const NOW: Millis = 1_772_359_200_000; // 2026-03-01T10:00:00Z

    #[test]
    fn track_matches_wire_names_and_snake_case() {
        let s = schema();
        assert_eq!(
            s.event("Order Completed").map(|e| e.name.as_str()),
            Some("order_completed")
        );
        assert_eq!(
            s.event("order_completed").map(|e| e.name.as_str()),
            Some("order_completed")
        );
        assert_eq!(
            s.event("Cart Updated").map(|e| e.name.as_str()),
            Some("cart_updated")
        );
        assert!(s.event("Cart Abandoned").is_none());
    }

    #[test]
    fn a_track_call_is_checked_and_stored_in_plan_form() {
        let s = schema();
        let message = json!({
            "userId": "ana", "event": "Order Completed", "messageId": "m1",
            "properties": {"order_id": 42, "total": 80, "currency": "USD"}
        });
        let input = s
            .read(0, &message, Some(Call::Track), None, NOW)
            .expect("valid");
        assert_eq!(input.occurred_at, NOW);
        assert_eq!(
            input.kind,
            InputKind::Track {
                event: "order_completed".into(),
                payload: Arc::new(json!({"order_id": "42", "total": "80 USD", "currency": "USD"})),
            }
        );
        let bad =
            json!({"userId": "ana", "event": "Order Completed", "properties": {"total": "lots"}});
        let rejected = s
            .read(3, &bad, Some(Call::Track), None, NOW)
            .expect_err("invalid");
        assert_eq!(rejected.index, 3);
        assert_eq!(rejected.event.as_deref(), Some("Order Completed"));
        assert_eq!(rejected.errors.len(), 2, "{:?}", rejected.errors);
        assert!(
            rejected
                .errors
                .iter()
                .any(|e| e.contains("missing field `properties.order_id`"))
        );
        assert!(
            rejected
                .errors
                .iter()
                .any(|e| e.contains("`properties.total`"))
        );
    }

    #[test]
    fn unknown_events_and_missing_ids_are_rejected() {
        let s = schema();
        let r = s
            .read(
                0,
                &json!({"userId": "a", "event": "Nope"}),
                Some(Call::Track),
                None,
                NOW,
            )
            .expect_err("unknown");
        assert!(
            r.errors[0].contains("unknown event `Nope`"),
            "{:?}",
            r.errors
        );
        let r = s
            .read(
                0,
                &json!({"event": "Cart Updated"}),
                Some(Call::Track),
                None,
                NOW,
            )
            .expect_err("no id");
        assert!(r.errors[0].contains("`userId` or an `anonymousId`"));
        let r = s
            .read(0, &json!({"type": "nope", "userId": "a"}), None, None, NOW)
            .expect_err("type");
        assert!(r.errors[0].contains("unknown message type"));
    }

    #[test]
    fn sent_at_corrects_the_senders_clock() {
        let s = schema();
        // The sender's clock is an hour fast: its timestamp is 10 s before its sentAt.
        let message = json!({
            "userId": "ana", "event": "Cart Updated",
            "timestamp": "2026-03-01T11:00:00Z", "sentAt": "2026-03-01T11:00:10Z"
        });
        let input = s
            .read(0, &message, Some(Call::Track), None, NOW)
            .expect("valid");
        assert_eq!(input.occurred_at, NOW - 10_000);
        // The batch's sentAt counts for messages without their own.
        let message = json!({"type": "track", "userId": "ana", "event": "Cart Updated",
                             "timestamp": "2026-03-01T11:00:00Z"});
        let input = s
            .read(0, &message, None, Some(&json!("2026-03-01T11:00:05Z")), NOW)
            .expect("valid");
        assert_eq!(input.occurred_at, NOW - 5_000);
        // A timestamp in the future is clamped to the arrival.
        let message =
            json!({"userId": "ana", "event": "Cart Updated", "timestamp": "2030-01-01T00:00:00Z"});
        assert_eq!(
            s.read(0, &message, Some(Call::Track), None, NOW)
                .expect("valid")
                .occurred_at,
            NOW
        );
        let message = json!({"userId": "ana", "event": "Cart Updated", "timestamp": "soon"});
        assert!(s.read(0, &message, Some(Call::Track), None, NOW).is_err());
    }

    #[test]
    fn identify_checks_known_traits_and_reads_consents() {
        let s = schema();
        let message = json!({"userId": "ana", "traits": {
            "email": "ana@example.com", "birthday": "1990-04-02", "plan": "pro",
            "consents": ["email_marketing"]
        }});
        let input = s
            .read(0, &message, Some(Call::Identify), None, NOW)
            .expect("valid");
        let InputKind::Identify { traits, consents } = input.kind else {
            panic!("identify")
        };
        assert_eq!(traits.get("plan"), Some(&json!("pro")));
        assert!(!traits.contains_key("consents"));
        assert_eq!(consents, vec![("email_marketing".to_string(), true)]);
        let bad = json!({"userId": "ana", "traits": {"email": "nope", "consents": {"sms": true}}});
        let r = s
            .read(0, &bad, Some(Call::Identify), None, NOW)
            .expect_err("invalid");
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    }

    #[test]
    fn page_becomes_page_viewed() {
        let s = schema();
        let message = json!({"anonymousId": "x", "name": "Pricing", "category": "docs",
                             "properties": {"url": "https://shop.example/pricing?ref=ad#top"}});
        let input = s
            .read(0, &message, Some(Call::Page), None, NOW)
            .expect("valid");
        let InputKind::Track { event, payload } = input.kind else {
            panic!("track")
        };
        assert_eq!(event, "page_viewed");
        assert_eq!(payload["path"], json!("/pricing"));
        assert_eq!(payload["category"], json!("docs"));
        assert_eq!(url_path("https://a.example"), "/");
    }
}
