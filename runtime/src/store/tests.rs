//! The store test suite, run against both backends: SQLite in a temporary file, and
//! PostgreSQL at `CAIRN_TEST_POSTGRES_URL` in a fresh schema per test, dropped after.
//! When the variable is unset the PostgreSQL half says it did not run; when it is set
//! and the server cannot be reached, the test fails.

use super::contacts::NewEvent;
use super::timers::TimerWork;
use super::{Backend, Store, StoreError, StoreOptions};
use crate::model::*;
use cairn_plan::Plan;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

pub const POSTGRES_URL_VAR: &str = "CAIRN_TEST_POSTGRES_URL";

static SCHEMAS: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL schema that exists for one test.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    /// A fresh schema on the test server, or `None` (with a note on stderr) when
    /// `CAIRN_TEST_POSTGRES_URL` is unset. Panics when the server is unreachable.
    pub async fn create(test: &str) -> Option<TestSchema> {
        let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("{test}: PostgreSQL backend not tested ({POSTGRES_URL_VAR} is unset)");
            return None;
        };
        let name = format!(
            "cairn_test_{}_{}_{}",
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        );
        // Fail loudly: CI sets the variable precisely so that this backend is tested.
        super::create_postgres_schema(&url, &name)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{POSTGRES_URL_VAR} is set to `{url}` but a test schema cannot be created \
                     there (is PostgreSQL reachable?): {e}"
                )
            });
        Some(TestSchema { url, name })
    }

    pub async fn open(&self) -> Store {
        let options = StoreOptions {
            postgres_schema: Some(self.name.clone()),
            max_connections: Some(4),
        };
        Store::open_with(&self.url, &options)
            .await
            .expect("open the PostgreSQL store")
    }

    pub async fn drop_schema(self) {
        super::drop_postgres_schema(&self.url, &self.name)
            .await
            .expect("drop the test schema");
    }
}

/// Runs `body` against a fresh SQLite store, then a fresh PostgreSQL one; the second is
/// skipped, with a note, when no server is configured. Cleans up even when `body` panics.
pub async fn on_both<F, Fut>(test: &str, body: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open_sqlite_file(&dir.path().join("cairn.db"))
        .await
        .expect("open the SQLite store");
    let outcome = tokio::spawn(body(store.clone())).await;
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    if let Some(schema) = TestSchema::create(test).await {
        let store = schema.open().await;
        let outcome = tokio::spawn(body(store.clone())).await;
        store.close().await;
        schema.drop_schema().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

fn plan() -> Plan {
    let mut plan = Plan::new("test");
    plan.templates.insert(
        "hello".into(),
        cairn_plan::Template {
            name: "hello".into(),
            channel: cairn_plan::Channel::Email,
            transactional: false,
            parts: BTreeMap::new(),
        },
    );
    plan
}

fn run(id: &str, contact: &str, state: RunState) -> Run {
    Run {
        id: id.into(),
        contact_id: contact.into(),
        journey: "welcome".into(),
        plan_version: 1,
        step: Some("hi".into()),
        state,
        bindings: BTreeMap::from([("signup".into(), json!({"form": "footer"}))]),
        entered_at: 1_000,
        visits: BTreeMap::from([("hi".into(), 1)]),
    }
}

fn message(run_id: &str, visit: u32) -> OutboxMessage {
    OutboxMessage {
        run_id: run_id.into(),
        step: "hi".into(),
        visit,
        channel: "email".into(),
        template: Some("hello".into()),
        address: "ana@example.com".into(),
        payload: json!({"subject": "Hi"}),
        not_before: 2_000,
    }
}

#[tokio::test]
async fn migrations_apply_once_and_record_their_version() {
    on_both("migrations", |store| async move {
        assert_eq!(
            store.schema_version().await.expect("version"),
            super::SCHEMA_VERSION
        );
        // Applying again (a restart) changes nothing.
        store.migrate().await.expect("migrate again");
        assert_eq!(
            store.schema_version().await.expect("version"),
            super::SCHEMA_VERSION
        );
        let totals = store.totals().await.expect("totals");
        assert_eq!(totals.contacts, 0);
    })
    .await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    on_both("newer_schema", |store| async move {
        let mut tx = store.begin().await.expect("begin");
        super::on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO cairn_migrations (version, name, applied_at) VALUES (999, 'future', 0)"
        )
        .execute(&mut *c)
        .await
        .expect("insert")
        .rows_affected());
        tx.commit().await.expect("commit");
        match store.migrate().await {
            Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn deploys_are_versioned_and_roll_back() {
    on_both("deploys", |store| async move {
        let first = store
            .deploy("{\"a\":1}", "aaa", Some("c1"), 10)
            .await
            .expect("deploy");
        assert_eq!((first.version, first.changed), (1, true));
        let again = store
            .deploy("{\"a\":1}", "aaa", Some("c1"), 11)
            .await
            .expect("deploy");
        assert_eq!(
            (again.version, again.changed),
            (1, false),
            "same hash: no-op"
        );
        let second = store
            .deploy("{\"a\":2}", "bbb", None, 12)
            .await
            .expect("deploy");
        assert_eq!((second.version, second.changed), (2, true));
        let (active, text) = store.active_plan().await.expect("active").expect("some");
        assert_eq!((active.version, text.as_str()), (2, "{\"a\":2}"));

        let back = store.rollback().await.expect("rollback");
        assert_eq!(back.version, 1);
        let versions = store.versions().await.expect("versions");
        assert_eq!(versions.len(), 2);
        assert!(
            versions
                .iter()
                .any(|v| v.version == 1 && v.active && v.git_commit.as_deref() == Some("c1"))
        );
        assert!(versions.iter().any(|v| v.version == 2 && !v.active));
        match store.rollback().await {
            Err(StoreError::Conflict(message)) => assert!(message.contains("first"), "{message}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Deploying the old hash again while v1 is active is a no-op; v2's hash is new
        // relative to the active one, so it becomes v3.
        let third = store
            .deploy("{\"a\":2}", "bbb", None, 13)
            .await
            .expect("deploy");
        assert_eq!((third.version, third.changed), (3, true));
    })
    .await;
}

#[tokio::test]
async fn events_dedupe_by_message_id_and_aliases_merge_history() {
    on_both("events", |store| async move {
        let mut tx = store.begin().await.expect("begin");
        let payload = json!({"path": "/"});
        let anonymous = NewEvent {
            contact_id: None,
            anonymous_id: Some("anon-1"),
            name: "page_viewed",
            payload: &payload,
            occurred_at: 100,
            received_at: 100,
            message_id: Some("m-1"),
        };
        assert!(tx.insert_event(&anonymous).await.expect("insert").is_some());
        assert!(
            tx.insert_event(&anonymous).await.expect("insert").is_none(),
            "duplicate"
        );
        assert!(tx.has_message("m-1").await.expect("has"));

        assert!(tx.ensure_contact("ana", 200).await.expect("ensure"));
        assert!(
            !tx.ensure_contact("ana", 201).await.expect("ensure"),
            "created once"
        );
        assert_eq!(
            tx.merge_alias("anon-1", "ana", 200).await.expect("merge"),
            1
        );
        assert_eq!(
            tx.resolve_alias("anon-1")
                .await
                .expect("resolve")
                .as_deref(),
            Some("ana")
        );
        // The first merge wins.
        tx.ensure_contact("bob", 300).await.expect("ensure");
        tx.merge_alias("anon-1", "bob", 300).await.expect("merge");
        assert_eq!(
            tx.resolve_alias("anon-1")
                .await
                .expect("resolve")
                .as_deref(),
            Some("ana")
        );

        tx.set_consent("ana", "email_marketing", true, Some("form"), 250)
            .await
            .expect("consent");
        let state = tx.load_state("ana", 400).await.expect("state");
        assert!(!state.created);
        assert_eq!(state.history.len(), 1);
        assert_eq!(state.history[0].name, "page_viewed");
        assert_eq!(*state.history[0].payload, payload);
        assert_eq!(state.contact.consents.get("email_marketing"), Some(&true));
        tx.commit().await.expect("commit");
    })
    .await;
}

/// A contact's history reads the same whether its events were folded into SQLite's
/// per-contact index or not yet, after an alias merge moves folded events, and after a
/// retention purge; PostgreSQL (an ordinary index) must read the same.
#[tokio::test]
async fn histories_read_the_same_before_and_after_the_event_index_folds() {
    on_both("event_index", |store| async move {
        let payload = json!({});
        let event = |contact: Option<&'static str>,
                     anonymous: Option<&'static str>,
                     at: Millis,
                     id: &'static str| NewEvent {
            contact_id: contact,
            anonymous_id: anonymous,
            name: "page_viewed",
            payload: &payload,
            occurred_at: at,
            received_at: at,
            message_id: Some(id),
        };
        let names = |history: &[EventRecord]| -> Vec<Millis> {
            history.iter().map(|e| e.occurred_at).collect()
        };

        let mut tx = store.begin().await.expect("begin");
        tx.ensure_contact("ana", 10).await.expect("ensure");
        tx.ensure_contact("bob", 10).await.expect("ensure");
        for (contact, anonymous, at, id) in [
            (Some("ana"), None, 30, "a-30"),
            (Some("bob"), None, 20, "b-20"),
            (None, Some("anon-1"), 15, "x-15"),
            (Some("ana"), None, 10, "a-10"),
        ] {
            tx.insert_event(&event(contact, anonymous, at, id))
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
        // Folded (SQLite), then more events that are not.
        store.fold_event_index().await.expect("fold");
        let mut tx = store.begin().await.expect("begin");
        tx.insert_event(&event(Some("ana"), None, 20, "a-20"))
            .await
            .expect("insert");
        tx.insert_event(&event(None, Some("anon-1"), 25, "x-25"))
            .await
            .expect("insert");
        assert_eq!(
            names(&tx.load_history("ana").await.expect("history")),
            [10, 20, 30]
        );
        assert_eq!(names(&tx.load_history("bob").await.expect("history")), [20]);
        // The anonymous history moves to bob, the folded event and the newer one alike.
        assert_eq!(tx.merge_alias("anon-1", "bob", 40).await.expect("merge"), 2);
        let ids = ["ana".to_string(), "bob".to_string()];
        let states = tx
            .load_states(&ids, &std::collections::HashSet::new())
            .await
            .expect("states");
        assert_eq!(names(&states["ana"].history), [10, 20, 30]);
        assert_eq!(names(&states["bob"].history), [15, 20, 25]);
        tx.commit().await.expect("commit");
        store.fold_event_index().await.expect("fold");
        let mut tx = store.begin().await.expect("begin");
        assert_eq!(
            names(&tx.load_history("bob").await.expect("history")),
            [15, 20, 25]
        );
        tx.commit().await.expect("commit");

        // Retention: events that occurred before 21 go, from the index too.
        let mut after = 0;
        while let Some(next) = store.purge_events(21, after, 2).await.expect("purge").next {
            after = next;
        }
        let mut tx = store.begin().await.expect("begin");
        assert_eq!(names(&tx.load_history("ana").await.expect("history")), [30]);
        assert_eq!(names(&tx.load_history("bob").await.expect("history")), [25]);
        tx.commit().await.expect("commit");
        if store.backend() == Backend::Sqlite {
            assert_eq!(
                store.event_index_entries().await.expect("entries"),
                2,
                "no entry outlives its event"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn effects_commit_together_and_replays_do_not_duplicate_messages() {
    on_both("effects", |store| async move {
        let plan = plan();
        let mut tx = store.begin().await.expect("begin");
        let mut state = tx.load_state("ana", 1_000).await.expect("state");
        assert!(state.created);
        let effects = Effects {
            runs: vec![run(
                "welcome/ana/1",
                "ana",
                RunState::Waiting { until: 5_000 },
            )],
            outcomes: vec![Outcome {
                at: 2_000,
                contact_id: "ana".into(),
                journey: Some("welcome".into()),
                run_id: Some("welcome/ana/1".into()),
                step: Some("hi".into()),
                kind: "send".into(),
                detail: json!({"channel": "email"}),
            }],
            messages: vec![message("welcome/ana/1", 1)],
            contact_changes: vec![
                ("ana".into(), ContactChange::TagAdded { tag: "vip".into() }),
                (
                    "ana".into(),
                    ContactChange::Score {
                        score: "engagement".into(),
                        value: "15".into(),
                    },
                ),
                (
                    "ana".into(),
                    ContactChange::Attribute {
                        field: "timezone".into(),
                        value: json!("Europe/Paris"),
                    },
                ),
                (
                    "ana".into(),
                    ContactChange::Segment {
                        segment: "lapsed".into(),
                        member: true,
                    },
                ),
            ],
            wakeups: vec![Wakeup {
                contact_id: "ana".into(),
                at: 9_000,
                reason: WakeupReason::TimeBoundary,
            }],
        };
        let applied = tx
            .apply_effects(&mut state, &effects, &plan, 2_000)
            .await
            .expect("apply");
        assert_eq!(applied.messages, 1);
        assert_eq!(applied.earliest_timer, Some(5_000));
        // The same decision again (a replay after a crash) queues no second message.
        let again = tx
            .apply_effects(&mut state, &effects, &plan, 2_000)
            .await
            .expect("apply");
        assert_eq!(again.messages, 0);
        tx.commit().await.expect("commit");

        let mut tx = store.begin().await.expect("begin");
        let state = tx.load_state("ana", 3_000).await.expect("state");
        tx.commit().await.expect("commit");
        assert_eq!(
            state.runs,
            vec![run(
                "welcome/ana/1",
                "ana",
                RunState::Waiting { until: 5_000 }
            )]
        );
        assert_eq!(state.contact.tags.get("vip"), Some(&2_000));
        assert_eq!(
            state.contact.scores.get("engagement").map(String::as_str),
            Some("15")
        );
        assert_eq!(state.contact.time_zone.as_deref(), Some("Europe/Paris"));
        assert!(state.contact.segments.contains_key("lapsed"));
        assert_eq!(
            state.contact.entries.get("welcome").map(|e| e.count),
            Some(1)
        );
        assert_eq!(state.contact.sends.len(), 1);
        assert!(state.contact.sends[0].marketing);
        let trace = store
            .contact_trace("ana", 100)
            .await
            .expect("trace")
            .expect("known");
        assert_eq!(trace.outcomes.len(), 2);
        assert_eq!(store.outbox_counts().await.expect("counts").pending, 1);

        // Nothing is due yet; at 5 000 the run's timer is, before the wakeup.
        let none = store
            .claim_timers("w1", 4_999, 60_000, 10)
            .await
            .expect("claim");
        assert!(none.is_empty());
        let due = store
            .claim_timers("w1", 9_000, 60_000, 10)
            .await
            .expect("claim");
        assert_eq!(due.len(), 2);
        assert_eq!(
            due[0].work,
            TimerWork::Run {
                run_id: "welcome/ana/1".into()
            }
        );
        assert_eq!(
            due[1].work,
            TimerWork::Wakeup {
                reason: WakeupReason::TimeBoundary
            }
        );

        // The run ends: its timer goes with it.
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.release_timer(&due[0], "w1").await.expect("release"));
        let mut state = tx.load_state("ana", 9_000).await.expect("state");
        let ended = Effects {
            runs: vec![run(
                "welcome/ana/1",
                "ana",
                RunState::Ended {
                    reason: EndReason::Completed,
                    at: 9_000,
                },
            )],
            ..Effects::default()
        };
        tx.apply_effects(&mut state, &ended, &plan, 9_000)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");
        assert_eq!(store.totals().await.expect("totals").runs_in_flight, 0);
        assert_eq!(
            store.end_counts().await.expect("ends")[0].reason,
            "completed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_lost_lease_cannot_release_its_timer() {
    on_both("leases", |store| async move {
        let plan = plan();
        let waiting = run("welcome/ana/1", "ana", RunState::Waiting { until: 100 });
        let mut tx = store.begin().await.expect("begin");
        let mut state = tx.load_state("ana", 0).await.expect("state");
        let effects = Effects {
            runs: vec![waiting.clone()],
            ..Effects::default()
        };
        tx.apply_effects(&mut state, &effects, &plan, 0)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");

        // w1 claims with a lease that has expired by 200; w2 claims it then.
        let first = store.claim_timers("w1", 100, 150, 10).await.expect("claim");
        assert_eq!(first.len(), 1);
        assert!(
            store
                .claim_timers("w2", 120, 1_000, 10)
                .await
                .expect("claim")
                .is_empty(),
            "leased"
        );
        let second = store
            .claim_timers("w2", 200, 1_000, 10)
            .await
            .expect("claim");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].attempt, first[0].attempt + 1);
        let mut tx = store.begin().await.expect("begin");
        assert!(
            !tx.release_timer(&first[0], "w1").await.expect("release"),
            "w1 lost it"
        );
        tx.rollback().await.expect("rollback");

        // An event that moves the run's timer also takes the timer from w2.
        let mut tx = store.begin().await.expect("begin");
        let mut state = tx.load_state("ana", 210).await.expect("state");
        let moved = Effects {
            runs: vec![Run {
                state: RunState::Waiting { until: 500 },
                ..waiting.clone()
            }],
            ..Effects::default()
        };
        tx.apply_effects(&mut state, &moved, &plan, 210)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");
        let mut tx = store.begin().await.expect("begin");
        assert!(
            !tx.release_timer(&second[0], "w2").await.expect("release"),
            "moved away"
        );
        tx.rollback().await.expect("rollback");
        assert_eq!(store.next_timer_due().await.expect("next"), Some(500));
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_take_disjoint_timers() {
    on_both("disjoint_claims", |store| async move {
        let plan = plan();
        let mut tx = store.begin().await.expect("begin");
        for i in 0..40 {
            let contact = format!("c{i}");
            let mut state = tx.load_state(&contact, 0).await.expect("state");
            let effects = Effects {
                runs: vec![run(
                    &format!("welcome/{contact}/1"),
                    &contact,
                    RunState::Waiting { until: 10 },
                )],
                ..Effects::default()
            };
            tx.apply_effects(&mut state, &effects, &plan, 0)
                .await
                .expect("apply");
        }
        tx.commit().await.expect("commit");
        let claims = (0..4).map(|w| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_timers(&format!("w{w}"), 10, 10_000, 15).await })
        });
        let mut seen = Vec::new();
        for claim in claims {
            seen.extend(
                claim
                    .await
                    .expect("join")
                    .expect("claim")
                    .into_iter()
                    .map(|t| t.id),
            );
        }
        let count = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), count, "a timer was claimed twice");
        assert_eq!(count, 40);
    })
    .await;
}

#[tokio::test]
async fn the_outbox_records_each_attempt_under_its_lease() {
    on_both("outbox", |store| async move {
        let plan = plan();
        let mut tx = store.begin().await.expect("begin");
        let mut state = tx.load_state("ana", 0).await.expect("state");
        let effects = Effects {
            messages: vec![message("welcome/ana/1", 1), message("welcome/ana/1", 2)],
            ..Effects::default()
        };
        tx.apply_effects(&mut state, &effects, &plan, 0)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");

        assert!(
            store
                .claim_messages("d1", 1_999, 5_000, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        let claimed = store
            .claim_messages("d1", 2_000, 5_000, 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 2);
        assert_eq!(claimed[0].idempotency_key(), "welcome/ana/1/hi/1");
        assert_eq!(claimed[0].attempts, 1);
        store
            .mark_sent(&claimed[0], "d1", 2_100)
            .await
            .expect("sent");
        store
            .mark_failed(&claimed[1], "d1", "timeout", Some(3_000))
            .await
            .expect("retry");
        // Sent once: a second report under the same lease is refused.
        assert!(matches!(
            store.mark_sent(&claimed[0], "d1", 2_200).await,
            Err(StoreError::LostLease(_))
        ));
        let retried = store
            .claim_messages("d1", 3_000, 9_000, 10)
            .await
            .expect("claim");
        assert_eq!(retried.len(), 1);
        assert_eq!(retried[0].attempts, 2);
        store
            .mark_failed(&retried[0], "d1", "gone", None)
            .await
            .expect("give up");
        let counts = store.outbox_counts().await.expect("counts");
        assert_eq!((counts.pending, counts.sent, counts.failed), (0, 1, 1));
    })
    .await;
}

#[tokio::test]
async fn settings_keep_the_first_value() {
    on_both("settings", |store| async move {
        assert_eq!(store.setting("k").await.expect("get"), None);
        assert_eq!(
            store.setting_or_insert("k", "one").await.expect("insert"),
            "one"
        );
        assert_eq!(
            store.setting_or_insert("k", "two").await.expect("insert"),
            "one"
        );
        store.set_setting("k", "three").await.expect("set");
        assert_eq!(
            store.setting("k").await.expect("get").as_deref(),
            Some("three")
        );
        assert!(matches!(
            store.backend(),
            Backend::Sqlite | Backend::Postgres
        ));
    })
    .await;
}

#[tokio::test]
async fn bulk_statements_create_load_insert_and_release() {
    use super::contacts::EventRow;
    on_both("bulk", |store| async move {
        let plan = plan();
        let ids = vec!["a".to_string(), "b".to_string()];
        let mut tx = store.begin().await.expect("begin");
        let created = tx.ensure_contacts(&ids, 10).await.expect("ensure");
        assert_eq!(created.len(), 2);
        assert!(
            tx.ensure_contacts(&ids, 11)
                .await
                .expect("ensure")
                .is_empty()
        );
        let row = |contact: &str, message: &str| EventRow {
            contact_id: Some(contact.into()),
            anonymous_id: None,
            name: "signup".into(),
            payload: std::sync::Arc::new(
                json!({"form": message, "n": 1.5, "nested": {"ok": true}}),
            ),
            occurred_at: 20,
            received_at: 21,
            message_id: message.into(),
        };
        let rows = vec![row("a", "m1"), row("b", "m2"), row("a", "m1")];
        let inserted = tx.insert_events(&rows).await.expect("insert");
        assert!(inserted[0].is_some() && inserted[1].is_some());
        assert_eq!(
            inserted[2], None,
            "the same messageId twice in one statement"
        );
        assert_eq!(
            tx.insert_events(&rows[..1]).await.expect("again"),
            vec![None]
        );

        let mut states = tx.load_states(&ids, &created).await.expect("load");
        let a = states.get_mut("a").expect("a");
        assert!(a.created);
        assert_eq!(a.history.len(), 1);
        assert_eq!(
            *a.history[0].payload,
            json!({"form": "m1", "n": 1.5, "nested": {"ok": true}})
        );
        let effects = Effects {
            runs: vec![run("welcome/a/1", "a", RunState::Waiting { until: 50 })],
            messages: vec![message("welcome/a/1", 1)],
            ..Effects::default()
        };
        tx.apply_effects(a, &effects, &plan, 30)
            .await
            .expect("apply");
        tx.set_consent("b", "email_marketing", true, None, 30)
            .await
            .expect("consent");
        tx.commit().await.expect("commit");

        let mut tx = store.begin().await.expect("begin");
        let states = tx
            .load_states(&ids, &Default::default())
            .await
            .expect("load");
        assert_eq!(states["a"].runs.len(), 1);
        assert_eq!(states["a"].contact.sends.len(), 1);
        assert_eq!(states["a"].contact.entries["welcome"].count, 1);
        assert_eq!(
            states["b"].contact.consents.get("email_marketing"),
            Some(&true)
        );
        tx.commit().await.expect("commit");

        let claimed = store.claim_timers("w", 60, 1_000, 10).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let mut stale = claimed[0].clone();
        stale.attempt += 7;
        let mut tx = store.begin().await.expect("begin");
        let released = tx
            .release_timers(&[stale, claimed[0].clone()], "w")
            .await
            .expect("release");
        assert_eq!(released.len(), 1);
        assert!(released.contains(&claimed[0].id));
        tx.commit().await.expect("commit");
    })
    .await;
}

/// A plan whose journey `welcome` has the waits `hi` and `pause`, and migrates runs at
/// `old` to `pause`.
fn migrating_plan() -> Plan {
    use cairn_plan::{Migration, Step, StepId, StepKind};
    let wait = |id: &str| {
        (
            StepId::from(id),
            Step {
                id: StepId::from(id),
                kind: StepKind::Wait { seconds: 60 },
                next: None,
                source: None,
            },
        )
    };
    let mut plan = plan();
    plan.journeys.insert(
        "welcome".into(),
        welcome_journey(
            vec![Migration {
                from: "old".into(),
                to: "pause".into(),
            }],
            BTreeMap::from([wait("hi"), wait("pause")]),
            "hi",
        ),
    );
    plan.seal();
    plan
}

#[tokio::test]
async fn a_deploy_moves_runs_in_flight_or_refuses_and_changes_nothing() {
    on_both("deploy_moves", |store| async move {
        store
            .deploy("{}", "v1", None, 1_000)
            .await
            .expect("deploy v1");
        let plan = plan();
        let mut tx = store.begin().await.expect("begin");
        let runs = [
            ("ana", "hi", 5_000),
            ("bob", "old", 6_000),
            ("cem", "gone", 7_000),
        ];
        for (contact, step, until) in runs {
            let mut state = tx.load_state(contact, 1_000).await.expect("state");
            let mut r = run(
                &format!("welcome/{contact}/1"),
                contact,
                RunState::Waiting { until },
            );
            r.step = Some(step.into());
            let effects = Effects {
                runs: vec![r],
                ..Effects::default()
            };
            tx.apply_effects(&mut state, &effects, &plan, 1_000)
                .await
                .expect("apply");
        }
        tx.commit().await.expect("commit");

        let new = migrating_plan();
        let text = new.to_json_pretty();
        // Stranded runs (`cem` at `gone`): refused, and nothing changed.
        let seen = std::sync::Mutex::new(Vec::new());
        let refused = store
            .deploy_moving_runs(
                &text,
                &new.content_hash,
                None,
                3_000,
                |in_flight| {
                    seen.lock().expect("lock").extend_from_slice(in_flight);
                    let t = crate::inflight::transition(&new, in_flight);
                    Err(t.refusal().expect("cem is stranded"))
                },
                || panic!("a refused deploy does not commit"),
            )
            .await;
        match refused {
            Err(StoreError::Conflict(message)) => assert!(
                message.contains("1 contact is waiting at `welcome.gone` (version 1)"),
                "{message}"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let seen = seen.into_inner().expect("lock");
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.iter().all(|g| g.runs == 1 && g.state == "waiting"));
        assert_eq!(store.versions().await.expect("versions").len(), 1);

        // With `--strand`: `ana` stays at `hi` on the new version with her wait, `bob`
        // moves to `pause` and is due at once, `cem` stays on version 1.
        let mut committed = false;
        let deployed = store
            .deploy_moving_runs(
                &text,
                &new.content_hash,
                Some("abc"),
                3_000,
                |in_flight| Ok(crate::inflight::transition(&new, in_flight).moves),
                || committed = true,
            )
            .await
            .expect("deploy v2");
        assert!(committed);
        assert_eq!((deployed.version, deployed.changed), (2, true));
        let mut tx = store.begin().await.expect("begin");
        let ana = tx.load_runs("ana").await.expect("runs");
        let bob = tx.load_runs("bob").await.expect("runs");
        let cem = tx.load_runs("cem").await.expect("runs");
        tx.commit().await.expect("commit");
        assert_eq!(ana[0].plan_version, 2);
        assert_eq!(ana[0].step.as_deref(), Some("hi"));
        assert_eq!(ana[0].state, RunState::Waiting { until: 5_000 });
        assert_eq!(bob[0].plan_version, 2);
        assert_eq!(bob[0].step.as_deref(), Some("pause"));
        assert_eq!(bob[0].state, RunState::Ready);
        assert_eq!(cem[0].plan_version, 1);
        assert_eq!(cem[0].step.as_deref(), Some("gone"));
        assert_eq!(
            due_work(&store, 3_000).await,
            vec![TimerWork::Run {
                run_id: "welcome/bob/1".into()
            }]
        );
    })
    .await;
}

/// A journey `welcome` whose one step `hold` waits for `event` within `days`.
fn waiting_plan(event: &str, days: u64) -> Plan {
    use cairn_plan::{Step, StepId, StepKind};
    let hold = Step {
        id: StepId::from("hold"),
        kind: StepKind::WaitFor {
            event: event.into(),
            binding: None,
            filter: None,
            within: Some(cairn_plan::expr::Duration::Seconds(days * 86_400)),
            on_event: None,
            on_timeout: None,
        },
        next: None,
        source: None,
    };
    let mut plan = plan();
    plan.journeys.insert(
        "welcome".into(),
        welcome_journey(
            Vec::new(),
            BTreeMap::from([(StepId::from("hold"), hold)]),
            "hold",
        ),
    );
    plan.seal();
    plan
}

#[tokio::test]
async fn a_deploy_repoints_runs_at_a_changed_wait_for() {
    on_both("deploy_rewait", |store| async move {
        const DAY: i64 = 86_400_000;
        let old = waiting_plan("opened", 2);
        store
            .deploy(&old.to_json_pretty(), &old.content_hash, None, 1_000)
            .await
            .expect("deploy v1");
        // `dan` entered the wait at 1_000: due two days later.
        let mut tx = store.begin().await.expect("begin");
        let mut state = tx.load_state("dan", 1_000).await.expect("state");
        let mut r = run(
            "welcome/dan/1",
            "dan",
            RunState::WaitingForEvent {
                event: "opened".into(),
                until: 1_000 + 2 * DAY,
            },
        );
        r.step = Some("hold".into());
        let effects = Effects {
            runs: vec![r],
            ..Effects::default()
        };
        tx.apply_effects(&mut state, &effects, &old, 1_000)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");

        // Version 2 waits for `purchased` within 5 days: `dan` waits for it until five
        // days after he entered the wait.
        let new = waiting_plan("purchased", 5);
        let versions = BTreeMap::from([(1, old)]);
        store
            .deploy_moving_runs(
                &new.to_json_pretty(),
                &new.content_hash,
                None,
                DAY,
                |in_flight| Ok(crate::inflight::transition_after(&new, &versions, in_flight).moves),
                || {},
            )
            .await
            .expect("deploy v2");
        let mut tx = store.begin().await.expect("begin");
        let dan = tx.load_runs("dan").await.expect("runs");
        tx.commit().await.expect("commit");
        assert_eq!(dan[0].plan_version, 2);
        assert_eq!(
            dan[0].state,
            RunState::WaitingForEvent {
                event: "purchased".into(),
                until: 1_000 + 5 * DAY,
            }
        );
        assert!(
            due_work(&store, 1_000 + 2 * DAY).await.is_empty(),
            "the old deadline no longer fires"
        );
        assert_eq!(
            due_work(&store, 1_000 + 5 * DAY).await,
            vec![TimerWork::Run {
                run_id: "welcome/dan/1".into()
            }]
        );
    })
    .await;
}

/// A `welcome` journey started by `contact_created`, entering at `entry`.
fn welcome_journey(
    migrations: Vec<cairn_plan::Migration>,
    steps: BTreeMap<cairn_plan::StepId, cairn_plan::Step>,
    entry: &str,
) -> cairn_plan::Journey {
    use cairn_plan::{Journey, Reentry, Trigger};
    Journey {
        name: "welcome".into(),
        description: None,
        trigger: Trigger::ContactCreated,
        audience: None,
        reentry: Reentry::Once,
        goal: None,
        exits: Vec::new(),
        quiet_hours: None,
        frequency_caps: None,
        migrations,
        drain: false,
        entry: Some(entry.into()),
        steps,
    }
}

/// The work of the timers due at `now`, claimed by a worker `w1`.
async fn due_work(store: &Store, now: Millis) -> Vec<TimerWork> {
    store
        .claim_timers("w1", now, 60_000, 10)
        .await
        .expect("claim")
        .into_iter()
        .map(|t| t.work)
        .collect()
}
