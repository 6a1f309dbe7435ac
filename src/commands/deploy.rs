//! `cairn deploy`: build a project (or read a built plan) and send it to a daemon's
//! admin API, which stores it as the next version; `--rollback` re-activates the one
//! before. The admin token comes from `--token`, else `CAIRN_ADMIN_TOKEN`, else the
//! project's `.cairn/credentials` that a local `cairn serve` wrote; without one the
//! deploy is refused before anything is sent.

use super::CommandResult;
use crate::Outcome;
use crate::cli::DeployArgs;
use crate::render;
use cairn_compiler::build::build_plan_after;
use cairn_compiler::project::{self, Manifest, Project};
use cairn_plan::Plan;
use cairn_runtime::admin::describe_deploy;
use cairn_runtime::client::{AdminClient, ClientError};
use cairn_runtime::server::{CREDENTIALS_FILE, read_credential};
use std::path::{Path, PathBuf};

/// Where a daemon listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub fn run(args: &DeployArgs) -> CommandResult {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let manifest_dir = if path.is_dir() {
        Some(path.clone())
    } else {
        None
    };
    let manifest = manifest_dir.as_deref().and_then(read_manifest);
    let server = server_url(args.server.as_deref(), manifest.as_ref());
    let Some(token) = admin_token(args.token.as_deref(), manifest_dir.as_deref()) else {
        return Err(miette::miette!(
            help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN; `cairn serve` writes the token to `.cairn/credentials` on first start",
            "`cairn deploy` needs the daemon's admin token"
        ));
    };
    let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
    if args.rollback {
        return match client.rollback() {
            Ok(deployed) => {
                eprintln!("rolled back on {server}: {}", describe_deploy(&deployed));
                Ok(Outcome::Ok)
            }
            Err(e) => refused(e),
        };
    }

    let json = if path.extension().is_some_and(|e| e == "json") && path.is_file() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| miette::miette!("cannot read `{}`: {e}", path.display()))?;
        let commit = Plan::from_json(&text).ok().and_then(|p| p.git_commit);
        if !args.allow_dirty && commit.as_deref().is_some_and(is_dirty) {
            eprintln!(
                "error: `{}` was built from a work tree with uncommitted changes (commit {})\nhelp: rebuild it from a clean checkout, or pass `--allow-dirty`",
                path.display(),
                commit.unwrap_or_default()
            );
            return Ok(Outcome::Failed);
        }
        text
    } else {
        let project = one_project(&path)?;
        let commit = super::build::git_commit(&project.root);
        if !args.allow_dirty
            && let Some(commit) = commit.as_deref().filter(|c| is_dirty(c))
        {
            eprintln!(
                "error: `{}` has uncommitted changes: a deploy records the commit it was built from ({commit})\nhelp: commit them first, or pass `--allow-dirty`",
                project.root.display()
            );
            return Ok(Outcome::Failed);
        }
        // `migrate` is checked against the plan the daemon runs now.
        let previous = match client.active_plan() {
            Ok(plan) => plan.and_then(|value| Plan::from_json(&value.to_string()).ok()),
            Err(e) => return refused(e),
        };
        match built_plan(&project, commit.as_deref(), previous.as_ref()) {
            Some(plan) => plan.to_json_pretty(),
            None => return Ok(Outcome::Failed),
        }
    };
    match client.deploy_stranding(&json, args.strand) {
        Ok(deployed) => {
            eprintln!("deployed to {server}: {}", describe_deploy(&deployed));
            Ok(Outcome::Ok)
        }
        Err(ClientError::Refused {
            status: 409,
            message,
        }) => {
            eprintln!("error: {server} refused the deploy: {message}");
            Ok(Outcome::Failed)
        }
        Err(e) => refused(e),
    }
}

/// A commit recorded from a work tree with uncommitted changes.
fn is_dirty(commit: &str) -> bool {
    commit.ends_with("-dirty")
}

fn refused(e: ClientError) -> CommandResult {
    match e {
        // The daemon refused the plan or the rollback itself: the user's input.
        ClientError::Refused { status, .. } if (400..500).contains(&status) && status != 401 => {
            eprintln!("error: {e}");
            Ok(Outcome::Failed)
        }
        other => Err(miette::miette!("{other}")),
    }
}

/// Checks and builds the one project at `path`, printing its diagnostics; `None` when
/// it has errors. The plan carries the git commit of the project's folder.
pub(super) fn project_plan(path: &Path) -> miette::Result<Option<Plan>> {
    let project = one_project(path)?;
    let commit = super::build::git_commit(&project.root);
    Ok(built_plan(&project, commit.as_deref(), None))
}

/// Checks and builds `project`, its `migrate` checked against `previous`, printing
/// its diagnostics; `None` when it has errors.
fn built_plan(project: &Project, commit: Option<&str>, previous: Option<&Plan>) -> Option<Plan> {
    match build_plan_after(project, commit, previous) {
        Ok(built) => {
            for (file, diagnostic) in &built.warnings {
                let source = &project.sources[*file];
                eprintln!(
                    "{}",
                    render::diagnostic(diagnostic, &source.path, &source.text)
                );
            }
            Some(built.plan)
        }
        Err(errors) => {
            for (file, diagnostic) in &errors {
                let source = &project.sources[*file];
                eprintln!(
                    "{}",
                    render::diagnostic(diagnostic, &source.path, &source.text)
                );
            }
            let all: Vec<_> = errors.iter().map(|(_, d)| d).collect();
            eprintln!(
                "cannot build `{}`: {}",
                project.name(),
                render::counts(&all)
            );
            None
        }
    }
}

pub(super) fn one_project(path: &Path) -> miette::Result<Project> {
    let mut projects = project::discover(&[path.to_path_buf()])?;
    if projects.len() != 1 {
        return Err(miette::miette!(
            help = "name one project directory",
            "`{}` holds {} projects; the daemon runs one",
            path.display(),
            projects.len()
        ));
    }
    Ok(projects.remove(0))
}

/// The project's `cairn.toml`, when it has a readable one.
pub(super) fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(dir.join(project::MANIFEST)).ok()?;
    toml::from_str(&text).ok()
}

/// `--server`, else `CAIRN_SERVER`, else the manifest's `[serve] listen`, else the
/// default address.
pub(super) fn server_url(flag: Option<&str>, manifest: Option<&Manifest>) -> String {
    let url = flag
        .map(str::to_string)
        .or_else(|| std::env::var("CAIRN_SERVER").ok().filter(|s| !s.is_empty()))
        .or_else(|| manifest.and_then(|m| m.serve.listen.clone()))
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    }
}

/// `--token`, else `CAIRN_ADMIN_TOKEN`, else the project's credentials file.
pub(super) fn admin_token(flag: Option<&str>, project_dir: Option<&Path>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("CAIRN_ADMIN_TOKEN").ok())
        .or_else(|| {
            let file = project_dir?.join(project::STATE_DIR).join(CREDENTIALS_FILE);
            read_credential(&file, "admin_token")
        })
        .filter(|t| !t.trim().is_empty())
}
