//! The project's declarations as names and types: what every check reads.

use cairn_grammar::ast::{self, Channel, ItemKind, TypeKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The type of a value in a Cairn expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ty {
    String,
    Email,
    Phone,
    Url,
    Timezone,
    Number,
    Bool,
    Date,
    DateTime,
    Time,
    Duration,
    /// Money, with its currency when known.
    Money(Option<String>),
    Percent,
    Enum(Arc<[String]>),
    List(Box<Ty>),
    Record(String),
    /// A binding to an event's payload (`when cart_updated as cart`).
    Event(String),
    Contact,
    Object,
    Optional(Box<Ty>),
    /// The type of something already reported as wrong; compatible with anything.
    Unknown,
}

impl Ty {
    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) | Ty::Unknown => self,
            other => Ty::Optional(Box::new(other)),
        }
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, Ty::Optional(_))
    }

    /// The type without its optional wrapper.
    pub fn required(&self) -> &Ty {
        match self {
            Ty::Optional(inner) => inner,
            other => other,
        }
    }

    /// Text-like types compare with string literals.
    pub fn is_textual(&self) -> bool {
        matches!(
            self,
            Ty::String | Ty::Email | Ty::Phone | Ty::Url | Ty::Timezone | Ty::Enum(_)
        )
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Number | Ty::Money(_) | Ty::Percent)
    }

    pub fn is_ordered(&self) -> bool {
        matches!(
            self,
            Ty::Number
                | Ty::Money(_)
                | Ty::Percent
                | Ty::Date
                | Ty::DateTime
                | Ty::Time
                | Ty::Duration
        )
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::String => f.write_str("string"),
            Ty::Email => f.write_str("email"),
            Ty::Phone => f.write_str("phone"),
            Ty::Url => f.write_str("url"),
            Ty::Timezone => f.write_str("timezone"),
            Ty::Number => f.write_str("number"),
            Ty::Bool => f.write_str("bool"),
            Ty::Date => f.write_str("date"),
            Ty::DateTime => f.write_str("datetime"),
            Ty::Time => f.write_str("time"),
            Ty::Duration => f.write_str("duration"),
            Ty::Money(Some(c)) => write!(f, "money ({c})"),
            Ty::Money(None) => f.write_str("money"),
            Ty::Percent => f.write_str("percent"),
            Ty::Enum(variants) => write!(f, "enum {{ {} }}", variants.join(", ")),
            Ty::List(inner) => write!(f, "list<{inner}>"),
            Ty::Record(name) => write!(f, "record `{name}`"),
            Ty::Event(name) => write!(f, "event `{name}`"),
            Ty::Contact => f.write_str("contact"),
            Ty::Object => f.write_str("object"),
            Ty::Optional(inner) => write!(f, "{inner}?"),
            Ty::Unknown => f.write_str("unknown"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    pub fields: BTreeMap<String, Ty>,
    pub builtin: bool,
}

/// What a check needs to know about a template at a send site.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateInfo {
    pub channel: Option<Channel>,
    pub transactional: bool,
    /// Every variable path the template's parts read (`cart.value`, `unsubscribe_url`).
    pub variables: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub contact: BTreeMap<String, Ty>,
    pub records: BTreeMap<String, BTreeMap<String, Ty>>,
    pub events: BTreeMap<String, EventInfo>,
    pub consents: BTreeMap<String, Channel>,
    pub tags: BTreeSet<String>,
    pub segments: BTreeSet<String>,
    pub scores: BTreeSet<String>,
    pub templates: BTreeMap<String, TemplateInfo>,
    pub journeys: BTreeSet<String>,
    /// Each journey's step labels, with the arm names when the labelled step is a split.
    pub labels: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    pub currency: Option<String>,
}

impl Schema {
    /// The field of `ty` named `name`, for contacts, event bindings and records.
    pub fn member(&self, ty: &Ty, name: &str) -> Option<Ty> {
        match ty.required() {
            Ty::Contact => self.contact.get(name).cloned(),
            Ty::Event(event) => self.events.get(event)?.fields.get(name).cloned(),
            Ty::Record(record) => self.records.get(record)?.get(name).cloned(),
            _ => None,
        }
    }

    /// The names a member access on `ty` could use, for suggestions.
    pub fn members(&self, ty: &Ty) -> Vec<String> {
        let map = match ty.required() {
            Ty::Contact => Some(&self.contact),
            Ty::Event(event) => self.events.get(event).map(|e| &e.fields),
            Ty::Record(record) => self.records.get(record),
            _ => None,
        };
        map.map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    pub fn has_channel_address(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.contact.values().any(|t| t.required() == &Ty::Email),
            Channel::Sms => self.contact.values().any(|t| t.required() == &Ty::Phone),
            Channel::Push => self.contact.contains_key("push_token"),
        }
    }

    pub fn consents_for(&self, channel: Channel) -> Vec<&str> {
        self.consents
            .iter()
            .filter(|(_, c)| **c == channel)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// The namespace a named item lives in, as a user reads it.
pub fn namespace(kind: &ItemKind) -> &'static str {
    kind.keyword()
}

/// Built-in events every project has (SEMANTICS.md: tracking feedback and contact events).
pub fn builtin_events() -> BTreeMap<String, EventInfo> {
    let string = || Ty::String;
    let specs: &[(&str, &[(&str, Ty)])] = &[
        (
            "page_viewed",
            &[
                ("url", Ty::Url),
                ("path", Ty::String),
                ("category", Ty::Optional(Box::new(Ty::String))),
                ("referrer", Ty::Optional(Box::new(Ty::Url))),
            ],
        ),
        ("contact_created", &[]),
        ("email_delivered", &[]),
        ("email_opened", &[]),
        ("email_clicked", &[("url", Ty::Url)]),
        ("email_bounced", &[]),
        ("email_complained", &[]),
        ("sms_delivered", &[]),
        ("sms_clicked", &[("url", Ty::Url)]),
        ("push_opened", &[]),
        (
            "unsubscribed",
            &[("scope", Ty::String), ("via", Ty::String)],
        ),
        (
            "consent_granted",
            &[("consent", Ty::String), ("source", Ty::String)],
        ),
        ("tag_added", &[("tag", Ty::String)]),
        ("tag_removed", &[("tag", Ty::String)]),
    ];
    let mut events = BTreeMap::new();
    for (name, fields) in specs {
        let mut map: BTreeMap<String, Ty> = fields
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        if *name == "email_bounced" {
            map.insert(
                "kind".into(),
                Ty::Enum(Arc::from(vec!["hard".to_string(), "soft".to_string()])),
            );
        }
        if name.starts_with("email_") || name.starts_with("sms_") || name.starts_with("push_") {
            for f in ["journey", "run", "step"] {
                map.insert(f.into(), Ty::Optional(Box::new(string())));
            }
        }
        events.insert(
            name.to_string(),
            EventInfo {
                fields: map,
                builtin: true,
            },
        );
    }
    events
}

/// Built-in contact fields present whatever the schema says.
pub const BUILTIN_CONTACT_FIELDS: &[(&str, Ty)] =
    &[("id", Ty::String), ("created_at", Ty::DateTime)];

/// The type a field declaration names, or `None` when the name is unknown.
pub fn resolve_type(
    ty: &ast::TypeExpr,
    records: &BTreeSet<String>,
    currency: &Option<String>,
) -> Option<Ty> {
    let base = match &ty.kind {
        TypeKind::Named(name) => match name.name.as_str() {
            "string" | "text" => Ty::String,
            "email" => Ty::Email,
            "phone" => Ty::Phone,
            "url" => Ty::Url,
            "timezone" => Ty::Timezone,
            "number" | "int" | "decimal" => Ty::Number,
            "bool" => Ty::Bool,
            "date" => Ty::Date,
            "datetime" => Ty::DateTime,
            "time" => Ty::Time,
            "duration" => Ty::Duration,
            "money" => Ty::Money(currency.clone()),
            "percent" => Ty::Percent,
            other if records.contains(other) => Ty::Record(other.to_string()),
            _ => return None,
        },
        TypeKind::Enum(variants) => Ty::Enum(variants.iter().map(|v| v.name.clone()).collect()),
        TypeKind::List(inner) => Ty::List(Box::new(resolve_type(inner, records, currency)?)),
    };
    Some(if ty.optional { base.optional() } else { base })
}

pub const BUILTIN_TYPE_NAMES: &[&str] = &[
    "string", "text", "email", "phone", "url", "timezone", "number", "int", "decimal", "bool",
    "date", "datetime", "time", "duration", "money", "percent",
];

/// Builds the schema from every item of the project. `templates` gives the analysed
/// template of each template item, by name.
pub fn build(
    items: &[Arc<ItemKind>],
    templates: BTreeMap<String, TemplateInfo>,
    currency: Option<String>,
) -> Schema {
    let mut schema = Schema {
        events: builtin_events(),
        currency: currency.clone(),
        templates,
        ..Schema::default()
    };
    let records: BTreeSet<String> = items
        .iter()
        .filter_map(|i| match i.as_ref() {
            ItemKind::Record(r) => Some(r.name.name.clone()),
            _ => None,
        })
        .collect();
    let field_map = |fields: &[ast::Field]| -> BTreeMap<String, Ty> {
        fields
            .iter()
            .map(|f| {
                (
                    f.name.name.clone(),
                    resolve_type(&f.ty, &records, &currency).unwrap_or(Ty::Unknown),
                )
            })
            .collect()
    };
    for (name, ty) in BUILTIN_CONTACT_FIELDS {
        schema.contact.insert((*name).to_string(), ty.clone());
    }
    for item in items {
        match item.as_ref() {
            ItemKind::Contact(c) => {
                for (k, v) in field_map(&c.fields) {
                    schema.contact.entry(k).or_insert(v);
                }
            }
            ItemKind::Record(r) => {
                schema
                    .records
                    .entry(r.name.name.clone())
                    .or_insert_with(|| field_map(&r.fields));
            }
            ItemKind::Event(e) => {
                schema
                    .events
                    .entry(e.name.name.clone())
                    .or_insert_with(|| EventInfo {
                        fields: field_map(&e.fields),
                        builtin: false,
                    });
            }
            ItemKind::Consent(c) => {
                schema
                    .consents
                    .entry(c.name.name.clone())
                    .or_insert(c.channel);
            }
            ItemKind::Tag(t) => {
                schema.tags.insert(t.name.name.clone());
            }
            ItemKind::Segment(s) => {
                schema.segments.insert(s.name.name.clone());
            }
            ItemKind::Score(s) => {
                schema.scores.insert(s.name.name.clone());
            }
            ItemKind::Journey(j) => {
                schema.journeys.insert(j.name.name.clone());
                let labels = schema.labels.entry(j.name.name.clone()).or_default();
                for member in &j.members {
                    if let ast::MemberKind::Step(step) = &member.kind {
                        collect_labels(step, labels);
                    }
                }
            }
            ItemKind::Template(_)
            | ItemKind::QuietHours(_)
            | ItemKind::FrequencyCap(_)
            | ItemKind::Test(_)
            | ItemKind::Error => {}
        }
    }
    schema
}

/// Every labelled step under `step`, with split arm names.
fn collect_labels(step: &ast::Step, out: &mut BTreeMap<String, Vec<String>>) {
    use ast::{ArmBody, Else, StepKind};
    let arms = match &step.kind {
        StepKind::Split(arms) => arms.iter().map(|a| a.name.name.clone()).collect(),
        _ => Vec::new(),
    };
    if let Some(label) = &step.label {
        out.entry(label.name.clone()).or_insert(arms);
    }
    let mut blocks: Vec<&ast::Block> = Vec::new();
    match &step.kind {
        StepKind::WaitFor(w) => {
            blocks.push(&w.then);
            blocks.extend(w.timeout.as_ref());
        }
        StepKind::If(i) => {
            let mut current = i;
            loop {
                blocks.push(&current.then);
                match &current.otherwise {
                    Some(Else::If(next, _)) => current = next,
                    Some(Else::Block(b)) => {
                        blocks.push(b);
                        break;
                    }
                    None => break,
                }
            }
        }
        StepKind::Split(arms) => {
            for arm in arms {
                match &arm.body {
                    ArmBody::Step(s) => collect_labels(s, out),
                    ArmBody::Block(b) => blocks.push(b),
                }
            }
        }
        _ => {}
    }
    for block in blocks {
        for s in &block.steps {
            collect_labels(s, out);
        }
    }
}
