//! The Cairn compiler.
//!
//! - [`project`]: finding a project's manifest and sources on disk (the only I/O here).
//! - [`check`]: every diagnostic of a loaded project.

pub mod check;
pub mod project;

pub use cairn_grammar::{Diagnostic, Severity};
