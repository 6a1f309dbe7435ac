//! The salsa database: inputs, the tracked items, and the queries that chain parsing,
//! name collection and checking.
//!
//! Incrementality rests on two facts. Items are tracked structs whose trees use
//! item-relative spans (see [`cairn_grammar::ast::Item`]), so editing one item leaves the
//! others' trees equal. And the [`Schema`] holds names and types but no spans or bodies,
//! so an edit inside a journey leaves it equal too. Salsa then reuses every other item's
//! check.

use crate::checker;
use crate::schema::{self, Schema, TemplateInfo};
use crate::template;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{self, Span};
use std::collections::BTreeMap;
use std::sync::Arc;

#[salsa::db]
pub trait Db: salsa::Database {}

#[salsa::db]
#[derive(Clone, Default)]
pub struct Database {
    storage: salsa::Storage<Self>,
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {}

impl Database {
    /// A database that reports every query it executes to `log`, for tests of
    /// incrementality.
    pub fn with_log(log: Arc<std::sync::Mutex<Vec<String>>>) -> Self {
        Self {
            storage: salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
                if let salsa::EventKind::WillExecute { database_key } = event.kind
                    && let Ok(mut log) = log.lock()
                {
                    log.push(format!("{database_key:?}"));
                }
            }))),
        }
    }
}

/// One `.cairn` file.
#[salsa::input(debug)]
pub struct SourceFile {
    #[returns(ref)]
    pub path: String,
    #[returns(ref)]
    pub text: String,
}

/// A project: its files, the other files templates may include, and its settings.
#[salsa::input(debug)]
pub struct ProjectInput {
    #[returns(ref)]
    pub files: Vec<SourceFile>,
    /// Template files by path relative to the project root.
    #[returns(ref)]
    pub assets: BTreeMap<String, String>,
    #[returns(ref)]
    pub currency: Option<String>,
}

/// What identifies an item across edits: its kind and name, or its position among the
/// unnamed items of its kind (the contact schema, quiet hours, tests).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub keyword: &'static str,
    pub name: String,
}

/// One top-level item of a file. The key fields give it its identity; the tree and the
/// offset are tracked, and only the tree matters to the item's own check.
#[salsa::tracked(debug)]
pub struct ItemDef<'db> {
    #[returns(copy)]
    pub file: SourceFile,
    #[returns(ref)]
    pub key: ItemKey,
    #[tracked]
    #[returns(copy)]
    pub offset: usize,
    #[tracked]
    #[returns(ref)]
    pub kind: Arc<ast::ItemKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, salsa::SalsaValue)]
pub struct ParsedFile<'db> {
    pub items: Vec<ItemDef<'db>>,
    /// Syntax diagnostics, absolute in the file.
    pub diagnostics: Vec<Diagnostic>,
    /// The whole tree with comments, for the formatter and the language server.
    pub tree: Arc<ast::SourceFile>,
}

#[salsa::tracked(returns(ref))]
pub fn parse_file(db: &dyn Db, file: SourceFile) -> ParsedFile<'_> {
    let parsed = cairn_grammar::parse(file.text(db));
    let mut unnamed: BTreeMap<&'static str, usize> = BTreeMap::new();
    let items = parsed
        .file
        .items
        .iter()
        .filter(|item| !matches!(item.kind, ast::ItemKind::Error))
        .map(|item| {
            let keyword = item.kind.keyword();
            let name = match item.kind.name() {
                Some(name) => name.name.clone(),
                None => {
                    let n = unnamed.entry(keyword).or_default();
                    *n += 1;
                    format!("#{n}")
                }
            };
            ItemDef::new(
                db,
                file,
                ItemKey { keyword, name },
                item.span.start,
                Arc::new(item.kind.clone()),
            )
        })
        .collect();
    ParsedFile {
        items,
        diagnostics: parsed.diagnostics,
        tree: Arc::new(parsed.file),
    }
}

/// Every item of the project, in file order.
#[salsa::tracked(returns(ref))]
pub fn all_items(db: &dyn Db, project: ProjectInput) -> Vec<ItemDef<'_>> {
    project
        .files(db)
        .iter()
        .flat_map(|file| parse_file(db, *file).items.iter().copied())
        .collect()
}

/// A template's analysis: what send sites need, and its own diagnostics
/// (item-relative). Re-runs only when the template or the project's files change.
#[salsa::tracked(returns(ref))]
pub fn template_analysis<'db>(
    db: &'db dyn Db,
    project: ProjectInput,
    item: ItemDef<'db>,
) -> (TemplateInfo, Vec<Diagnostic>) {
    match item.kind(db).as_ref() {
        ast::ItemKind::Template(decl) => template::analyse(decl, project.assets(db)),
        _ => (TemplateInfo::default(), Vec::new()),
    }
}

/// Names and types of every declaration. Equal across edits that change no
/// declaration, so checks that read it are reused.
#[salsa::tracked(returns(ref))]
pub fn project_schema(db: &dyn Db, project: ProjectInput) -> Arc<Schema> {
    let items = all_items(db, project);
    let kinds: Vec<Arc<ast::ItemKind>> = items.iter().map(|i| i.kind(db).clone()).collect();
    let mut templates = BTreeMap::new();
    for item in items {
        if let ast::ItemKind::Template(decl) = item.kind(db).as_ref() {
            templates
                .entry(decl.name.name.clone())
                .or_insert_with(|| template_analysis(db, project, *item).0.clone());
        }
    }
    Arc::new(schema::build(
        &kinds,
        templates,
        project.currency(db).clone(),
    ))
}

/// The diagnostics of one item, with item-relative spans.
#[salsa::tracked(returns(ref))]
pub fn check_item<'db>(
    db: &'db dyn Db,
    project: ProjectInput,
    item: ItemDef<'db>,
) -> Vec<Diagnostic> {
    let kind = item.kind(db);
    if matches!(kind.as_ref(), ast::ItemKind::Template(_)) {
        return template_analysis(db, project, item).1.clone();
    }
    checker::check_item(project_schema(db, project), kind)
}

/// Duplicate definitions across the project, absolute in their files.
#[salsa::tracked(returns(ref))]
pub fn duplicates(db: &dyn Db, project: ProjectInput) -> Vec<(SourceFile, Diagnostic)> {
    let mut seen: BTreeMap<(&'static str, String), (SourceFile, Span)> = BTreeMap::new();
    let mut out = Vec::new();
    for item in all_items(db, project) {
        let kind = item.kind(db);
        let offset = item.offset(db);
        let file = item.file(db);
        let (namespace, name_span) = match kind.as_ref() {
            ast::ItemKind::Contact(_) => ("contact schema", Span::new(0, "contact".len())),
            ast::ItemKind::QuietHours(_) => ("quiet hours", Span::new(0, "quiet hours".len())),
            other => match other.name() {
                Some(name) => (schema::namespace(other), name.span),
                None => continue,
            },
        };
        let name = kind
            .name()
            .map_or_else(|| namespace.to_string(), |n| n.name.clone());
        let here = name_span.shift(offset);
        match seen.get(&(namespace, name.clone())) {
            None => {
                seen.insert((namespace, name), (file, here));
            }
            Some((first_file, first_span)) => {
                let unnamed = kind.name().is_none();
                let mut d = if unnamed {
                    Diagnostic::error(
                        crate::codes::DUPLICATE_OPTION,
                        format!("the project has two `{namespace}` blocks"),
                    )
                    .with_label(here, "second one")
                } else {
                    Diagnostic::error(
                        crate::codes::DUPLICATE,
                        format!("`{name}` is defined twice"),
                    )
                    .with_label(here, format!("second definition of {namespace} `{name}`"))
                };
                let fix = if unnamed {
                    "merge them"
                } else {
                    "rename one of them"
                };
                if *first_file == file {
                    d = d
                        .with_secondary(*first_span, "first defined here")
                        .with_help(fix);
                } else {
                    d = d.with_help(format!("the first is in `{}`; {fix}", first_file.path(db)));
                }
                out.push((file, d));
            }
        }
    }
    out
}

/// Every name the project's items use; equal across edits that use no new name.
#[salsa::tracked(returns(ref))]
pub fn used_names(db: &dyn Db, project: ProjectInput) -> std::collections::BTreeSet<String> {
    let items = all_items(db, project);
    let kinds: Vec<Arc<ast::ItemKind>> = items.iter().map(|i| i.kind(db).clone()).collect();
    crate::refs::used_names(kinds.iter().map(AsRef::as_ref))
}

/// Templates and segments nothing uses, absolute in their files.
#[salsa::tracked(returns(ref))]
pub fn unused(db: &dyn Db, project: ProjectInput) -> Vec<(SourceFile, Diagnostic)> {
    let used = used_names(db, project);
    let mut out = Vec::new();
    for item in all_items(db, project) {
        let kind = item.kind(db);
        let (what, name) = match kind.as_ref() {
            ast::ItemKind::Template(t) => ("template", &t.name),
            ast::ItemKind::Segment(s) => ("segment", &s.name),
            _ => continue,
        };
        if !used.contains(&name.name) {
            out.push((
                item.file(db),
                Diagnostic::warning(
                    crate::codes::UNUSED,
                    format!("{what} `{}` is never used", name.name),
                )
                .with_label(name.span.shift(item.offset(db)), "declared here")
                .with_help(format!(
                    "use it, or remove it if the {what} is no longer needed"
                )),
            ));
        }
    }
    out
}

/// Segments whose conditions refer back to themselves, absolute in their files.
#[salsa::tracked(returns(ref))]
pub fn segment_cycles(db: &dyn Db, project: ProjectInput) -> Vec<(SourceFile, Diagnostic)> {
    let mut refs: BTreeMap<String, (Vec<String>, SourceFile, Span)> = BTreeMap::new();
    for item in all_items(db, project) {
        if let ast::ItemKind::Segment(s) = item.kind(db).as_ref() {
            let used = crate::refs::used_names(std::iter::once(item.kind(db).as_ref()));
            refs.entry(s.name.name.clone()).or_insert((
                used.into_iter().collect(),
                item.file(db),
                s.name.span.shift(item.offset(db)),
            ));
        }
    }
    let mut out = Vec::new();
    for (name, (_, file, span)) in &refs {
        // Depth-first from `name`: a path back to it is a cycle.
        let mut stack: Vec<(String, Vec<String>)> = vec![(name.clone(), vec![name.clone()])];
        let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut cycle: Option<Vec<String>> = None;
        while let Some((current, path)) = stack.pop() {
            let Some((next, _, _)) = refs.get(&current) else {
                continue;
            };
            for n in next.iter().filter(|n| refs.contains_key(*n)) {
                if n == name {
                    cycle = Some(path.clone());
                    break;
                }
                if seen.insert(n.clone()) {
                    let mut p = path.clone();
                    p.push(n.clone());
                    stack.push((n.clone(), p));
                }
            }
            if cycle.is_some() {
                break;
            }
        }
        if let Some(path) = cycle {
            let chain: Vec<String> = path
                .iter()
                .chain(std::iter::once(name))
                .map(|n| format!("`{n}`"))
                .collect();
            out.push((
                *file,
                Diagnostic::error(
                    crate::codes::SEGMENT_CYCLE,
                    format!("segment `{name}` depends on itself"),
                )
                .with_label(
                    *span,
                    format!("{} ", chain.join(" → ")).trim_end().to_string(),
                )
                .with_help(
                    "write one of the conditions out in full instead of naming the other segment",
                ),
            ));
        }
    }
    out
}

/// Every diagnostic of one file, absolute, in source order.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, project: ProjectInput, file: SourceFile) -> Vec<Diagnostic> {
    let parsed = parse_file(db, file);
    let mut out = parsed.diagnostics.clone();
    for item in &parsed.items {
        let offset = item.offset(db);
        out.extend(
            check_item(db, project, *item)
                .iter()
                .map(|d| shift(d, offset)),
        );
    }
    out.extend(
        duplicates(db, project)
            .iter()
            .chain(unused(db, project))
            .chain(segment_cycles(db, project))
            .filter(|(f, _)| *f == file)
            .map(|(_, d)| d.clone()),
    );
    out.sort_by_key(|d| d.primary_span().map(|s| (s.start, s.end)));
    out
}

fn shift(d: &Diagnostic, by: usize) -> Diagnostic {
    let mut d = d.clone();
    for label in &mut d.labels {
        label.span = label.span.shift(by);
    }
    d
}
