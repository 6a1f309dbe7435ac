//! `cairn graph`: a journey as a flow chart.

use crate::support::{repo_root, run_in};

#[test]
fn mermaid_chart_of_an_example() {
    let run = run_in(
        &repo_root(),
        &["graph", "nissan_service", "examples/car-service"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("flowchart TD\n"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("remind[\"remind: send email service_reminder\"]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("-->|\"timeout\"|"), "{}", run.stdout);
    assert!(
        run.stdout.contains("-.->|\"at most 2x\"| remind"),
        "{}",
        run.stdout
    );
    // `end` is a Mermaid keyword: no node may be called that.
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("end") || l.ends_with(" end")),
        "{}",
        run.stdout
    );
}

#[test]
fn dot_chart_and_unknown_journey() {
    let run = run_in(
        &repo_root(),
        &[
            "graph",
            "abandoned_cart",
            "examples/abandoned-cart",
            "--format",
            "dot",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("digraph \"abandoned_cart\" {"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("shape=diamond"), "{}", run.stdout);
    let run = run_in(
        &repo_root(),
        &["graph", "abandoned_kart", "examples/abandoned-cart"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("did you mean `abandoned_cart`?"),
        "{}",
        run.stderr
    );
}
