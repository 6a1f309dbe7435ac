//! Checking a loaded project from the command line: one database, every file.

use crate::db::{self, Database, ProjectInput, SourceFile};
use crate::project::Project;
use cairn_grammar::Diagnostic;
use std::collections::BTreeMap;

/// The diagnostics of one source file, in source order.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub index: usize,
    pub diagnostics: Vec<Diagnostic>,
}

/// A project loaded into a fresh database.
pub struct Loaded {
    pub db: Database,
    pub input: ProjectInput,
    pub files: Vec<SourceFile>,
}

/// Sets the database inputs from a project read from disk.
pub fn load_into_db(project: &Project) -> Loaded {
    let db = Database::default();
    let files: Vec<SourceFile> = project
        .sources
        .iter()
        .map(|s| SourceFile::new(&db, s.path.display().to_string(), s.text.clone()))
        .collect();
    let assets: BTreeMap<String, String> = project.assets.clone();
    let input = ProjectInput::new(
        &db,
        files.clone(),
        assets,
        project.manifest.project.currency.clone(),
    );
    Loaded { db, input, files }
}

/// Checks every file of `project`; files without findings are left out.
pub fn check_project(project: &Project) -> Vec<FileReport> {
    let loaded = load_into_db(project);
    project
        .sources
        .iter()
        .enumerate()
        .filter_map(|(index, source)| {
            let diagnostics = match &source.utf8_error {
                Some(error) => vec![error.clone()],
                None => db::file_diagnostics(&loaded.db, loaded.input, loaded.files[index]).clone(),
            };
            (!diagnostics.is_empty()).then_some(FileReport { index, diagnostics })
        })
        .collect()
}
