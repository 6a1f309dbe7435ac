//! Request handlers: plain functions from a snapshot and the request's parameters to
//! its result. [`route`] finds the handler of a method; [`capabilities`] announces them.

mod actions;
mod completion;
mod format;
mod hover;
mod navigation;
mod symbols;
mod tokens;

use crate::index::{Occurrence, Symbol, file_occurrences};
use crate::server::{Handler, RequestError, RequestResult, Snapshot};
use crate::workspace::Doc;
use cairn_grammar::ast::{Item, Span};
use lsp_server::ErrorCode;
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CodeActionProviderCapability, CompletionOptions, FoldingRangeProviderCapability,
    HoverProviderCapability, Location, OneOf, RenameOptions, SemanticTokensFullOptions,
    SemanticTokensOptions, SemanticTokensServerCapabilities, ServerCapabilities,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions, Uri,
    WorkDoneProgressOptions,
};
use std::sync::Arc;

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_highlight_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "(".into(), "[".into()]),
            ..CompletionOptions::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        workspace_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: tokens::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                work_done_progress_options: WorkDoneProgressOptions::default(),
            },
        )),
        folding_range_provider: Some(FoldingRangeProviderCapability::Simple(true)),
        workspace: Some(lsp_types::WorkspaceServerCapabilities {
            workspace_folders: Some(lsp_types::WorkspaceFoldersServerCapabilities {
                supported: Some(true),
                change_notifications: Some(OneOf::Left(true)),
            }),
            file_operations: None,
        }),
        ..ServerCapabilities::default()
    }
}

/// Turns a typed handler into one over JSON, with parameter errors as `InvalidParams`.
macro_rules! typed {
    ($request:ty, $function:path) => {{
        fn handle(
            snapshot: &Snapshot,
            params: serde_json::Value,
        ) -> RequestResult<serde_json::Value> {
            let params: <$request as lsp_types::request::Request>::Params =
                serde_json::from_value(params).map_err(|e| {
                    RequestError::new(ErrorCode::InvalidParams, format!("invalid parameters: {e}"))
                })?;
            let result: <$request as lsp_types::request::Request>::Result =
                $function(snapshot, params)?;
            serde_json::to_value(result)
                .map_err(|e| RequestError::new(ErrorCode::InternalError, e.to_string()))
        }
        handle as Handler
    }};
}

pub fn route(method: &str) -> Option<Handler> {
    Some(match method {
        req::HoverRequest::METHOD => typed!(req::HoverRequest, hover::hover),
        req::GotoDefinition::METHOD => typed!(req::GotoDefinition, navigation::definition),
        req::References::METHOD => typed!(req::References, navigation::references),
        req::DocumentHighlightRequest::METHOD => {
            typed!(req::DocumentHighlightRequest, navigation::highlight)
        }
        req::PrepareRenameRequest::METHOD => {
            typed!(req::PrepareRenameRequest, navigation::prepare_rename)
        }
        req::Rename::METHOD => typed!(req::Rename, navigation::rename),
        req::Completion::METHOD => typed!(req::Completion, completion::completion),
        req::DocumentSymbolRequest::METHOD => {
            typed!(req::DocumentSymbolRequest, symbols::document_symbols)
        }
        req::WorkspaceSymbolRequest::METHOD => {
            typed!(req::WorkspaceSymbolRequest, symbols::workspace_symbols)
        }
        req::Formatting::METHOD => typed!(req::Formatting, format::formatting),
        req::CodeActionRequest::METHOD => typed!(req::CodeActionRequest, actions::code_actions),
        req::SemanticTokensFullRequest::METHOD => {
            typed!(req::SemanticTokensFullRequest, tokens::semantic_tokens)
        }
        req::FoldingRangeRequest::METHOD => typed!(req::FoldingRangeRequest, tokens::folding),
        _ => return None,
    })
}

impl Snapshot {
    /// The document behind a URI, or the protocol error for an unknown one.
    pub fn doc(&self, uri: &Uri) -> RequestResult<Arc<Doc>> {
        self.world
            .doc(uri)
            .cloned()
            .ok_or_else(|| RequestError::unknown_document(uri))
    }

    pub fn occurrences(&self, doc: &Doc) -> &[Occurrence] {
        let project = self.world.projects[doc.project].input;
        file_occurrences(&self.db, project, doc.file)
    }

    /// Every occurrence of `symbol` in the project of `doc`, declarations included.
    pub fn find_all(&self, project: usize, symbol: &Symbol) -> Vec<(Arc<Doc>, Occurrence)> {
        let mut out = Vec::new();
        for doc in self.world.project_docs(project) {
            for occurrence in self.occurrences(doc) {
                if symbol.matches(&occurrence.symbol) {
                    out.push((doc.clone(), occurrence.clone()));
                }
            }
        }
        out
    }

    /// Where `symbol` is declared (built-in events and functions have no declaration).
    pub fn definitions(&self, project: usize, symbol: &Symbol) -> Vec<(Arc<Doc>, Occurrence)> {
        let mut found = self.find_all(project, symbol);
        found.retain(|(_, o)| o.def);
        found
    }

    /// The parsed item of `doc` holding `offset`.
    pub fn item_at(&self, doc: &Doc, offset: usize) -> Option<Item> {
        let tree = &cairn_compiler::db::parse_file(&self.db, doc.file).tree;
        tree.items
            .iter()
            .find(|i| i.span.start <= offset && offset <= i.span.end)
            .cloned()
    }
}

pub fn location(doc: &Doc, span: Span) -> Location {
    Location::new(doc.uri.clone(), doc.text.range(span))
}

/// Every step of a journey, nested blocks included, in source order.
pub fn all_steps(members: &[cairn_grammar::ast::Member]) -> Vec<&cairn_grammar::ast::Step> {
    use cairn_grammar::ast::{ArmBody, Else, MemberKind, Step, StepKind};
    fn walk<'a>(step: &'a Step, out: &mut Vec<&'a Step>) {
        out.push(step);
        match &step.kind {
            StepKind::WaitFor(w) => {
                w.then.steps.iter().for_each(|s| walk(s, out));
                w.timeout
                    .iter()
                    .flat_map(|t| &t.steps)
                    .for_each(|s| walk(s, out));
            }
            StepKind::If(i) => {
                let mut current = i;
                loop {
                    current.then.steps.iter().for_each(|s| walk(s, out));
                    match &current.otherwise {
                        None => break,
                        Some(Else::Block(b)) => {
                            b.steps.iter().for_each(|s| walk(s, out));
                            break;
                        }
                        Some(Else::If(next, _)) => current = next,
                    }
                }
            }
            StepKind::Split(arms) => {
                for arm in arms {
                    match &arm.body {
                        ArmBody::Step(s) => walk(s, out),
                        ArmBody::Block(b) => b.steps.iter().for_each(|s| walk(s, out)),
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for member in members {
        if let MemberKind::Step(s) = &member.kind {
            walk(s, &mut out);
        }
    }
    out
}
