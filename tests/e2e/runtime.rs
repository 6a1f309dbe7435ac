//! `cairn serve`, `cairn deploy` and `cairn status` as a user runs them: the real daemon
//! on a loopback port against a copy of an example project, driven over HTTP, by the
//! CLI, and by Segment's own Python and Node SDKs.

use crate::support::{cairn, repo_root, zone_at_noon};

mod channels;
mod live;
mod pause;
mod preview;
mod trace;
use serde_json::{Value as Json, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `cairn serve`, stopped with SIGTERM when dropped.
struct Daemon {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    write_key: String,
    admin_token: String,
    stderr: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the project copy");
    for entry in std::fs::read_dir(from).expect("read the example").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            if entry.file_name() != ".cairn" {
                copy_dir(&path, &target);
            }
        } else {
            std::fs::copy(&path, &target).expect("copy a project file");
        }
    }
}

fn credential(file: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(file).expect("the credentials file");
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no `{key}` in {}", file.display()))
}

impl Daemon {
    /// Starts the daemon on a copy of `examples/<example>`, on a port the OS picks.
    fn start(example: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("a temporary directory");
        copy_dir(&repo_root().join("examples").join(example), dir.path());
        Daemon::start_in(dir)
    }

    fn start_in(dir: tempfile::TempDir) -> Daemon {
        Daemon::start_in_with(dir, &[])
    }

    /// Like [`Daemon::start_in`], with extra environment variables.
    fn start_in_with(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Daemon {
        let mut child = cairn()
            .arg("serve")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_WRITE_KEY")
            .env_remove("CAIRN_ADMIN_TOKEN")
            .env_remove("CAIRN_DATABASE_URL")
            .env_remove("CAIRN_LISTEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cairn serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address_tx.send(address.to_string());
                }
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let Ok(address) = address_rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let log = stderr.lock().map(|l| l.clone()).unwrap_or_default();
            panic!("cairn serve did not start:\n{log}");
        };
        let credentials = dir.path().join(".cairn/credentials");
        let daemon = Daemon {
            child,
            url: format!("http://{address}"),
            write_key: credential(&credentials, "write_key"),
            admin_token: credential(&credentials, "admin_token"),
            dir,
            stderr,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        };
        let health = daemon.get("/healthz", false);
        assert_eq!(health.0, 200, "{}", health.1);
        daemon
    }

    fn log(&self) -> String {
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// POSTs `body` to `path` with the write key; returns status and JSON body.
    fn post(&self, path: &str, body: &Json) -> (u16, Json) {
        self.post_raw(
            path,
            serde_json::to_vec(body).expect("JSON"),
            Some(&self.write_key),
        )
    }

    fn post_raw(&self, path: &str, body: Vec<u8>, key: Option<&str>) -> (u16, Json) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.basic_auth(key, Some(""));
        }
        let response = request.send().expect("the daemon answers");
        let status = response.status().as_u16();
        let text = response.text().expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        )
    }

    fn get(&self, path: &str, admin: bool) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if admin {
            request = request.bearer_auth(&self.admin_token);
        }
        let response = request.send().expect("the daemon answers");
        (response.status().as_u16(), response.text().expect("a body"))
    }

    fn contact(&self, id: &str) -> Json {
        let (status, body) = self.get(&format!("/admin/contacts/{id}"), true);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("a trace")
    }

    /// The `messageId`s of the contact's events, but the `contact_created` Cairn adds.
    fn event_ids(&self, id: &str) -> Vec<String> {
        self.contact(id)["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["name"] != json!("contact_created"))
            .filter_map(|e| e["message_id"].as_str().map(str::to_string))
            .collect()
    }

    fn outbox(&self) -> PathBuf {
        self.dir.path().join(".cairn/outbox")
    }

    /// SIGTERM, and the exit status once it has drained.
    fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        (None, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hours_ago(hours: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let secs = i64::try_from(now).expect("a time") - hours * 3_600;
    // RFC 3339 in UTC without a date library: the daemon parses it back.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn cart(id: &str, message_id: &str, timestamp: &str) -> Json {
    json!({
        "type": "track",
        "userId": id,
        "event": "Cart Updated",
        "messageId": message_id,
        "timestamp": timestamp,
        "properties": {
            "cart_id": format!("cart-{message_id}"),
            "value": "129.00 EUR",
            "url": "https://nordkit.example/cart/1",
            "items": [{"sku": "TENT-2P", "name": "Fjell 2 tent", "price": 129}]
        }
    })
}

#[test]
fn serve_ingests_events_and_writes_the_email_to_the_outbox() {
    let daemon = Daemon::start("abandoned-cart");
    assert!(daemon.log().contains("first start"), "{}", daemon.log());

    // An abandoned cart three hours old: the two-hour abandonment check is due at
    // once, and the journey's first step writes the reminder to the file outbox.
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

    let email = daemon
        .outbox()
        .join("email/abandoned_cart_ana_1_remind_1.eml");
    let text = wait_for(
        "the reminder in the outbox",
        Duration::from_secs(30),
        || std::fs::read_to_string(&email).ok(),
    );
    assert!(text.contains("To: ana@example.com\r\n"), "{text}");
    assert!(
        text.contains("Subject: You left 129.00 EUR in your cart, Ana"),
        "{text}"
    );
    let trace = daemon.contact("ana");
    let kinds: Vec<&str> = trace["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"enter") && kinds.contains(&"send"),
        "{kinds:?}"
    );

    // The same messageId again is accepted and ignored.
    let (status, _) = daemon.post("/v1/track", &cart("ana", "cart-1", &hours_ago(3)));
    assert_eq!(status, 200);
    assert_eq!(daemon.event_ids("ana"), vec!["cart-1".to_string()]);

    let (status, metrics) = daemon.get("/metrics", false);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("cairn_events_ingested_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_events_duplicate_total 1\n"),
        "{metrics}"
    );
    // The identify, the event and its retry, one after the other: a transaction each.
    assert!(
        metrics.contains("cairn_ingest_transactions_total 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_sends_total{channel=\"email\",outcome=\"sent\"} 1\n"),
        "{metrics}"
    );

    let (code, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("cairn serve: stopped"), "{log}");
}

#[test]
fn bad_requests_get_clear_errors_and_store_nothing() {
    let daemon = Daemon::start("abandoned-cart");
    let hello = json!({"userId": "bo", "event": "Cart Updated"});
    let body = serde_json::to_vec(&hello).expect("JSON");

    // No key, a wrong key.
    let (status, answer) = daemon.post_raw("/v1/track", body.clone(), None);
    assert_eq!(status, 401);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("write key")),
        "{answer}"
    );
    let (status, _) = daemon.post_raw("/v1/track", body, Some("wk_wrong"));
    assert_eq!(status, 401);

    // One good and two bad messages: 400 naming each bad one, and the good one is not
    // stored either.
    let (status, answer) = daemon.post(
        "/v1/batch",
        &json!({"batch": [
            {"type": "identify", "userId": "bo", "traits": {"email": "bo@example.com"}},
            cart("bo", "good-1", &hours_ago(0)),
            {"type": "track", "userId": "bo", "event": "Cart Updated", "messageId": "bad-1",
             "properties": {"cart_id": "c", "value": "a lot", "url": "https://x.example/c", "items": []}},
            {"type": "track", "userId": "bo", "event": "Wishlist Shared", "messageId": "bad-2"}
        ]}),
    );
    assert_eq!(status, 400, "{answer}");
    let rejected = answer["rejected"].as_array().expect("a list of rejections");
    assert_eq!(rejected.len(), 2, "{answer}");
    assert_eq!(rejected[0]["index"], json!(2));
    assert_eq!(rejected[0]["messageId"], json!("bad-1"));
    assert!(
        rejected[0]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("`properties.value`")),
        "{answer}"
    );
    assert_eq!(rejected[1]["index"], json!(3));
    assert!(
        rejected[1]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("unknown event `Wishlist Shared`"))
    );
    let (status, _) = daemon.get("/admin/contacts/bo", true);
    assert_eq!(status, 404, "nothing of the batch was stored");

    // Money without a currency in the text takes the call's `currency`.
    let mut with_currency = cart("bo", "good-2", &hours_ago(0));
    with_currency["properties"]["value"] = json!(19.5);
    with_currency["properties"]["currency"] = json!("USD");
    let (status, answer) = daemon.post("/v1/batch", &json!({"batch": [with_currency]}));
    assert_eq!(status, 200, "{answer}");
    let trace = daemon.contact("bo");
    let stored = trace["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["message_id"] == json!("good-2"))
        .cloned()
        .expect("the event");
    assert_eq!(stored["payload"]["value"], json!("19.5 USD"));

    // Too large: one message over 32 KB, a batch over 500 KB.
    let mut large = cart("bo", "large", &hours_ago(0));
    large["properties"]["note"] = json!("x".repeat(40 * 1024));
    let (status, answer) = daemon.post("/v1/track", &large);
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("32 KB")),
        "{answer}"
    );
    // Refused before its body was read: the daemon closes that connection rather than
    // leave the unread body in the way of the client's next request.
    let response = daemon
        .http
        .post(format!("{}/v1/track", daemon.url))
        .basic_auth(&daemon.write_key, Some(""))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&large).expect("JSON"))
        .send()
        .expect("the daemon answers");
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(
        response
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let (status, answer) = daemon.post("/v1/batch", &json!({"batch": [large]}));
    assert_eq!(status, 413, "{answer}");
    let many: Vec<Json> = (0..40)
        .map(|i| {
            let mut m = cart("bo", &format!("many-{i}"), &hours_ago(0));
            m["properties"]["note"] = json!("y".repeat(15 * 1024));
            m
        })
        .collect();
    let (status, answer) = daemon.post("/v1/batch", &json!({"batch": many}));
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("500 KB")),
        "{answer}"
    );

    // Not JSON at all.
    let (status, answer) = daemon.post_raw("/v1/track", b"{nope".to_vec(), Some(&daemon.write_key));
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid JSON")),
        "{answer}"
    );
    assert_eq!(daemon.event_ids("bo"), vec!["good-2".to_string()]);
}

#[test]
fn deploy_status_and_rollback_through_the_cli() {
    let daemon = Daemon::start("abandoned-cart");
    let project = daemon.dir.path().to_path_buf();
    let run = |args: &[&str]| {
        let output = cairn()
            .args(args)
            .current_dir(&project)
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_ADMIN_TOKEN")
            .env_remove("CAIRN_SERVER")
            .output()
            .expect("run cairn");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    // The project as it is was deployed by `serve`: deploying it again is a no-op.
    let (code, _, err) = run(&["deploy", ".", "--server", &daemon.url]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 1 (hash"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");

    // A change makes version 2.
    let journeys = project.join("journeys.cairn");
    let text = std::fs::read_to_string(&journeys).expect("read");
    std::fs::write(
        &journeys,
        text.replace("reenter after 7d", "reenter after 14d"),
    )
    .expect("write");
    let (code, _, err) = run(&["deploy", "--server", &daemon.url]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 2 is active"), "{err}");

    let (code, out, err) = run(&[
        "status",
        "--server",
        &daemon.url,
        "--token",
        &daemon.admin_token,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("project `abandoned-cart`, active version 2"),
        "{out}"
    );
    assert!(out.contains("journey `abandoned_cart`"), "{out}");
    let (code, out, _) = run(&["status", "--server", &daemon.url, "--format", "json"]);
    assert_eq!(code, 0);
    let status: Json = serde_json::from_str(&out).expect("JSON status");
    assert_eq!(status["versions"].as_array().map(Vec::len), Some(2));

    let (code, _, err) = run(&["deploy", "--rollback", "--server", &daemon.url]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 1 is active"), "{err}");

    // A wrong token is refused by the daemon; no token at all is refused before.
    let (code, _, err) = run(&["deploy", "--server", &daemon.url, "--token", "at_wrong"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("401"), "{err}");
    let elsewhere = tempfile::tempdir().expect("a temporary directory");
    let output = cairn()
        .args([
            "deploy",
            &project.display().to_string(),
            "--server",
            &daemon.url,
        ])
        .current_dir(elsewhere.path())
        .env_remove("CAIRN_ADMIN_TOKEN")
        .output()
        .expect("run cairn");
    assert_eq!(
        output.status.code(),
        Some(0),
        "the project's own credentials are found"
    );
    std::fs::remove_file(project.join(".cairn/credentials")).expect("remove the credentials");
    let (code, _, err) = run(&["deploy", "--server", &daemon.url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs the daemon's admin token"), "{err}");
}

/// Whether a test that needs an outside tool may be skipped here: locally yes (with a
/// note), in CI never.
fn skip_without(what: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing; `.ci/run` installs it"
    );
    eprintln!("skipped: {what} is missing (`.ci/run` installs it)");
    true
}

fn sdk_python() -> Option<PathBuf> {
    let venv = repo_root().join("target/sdk-venv/bin/python");
    let candidates = [
        std::env::var_os("CAIRN_SDK_PYTHON").map(PathBuf::from),
        Some(venv),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import segment.analytics"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn assert_sdk_calls_stored(daemon: &Daemon, user: &str, first_name: &str) {
    let trace = daemon.contact(user);
    assert_eq!(trace["traits"]["first_name"], json!(first_name), "{trace}");
    assert_eq!(trace["consents"]["email_marketing"], json!(true), "{trace}");
    let names: Vec<&str> = trace["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"cart_updated"), "{names:?}");
    assert!(names.contains(&"page_viewed"), "{names:?}");
    let page = trace["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["name"] == json!("page_viewed"))
        .expect("a page view");
    assert_eq!(page["payload"]["path"], json!("/pricing"), "{page}");
    assert!(
        trace["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["name"] != json!("contact_created"))
            .all(|e| e["message_id"].is_string()),
        "the SDK's messageIds are kept"
    );
}

#[test]
fn segments_python_sdk_sends_to_the_daemon() {
    let Some(python) = sdk_python() else {
        skip_without("the Python package `segment-analytics-python`");
        return;
    };
    let daemon = Daemon::start("abandoned-cart");
    let script = repo_root().join("tests/sdk/python/send.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([&daemon.url, &daemon.write_key, "py-ana"])
        .output()
        .expect("run the Python SDK script");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    assert_sdk_calls_stored(&daemon, "py-ana", "Ana");

    // With a wrong write key the SDK reports the daemon's 401.
    let output = Command::new(&python)
        .arg(&script)
        .args([&daemon.url, "wk_wrong", "py-eve"])
        .output()
        .expect("run the Python SDK script");
    assert!(!output.status.success());
}

#[test]
fn segments_node_sdk_sends_to_the_daemon() {
    let dir = repo_root().join("tests/sdk/node");
    let installed = dir
        .join("node_modules/@segment/analytics-node/package.json")
        .is_file();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed || !node {
        skip_without("Node.js with `@segment/analytics-node` in tests/sdk/node");
        return;
    }
    let daemon = Daemon::start("abandoned-cart");
    let output = Command::new("node")
        .arg(dir.join("send.mjs"))
        .args([&daemon.url, &daemon.write_key, "node-noor"])
        .current_dir(&dir)
        .output()
        .expect("run the Node SDK script");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    assert_sdk_calls_stored(&daemon, "node-noor", "Noor");
}

/// The welcome project of the in-flight tests: `journey` is the journey's steps.
fn welcome_project(journey: &str) -> String {
    format!(
        "contact {{\n  email email?\n}}\nevent signed_up {{ plan string }}\nevent confirmed {{}}\n\
         template hello email transactional {{\n  subject \"Hello\"\n  html \"<p>Hello</p>\"\n}}\n\n\
         journey welcome {{\n  when signed_up\n  audience true\n{journey}}}\n"
    )
}

#[test]
fn a_deploy_that_strands_contacts_is_refused_and_a_migration_moves_them_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let source = dir.path().join("welcome.cairn");
    let v1 = "  first: wait 3d\n  send email hello\n";
    std::fs::write(&source, welcome_project(v1)).expect("write v1");
    let daemon = Daemon::start_in(dir);
    for who in ["ana", "bob"] {
        let (status, body) = daemon.post(
            "/v1/identify",
            &json!({"userId": who, "traits": {"email": format!("{who}@example.com")}}),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = daemon.post(
            "/v1/track",
            &json!({"userId": who, "event": "signed_up", "properties": {"plan": "pro"}}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let project = daemon.dir.path().to_path_buf();
    let deploy = |extra: &[&str]| {
        let output = cairn()
            .args(["deploy", ".", "--server", &daemon.url])
            .args(extra)
            .current_dir(&project)
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .expect("run cairn deploy");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    // v2 renames the wait: the two contacts waiting at `first` would be stranded.
    let v2 = "  pause: wait for confirmed within 7d {\n    send email hello\n  } timeout {\n    exit\n  }\n";
    std::fs::write(&source, welcome_project(v2)).expect("write v2");
    let (code, err) = deploy(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "2 contacts are waiting at `welcome.first` (version 1): the new plan removes it"
        ),
        "{err}"
    );
    assert!(err.contains("migrate OLD -> NEW"), "{err}");
    let (status, body) = daemon.get("/admin/status", true);
    assert_eq!(status, 200);
    let status: Json = serde_json::from_str(&body).expect("status");
    assert_eq!(status["active_version"], json!(1), "nothing changed");

    // A migration from a step the deployed plan does not have is caught before sending.
    let typo = format!("  migrate frist -> pause\n{v2}");
    std::fs::write(&source, welcome_project(&typo)).expect("write a typo");
    let (code, err) = deploy(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0601"), "{err}");

    // With `migrate first -> pause` they move and wait for `confirmed` on version 2.
    let v3 = format!("  migrate first -> pause\n{v2}");
    std::fs::write(&source, welcome_project(&v3)).expect("write v3");
    let (code, err) = deploy(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 2 is active"), "{err}");
    let at_pause = || {
        let (_, body) = daemon.get("/admin/status", true);
        let status: Json = serde_json::from_str(&body).ok()?;
        let journey = status["journeys"].as_array()?.first()?.clone();
        let rows = journey["in_flight"].as_array()?.clone();
        let all_moved = rows.len() == 1
            && rows[0]["step"] == json!("pause")
            && rows[0]["plan_version"] == json!(2)
            && rows[0]["state"] == json!("waiting_for_event")
            && rows[0]["runs"] == json!(2);
        all_moved.then_some(())
    };
    wait_for("the runs at `pause`", Duration::from_secs(30), at_pause);
    // And they continue: the event sends the greeting.
    let (status, body) = daemon.post(
        "/v1/track",
        &json!({"userId": "ana", "event": "confirmed", "properties": {}}),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("ana's greeting", Duration::from_secs(30), || {
        let trace = daemon.contact("ana");
        trace["outcomes"]
            .as_array()?
            .iter()
            .any(|o| o["kind"] == json!("send") && o["step"] == json!("pause.event.send#1"))
            .then_some(())
    });

    // A plan that removes the journey's step again strands them; `--strand` deploys it.
    std::fs::write(&source, welcome_project("  send email hello\n")).expect("write v4");
    let (code, err) = deploy(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("1 contact is waiting at `welcome.pause`"),
        "{err}"
    );
    let (code, err) = deploy(&["--strand"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 3 is active"), "{err}");
}

/// Unsubscribe, preferences, double opt-in, tracking and provider webhooks.
mod respect;
