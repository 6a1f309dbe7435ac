//! `cairn lsp`: the language server, speaking LSP over standard input and output.

use super::CommandResult;
use crate::Outcome;
use cairn_lsp::Exit;

/// Exit code 0 after the client's `shutdown`, 1 when it left without one (as the
/// protocol asks), 2 when the connection itself failed.
pub fn run() -> CommandResult {
    match cairn_lsp::run_stdio() {
        Ok(Exit::AfterShutdown) => Ok(Outcome::Ok),
        Ok(Exit::WithoutShutdown) => Ok(Outcome::Failed),
        Err(e) => Err(miette::miette!("the language server stopped: {e}")),
    }
}
