//! `cairn build`: compile one project to the plan JSON the runtime executes.
//!
//! The project is checked first; any error (syntax or semantic) is printed to standard
//! error and nothing is built (exit 1). The plan goes to standard output, or to the
//! file named with `-o`, and a one-line summary to standard error.

use super::CommandResult;
use crate::Outcome;
use crate::cli::BuildArgs;
use crate::render;
use cairn_compiler::build::build_plan_after;
use cairn_compiler::project;
use cairn_grammar::Diagnostic;
use cairn_plan::Plan;
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

    let previous = match &args.previous {
        None => None,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| miette::miette!("cannot read `{}`: {e}", file.display()))?;
            Some(Plan::from_json(&text).map_err(|e| {
                miette::miette!(
                    help = "`--previous` takes a plan JSON written by `cairn build`",
                    "`{}` is not a plan: {e}",
                    file.display()
                )
            })?)
        }
    };
    // A plan is only built from a project without errors.
    let commit = git_commit(&project.root);
    let built = build_plan_after(&project, commit.as_deref(), previous.as_ref());
    let (plan, findings) = match built {
        Ok(built) => (Some(built.plan), built.warnings),
        Err(errors) => (None, errors),
    };
    let mut text = String::new();
    for (file, diagnostic) in &findings {
        let source = &project.sources[*file];
        text.push_str(&render::diagnostic(diagnostic, &source.path, &source.text));
        text.push('\n');
    }
    eprint!("{text}");
    let Some(plan) = plan else {
        let all: Vec<&Diagnostic> = findings.iter().map(|(_, d)| d).collect();
        eprintln!("cannot build `{name}`: {}", render::counts(&all));
        return Ok(Outcome::Failed);
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

/// The commit checked out in `dir`, with `-dirty` when anything under `dir` differs
/// from it; `None` outside a git work tree or without git.
pub(super) fn git_commit(dir: &Path) -> Option<String> {
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
    // The daemon's state folder is not part of the project.
    let dirty = git(&["status", "--porcelain", "--", ".", ":(exclude).cairn"])
        .is_none_or(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}
