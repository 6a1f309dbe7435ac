//! `cairn simulate`: Segment messages replayed through an example's plan on a virtual
//! clock, counted per journey and step.

use crate::support::{project, repo_root, run_in};
use serde_json::Value as Json;

const ANA: &str = r#"{"type":"identify","userId":"ana","timestamp":"2026-03-01T09:00:00Z","traits":{"email":"ana@example.com","phone":"+48500100200","first_name":"Ana","consents":["email_marketing","sms_marketing"]}}"#;
// Bob orders an hour after leaving his cart: no reminder. His order comes first in
// the file, but replays in time order.
const BOB_ORDER: &str = r#"{"type":"track","userId":"bob","event":"Order Completed","timestamp":"2026-03-01T11:00:00Z","properties":{"order_id":"o1","total":"80.00 EUR"}}"#;
const ANA_CART: &str = r#"{"type":"track","userId":"ana","event":"Cart Updated","timestamp":"2026-03-01T10:00:00Z","properties":{"cart_id":"c1","value":"80.00 EUR","url":"https://shop.example/cart","items":[]}}"#;
const BOB: &str = r#"{"type":"identify","userId":"bob","timestamp":"2026-03-01T09:30:00Z","traits":{"email":"bob@example.com","consents":["email_marketing"]}}"#;
const BOB_CART: &str = r#"{"type":"track","userId":"bob","event":"Cart Updated","timestamp":"2026-03-01T10:00:00Z","properties":{"cart_id":"c2","value":"80.00 EUR","url":"https://shop.example/cart","items":[]}}"#;

fn events(lines: &[&str]) -> tempfile::TempDir {
    let text = lines.join("\n") + "\n";
    project(&[("events.jsonl", text.as_bytes())])
}

fn simulate(dir: &tempfile::TempDir, extra: &[&str]) -> crate::support::Run {
    let example = repo_root().join("examples/abandoned-cart");
    let mut args = vec![
        "simulate",
        example.to_str().expect("a UTF-8 path"),
        "--events",
        "events.jsonl",
    ];
    args.extend_from_slice(extra);
    run_in(dir.path(), &args)
}

fn journey<'a>(report: &'a Json, name: &str) -> &'a Json {
    report["journeys"]
        .as_array()
        .expect("journeys")
        .iter()
        .find(|j| j["journey"] == name)
        .unwrap_or_else(|| panic!("no journey {name} in {report}"))
}

fn step<'a>(journey: &'a Json, id: &str) -> &'a Json {
    journey["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {journey}"))
}

#[test]
fn replays_in_time_order_and_counts_each_step() {
    let dir = events(&[ANA, BOB_ORDER, ANA_CART, BOB, BOB_CART]);
    let run = simulate(&dir, &["--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(report["messages"], 5);
    assert_eq!(report["contacts"], 2);
    assert_eq!(report["sent_by_channel"]["email"], 1, "{report}");
    assert_eq!(report["sent_by_channel"]["sms"], 1, "{report}");
    let cart = journey(&report, "abandoned_cart");
    // Bob ordered within two hours: only Ana enters.
    assert_eq!(cart["entered"], 1, "{cart}");
    assert_eq!(step(cart, "remind")["sent"], 1);
    assert_eq!(step(cart, "nudge_sms")["sent"], 1);
    assert_eq!(step(cart, "nudge_push")["sent"], 0);
    assert_eq!(cart["ended"]["completed"], 1);
    assert!(
        run.stderr.contains("replayed 5 messages") && run.stderr.contains("messages/s"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_window_ends_the_clock() {
    let dir = events(&[ANA, ANA_CART]);
    // Timers due before `--to` fire: the reminder goes at 12:00, the SMS would go a day
    // later, after the window.
    let run = simulate(
        &dir,
        &["--to", "2026-03-01T18:00:00Z", "--format", "markdown"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("### `abandoned_cart`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("| `remind` | send email cart_reminder | 1 |  | 0 | 0 |"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("| `remind.wait#1` | wait 1d | 0 |  | 0 | 1 |"),
        "{}",
        run.stdout
    );
    // A window that opens after the cart replays nothing of it.
    let run = simulate(&dir, &["--from", "2026-03-02", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(report["messages"], 0);
    assert_eq!(report["outside_window"], 2);
    let run = simulate(&dir, &["--from", "yesterday"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("`--from yesterday` is not a date or time"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_lines_stop_the_replay_or_are_counted() {
    let bad_cart = r#"{"type":"track","userId":"x","event":"Cart Updated","timestamp":"2026-03-01T10:00:00Z","properties":{"cart_id":"c9","value":"abc","url":"https://shop.example/cart","items":[]}}"#;
    let no_time = r#"{"type":"track","userId":"x","event":"Order Completed","properties":{"order_id":"o9","total":"1 EUR"}}"#;
    let dir = events(&[ANA, ANA_CART, bad_cart, "not json", no_time]);
    let run = simulate(&dir, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("line 3: field `properties.value` must be an amount with a currency"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("line 4: not JSON"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("line 5: a message needs a `timestamp` to be replayed at its time"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was replayed"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    let run = simulate(&dir, &["--skip-invalid", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    let lines: Vec<&Json> = report["invalid"]
        .as_array()
        .expect("invalid lines")
        .iter()
        .map(|i| &i["line"])
        .collect();
    assert_eq!(lines, [3, 4, 5]);
    assert_eq!(report["messages"], 2);
    assert_eq!(journey(&report, "abandoned_cart")["entered"], 1);
}

#[test]
fn synthetic_traffic_replays_and_can_be_saved() {
    let dir = events(&[]);
    let example = repo_root().join("examples/abandoned-cart");
    let run = run_in(
        dir.path(),
        &[
            "simulate",
            example.to_str().expect("a UTF-8 path"),
            "--synthetic",
            "2000",
            "--contacts",
            "100",
            "--save-events",
            "synthetic.jsonl",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Json = serde_json::from_str(&run.stdout).expect("a JSON report");
    // 100 identify calls, then 2000 events.
    assert_eq!(report["messages"], 2100);
    assert_eq!(report["contacts"], 100);
    assert!(
        journey(&report, "abandoned_cart")["entered"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{report}"
    );
    let saved = std::fs::read_to_string(dir.path().join("synthetic.jsonl")).expect("saved");
    assert_eq!(saved.lines().count(), 2100);
    // The saved file replays to the same counts.
    let again = run_in(
        dir.path(),
        &[
            "simulate",
            example.to_str().expect("a UTF-8 path"),
            "--events",
            "synthetic.jsonl",
            "--format",
            "json",
        ],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, run.stdout);
}

#[test]
fn a_source_of_events_is_required() {
    let run = run_in(&repo_root(), &["simulate", "examples/abandoned-cart"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--events"), "{}", run.stderr);
    let run = run_in(
        &repo_root(),
        &[
            "simulate",
            "examples/abandoned-cart",
            "--against-server",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--from"), "{}", run.stderr);
}

#[test]
fn the_timeline_as_json_lines() {
    let dir = events(&[ANA, ANA_CART]);
    let run = simulate(&dir, &["--format", "jsonl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let outcomes: Vec<Json> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let sends: Vec<(&str, &str)> = outcomes
        .iter()
        .filter(|o| o["kind"] == "send")
        .map(|o| {
            (
                o["at"].as_str().unwrap_or_default(),
                o["step"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        sends,
        [
            ("2026-03-01T12:00:00Z", "remind"),
            ("2026-03-02T12:00:00Z", "nudge_sms")
        ],
        "{}",
        run.stdout
    );
    let times: Vec<&str> = outcomes.iter().filter_map(|o| o["at"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "outcomes come in time order");
}
