//! `cairn diff`: what a change does to the plan, for a review.
//!
//! The project is read twice: as it is in the work tree, and as it was at a git
//! revision (by default the merge base of `HEAD` with `main`, else `origin/main`),
//! straight from git's object store (`git ls-tree` and `git cat-file --batch`), never
//! touching the work tree. Both are compiled to plans in memory and compared by name
//! and stable step ID ([`cairn_plan::diff`]). With `--server` the daemon's runs in
//! flight add what the change does to contacts waiting at each step.
//!
//! Exit codes: 0 the diff was shown, 1 the new version has errors, 2 a usage or git
//! problem (no such revision, no merge base, the base does not compile), 3 the daemon
//! is unreachable.

use super::CommandResult;
use super::deploy::{admin_token, one_project, read_manifest, server_url};
use crate::Outcome;
use crate::cli::{DiffArgs, DiffFormat};
use crate::render;
use cairn_compiler::build::{build_plan, build_plan_after};
use cairn_compiler::project::{self, Project};
use cairn_plan::Plan;
use cairn_plan::diff::{ChangeKind, PlanDiff, diff};
use cairn_runtime::client::{AdminClient, ClientError};
use cairn_runtime::inflight::{InFlight, Transition, group_thousands, migrate_line, transition};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The revision compared with, as resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Base {
    /// What the user named, or `merge-base(HEAD, main)`.
    pub revision: String,
    pub commit: String,
}

/// What `--server` adds: the runs in flight the change affects.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    pub server: String,
    /// One sentence each, the worst first.
    pub lines: Vec<String>,
    pub transition: Transition,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    project: &'a str,
    base: &'a Base,
    diff: &'a PlanDiff,
    impact: Option<&'a Impact>,
}

pub fn run(args: &DiffArgs) -> CommandResult {
    let (revision, path) = revision_and_path(args);
    let project = one_project(&path)?;
    let git = Git::at(&project.root)?;
    let base = git.base(revision.as_deref())?;
    let files = git.files_at(&base.commit)?;
    let name = project.name();

    let old = if files
        .keys()
        .any(|k| k.ends_with(".cairn") || k == project::MANIFEST)
    {
        let base_project = project::from_files(&project.root, &files)
            .map_err(|e| miette::miette!("the project at `{}`: {e}", base.revision))?;
        match build_plan(&base_project, None) {
            Ok(built) => built.plan,
            Err(errors) => {
                base_errors(&base, &base_project, &errors);
                return Ok(Outcome::Usage);
            }
        }
    } else {
        // The project is new since the base: everything is added.
        let mut empty = Plan::new(name.clone());
        empty.seal();
        empty
    };
    let new = match build_plan_after(&project, None, Some(&old)) {
        Ok(built) => built.plan,
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
                "the new version of `{name}` has errors: {}",
                render::counts(&all)
            );
            return Ok(Outcome::Failed);
        }
    };
    let changes = diff(&old, &new);

    let impact = match &args.server {
        None => None,
        Some(flag) => {
            let manifest = read_manifest(&project.root);
            let server = server_url(Some(flag), manifest.as_ref());
            let Some(token) = admin_token(args.token.as_deref(), Some(&project.root)) else {
                return Err(miette::miette!(
                    help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN",
                    "`cairn diff --server` needs the daemon's admin token"
                ));
            };
            let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
            match client.status() {
                Ok(status) => {
                    let in_flight: Vec<InFlight> = status
                        .journeys
                        .iter()
                        .flat_map(|j| {
                            j.in_flight.iter().filter_map(|r| {
                                Some(InFlight {
                                    journey: j.name.clone(),
                                    plan_version: r.plan_version,
                                    step: r.step.clone()?,
                                    state: r.state.clone(),
                                    runs: r.runs,
                                })
                            })
                        })
                        .collect();
                    Some(impact(&server, &new, &changes, &in_flight))
                }
                Err(e @ ClientError::Unreachable { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(Outcome::Unreachable);
                }
                Err(e) => return Err(miette::miette!("{e}")),
            }
        }
    };

    let text = match args.format {
        DiffFormat::Human => human(&name, &base, &changes, impact.as_ref()),
        DiffFormat::Markdown => markdown(&name, &base, &changes, impact.as_ref()),
        DiffFormat::Json => {
            let report = JsonReport {
                project: &name,
                base: &base,
                diff: &changes,
                impact: impact.as_ref(),
            };
            let mut text = serde_json::to_string_pretty(&report)
                .map_err(|e| miette::miette!("cannot print the diff: {e}"))?;
            text.push('\n');
            text
        }
    };
    match &args.output {
        Some(file) => std::fs::write(file, &text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", file.display()))?,
        None => render::out(&text),
    }
    Ok(Outcome::Ok)
}

/// `cairn diff X`: X is the path when it is one on disk and no revision; otherwise the
/// revision.
fn revision_and_path(args: &DiffArgs) -> (Option<String>, PathBuf) {
    match (&args.revision, &args.path) {
        (Some(rev), None) if Path::new(rev).exists() && !Git::is_revision(Path::new("."), rev) => {
            (None, PathBuf::from(rev))
        }
        (rev, path) => (
            rev.clone(),
            path.clone().unwrap_or_else(|| PathBuf::from(".")),
        ),
    }
}

fn base_errors(base: &Base, project: &Project, errors: &[(usize, cairn_grammar::Diagnostic)]) {
    let all: Vec<_> = errors.iter().map(|(_, d)| d).collect();
    eprintln!(
        "error: the project does not compile at `{}` ({}): {}",
        base.revision,
        short(&base.commit),
        render::counts(&all)
    );
    for (file, diagnostic) in errors.iter().take(10) {
        let source = &project.sources[*file];
        let line = diagnostic.labels.first().map(|l| {
            source
                .text
                .get(..l.span.start)
                .map_or(1, |t| t.matches('\n').count() + 1)
        });
        eprintln!(
            "  {}:{}: {} {}",
            source.path.display(),
            line.map_or_else(String::new, |l| l.to_string()),
            diagnostic.code,
            diagnostic.message
        );
    }
    eprintln!("help: compare with a revision where it compiles: `cairn diff REV`");
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Git, run in one work tree.
struct Git {
    top: PathBuf,
    /// The project's folder relative to the top, `/`-terminated (empty at the top).
    prefix: String,
}

impl Git {
    fn at(dir: &Path) -> miette::Result<Git> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let top = run_git(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| {
            miette::miette!(
                help = "`cairn diff` compares the project with a git revision",
                "`{}` is not in a git work tree: {e}",
                dir.display()
            )
        })?;
        let prefix = run_git(dir, &["rev-parse", "--show-prefix"])
            .map_err(|e| miette::miette!("git: {e}"))?;
        Ok(Git {
            top: PathBuf::from(top),
            prefix,
        })
    }

    fn is_revision(dir: &Path, rev: &str) -> bool {
        run_git(
            dir,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
        )
        .is_ok()
    }

    fn commit_of(&self, rev: &str) -> Option<String> {
        run_git(
            &self.top,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
        )
        .ok()
    }

    fn base(&self, revision: Option<&str>) -> miette::Result<Base> {
        if let Some(rev) = revision {
            let commit = self.commit_of(rev).ok_or_else(|| {
                miette::miette!(
                    help = "name a branch, tag or commit that exists here (`git log --oneline`); in a shallow clone, fetch it first",
                    "revision `{rev}` does not exist"
                )
            })?;
            return Ok(Base {
                revision: rev.to_string(),
                commit,
            });
        }
        let main = ["main", "origin/main"]
            .into_iter()
            .find(|b| self.commit_of(b).is_some())
            .ok_or_else(|| {
                miette::miette!(
                    help = "name the revision to compare with: `cairn diff REV`",
                    "neither `main` nor `origin/main` exists, so there is no default revision to compare with"
                )
            })?;
        match run_git(&self.top, &["merge-base", "HEAD", main]) {
            Ok(commit) => Ok(Base {
                revision: format!("merge-base(HEAD, {main})"),
                commit,
            }),
            Err(_) => {
                let shallow = run_git(&self.top, &["rev-parse", "--is-shallow-repository"])
                    .is_ok_and(|s| s == "true");
                if shallow {
                    Err(miette::miette!(
                        help = "fetch the history (`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout), or name a revision: `cairn diff REV`",
                        "this is a shallow clone without the merge base of `HEAD` and `{main}`"
                    ))
                } else {
                    Err(miette::miette!(
                        help = "name the revision to compare with: `cairn diff REV`",
                        "`HEAD` and `{main}` have no common ancestor"
                    ))
                }
            }
        }
    }

    /// The project's files at `commit`, by path relative to the project folder.
    fn files_at(&self, commit: &str) -> miette::Result<BTreeMap<String, Vec<u8>>> {
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", commit];
        if !self.prefix.is_empty() {
            args.push("--");
            args.push(&self.prefix);
        }
        let listing = git_bytes(&self.top, &args, None)
            .map_err(|e| miette::miette!("git ls-tree {commit}: {e}"))?;
        let mut wanted: Vec<(String, String)> = Vec::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut meta = meta.split(' ');
            let (_mode, kind, oid) = (meta.next(), meta.next(), meta.next());
            let (Some("blob"), Some(oid)) = (kind, oid) else {
                continue;
            };
            let Some(relative) = path.strip_prefix(&self.prefix) else {
                continue;
            };
            if wanted_file(relative) {
                wanted.push((relative.to_string(), oid.to_string()));
            }
        }
        let mut input = String::new();
        for (_, oid) in &wanted {
            input.push_str(oid);
            input.push('\n');
        }
        let blobs = cat_blobs(&self.top, input, wanted.len())
            .map_err(|e| miette::miette!("git cat-file: {e}"))?;
        Ok(wanted.into_iter().map(|(p, _)| p).zip(blobs).collect())
    }
}

/// Sources, the manifest and template assets; nothing else is read.
fn wanted_file(path: &str) -> bool {
    let ending = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    path == project::MANIFEST
        || matches!(
            ending.as_deref(),
            Some("cairn" | "html" | "htm" | "txt" | "md" | "jinja" | "j2" | "mjml")
        )
}

fn run_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    git_bytes(dir, args, None).map(|out| String::from_utf8_lossy(&out).trim().to_string())
}

fn git_bytes(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .map_err(|e| format!("cannot talk to git: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if message.is_empty() {
            format!("git exited with {}", out.status)
        } else {
            message
        })
    }
}

/// The contents of `count` blobs named one per line in `input`, in order, through one
/// `git cat-file --batch`.
fn cat_blobs(top: &Path, input: String, count: usize) -> Result<Vec<Vec<u8>>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .current_dir(top)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("git's input is not a pipe")?;
    // Written from another thread: git answers while it reads, and a full pipe each way
    // would otherwise block both.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = child.stdout.take().ok_or("git's output is not a pipe")?;
    let mut reader = BufReader::new(stdout);
    let mut blobs = Vec::with_capacity(count);
    for _ in 0..count {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .map_err(|e| format!("reading git's answer: {e}"))?;
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unexpected answer from git: {}", header.trim()))?;
        let mut blob = vec![0; size + 1];
        reader
            .read_exact(&mut blob)
            .map_err(|e| format!("reading git's answer: {e}"))?;
        blob.pop();
        blobs.push(blob);
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok(blobs)
}

/// The runs in flight the change touches, as sentences: stranded first, then moved by
/// a migration, then those that continue at a changed step, then the drained.
pub fn impact(server: &str, new: &Plan, changes: &PlanDiff, in_flight: &[InFlight]) -> Impact {
    let t = transition(new, in_flight);
    let contacts = |n: i64| {
        if n == 1 {
            "1 contact is".to_string()
        } else {
            format!("{} contacts are", group_thousands(n))
        }
    };
    let mut lines = Vec::new();
    for s in &t.stranded {
        let removed = s.reason == "the new plan removes it";
        let (what, fix) = if removed {
            (
                "which this change removes".to_string(),
                format!("`{}`", migrate_line(&s.at.step)),
            )
        } else {
            (s.reason.clone(), "`migrate`".to_string())
        };
        lines.push(format!(
            "{} waiting at `{}.{}` (version {}), {what}: the deploy will be refused without {fix}, `drain` or `--strand`",
            contacts(s.at.runs),
            s.at.journey,
            s.at.step,
            s.at.plan_version
        ));
    }
    for m in t.moves.iter().filter(|m| m.migrated) {
        lines.push(format!(
            "{} waiting at `{}.{}` (version {}), which this change removes: `migrate` moves them to `{}`",
            contacts(m.from.runs),
            m.from.journey,
            m.from.step,
            m.from.plan_version,
            m.to
        ));
    }
    for m in t.moves.iter().filter(|m| !m.migrated) {
        let changed = changes.journeys.iter().any(|j| {
            j.name == m.from.journey
                && j.steps
                    .iter()
                    .any(|s| s.kind == ChangeKind::Changed && s.id.as_str() == m.to)
        });
        if changed {
            lines.push(format!(
                "{} waiting at `{}.{}`, which this change modifies: they continue with the new version",
                contacts(m.from.runs),
                m.from.journey,
                m.from.step
            ));
        }
    }
    for d in &t.drained {
        lines.push(format!(
            "{} waiting at `{}.{}` finish on version {} (`drain`)",
            contacts(d.runs),
            d.journey,
            d.step,
            d.plan_version
        ));
    }
    Impact {
        server: server.to_string(),
        lines,
        transition: t,
    }
}

fn header_line(project: &str, base: &Base) -> String {
    format!(
        "`{project}`: {} ({}) → the work tree",
        base.revision,
        short(&base.commit)
    )
}

fn unified(part: &str, old: Option<&str>, new: Option<&str>) -> String {
    similar::TextDiff::from_lines(old.unwrap_or(""), new.unwrap_or(""))
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{part}"), &format!("b/{part}"))
        .to_string()
}

fn sign(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Added => '+',
        ChangeKind::Removed => '-',
        ChangeKind::Changed => '~',
    }
}

/// The text for people.
pub fn human(project: &str, base: &Base, d: &PlanDiff, impact: Option<&Impact>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cairn diff {}", header_line(project, base));
    if d.is_empty() {
        let _ = writeln!(out, "\nno changes to the plan");
    }
    if let Some(impact) = impact {
        let _ = writeln!(out, "\nin flight on {}", impact.server);
        if impact.lines.is_empty() {
            let _ = writeln!(out, "  no run in flight is affected");
        }
        for line in &impact.lines {
            let _ = writeln!(out, "  ! {line}");
        }
    }
    if !d.breaking.is_empty() {
        let _ = writeln!(out, "\nbreaking changes to stored data");
        for b in &d.breaking {
            let _ = writeln!(out, "  ! {}: {}", b.subject, b.reason);
        }
    }
    if !d.journeys.is_empty() {
        let _ = writeln!(out, "\njourneys");
        for j in &d.journeys {
            let _ = writeln!(out, "  {} {}", sign(j.kind), j.name);
            for detail in &j.details {
                let _ = writeln!(out, "      {detail}");
            }
            for s in &j.steps {
                let _ = writeln!(out, "      {} step `{}`: {}", sign(s.kind), s.id, s.step);
                for detail in &s.details {
                    let _ = writeln!(out, "          {detail}");
                }
            }
        }
    }
    if !d.templates.is_empty() {
        let _ = writeln!(out, "\ntemplates");
        for t in &d.templates {
            let _ = writeln!(out, "  {} {}", sign(t.kind), t.name);
            for detail in &t.details {
                let _ = writeln!(out, "      {detail}");
            }
            if t.kind == ChangeKind::Changed {
                for p in &t.parts {
                    for line in unified(&p.part, p.old.as_deref(), p.new.as_deref()).lines() {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
        }
    }
    for (title, changes) in sections(d) {
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for c in changes {
            let _ = writeln!(out, "  {} {}", sign(c.kind), c.name);
            for detail in &c.details {
                let _ = writeln!(out, "      {detail}");
            }
        }
    }
    if !d.policies.is_empty() {
        let _ = writeln!(out, "\npolicies");
        for p in &d.policies {
            let _ = writeln!(out, "  ~ {p}");
        }
    }
    out
}

fn sections(d: &PlanDiff) -> [(&'static str, &Vec<cairn_plan::diff::Change>); 7] {
    [
        ("segments", &d.segments),
        ("scores", &d.scores),
        ("events", &d.events),
        ("contact fields", &d.contact),
        ("records", &d.records),
        ("consents", &d.consents),
        ("tags", &d.tags),
    ]
}

/// A table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Markdown for a pull-request comment.
pub fn markdown(project: &str, base: &Base, d: &PlanDiff, impact: Option<&Impact>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Cairn plan changes: `{project}`\n");
    let _ = writeln!(
        out,
        "Compared with `{}` at `{}`.",
        base.revision,
        short(&base.commit)
    );
    if d.is_empty() {
        let _ = writeln!(out, "\nNo changes to the plan.");
    }
    if let Some(impact) = impact {
        let _ = writeln!(out, "\n### Contacts in flight\n");
        if impact.lines.is_empty() {
            let _ = writeln!(out, "No run in flight on the daemon is affected.");
        }
        for line in &impact.lines {
            let _ = writeln!(out, "- {line}");
        }
    }
    if !d.breaking.is_empty() {
        let _ = writeln!(out, "\n### ⚠️ Breaking changes to stored data\n");
        let _ = writeln!(out, "| field | change |\n|---|---|");
        for b in &d.breaking {
            let _ = writeln!(out, "| `{}` | {} |", cell(&b.subject), cell(&b.reason));
        }
    }
    if !d.journeys.is_empty() {
        let _ = writeln!(out, "\n### Journeys");
        for j in &d.journeys {
            let _ = writeln!(out, "\n#### `{}` ({})\n", j.name, j.kind.as_str());
            for detail in &j.details {
                let _ = writeln!(out, "- {}", detail);
            }
            if !j.steps.is_empty() {
                if !j.details.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "| step | | what | details |\n|---|---|---|---|");
                for s in &j.steps {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | `{}` | {} |",
                        cell(s.id.as_str()),
                        s.kind.as_str(),
                        cell(&s.step),
                        cell(&s.details.join("; "))
                    );
                }
            }
        }
    }
    if !d.templates.is_empty() {
        let _ = writeln!(out, "\n### Templates");
        for t in &d.templates {
            let _ = writeln!(out, "\n#### `{}` ({})\n", t.name, t.kind.as_str());
            for detail in &t.details {
                let _ = writeln!(out, "- {detail}");
            }
            if t.kind == ChangeKind::Changed && !t.parts.is_empty() {
                let _ = writeln!(out, "```diff");
                for p in &t.parts {
                    out.push_str(&unified(&p.part, p.old.as_deref(), p.new.as_deref()));
                }
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                let _ = writeln!(out, "```");
            }
        }
    }
    let mut rows = Vec::new();
    for (title, changes) in sections(d) {
        for c in changes {
            rows.push(format!(
                "| {title} | `{}` | {} | {} |",
                cell(&c.name),
                c.kind.as_str(),
                cell(&c.details.join("; "))
            ));
        }
    }
    for p in &d.policies {
        rows.push(format!("| policies | | changed | {} |", cell(p)));
    }
    if !rows.is_empty() {
        let _ = writeln!(out, "\n### Schema, segments and scores\n");
        let _ = writeln!(out, "| kind | name | | details |\n|---|---|---|---|");
        for row in rows {
            let _ = writeln!(out, "{row}");
        }
    }
    out
}
