//! `cairn trace` against the real daemon: Ana leaves a cart, gets the reminder by email
//! (and no SMS, without the consent), opens it and orders; her later carts and orders
//! start nothing, and the trace says why.

use super::respect::{links, on_both};
use super::{Daemon, hours_ago, wait_for};
use crate::support::{Run, project, run_in};
use serde_json::{Value as Json, json};
use std::time::Duration;

const SHOP: &str = r#"
contact {
  email      email?
  phone      phone?
  first_name string?
  timezone   timezone = "UTC"
}
consent email_marketing for email
consent sms_marketing for sms
tag vip_card

event cart_updated "Cart Updated" { cart_id string, value money, url url }
event order_completed "Order Completed" { order_id string, total money }

template cart_reminder email {
  subject "You left {{ cart.value }} in your cart"
  html """
    <p>{{ contact.first_name | default('Hi') }}, <a href="{{ cart.url }}">your cart</a> is waiting.</p>
    <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
  """
}
template cart_sms sms { text "Your cart is waiting: {{ cart.url }}" }
template big_thanks email {
  subject "Thank you"
  html """<p>Thank you.</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>"""
}

journey abandoned_cart {
  when cart_updated as cart unless order_completed within 2h
  audience consented(email_marketing)
  reenter after 7d
  goal order_completed within 7d

  remind: send email cart_reminder
  nudge: send sms cart_sms
  wait 1d
}

journey big_spender {
  when order_completed as order
  audience consented(email_marketing) and order.total >= 500 EUR
  thank: send email big_thanks
}

journey vip_welcome {
  when tag vip_card added
  audience consented(email_marketing)
  welcome: send email big_thanks
}
"#;

fn track(daemon: &Daemon, event: &str, id: &str, timestamp: &str, properties: Json) {
    let (status, body) = daemon.post(
        "/v1/track",
        &json!({
            "type": "track", "userId": "ana", "event": event, "messageId": id,
            "timestamp": timestamp, "properties": properties
        }),
    );
    assert_eq!(status, 200, "{body}");
}

fn cart(daemon: &Daemon, id: &str, timestamp: &str) {
    let properties = json!({
        "cart_id": id, "value": "129.00 EUR", "url": format!("https://shop.example/cart/{id}")
    });
    track(daemon, "Cart Updated", id, timestamp, properties);
}

fn order(daemon: &Daemon, id: &str, timestamp: &str) {
    let properties = json!({ "order_id": id, "total": "80.00 EUR" });
    track(daemon, "Order Completed", id, timestamp, properties);
}

/// Waits until Ana's trace (from the admin API) passes `done`.
fn wait_for_trace(daemon: &Daemon, what: &str, done: impl Fn(&Json) -> bool) -> Json {
    wait_for(what, Duration::from_secs(30), || {
        let (status, body) = daemon.get("/admin/contacts/ana/trace", true);
        assert_eq!(status, 200, "{body}");
        let trace: Json = serde_json::from_str(&body).expect("a trace");
        done(&trace).then_some(trace)
    })
}

fn kinds(lines: &Json) -> Vec<String> {
    lines
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["kind"].as_str().map(str::to_string))
        .collect()
}

/// `text` with every `2026-03-03 12:00:00Z` replaced by `[time]`: the daemon runs on
/// the wall clock.
fn redact_times(text: &str) -> String {
    const SHAPE: &[u8] = b"dddd-dd-dd dd:dd:ddZ";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let matches = bytes.len() - i >= SHAPE.len()
            && SHAPE.iter().zip(&bytes[i..]).all(|(shape, b)| match shape {
                b'd' => b.is_ascii_digit(),
                other => other == b,
            });
        if matches {
            out.push_str("[time]");
            i += SHAPE.len();
        } else {
            let c = text[i..].chars().next().expect("a character");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn trace(daemon: &Daemon, args: &[&str]) -> Run {
    let mut all = vec![
        "trace",
        "--server",
        &daemon.url,
        "--token",
        &daemon.admin_token,
    ];
    all.extend_from_slice(args);
    run_in(daemon.dir.path(), &all)
}

#[test]
fn trace_says_why_ana_got_the_reminder_and_why_nothing_else_started() {
    on_both("trace", ana_and_her_carts);
}

fn ana_and_her_carts(env: &[(&str, &str)]) {
    let daemon = Daemon::start_in_with(project(&[("shop.cairn", SHOP.as_bytes())]), env);
    let (status, body) = daemon.post(
        "/v1/identify",
        &json!({"userId": "ana", "messageId": "id-1", "traits": {
            "email": "ana@example.com", "phone": "+33612345678", "first_name": "Ana",
            "consents": ["email_marketing"]
        }}),
    );
    assert_eq!(status, 200, "{body}");

    // A cart left three hours ago: the abandonment check is due at once. The email
    // goes out, the SMS is skipped without `sms_marketing`, the run waits a day.
    cart(&daemon, "c-1", &hours_ago(3));
    wait_for_trace(&daemon, "the reminder sent", |t| {
        kinds(&t["runs"][0]["lines"]).contains(&"sent".to_string())
    });
    let email = daemon
        .outbox()
        .join("email/abandoned_cart_ana_1_remind_1.eml");
    let text = std::fs::read_to_string(email).expect("the reminder in the outbox");
    let pixel = links(&text, "/o/");
    assert_eq!(pixel.len(), 1, "{text}");
    let opened = daemon
        .http
        .get(format!("{}{}", daemon.url, pixel[0]))
        .send()
        .expect("the pixel");
    assert_eq!(opened.status().as_u16(), 200);
    wait_for_trace(&daemon, "the open", |t| {
        kinds(&t["runs"][0]["lines"]).contains(&"opened".to_string())
    });

    // Another cart within the week: the re-entry policy refuses it.
    cart(&daemon, "c-2", &hours_ago(2));
    wait_for_trace(&daemon, "the re-entry refusal", |t| {
        kinds(&t["contact"]).contains(&"not_entered".to_string())
    });
    // An order: the goal of the run; too small for `big_spender`'s audience.
    order(&daemon, "o-1", &hours_ago(0));
    wait_for_trace(&daemon, "the goal", |t| {
        t["runs"][0]["ended"] == json!(true)
    });
    // An order three hours ago, then the cart it followed: no abandonment.
    order(&daemon, "o-2", &hours_ago(3));
    cart(&daemon, "c-3", &hours_ago(4));
    wait_for_trace(&daemon, "the cancelled abandonment", |t| {
        t["why_not"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| w["journey"] == "abandoned_cart" && w["reason"] == "followed")
    });

    let svg_file = daemon.dir.path().join("ana.svg");
    let svg_path = svg_file.to_str().expect("a UTF-8 path");
    let run = trace(&daemon, &["ana", "--svg", svg_path]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("ana", redact_times(&run.stdout));

    let svg = std::fs::read_to_string(&svg_file).expect("the picture");
    let svg = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let marks: Vec<&str> = svg
        .descendants()
        .filter(|n| n.attribute("class") == Some("mark"))
        .filter_map(|n| n.attribute("data-kind"))
        .collect();
    assert_eq!(
        marks,
        [
            "event", "enter", "send", "skip", "sent", "opened", "goal", "exit"
        ]
    );

    // One journey, as JSON.
    let run = trace(
        &daemon,
        &["ana", "--journey", "big_spender", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Json = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(json["runs"], json!([]));
    assert_eq!(json["why_not"][0]["reason"], "audience");
    assert_eq!(
        kinds(&json["contact"]),
        ["consent", "not_entered", "not_entered"]
    );

    // Bad input: a clear error, exit 2.
    for (args, error) in [
        (&["nobody"][..], "no contact `nobody`"),
        (&["ana", "--journey", "nope"][..], "no journey `nope`"),
        (
            &["ana", "--since", "yesterday"][..],
            "`--since yesterday` is not a date or time",
        ),
    ] {
        let run = trace(&daemon, args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains(error), "{args:?}: {}", run.stderr);
    }

    // Erased: the trace says so and keeps only what statistics count.
    let erase = run_in(
        daemon.dir.path(),
        &[
            "contacts",
            "erase",
            "ana",
            "--yes",
            "--server",
            &daemon.url,
            "--token",
            &daemon.admin_token,
        ],
    );
    assert_eq!(erase.code, 0, "{}", erase.stderr);
    let run = trace(&daemon, &["ana", "--since", "2020-01-01"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("was erased"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("remind: email `cart_reminder` queued\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("ana@example.com"), "{}", run.stdout);
    assert!(
        redact_times(&run.stdout).contains(
            "  abandoned_cart: [time]  the contact was erased [time]: no journey starts for them\n"
        ),
        "{}",
        run.stdout
    );
}
