//! Go to definition, find references, highlights and rename: all answered from the
//! occurrences of [`crate::index`].

use super::location;
use crate::index::{Occurrence, Symbol, at_offset};
use crate::server::{RequestError, RequestResult, Snapshot};
use crate::workspace::{Doc, path_to_uri};
use cairn_compiler::db::project_schema;
use cairn_grammar::ast::{ItemKind, Span};
use lsp_server::ErrorCode;
use lsp_types::{
    DocumentHighlight, DocumentHighlightKind, DocumentHighlightParams, GotoDefinitionParams,
    GotoDefinitionResponse, Location, PrepareRenameResponse, ReferenceParams, RenameParams,
    TextDocumentPositionParams, TextEdit, Uri, WorkspaceEdit,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The document and the occurrence under a position, if any.
fn under_cursor(
    snapshot: &Snapshot,
    position: &TextDocumentPositionParams,
) -> RequestResult<(Arc<Doc>, Option<Occurrence>)> {
    let doc = snapshot.doc(&position.text_document.uri)?;
    let offset = doc.text.offset(position.position);
    let occurrence = at_offset(snapshot.occurrences(&doc), offset).cloned();
    Ok((doc, occurrence))
}

pub fn definition(
    snapshot: &Snapshot,
    params: GotoDefinitionParams,
) -> RequestResult<Option<GotoDefinitionResponse>> {
    let (doc, occurrence) = under_cursor(snapshot, &params.text_document_position_params)?;
    let Some(occurrence) = occurrence else {
        return Ok(None);
    };
    let locations: Vec<Location> = snapshot
        .definitions(doc.project, &occurrence.symbol)
        .iter()
        .map(|(d, o)| location(d, o.span))
        .collect();
    Ok(match locations.len() {
        0 => None,
        1 => locations
            .into_iter()
            .next()
            .map(GotoDefinitionResponse::Scalar),
        _ => Some(GotoDefinitionResponse::Array(locations)),
    })
}

pub fn references(
    snapshot: &Snapshot,
    params: ReferenceParams,
) -> RequestResult<Option<Vec<Location>>> {
    let (doc, occurrence) = under_cursor(snapshot, &params.text_document_position)?;
    let Some(occurrence) = occurrence else {
        return Ok(None);
    };
    let include_declaration = params.context.include_declaration;
    Ok(Some(
        snapshot
            .find_all(doc.project, &occurrence.symbol)
            .iter()
            .filter(|(_, o)| include_declaration || !o.def)
            .map(|(d, o)| location(d, o.span))
            .collect(),
    ))
}

pub fn highlight(
    snapshot: &Snapshot,
    params: DocumentHighlightParams,
) -> RequestResult<Option<Vec<DocumentHighlight>>> {
    let (doc, occurrence) = under_cursor(snapshot, &params.text_document_position_params)?;
    let Some(occurrence) = occurrence else {
        return Ok(None);
    };
    Ok(Some(
        snapshot
            .occurrences(&doc)
            .iter()
            .filter(|o| occurrence.symbol.matches(&o.symbol))
            .map(|o| DocumentHighlight {
                range: doc.text.range(o.span),
                kind: Some(if o.def {
                    DocumentHighlightKind::WRITE
                } else {
                    DocumentHighlightKind::READ
                }),
            })
            .collect(),
    ))
}

pub fn prepare_rename(
    snapshot: &Snapshot,
    params: TextDocumentPositionParams,
) -> RequestResult<Option<PrepareRenameResponse>> {
    let (doc, occurrence) = under_cursor(snapshot, &params)?;
    let Some(occurrence) = occurrence else {
        return Ok(None);
    };
    renamable(snapshot, doc.project, &occurrence.symbol)?;
    Ok(Some(PrepareRenameResponse::RangeWithPlaceholder {
        range: doc.text.range(occurrence.span),
        placeholder: occurrence.symbol.name().to_string(),
    }))
}

fn renamable(snapshot: &Snapshot, project: usize, symbol: &Symbol) -> RequestResult<()> {
    if !symbol.renamable() {
        return Err(failed(format!(
            "`{}` is a built-in {}",
            symbol.name(),
            symbol.describe()
        )));
    }
    if snapshot.definitions(project, symbol).is_empty() {
        return Err(failed(format!(
            "`{}` is not declared in this project, so there is nothing to rename",
            symbol.name()
        )));
    }
    Ok(())
}

fn failed(message: String) -> RequestError {
    RequestError::new(ErrorCode::RequestFailed, message)
}

/// Words the grammar never reads as a name.
const RESERVED: &[&str] = &[
    "and", "or", "not", "in", "is", "as", "where", "within", "unless", "true", "false", "else",
    "timeout", "to", "at",
];

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
}

#[expect(
    clippy::mutable_key_type,
    reason = "lsp-types keys workspace edits by `Uri`, whose hash is its text alone"
)]
pub fn rename(snapshot: &Snapshot, params: RenameParams) -> RequestResult<Option<WorkspaceEdit>> {
    let (doc, occurrence) = under_cursor(snapshot, &params.text_document_position)?;
    let Some(occurrence) = occurrence else {
        return Ok(None);
    };
    let symbol = &occurrence.symbol;
    let new_name = params.new_name.trim();
    if !valid_name(new_name) {
        return Err(RequestError::new(
            ErrorCode::InvalidParams,
            format!(
                "`{new_name}` is not a valid name: use letters, digits and `_`, starting with a letter, and no reserved word"
            ),
        ));
    }
    renamable(snapshot, doc.project, symbol)?;
    let renamed = rename_symbol(symbol, new_name);
    if renamed != *symbol && !snapshot.definitions(doc.project, &renamed).is_empty() {
        return Err(failed(format!(
            "there is already a {} `{new_name}`",
            symbol.describe()
        )));
    }
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    for (d, o) in snapshot.find_all(doc.project, symbol) {
        changes
            .entry(d.uri.clone())
            .or_default()
            .push(TextEdit::new(d.text.range(o.span), new_name.to_string()));
    }
    template_edits(snapshot, &doc, symbol, new_name, &mut changes);
    Ok(Some(WorkspaceEdit::new(changes)))
}

fn rename_symbol(symbol: &Symbol, new_name: &str) -> Symbol {
    let n = new_name.to_string();
    match symbol.clone() {
        Symbol::Event(_) => Symbol::Event(n),
        Symbol::EventField { event, .. } => Symbol::EventField { event, field: n },
        Symbol::ContactField(_) => Symbol::ContactField(n),
        Symbol::Record(_) => Symbol::Record(n),
        Symbol::RecordField { record, .. } => Symbol::RecordField { record, field: n },
        Symbol::Segment(_) => Symbol::Segment(n),
        Symbol::Score(_) => Symbol::Score(n),
        Symbol::Template(_) => Symbol::Template(n),
        Symbol::Consent(_) => Symbol::Consent(n),
        Symbol::Tag(_) => Symbol::Tag(n),
        Symbol::Journey(_) => Symbol::Journey(n),
        Symbol::Label { journey, .. } => Symbol::Label { journey, label: n },
        Symbol::Binding { journey, .. } => Symbol::Binding { journey, name: n },
        Symbol::TestContact { test, .. } => Symbol::TestContact { test, name: n },
        other @ (Symbol::Function(_) | Symbol::Type(_)) => other,
    }
}

/// A name templates read: `root` (a binding) or `root.field`, in the templates named
/// (all of them when `None`).
struct VariableUse {
    root: String,
    field: Option<String>,
    templates: Option<Vec<String>>,
}

/// Templates read contact fields, bindings and event fields by name
/// (`{{ contact.first_name }}`, `{{ cart.value }}`): renaming one renames it inside the
/// templates too — every template for a contact field, the templates a journey sends
/// for its binding and for the fields of the event bound.
#[expect(
    clippy::mutable_key_type,
    reason = "lsp-types keys workspace edits by `Uri`, whose hash is its text alone"
)]
fn template_edits(
    snapshot: &Snapshot,
    doc: &Doc,
    symbol: &Symbol,
    new_name: &str,
    changes: &mut HashMap<Uri, Vec<TextEdit>>,
) {
    let uses = variable_uses(snapshot, doc.project, symbol);
    let project = &snapshot.world.projects[doc.project];
    let assets = project.input.assets(&snapshot.db);
    let mut found: Vec<(Uri, lsp_types::Range)> = Vec::new();
    for template_doc in snapshot.world.project_docs(doc.project) {
        let tree = &cairn_compiler::db::parse_file(&snapshot.db, template_doc.file).tree;
        for item in &tree.items {
            let ItemKind::Template(t) = &item.kind else {
                continue;
            };
            for u in &uses {
                if u.templates
                    .as_ref()
                    .is_some_and(|names| !names.contains(&t.name.name))
                {
                    continue;
                }
                for prop in &t.props {
                    if prop.from_file {
                        let path = prop.value.value.trim_start_matches("./");
                        let (Some(text), Some(root_dir)) = (assets.get(path), &project.root) else {
                            continue;
                        };
                        let spans = variable_spans(text, &u.root, u.field.as_deref());
                        if spans.is_empty() {
                            continue;
                        }
                        let asset = crate::position::Text::new(text.clone());
                        let uri = path_to_uri(&root_dir.join(path));
                        found.extend(spans.into_iter().map(|s| (uri.clone(), asset.range(s))));
                    } else {
                        let value = item.absolute(prop.value.span);
                        let Some(source) = template_doc.text.text.get(value.start..value.end)
                        else {
                            continue;
                        };
                        found.extend(
                            variable_spans(source, &u.root, u.field.as_deref())
                                .into_iter()
                                .map(|s| {
                                    (
                                        template_doc.uri.clone(),
                                        template_doc.text.range(s.shift(value.start)),
                                    )
                                }),
                        );
                    }
                }
            }
        }
    }
    // A file two templates share, or two uses of one name, must not edit a range twice.
    found.sort_by(|a, b| {
        (a.0.as_str(), a.1.start.line, a.1.start.character).cmp(&(
            b.0.as_str(),
            b.1.start.line,
            b.1.start.character,
        ))
    });
    found.dedup();
    for (uri, range) in found {
        changes
            .entry(uri)
            .or_default()
            .push(TextEdit::new(range, new_name.to_string()));
    }
}

fn variable_uses(snapshot: &Snapshot, project: usize, symbol: &Symbol) -> Vec<VariableUse> {
    match symbol {
        Symbol::ContactField(f) => vec![VariableUse {
            root: "contact".into(),
            field: Some(f.clone()),
            templates: None,
        }],
        Symbol::Binding { journey, name } => vec![VariableUse {
            root: name.clone(),
            field: None,
            templates: Some(templates_sent(snapshot, project, journey)),
        }],
        Symbol::EventField { event, field } => {
            let mut uses = Vec::new();
            for doc in snapshot.world.project_docs(project) {
                let tree = &cairn_compiler::db::parse_file(&snapshot.db, doc.file).tree;
                for item in &tree.items {
                    let ItemKind::Journey(j) = &item.kind else {
                        continue;
                    };
                    let bindings = bindings_of(j, event);
                    if bindings.is_empty() {
                        continue;
                    }
                    let sent = templates_sent(snapshot, project, &j.name.name);
                    uses.extend(bindings.into_iter().map(|b| VariableUse {
                        root: b,
                        field: Some(field.clone()),
                        templates: Some(sent.clone()),
                    }));
                }
            }
            uses
        }
        _ => Vec::new(),
    }
}

/// The names a journey binds to `event`: its trigger's and its `wait for`s'.
fn bindings_of(j: &cairn_grammar::ast::JourneyDecl, event: &str) -> Vec<String> {
    use cairn_grammar::ast::{MemberKind, StepKind, Trigger};
    let mut out = Vec::new();
    for member in &j.members {
        if let MemberKind::Trigger(trigger) = &member.kind
            && let Trigger::Event {
                event: e,
                binding: Some(b),
                ..
            } = &**trigger
            && e.name == event
        {
            out.push(b.name.clone());
        }
    }
    for step in super::all_steps(&j.members) {
        if let StepKind::WaitFor(w) = &step.kind
            && w.event.name == event
            && let Some(b) = &w.binding
        {
            out.push(b.name.clone());
        }
    }
    out
}

/// The templates a journey sends.
fn templates_sent(snapshot: &Snapshot, project: usize, journey: &str) -> Vec<String> {
    snapshot
        .definitions(project, &Symbol::Journey(journey.to_string()))
        .iter()
        .flat_map(|(d, o)| {
            let item_span = snapshot.item_at(d, o.span.start).map(|i| i.span);
            snapshot
                .occurrences(d)
                .iter()
                .filter(|t| item_span.is_some_and(|s| s.contains(t.span.start)))
                .filter_map(|t| match &t.symbol {
                    Symbol::Template(name) => Some(name.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Inside `{{ }}` and `{% %}` blocks of a template, the spans of `root` (when `field` is
/// `None`) or of `field` in `root.field`.
pub fn variable_spans(source: &str, root: &str, field: Option<&str>) -> Vec<Span> {
    let mut out = Vec::new();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = source.as_bytes();
    let mut i = 0;
    while let Some(open) = source[i..].find(['{']).map(|p| i + p) {
        let Some(kind) = bytes
            .get(open + 1)
            .copied()
            .filter(|b| *b == b'{' || *b == b'%')
        else {
            i = open + 1;
            continue;
        };
        let close = if kind == b'{' { "}}" } else { "%}" };
        let end = source[open + 2..]
            .find(close)
            .map_or(source.len(), |p| open + 2 + p);
        let block = &source[open + 2..end];
        let mut j = 0;
        while let Some(p) = block[j..].find(root).map(|p| j + p) {
            let start = open + 2 + p;
            let after = start + root.len();
            let before_ok = start == 0 || !(is_word(bytes[start - 1]) || bytes[start - 1] == b'.');
            let after_ok = bytes.get(after).is_none_or(|b| !is_word(*b));
            j = p + root.len();
            if !(before_ok && after_ok) {
                continue;
            }
            match field {
                None => out.push(Span::new(start, after)),
                Some(f) => {
                    let field_start = after + 1;
                    let field_end = field_start + f.len();
                    if bytes.get(after) == Some(&b'.')
                        && source.get(field_start..field_end) == Some(f)
                        && bytes.get(field_end).is_none_or(|b| !is_word(*b))
                    {
                        out.push(Span::new(field_start, field_end));
                    }
                }
            }
        }
        i = (end + 2).min(source.len());
        if i >= source.len() {
            break;
        }
    }
    out
}

/// The project's schema, for handlers that describe types.
pub fn schema(snapshot: &Snapshot, doc: &Doc) -> Arc<cairn_compiler::schema::Schema> {
    project_schema(&snapshot.db, snapshot.world.projects[doc.project].input).clone()
}

#[cfg(test)]
mod tests {
    use super::variable_spans;

    #[test]
    fn finds_template_variables_in_blocks_only() {
        let src = "cart {{ cart.value }} {% if cart %}{{ mycart.x }}{% endif %} {{ contact.cart }}";
        let spans = variable_spans(src, "cart", None);
        let texts: Vec<&str> = spans.iter().map(|s| &src[s.start..s.end]).collect();
        assert_eq!(texts, vec!["cart", "cart"]);
        let fields = variable_spans(src, "cart", Some("value"));
        assert_eq!(fields.len(), 1);
        assert_eq!(&src[fields[0].start..fields[0].end], "value");
    }
}
