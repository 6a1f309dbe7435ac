//! `cairn pause` and `cairn resume` against the real daemon: while `welcome` is paused
//! its due timer is held, an awaited event moves nothing, a new entry is refused and
//! queued messages are skipped; the pause survives a restart, and `cairn resume` lets
//! the runs continue where they were. On SQLite, then on PostgreSQL.

use super::{Daemon, wait_for};
use crate::support::{Run, project, run_in};
use serde_json::{Value as Json, json};
use std::process::Command;
use std::time::{Duration, Instant};

const WELCOME: &str = r#"
contact {
  email email?
}
event signed_up {}
event confirmed {}

template hello email transactional {
  subject "Hello"
  html "<p>Hello</p>"
}
template thanks email transactional {
  subject "Thanks"
  html "<p>Thanks</p>"
}
template bye email transactional {
  subject "Bye"
  html "<p>Bye</p>"
}

journey welcome {
  when signed_up
  audience true
  hook: post "http://127.0.0.1:PORT/hook"
  hi: send email hello
  ask: wait for confirmed within 7d {
    thanks: send email thanks
    wait 8s
    bye: send email bye
  } timeout {
    exit
  }
}
"#;

fn cli(daemon: &Daemon, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--server", &daemon.url, "--token", &daemon.admin_token]);
    run_in(daemon.dir.path(), &all)
}

/// Runs `cairn ARGS` against the daemon and checks it succeeds and prints each of
/// `said`.
fn cli_says(daemon: &Daemon, args: &[&str], said: &[&str]) {
    let run = cli(daemon, args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for text in said {
        assert!(run.stdout.contains(text), "{text:?} in {}", run.stdout);
    }
}

fn track(daemon: &Daemon, who: &str, event: &str) {
    let (status, body) = daemon.post(
        "/v1/track",
        &json!({"userId": who, "event": event, "properties": {}}),
    );
    assert_eq!(status, 200, "{body}");
}

/// The steps of `who`'s outcomes of `kind`.
fn steps(daemon: &Daemon, who: &str, kind: &str) -> Vec<String> {
    daemon.contact(who)["outcomes"]
        .as_array()
        .map(|outcomes| {
            outcomes
                .iter()
                .filter(|o| o["kind"] == json!(kind))
                .map(|o| o["step"].as_str().unwrap_or("-").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `who` was sent the message of `step`.
fn sent(daemon: &Daemon, who: &str, step: &str) -> bool {
    steps(daemon, who, "send").iter().any(|s| s == step)
}

fn wait_sent(daemon: &Daemon, who: &str, step: &str) {
    wait_for(
        &format!("{who}'s `{step}`"),
        Duration::from_secs(30),
        || sent(daemon, who, step).then_some(()),
    );
}

/// The daemon's messages in `state` on `channel`.
fn messages(daemon: &Daemon, state: &str, channel: &str) -> Vec<Json> {
    let path = format!("/admin/messages?state={state}&channel={channel}");
    let (code, body) = daemon.get(&path, true);
    assert_eq!(code, 200, "{body}");
    let listed: Json = serde_json::from_str(&body).expect("the messages");
    listed["messages"].as_array().cloned().unwrap_or_default()
}

/// `who`'s one run: its step and state.
fn run_of(daemon: &Daemon, who: &str) -> (String, String) {
    let trace = daemon.contact(who);
    let run = &trace["runs"][0];
    (
        run["step"].as_str().unwrap_or("-").to_string(),
        run["state"]["state"].as_str().unwrap_or("-").to_string(),
    )
}

fn status(daemon: &Daemon) -> Json {
    let (code, body) = daemon.get("/admin/status", true);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("the status")
}

/// Stops the daemon with SIGTERM and starts it again on the same project and store.
fn restart(mut daemon: Daemon, env: &[(&str, &str)]) -> Daemon {
    let pid = daemon.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let started = Instant::now();
    while daemon.child.try_wait().ok().flatten().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = std::mem::replace(&mut daemon.dir, tempfile::tempdir().expect("a directory"));
    drop(daemon);
    Daemon::start_in_with(dir, env)
}

#[test]
fn a_paused_journey_holds_its_runs_across_a_restart_until_resumed() {
    super::respect::on_both("pause", held_until_resumed);
}

fn held_until_resumed(env: &[(&str, &str)]) {
    // The webhooks go to a port nothing listens on: they fail and are retried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let welcome = WELCOME.replace("PORT", &closed.to_string());
    let project = project(&[("welcome.cairn", welcome.as_bytes())]);
    let daemon = Daemon::start_in_with(project, env);
    for who in ["ana", "bob", "cem"] {
        let (status, body) = daemon.post(
            "/v1/identify",
            &json!({"userId": who, "traits": {"email": format!("{who}@example.com")}}),
        );
        assert_eq!(status, 200, "{body}");
    }
    // Ana waits for `confirmed`; Bob confirmed and waits 8 s before `bye`. Their
    // webhooks are queued and retried.
    track(&daemon, "ana", "signed_up");
    track(&daemon, "bob", "signed_up");
    wait_sent(&daemon, "bob", "hi");
    track(&daemon, "bob", "confirmed");
    wait_sent(&daemon, "bob", "thanks");
    // Their emails are handed over; only the webhooks are still queued.
    wait_for("the emails handed over", Duration::from_secs(30), || {
        (messages(&daemon, "sent", "email").len() == 3).then_some(())
    });

    let paused = ["journey `welcome` is paused: 2 runs held"];
    cli_says(&daemon, &["pause", "welcome"], &paused);
    let again = ["was already paused", "nothing changed"];
    cli_says(&daemon, &["pause", "welcome"], &again);
    let unknown = cli(&daemon, &["pause", "welcom"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stdout);
    assert!(
        unknown.stderr.contains("no journey `welcom`") && unknown.stderr.contains("`welcome`"),
        "{}",
        unknown.stderr
    );

    // While paused: Ana's event is recorded but moves nothing, Cem's sign-up starts no
    // run, and the queued webhooks are skipped.
    track(&daemon, "ana", "confirmed");
    track(&daemon, "cem", "signed_up");
    wait_for("the webhooks skipped", Duration::from_secs(30), || {
        let skipped = messages(&daemon, "failed", "webhook");
        (skipped.len() == 2 && skipped.iter().all(|m| m["error_kind"] == json!("paused")))
            .then_some(())
    });
    assert_eq!(steps(&daemon, "ana", "skip"), ["hook"]);
    let cem = daemon.contact("cem");
    assert_eq!(cem["runs"], json!([]), "{cem}");
    assert!(
        cem["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .any(|o| o["kind"] == json!("not_entered") && o["detail"]["reason"] == json!("paused")),
        "{cem}"
    );
    // Bob's 8 s are over (counted from his thanks): his timer is held.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        run_of(&daemon, "ana"),
        ("ask".into(), "waiting_for_event".into())
    );
    assert!(!sent(&daemon, "bob", "bye"));
    cli_says(&daemon, &["status"], &["journey `welcome`: PAUSED since"]);

    // A restart keeps the pause.
    let daemon = restart(daemon, env);
    let paused = &status(&daemon)["paused"];
    assert_eq!(paused[0]["journey"], json!("welcome"), "{paused}");
    assert_eq!(paused[0]["runs_held"], json!(2), "{paused}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!sent(&daemon, "bob", "bye"));

    // Resumed: Bob's late timer runs, and Ana's wait sees the event that came meanwhile.
    let resumed = [
        "2 runs continue; timers that came due during the pause, running now: 1;",
        "met by an event that came during the pause: 1",
    ];
    cli_says(&daemon, &["resume", "welcome"], &resumed);
    wait_sent(&daemon, "bob", "bye");
    assert!(sent(&daemon, "ana", "thanks"));
    assert_eq!(status(&daemon)["paused"], json!([]));
    let again = ["journey `welcome` is not paused; nothing changed"];
    cli_says(&daemon, &["resume", "welcome"], &again);
}
