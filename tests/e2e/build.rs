//! `cairn build` as a user runs it.

use crate::support::{project, repo_root, run_in};
use cairn_plan::Plan;
use std::path::Path;
use std::process::Command;

const SHOP: &str = "contact {\n  email email?\n}\nconsent email_marketing for email\nevent signup { form string }\n\ntemplate hello email {\n  subject \"Hi\"\n  html file \"templates/hello.html\"\n}\n\njourney welcome {\n  when signup\n  audience consented(email_marketing)\n  hi: send email hello\n}\n";
const HELLO: &str = "<p>Hello! <a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>\n";

fn shop() -> tempfile::TempDir {
    project(&[
        (
            "cairn.toml",
            b"[project]\nname = \"shop\"\ncurrency = \"EUR\"\n",
        ),
        ("shop.cairn", SHOP.as_bytes()),
        ("templates/hello.html", HELLO.as_bytes()),
    ])
}

#[test]
fn builds_an_example_to_a_file() {
    let example = repo_root().join("examples/abandoned-cart");
    let out = tempfile::tempdir().expect("a temporary directory");
    let file = out.path().join("plan.json");
    let file_arg = file.display().to_string();
    let run = run_in(&example, &["build", "-o", &file_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let text = std::fs::read_to_string(&file).expect("the plan was written");
    let plan = Plan::from_json(&text).expect("the plan loads");
    assert!(plan.verify_hash());
    assert!(!plan.journeys.is_empty());
    assert!(
        run.stderr
            .contains(&format!("built plan for `{}`: ", plan.project)),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("hash {}…", &plan.content_hash[..12])),
        "{}",
        run.stderr
    );
}

#[test]
fn every_example_builds() {
    let examples = repo_root().join("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cairn.toml").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let run = run_in(&dir, &["build"]);
        assert_eq!(run.code, 0, "{}: {}", dir.display(), run.stderr);
        Plan::from_json(&run.stdout)
            .unwrap_or_else(|e| panic!("{}: the plan does not load: {e}", dir.display()));
    }
}

#[test]
fn builds_to_stdout_with_inlined_templates() {
    let dir = shop();
    let run = run_in(dir.path(), &["build"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = Plan::from_json(&run.stdout).expect("stdout is a plan");
    assert_eq!(plan.project, "shop");
    assert_eq!(plan.default_currency.as_deref(), Some("EUR"));
    assert_eq!(plan.templates["hello"].parts["html"].source, HELLO);
    assert_eq!(plan.git_commit, None, "a temporary folder is not in git");
    let step = &plan.journeys["welcome"].steps[&"hi".into()];
    let source = step
        .source
        .as_ref()
        .expect("steps know where they are written");
    assert_eq!(source.file, "shop.cairn");
    assert!(
        run.stderr
            .contains("built plan for `shop`: 1 journey, 1 template, hash "),
        "{}",
        run.stderr
    );
}

#[test]
fn errors_stop_the_build() {
    let dir = project(&[("shop.cairn", b"journey a {\n  wait 5x\n}\n")]);
    let run = run_in(dir.path(), &["build", "-o", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("E0005"), "{}", run.stderr);
    assert!(run.stderr.contains("cannot build"), "{}", run.stderr);
    assert!(!dir.path().join("plan.json").exists());
    assert!(run.stdout.is_empty());
}

#[test]
fn a_missing_template_file_stops_the_build() {
    let dir = project(&[
        ("cairn.toml", b"[project]\nname = \"shop\"\n"),
        ("shop.cairn", SHOP.as_bytes()),
    ]);
    let run = run_in(dir.path(), &["build"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("templates/hello.html"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_folder_of_projects_is_a_usage_error() {
    let run = run_in(&repo_root(), &["build", "examples"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("one at a time"), "{}", run.stderr);
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let dir = project(&[]);
    let run = run_in(dir.path(), &["build", "nowhere"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

fn git(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn records_the_git_commit_and_dirtiness() {
    let dir = shop();
    if !git(dir.path(), &["init", "-q"]) {
        eprintln!("git is not available; the git commit of a build was not tested");
        return;
    }
    assert!(git(dir.path(), &["add", "."]));
    assert!(git(dir.path(), &["commit", "-q", "-m", "shop"]));
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir.path())
        .output()
        .expect("git runs");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();

    let clean = run_in(dir.path(), &["build"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    let plan = Plan::from_json(&clean.stdout).expect("a plan");
    assert_eq!(plan.git_commit.as_deref(), Some(head.as_str()));

    std::fs::write(
        dir.path().join("shop.cairn"),
        format!("{SHOP}\n// edited\n"),
    )
    .expect("edit a file");
    let dirty = run_in(dir.path(), &["build"]);
    assert_eq!(dirty.code, 0, "{}", dirty.stderr);
    let edited = Plan::from_json(&dirty.stdout).expect("a plan");
    assert_eq!(
        edited.git_commit.as_deref(),
        Some(format!("{head}-dirty").as_str())
    );
    assert_eq!(
        edited.content_hash, plan.content_hash,
        "a comment changes neither the plan's content nor its hash"
    );
}
