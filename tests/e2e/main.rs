//! End-to-end tests of the `cairn` binary: one test binary, one module per command.

mod bench;
mod build;
mod check;
mod ci_example;
mod diff;
mod graph;
mod identify;
mod import;
mod lsp;
mod preview;
mod rights;
mod runtime;
mod simulate;
mod support;
mod test_cmd;
mod torture;
