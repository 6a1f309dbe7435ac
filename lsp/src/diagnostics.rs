//! The compiler's diagnostics as LSP diagnostics, published for every file of every
//! project the server knows, open or not.

use crate::server::Snapshot;
use crate::workspace::{Doc, DocKey};
use cairn_compiler::db::file_diagnostics;
use cairn_grammar::{Diagnostic, Severity};
use crossbeam_channel::Sender;
use lsp_server::{Message, Notification};
use lsp_types::notification::{Notification as _, PublishDiagnostics};
use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag, Location, NumberOrString,
    PublishDiagnosticsParams,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Most diagnostics sent for one file: past this an editor only slows down.
const MAX_PER_FILE: usize = 1_000;

/// Publishes the diagnostics of every document whose findings changed since they were
/// last published, and of every document in `touched` whatever they are. Touched
/// documents go first: they are the ones the person is typing in.
pub fn publish(
    snapshot: &Snapshot,
    touched: &[DocKey],
    published: &Mutex<HashMap<DocKey, u64>>,
    sender: &Sender<Message>,
) {
    let world = &snapshot.world;
    let order = touched
        .iter()
        .filter(|k| world.docs.contains_key(*k))
        .chain(world.docs.keys().filter(|k| !touched.contains(k)));
    for key in order {
        let Some(doc) = world.docs.get(key) else {
            continue;
        };
        let diagnostics = for_doc(snapshot, doc);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&diagnostics)
            .unwrap_or_default()
            .hash(&mut hasher);
        let hash = hasher.finish();
        let unchanged = published
            .lock()
            .map(|p| p.get(key) == Some(&hash))
            .unwrap_or(false);
        if unchanged && !touched.contains(key) {
            continue;
        }
        let params = PublishDiagnosticsParams::new(doc.uri.clone(), diagnostics, doc.version);
        let _ = sender.send(Message::Notification(Notification::new(
            PublishDiagnostics::METHOD.to_string(),
            params,
        )));
        if let Ok(mut p) = published.lock() {
            p.insert(key.clone(), hash);
        }
    }
}

/// The LSP diagnostics of one document.
pub fn for_doc(snapshot: &Snapshot, doc: &Doc) -> Vec<lsp_types::Diagnostic> {
    let project = snapshot.world.projects[doc.project].input;
    file_diagnostics(&snapshot.db, project, doc.file)
        .iter()
        .take(MAX_PER_FILE)
        .map(|d| to_lsp(d, doc))
        .collect()
}

pub fn to_lsp(d: &Diagnostic, doc: &Doc) -> lsp_types::Diagnostic {
    let primary_index = d
        .labels
        .iter()
        .position(|l| l.primary)
        .or((!d.labels.is_empty()).then_some(0));
    let primary = primary_index.map(|i| &d.labels[i]);
    let mut message = d.message.clone();
    if let Some(label) = primary.filter(|l| !l.message.is_empty()) {
        message.push_str(" (");
        message.push_str(&label.message);
        message.push(')');
    }
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != primary_index)
        .map(|(_, l)| DiagnosticRelatedInformation {
            location: Location::new(doc.uri.clone(), doc.text.range(l.span)),
            message: if l.message.is_empty() {
                "here".to_string()
            } else {
                l.message.clone()
            },
        })
        .collect();
    lsp_types::Diagnostic {
        range: doc.text.range(primary.map(|l| l.span).unwrap_or_default()),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("cairn".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: (d.code == cairn_compiler::codes::UNUSED).then(|| vec![DiagnosticTag::UNNECESSARY]),
        data: d.help.as_ref().map(|h| serde_json::json!({ "help": h })),
    }
}
