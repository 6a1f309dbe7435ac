//! `cairn check`: every error and warning of the given projects.

use super::CommandResult;
use crate::Outcome;
use crate::cli::{CheckArgs, Format, paths_or_current};
use crate::render;
use crate::report::{self, Located};
use cairn_compiler::check::check_project;
use cairn_compiler::project;
use cairn_grammar::lines::LineIndex;
use cairn_grammar::{Diagnostic, Severity};
use serde_json::json;

pub fn run(args: &CheckArgs) -> CommandResult {
    let projects = project::discover(&paths_or_current(&args.paths))?;
    let file_count: usize = projects.iter().map(|p| p.sources.len()).sum();
    let reports: Vec<_> = projects.iter().map(|p| (p, check_project(p))).collect();
    let indexes: Vec<Vec<LineIndex>> = projects
        .iter()
        .map(|p| p.sources.iter().map(|s| LineIndex::new(&s.text)).collect())
        .collect();
    let mut located: Vec<Located> = Vec::new();
    for (n, (project, files)) in reports.iter().enumerate() {
        for file in files {
            let source = &project.sources[file.index];
            for diagnostic in &file.diagnostics {
                located.push(Located {
                    diagnostic,
                    path: &source.path,
                    text: &source.text,
                    index: &indexes[n][file.index],
                });
            }
        }
    }
    let all: Vec<&Diagnostic> = located.iter().map(|l| l.diagnostic).collect();
    let errors = all.iter().filter(|d| d.severity == Severity::Error).count();
    let failed = errors > 0 || (args.deny_warnings && !all.is_empty());
    let text = match args.format {
        Format::Human => located
            .iter()
            .map(|l| render::diagnostic(l.diagnostic, l.path, l.text) + "\n")
            .collect::<String>(),
        Format::Json => {
            let doc = json!({
                "projects": projects.len(),
                "files": file_count,
                "errors": errors,
                "warnings": all.len() - errors,
                "diagnostics": located.iter().map(report::json_item).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        Format::Jsonl => located
            .iter()
            .map(|l| serde_json::to_string(&report::json_item(l)).unwrap_or_default() + "\n")
            .collect(),
        Format::Github => located
            .iter()
            .map(|l| report::github_line(l) + "\n")
            .collect(),
        Format::Sarif => {
            serde_json::to_string_pretty(&report::sarif(&located)).unwrap_or_default() + "\n"
        }
    };
    emit(args, &text)?;
    eprintln!(
        "checked {}, {}: {}",
        render::plural(projects.len(), "project"),
        render::plural(file_count, "file"),
        if all.is_empty() {
            "no problems".to_string()
        } else {
            render::counts(&all)
        }
    );
    Ok(if failed { Outcome::Failed } else { Outcome::Ok })
}

fn emit(args: &CheckArgs, text: &str) -> miette::Result<()> {
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display())),
        None => {
            crate::render::out(text);
            Ok(())
        }
    }
}
