//! The Cairn language server (`cairn lsp`).
//!
//! - [`server`]: the main loop over `lsp-server`: it owns the salsa database, applies
//!   edits, and answers requests on snapshots (cancelled by edits, panics caught).
//! - [`workspace`]: projects, documents, and URIs to files and back.
//! - [`position`]: byte offsets to UTF-16 positions, the only place they meet.
//! - [`diagnostics`]: the compiler's findings as published diagnostics.
//! - [`index`]: every name in a file and what it refers to.
//! - [`lex`]: a forgiving tokenizer for half-typed text.
//! - [`keywords`]: the words of the language, for completion and highlighting.
//! - `handlers`: one module per feature (hover, navigation, completion, symbols,
//!   formatting, code actions, semantic tokens and folding).

pub mod diagnostics;
mod handlers;
pub mod index;
pub mod keywords;
pub mod lex;
pub mod position;
pub mod server;
pub mod workspace;

pub use server::{Exit, ServerError, run, run_stdio};
