//! Test sends: `cairn preview --send-to` asks the running daemon to render a template
//! of its active plan and send it, marked as a test, to the address typed, through the
//! file outbox or a real SMTP server (aiosmtpd, from `CAIRN_TEST_PYTHON`).

use super::{Daemon, wait_for};
use serde_json::{Value as Json, json};
use std::time::Duration;

/// `cairn preview ARGS --server URL --token T` against `daemon`, in its project.
fn preview(daemon: &Daemon, args: &[&str]) -> (i32, String) {
    let output = crate::support::cairn()
        .arg("preview")
        .args(args)
        .args(["--server", &daemon.url, "--token", &daemon.admin_token])
        .current_dir(daemon.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("the cairn binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// POSTs a test send straight to the admin API; returns status and JSON body.
fn test_send(daemon: &Daemon, template: &str, body: &Json) -> (u16, Json) {
    let response = daemon
        .http
        .post(format!(
            "{}/admin/templates/{template}/test-send",
            daemon.url
        ))
        .bearer_auth(&daemon.admin_token)
        .json(body)
        .send()
        .expect("the daemon answers");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Json::Null))
}

#[test]
fn a_test_email_goes_to_the_file_outbox_marked_and_uncounted() {
    let daemon = Daemon::start("abandoned-cart");
    std::fs::write(
        daemon.dir.path().join("cart.json"),
        r#"{"cart_id": "c-9", "value": 42, "url": "https://nordkit.example/cart/c-9",
            "items": [{"sku": "MUG", "name": "Camp mug", "price": 42}]}"#,
    )
    .expect("write the cart");
    let (code, stderr) = preview(
        &daemon,
        &[
            "cart_reminder",
            "--send-to",
            "tester@shop.example",
            "--trait",
            "first_name=Tess",
            "--event",
            "cart=cart.json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("sent template `cart_reminder` of plan version 1 to tester@shop.example by email as a test"),
        "{stderr}"
    );
    let email = daemon.outbox().join("email");
    let file = wait_for("the test email", Duration::from_secs(10), || {
        std::fs::read_dir(&email)
            .ok()?
            .flatten()
            .next()
            .map(|e| e.path())
    });
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("test_") && name.ends_with("_cart_reminder_1.eml"),
        "{name}"
    );
    let eml = std::fs::read_to_string(&file).expect("the .eml file");
    assert!(eml.contains("To: tester@shop.example\r\n"), "{eml}");
    assert!(
        eml.contains("Subject: [test] You left 42 EUR in your cart, Tess\r\n"),
        "{eml}"
    );
    assert!(eml.contains("X-Cairn-Test: 1\r\n"), "{eml}");
    assert!(eml.contains("<td>Camp mug</td>"), "{eml}");
    // Its links are tracked like a real message's.
    assert!(eml.contains("/c/ey"), "{eml}");

    // Not a message of any contact or run: nothing queued, no contact made.
    let status: Json = serde_json::from_str(&daemon.get("/admin/status", true).1).expect("status");
    assert_eq!(
        status["outbox"],
        json!({"pending": 0, "sent": 0, "failed": 0}),
        "{status}"
    );
    assert_eq!(status["totals"]["contacts"], json!(0), "{status}");
    assert!(
        daemon.log().contains("sent a test message"),
        "{}",
        daemon.log()
    );

    // An address of the wrong kind, an unknown template, data that does not fit.
    let (status, body) = test_send(&daemon, "cart_sms", &json!({"to": "tester@shop.example"}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an address for template `cart_sms`")),
        "{body}"
    );
    let (status, body) = test_send(&daemon, "cart_remindr", &json!({"to": "a@shop.example"}));
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no template `cart_remindr`")
                && e.contains("`cart_reminder`, `cart_sms`")),
        "{body}"
    );
    let (status, body) = test_send(
        &daemon,
        "cart_sms",
        &json!({"to": "+33612345678", "bindings": {"cart": {"value": "lots"}}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("cart.value")),
        "{body}"
    );
    let (status, _) = daemon
        .http
        .post(format!("{}/admin/templates/cart_sms/test-send", daemon.url))
        .json(&json!({"to": "+33612345678"}))
        .send()
        .map(|r| (r.status().as_u16(), ()))
        .expect("the daemon answers");
    assert_eq!(status, 401);
    // The CLI reports the daemon's refusal and exits 1.
    let (code, stderr) = preview(&daemon, &["cart_sms", "--send-to", "not-a-phone"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("expected a phone number"), "{stderr}");
    assert_eq!(std::fs::read_dir(&email).expect("the outbox").count(), 1);
}

#[test]
fn a_test_email_goes_through_a_real_smtp_server() {
    let mail = tempfile::tempdir().expect("a temporary directory");
    let Some(server) = super::channels::smtp_server("preview_smtp", mail.path()) else {
        return;
    };
    let daemon = super::channels::serve_mailing_to(
        &server,
        &[("CAIRN_EMAIL_FROM", "Nordkit <news@nordkit.example>")],
    );
    let (code, stderr) = preview(
        &daemon,
        &["cart_reminder", "--send-to", "tester@shop.example"],
    );
    assert_eq!(code, 0, "{stderr}");
    let received =
        super::channels::first_received(mail.path(), "the test email at the SMTP server");
    assert_eq!(received["rcpt_tos"], json!(["tester@shop.example"]));
    assert_eq!(
        received["headers"]["Subject"],
        json!("[test] You left 129.29 EUR in your cart, Ana")
    );
    assert_eq!(received["headers"]["X-Cairn-Test"], json!("1"));
    assert_eq!(
        received["headers"]["From"],
        json!("Nordkit <news@nordkit.example>")
    );
    // Not a contact's marketing message: no one-click unsubscribe header.
    assert!(
        received["headers"].get("List-Unsubscribe").is_none(),
        "{received}"
    );
    assert!(!daemon.outbox().join("email").exists());
}
