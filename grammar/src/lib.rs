//! The Cairn language: grammar, syntax tree and formatter.
//!
//! - [`parse`]: source text to a [`ast::SourceFile`] plus syntax diagnostics; never fails.
//!   The pest grammar (`cairn.pest`) is the reference; a hand-written parser (`fast.rs`)
//!   reads the items it accepts cleanly, several times faster, and hands everything else
//!   back to pest. `parse::verify` compares the two item by item, and the tests run it
//!   on every sample, example and fuzz input and on generated and mutated sources.
//! - [`format`]: the canonical layout of a file, keeping its comments.
//! - [`ast`]: the typed tree with byte spans.
//! - [`diagnostic`]: the one shape every finding takes, syntax or semantic.
//! - [`lines`]: byte offsets to lines and columns.
//! - [`synth`]: realistic generated projects of any size, for benchmarks and property tests.

pub mod ast;
pub mod diagnostic;
mod fast;
mod fmt;
pub mod lines;
pub mod parse;
mod scan;
pub mod synth;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use fmt::{FormatError, expr as expr_text, format, format_file};
pub use parse::{Parsed, parse, parse_bytes};
