//! Quick fixes for the compiler's findings: apply a "did you mean", add a missing
//! `timeout` branch (and `within`) to a `wait for`, add the missing consent to a
//! journey's audience.

use super::all_steps;
use crate::diagnostics::to_lsp;
use crate::server::{RequestResult, Snapshot};
use crate::workspace::Doc;
use cairn_compiler::codes;
use cairn_compiler::db::file_diagnostics;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{BinaryOp, ExprKind, ItemKind, Literal, MemberKind, Span, StepKind};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, CodeActionResponse,
    TextEdit, WorkspaceEdit,
};
use std::collections::HashMap;

#[expect(
    clippy::mutable_key_type,
    reason = "lsp-types keys workspace edits by `Uri`, whose hash is its text alone"
)]
pub fn code_actions(
    snapshot: &Snapshot,
    params: CodeActionParams,
) -> RequestResult<Option<CodeActionResponse>> {
    let doc = snapshot.doc(&params.text_document.uri)?;
    let wanted = doc.text.span(params.range);
    let project = snapshot.world.projects[doc.project].input;
    let mut out = Vec::new();
    for d in file_diagnostics(&snapshot.db, project, doc.file) {
        let Some(span) = d.primary_span() else {
            continue;
        };
        // Touching counts: a cursor right after a name asks about it.
        if span.end < wanted.start || wanted.end < span.start {
            continue;
        }
        let fixes = [
            did_you_mean(&doc, d, span),
            add_timeout(snapshot, &doc, d, span),
            add_consent(snapshot, &doc, d, span),
        ];
        for (title, edits) in fixes.into_iter().flatten() {
            let mut changes = HashMap::new();
            changes.insert(doc.uri.clone(), edits);
            out.push(CodeActionOrCommand::CodeAction(CodeAction {
                title,
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![to_lsp(d, &doc)]),
                edit: Some(WorkspaceEdit::new(changes)),
                command: None,
                is_preferred: Some(true),
                disabled: None,
                data: None,
            }));
        }
    }
    Ok(Some(out))
}

type Fix = Option<(String, Vec<TextEdit>)>;

/// The name in backticks after `prefix` in a help text.
fn quoted_after<'h>(help: &'h str, prefix: &str) -> Option<&'h str> {
    let rest = &help[help.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('`')?;
    rest.split('`').next()
}

fn did_you_mean(doc: &Doc, d: &Diagnostic, span: Span) -> Fix {
    let suggestion = quoted_after(d.help.as_deref()?, "did you mean ")?;
    let current = doc.text.text.get(span.start..span.end)?;
    let is_word =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_word(current) || !is_word(suggestion) || current == suggestion {
        return None;
    }
    Some((
        format!("Replace `{current}` with `{suggestion}`"),
        vec![TextEdit::new(doc.text.range(span), suggestion.to_string())],
    ))
}

fn add_timeout(snapshot: &Snapshot, doc: &Doc, d: &Diagnostic, span: Span) -> Fix {
    if d.code != codes::WAIT_FOR_TIMEOUT {
        return None;
    }
    let item = snapshot.item_at(doc, span.start)?;
    let ItemKind::Journey(j) = &item.kind else {
        return None;
    };
    let wait = all_steps(&j.members)
        .into_iter()
        .find_map(|s| match &s.kind {
            StepKind::WaitFor(w) if item.absolute(w.event.span) == span => Some((s, w)),
            _ => None,
        })?;
    let (step, w) = wait;
    let mut edits = Vec::new();
    let step_start = item.absolute(step.span).start;
    let line_start = doc.text.line_start(doc.text.line_of(step_start));
    let indent: String = doc.text.text[line_start..step_start]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    if w.within.is_none() {
        let at = item.absolute(w.then.span).start;
        edits.push(TextEdit::new(
            doc.text.range(Span::new(at, at)),
            "within 7d ".to_string(),
        ));
    }
    if w.timeout.is_none() {
        let at = item.absolute(w.then.span).end;
        edits.push(TextEdit::new(
            doc.text.range(Span::new(at, at)),
            format!(" timeout {{\n{indent}  exit\n{indent}}}"),
        ));
    }
    let title = if w.within.is_none() && w.timeout.is_none() {
        "Add `within 7d` and a `timeout` branch"
    } else if w.within.is_none() {
        "Add `within 7d`"
    } else {
        "Add a `timeout` branch"
    };
    Some((title.to_string(), edits))
}

fn add_consent(snapshot: &Snapshot, doc: &Doc, d: &Diagnostic, span: Span) -> Fix {
    if d.code != codes::CONSENT_NOT_REQUIRED {
        return None;
    }
    let consent = quoted_after(d.help.as_deref()?, "add ")?;
    let item = snapshot.item_at(doc, span.start)?;
    let ItemKind::Journey(j) = &item.kind else {
        return None;
    };
    let audience = j.members.iter().find_map(|m| match &m.kind {
        MemberKind::Audience(e) => Some(e),
        _ => None,
    })?;
    let at = item.absolute(audience.span);
    let current = doc.text.text.get(at.start..at.end)?;
    let replacement = match &audience.kind {
        ExprKind::Literal(Literal::Bool(true)) => consent.to_string(),
        ExprKind::Binary(BinaryOp::Or, _, _) => format!("({current}) and {consent}"),
        _ => format!("{current} and {consent}"),
    };
    Some((
        format!("Add `{consent}` to the audience"),
        vec![TextEdit::new(doc.text.range(at), replacement)],
    ))
}
