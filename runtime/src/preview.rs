//! Template previews and test sends: one template rendered outside any run, with the
//! engine's own rendering ([`crate::engine::render_message`]: the same variables, signed
//! links, link tracking and open pixel as a message a journey sends), for sample data.
//!
//! The sample is what the user gives (a contact's traits, the payloads of the events a
//! template's journeys bind), checked and stored the way ingestion stores them; what is
//! not given is generated from the declared types. A preview renders each part a
//! second time with undefined values refused, so a variable the sample lacks is an
//! error naming the part, its file and line, instead of the empty text the daemon would
//! print.

use crate::engine::{self, Links, MessageContext};
use crate::ingest::schema::{Context, check_fields};
use crate::model::{Contact, Millis};
use cairn_plan::journey::StepKind;
use cairn_plan::schema::{Channel, Field, Type};
use cairn_plan::{Plan, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// The contact id of a generated sample contact.
pub const SAMPLE_CONTACT: &str = "sample";

/// The sample data a preview or a test send renders with; absent parts are generated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleInput {
    /// The contact's traits as Segment would send them, and optionally its `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Map<String, Json>>,
    /// Payloads of the events the template's journeys bind, by binding name (`cart`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bindings: BTreeMap<String, Json>,
}

/// A sample, checked and in stored form.
#[derive(Debug, Clone)]
pub struct Sample {
    pub contact: Contact,
    pub bindings: BTreeMap<String, Json>,
    /// The first journey and step sending the template (empty when none does).
    pub journey: String,
    pub step: String,
    /// What was generated rather than given: `contact`, binding names.
    pub generated: Vec<String>,
}

/// Why a template cannot be previewed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreviewError {
    #[error("no template `{name}`; the templates are {}", list(.known))]
    UnknownTemplate { name: String, known: Vec<String> },
    /// The sample data does not fit the schema.
    #[error("the sample data does not fit the schema: {}", .0.join("; "))]
    Sample(Vec<String>),
    /// A part did not render: where, and why.
    #[error("{}", .0)]
    Render(Box<RenderError>),
}

/// A part that does not render with the sample, located in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderError {
    pub template: String,
    pub part: String,
    /// The file the part comes from (relative to the project root), when it has one.
    pub file: Option<String>,
    /// The line in the part's text (1-based).
    pub line: Option<usize>,
    /// The bytes of the part's text the error is about.
    pub range: Option<std::ops::Range<usize>>,
    /// The variable the sample lacks, when that is the problem.
    pub variable: Option<String>,
    pub message: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "template `{}`, part `{}`", self.template, self.part)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " (`{file}` line {line})")?,
            (Some(file), None) => write!(f, " (`{file}`)")?,
            (None, Some(line)) => write!(f, " (line {line})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One link of a rendered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewLink {
    /// The part it is in.
    pub part: String,
    /// `click` (a tracked web link), `unsubscribe`, `preferences`, `confirm`, `open`
    /// (the open pixel) or `link` (left as written).
    pub kind: String,
    /// Where a tracked click leads; the link itself otherwise.
    pub target: String,
    /// The URL in the message.
    pub url: String,
}

/// A template rendered for a sample, as the daemon would send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub template: String,
    pub channel: Channel,
    pub transactional: bool,
    pub journey: String,
    pub step: String,
    /// The contact's address on the channel, when the sample has one.
    pub to: Option<String>,
    pub contact_id: String,
    /// The rendered parts, by name.
    pub parts: Map<String, Json>,
    pub links: Vec<PreviewLink>,
    pub generated: Vec<String>,
}

impl Preview {
    pub fn part(&self, name: &str) -> Option<&str> {
        self.parts.get(name).and_then(Json::as_str)
    }
}

/// The template `name` of `plan`.
pub fn template<'p>(plan: &'p Plan, name: &str) -> Result<&'p Template, PreviewError> {
    plan.templates
        .get(name)
        .ok_or_else(|| PreviewError::UnknownTemplate {
            name: name.to_string(),
            known: plan.templates.keys().cloned().collect(),
        })
}

/// The first journey and step (journeys by name, steps in flow order) sending `name`.
fn sent_by<'p>(plan: &'p Plan, name: &str) -> Option<(&'p cairn_plan::journey::Journey, String)> {
    plan.journeys.values().find_map(|journey| {
        let step = crate::simulate::step_order(journey)
            .into_iter()
            .find(|id| {
                let step = journey.steps.get(&cairn_plan::StepId((*id).to_string()));
                match step.map(|s| &s.kind) {
                    Some(StepKind::Send { template, .. }) => template == name,
                    Some(StepKind::SendPreferred { templates, .. }) => {
                        templates.iter().any(|t| t == name)
                    }
                    _ => false,
                }
            })?;
        Some((journey, step.to_string()))
    })
}

/// The sample for template `name`: `input` checked against the plan's schema and put
/// in stored form, the rest generated from the declared types.
pub fn sample(plan: &Plan, name: &str, input: &SampleInput) -> Result<Sample, PreviewError> {
    template(plan, name)?;
    let context = Context {
        records: &plan.schema.records,
        currency: plan.default_currency.as_deref(),
    };
    let mut errors = Vec::new();
    let mut generated = Vec::new();
    let (id, traits) = match &input.contact {
        Some(given) => {
            let mut traits = given.clone();
            let id = match traits.remove("id") {
                Some(Json::String(id)) if !id.is_empty() => id,
                None => SAMPLE_CONTACT.to_string(),
                Some(other) => {
                    errors.push(format!("`contact.id` must be a string, not {other}"));
                    SAMPLE_CONTACT.to_string()
                }
            };
            (id, traits)
        }
        None => {
            generated.push("contact".to_string());
            (SAMPLE_CONTACT.to_string(), sample_contact(plan))
        }
    };
    let traits = check_fields(
        &traits,
        &plan.schema.contact,
        &context,
        true,
        "contact",
        &mut errors,
    );
    let contact = Contact {
        id,
        time_zone: traits
            .get("timezone")
            .and_then(Json::as_str)
            .map(str::to_string),
        traits: traits.into_iter().collect(),
        ..Contact::default()
    };

    let sender = sent_by(plan, name);
    let events = sender
        .as_ref()
        .map(|(journey, _)| engine::binding_events(journey))
        .unwrap_or_default();
    for given in input.bindings.keys() {
        if !events.contains_key(given) {
            let known: Vec<String> = events.keys().cloned().collect();
            errors.push(format!(
                "no binding `{given}` in the journey sending template `{name}`; its bindings are {}",
                list(&known)
            ));
        }
    }
    let mut bindings = BTreeMap::new();
    for (binding, event) in &events {
        let Some(declared) = plan.schema.events.get(event) else {
            continue;
        };
        let payload = match input.bindings.get(binding) {
            Some(Json::Object(given)) => given.clone(),
            Some(other) => {
                errors.push(format!(
                    "the payload of `{binding}` must be a JSON object, not {other}"
                ));
                continue;
            }
            None => {
                generated.push(binding.clone());
                sample_fields(plan, &declared.fields)
            }
        };
        let checked = check_fields(
            &payload,
            &declared.fields,
            &context,
            false,
            binding,
            &mut errors,
        );
        bindings.insert(binding.clone(), Json::Object(checked));
    }
    if !errors.is_empty() {
        return Err(PreviewError::Sample(errors));
    }
    let (journey, step) = sender
        .map(|(journey, step)| (journey.name.clone(), step))
        .unwrap_or_default();
    Ok(Sample {
        contact,
        bindings,
        journey,
        step,
        generated,
    })
}

/// Values of `fields` as Segment would send them, the same every time.
fn sample_fields(plan: &Plan, fields: &[Field]) -> Map<String, Json> {
    let mut next = || 129;
    fields
        .iter()
        .filter_map(|f| {
            let value = crate::simulate::sample_type(plan, &f.ty, &f.name, &mut next, 0)?;
            Some((f.name.clone(), value))
        })
        .collect()
}

/// A contact with every declared field set; the usual ones read like a person's.
fn sample_contact(plan: &Plan) -> Map<String, Json> {
    let mut traits = sample_fields(plan, &plan.schema.contact);
    for field in &plan.schema.contact {
        let value = match (field.name.as_str(), &field.ty) {
            (_, Type::Scalar { name }) if name == "email" => json!("ana@example.com"),
            (_, Type::Scalar { name }) if name == "phone" => json!("+33612345678"),
            ("first_name", _) => json!("Ana"),
            ("last_name", _) => json!("Novak"),
            ("push_token", _) => json!("sample-push-token"),
            _ => continue,
        };
        traits.insert(field.name.clone(), value);
    }
    traits
}

/// Renders template `name` for `sample` as the daemon would send it in message
/// `message` (its idempotency key, which the signed links name) at `now`.
pub fn render(
    plan: &Plan,
    links: &Links,
    name: &str,
    sample: &Sample,
    message: &str,
    now: Millis,
) -> Result<Preview, PreviewError> {
    let tpl = template(plan, name)?;
    let at = MessageContext {
        contact: &sample.contact,
        bindings: &sample.bindings,
        journey: &sample.journey,
        step: &sample.step,
        message,
        now,
    };
    let variables = engine::message_variables(plan, links, tpl, &at);
    check_defined(tpl, &variables)?;
    let parts = engine::render_message(links, tpl, &at, variables)
        .map_err(|e| located(tpl, &e.part, &e.error))?;
    let mut preview = Preview {
        template: name.to_string(),
        channel: tpl.channel,
        transactional: tpl.transactional,
        journey: sample.journey.clone(),
        step: sample.step.clone(),
        to: engine::contact_address(plan, &sample.contact, tpl.channel),
        contact_id: sample.contact.id.clone(),
        links: Vec::new(),
        parts,
        generated: sample.generated.clone(),
    };
    preview.links = links_of(&preview, links, message);
    Ok(preview)
}

/// Renders every part once more with undefined values refused: printing, iterating
/// or reading a field of a value the sample lacks is an error (a test such as
/// `{% if contact.first_name %}` and `default(...)` still see it as absent).
fn check_defined(tpl: &Template, variables: &Map<String, Json>) -> Result<(), PreviewError> {
    let mut env = engine::template_env();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    let ctx = minijinja::Value::from(minijinja::value::Serde(Json::Object(variables.clone())));
    for (part, source) in &tpl.parts {
        if let Err(e) = env.render_str(&source.source, &ctx) {
            return Err(located(tpl, part, &e));
        }
    }
    Ok(())
}

fn located(tpl: &Template, part: &str, error: &minijinja::Error) -> PreviewError {
    let file = tpl.parts.get(part).and_then(|p| p.file.clone());
    let source = tpl.parts.get(part).map(|p| p.source.as_str()).unwrap_or("");
    let undefined = error.kind() == minijinja::ErrorKind::UndefinedError;
    let variable = error
        .range()
        .and_then(|r| source.get(r))
        .map(|text| text.trim().to_string())
        .filter(|text| undefined && !text.is_empty());
    let message = match &variable {
        Some(name) => format!(
            "`{name}` is not in the sample data (the daemon would print nothing there); \
             give it in the contact or event data"
        ),
        None => error
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| error.kind().to_string()),
    };
    PreviewError::Render(Box::new(RenderError {
        template: tpl.name.clone(),
        part: part.to_string(),
        file,
        line: error.line(),
        range: error.range(),
        variable,
        message,
    }))
}

/// The links of a rendered message: each `href` of its html (a tracked click shown with
/// where it leads), its open pixel, and the web addresses in its text parts.
fn links_of(preview: &Preview, links: &Links, message: &str) -> Vec<PreviewLink> {
    let base = links.base_url.trim_end_matches('/');
    let classify = |part: &str, url: &str| -> PreviewLink {
        let token = crate::links::token_of(url);
        let signed = |path: &str| url.starts_with(&format!("{base}/{path}/"));
        let (kind, target) = if signed("c") {
            let target = crate::links::verify_click(&links.secret, token)
                .ok()
                .and_then(|l| l.target)
                .unwrap_or_else(|| url.to_string());
            ("click", target)
        } else if signed("unsubscribe") {
            ("unsubscribe", url.to_string())
        } else if signed("preferences") {
            ("preferences", url.to_string())
        } else if signed("confirm") {
            ("confirm", url.to_string())
        } else {
            ("link", url.to_string())
        };
        PreviewLink {
            part: part.to_string(),
            kind: kind.to_string(),
            target,
            url: url.to_string(),
        }
    };
    let mut out = Vec::new();
    for (part, text) in &preview.parts {
        let Some(text) = text.as_str() else { continue };
        if part == "html" {
            crate::links::rewrite_hrefs(text, |url| {
                out.push(classify(part, url));
                None
            });
        } else {
            for word in text.split_whitespace() {
                let lower = word.to_ascii_lowercase();
                if lower.starts_with("http://") || lower.starts_with("https://") {
                    let url = word.trim_end_matches(['.', ',', ')', ';', '!', '?']);
                    out.push(classify(part, url));
                }
            }
        }
    }
    if preview.channel == Channel::Email && !preview.transactional {
        let pixel = crate::links::open_pixel_url(base, &links.secret, &preview.contact_id, message);
        out.push(PreviewLink {
            part: "html".into(),
            kind: "open".into(),
            target: pixel.clone(),
            url: pixel,
        });
    }
    out
}

/// `POST /admin/templates/{name}/test-send`: the sample data and the address to send to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestSend {
    pub to: String,
    #[serde(flatten)]
    pub sample: SampleInput,
}

/// What a test send did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSent {
    pub template: String,
    pub channel: Channel,
    pub to: String,
    /// The message's idempotency key (the file outbox names its file after it).
    pub key: String,
    /// The provider's id of the message, when it gave one.
    pub provider_ref: Option<String>,
    /// The plan version whose template was sent.
    pub plan_version: i64,
}

/// The subject (email), title (push) or text (SMS) of a test message starts with it.
pub const TEST_PREFIX: &str = "[test] ";

/// The header every test email carries.
pub const TEST_HEADER: (&str, &str) = ("X-Cairn-Test", "1");

/// Marks rendered `parts` as a test message: the prefix on what the recipient reads
/// first, and the test header for email.
pub fn mark_as_test(channel: Channel, parts: &mut Map<String, Json>) {
    let first = match channel {
        Channel::Email => "subject",
        Channel::Push => "title",
        Channel::Sms => "text",
    };
    if let Some(Json::String(text)) = parts.get_mut(first) {
        text.insert_str(0, TEST_PREFIX);
    }
    if channel == Channel::Email {
        parts.insert("headers".into(), json!({ TEST_HEADER.0: TEST_HEADER.1 }));
    }
}
