//! `identify` drives the daemon's engine: the traits an identify sets are what a
//! `when contact created` journey's audience sees, and trait changes move the contact
//! in and out of segments, starting `when enters/leaves segment` journeys.

use crate::support::project;
use crate::torture::{Daemon, Database, Reader, WRITE_KEY, runtime};
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROJECT: &str = r#"
contact {
  email email?
  plan  enum { free, pro }?
}

segment pro_users { contact.plan == "pro" }

template hello email transactional {
  subject "Hello"
  html "<p>Hello</p>"
}

journey welcome {
  when contact created
  audience contact.email is set
  hi: send email hello
}

journey upgraded {
  when enters segment pro_users
  pro: send email hello
}

journey downgraded {
  when leaves segment pro_users
  bye: send email hello
}
"#;

fn identify(http: &reqwest::blocking::Client, daemon: &Daemon, user: &str, traits: Json) {
    let response = http
        .post(format!("{}/v1/identify", daemon.url))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&json!({"userId": user, "traits": traits}))
        .send()
        .expect("the daemon answers");
    let status = response.status();
    assert_eq!(status, 200, "{}", response.text().unwrap_or_default());
}

#[test]
fn identify_sets_traits_before_contact_created_and_moves_segments() {
    let dir = project(&[
        (
            "cairn.toml",
            b"[project]\nname = \"identify\"\ncurrency = \"EUR\"\n" as &[u8],
        ),
        ("journeys.cairn", PROJECT.as_bytes()),
    ]);
    let state = tempfile::tempdir().expect("a temporary directory");
    let database = Database::Sqlite(state.path().join("cairn.db"));
    let log = Arc::new(Mutex::new(String::new()));
    let daemon = Daemon::start(dir.path(), &database, &log);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let rt = runtime();
    let reader = rt.block_on(Reader::open(&database));
    let messages = |who: &str| -> Vec<String> {
        rt.block_on(reader.rows(&format!(
            "SELECT step FROM outbox WHERE contact_id = '{who}' ORDER BY id"
        )))
        .into_iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_string())
        .collect()
    };
    let segments = |who: &str| -> i64 {
        rt.block_on(reader.count(&format!(
            "SELECT COUNT(*) FROM segment_members WHERE contact_id = '{who}' AND segment = 'pro_users'"
        )))
    };

    // Created by an identify carrying an email: the welcome audience sees it.
    identify(
        &http,
        &daemon,
        "ana",
        json!({"email": "ana@example.com", "plan": "free"}),
    );
    assert_eq!(messages("ana"), ["hi"]);
    assert_eq!(segments("ana"), 0);
    // Created without one: not in the audience.
    identify(&http, &daemon, "bob", json!({"plan": "free"}));
    assert!(messages("bob").is_empty(), "{:?}", messages("bob"));

    // An upgrade enters the segment and starts its journey, once.
    identify(&http, &daemon, "ana", json!({"plan": "pro"}));
    assert_eq!(messages("ana"), ["hi", "pro"]);
    assert_eq!(segments("ana"), 1);
    identify(&http, &daemon, "ana", json!({"plan": "pro"}));
    assert_eq!(
        messages("ana"),
        ["hi", "pro"],
        "the same traits again change nothing"
    );

    // A downgrade leaves it.
    identify(&http, &daemon, "ana", json!({"plan": "free"}));
    assert_eq!(messages("ana"), ["hi", "pro", "bye"]);
    assert_eq!(segments("ana"), 0);
    // Bob's email comes later: he is not created again, so no welcome; his upgrade
    // in the same call enters the segment.
    identify(
        &http,
        &daemon,
        "bob",
        json!({"email": "bob@example.com", "plan": "pro"}),
    );
    assert_eq!(messages("bob"), ["pro"]);

    rt.block_on(reader.close());
    daemon.terminate();
}
