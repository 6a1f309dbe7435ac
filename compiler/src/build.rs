//! From a loaded project to a plan: check everything, then lower. What `cairn build`,
//! `cairn test`, `cairn serve` and `cairn deploy` share.

use crate::check::check_project;
use crate::lower::{LowerInput, SourceInput, lower};
use crate::project::Project;
use cairn_grammar::Diagnostic;
use cairn_plan::Plan;

/// A diagnostic with the index of the source file it belongs to.
pub type FileDiagnostic = (usize, Diagnostic);

pub struct Built {
    pub plan: Plan,
    /// Warnings of the check; the plan was built anyway.
    pub warnings: Vec<FileDiagnostic>,
    /// The parsed sources, for callers that need the trees (tests, graphs).
    pub trees: Vec<cairn_grammar::ast::SourceFile>,
}

/// Checks `project` and lowers it. Errors of the check or of lowering come back
/// instead of a plan.
pub fn build_plan(
    project: &Project,
    git_commit: Option<&str>,
) -> Result<Built, Vec<FileDiagnostic>> {
    build_plan_after(project, git_commit, None)
}

/// [`build_plan`], with the journeys' `migrate` checked against `previous`, the plan
/// the new one replaces (see [`crate::migrations`]).
pub fn build_plan_after(
    project: &Project,
    git_commit: Option<&str>,
    previous: Option<&Plan>,
) -> Result<Built, Vec<FileDiagnostic>> {
    let built = lower_checked(project, git_commit)?;
    let problems = crate::migrations::check(&built.plan, &built.trees, previous);
    if problems.is_empty() {
        Ok(built)
    } else {
        let mut all = built.warnings;
        all.extend(problems);
        Err(all)
    }
}

fn lower_checked(
    project: &Project,
    git_commit: Option<&str>,
) -> Result<Built, Vec<FileDiagnostic>> {
    let mut findings: Vec<FileDiagnostic> = Vec::new();
    for report in check_project(project) {
        findings.extend(report.diagnostics.into_iter().map(|d| (report.index, d)));
    }
    if findings.iter().any(|(_, d)| d.is_error()) {
        return Err(findings);
    }
    let parsed: Vec<_> = project
        .sources
        .iter()
        .map(|s| cairn_grammar::parse(&s.text))
        .collect();
    let paths: Vec<String> = project
        .sources
        .iter()
        .map(|s| relative_path(project, &s.path))
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
    let name = project.name();
    let input = LowerInput {
        project: &name,
        default_currency: project.manifest.project.currency.as_deref(),
        sources: &sources,
        assets: &project.assets,
        git_commit,
    };
    match lower(&input) {
        Ok(plan) => Ok(Built {
            plan,
            warnings: findings,
            trees: parsed.into_iter().map(|p| p.file).collect(),
        }),
        Err(errors) => Err(errors.into_iter().map(|e| (e.file, e.diagnostic)).collect()),
    }
}

/// A source's path relative to the project root, `/`-separated, as plans show it.
pub fn relative_path(project: &Project, path: &std::path::Path) -> String {
    let relative = path.strip_prefix(&project.root).unwrap_or(path);
    let parts: Vec<String> = relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}
