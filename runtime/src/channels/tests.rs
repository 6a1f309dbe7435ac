//! The channels against real servers: an aiosmtpd process (`runtime/tests/smtp/server.py`,
//! found through `CAIRN_TEST_PYTHON`) for email, axum servers on loopback for the SMS
//! and push providers. Every scenario goes through the dispatcher and a real store, so
//! what is asserted is what `cairn status` and the admin API show.

use super::*;
use crate::dispatch::{DispatchConfig, Dispatcher};
use crate::engine::Links;
use crate::model::{Effects, OutboxMessage};
use crate::process::Core;
use crate::store::Store;
use crate::store::channels::{MessageFilter, MessageRow};
use crate::time::SystemClock;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::sync::Arc;

/// The variable naming the Python that has aiosmtpd (`.ci/run` sets it).
pub const PYTHON_VAR: &str = "CAIRN_TEST_PYTHON";

/// The test SMTP server, or `None` (with a note) when `CAIRN_TEST_PYTHON` is unset.
/// Panics when it is set and the server cannot run, or when it is unset under CI (`CI`
/// set): a broken setup is not a skip.
pub struct SmtpServer;

impl SmtpServer {
    pub fn start(
        test: &str,
        port: u16,
        maildir: &Path,
        count_only: bool,
    ) -> Option<bench::SmtpSink> {
        let python = bench::test_python(test)?;
        match bench::SmtpSink::start_on(&python, port, maildir, count_only) {
            Ok(sink) => Some(sink),
            Err(e) => panic!("{PYTHON_VAR} is set, but {e}"),
        }
    }
}

/// A port nothing listens on (until a test starts something there).
pub fn free_port() -> u16 {
    bench::free_port().expect("a free port")
}

/// Queues `messages` for contact `ana` in one transaction, as the engine would.
pub async fn queue(store: &Store, messages: Vec<OutboxMessage>) {
    let mut plan = cairn_plan::Plan::new("test");
    // `cart_reminder` is marketing, `receipt` transactional.
    for (name, transactional) in [("cart_reminder", false), ("receipt", true)] {
        plan.templates.insert(
            name.into(),
            cairn_plan::Template {
                name: name.into(),
                channel: cairn_plan::Channel::Email,
                transactional,
                parts: std::collections::BTreeMap::new(),
            },
        );
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let mut tx = store.begin().await.expect("begin");
    let mut state = tx.load_state("ana", now).await.expect("state");
    let effects = Effects {
        messages,
        ..Effects::default()
    };
    tx.apply_effects(&mut state, &effects, &plan, now)
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
}

pub fn email(step: &str, to: &str, payload: Json) -> OutboxMessage {
    OutboxMessage {
        run_id: "cart/ana/1".into(),
        step: step.into(),
        visit: 1,
        channel: "email".into(),
        template: Some("cart_reminder".into()),
        address: to.into(),
        payload,
        not_before: 0,
    }
}

fn core(store: Store) -> Arc<Core> {
    Arc::new(Core::new(
        store,
        Arc::new(SystemClock),
        Links::default(),
        "dispatcher-1".into(),
    ))
}

fn fast_retries(config: &mut DispatchConfig) {
    config.first_backoff = std::time::Duration::from_millis(100);
    config.max_backoff = std::time::Duration::from_millis(400);
    config.max_attempts = 5;
}

async fn messages(store: &Store) -> Vec<MessageRow> {
    let mut rows = store
        .list_messages(&MessageFilter::default())
        .await
        .expect("list the messages");
    rows.sort_by(|a, b| a.step.cmp(&b.step));
    rows
}

async fn message(store: &Store, step: &str) -> MessageRow {
    messages(store)
        .await
        .into_iter()
        .find(|m| m.step == step)
        .unwrap_or_else(|| panic!("no message `{step}`"))
}

/// Dispatches until no message is pending or `seconds` pass.
async fn settle(dispatcher: &Dispatcher, store: &Store, seconds: u64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < until {
        dispatcher.dispatch_once().await.expect("dispatch");
        if store.outbox_counts().await.expect("counts").pending == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn received(maildir: &Path) -> Vec<Json> {
    let mut files: Vec<_> = std::fs::read_dir(maildir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .map(|p| {
            serde_json::from_str(&std::fs::read_to_string(p).expect("read a summary"))
                .expect("a JSON summary")
        })
        .collect()
}

fn smtp_config(dir: &Path, port: u16) -> DispatchConfig {
    let mut config = DispatchConfig::new(dir.join("outbox"), "whs_test".into());
    let mut smtp = SmtpConfig::new("127.0.0.1");
    smtp.port = Some(port);
    smtp.tls = TlsMode::None;
    smtp.timeout = std::time::Duration::from_secs(1);
    smtp.pool_size = 4;
    config.smtp = Some(smtp);
    config.email_from = "Shop <news@shop.example>".into();
    config.email_reply_to = Some("help@shop.example".into());
    config.public_url = Some("https://cairn.shop.example".into());
    config.link_secret = Some(b"link-key".to_vec());
    fast_retries(&mut config);
    config
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_its_structure_and_headers() {
    crate::store::tests::on_both("smtp_structure", |store| async move {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let maildir = dir.path().join("mail");
        let port = free_port();
        let Some(_server) = SmtpServer::start("smtp_structure", port, &maildir, false) else {
            return;
        };
        queue(
            &store,
            vec![
                email(
                    "remind",
                    "ana@example.com",
                    json!({"subject": "Ton panier t'attend", "html": "<p>Bonjour <b>Ana</b></p>",
                           "text": "Bonjour Ana"}),
                ),
                email(
                    "nudge",
                    "ana@example.com",
                    json!({"subject": "Only HTML", "html": "<p>Hi&nbsp;there</p>"}),
                ),
                OutboxMessage {
                    template: Some("receipt".into()),
                    ..email(
                        "receipt",
                        "ana@example.com",
                        json!({"subject": "Your receipt", "html": "<p>Paid</p>"}),
                    )
                },
            ],
        )
        .await;
        let core = core(store.clone());
        let dispatcher = Dispatcher::new(core, smtp_config(dir.path(), port)).expect("channels");
        settle(&dispatcher, &store, 10).await;

        let remind = message(&store, "remind").await;
        assert_eq!(remind.state, "sent", "{remind:?}");
        assert!(
            remind
                .provider_ref
                .as_deref()
                .is_some_and(|r| r.contains("queued as")),
            "the server's answer is kept: {remind:?}"
        );
        let mail = received(&maildir);
        assert_eq!(mail.len(), 3, "{mail:?}");
        let remind_mail = mail
            .iter()
            .find(|m| m["headers"]["Subject"] == json!("Ton panier t'attend"))
            .expect("the reminder, its subject decoded by Python's parser");
        let header = |name: &str| remind_mail["headers"][name].as_str().unwrap_or_default();
        assert_eq!(remind_mail["content_type"], json!("multipart/alternative"));
        assert_eq!(remind_mail["defects"], json!([]));
        let parts = remind_mail["parts"].as_array().expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["content_type"], json!("text/plain"));
        assert_eq!(
            parts[0]["body"].as_str().map(str::trim),
            Some("Bonjour Ana")
        );
        assert_eq!(parts[1]["content_type"], json!("text/html"));
        assert!(
            parts[1]["body"]
                .as_str()
                .unwrap_or_default()
                .contains("<b>Ana</b>")
        );
        assert_eq!(header("From"), "Shop <news@shop.example>");
        assert_eq!(header("Reply-To"), "help@shop.example");
        assert_eq!(header("To"), "ana@example.com");
        assert_eq!(remind_mail["rcpt_tos"], json!(["ana@example.com"]));
        assert_eq!(remind_mail["mail_from"], json!("news@shop.example"));
        assert!(!header("Date").is_empty());
        // The Message-ID is derived from the idempotency key: the same on every attempt.
        let id = header("Message-ID");
        assert!(
            id.ends_with(&format!(".{}@shop.example>", remind.id)),
            "{id}"
        );
        assert_eq!(header("X-Cairn-Idempotency-Key"), "cart/ana/1/remind/1");
        // RFC 8058 one-click unsubscribe, with a link the daemon can verify.
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        let unsubscribe = header("List-Unsubscribe");
        assert!(
            unsubscribe.starts_with("<https://cairn.shop.example/") && unsubscribe.ends_with('>'),
            "{unsubscribe}"
        );
        let token = crate::links::token_of(unsubscribe.trim_matches(['<', '>']));
        let link = crate::links::verify_unsubscribe(b"link-key", token).expect("a valid link");
        assert_eq!(link.contact_id, "ana");
        assert_eq!(link.outbox_id, Some(remind.id.to_string()));

        // A transactional email has no unsubscribe link.
        let receipt = mail
            .iter()
            .find(|m| m["headers"]["Subject"] == json!("Your receipt"))
            .expect("the receipt");
        assert!(
            receipt["headers"].get("List-Unsubscribe").is_none(),
            "{receipt}"
        );
        assert!(receipt["headers"].get("List-Unsubscribe-Post").is_none());

        // Without a text part, a plain-text alternative is made from the HTML.
        let nudge = mail
            .iter()
            .find(|m| m["headers"]["Subject"] == json!("Only HTML"))
            .expect("the HTML-only email");
        assert_eq!(nudge["content_type"], json!("multipart/alternative"));
        assert_eq!(
            nudge["parts"][0]["body"].as_str().map(str::trim),
            Some("Hi there")
        );
    })
    .await;
}

/// A server that wants a login (aiosmtpd with an authenticator): without credentials and
/// with a wrong password the messages wait, explained, instead of failing; with the
/// right ones they go, logged in as the configured user.
#[tokio::test]
async fn smtp_login_is_required_and_wrong_credentials_hold_messages_back() {
    crate::store::tests::on_both("smtp_auth", |store| async move {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let maildir = dir.path().join("mail");
        let port = free_port();
        let Some(python) = bench::test_python("smtp_auth") else {
            return;
        };
        let options = [
            std::ffi::OsStr::new("--auth"),
            std::ffi::OsStr::new("cairn:s3cret"),
        ];
        let _server = bench::SmtpSink::start_with(&python, port, &maildir, false, &options)
            .unwrap_or_else(|e| panic!("{PYTHON_VAR} is set, but {e}"));
        let body = json!({"subject": "Hello", "html": "<p>Hello</p>"});
        queue(&store, vec![email("a_login", "ana@example.com", body)]).await;
        let core = core(store.clone());
        let with = |user: Option<&str>, password: Option<&str>| {
            let mut config = smtp_config(dir.path(), port);
            if let Some(smtp) = config.smtp.as_mut() {
                smtp.username = user.map(str::to_string);
                smtp.password = password.map(str::to_string);
            }
            Dispatcher::new(core.clone(), config).expect("channels")
        };

        // No login: 530 at MAIL FROM.
        with(None, None).dispatch_once().await.expect("dispatch");
        let row = message(&store, "a_login").await;
        assert_eq!(row.state, "pending", "{row:?}");
        assert_eq!(row.error_kind.as_deref(), Some("temporary"), "{row:?}");
        let reason = row.last_error.clone().unwrap_or_default();
        assert!(
            reason.contains("530") && reason.contains("CAIRN_SMTP_USER"),
            "{reason}"
        );

        // A wrong password: 535 at AUTH.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        with(Some("cairn"), Some("wrong"))
            .dispatch_once()
            .await
            .expect("dispatch");
        let row = message(&store, "a_login").await;
        assert_eq!(row.state, "pending", "{row:?}");
        assert_eq!(row.attempts, 2, "{row:?}");
        let reason = row.last_error.clone().unwrap_or_default();
        assert!(
            reason.contains("refused the login of `cairn`") && reason.contains("535"),
            "{reason}"
        );
        assert!(received(&maildir).is_empty());

        // The right password: sent once, logged in.
        let dispatcher = with(Some("cairn"), Some("s3cret"));
        settle(&dispatcher, &store, 10).await;
        let row = message(&store, "a_login").await;
        assert_eq!(row.state, "sent", "{row:?}");
        let mail = received(&maildir);
        assert_eq!(mail.len(), 1, "{mail:?}");
        assert_eq!(mail[0]["auth_login"], json!("cairn"));
        assert_eq!(mail[0]["rcpt_tos"], json!(["ana@example.com"]));
    })
    .await;
}

#[tokio::test]
async fn smtp_failures_retry_or_fail_with_the_servers_reason_and_nothing_is_lost() {
    crate::store::tests::on_both("smtp_failures", |store| async move {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let maildir = dir.path().join("mail");
        let port = free_port();
        if bench::test_python("smtp_failures").is_none() {
            return;
        }
        let body = |s: &str| json!({"subject": s, "html": format!("<p>{s}</p>")});
        let mut batch = vec![
            email("a_tempfail", "tempfail@example.com", body("4xx")),
            email("b_reject", "reject@example.com", body("5xx")),
            email("c_slow", "slow@example.com", body("slow")),
            email("d_bad_address", "not an address", body("bad")),
            email(
                "e_empty",
                "ana@example.com",
                json!({"subject": "  ", "html": ""}),
            ),
        ];
        for i in 0..20 {
            batch.push(email(
                &format!("f_bulk_{i:02}"),
                &format!("contact{i}@example.com"),
                body("bulk"),
            ));
        }
        queue(&store, batch).await;
        let core = core(store.clone());
        let dispatcher = Dispatcher::new(core, smtp_config(dir.path(), port)).expect("channels");

        // The server is down: every deliverable message waits for a retry.
        dispatcher.dispatch_once().await.expect("dispatch");
        let bulk = message(&store, "f_bulk_00").await;
        assert_eq!(bulk.state, "pending", "{bulk:?}");
        assert_eq!(bulk.attempts, 1);
        assert_eq!(bulk.error_kind.as_deref(), Some("temporary"));
        assert!(
            bulk.last_error
                .as_deref()
                .is_some_and(|e| e.contains("could not be reached")),
            "{bulk:?}"
        );
        // Bad input fails at once, explained, without reaching any server.
        let bad = message(&store, "d_bad_address").await;
        assert_eq!(bad.state, "failed");
        assert_eq!(bad.error_kind.as_deref(), Some("invalid_address"));
        assert!(
            bad.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not an address"))
        );
        let empty = message(&store, "e_empty").await;
        assert_eq!(empty.state, "failed");
        assert_eq!(empty.error_kind.as_deref(), Some("invalid_message"));
        assert!(
            empty
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("empty subject")),
            "{empty:?}"
        );

        // It comes up: the retries go through.
        let Some(_server) = SmtpServer::start("smtp_failures", port, &maildir, false) else {
            return;
        };
        settle(&dispatcher, &store, 30).await;
        let rows = messages(&store).await;
        let pending: Vec<_> = rows.iter().filter(|m| m.state == "pending").collect();
        assert!(pending.is_empty(), "still pending: {pending:?}");

        let tempfail = message(&store, "a_tempfail").await;
        assert_eq!(tempfail.state, "sent", "{tempfail:?}");
        assert!(
            tempfail.attempts >= 3,
            "down, then 451, then accepted: {tempfail:?}"
        );
        let reject = message(&store, "b_reject").await;
        assert_eq!(reject.state, "failed", "{reject:?}");
        assert_eq!(reject.error_kind.as_deref(), Some("rejected"));
        let reason = reject.last_error.clone().unwrap_or_default();
        assert!(
            reason.contains("550") && reason.contains("mailbox unavailable"),
            "the server's reason is kept: {reason}"
        );
        let slow = message(&store, "c_slow").await;
        assert_eq!(slow.state, "sent", "a timeout is retried: {slow:?}");
        assert!(
            slow.attempts >= 3,
            "down, then a timeout, then accepted: {slow:?}"
        );

        // Nothing lost, nothing twice: every message sent is in the maildir once.
        let sent: Vec<&MessageRow> = rows.iter().filter(|m| m.state == "sent").collect();
        assert_eq!(sent.len(), 22, "20 bulk, the 4xx and the slow one");
        let mail = received(&maildir);
        assert_eq!(mail.len(), sent.len(), "each sent message arrived once");
        let mut ids: Vec<String> = mail
            .iter()
            .map(|m| {
                m["headers"]["Message-ID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), sent.len());
        let counts = store.outbox_counts().await.expect("counts");
        assert_eq!((counts.sent, counts.failed, counts.pending), (22, 3, 0));
    })
    .await;
}

#[tokio::test]
async fn a_hand_over_interrupted_by_a_crash_is_never_sent_again() {
    crate::store::tests::on_both("smtp_interrupted", |store| async move {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let maildir = dir.path().join("mail");
        let port = free_port();
        let Some(_server) = SmtpServer::start("smtp_interrupted", port, &maildir, false) else {
            return;
        };
        queue(
            &store,
            vec![
                email(
                    "crashed",
                    "ana@example.com",
                    json!({"subject": "a", "html": "a"}),
                ),
                email(
                    "fresh",
                    "ana@example.com",
                    json!({"subject": "b", "html": "b"}),
                ),
            ],
        )
        .await;
        // A first daemon claims both and starts handing `crashed` over, then dies.
        let now = jiff::Timestamp::now().as_millisecond();
        let claimed = store
            .claim_messages("dead-daemon", now, now + 1, 10)
            .await
            .expect("claim");
        let crashed: Vec<_> = claimed.iter().filter(|m| m.step == "crashed").collect();
        store
            .begin_handover(&crashed, "dead-daemon", now)
            .await
            .expect("hand-over");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        // Its leases expire; another daemon takes the messages over.
        let core = core(store.clone());
        let dispatcher = Dispatcher::new(core, smtp_config(dir.path(), port)).expect("channels");
        settle(&dispatcher, &store, 10).await;
        let crashed = message(&store, "crashed").await;
        assert_eq!(crashed.state, "failed", "{crashed:?}");
        assert_eq!(crashed.error_kind.as_deref(), Some("interrupted"));
        assert!(
            crashed
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("not sent again")),
            "{crashed:?}"
        );
        assert_eq!(message(&store, "fresh").await.state, "sent");
        let mail = received(&maildir);
        assert_eq!(mail.len(), 1, "only the fresh message went out");
        assert_eq!(mail[0]["headers"]["Subject"], json!("b"));
    })
    .await;
}

/// What a fake provider saw: path, headers, body.
type Seen = Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, String)>>>;

/// A fake SMS and push provider on loopback: `/sms` (JSON), Twilio's form API for
/// account `AC123` (auth token `tw-token`) and `/push`. Numbers script the answers:
/// `+15550000500` gets a 500 once, `+15550000400` a 400, `+15550000999` an answer
/// after 3 seconds once; others are accepted.
async fn fake_provider() -> (String, Seen) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let tries: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>> = Arc::default();
    let answer = {
        let seen = seen.clone();
        move |path: String, headers: HeaderMap, body: String, to: String| {
            let seen = seen.clone();
            let tries = tries.clone();
            async move {
                let n = {
                    let mut seen = seen.lock().expect("the requests");
                    seen.push((path.clone(), headers, body));
                    seen.len()
                };
                let first = {
                    let mut tries = tries.lock().expect("the tries");
                    let count = tries.entry(to.clone()).or_insert(0);
                    *count += 1;
                    *count == 1
                };
                let twilio = path.contains("/Accounts/");
                match to.as_str() {
                    "+15550000500" if first => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({"error": "try later"})),
                    ),
                    "+15550000400" if twilio => (
                        StatusCode::BAD_REQUEST,
                        axum::Json(
                            json!({"code": 21211, "message": "The 'To' number +15550000400 is not a valid phone number."}),
                        ),
                    ),
                    "+15550000400" => (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "number blocked"})),
                    ),
                    "+15550000999" if first => {
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        (StatusCode::OK, axum::Json(json!({"id": "late"})))
                    }
                    _ if twilio => (
                        StatusCode::CREATED,
                        axum::Json(json!({"sid": format!("SM{n}"), "status": "queued"})),
                    ),
                    _ => (StatusCode::OK, axum::Json(json!({"id": format!("p-{n}")}))),
                }
            }
        }
    };
    let json_route = {
        let answer = answer.clone();
        move |headers: HeaderMap, body: String| {
            let to = serde_json::from_str::<Json>(&body)
                .ok()
                .and_then(|j| j["to"].as_str().map(str::to_string))
                .unwrap_or_default();
            answer("/sms".into(), headers, body, to)
        }
    };
    let push_route = {
        let answer = answer.clone();
        move |headers: HeaderMap, body: String| {
            let to = serde_json::from_str::<Json>(&body)
                .ok()
                .and_then(|j| j["to"].as_str().map(str::to_string))
                .unwrap_or_default();
            answer("/push".into(), headers, body, to)
        }
    };
    let twilio_route = move |headers: HeaderMap, body: String| {
        let authorised = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                use base64::Engine as _;
                v == format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("AC123:tw-token")
                )
            });
        let to = body
            .split('&')
            .find_map(|p| p.strip_prefix("To="))
            .map(|t| t.replace("%2B", "+"))
            .unwrap_or_default();
        let answer = answer.clone();
        async move {
            if !authorised {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"message": "Authenticate"})),
                );
            }
            answer(
                "/2010-04-01/Accounts/AC123/Messages.json".into(),
                headers,
                body,
                to,
            )
            .await
        }
    };
    let app = axum::Router::new()
        .route("/sms", post(json_route))
        .route("/push", post(push_route))
        .route(
            "/2010-04-01/Accounts/AC123/Messages.json",
            post(twilio_route),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn sms(step: &str, to: &str, text: &str) -> OutboxMessage {
    OutboxMessage {
        run_id: "cart/ana/1".into(),
        step: step.into(),
        visit: 1,
        channel: "sms".into(),
        template: Some("cart_sms".into()),
        address: to.into(),
        payload: json!({ "text": text }),
        not_before: 0,
    }
}

#[tokio::test]
async fn sms_and_push_go_through_http_providers_and_bad_input_is_explained() {
    crate::store::tests::on_both("sms_json", |store| async move {
        let (url, seen) = fake_provider().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        queue(
            &store,
            vec![
                sms("a_ok", "+1 (555) 000-0100", "Your cart is waiting"),
                sms("b_500", "+15550000500", "retry me"),
                sms("c_400", "+15550000400", "blocked"),
                sms("d_slow", "+15550000999", "slow"),
                sms("e_bad_phone", "06 12 34 56 78", "no country code"),
                sms("f_empty", "+15550000101", "   "),
                OutboxMessage {
                    channel: "push".into(),
                    template: Some("cart_push".into()),
                    address: "device-token-1".into(),
                    payload: json!({"title": "Cart", "body": "Still there", "url": "https://shop.example/cart"}),
                    ..sms("g_push", "", "")
                },
                OutboxMessage {
                    channel: "push".into(),
                    address: "device-token-2".into(),
                    payload: json!({"title": "", "body": "no title"}),
                    ..sms("h_push_empty", "", "")
                },
            ],
        )
        .await;
        let mut config = DispatchConfig::new(dir.path().join("outbox"), "whs".into());
        config.sms = Some(SmsConfig {
            api: SmsApi::Json,
            url: format!("{url}/sms"),
            token: Some("sms-token".into()),
            from: "Shop".into(),
            timeout: std::time::Duration::from_secs(1),
        });
        config.push = Some(PushConfig {
            url: format!("{url}/push"),
            token: Some("push-token".into()),
            timeout: std::time::Duration::from_secs(1),
        });
        config.public_url = Some("https://cairn.shop.example".into());
        fast_retries(&mut config);
        let dispatcher = Dispatcher::new(core(store.clone()), config).expect("channels");
        settle(&dispatcher, &store, 20).await;

        let ok = message(&store, "a_ok").await;
        assert_eq!(ok.state, "sent", "{ok:?}");
        assert!(ok.provider_ref.as_deref().is_some_and(|r| r.starts_with("p-")));
        let retried = message(&store, "b_500").await;
        assert_eq!((retried.state.as_str(), retried.attempts), ("sent", 2), "{retried:?}");
        let blocked = message(&store, "c_400").await;
        assert_eq!(blocked.state, "failed");
        assert_eq!(blocked.error_kind.as_deref(), Some("rejected"));
        assert!(
            blocked.last_error.as_deref().is_some_and(|e| e.contains("number blocked")),
            "the provider's words are kept: {blocked:?}"
        );
        let slow = message(&store, "d_slow").await;
        assert_eq!(slow.state, "sent", "a timeout is retried: {slow:?}");
        assert!(slow.attempts >= 2);
        let bad = message(&store, "e_bad_phone").await;
        assert_eq!(bad.state, "failed");
        assert_eq!(bad.error_kind.as_deref(), Some("invalid_address"));
        assert!(bad.last_error.as_deref().is_some_and(|e| e.contains("E.164")));
        let empty = message(&store, "f_empty").await;
        assert_eq!(empty.error_kind.as_deref(), Some("invalid_message"));
        let push = message(&store, "g_push").await;
        assert_eq!(push.state, "sent", "{push:?}");
        let push_empty = message(&store, "h_push_empty").await;
        assert_eq!(push_empty.error_kind.as_deref(), Some("invalid_message"));

        let seen = seen.lock().expect("the requests").clone();
        // Bad input never reached the provider.
        assert!(seen.iter().all(|(_, _, body)| !body.contains("no country code")
            && !body.contains("no title")));
        let (_, headers, body) = seen
            .iter()
            .find(|(path, _, body)| path == "/sms" && body.contains("waiting"))
            .expect("the first SMS");
        let body: Json = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["to"], json!("+15550000100"), "normalised to E.164");
        assert_eq!(body["from"], json!("Shop"));
        assert_eq!(body["reference"], json!("cart/ana/1/a_ok/1"));
        assert_eq!(
            body["status_callback"],
            json!("https://cairn.shop.example/v1/channels/sms/status")
        );
        assert_eq!(headers["authorization"], "Bearer sms-token");
        assert_eq!(headers["idempotency-key"], "cart/ana/1/a_ok/1");
        let (_, headers, raw) = seen
            .iter()
            .find(|(path, _, _)| path == "/push")
            .expect("the push");
        let push: Json = serde_json::from_str(raw).expect("JSON");
        assert_eq!(push["to"], json!("device-token-1"));
        assert_eq!(push["title"], json!("Cart"));
        assert_eq!(push["url"], json!("https://shop.example/cart"));
        let timestamp: i64 = headers["x-cairn-timestamp"]
            .to_str()
            .expect("text")
            .parse()
            .expect("a timestamp");
        assert_eq!(
            headers["x-cairn-signature"].to_str().expect("text"),
            crate::dispatch::sign("push-token", timestamp, raw.as_bytes())
        );
    })
    .await;
}

/// `journey welcome { when signup; hi: send sms hello }` with a `phone` field.
fn sms_plan() -> cairn_plan::Plan {
    use cairn_plan::journey::{Journey, Reentry, Step, StepKind, Trigger};
    use cairn_plan::schema::{Field, Type};
    use cairn_plan::{Channel, StepId, Template, TemplatePart};
    use std::collections::BTreeMap;
    let mut plan = crate::test_plans::with_signup("shop");
    plan.schema.contact = vec![Field {
        name: "phone".into(),
        ty: Type::scalar("phone"),
        optional: true,
        default: None,
    }];
    plan.templates.insert(
        "hello".into(),
        Template {
            name: "hello".into(),
            channel: Channel::Sms,
            transactional: true,
            parts: BTreeMap::from([(
                "text".to_string(),
                TemplatePart {
                    source: "Welcome, from the {{ signup.form }}".into(),
                    file: None,
                },
            )]),
        },
    );
    plan.journeys.insert(
        "welcome".into(),
        Journey {
            name: "welcome".into(),
            description: None,
            trigger: Trigger::Event {
                event: "signup".into(),
                binding: Some("signup".into()),
                filter: None,
                unless: None,
            },
            audience: None,
            reentry: Reentry::Always,
            goal: None,
            exits: Vec::new(),
            quiet_hours: None,
            frequency_caps: None,
            migrations: Vec::new(),
            drain: false,
            entry: Some(StepId::new("hi")),
            steps: BTreeMap::from([(
                StepId::new("hi"),
                Step {
                    id: StepId::new("hi"),
                    kind: StepKind::Send {
                        channel: Channel::Sms,
                        template: "hello".into(),
                        best_time: false,
                    },
                    next: None,
                    source: None,
                },
            )]),
        },
    );
    plan.seal();
    plan
}

/// The daemon sends an SMS through a Twilio-compatible API, then Twilio-style form
/// callbacks (signed) record delivery and feed `sms_delivered` to the engine once;
/// forged callbacks change nothing. `GET /admin/messages` shows it all.
#[tokio::test]
async fn the_daemon_sends_sms_through_twilio_and_takes_signed_status_callbacks() {
    use crate::server::{ServeConfig, run};
    let (provider, seen) = fake_provider().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite:{}", dir.path().join("cairn.db").display());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut config = ServeConfig::new(database.clone(), dir.path().join("state"));
    config.plan = Some(sms_plan());
    config.write_key = Some("wk_test".into());
    config.admin_token = Some("at_test".into());
    config.public_url = base.clone();
    config.sms = Some(SmsConfig {
        api: SmsApi::Twilio {
            account_sid: "AC123".into(),
        },
        url: provider.clone(),
        token: Some("tw-token".into()),
        from: "+15550009999".into(),
        timeout: std::time::Duration::from_secs(2),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(run(
        config,
        listener,
        async {
            let _ = stopped.await;
        },
        |_| {},
    ));
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the daemon did not come up");
    let response = http
        .post(format!("{base}/v1/batch"))
        .basic_auth("wk_test", Some(""))
        .json(&json!({"batch": [
            {"type": "identify", "userId": "ana", "traits": {"phone": "+15550000100"}},
            {"type": "track", "userId": "ana", "event": "Signed Up", "messageId": "s1",
             "properties": {"form": "footer"}},
            {"type": "identify", "userId": "bob", "traits": {"phone": "+15550000400"}},
            {"type": "track", "userId": "bob", "event": "Signed Up", "messageId": "s2",
             "properties": {"form": "popup"}}
        ]}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);

    let list = |query: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let body: Json = http
                .get(format!("{base}/admin/messages{query}"))
                .bearer_auth("at_test")
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("JSON");
            serde_json::from_value::<Vec<MessageRow>>(body["messages"].clone()).expect("rows")
        }
    };
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = list("").await;
        if rows.len() == 2 && rows.iter().all(|m| m.state != "pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ana = rows
        .iter()
        .find(|m| m.contact_id == "ana")
        .expect("ana's SMS")
        .clone();
    let bob = rows
        .iter()
        .find(|m| m.contact_id == "bob")
        .expect("bob's SMS");
    assert_eq!(ana.state, "sent", "{rows:?}");
    let sid = ana.provider_ref.clone().expect("Twilio's SID is kept");
    assert!(sid.starts_with("SM"), "{sid}");
    assert_eq!(bob.state, "failed");
    assert_eq!(bob.error_kind.as_deref(), Some("rejected"));
    assert!(
        bob.last_error
            .as_deref()
            .is_some_and(|e| e.contains("not a valid phone number")),
        "{bob:?}"
    );
    let failed = list("?state=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].contact_id, "bob");
    let refused = http
        .get(format!("{base}/admin/messages?state=lost"))
        .bearer_auth("at_test")
        .send()
        .await
        .expect("list");
    assert_eq!(refused.status().as_u16(), 400);

    // What the provider received: Twilio's form, with our callback URL.
    let form = seen
        .lock()
        .expect("the requests")
        .iter()
        .find(|(_, _, body)| body.contains("From="))
        .map(|(_, _, body)| body.clone())
        .expect("a Twilio request");
    let callback_url = format!("{base}/v1/channels/sms/status");
    assert!(form.contains("Body=Welcome%2C+from+the+footer"), "{form}");
    assert!(form.contains("From=%2B15550009999"), "{form}");
    assert!(
        form.contains(&format!(
            "StatusCallback={}",
            callback_url.replace(':', "%3A").replace('/', "%2F")
        )),
        "{form}"
    );

    // Callbacks: a forged one is refused, a signed one records the delivery, a repeat
    // adds nothing.
    let fields = vec![
        ("AccountSid".to_string(), "AC123".to_string()),
        ("MessageSid".to_string(), sid.clone()),
        ("MessageStatus".to_string(), "delivered".to_string()),
    ];
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let post = |signature: String| {
        http.post(&callback_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(body.clone())
            .send()
    };
    let forged = post("bm90IGEgc2lnbmF0dXJl".into()).await.expect("post");
    assert_eq!(forged.status().as_u16(), 403);
    let signature = callbacks::twilio_signature("tw-token", &callback_url, &fields);
    for _ in 0..2 {
        let accepted = post(signature.clone()).await.expect("post");
        assert_eq!(
            accepted.status().as_u16(),
            200,
            "{:?}",
            accepted.text().await
        );
    }
    let ana = list("?contact=ana").await;
    assert_eq!(ana[0].delivery_status.as_deref(), Some("delivered"));
    assert!(ana[0].delivery_at.is_some());
    let trace: Json = http
        .get(format!("{base}/admin/contacts/ana"))
        .bearer_auth("at_test")
        .send()
        .await
        .expect("trace")
        .json()
        .await
        .expect("JSON");
    let delivered = trace.to_string().matches("sms_delivered").count();
    assert!(delivered >= 1, "sms_delivered reached the engine: {trace}");
    let _ = stop.send(());
    daemon.await.expect("join").expect("a clean shutdown");

    // Exactly one event, whatever the provider repeats.
    let store = Store::open(&database).await.expect("reopen");
    let events = store
        .event_names("ana")
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e == "sms_delivered")
        .count();
    assert_eq!(events, 1);
    store.close().await;
}

/// A private CA and a certificate it signed for `localhost`, written to `dir` as
/// `ca.pem`, `cert.pem` and `key.pem`.
fn private_ca(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Cairn test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("the CA");
    let key = rcgen::KeyPair::generate().expect("a server key");
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("the server certificate");
    std::fs::create_dir_all(dir).expect("a folder");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write the CA");
    std::fs::write(dir.join("cert.pem"), certificate.pem()).expect("write the certificate");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write the key");
}

/// aiosmtpd with the certificate in `tls` (`--tls starttls` requires STARTTLS before
/// any mail command; `--tls implicit` speaks TLS from the first byte).
fn tls_server(
    test: &str,
    port: u16,
    maildir: &Path,
    tls: &Path,
    mode: &str,
) -> Option<bench::SmtpSink> {
    let python = bench::test_python(test)?;
    let cert = tls.join("cert.pem");
    let key = tls.join("key.pem");
    let options = [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--tls".as_ref(),
        mode.as_ref(),
    ];
    match bench::SmtpSink::start_with(&python, port, maildir, false, &options) {
        Ok(sink) => Some(sink),
        Err(e) => panic!("{PYTHON_VAR} is set, but {e}"),
    }
}

/// A TLS test's setting: a private CA in `tls/` that signed the certificate of an SMTP
/// server in `mode` on `port`, and a store with one email queued for ana.
struct TlsCase {
    dir: tempfile::TempDir,
    maildir: std::path::PathBuf,
    port: u16,
    store: Store,
    _server: bench::SmtpSink,
}

impl TlsCase {
    /// `None` when no SMTP server can run here (see [`tls_server`]).
    async fn start(test: &str, mode: &str) -> Option<TlsCase> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let maildir = dir.path().join("mail");
        private_ca(&dir.path().join("tls"));
        let port = free_port();
        let server = tls_server(test, port, &maildir, &dir.path().join("tls"), mode)?;
        let store = Store::open_sqlite_file(&dir.path().join("cairn.db"))
            .await
            .expect("a store");
        queue(
            &store,
            vec![email(
                "remind",
                "ana@example.com",
                json!({"subject": "Hi", "text": "Hello"}),
            )],
        )
        .await;
        Some(TlsCase {
            dir,
            maildir,
            port,
            store,
            _server: server,
        })
    }
}

fn tls_config(dir: &Path, port: u16, tls: TlsMode, ca_file: &Path) -> DispatchConfig {
    let mut config = smtp_config(dir, port);
    let smtp = config.smtp.as_mut().expect("SMTP settings");
    smtp.host = "localhost".into();
    smtp.tls = tls;
    smtp.ca_file = Some(ca_file.to_path_buf());
    smtp.timeout = std::time::Duration::from_secs(5);
    config.max_attempts = 2;
    config
}

#[tokio::test]
async fn email_goes_over_starttls_and_implicit_tls_to_a_server_trusted_through_ca_file() {
    for (mode, tls) in [
        ("starttls", TlsMode::Starttls),
        ("implicit", TlsMode::Implicit),
    ] {
        let Some(case) = TlsCase::start(&format!("smtp_tls_{mode}"), mode).await else {
            return;
        };
        let (dir, maildir, store) = (case.dir.path(), &case.maildir, &case.store);
        let config = tls_config(dir, case.port, tls, &dir.join("tls/ca.pem"));
        let dispatcher = Dispatcher::new(core(store.clone()), config).expect("channels");
        settle(&dispatcher, store, 10).await;
        let remind = message(store, "remind").await;
        assert_eq!(remind.state, "sent", "{mode}: {remind:?}");
        let mail = received(maildir);
        assert_eq!(mail.len(), 1, "{mode}: {mail:?}");
        assert_eq!(mail[0]["headers"]["Subject"], json!("Hi"), "{mode}");
        store.close().await;
    }
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_with_a_recorded_reason() {
    for (mode, tls) in [
        ("starttls", TlsMode::Starttls),
        ("implicit", TlsMode::Implicit),
    ] {
        let Some(case) = TlsCase::start(&format!("smtp_wrong_ca_{mode}"), mode).await else {
            return;
        };
        let (dir, maildir, store) = (case.dir.path(), &case.maildir, &case.store);
        // A CA of the same name that did not sign the server's certificate.
        private_ca(&dir.join("other"));
        let config = tls_config(dir, case.port, tls, &dir.join("other/ca.pem"));
        let dispatcher = Dispatcher::new(core(store.clone()), config).expect("channels");

        // A certificate problem is temporary: the message waits for a retry...
        dispatcher.dispatch_once().await.expect("dispatch");
        let first = message(store, "remind").await;
        assert_eq!(first.state, "pending", "{mode}: {first:?}");
        assert_eq!(first.error_kind.as_deref(), Some("temporary"), "{mode}");
        let reason = first.last_error.clone().unwrap_or_default();
        assert!(
            reason.contains("TLS handshake with the SMTP server localhost:")
                && reason.contains("certificate"),
            "{mode}: {reason}"
        );
        // ... and fails, with the same reason, once its attempts are used up.
        settle(&dispatcher, store, 10).await;
        let last = message(store, "remind").await;
        assert_eq!(last.state, "failed", "{mode}: {last:?}");
        assert_eq!(last.attempts, 2, "{mode}");
        assert_eq!(last.error_kind.as_deref(), Some("temporary"), "{mode}");
        assert!(
            last.last_error.as_deref().is_some_and(
                |e| e.starts_with("gave up after 2 attempts") && e.contains("certificate")
            ),
            "{mode}: {last:?}"
        );
        assert!(received(maildir).is_empty(), "{mode}: nothing is delivered");
        store.close().await;
    }
}
