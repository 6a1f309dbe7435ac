//! `cairn bench` prints its three figures: ingestion, engine transitions with timer
//! lateness, and resident memory while timers are scheduled (small counts here: the
//! figures themselves come from release builds).

use crate::support::{repo_root, run_in};

#[test]
fn bench_prints_ingestion_engine_and_memory_figures() {
    let project = repo_root().join("examples/abandoned-cart");
    let run = run_in(
        &repo_root(),
        &[
            "bench",
            project.to_str().expect("a UTF-8 path"),
            "--events",
            "400",
            "--batch",
            "100",
            "--runs",
            "300",
            "--rate",
            "0",
            "--timers",
            "400",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with("ingested 400 events in "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("events/s through /v1/batch (sqlite"));
    // Every run started, then moved by its two timers: three transitions each.
    assert!(
        lines[1].starts_with("engine: 300 runs, 900 transitions in "),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("600 timers fired; timer lateness p50 "));
    assert!(
        lines[2].starts_with("memory: 400 timers scheduled in "),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("resident memory"), "{}", lines[2]);
}
