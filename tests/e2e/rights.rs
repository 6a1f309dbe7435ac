//! `cairn stats`, `cairn contacts export` and `cairn contacts erase` against a running
//! daemon that has really run contacts through the abandoned-cart journey.

use crate::support::{cairn, repo_root, zone_at_noon};
use serde_json::{Value as Json, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITE_KEY: &str = "wk_rights_test";
const ADMIN_TOKEN: &str = "at_rights_test";

/// `cairn serve` on a copy of an example, killed when dropped.
pub(crate) struct Daemon {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

impl Daemon {
    pub(crate) fn start(dir: &Path) -> Daemon {
        let mut child = cairn()
            .arg("serve")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env("CAIRN_WRITE_KEY", WRITE_KEY)
            .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("CAIRN_DATABASE_URL")
            .env_remove("CAIRN_LISTEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cairn serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address_tx.send(address.to_string());
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let Ok(address) = address_rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cairn serve did not start:\n{}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        };
        Daemon {
            child,
            url: format!("http://{address}"),
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        }
    }

    fn track(&self, path: &str, body: &Json) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth(WRITE_KEY, Some(""))
            .json(body)
            .send()
            .expect("the daemon answers");
        let status = response.status().as_u16();
        assert_eq!(status, 200, "{}", response.text().unwrap_or_default());
    }

    /// `cairn ARGS --server URL --token TOKEN`: exit code, stdout, stderr.
    pub(crate) fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let output = cairn()
            .args(args)
            .args(["--server", &self.url, "--token", ADMIN_TOKEN])
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run cairn");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub(crate) fn json(&self, args: &[&str]) -> Json {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "cairn {args:?}: {err}\n{}", self.log());
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("cairn {args:?} printed no JSON ({e}): {out}"))
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the project copy");
    for entry in std::fs::read_dir(from).expect("read the example").flatten() {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != ".cairn" {
                copy_dir(&path, &to.join(entry.file_name()));
            }
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy a project file");
        }
    }
}

fn wait_for<T>(what: &str, daemon: &Daemon, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn unix_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("a time")
}

/// Three hours ago, as RFC 3339 in UTC.
fn three_hours_ago() -> String {
    let secs = unix_now() - 3 * 3_600;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An identify with an email and the consent, then a cart left three hours ago; the
/// `messageId`s end in `tag`, so calling again with another tag is new traffic.
fn shopper(daemon: &Daemon, user: &str, email: &str, zone: &str, tag: &str) {
    daemon.track(
        "/v1/identify",
        &json!({"userId": user, "messageId": format!("id-{user}-{tag}"), "traits": {
            "email": email, "first_name": user, "timezone": zone,
            "consents": ["email_marketing"]
        }}),
    );
    daemon.track(
        "/v1/track",
        &json!({"userId": user, "event": "Cart Updated", "messageId": format!("cart-{user}-{tag}"),
            "timestamp": three_hours_ago(),
            "properties": {"cart_id": format!("cart-{user}"), "value": "129.00 EUR",
                "url": "https://nordkit.example/cart/1",
                "items": [{"sku": "TENT-2P", "name": "Fjell 2 tent", "price": 129}]}}),
    );
}

/// The funnel stages of a `--format json` report's one journey, by name.
fn funnel(report: &Json) -> Vec<(String, i64)> {
    report["journeys"][0]["funnel"]
        .as_array()
        .expect("a funnel")
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap_or_default().to_string(),
                s["runs"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn stage(report: &Json, name: &str) -> i64 {
    funnel(report)
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(-1, |(_, runs)| runs)
}

#[test]
fn stats_export_and_erase_through_the_cli() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/abandoned-cart"), dir.path());
    let daemon = Daemon::start(dir.path());
    let zone = zone_at_noon();
    for user in ["ana", "bob", "cleo"] {
        shopper(&daemon, user, &format!("{user}@example.com"), &zone, "1");
    }
    let stats = |journey: &str| daemon.json(&["stats", journey, "--format", "json"]);
    let report = wait_for("three reminders delivered", &daemon, || {
        let report = stats("abandoned_cart");
        (stage(&report, "delivered") == 3).then_some(report)
    });
    assert_eq!(stage(&report, "entered"), 3);
    assert_eq!(stage(&report, "sent"), 3);

    // Ana opens hers, Bob buys.
    daemon.track(
        "/v1/track",
        &json!({"userId": "ana", "event": "Email Opened", "messageId": "open-ana",
            "properties": {"journey": "abandoned_cart", "run": "abandoned_cart/ana/1", "step": "remind"}}),
    );
    daemon.track(
        "/v1/track",
        &json!({"userId": "bob", "event": "Order Completed", "messageId": "order-bob",
            "properties": {"order_id": "o-1", "total": "129.00 EUR"}}),
    );
    let before = wait_for("the open and the order", &daemon, || {
        let report = stats("abandoned_cart");
        (stage(&report, "opened") == 1 && stage(&report, "converted") == 1).then_some(report)
    });
    assert_eq!(
        funnel(&before),
        [
            ("entered", 3),
            ("sent", 3),
            ("delivered", 3),
            ("opened", 1),
            ("clicked", 0),
            ("converted", 1)
        ]
        .map(|(s, n)| (s.to_string(), n))
    );
    let journey = &before["journeys"][0];
    assert_eq!(journey["ended"], json!({"goal": 1}));
    let remind = journey["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == json!("remind"))
        .expect("the remind step");
    assert_eq!(
        (&remind["kind"], &remind["reached"], &remind["opened"]),
        (&json!("send"), &json!(3), &json!(1))
    );
    assert!((journey["open_rate"].as_f64().unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(before["contacts"]["total"], json!(3));
    assert_eq!(before["contacts"]["active"], json!(3));

    // The picture: bars in the terminal, an SVG file that is well-formed XML.
    let svg = dir.path().join("funnel.svg");
    let svg_arg = svg.display().to_string();
    let (code, human, err) = daemon.cli(&["stats", "abandoned_cart", "--svg", &svg_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(
        human.contains("journey `abandoned_cart`: 3 entered"),
        "{human}"
    );
    let entered_line = human
        .lines()
        .find(|l| l.trim_start().starts_with("entered "))
        .expect("an entered bar");
    assert!(
        entered_line.contains(&"█".repeat(32)) && entered_line.contains("100.0%"),
        "{human}"
    );
    let opened_line = human
        .lines()
        .find(|l| l.trim_start().starts_with("opened "))
        .expect("an opened bar");
    assert!(
        opened_line.contains("33.3%") && !opened_line.contains(&"█".repeat(12)),
        "{human}"
    );
    assert!(human.contains("open rate 33.3%"), "{human}");
    let text = std::fs::read_to_string(&svg).expect("the SVG was written");
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    let drawn: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g"))
        .filter_map(|n| n.attribute("data-name"))
        .collect();
    for name in ["entered", "converted", "remind", "nudge_sms"] {
        assert!(drawn.contains(&name), "{name} is not drawn: {drawn:?}");
    }
    let (code, markdown, _) = daemon.cli(&["stats", "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(markdown.contains("| entered | 3 | 100.0% |"), "{markdown}");
    let (code, _, err) = daemon.cli(&["stats", "no_such_journey"]);
    assert_eq!(code, 2);
    assert!(err.contains("no journey `no_such_journey`"), "{err}");

    // Export: everything about Ana, with her address.
    let export = daemon.json(&["contacts", "export", "ana"]);
    assert_eq!(export["erased"], json!(false));
    assert_eq!(export["traits"]["email"], json!("ana@example.com"));
    assert_eq!(export["consents"][0]["consent"], json!("email_marketing"));
    assert_eq!(export["messages"][0]["address"], json!("ana@example.com"));
    assert_eq!(export["runs"].as_array().map(Vec::len), Some(1));

    // Erasing asks first; without a terminal it needs --yes and changes nothing.
    let (code, _, err) = daemon.cli(&["contacts", "erase", "ana"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        daemon.json(&["contacts", "export", "ana"])["erased"],
        json!(false)
    );
    let (code, out, err) = daemon.cli(&["contacts", "erase", "ana", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("erased contact `ana`"), "{out}");
    assert!(out.contains("runs in flight ended: 1"), "{out}");
    let (code, out, _) = daemon.cli(&["contacts", "erase", "ana", "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains("was already erased"), "{out}");
    let (code, _, err) = daemon.cli(&["contacts", "erase", "nobody", "--yes"]);
    assert_eq!(code, 2);
    assert!(err.contains("no contact `nobody`"), "{err}");

    let export = daemon.json(&["contacts", "export", "ana"]);
    assert_eq!(export["erased"], json!(true));
    assert_eq!(export["traits"], json!({}));
    let text = export.to_string();
    assert!(!text.contains("ana@example.com"), "{text}");
    assert!(!text.contains("129.00"), "{text}");

    // The counts survive; Ana's run ended, `erased`.
    let after = stats("abandoned_cart");
    assert_eq!(funnel(&after), funnel(&before));
    assert_eq!(
        after["journeys"][0]["ended"],
        json!({"goal": 1, "erased": 1})
    );
    assert_eq!(after["contacts"]["erased"], json!(1));
    assert_eq!(after["contacts"]["total"], json!(2));

    // Events under her id afterwards start nothing and keep nothing personal.
    shopper(&daemon, "ana", "ana@example.com", &zone, "2");
    let export = daemon.json(&["contacts", "export", "ana"]);
    assert_eq!(export["traits"], json!({}), "{export}");
    assert_eq!(export["consents"], json!([]), "{export}");
    assert!(
        export["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["payload"] == json!({}) || e["name"] == json!("email_opened")),
        "{export}"
    );

    // The admin API wants its token.
    let response = daemon
        .http
        .get(format!("{}/admin/stats", daemon.url))
        .send()
        .expect("the daemon answers");
    assert_eq!(response.status().as_u16(), 401);
    let response = daemon
        .http
        .post(format!("{}/admin/contacts/bob/erase", daemon.url))
        .bearer_auth("at_wrong")
        .send()
        .expect("the daemon answers");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        daemon.json(&["contacts", "export", "bob"])["erased"],
        json!(false)
    );

    // Her address is not mailed again, even for a new contact who gives it.
    shopper(&daemon, "ana-again", "Ana@Example.com", &zone, "1");
    let message = wait_for(
        "the new contact's reminder to be held back",
        &daemon,
        || {
            let export = daemon.json(&["contacts", "export", "ana-again"]);
            let message = export["messages"].get(0).cloned()?;
            (message["state"] != json!("pending")).then_some(message)
        },
    );
    assert_eq!(message["state"], json!("failed"), "{message}");
    assert!(
        message["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("erased"),
        "{message}"
    );

    // By then the abandonment check of Ana's new cart has long been due: it started
    // nothing for her, while the new contact entered.
    let export = daemon.json(&["contacts", "export", "ana"]);
    assert_eq!(export["runs"].as_array().map(Vec::len), Some(1), "{export}");
    assert_eq!(stage(&stats("abandoned_cart"), "entered"), 4);
}

/// Every admin route answers 401 without the admin token, or with a wrong one, before
/// it reads its path, query or body (so a malformed request says 401, not 400), and
/// changes nothing; health and metrics are open.
#[test]
fn every_admin_route_wants_the_token_before_anything_else() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/abandoned-cart"), dir.path());
    let daemon = Daemon::start(dir.path());
    let routes = [
        ("POST", "/admin/deploy"),
        ("GET", "/admin/status"),
        ("GET", "/admin/messages?state=nonsense"),
        ("GET", "/admin/events?from=nonsense"),
        ("GET", "/admin/plan"),
        ("GET", "/admin/contacts/ana"),
        ("GET", "/admin/contacts/ana/export"),
        ("GET", "/admin/contacts/ana/trace?limit=nonsense"),
        ("POST", "/admin/contacts/ana/erase"),
        ("POST", "/admin/contacts/import"),
        ("GET", "/admin/stats"),
        ("POST", "/admin/journeys/abandoned_cart/pause"),
        ("POST", "/admin/journeys/abandoned_cart/resume"),
        ("POST", "/admin/templates/cart_reminder/test-send"),
        ("GET", "/admin/suppressions"),
        ("POST", "/admin/suppressions"),
        (
            "DELETE",
            "/admin/suppressions?channel=email&address=a%40example.com",
        ),
        ("GET", "/admin/double-opt-in"),
    ];
    for (method, path) in routes {
        for token in [None, Some("at_wrong")] {
            let mut request = daemon
                .http
                .request(
                    method.parse().expect("a method"),
                    format!("{}{path}", daemon.url),
                )
                .header("Content-Type", "application/json")
                .body("{not json");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().expect("the daemon answers");
            assert_eq!(
                response.status().as_u16(),
                401,
                "{method} {path} with {token:?}"
            );
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{method} {path}"
            );
        }
    }
    // Nothing was paused by the refused requests.
    let status = daemon.json(&["status", "--format", "json"]);
    assert_eq!(status["paused"], json!([]), "{status}");
    for open in ["/healthz", "/metrics"] {
        let response = daemon
            .http
            .get(format!("{}{open}", daemon.url))
            .send()
            .expect("the daemon answers");
        assert_eq!(response.status().as_u16(), 200, "{open}");
    }
}
