//! `cairn test`: runs the `test` blocks of projects on a virtual clock, with the same
//! engine as the daemon.

use super::CommandResult;
use crate::Outcome;
use crate::cli::{TestArgs, TestFormat, paths_or_current};
use crate::render;
use cairn_compiler::build::{build_plan, relative_path};
use cairn_compiler::lower_tests::lower_tests;
use cairn_compiler::project;
use cairn_runtime::testkit::{self, TestResult, format_time};
use std::fmt::Write as _;
use std::time::Instant;

struct ProjectResults {
    name: String,
    results: Vec<TestResult>,
    seconds: f64,
}

pub fn run(args: &TestArgs) -> CommandResult {
    let projects = project::discover(&paths_or_current(&args.paths))?;
    let mut all: Vec<ProjectResults> = Vec::new();
    let mut broken = false;
    for project in &projects {
        let started = Instant::now();
        let built = match build_plan(project, None) {
            Ok(built) => built,
            Err(errors) => {
                for (file, d) in &errors {
                    let source = &project.sources[*file];
                    eprintln!("{}", render::diagnostic(d, &source.path, &source.text));
                }
                eprintln!(
                    "`{}` does not compile; its tests did not run",
                    project.name()
                );
                broken = true;
                continue;
            }
        };
        let mut results = Vec::new();
        for (source, tree) in project.sources.iter().zip(&built.trees) {
            let path = relative_path(project, &source.path);
            for case in lower_tests(&path, &source.text, &tree.items, args.filter.as_deref()) {
                results.push(testkit::run(&built.plan, &case));
            }
        }
        all.push(ProjectResults {
            name: project.name(),
            results,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let text = match args.format {
        TestFormat::Human => human(&all),
        TestFormat::Junit => junit(&all),
        TestFormat::Jsonl => jsonl(&all),
    };
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display()))?,
        None => render::out(&text),
    }
    let total: usize = all.iter().map(|p| p.results.len()).sum();
    let failed: usize = all
        .iter()
        .flat_map(|p| &p.results)
        .filter(|r| !r.passed())
        .count();
    if args.format != TestFormat::Human || args.output.is_some() {
        eprintln!("{} passed, {failed} failed", total - failed);
    }
    Ok(if broken {
        Outcome::Usage
    } else if failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

fn human(all: &[ProjectResults]) -> String {
    let mut out = String::new();
    let (mut passed, mut failed) = (0, 0);
    for project in all {
        let _ = writeln!(
            out,
            "{} ({} tests, {:.0} ms)",
            project.name,
            project.results.len(),
            project.seconds * 1000.0
        );
        for r in &project.results {
            if r.passed() {
                passed += 1;
                let _ = writeln!(out, "  ok    {}", r.name);
                continue;
            }
            failed += 1;
            let _ = writeln!(out, "  FAIL  {}  ({})", r.name, r.location);
            for f in &r.failures {
                let at = if f.location.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", f.location)
                };
                let _ = writeln!(out, "        {at}{}", f.message);
            }
            let _ = writeln!(out, "        timeline:");
            for o in &r.timeline {
                let _ = writeln!(out, "          {}", timeline_line(o));
            }
        }
    }
    let _ = writeln!(out, "\n{passed} passed, {failed} failed");
    out
}

fn timeline_line(o: &cairn_runtime::model::Outcome) -> String {
    let detail = match &o.detail {
        serde_json::Value::Object(map) if !map.is_empty() => {
            let parts: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    serde_json::Value::Number(n) if k == "until" => {
                        format!(
                            "{k}={}",
                            n.as_i64().map_or_else(|| n.to_string(), format_time)
                        )
                    }
                    other => format!("{k}={other}"),
                })
                .collect();
            format!(" {}", parts.join(" "))
        }
        _ => String::new(),
    };
    let place = match (&o.journey, &o.step) {
        (Some(j), Some(s)) => format!(" {j}.{s}"),
        (Some(j), None) => format!(" {j}"),
        _ => String::new(),
    };
    format!(
        "{}  {:<9} {}{place}{detail}",
        format_time(o.at),
        o.kind,
        o.contact_id
    )
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn junit(all: &[ProjectResults]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for project in all {
        let failures = project.results.iter().filter(|r| !r.passed()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
            xml(&project.name),
            project.results.len(),
            project.seconds
        );
        for r in &project.results {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                xml(&project.name),
                xml(&r.name),
                xml(&r.location)
            );
            if r.passed() {
                out.push_str("/>\n");
                continue;
            }
            let messages: Vec<String> = r
                .failures
                .iter()
                .map(|f| format!("{} {}", f.location, f.message))
                .collect();
            let timeline: Vec<String> = r.timeline.iter().map(timeline_line).collect();
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\">{}\n\ntimeline:\n{}</failure>\n    </testcase>",
                xml(r.failures.first().map_or("", |f| f.message.as_str())),
                xml(&messages.join("\n")),
                xml(&timeline.join("\n"))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn jsonl(all: &[ProjectResults]) -> String {
    let mut out = String::new();
    for project in all {
        for r in &project.results {
            for o in &r.timeline {
                let line = serde_json::json!({
                    "project": project.name, "test": r.name, "at": format_time(o.at), "kind": o.kind,
                    "contact": o.contact_id, "journey": o.journey, "run": o.run_id, "step": o.step, "detail": o.detail,
                });
                let _ = writeln!(out, "{line}");
            }
            let result = serde_json::json!({
                "project": project.name, "test": r.name, "kind": "result", "passed": r.passed(),
                "failures": r.failures.iter().map(|f| serde_json::json!({"location": f.location, "message": f.message})).collect::<Vec<_>>(),
            });
            let _ = writeln!(out, "{result}");
        }
    }
    out
}
