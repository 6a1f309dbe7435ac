//! Respect for the contact through the real daemon over loopback HTTP: signed links
//! found in the emails it writes, one-click unsubscribe, the preference page, tracking,
//! bounce and complaint webhooks, and double opt-in.

use super::{Daemon, cart, copy_dir, hours_ago, wait_for};
use crate::support::{repo_root, zone_at_noon};
use crate::torture::Database;
use serde_json::{Value as Json, json};
use std::time::Duration;

const WEBHOOK_SECRET: &str = "whs_e2e_respect";

/// The daemon's links in `text` with `path` (`/unsubscribe/`, `/c/`...), as paths
/// on the daemon (the links name the configured public URL, not the test's port).
pub(super) fn links(text: &str, path: &str) -> Vec<String> {
    // `cairn serve --listen 127.0.0.1:0` without a public URL names that address.
    let public = format!("127.0.0.1:0{path}");
    text.match_indices(&public)
        .map(|(at, _)| {
            let rest = &text[at + "127.0.0.1:0".len()..];
            let end = rest
                .find(['"', '\'', '>', '<', ' ', '\r', '\n'])
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// Runs `scenario` against a daemon on SQLite, then on a fresh PostgreSQL database
/// when `CAIRN_TEST_POSTGRES_URL` is set (a daemon is started by each run).
pub(super) fn on_both(test: &str, scenario: impl Fn(&[(&str, &str)])) {
    scenario(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Some(database) = Database::postgres(test, &runtime) {
        let url = database.url();
        scenario(&[("CAIRN_DATABASE_URL", url.as_str())]);
        database.drop_database(&runtime);
    }
}

/// The daemon on a copy of `examples/<example>`, with `env`.
fn start(example: &str, env: &[(&str, &str)]) -> Daemon {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples").join(example), dir.path());
    Daemon::start_in_with(dir, env)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn events_named(daemon: &Daemon, contact: &str, name: &str) -> Vec<Json> {
    daemon.contact(contact)["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["name"] == json!(name))
        .cloned()
        .collect()
}

fn consent(daemon: &Daemon, contact: &str, name: &str) -> Json {
    daemon.contact(contact)["consents"][name].clone()
}

/// Ana's abandoned-cart reminder, written by the daemon to the file outbox.
fn reminder(daemon: &Daemon, user: &str) -> String {
    let (status, body) = daemon.post(
        "/v1/identify",
        &json!({"userId": user, "traits": {
            "email": format!("{user}@example.com"), "first_name": "Ana",
            "timezone": zone_at_noon(), "consents": ["email_marketing", "sms_marketing"]
        }}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = daemon.post(
        "/v1/track",
        &cart(user, &format!("cart-{user}"), &hours_ago(3)),
    );
    assert_eq!(status, 200, "{body}");
    let email = daemon
        .outbox()
        .join(format!("email/abandoned_cart_{user}_1_remind_1.eml"));
    wait_for("the reminder", Duration::from_secs(30), || {
        std::fs::read_to_string(&email).ok()
    })
}

#[test]
fn tracking_links_record_opens_and_clicks_and_refuse_forgeries() {
    on_both("respect_tracking", tracking);
}

fn tracking(env: &[(&str, &str)]) {
    let daemon = start("abandoned-cart", env);
    let text = reminder(&daemon, "ana");
    let http = client();

    // The cart link goes through a signed click link; unsubscribe and preferences do
    // not; a pixel closes the body.
    assert!(
        !text.contains("href=\"https://nordkit.example/cart/1\""),
        "{text}"
    );
    let clicks = links(&text, "/c/");
    assert_eq!(clicks.len(), 1, "{text}");
    let pixels = links(&text, "/o/");
    assert_eq!(pixels.len(), 1, "{text}");
    assert!(!links(&text, "/unsubscribe/").is_empty(), "{text}");

    // The pixel: a GIF, and `email_opened` for the reminder's run and step, once.
    for _ in 0..2 {
        let answer = http
            .get(format!("{}{}", daemon.url, pixels[0]))
            .send()
            .expect("the pixel");
        assert_eq!(answer.status().as_u16(), 200);
        assert_eq!(
            answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("image/gif")
        );
        assert!(answer.bytes().expect("bytes").starts_with(b"GIF89a"));
    }
    let opened = events_named(&daemon, "ana", "email_opened");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["payload"]["step"], json!("remind"));
    assert_eq!(opened[0]["payload"]["run"], json!("abandoned_cart/ana/1"));
    assert_eq!(opened[0]["payload"]["journey"], json!("abandoned_cart"));

    // The click: a redirect to the signed target, and `email_clicked {url}`.
    let answer = http
        .get(format!("{}{}", daemon.url, clicks[0]))
        .send()
        .expect("the click");
    assert_eq!(answer.status().as_u16(), 302);
    assert_eq!(
        answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("https://nordkit.example/cart/1")
    );
    let clicked = events_named(&daemon, "ana", "email_clicked");
    assert_eq!(clicked.len(), 1, "{clicked:?}");
    assert_eq!(
        clicked[0]["payload"]["url"],
        json!("https://nordkit.example/cart/1")
    );
    assert_eq!(clicked[0]["payload"]["step"], json!("remind"));

    // Forged and tampered links: refused, no redirect, nothing recorded.
    let token = clicks[0].trim_start_matches("/c/");
    let (payload, signature) = token.split_once('.').expect("payload.signature");
    let mut chars: Vec<char> = signature.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    for (path, status) in [
        (format!("/c/{payload}.{flipped}"), 403),
        (format!("/c/{payload}"), 400),
        ("/c/not-a-link".to_string(), 400),
        (
            format!("/unsubscribe/{}", pixels[0].trim_start_matches("/o/")),
            403,
        ),
    ] {
        let answer = http
            .get(format!("{}{path}", daemon.url))
            .send()
            .expect("an answer");
        assert_eq!(answer.status().as_u16(), status, "{path}");
        assert!(answer.headers().get("location").is_none(), "{path}");
    }
    assert_eq!(events_named(&daemon, "ana", "email_clicked").len(), 1);
}

#[test]
fn one_click_unsubscribe_and_the_preference_page() {
    on_both("respect_unsubscribe", unsubscribe_and_preferences);
}

fn unsubscribe_and_preferences(env: &[(&str, &str)]) {
    let daemon = start("abandoned-cart", env);
    let text = reminder(&daemon, "ana");
    let http = client();
    let unsubscribe = format!("{}{}", daemon.url, links(&text, "/unsubscribe/")[0]);

    // GET only shows the page: mail scanners follow links.
    let page = http.get(&unsubscribe).send().expect("the page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().expect("html").contains("<form method=\"post\""));
    assert_eq!(consent(&daemon, "ana", "email_marketing"), json!(true));

    // RFC 8058: a POST with `List-Unsubscribe=One-Click`.
    let answer = http
        .post(&unsubscribe)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .expect("unsubscribe");
    assert_eq!(answer.status().as_u16(), 200);
    let page = answer.text().expect("html");
    assert!(page.contains("You are unsubscribed"), "{page}");
    let trace = daemon.contact("ana");
    assert_eq!(trace["consents"]["email_marketing"], json!(false));
    assert_eq!(
        trace["consents"]["sms_marketing"],
        json!(true),
        "only the email scope"
    );
    let unsubscribed = events_named(&daemon, "ana", "unsubscribed");
    assert_eq!(unsubscribed.len(), 1);
    assert_eq!(unsubscribed[0]["payload"]["scope"], json!("email"));
    assert_eq!(unsubscribed[0]["payload"]["via"], json!("one_click"));
    let outcomes = trace["outcomes"].as_array().expect("outcomes");
    assert!(
        outcomes.iter().any(|o| o["kind"] == json!("consent")
            && o["detail"]["source"] == json!("one_click")
            && o["detail"]["granted"] == json!(false)),
        "{outcomes:?}"
    );
    // `exit when unsubscribed` ended the run.
    assert!(
        outcomes.iter().any(|o| o["kind"] == json!("exit")
            && o["detail"]["reason"] == json!("exit_condition")),
        "{outcomes:?}"
    );
    let (status, list) = daemon.get("/admin/suppressions?address=ana@example.com", true);
    assert_eq!(status, 200, "{list}");
    let list: Json = serde_json::from_str(&list).expect("JSON");
    assert_eq!(list["suppressions"][0]["reason"], json!("unsubscribed"));
    assert_eq!(list["suppressions"][0]["source"], json!("one_click"));
    let (status, _) = daemon.get("/admin/suppressions", false);
    assert_eq!(status, 401);

    // The preference page: every consent with its state; saving changes them.
    let preferences = format!("{}{}", daemon.url, links(&page, "/preferences/")[0]);
    let form = http
        .get(&preferences)
        .send()
        .expect("the page")
        .text()
        .expect("html");
    assert!(form.contains("value=\"email_marketing\">"), "{form}");
    assert!(form.contains("value=\"sms_marketing\" checked>"), "{form}");
    let answer = http
        .post(&preferences)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("consent=email_marketing&consent=push_marketing")
        .send()
        .expect("save");
    assert_eq!(answer.status().as_u16(), 200);
    assert!(answer.text().expect("html").contains("saved"));
    let trace = daemon.contact("ana");
    assert_eq!(trace["consents"]["email_marketing"], json!(true));
    assert_eq!(trace["consents"]["push_marketing"], json!(true));
    assert_eq!(trace["consents"]["sms_marketing"], json!(false));

    // An unknown choice changes nothing; a forged page is refused.
    let answer = http
        .post(&preferences)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("consent=lottery")
        .send()
        .expect("save");
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(consent(&daemon, "ana", "email_marketing"), json!(true));
    let forged = preferences.replace("/preferences/", "/preferences/x");
    assert_eq!(
        http.get(forged).send().expect("answer").status().as_u16(),
        403
    );
}

#[test]
fn bounce_and_complaint_webhooks_suppress_and_emit_events() {
    on_both("respect_webhooks", webhooks);
}

fn webhooks(env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("CAIRN_WEBHOOK_SECRET", WEBHOOK_SECRET));
    let daemon = start("abandoned-cart", &env);
    reminder(&daemon, "ana");
    let http = client();
    let hook = format!("{}/v1/webhooks/email", daemon.url);

    // Unauthenticated, or bad input: refused, nothing changes.
    let body = json!({"type": "bounce", "bounce": "hard", "email": "ana@example.com"});
    let answer = http.post(&hook).json(&body).send().expect("answer");
    assert_eq!(answer.status().as_u16(), 401);
    let answer = http
        .post(&hook)
        .bearer_auth(WEBHOOK_SECRET)
        .json(&json!([body, {"type": "bounce", "email": "ana@example.com"}]))
        .send()
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 400);
    assert!(answer.text().expect("text").contains("notice 1"));
    assert!(events_named(&daemon, "ana", "email_bounced").is_empty());

    // A hard bounce, with the message it answers, by bearer token.
    let answer = http
        .post(&hook)
        .bearer_auth(WEBHOOK_SECRET)
        .json(
            &json!({"type": "bounce", "bounce": "hard", "email": "ANA@example.com",
                      "message": "abandoned_cart/ana/1/remind/1"}),
        )
        .send()
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 200);
    let bounced = events_named(&daemon, "ana", "email_bounced");
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0]["payload"]["kind"], json!("hard"));
    assert_eq!(bounced[0]["payload"]["step"], json!("remind"));

    // A complaint, signed with HMAC instead.
    let body = serde_json::to_vec(&json!({"type": "complaint", "email": "ana@example.com"}))
        .expect("JSON");
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let signature = cairn_runtime::dispatch::sign(WEBHOOK_SECRET, timestamp, &body);
    let answer = http
        .post(&hook)
        .header("Content-Type", "application/json")
        .header("X-Cairn-Timestamp", timestamp.to_string())
        .header("X-Cairn-Signature", &signature)
        .body(body.clone())
        .send()
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(events_named(&daemon, "ana", "email_complained").len(), 1);
    // The same signature on another body is refused.
    let answer = http
        .post(&hook)
        .header("X-Cairn-Timestamp", timestamp.to_string())
        .header("X-Cairn-Signature", &signature)
        .body(b"[]".to_vec())
        .send()
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 401);

    let (status, list) = daemon.get("/admin/suppressions?address=ana@example.com", true);
    assert_eq!(status, 200);
    let list: Json = serde_json::from_str(&list).expect("JSON");
    let mut reasons: Vec<&str> = list["suppressions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["reason"].as_str())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, vec!["complaint", "hard_bounce"]);
}

#[test]
fn double_opt_in_confirms_through_the_signed_link() {
    on_both("respect_double_opt_in", double_opt_in);
}

fn double_opt_in(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/double-opt-in"), dir.path());
    let manifest = dir.path().join("cairn.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("cairn.toml");
    text.push_str("\n[double_opt_in]\nemail_marketing = \"confirm_optin\"\n");
    std::fs::write(&manifest, text).expect("write cairn.toml");
    let daemon = Daemon::start_in_with(dir, env);

    // The profile says "subscribed": the daemon asks first.
    let (status, body) = daemon.post(
        "/v1/identify",
        &json!({"userId": "eva", "traits": {"email": "eva@example.com",
                "consents": ["email_marketing"]}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(consent(&daemon, "eva", "email_marketing"), Json::Null);
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        / 86_400;
    let email = daemon.outbox().join(format!(
        "email/opt_in_email_marketing_eva_confirm_{day}.eml"
    ));
    let text = wait_for("the confirmation", Duration::from_secs(30), || {
        std::fs::read_to_string(&email).ok()
    });
    // A transactional email is not tracked.
    assert!(links(&text, "/o/").is_empty(), "{text}");
    assert!(links(&text, "/c/").is_empty(), "{text}");
    let (status, stats) = daemon.get("/admin/double-opt-in", true);
    assert_eq!(status, 200);
    let stats: Json = serde_json::from_str(&stats).expect("JSON");
    assert_eq!(stats["double_opt_in"][0]["requested"], json!(1));
    assert_eq!(stats["double_opt_in"][0]["activated"], json!(0));

    let confirm = format!("{}{}", daemon.url, links(&text, "/confirm/")[0]);
    let http = client();
    let page = http.get(&confirm).send().expect("the page");
    assert_eq!(page.status().as_u16(), 200, "{confirm}\n{text}");
    assert_eq!(consent(&daemon, "eva", "email_marketing"), Json::Null);
    let answer = http.post(&confirm).send().expect("confirm");
    assert_eq!(answer.status().as_u16(), 200);

    let trace = daemon.contact("eva");
    assert_eq!(trace["consents"]["email_marketing"], json!(true));
    let outcomes = trace["outcomes"].as_array().expect("outcomes");
    assert!(
        outcomes
            .iter()
            .any(|o| o["kind"] == json!("consent")
                && o["detail"]["source"] == json!("double_opt_in")),
        "{outcomes:?}"
    );
    // `when consent email_marketing granted` started the welcome series.
    assert!(
        outcomes
            .iter()
            .any(|o| o["kind"] == json!("enter") && o["journey"] == json!("welcome_series")),
        "{outcomes:?}"
    );
    let (_, stats) = daemon.get("/admin/double-opt-in", true);
    let stats: Json = serde_json::from_str(&stats).expect("JSON");
    assert_eq!(stats["double_opt_in"][0]["activated"], json!(1));
    assert_eq!(stats["double_opt_in"][0]["activation_rate"], json!(1.0));
}
