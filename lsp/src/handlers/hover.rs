//! Hover: what a name is — its type, its doc comment, a segment's description and
//! condition, a template's parts.

use super::navigation::schema;
use crate::index::{Symbol, at_offset};
use crate::server::{RequestResult, Snapshot};
use crate::workspace::Doc;
use cairn_compiler::schema::{Schema, Ty};
use cairn_grammar::ast::{Item, ItemKind, MemberKind, ScoreRuleKind, Span, Step};
use lsp_types::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};
use std::fmt::Write as _;

pub fn hover(snapshot: &Snapshot, params: HoverParams) -> RequestResult<Option<Hover>> {
    let position = params.text_document_position_params;
    let doc = snapshot.doc(&position.text_document.uri)?;
    let offset = doc.text.offset(position.position);
    let Some(occurrence) = at_offset(snapshot.occurrences(&doc), offset).cloned() else {
        return Ok(None);
    };
    let schema = schema(snapshot, &doc);
    let definition = snapshot
        .definitions(doc.project, &occurrence.symbol)
        .into_iter()
        .next();
    let declared = definition.as_ref().and_then(|(d, o)| {
        snapshot
            .item_at(d, o.span.start)
            .map(|item| (d.clone(), item, o.span))
    });
    let text = describe(&occurrence.symbol, &schema, declared.as_ref(), snapshot);
    Ok(Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(doc.text.range(occurrence.span)),
    }))
}

fn code(text: &str) -> String {
    format!("```cairn\n{text}\n```")
}

fn describe(
    symbol: &Symbol,
    schema: &Schema,
    declared: Option<&(std::sync::Arc<Doc>, Item, Span)>,
    snapshot: &Snapshot,
) -> String {
    let mut out = String::new();
    let item = declared.map(|(_, item, _)| item);
    match symbol {
        Symbol::Event(name) => {
            let mut head = format!("event {name}");
            if let Some(Item {
                kind: ItemKind::Event(e),
                ..
            }) = item
                && let Some(wire) = &e.wire_name
            {
                let _ = write!(head, " \"{}\"", wire.value);
            }
            if let Some(info) = schema.events.get(name) {
                let fields: Vec<String> = info
                    .fields
                    .iter()
                    .map(|(f, t)| format!("  {f} {t}"))
                    .collect();
                if !fields.is_empty() {
                    let _ = write!(head, " {{\n{}\n}}", fields.join("\n"));
                }
                out.push_str(&code(&head));
                if info.builtin {
                    out.push_str("\n\nBuilt-in event: every project has it.");
                }
            } else {
                out.push_str(&code(&head));
            }
        }
        Symbol::EventField { event, field } => {
            let ty = schema
                .events
                .get(event)
                .and_then(|e| e.fields.get(field))
                .map_or_else(|| "unknown".to_string(), Ty::to_string);
            out.push_str(&code(&format!("{event}.{field}: {ty}")));
            out.push_str(&format!("\n\nA field of event `{event}`."));
        }
        Symbol::ContactField(field) => {
            let ty = schema
                .contact
                .get(field)
                .map_or_else(|| "unknown".to_string(), Ty::to_string);
            out.push_str(&code(&format!("contact.{field}: {ty}")));
            if cairn_compiler::schema::BUILTIN_CONTACT_FIELDS
                .iter()
                .any(|(n, _)| n == field)
            {
                out.push_str("\n\nBuilt-in contact field.");
            }
        }
        Symbol::Record(name) => {
            let fields: Vec<String> = schema
                .records
                .get(name)
                .map(|r| r.iter().map(|(f, t)| format!("{f} {t}")).collect())
                .unwrap_or_default();
            out.push_str(&code(&format!("record {name} {{ {} }}", fields.join(", "))));
        }
        Symbol::RecordField { record, field } => {
            let ty = schema
                .records
                .get(record)
                .and_then(|r| r.get(field))
                .map_or_else(|| "unknown".to_string(), Ty::to_string);
            out.push_str(&code(&format!("{record}.{field}: {ty}")));
        }
        Symbol::Segment(name) => {
            out.push_str(&code(&format!("segment {name}: bool")));
            if let Some(Item {
                kind: ItemKind::Segment(s),
                ..
            }) = item
            {
                if let Some(d) = &s.description {
                    let _ = write!(out, "\n\n{}", d.value);
                }
                let _ = write!(out, "\n\n{}", code(&cairn_grammar::expr_text(&s.condition)));
            }
        }
        Symbol::Score(name) => {
            out.push_str(&code(&format!("score {name}: number")));
            if let Some(Item {
                kind: ItemKind::Score(s),
                ..
            }) = item
            {
                if let Some(d) = &s.description {
                    let _ = write!(out, "\n\n{}", d.value);
                }
                let rules: Vec<String> = s
                    .rules
                    .iter()
                    .map(|r| match &r.kind {
                        ScoreRuleKind::On { points, event, .. } => format!(
                            "- {}{} on `{}`",
                            if points.negative { "-" } else { "+" },
                            points.magnitude.text,
                            event.name
                        ),
                        ScoreRuleKind::Decay { percent, every } => {
                            format!("- decays {}% every {every}", percent.value.text)
                        }
                    })
                    .collect();
                if !rules.is_empty() {
                    let _ = write!(out, "\n\n{}", rules.join("\n"));
                }
            }
        }
        Symbol::Template(name) => template(name, schema, declared, snapshot, &mut out),
        Symbol::Consent(name) => {
            let channel = schema.consents.get(name).map_or("?", |c| c.as_str());
            out.push_str(&code(&format!("consent {name} for {channel}")));
        }
        Symbol::Tag(name) => {
            out.push_str(&code(&format!("tag {name}")));
            if let Some(Item {
                kind: ItemKind::Tag(t),
                ..
            }) = item
                && let Some(d) = &t.description
            {
                let _ = write!(out, "\n\n{}", d.value);
            }
        }
        Symbol::Journey(name) => {
            out.push_str(&code(&format!("journey {name}")));
            if let Some(Item {
                kind: ItemKind::Journey(j),
                ..
            }) = item
            {
                if let Some(d) = &j.description {
                    let _ = write!(out, "\n\n{}", d.value);
                }
                if let Some((doc, item, _)) = declared {
                    for member in &j.members {
                        if let MemberKind::Trigger(_) = member.kind {
                            let span = item.absolute(member.span);
                            if let Some(t) = doc.text.text.get(span.start..span.end) {
                                let _ = write!(out, "\n\n{}", code(t));
                            }
                        }
                    }
                }
            }
        }
        Symbol::Label { journey, label } => {
            let mut text = format!("step {label}");
            if !journey.is_empty() {
                let _ = write!(text, " in journey {journey}");
            }
            out.push_str(&code(&text));
            if let Some((doc, item, span)) = declared
                && let ItemKind::Journey(j) = &item.kind
            {
                let relative = Span::new(span.start - item.span.start, span.end - item.span.start);
                if let Some(step) = find_step(&j.members, relative) {
                    let s = item.absolute(step.span);
                    let source = doc.text.text.get(s.start..s.end).unwrap_or("");
                    let first = source.lines().next().unwrap_or("");
                    let _ = write!(
                        out,
                        "\n\nA `{}` step:\n{}",
                        step.kind.keyword(),
                        code(first.trim_end_matches('{').trim())
                    );
                }
            }
        }
        Symbol::Binding { name, .. } => {
            let event = declared.and_then(|(doc, item, span)| {
                // `EVENT as NAME`: the event is the word two before the binding.
                let before = doc.text.text.get(item.span.start..span.start)?;
                let mut words = before.split_whitespace().rev();
                words.next();
                words.next().map(str::to_string)
            });
            match event {
                Some(event) => {
                    out.push_str(&code(&format!("{name}: event {event}")));
                    let _ = write!(
                        out,
                        "\n\nThe payload of the `{event}` event that matched; its fields are `{name}.FIELD`."
                    );
                }
                None => out.push_str(&code(name)),
            }
        }
        Symbol::TestContact { test, name } => {
            out.push_str(&code(&format!("contact {name}")));
            let _ = write!(out, "\n\nA contact of test \"{test}\".");
        }
        Symbol::Function(name) => out.push_str(&function_doc(name)),
        Symbol::Type(name) => {
            out.push_str(&code(name));
            out.push_str("\n\nBuilt-in type.");
        }
    }
    if let Some(doc_comment) = item.and_then(|i| i.doc.as_ref())
        && matches!(
            symbol,
            Symbol::Event(_)
                | Symbol::Record(_)
                | Symbol::Segment(_)
                | Symbol::Score(_)
                | Symbol::Template(_)
                | Symbol::Consent(_)
                | Symbol::Tag(_)
                | Symbol::Journey(_)
        )
    {
        let _ = write!(out, "\n\n---\n\n{}", doc_comment.trim());
    }
    out
}

fn template(
    name: &str,
    schema: &Schema,
    declared: Option<&(std::sync::Arc<Doc>, Item, Span)>,
    snapshot: &Snapshot,
    out: &mut String,
) {
    let info = schema.templates.get(name);
    let channel = info.and_then(|i| i.channel).map_or("?", |c| c.as_str());
    let transactional = if info.is_some_and(|i| i.transactional) {
        " transactional"
    } else {
        ""
    };
    out.push_str(&code(&format!("template {name} {channel}{transactional}")));
    if let Some((doc, item, _)) = declared
        && let ItemKind::Template(t) = &item.kind
    {
        let assets = snapshot.world.projects[doc.project]
            .input
            .assets(&snapshot.db);
        for prop in &t.props {
            let part = &prop.name.name;
            if prop.from_file {
                let path = prop.value.value.trim_start_matches("./");
                let _ = write!(out, "\n\n**{part}** (`{path}`)");
                if let Some(text) = assets.get(path) {
                    let preview: Vec<&str> = text.lines().take(12).collect();
                    let more = if text.lines().count() > 12 {
                        "\n…"
                    } else {
                        ""
                    };
                    let _ = write!(out, "\n```html\n{}{more}\n```", preview.join("\n"));
                } else {
                    out.push_str(": file not found");
                }
            } else {
                let _ = write!(out, "\n\n**{part}**: {}", prop.value.value);
            }
        }
    }
    if let Some(info) = info
        && !info.variables.is_empty()
    {
        let vars: Vec<String> = info.variables.iter().map(|v| format!("`{v}`")).collect();
        let _ = write!(out, "\n\nUses {}.", vars.join(", "));
    }
}

fn find_step(members: &[cairn_grammar::ast::Member], label: Span) -> Option<Step> {
    super::all_steps(members)
        .into_iter()
        .find(|s| s.label.as_ref().is_some_and(|l| l.span == label))
        .cloned()
}

/// Signatures and one-line descriptions of the built-in functions.
pub const FUNCTION_DOCS: &[(&str, &str, &str)] = &[
    (
        "consented",
        "consented(consent) -> bool",
        "Whether the contact has granted the consent.",
    ),
    (
        "has_tag",
        "has_tag(tag) -> bool",
        "Whether the contact has the tag.",
    ),
    (
        "opened",
        "opened(step) -> bool",
        "Whether the contact opened the message the labelled step sent.",
    ),
    (
        "clicked",
        "clicked(step) -> bool",
        "Whether the contact clicked a link in the message the labelled step sent.",
    ),
    (
        "exists",
        "exists(event [where ...] [within d]) -> bool",
        "Whether the contact ever sent the event (in the window).",
    ),
    (
        "count",
        "count(event [where ...] [within d]) -> number",
        "How many times the contact sent the event (in the window).",
    ),
    (
        "sum",
        "sum(event.field [where ...] [within d]) -> number|money",
        "The sum of a numeric field over the contact's events.",
    ),
    (
        "avg",
        "avg(event.field [where ...] [within d]) -> number|money",
        "The average of a numeric field over the contact's events.",
    ),
    (
        "min",
        "min(event.field [where ...] [within d]) -> number|money",
        "The smallest value of a numeric field.",
    ),
    (
        "max",
        "max(event.field [where ...] [within d]) -> number|money",
        "The largest value of a numeric field.",
    ),
    (
        "last",
        "last(event.field [where ...] [within d]) -> T?",
        "The field of the contact's latest such event, if any.",
    ),
    (
        "days_since",
        "days_since(date) -> number",
        "Whole days from the date until now.",
    ),
    (
        "default",
        "default(value?, fallback) -> T",
        "The value when it is set, else the fallback.",
    ),
    (
        "now",
        "now() -> datetime",
        "The current time (the virtual clock in tests).",
    ),
    ("lower", "lower(text) -> string", "The text in lower case."),
    ("upper", "upper(text) -> string", "The text in upper case."),
    (
        "len",
        "len(text|list) -> number",
        "The length of a text or a list.",
    ),
];

pub fn function_doc(name: &str) -> String {
    match FUNCTION_DOCS.iter().find(|(n, _, _)| *n == name) {
        Some((_, signature, description)) => format!("{}\n\n{description}", code(signature)),
        None => code(name),
    }
}
