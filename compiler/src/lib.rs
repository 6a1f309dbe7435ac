//! The Cairn compiler.
//!
//! - [`project`]: finding a project's manifest and sources on disk (the only I/O here).
//! - [`db`]: the salsa database: inputs, tracked items and the queries over them.
//! - [`schema`]: the declarations as names and types.
//! - [`checker`]: the checks of one item (names, types, channels, control flow).
//! - [`template`]: templates parsed with minijinja.
//! - [`refs`]: which declared names are used.
//! - [`codes`]: the diagnostics catalogue behind `cairn explain`.
//! - [`check`]: checking a loaded project from the command line.
//! - [`migrations`]: `migrate OLD -> NEW` checked against the previous plan.

pub mod build;
pub mod check;
pub mod checker;
pub mod codes;
pub mod db;
pub mod lower;
pub mod lower_tests;
pub mod migrations;
pub mod project;
pub mod refs;
pub mod schema;
pub mod suggest;
pub mod template;

pub use cairn_grammar::{Diagnostic, Severity};
