//! `cairn graph --server` and `cairn simulate --against-server` against a running
//! daemon: the counts of runs at each step, and a replay of what the daemon stored.

use super::{Daemon, cart, hours_ago, wait_for};
use crate::support::{Run, cairn, run_in, zone_at_noon};
use serde_json::{Value as Json, json};
use std::time::Duration;

/// Ana leaves a cart three hours ago: the journey enters at once, sends the reminder,
/// and waits a day at `remind.wait#1`.
fn daemon_with_a_waiting_run() -> Daemon {
    let daemon = Daemon::start("abandoned-cart");
    let (status, body) = daemon.post(
        "/v1/identify",
        &json!({"userId": "ana", "messageId": "id-1", "traits": {
            "email": "ana@example.com", "first_name": "Ana", "timezone": zone_at_noon(),
            "consents": ["email_marketing"]
        }}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = daemon.post("/v1/track", &cart("ana", "cart-1", &hours_ago(3)));
    assert_eq!(status, 200, "{body}");
    wait_for("ana's run to wait a day", Duration::from_secs(30), || {
        let trace = daemon.contact("ana");
        trace["runs"]
            .as_array()
            .and_then(|runs| runs.first())
            .filter(|r| r["step"] == "remind.wait#1")
            .map(|_| ())
    });
    daemon
}

/// `cairn graph abandoned_cart` of the daemon's project, with the counts of runs the
/// daemon answers with `token`, and `extra` flags.
fn graph(daemon: &Daemon, token: &str, extra: &[&str]) -> Run {
    let project = daemon.dir.path().to_str().expect("a UTF-8 path");
    let mut args = vec![
        "graph",
        "abandoned_cart",
        project,
        "--server",
        &daemon.url,
        "--token",
        token,
    ];
    args.extend_from_slice(extra);
    run_in(daemon.dir.path(), &args)
}

#[test]
fn graph_shows_the_runs_waiting_at_each_step() {
    let daemon = daemon_with_a_waiting_run();
    let run = graph(&daemon, &daemon.admin_token, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("abandoned_cart_with_counts", run.stdout);

    let run = graph(&daemon, &daemon.admin_token, &["--format", "svg"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = roxmltree::Document::parse(&run.stdout).expect("the SVG is XML");
    let badges: Vec<&str> = svg
        .descendants()
        .filter(|n| n.attribute("class") == Some("count"))
        .flat_map(|n| {
            n.descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
        })
        .collect();
    assert_eq!(badges, ["1 waiting"]);

    let run = graph(&daemon, "wrong", &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("refused the admin token"),
        "{}",
        run.stderr
    );
}

#[test]
fn simulate_replays_what_the_daemon_stored_against_the_local_plan() {
    let daemon = daemon_with_a_waiting_run();
    let project = daemon.dir.path().to_path_buf();
    let from = hours_ago(24);
    let to = hours_ago(-72);

    // The events endpoint: an identify with Ana's traits and consents, then her cart.
    let (status, body) = daemon.get(&format!("/admin/events?from={from}&to={to}"), true);
    assert_eq!(status, 200, "{body}");
    let lines: Vec<Json> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[0]["type"], "identify");
    assert_eq!(lines[0]["traits"]["email"], "ana@example.com");
    assert_eq!(lines[0]["traits"]["consents"]["email_marketing"], true);
    assert_eq!(lines[1]["type"], "track");
    assert_eq!(lines[1]["event"], "cart_updated");
    assert_eq!(lines[1]["messageId"], "cart-1");
    let (status, _) = daemon.get(&format!("/admin/events?from={from}&to={to}"), false);
    assert_eq!(status, 401);
    let (status, body) = daemon.get("/admin/events?from=soon&to=later", true);
    assert_eq!(status, 400);
    assert!(body.contains("`from` must be an ISO 8601"), "{body}");

    // The local plan changes: the nudge comes after an hour instead of a day.
    let journeys = project.join("journeys.cairn");
    let text = std::fs::read_to_string(&journeys).expect("the journeys");
    assert!(text.contains("wait 1d"));
    std::fs::write(&journeys, text.replace("wait 1d", "wait 1h")).expect("edit the plan");

    let output = cairn()
        .current_dir(&project)
        .args([
            "simulate",
            ".",
            "--against-server",
            &daemon.url,
            "--token",
            &daemon.admin_token,
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "json",
        ])
        .output()
        .expect("cairn simulate runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: Json = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["messages"], 2, "{report}");
    let journey = report["journeys"]
        .as_array()
        .expect("journeys")
        .iter()
        .find(|j| j["journey"] == "abandoned_cart")
        .expect("abandoned_cart");
    assert_eq!(journey["entered"], 1, "{journey}");
    let sent: Vec<(String, u64)> = journey["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or_default().to_string(),
                s["sent"].as_u64().unwrap_or_default(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    // Ana has no phone: the SMS nudge is skipped, and the reminder went once.
    assert_eq!(sent, [("remind".to_string(), 1)], "{journey}");
    assert!(
        journey["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["step"] == "remind.wait#1" && s["does"] == "wait 1h"),
        "the replay used the local plan: {journey}"
    );
}
