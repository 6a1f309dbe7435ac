//! `cairn build`: compile one project to the plan JSON the runtime executes.
//!
//! The project is checked first; any error (syntax or semantic) is printed to standard
//! error and nothing is built (exit 1). The plan goes to standard output, or to the
//! file named with `-o`, and a one-line summary to standard error.

use super::CommandResult;
use crate::Outcome;
use crate::cli::BuildArgs;
use crate::render;
use cairn_compiler::check::check_project;
use cairn_compiler::lower::{LowerInput, SourceInput, lower};
use cairn_compiler::project::{self, Project};
use cairn_grammar::Diagnostic;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn run(args: &BuildArgs) -> CommandResult {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut projects = project::discover(std::slice::from_ref(&path))?;
    if projects.len() != 1 {
        return Err(miette::miette!(
            help = "name one project directory or `.cairn` file",
            "`{}` holds {} projects; `cairn build` builds one at a time",
            path.display(),
            projects.len()
        ));
    }
    let project = projects.remove(0);
    let name = project.name();

    // Check first: a plan is only built from a project without errors.
    let mut findings: Vec<&Diagnostic> = Vec::new();
    let mut text = String::new();
    let reports = check_project(&project);
    for file in &reports {
        let source = &project.sources[file.index];
        for diagnostic in &file.diagnostics {
            findings.push(diagnostic);
            text.push_str(&render::diagnostic(diagnostic, &source.path, &source.text));
            text.push('\n');
        }
    }
    eprint!("{text}");
    if findings.iter().any(|d| d.is_error()) {
        eprintln!("cannot build `{name}`: {}", render::counts(&findings));
        return Ok(Outcome::Failed);
    }

    let parsed: Vec<_> = project
        .sources
        .iter()
        .map(|s| cairn_grammar::parse(&s.text))
        .collect();
    let paths: Vec<String> = project
        .sources
        .iter()
        .map(|s| relative_path(&project, &s.path))
        .collect();
    let sources: Vec<SourceInput<'_>> = project
        .sources
        .iter()
        .zip(&parsed)
        .zip(&paths)
        .map(|((source, parsed), path)| SourceInput {
            path,
            text: &source.text,
            file: &parsed.file,
        })
        .collect();
    let commit = git_commit(&project.root);
    let input = LowerInput {
        project: &name,
        default_currency: project.manifest.project.currency.as_deref(),
        sources: &sources,
        assets: &project.assets,
        git_commit: commit.as_deref(),
    };
    let plan = match lower(&input) {
        Ok(plan) => plan,
        Err(errors) => {
            let mut text = String::new();
            for error in &errors {
                let source = &project.sources[error.file];
                text.push_str(&render::diagnostic(
                    &error.diagnostic,
                    &source.path,
                    &source.text,
                ));
                text.push('\n');
            }
            eprint!("{text}");
            let all: Vec<&Diagnostic> = errors.iter().map(|e| &e.diagnostic).collect();
            eprintln!("cannot build `{name}`: {}", render::counts(&all));
            return Ok(Outcome::Failed);
        }
    };

    let json = plan.to_json_pretty();
    let destination = match &args.output {
        Some(file) => {
            std::fs::write(file, &json)
                .map_err(|e| miette::miette!("cannot write `{}`: {e}", file.display()))?;
            format!(" to `{}`", file.display())
        }
        None => {
            crate::render::out(&json);
            String::new()
        }
    };
    let short: String = plan.content_hash.chars().take(12).collect();
    eprintln!(
        "built plan for `{name}`: {}, {}, hash {short}…{destination}",
        render::plural(plan.journeys.len(), "journey"),
        render::plural(plan.templates.len(), "template"),
    );
    Ok(Outcome::Ok)
}

/// A source's path relative to the project root, `/`-separated, as plans show it.
fn relative_path(project: &Project, path: &Path) -> String {
    let relative = path.strip_prefix(&project.root).unwrap_or(path);
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// The commit checked out in `dir`, with `-dirty` when anything under `dir` differs
/// from it; `None` outside a git work tree or without git.
fn git_commit(dir: &Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--verify", "HEAD"]).filter(|c| !c.is_empty())?;
    let dirty = git(&["status", "--porcelain", "--", "."]).is_none_or(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}
