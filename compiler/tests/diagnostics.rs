//! The diagnostics catalogue, one case at a time.
//!
//! Every file in `tests/diagnostics/` is a small project with one mistake a marketer
//! could make, named `CODE-short-name.cairn` after the diagnostic it must produce. Its
//! snapshot holds the source and every diagnostic rendered as `cairn check` shows them,
//! so a reviewer reads the code, the message, the underlined text and the help together.
//!
//! Directives in comments shape the project around a case:
//!
//! - `// asset PATH: TEXT` adds a template file (`html file "PATH"`) holding TEXT;
//! - `// currency: EUR` sets the project's default currency, as `cairn.toml` would;
//! - `// file NAME.cairn` (on a line of its own) starts a second source file: what
//!   follows, up to the next such line, is that file.
//! - `// previous NAME.cairn` starts a file of the *previous* version of the project:
//!   the case's `migrate` lines are checked against the plan built from those files,
//!   as `cairn build --previous` and `cairn deploy` check them.
//!
//! A case that passes the checks is also built, so what only the build finds (the
//! migration codes) shows too.
//!
//! Adding a case is adding a file; `INSTA_UPDATE=always cargo test -p cairn-compiler
//! --test diagnostics` writes its snapshot, which is then read before it is accepted.

use cairn_compiler::build::{build_plan, build_plan_after};
use cairn_compiler::check::check_project;
use cairn_compiler::codes;
use cairn_compiler::project::{self, Manifest, Project, SourceText};
use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, Report};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics")
}

/// A case file read as a project, its directives applied, and the previous version's
/// project when the case has one.
fn load_case(path: &Path) -> (Project, Option<Project>) {
    let bytes = std::fs::read(path).expect("case file is readable");
    let file_name = path
        .file_name()
        .expect("case file has a name")
        .to_string_lossy()
        .into_owned();
    // Not-UTF-8 cases go through the loader the command line uses.
    if std::str::from_utf8(&bytes).is_err() {
        let mut source = project::read_source(path).expect("case file is readable");
        source.path = PathBuf::from(&file_name);
        let project = Project {
            root: cases_dir(),
            manifest: Manifest::default(),
            sources: vec![source],
            assets: BTreeMap::new(),
        };
        return (project, None);
    }
    let text = String::from_utf8(bytes).expect("checked above");
    let mut manifest = Manifest::default();
    let mut assets = BTreeMap::new();
    let mut files: Vec<(String, String)> = vec![(file_name, String::new())];
    let mut previous: Vec<(String, String)> = Vec::new();
    let mut in_previous = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(rest) = trimmed.strip_prefix("// asset ") {
            let (asset, body) = rest
                .split_once(": ")
                .expect("an asset line reads `// asset PATH: TEXT`");
            assets.insert(asset.to_string(), body.to_string());
        } else if let Some(currency) = trimmed.strip_prefix("// currency: ") {
            manifest.project.currency = Some(currency.to_string());
        } else if let Some(name) = trimmed.strip_prefix("// file ") {
            files.push((name.to_string(), String::new()));
            in_previous = false;
            continue;
        } else if let Some(name) = trimmed.strip_prefix("// previous ") {
            previous.push((name.to_string(), String::new()));
            in_previous = true;
            continue;
        }
        let current = if in_previous {
            &mut previous
        } else {
            &mut files
        };
        current
            .last_mut()
            .expect("there is always a current file")
            .1
            .push_str(line);
    }
    let project = |files: Vec<(String, String)>| Project {
        root: cases_dir(),
        manifest: manifest.clone(),
        sources: files
            .into_iter()
            .map(|(path, text)| SourceText {
                path: PathBuf::from(path),
                text,
                utf8_error: None,
            })
            .collect(),
        assets: assets.clone(),
    };
    let previous = (!previous.is_empty()).then(|| project(previous));
    (project(files), previous)
}

/// The code a case is named after: `E0101-unknown-event.cairn` gives `E0101`.
fn code_of(path: &Path) -> String {
    let name = path
        .file_name()
        .expect("case file has a name")
        .to_string_lossy();
    name.split('-')
        .next()
        .expect("split yields at least one part")
        .to_string()
}

fn render(diagnostic: &cairn_compiler::Diagnostic, file: &str, text: &str) -> String {
    let report =
        Report::new(diagnostic.clone()).with_source_code(NamedSource::new(file, text.to_string()));
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, report.as_ref())
        .expect("rendering to a string cannot fail");
    out
}

#[test]
fn catalogue() {
    // Collected rather than asserted case by case, so one run names every wrong case.
    let mut wrong: Vec<String> = Vec::new();
    insta::glob!("diagnostics/*.cairn", |path| {
        let (project, previous) = load_case(path);
        let code = code_of(path);
        let mut reports = check_project(&project);
        if !reports
            .iter()
            .any(|r| r.diagnostics.iter().any(|d| d.is_error()))
        {
            let previous = previous.map(|p| match build_plan(&p, None) {
                Ok(built) => built.plan,
                Err(errors) => panic!("the previous version of {path:?} builds: {errors:?}"),
            });
            if let Err(errors) = build_plan_after(&project, None, previous.as_ref()) {
                reports.clear();
                for (index, diagnostic) in errors {
                    match reports.iter_mut().find(|r| r.index == index) {
                        Some(report) => report.diagnostics.push(diagnostic),
                        None => reports.push(cairn_compiler::check::FileReport {
                            index,
                            diagnostics: vec![diagnostic],
                        }),
                    }
                }
            }
        }
        let mut snapshot = String::new();
        let mut found: BTreeSet<&str> = BTreeSet::new();
        let several = project.sources.len() > 1;
        for source in &project.sources {
            if several {
                snapshot.push_str(&format!("----- SOURCE {}\n", source.path.display()));
            } else {
                snapshot.push_str("----- SOURCE\n");
            }
            snapshot.push_str(&source.text);
            if !source.text.ends_with('\n') {
                snapshot.push('\n');
            }
        }
        snapshot.push_str("----- DIAGNOSTICS\n");
        for report in &reports {
            let source = &project.sources[report.index];
            let name = source.path.display().to_string();
            for diagnostic in &report.diagnostics {
                found.insert(diagnostic.code);
                snapshot.push_str(&render(diagnostic, &name, &source.text));
                snapshot.push('\n');
            }
        }
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!(snapshot);
        });
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if !found.contains(code.as_str()) {
            wrong.push(format!("{name}: expected {code}, found {found:?}"));
        }
    });
    assert!(
        wrong.is_empty(),
        "cases without their code:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_code_has_a_case() {
    let covered: BTreeSet<String> = std::fs::read_dir(cases_dir())
        .expect("the cases folder is readable")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "cairn"))
        .map(|path| code_of(&path))
        .collect();
    let missing: Vec<&str> = codes::ALL
        .iter()
        .map(|info| info.code)
        .filter(|code| !covered.contains(*code))
        .collect();
    assert!(missing.is_empty(), "codes without a case: {missing:?}");
    let unknown: Vec<&String> = covered
        .iter()
        .filter(|code| codes::lookup(code).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "cases named after codes the catalogue does not have: {unknown:?}"
    );
}

#[test]
fn examples_check_clean() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples/ is readable")
        .map(|entry| entry.expect("a readable entry").path())
        // `examples/ci` holds a workflow, not a project.
        .filter(|path| path.join("cairn.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let project = project::load(&dir).expect("an example loads");
        let mut findings = String::new();
        for report in check_project(&project) {
            let source = &project.sources[report.index];
            for diagnostic in &report.diagnostics {
                findings.push_str(&render(
                    diagnostic,
                    &source.path.display().to_string(),
                    &source.text,
                ));
            }
        }
        assert!(
            findings.is_empty(),
            "{} should check clean:\n{findings}",
            dir.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 14,
        "expected the 14 seed examples, found {checked}"
    );
}
