//! End-to-end tests of the `cairn` binary: one test binary, one module per command.

mod build;
mod check;
mod graph;
mod lsp;
mod runtime;
mod support;
mod test_cmd;
