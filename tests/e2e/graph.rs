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

#[test]
fn svg_picture_is_xml_with_every_step() {
    for (journey, example) in [
        ("nissan_service", "examples/car-service"),
        ("abandoned_cart", "examples/abandoned-cart"),
    ] {
        let run = run_in(
            &repo_root(),
            &["graph", journey, example, "--format", "svg"],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let svg = roxmltree::Document::parse(&run.stdout)
            .unwrap_or_else(|e| panic!("the SVG of {journey} is not XML: {e}\n{}", run.stdout));
        let root = svg.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        // One group per step, named by its ID, with its label as text.
        let plan = run_in(&repo_root(), &["build", example]);
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("a plan");
        let steps = plan["journeys"][journey]["steps"]
            .as_object()
            .expect("steps");
        assert!(!steps.is_empty());
        for id in steps.keys() {
            let group = svg
                .descendants()
                .find(|n| n.attribute("id") == Some(format!("step-{id}").as_str()))
                .unwrap_or_else(|| panic!("no node for step `{id}` in\n{}", run.stdout));
            assert!(
                group.descendants().any(|n| n.has_tag_name("text")),
                "step `{id}` has no label"
            );
        }
        let labels: Vec<&str> = svg
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        if journey == "nissan_service" {
            for label in [
                "timeout",
                "at most 2x",
                "remind: send email service_reminder",
            ] {
                assert!(labels.contains(&label), "{label} not in {labels:?}");
            }
        }
    }
}

#[test]
fn the_picture_in_the_docs_is_current() {
    let run = run_in(
        &repo_root(),
        &[
            "graph",
            "abandoned_cart",
            "examples/abandoned-cart",
            "--format",
            "svg",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs = std::fs::read_to_string(repo_root().join("docs/abandoned-cart.svg"))
        .expect("docs/abandoned-cart.svg");
    assert!(
        docs == run.stdout,
        "docs/abandoned-cart.svg is out of date: run `cargo run -- graph abandoned_cart \
         examples/abandoned-cart --format svg -o docs/abandoned-cart.svg`"
    );
}
