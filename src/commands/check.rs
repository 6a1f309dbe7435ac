//! `cairn check`: every error and warning of the given projects.

use super::CommandResult;
use crate::Outcome;
use crate::cli::{CheckArgs, Format, paths_or_current};
use crate::render;
use cairn_compiler::check::check_project;
use cairn_compiler::project;
use cairn_grammar::lines::LineIndex;
use cairn_grammar::{Diagnostic, Severity};
use serde_json::json;

pub fn run(args: &CheckArgs) -> CommandResult {
    let projects = project::discover(&paths_or_current(&args.paths))?;
    let mut out = String::new();
    let mut all: Vec<&Diagnostic> = Vec::new();
    let mut json_items = Vec::new();
    let reports: Vec<_> = projects.iter().map(|p| (p, check_project(p))).collect();
    let file_count: usize = projects.iter().map(|p| p.sources.len()).sum();
    for (project, files) in &reports {
        for file in files {
            let source = &project.sources[file.index];
            let index = LineIndex::new(&source.text);
            for diagnostic in &file.diagnostics {
                all.push(diagnostic);
                match args.format {
                    Format::Human => {
                        out.push_str(&render::diagnostic(diagnostic, &source.path, &source.text));
                        out.push('\n');
                    }
                    Format::Json => json_items.push(json_diagnostic(
                        diagnostic,
                        &source.path,
                        &source.text,
                        &index,
                    )),
                }
            }
        }
    }
    let errors = all.iter().filter(|d| d.severity == Severity::Error).count();
    let failed = errors > 0 || (args.deny_warnings && !all.is_empty());
    match args.format {
        Format::Human => {
            let summary = format!(
                "checked {}, {}: {}",
                render::plural(projects.len(), "project"),
                render::plural(file_count, "file"),
                if all.is_empty() {
                    "no problems".to_string()
                } else {
                    render::counts(&all)
                }
            );
            emit(args, &out)?;
            eprintln!("{summary}");
        }
        Format::Json => {
            let doc = json!({
                "projects": projects.len(),
                "files": file_count,
                "errors": errors,
                "warnings": all.len() - errors,
                "diagnostics": json_items,
            });
            let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
            emit(args, &text)?;
        }
    }
    Ok(if failed { Outcome::Failed } else { Outcome::Ok })
}

fn emit(args: &CheckArgs, text: &str) -> miette::Result<()> {
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub fn json_diagnostic(
    d: &Diagnostic,
    path: &std::path::Path,
    text: &str,
    index: &LineIndex,
) -> serde_json::Value {
    let position = |offset: usize| {
        let lc = index.line_col(text, offset);
        json!({ "offset": offset, "line": lc.line, "column": lc.column })
    };
    let span = d.primary_span().unwrap_or_default();
    json!({
        "file": path.display().to_string(),
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "start": position(span.start),
        "end": position(span.end),
        "labels": d.labels.iter().map(|l| json!({
            "message": l.message,
            "primary": l.primary,
            "start": position(l.span.start),
            "end": position(l.span.end),
        })).collect::<Vec<_>>(),
        "help": d.help,
    })
}
