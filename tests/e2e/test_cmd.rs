//! `cairn test` as CI runs it: exit codes, JUnit and the outcome timeline.

use crate::support::{project, repo_root, run_in};

const PROJECT: &str = r#"contact {
  email    email?
  timezone timezone = "UTC"
}
consent email_marketing for email
event cart_updated { cart_id string }

template reminder email {
  subject "Your cart"
  html "<p>Come back <a href='{{ unsubscribe_url }}'>unsubscribe</a></p>"
}

journey cart {
  when cart_updated as cart
  audience consented(email_marketing)
  wait 1d
  remind: send email reminder
}
"#;

fn tests(expect_at: &str) -> String {
    format!(
        r#"test "a reminder a day later" {{
  contact ana {{ email: "ana@example.com", consents: [email_marketing] }}
  at 2026-03-01T10:00Z ana sends cart_updated {{ cart_id: "c1" }}
  expect send email reminder to ana at {expect_at}
}}

test "no consent, no reminder" {{
  contact bo {{ email: "bo@example.com" }}
  at 2026-03-01T10:00Z bo sends cart_updated {{ cart_id: "c2" }}
  expect nothing for bo until 2026-03-05T00:00Z
}}
"#
    )
}

#[test]
fn passing_tests_exit_zero() {
    let dir = project(&[
        ("shop.cairn", PROJECT.as_bytes()),
        ("tests.cairn", tests("2026-03-02T10:00Z").as_bytes()),
    ]);
    let run = run_in(dir.path(), &["test"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ok    a reminder a day later"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("2 passed, 0 failed"), "{}", run.stdout);
}

#[test]
fn a_wrong_expectation_fails_with_the_timeline() {
    let dir = project(&[
        ("shop.cairn", PROJECT.as_bytes()),
        ("tests.cairn", tests("2026-03-02T09:00Z").as_bytes()),
    ]);
    let run = run_in(dir.path(), &["test"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("FAIL  a reminder a day later"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("`ana` got: email reminder at 2026-03-02T10:00Z"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("unexpected send: email reminder to ana at 2026-03-02T10:00Z"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("tests.cairn:4"), "{}", run.stdout);
    assert!(run.stdout.contains("1 passed, 1 failed"), "{}", run.stdout);
}

#[test]
fn junit_and_jsonl_reports() {
    let dir = project(&[
        ("shop.cairn", PROJECT.as_bytes()),
        ("tests.cairn", tests("2026-03-02T09:00Z").as_bytes()),
    ]);
    let run = run_in(
        dir.path(),
        &["test", "--format", "junit", "-o", "report.xml"],
    );
    assert_eq!(run.code, 1);
    let xml = std::fs::read_to_string(dir.path().join("report.xml")).expect("junit written");
    assert!(
        xml.contains("<testsuite name=") && xml.contains("tests=\"2\" failures=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<failure message="), "{xml}");
    let run = run_in(
        dir.path(),
        &["test", "--format", "jsonl", "--filter", "day later"],
    );
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "send" && l["at"] == "2026-03-02T10:00Z"),
        "{}",
        run.stdout
    );
    assert!(lines.iter().all(|l| l["test"] == "a reminder a day later"));
}

#[test]
fn a_project_that_does_not_compile_exits_two() {
    let dir = project(&[
        (
            "shop.cairn",
            PROJECT.replace("wait 1d", "wait 1x").as_bytes(),
        ),
        ("tests.cairn", tests("2026-03-02T10:00Z").as_bytes()),
    ]);
    let run = run_in(dir.path(), &["test"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("does not compile"), "{}", run.stderr);
}

#[test]
fn every_example_passes_its_tests() {
    let run = run_in(&repo_root(), &["test", "examples"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(" passed, 0 failed"), "{}", run.stdout);
}
