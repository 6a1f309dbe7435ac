//! Real channels through the `cairn` binary: `cairn serve` configured by environment
//! variables sends the abandoned-cart reminder to a real SMTP server process (aiosmtpd,
//! from `CAIRN_TEST_PYTHON`), and refuses channel settings that cannot work.

use super::{Daemon, cart, copy_dir, hours_ago, wait_for};
use crate::support::{repo_root, run_in, zone_at_noon};
use cairn_runtime::channels::bench::SmtpSink;
use serde_json::{Value as Json, json};
use std::time::Duration;

pub(super) fn smtp_server(test: &str, maildir: &std::path::Path) -> Option<SmtpSink> {
    let python = cairn_runtime::channels::bench::test_python(test)?;
    match SmtpSink::start(&python, maildir, false) {
        Ok(sink) => Some(sink),
        Err(e) => panic!("CAIRN_TEST_PYTHON is set, but {e}"),
    }
}

/// The abandoned-cart example served with its email going to `server` (no TLS), and
/// the settings in `more`.
pub(super) fn serve_mailing_to(server: &SmtpSink, more: &[(&str, &str)]) -> Daemon {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/abandoned-cart"), dir.path());
    let port = server.port.to_string();
    let mut env = vec![
        ("CAIRN_SMTP_HOST", "127.0.0.1"),
        ("CAIRN_SMTP_PORT", port.as_str()),
        ("CAIRN_SMTP_TLS", "none"),
    ];
    env.extend_from_slice(more);
    Daemon::start_in_with(dir, &env)
}

/// The first message the SMTP server wrote to `mail`, as its JSON summary.
pub(super) fn first_received(mail: &std::path::Path, what: &str) -> Json {
    let summary = mail.join("1.json");
    let text = wait_for(what, Duration::from_secs(30), || {
        std::fs::read_to_string(&summary).ok()
    });
    serde_json::from_str(&text).expect("a JSON summary")
}

#[test]
fn serve_sends_the_reminder_through_a_real_smtp_server() {
    let mail = tempfile::tempdir().expect("a temporary directory");
    let Some(server) = smtp_server("serve_smtp", mail.path()) else {
        return;
    };
    let port = server.port.to_string();
    let daemon = serve_mailing_to(
        &server,
        &[
            ("CAIRN_EMAIL_FROM", "Shop <news@shop.example>"),
            ("CAIRN_PUBLIC_URL", "https://cairn.shop.example"),
        ],
    );
    assert!(
        daemon.log().contains(&format!(
            "emails go through SMTP at 127.0.0.1:{port} (no TLS)"
        )),
        "{}",
        daemon.log()
    );
    let (status, body) = daemon.post(
        "/v1/identify",
        &json!({"userId": "ana", "messageId": "id-1", "traits": {
            "email": "ana@example.com", "first_name": "Ana", "timezone": zone_at_noon(),
            "consents": ["email_marketing", "sms_marketing"]
        }}),
    );
    assert_eq!((status, &body), (200, &json!({"success": true})));
    let (status, body) = daemon.post("/v1/track", &cart("ana", "cart-1", &hours_ago(3)));
    assert_eq!(status, 200, "{body}");

    let received = first_received(mail.path(), "the reminder at the SMTP server");
    assert_eq!(received["rcpt_tos"], json!(["ana@example.com"]));
    assert_eq!(
        received["headers"]["Subject"],
        json!("You left 129.00 EUR in your cart, Ana")
    );
    assert_eq!(
        received["headers"]["From"],
        json!("Shop <news@shop.example>")
    );
    assert_eq!(received["content_type"], json!("multipart/alternative"));
    let unsubscribe = received["headers"]["List-Unsubscribe"]
        .as_str()
        .unwrap_or_default();
    assert!(
        unsubscribe.starts_with("<https://cairn.shop.example/unsubscribe/"),
        "{received}"
    );
    assert_eq!(
        received["headers"]["List-Unsubscribe-Post"],
        json!("List-Unsubscribe=One-Click")
    );
    // Nothing went to the file outbox.
    assert!(!daemon.outbox().join("email").exists());

    let (status, listed) = daemon.get("/admin/messages?contact=ana", true);
    assert_eq!(status, 200, "{listed}");
    let listed: Json = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed["messages"][0]["state"], json!("sent"), "{listed}");
    assert_eq!(listed["messages"][0]["channel"], json!("email"));

    let (code, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn serve_refuses_channel_settings_that_cannot_work() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/abandoned-cart"), dir.path());
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", ".", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        run_in(dir.path(), &args)
    };
    let run = serve(&["--smtp-host", "127.0.0.1", "--smtp-tls", "ssl"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("`ssl` is not a TLS mode"),
        "{}",
        run.stderr
    );
    let run = serve(&["--smtp-host", "127.0.0.1"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no sender is set"), "{}", run.stderr);

    let manifest = dir.path().join("cairn.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("the manifest");
    text.push_str("\n[sms]\nprovider = \"carrier-pigeon\"\nfrom = \"+15550100\"\n");
    std::fs::write(&manifest, &text).expect("write the manifest");
    let run = serve(&[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("`carrier-pigeon` is not a provider"),
        "{}",
        run.stderr
    );
    text.push_str("smtp_host = \"misplaced\"\n");
    std::fs::write(&manifest, &text).expect("write the manifest");
    let run = serve(&[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("smtp_host"), "{}", run.stderr);
    assert!(
        !dir.path().join(".cairn/cairn.db").exists(),
        "nothing was created"
    );
}
