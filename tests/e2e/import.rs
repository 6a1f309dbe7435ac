//! `cairn contacts import` against a running daemon: a file with a bad row imports
//! nothing and says where the row is; a good file's contacts are then exported with
//! their consents as the file gave them. And `[retention]` shorter than a window the
//! plan reads keeps the daemon from starting.

use crate::rights::{Daemon, copy_dir};
use crate::support::{cairn, repo_root};
use serde_json::json;

#[test]
fn an_import_with_a_bad_row_imports_nothing_then_a_good_one_imports_all() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/abandoned-cart"), dir.path());
    let daemon = Daemon::start(dir.path());

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        concat!(
            r#"{"id": "ana", "traits": {"email": "ana@example.com"}, "consents": {"email_marketing": true}}"#,
            "\n",
            r#"{"id": "bob", "traits": {"email": "not an address"}}"#,
            "\n",
        ),
    )
    .expect("write the file");
    let bad = bad.to_string_lossy().into_owned();
    let (code, out, err) = daemon.cli(&["contacts", "import", &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("bad.jsonl: line 2: field `traits.email` must be an email address"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    let (code, _, err) = daemon.cli(&["contacts", "export", "ana"]);
    assert_ne!(code, 0, "ana was not imported: {err}");

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "id,email,first_name,consent:email_marketing,consent:email_marketing:at,consent:email_marketing:source\n\
         ana,ana@example.com,Ana,true,2025-06-01T09:30:00Z,crm\n\
         bob,bob@example.com,\"Bob, Jr.\",false,,\n",
    )
    .expect("write the file");
    let good = good.to_string_lossy().into_owned();
    let (code, out, err) = daemon.cli(&["contacts", "import", &good, "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would create 2"), "{out}");
    let (code, out, err) = daemon.cli(&["contacts", "import", &good]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("created 2, updated 0, 0 unchanged, 0 rejected"),
        "{out}"
    );

    let ana = daemon.json(&["contacts", "export", "ana"]);
    assert_eq!(ana["traits"]["email"], json!("ana@example.com"));
    assert_eq!(
        ana["consents"][0],
        json!({"consent": "email_marketing", "granted": true, "source": "import:crm",
               "changed_at": 1_748_770_200_000_i64})
    );
    assert_eq!(ana["runs"], json!([]), "an import starts no journey");
    let bob = daemon.json(&["contacts", "export", "bob"]);
    assert_eq!(bob["traits"]["first_name"], json!("Bob, Jr."));
    assert_eq!(bob["consents"][0]["source"], json!("import"));

    // The same file again changes nothing.
    let (code, out, err) = daemon.cli(&["contacts", "import", &good]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created 0, updated 0, 2 unchanged"), "{out}");
}

#[test]
fn a_retention_shorter_than_a_window_of_the_plan_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("examples/abandoned-cart"), dir.path());
    let manifest = dir.path().join("cairn.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("cairn.toml");
    text.push_str("\n[retention]\nevents = \"1h\"\n");
    std::fs::write(&manifest, text).expect("write cairn.toml");
    let output = cairn()
        .arg("serve")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env_remove("CAIRN_DATABASE_URL")
        .env_remove("CAIRN_LISTEN")
        .output()
        .expect("run cairn serve");
    // The message as one line, without the frame the error is drawn in.
    let err = String::from_utf8_lossy(&output.stderr)
        .split_whitespace()
        .filter(|w| !matches!(*w, "│" | "×"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "journey `abandoned_cart`: `unless order_completed within 2h` reads events 2h back, \
             longer than `[retention] events` keeps them (1h)"
        ),
        "{err}"
    );
}
