//! Document symbols (the outline of a file) and workspace symbols (every declaration of
//! every project, by name).

use crate::server::{RequestResult, Snapshot};
use crate::workspace::Doc;
use cairn_grammar::ast::{
    ArmBody, Else, Field, Item, ItemKind, MemberKind, Step, StepKind, TestStmtKind,
};
use lsp_types::{
    DocumentSymbol, DocumentSymbolParams, DocumentSymbolResponse, Location, OneOf, SymbolKind,
    WorkspaceSymbol, WorkspaceSymbolParams, WorkspaceSymbolResponse,
};

pub fn document_symbols(
    snapshot: &Snapshot,
    params: DocumentSymbolParams,
) -> RequestResult<Option<DocumentSymbolResponse>> {
    let doc = snapshot.doc(&params.text_document.uri)?;
    let tree = &cairn_compiler::db::parse_file(&snapshot.db, doc.file).tree;
    let symbols = tree
        .items
        .iter()
        .filter_map(|item| item_symbol(&doc, item))
        .collect();
    Ok(Some(DocumentSymbolResponse::Nested(symbols)))
}

#[expect(deprecated, reason = "`deprecated` is a required field of the struct")]
fn symbol(
    doc: &Doc,
    name: String,
    detail: Option<String>,
    kind: SymbolKind,
    full: cairn_grammar::ast::Span,
    selection: cairn_grammar::ast::Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    DocumentSymbol {
        name: if name.is_empty() {
            "?".to_string()
        } else {
            name
        },
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: doc.text.range(full),
        selection_range: doc.text.range(selection),
        children: (!children.is_empty()).then_some(children),
    }
}

fn kind_of(item: &ItemKind) -> SymbolKind {
    match item {
        ItemKind::Contact(_) | ItemKind::Record(_) => SymbolKind::STRUCT,
        ItemKind::Consent(_) => SymbolKind::KEY,
        ItemKind::Event(_) => SymbolKind::EVENT,
        ItemKind::Tag(_) => SymbolKind::CONSTANT,
        ItemKind::Segment(_) => SymbolKind::BOOLEAN,
        ItemKind::Score(_) => SymbolKind::NUMBER,
        ItemKind::Template(_) => SymbolKind::FILE,
        ItemKind::QuietHours(_) | ItemKind::FrequencyCap(_) => SymbolKind::PROPERTY,
        ItemKind::Journey(_) => SymbolKind::FUNCTION,
        ItemKind::Test(_) => SymbolKind::METHOD,
        ItemKind::Error => SymbolKind::NULL,
    }
}

fn item_symbol(doc: &Doc, item: &Item) -> Option<DocumentSymbol> {
    let kind = kind_of(&item.kind);
    let fields = |fields: &[Field]| -> Vec<DocumentSymbol> {
        fields
            .iter()
            .map(|f| {
                let ty = doc
                    .text
                    .text
                    .get(item.absolute(f.ty.span).start..item.absolute(f.ty.span).end)
                    .map(str::to_string);
                symbol(
                    doc,
                    f.name.name.clone(),
                    ty,
                    SymbolKind::FIELD,
                    item.absolute(f.span),
                    item.absolute(f.name.span),
                    Vec::new(),
                )
            })
            .collect()
    };
    let (name, selection, children) = match &item.kind {
        ItemKind::Error => return None,
        ItemKind::Contact(c) => (
            "contact".to_string(),
            cairn_grammar::ast::Span::new(item.span.start, item.span.start + "contact".len()),
            fields(&c.fields),
        ),
        ItemKind::Record(r) => (
            r.name.name.clone(),
            item.absolute(r.name.span),
            fields(&r.fields),
        ),
        ItemKind::Event(e) => (
            e.name.name.clone(),
            item.absolute(e.name.span),
            fields(&e.fields),
        ),
        ItemKind::Journey(j) => {
            let mut children = Vec::new();
            let steps = j.members.iter().filter_map(|m| match &m.kind {
                MemberKind::Step(s) => Some(s),
                _ => None,
            });
            labelled_steps(doc, item, steps, &mut children);
            (j.name.name.clone(), item.absolute(j.name.span), children)
        }
        ItemKind::Test(t) => {
            let children = t
                .statements
                .iter()
                .filter_map(|s| match &s.kind {
                    TestStmtKind::Contact { name, .. } => Some(symbol(
                        doc,
                        name.name.clone(),
                        Some("test contact".to_string()),
                        SymbolKind::VARIABLE,
                        item.absolute(s.span),
                        item.absolute(name.span),
                        Vec::new(),
                    )),
                    _ => None,
                })
                .collect();
            (
                format!("test \"{}\"", t.name.value),
                item.absolute(t.name.span),
                children,
            )
        }
        other => match other.name() {
            Some(name) => (name.name.clone(), item.absolute(name.span), Vec::new()),
            None => (
                other.keyword().to_string(),
                cairn_grammar::ast::Span::new(item.span.start, item.span.start),
                Vec::new(),
            ),
        },
    };
    Some(symbol(
        doc,
        name,
        Some(item.kind.keyword().to_string()),
        kind,
        item.span,
        selection,
        children,
    ))
}

/// Labelled steps, nested blocks flattened: the outline of a journey.
fn labelled_steps<'s>(
    doc: &Doc,
    item: &Item,
    steps: impl Iterator<Item = &'s Step>,
    out: &mut Vec<DocumentSymbol>,
) {
    for step in steps {
        if let Some(label) = &step.label {
            out.push(symbol(
                doc,
                label.name.clone(),
                Some(step.kind.keyword().to_string()),
                SymbolKind::KEY,
                item.absolute(step.span),
                item.absolute(label.span),
                Vec::new(),
            ));
        }
        match &step.kind {
            StepKind::WaitFor(w) => {
                labelled_steps(doc, item, w.then.steps.iter(), out);
                if let Some(t) = &w.timeout {
                    labelled_steps(doc, item, t.steps.iter(), out);
                }
            }
            StepKind::If(i) => {
                labelled_steps(doc, item, i.then.steps.iter(), out);
                let mut next = &i.otherwise;
                while let Some(e) = next {
                    match e {
                        Else::Block(b) => {
                            labelled_steps(doc, item, b.steps.iter(), out);
                            next = &None;
                        }
                        Else::If(inner, _) => {
                            labelled_steps(doc, item, inner.then.steps.iter(), out);
                            next = &inner.otherwise;
                        }
                    }
                }
            }
            StepKind::Split(arms) => {
                for arm in arms {
                    match &arm.body {
                        ArmBody::Step(s) => {
                            labelled_steps(doc, item, std::iter::once(s.as_ref()), out)
                        }
                        ArmBody::Block(b) => labelled_steps(doc, item, b.steps.iter(), out),
                    }
                }
            }
            _ => {}
        }
    }
}

/// Most workspace symbols returned for one query.
const MAX_WORKSPACE_SYMBOLS: usize = 500;

pub fn workspace_symbols(
    snapshot: &Snapshot,
    params: WorkspaceSymbolParams,
) -> RequestResult<Option<WorkspaceSymbolResponse>> {
    let query = params.query.to_lowercase();
    let mut out = Vec::new();
    for doc in snapshot.world.docs.values() {
        let tree = &cairn_compiler::db::parse_file(&snapshot.db, doc.file).tree;
        for item in &tree.items {
            let Some(name) = item.kind.name() else {
                continue;
            };
            if !fuzzy(&query, &name.name.to_lowercase()) {
                continue;
            }
            out.push(WorkspaceSymbol {
                name: name.name.clone(),
                kind: kind_of(&item.kind),
                tags: None,
                container_name: Some(item.kind.keyword().to_string()),
                location: OneOf::Left(Location::new(
                    doc.uri.clone(),
                    doc.text.range(item.absolute(name.span)),
                )),
                data: None,
            });
            if out.len() >= MAX_WORKSPACE_SYMBOLS {
                return Ok(Some(WorkspaceSymbolResponse::Nested(out)));
            }
        }
    }
    Ok(Some(WorkspaceSymbolResponse::Nested(out)))
}

/// The query's characters appear in the name in order (`ordc` finds `order_completed`).
fn fuzzy(query: &str, name: &str) -> bool {
    let mut chars = name.chars();
    query.chars().all(|q| chars.any(|c| c == q))
}
