//! Checking a loaded project: every file's diagnostics.

use crate::project::Project;
use cairn_grammar::Diagnostic;

/// The diagnostics of one source file, in source order.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub index: usize,
    pub diagnostics: Vec<Diagnostic>,
}

/// Checks every file of `project`; files without findings are left out.
pub fn check_project(project: &Project) -> Vec<FileReport> {
    project
        .sources
        .iter()
        .enumerate()
        .filter_map(|(index, source)| {
            let diagnostics = match &source.utf8_error {
                Some(error) => vec![error.clone()],
                None => cairn_grammar::parse(&source.text).diagnostics,
            };
            (!diagnostics.is_empty()).then_some(FileReport { index, diagnostics })
        })
        .collect()
}
