//! The shape of contacts and events, as the runtime validates and stores them.

use crate::expr::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the project declares about its data, plus the built-in events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Schema {
    /// The contact's fields, in the order they are declared.
    pub contact: Vec<Field>,
    pub records: BTreeMap<String, Record>,
    /// Declared events and the built-in ones (`builtin: true`), by name.
    pub events: BTreeMap<String, Event>,
    pub consents: BTreeMap<String, Consent>,
    pub tags: BTreeMap<String, Tag>,
}

/// A field of the contact, a record or an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Type,
    /// `true` for `T?`: the field may be absent.
    pub optional: bool,
    /// The value an absent field reads as (`timezone timezone = "UTC"`).
    pub default: Option<Expr>,
}

/// A field's type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Type {
    /// A built-in type by name: `string`, `number`, `bool`, `money`, `date`,
    /// `datetime`, `time`, `duration`, `email`, `phone`, `url`, `timezone`, ...
    Scalar {
        name: String,
    },
    /// A record declared in `schema.records`.
    Record {
        name: String,
    },
    /// One of the listed values.
    Enum {
        values: Vec<String>,
    },
    List {
        item: Box<Type>,
    },
}

impl Type {
    pub fn scalar(name: &str) -> Self {
        Type::Scalar {
            name: name.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    pub name: String,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub name: String,
    /// The name a Segment `track` call uses for this event when it differs from
    /// `name`; when absent, an incoming event matches by the snake_case of its name
    /// ("Order Completed" -> `order_completed`).
    pub wire_name: Option<String>,
    pub fields: Vec<Field>,
    /// Every project has this event without declaring it.
    pub builtin: bool,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }
}

/// `consent email_marketing for email`: marketing sends on `channel` need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Consent {
    pub name: String,
    pub channel: Channel,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tag {
    pub name: String,
    pub description: Option<String>,
}

/// The events every project has without declaring them.
///
/// Message feedback events (`email_delivered`, `email_opened`, `email_clicked`,
/// `email_bounced`, `email_complained`, `sms_delivered`, `sms_clicked`, `push_opened`)
/// also carry the `journey`, `run` and `step` of the message they answer, which is
/// what `opened(remind)` reads; they are optional because a provider may report
/// feedback on a message Cairn did not send.
pub fn builtin_events() -> Vec<Event> {
    fn field(name: &str, ty: Type, optional: bool) -> Field {
        Field {
            name: name.to_string(),
            ty,
            optional,
            default: None,
        }
    }
    fn string(name: &str) -> Field {
        field(name, Type::scalar("string"), false)
    }
    fn url(name: &str) -> Field {
        field(name, Type::scalar("url"), false)
    }
    fn one_of(name: &str, values: &[&str]) -> Field {
        let values = values.iter().map(|v| v.to_string()).collect();
        field(name, Type::Enum { values }, false)
    }
    fn feedback(mut fields: Vec<Field>) -> Vec<Field> {
        for name in ["journey", "run", "step"] {
            fields.push(field(name, Type::scalar("string"), true));
        }
        fields
    }
    let events: Vec<(&str, Vec<Field>)> = vec![
        (
            "page_viewed",
            vec![
                url("url"),
                string("path"),
                field("category", Type::scalar("string"), true),
                field("referrer", Type::scalar("url"), true),
            ],
        ),
        ("contact_created", vec![]),
        ("email_delivered", feedback(vec![])),
        ("email_opened", feedback(vec![])),
        ("email_clicked", feedback(vec![url("url")])),
        (
            "email_bounced",
            feedback(vec![one_of("kind", &["hard", "soft"])]),
        ),
        ("email_complained", feedback(vec![])),
        ("sms_delivered", feedback(vec![])),
        ("sms_clicked", feedback(vec![url("url")])),
        ("push_opened", feedback(vec![])),
        (
            "unsubscribed",
            vec![
                one_of("scope", &["email", "sms", "push", "all"]),
                string("via"),
            ],
        ),
        ("consent_granted", vec![string("consent"), string("source")]),
        ("tag_added", vec![string("tag")]),
        ("tag_removed", vec![string("tag")]),
    ];
    events
        .into_iter()
        .map(|(name, fields)| Event {
            name: name.to_string(),
            wire_name: None,
            fields,
            builtin: true,
        })
        .collect()
}
