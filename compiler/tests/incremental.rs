//! Salsa reuses every check an edit cannot affect: a one-line edit inside one journey
//! re-checks that journey only. Asserted on salsa's execution log, not on time.

use cairn_compiler::db::{self, Database, ProjectInput, SourceFile};
use salsa::Setter;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = r#"
contact {
  email email?
  phone phone?
}
consent email_marketing for email
event cart_updated { cart_id string, value money }
template reminder email {
  subject "Your cart"
  html "<p>{{ cart.value }} <a href='{{ unsubscribe_url }}'>unsubscribe</a></p>"
}
"#;

fn journeys(count: usize, edited_wait: &str) -> String {
    (0..count)
        .map(|i| {
            let wait = if i == count / 2 { edited_wait.to_string() } else { "1d".to_string() };
            format!(
                "journey j{i} {{\n  when cart_updated as cart\n  audience consented(email_marketing)\n  wait {wait}\n  send email reminder\n}}\n\n"
            )
        })
        .collect()
}

fn executed(log: &Mutex<Vec<String>>, query: &str) -> usize {
    log.lock()
        .expect("log lock")
        .iter()
        .filter(|e| e.starts_with(query))
        .count()
}

#[test]
fn editing_one_journey_rechecks_only_that_journey() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut db = Database::with_log(log.clone());
    let schema = SourceFile::new(&db, "schema.cairn".into(), SCHEMA.into());
    let file = SourceFile::new(&db, "journeys.cairn".into(), journeys(40, "1d"));
    let project = ProjectInput::new(&db, vec![schema, file], BTreeMap::new(), None);

    let before = db::file_diagnostics(&db, project, file).clone();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(
        executed(&log, "check_item"),
        40,
        "every journey of the file is checked once at first"
    );

    log.lock().expect("log lock").clear();
    file.set_text(&mut db).to(journeys(40, "2d"));
    let after = db::file_diagnostics(&db, project, file).clone();
    assert!(after.is_empty(), "{after:?}");
    let rechecked = executed(&log, "check_item");
    assert_eq!(
        rechecked,
        1,
        "only the edited journey is re-checked: {:?}",
        log.lock().expect("log lock")
    );

    // An edit that introduces an error is found, and still only that journey re-runs.
    log.lock().expect("log lock").clear();
    file.set_text(&mut db).to(journeys(40, "2d").replace(
        "send email reminder\n}\n\njourney j21",
        "send email remindr\n}\n\njourney j21",
    ));
    let broken = db::file_diagnostics(&db, project, file).clone();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].code, "E0103");
    assert_eq!(executed(&log, "check_item"), 1);
}

#[test]
fn editing_a_template_rechecks_its_analysis_not_unrelated_declarations() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut db = Database::with_log(log.clone());
    let schema = SourceFile::new(&db, "schema.cairn".into(), SCHEMA.into());
    let file = SourceFile::new(&db, "journeys.cairn".into(), journeys(5, "1d"));
    let project = ProjectInput::new(&db, vec![schema, file], BTreeMap::new(), None);
    assert!(db::file_diagnostics(&db, project, file).is_empty());

    log.lock().expect("log lock").clear();
    // The template now reads a field the trigger's event does not have.
    schema
        .set_text(&mut db)
        .to(SCHEMA.replace("cart.value", "cart.total"));
    let diagnostics = db::file_diagnostics(&db, project, file).clone();
    assert_eq!(
        diagnostics.len(),
        5,
        "each journey sending it is told: {diagnostics:?}"
    );
    assert!(diagnostics.iter().all(|d| d.code == "E0301"));
    assert_eq!(executed(&log, "template_analysis"), 1);
}
