//! `cairn check` and `cairn fmt` as a user runs them.

use crate::support::{project, repo_root, run_in};

const GOOD: &str = "contact {\n  email email?\n}\nconsent email_marketing for email\n\ntemplate hello email {\n  subject \"Hi\"\n  html \"<p>Hi {{ unsubscribe_url }}</p>\"\n}\n\njourney welcome {\n  when contact created\n  audience consented(email_marketing)\n  send email hello\n}\n";

#[test]
fn clean_project_exits_zero() {
    let dir = project(&[("shop.cairn", GOOD.as_bytes())]);
    let run = run_in(dir.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("checked 1 project, 1 file: no problems"),
        "{}",
        run.stderr
    );
}

#[test]
fn syntax_error_exits_one_with_location() {
    let dir = project(&[("shop.cairn", b"journey a {\n  wait 5x\n}\n")]);
    let run = run_in(dir.path(), &["check", "shop.cairn"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("E0005"), "{}", run.stdout);
    assert!(
        run.stdout.contains("unknown duration unit `x`"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("shop.cairn:2:9"), "{}", run.stdout);
}

#[test]
fn missing_path_is_a_usage_error() {
    let dir = project(&[]);
    let run = run_in(dir.path(), &["check", "nowhere"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("`nowhere` does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn directory_without_sources_is_a_usage_error() {
    let dir = project(&[("notes.txt", b"hello")]);
    let run = run_in(dir.path(), &["check", "."]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("has no `.cairn` files"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_flag_is_a_usage_error() {
    let dir = project(&[]);
    let run = run_in(dir.path(), &["check", "--frobnicate"]);
    assert_eq!(run.code, 2);
}

#[test]
fn non_utf8_file_gets_a_located_error() {
    let dir = project(&[("bad.cairn", b"tag a\n\xff\xfe\n")]);
    let run = run_in(dir.path(), &["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("not valid UTF-8"), "{}", run.stdout);
    assert!(run.stdout.contains("bad.cairn:2:1"), "{}", run.stdout);
}

#[test]
fn json_format_lists_each_diagnostic() {
    let dir = project(&[("a.cairn", b"segment s { x >= }\n")]);
    let run = run_in(dir.path(), &["check", "--format", "json"]);
    assert_eq!(run.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("json output");
    assert_eq!(doc["errors"], 1);
    assert_eq!(doc["diagnostics"][0]["code"], "E0001");
    assert_eq!(doc["diagnostics"][0]["start"]["line"], 1);
    assert_eq!(doc["diagnostics"][0]["start"]["column"], 18);
}

#[test]
fn folder_of_projects_checks_each() {
    let dir = project(&[
        ("one/a.cairn", GOOD.as_bytes()),
        ("two/cairn.toml", b"[project]\nname = \"two\"\n"),
        ("two/b.cairn", b"tag vip\n"),
    ]);
    let run = run_in(dir.path(), &["check", "."]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("checked 2 projects, 2 files"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_manifest_is_reported_with_its_location() {
    let dir = project(&[
        ("cairn.toml", b"[project]\nnmae = \"x\"\n"),
        ("a.cairn", b"tag vip\n"),
    ]);
    let run = run_in(dir.path(), &["check"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("invalid `cairn.toml`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nmae"), "{}", run.stderr);
}

#[test]
fn fmt_check_reports_unformatted_files_and_fmt_fixes_them() {
    let dir = project(&[("a.cairn", b"tag   vip\nconsent  e for   email\n")]);
    let run = run_in(dir.path(), &["fmt", "--check"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("a.cairn"), "{}", run.stdout);
    let run = run_in(dir.path(), &["fmt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(dir.path().join("a.cairn")).expect("formatted file");
    assert_eq!(text, "tag vip\nconsent e for email\n");
    assert_eq!(run_in(dir.path(), &["fmt", "--check"]).code, 0);
}

#[test]
fn fmt_refuses_files_with_syntax_errors() {
    let dir = project(&[("a.cairn", b"journey {\n")]);
    let run = run_in(dir.path(), &["fmt"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        std::fs::read(dir.path().join("a.cairn")).expect("file"),
        b"journey {\n"
    );
}

#[test]
fn examples_are_clean_and_formatted() {
    let examples = repo_root().join("examples");
    let run = run_in(
        &repo_root(),
        &[
            "check",
            examples.to_str().expect("utf-8 path"),
            "--deny-warnings",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = run_in(
        &repo_root(),
        &["fmt", "--check", examples.to_str().expect("utf-8 path")],
    );
    assert_eq!(run.code, 0, "unformatted examples:\n{}", run.stdout);
}

#[test]
fn version_and_help() {
    let dir = project(&[]);
    let run = run_in(dir.path(), &["--version"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("cairn "), "{}", run.stdout);
    let run = run_in(dir.path(), &["help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("check"), "{}", run.stdout);
}

const BROKEN: &str = "contact {\n  email email?\n}\nconsent email_marketing for email\n\njourney cart {\n  when cart_updatd\n  audience consented(email_marketing)\n  send email remindr\n}\n";

#[test]
fn semantic_errors_name_the_problem_and_suggest_a_fix() {
    let dir = project(&[
        ("a.cairn", BROKEN.as_bytes()),
        ("b.cairn", b"event cart_updated { cart_id string }\ntemplate reminder email transactional {\n  subject \"Hi\"\n  html \"<p>Hi</p>\"\n}\n"),
    ]);
    let run = run_in(dir.path(), &["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("unknown event `cart_updatd`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("did you mean `cart_updated`?"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("unknown template `remindr`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("did you mean `reminder`?"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("a.cairn:7:8"), "{}", run.stdout);
}

#[test]
fn github_format_prints_workflow_commands() {
    let dir = project(&[("a.cairn", BROKEN.as_bytes())]);
    let run = run_in(dir.path(), &["check", "--format", "github"]);
    assert_eq!(run.code, 1);
    let first = run.stdout.lines().next().expect("an annotation");
    assert!(
        first.starts_with("::error file=a.cairn,line=7,col=8,"),
        "{first}"
    );
    assert!(
        first.contains("title=E0101 unknown event::unknown event `cart_updatd`"),
        "{first}"
    );
}

#[test]
fn sarif_output_validates_against_the_official_schema() {
    let dir = project(&[("a.cairn", BROKEN.as_bytes())]);
    let run = run_in(
        dir.path(),
        &["check", "--format", "sarif", "--deny-warnings"],
    );
    assert_eq!(run.code, 1);
    let log: serde_json::Value = serde_json::from_str(&run.stdout).expect("SARIF is JSON");
    let schema_text =
        std::fs::read_to_string(repo_root().join("tests/data/sarif-schema-2.1.0.json"))
            .expect("schema file");
    // The published 2.1.0 schema has one malformed `pattern` (an unbalanced `]` in the
    // language tag), which a strict validator refuses; use the pattern it intends.
    let schema_text = schema_text.replace(
        "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$",
        "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$",
    );
    let schema: serde_json::Value = serde_json::from_str(&schema_text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = log["runs"][0]["results"].as_array().expect("results");
    assert!(
        results.iter().any(|r| r["ruleId"] == "E0101"),
        "{results:?}"
    );
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
}

#[test]
fn explain_prints_the_long_form_and_rejects_unknown_codes() {
    let dir = project(&[]);
    let run = run_in(dir.path(), &["explain", "e0304"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .starts_with("E0304: marketing email without unsubscribe link"),
        "{}",
        run.stdout
    );
    let run = run_in(dir.path(), &["explain", "E0310"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no diagnostic has the code `E0310`"),
        "{}",
        run.stderr
    );
    let run = run_in(dir.path(), &["explain"]);
    assert!(run.stdout.lines().count() > 40, "{}", run.stdout);
}

#[test]
fn output_file_receives_the_report() {
    let dir = project(&[("a.cairn", BROKEN.as_bytes())]);
    let run = run_in(
        dir.path(),
        &["check", "--format", "json", "-o", "report.json"],
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report written"),
    )
    .expect("json");
    assert_eq!(doc["errors"], 2);
}
