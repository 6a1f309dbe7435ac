//! Formatting: the canonical layout of `cairn fmt`, as one edit of the whole document.

use crate::server::{RequestResult, Snapshot};
use lsp_types::{DocumentFormattingParams, TextEdit};

/// A file with syntax errors is left as it is (no edits): the formatter only lays out
/// what it understands, and the diagnostics already say what is wrong.
pub fn formatting(
    snapshot: &Snapshot,
    params: DocumentFormattingParams,
) -> RequestResult<Option<Vec<TextEdit>>> {
    let doc = snapshot.doc(&params.text_document.uri)?;
    let Ok(formatted) = cairn_grammar::format(&doc.text.text) else {
        return Ok(Some(Vec::new()));
    };
    if formatted == doc.text.text {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(vec![TextEdit::new(doc.text.full_range(), formatted)]))
}
