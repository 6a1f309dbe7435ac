//! Export, erasure and the statistics that survive it, on both backends: what an export
//! lists, what erasure removes and keeps, that the counts stay, that it can be repeated.

use super::{address_sha256, default_address_fields, normalised_address};
use crate::model::*;
use crate::store::Store;
use crate::store::contacts::NewEvent;
use crate::store::respect::SuppressionReason;
use crate::store::stats::{JourneyTally, StepTally};
use crate::store::tests::on_both;
use cairn_plan::Plan;
use serde_json::json;
use std::collections::BTreeMap;

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

fn run(id: &str, contact: &str, step: &str, visits: &[&str], state: RunState) -> Run {
    Run {
        id: id.into(),
        contact_id: contact.into(),
        journey: "welcome".into(),
        plan_version: 1,
        step: Some(step.into()),
        state,
        bindings: BTreeMap::from([("signup".into(), json!({"email": "ana@example.com"}))]),
        entered_at: 1_000,
        visits: visits.iter().map(|s| (s.to_string(), 1)).collect(),
    }
}

fn message(run_id: &str, step: &str, address: &str, not_before: Millis) -> OutboxMessage {
    OutboxMessage {
        run_id: run_id.into(),
        step: step.into(),
        visit: 1,
        channel: "email".into(),
        template: Some("hello".into()),
        address: address.into(),
        payload: json!({"subject": "Hi Ana", "text": "Hello Ana"}),
        not_before,
    }
}

fn send_outcome(contact: &str, run_id: &str, step: &str, address: &str) -> Outcome {
    Outcome {
        at: 2_000,
        contact_id: contact.into(),
        journey: Some("welcome".into()),
        run_id: Some(run_id.into()),
        step: Some(step.into()),
        kind: "send".into(),
        detail: json!({"channel": "email", "template": "hello", "address": address, "visit": 1}),
    }
}

/// Ana: traits with addresses, an anonymous visit merged into her, a consent, a tag, a
/// score, a segment, a run waiting at `hi` with a message not sent yet, and a run that
/// reached the goal at `bye` whose message was sent and opened. Bob: one run waiting.
async fn populate(store: &Store) {
    let plan = plan();
    let mut tx = store.begin().await.expect("begin");
    tx.insert_event(&NewEvent {
        contact_id: None,
        anonymous_id: Some("anon-1"),
        name: "page_viewed",
        payload: &json!({"url": "https://shop.example/pricing", "path": "/pricing"}),
        occurred_at: 500,
        received_at: 500,
        message_id: Some("m-visit"),
    })
    .await
    .expect("an anonymous event");
    let mut ana = tx.load_state("ana", 1_000).await.expect("state");
    ana.contact.traits = BTreeMap::from([
        ("email".into(), json!("Ana@Example.com")),
        ("phone".into(), json!("+48 500 100 200")),
        ("first_name".into(), json!("Ana")),
    ]);
    tx.save_traits(&ana.contact, 1_000).await.expect("traits");
    tx.merge_alias("anon-1", "ana", 1_000).await.expect("merge");
    tx.set_consent("ana", "email_marketing", true, Some("identify"), 1_000)
        .await
        .expect("consent");
    let effects = Effects {
        runs: vec![
            run(
                "welcome/ana/1",
                "ana",
                "hi",
                &["hi"],
                RunState::Waiting { until: 50_000 },
            ),
            run(
                "welcome/ana/2",
                "ana",
                "bye",
                &["hi", "bye"],
                RunState::Ended {
                    reason: EndReason::Goal,
                    at: 3_000,
                },
            ),
        ],
        outcomes: vec![
            send_outcome("ana", "welcome/ana/1", "hi", "ana@example.com"),
            send_outcome("ana", "welcome/ana/2", "bye", "ana@example.com"),
        ],
        messages: vec![
            message("welcome/ana/1", "hi", "ana@example.com", 40_000),
            message("welcome/ana/2", "bye", "ana@example.com", 2_000),
        ],
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
                ContactChange::Segment {
                    segment: "lapsed".into(),
                    member: true,
                },
            ),
        ],
        wakeups: vec![Wakeup {
            contact_id: "ana".into(),
            at: 90_000,
            reason: WakeupReason::TimeBoundary,
        }],
    };
    tx.apply_effects(&mut ana, &effects, &plan, 2_000)
        .await
        .expect("ana's effects");
    let mut bob = tx.load_state("bob", 1_000).await.expect("state");
    let effects = Effects {
        runs: vec![run(
            "welcome/bob/1",
            "bob",
            "hi",
            &["hi"],
            RunState::Waiting { until: 50_000 },
        )],
        outcomes: vec![send_outcome(
            "bob",
            "welcome/bob/1",
            "hi",
            "bob@example.com",
        )],
        messages: vec![message("welcome/bob/1", "hi", "bob@example.com", 40_000)],
        ..Effects::default()
    };
    tx.apply_effects(&mut bob, &effects, &plan, 2_000)
        .await
        .expect("bob's effects");
    tx.insert_event(&NewEvent {
        contact_id: Some("ana"),
        anonymous_id: None,
        name: "email_opened",
        payload: &json!({"journey": "welcome", "run": "welcome/ana/2", "step": "bye",
                         "ip": "192.0.2.7", "user_agent": "Mail/1.0"}),
        occurred_at: 4_000,
        received_at: 4_000,
        message_id: Some("m-open"),
    })
    .await
    .expect("an open");
    tx.commit().await.expect("commit");

    let claimed = store
        .claim_messages("w1", 10_000, 70_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "only the goal run's message is due");
    store
        .mark_sent(&claimed[0], "w1", 10_000)
        .await
        .expect("sent");
    store
        .suppress(
            "email",
            "ana@example.com",
            SuppressionReason::Unsubscribed,
            Some("ana"),
            "preferences",
            5_000,
        )
        .await
        .expect("suppress");
}

async fn erase(store: &Store, id: &str, now: Millis) -> Option<super::Erasure> {
    let mut tx = store.begin().await.expect("begin");
    let erasure = tx
        .erase_contact(id, &default_address_fields(), now)
        .await
        .expect("erase");
    tx.commit().await.expect("commit");
    erasure
}

#[tokio::test]
async fn an_export_lists_everything_held_about_the_contact() {
    on_both("rights_export", |store| async move {
        populate(&store).await;
        let export = store
            .export_contact("ana")
            .await
            .expect("export")
            .expect("ana is known");
        assert!(!export.erased);
        assert_eq!(export.erased_at, None);
        assert_eq!(export.traits["email"], json!("Ana@Example.com"));
        assert_eq!(export.traits["first_name"], json!("Ana"));
        assert_eq!(
            export
                .aliases
                .iter()
                .map(|a| a.anonymous_id.as_str())
                .collect::<Vec<_>>(),
            ["anon-1"]
        );
        assert_eq!(export.consents.len(), 1);
        assert!(export.consents[0].granted);
        assert_eq!(export.consents[0].source.as_deref(), Some("identify"));
        assert_eq!(export.consents[0].changed_at, 1_000);
        assert_eq!(export.tags[0].tag, "vip");
        assert_eq!(export.scores[0].value, "15");
        assert_eq!(export.segments[0].segment, "lapsed");
        let events: Vec<(&str, Option<&str>)> = export
            .events
            .iter()
            .map(|e| (e.name.as_str(), e.anonymous_id.as_deref()))
            .collect();
        assert!(
            events.contains(&("page_viewed", Some("anon-1"))),
            "{events:?}"
        );
        assert!(events.contains(&("email_opened", None)), "{events:?}");
        assert_eq!(export.runs.len(), 2);
        assert_eq!(export.outcomes.len(), 2);
        let states: Vec<(&str, &str)> = export
            .messages
            .iter()
            .map(|m| (m.step.as_str(), m.state.as_str()))
            .collect();
        assert_eq!(states, [("hi", "pending"), ("bye", "sent")]);
        assert_eq!(export.messages[0].address, "ana@example.com");
        assert_eq!(export.suppressions.len(), 1);
        assert_eq!(export.suppressions[0].reason, "unsubscribed");
        assert_eq!(
            export.suppressions[0].source.as_deref(),
            Some("preferences")
        );

        assert_eq!(store.export_contact("nobody").await.expect("export"), None);
    })
    .await;
}

#[tokio::test]
async fn erasure_scrubs_personal_data_and_keeps_the_counts() {
    on_both("rights_erase", |store| async move {
        populate(&store).await;
        let before = store
            .journey_tallies(Some("welcome"))
            .await
            .expect("tallies");
        assert_eq!(
            before,
            vec![JourneyTally {
                journey: "welcome".into(),
                entered: 3,
                sent: 3,
                delivered: 1,
                opened: 1,
                clicked: 0,
                in_flight: 2,
                ended: BTreeMap::from([("goal".into(), 1)]),
                steps: BTreeMap::from([
                    (
                        "hi".into(),
                        StepTally {
                            reached: 3,
                            sent: 2,
                            in_flight: 2,
                            ..StepTally::default()
                        }
                    ),
                    (
                        "bye".into(),
                        StepTally {
                            reached: 1,
                            sent: 1,
                            delivered: 1,
                            opened: 1,
                            goal: 1,
                            ..StepTally::default()
                        }
                    ),
                ]),
            }]
        );

        let erasure = erase(&store, "ana", 60_000).await.expect("ana is known");
        assert!(!erasure.already_erased);
        assert_eq!(erasure.runs_ended, 1);
        assert_eq!(erasure.messages_cancelled, 1);
        assert_eq!(erasure.events_scrubbed, 2, "the merged visit and the open");
        assert_eq!(
            erasure.addresses_suppressed, 2,
            "the email (once) and the phone"
        );

        // Personal data is gone.
        let export = store
            .export_contact("ana")
            .await
            .expect("export")
            .expect("the tombstone stays");
        assert!(export.erased);
        assert_eq!(export.erased_at, Some(60_000));
        assert_eq!(export.traits, json!({}));
        assert_eq!(export.time_zone, None);
        assert!(export.aliases.is_empty());
        assert!(export.consents.is_empty());
        assert!(export.tags.is_empty());
        assert!(export.scores.is_empty());
        assert!(export.segments.is_empty());
        assert!(export.suppressions.is_empty(), "{:?}", export.suppressions);
        for event in &export.events {
            assert_eq!(event.anonymous_id, None);
            if event.name == "email_opened" {
                assert_eq!(
                    event.payload,
                    json!({"journey": "welcome", "run": "welcome/ana/2", "step": "bye"})
                );
            } else {
                assert_eq!(event.payload, json!({}), "{}", event.name);
            }
        }
        for run in &export.runs {
            assert!(run.bindings.is_empty(), "{run:?}");
            assert!(matches!(run.state, RunState::Ended { .. }), "{run:?}");
        }
        assert_eq!(
            export.runs[0].state,
            RunState::Ended {
                reason: EndReason::Erased,
                at: 60_000
            }
        );
        let text = serde_json::to_string(&export).expect("JSON");
        for personal in [
            "ana@example.com",
            "Ana@Example.com",
            "500 100 200",
            "192.0.2.7",
            "Hello Ana",
            "anon-1",
            "pricing",
        ] {
            assert!(!text.contains(personal), "`{personal}` survived: {text}");
        }
        let states: Vec<(&str, &str)> = export
            .messages
            .iter()
            .map(|m| (m.step.as_str(), m.state.as_str()))
            .collect();
        assert_eq!(states, [("hi", "failed"), ("bye", "sent")]);
        let kinds: Vec<&str> = export.outcomes.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(kinds, ["send", "send", "exit"]);
        assert_eq!(export.outcomes[2].detail, json!({"reason": "erased"}));
        assert_eq!(
            export.outcomes[0].detail,
            json!({"channel": "email", "template": "hello", "visit": 1})
        );

        // The addresses are refused, by hash, however they are written.
        assert!(
            store
                .is_erased_address("email", " ANA@example.com")
                .await
                .expect("lookup")
        );
        assert!(
            store
                .is_erased_address("sms", "+48500100200")
                .await
                .expect("lookup")
        );
        assert!(
            !store
                .is_erased_address("email", "bob@example.com")
                .await
                .expect("lookup")
        );
        assert!(
            !store
                .is_erased_address("sms", "ana@example.com")
                .await
                .expect("lookup")
        );
        assert!(
            store
                .suppressions(Some(("email", "ana@example.com")))
                .await
                .expect("suppressions")
                .is_empty(),
            "the clear-text entry went; the hash replaces it"
        );

        // No timer of hers is left; Bob's still is, and his message still goes.
        let due = store
            .claim_timers("w1", 1_000_000, 2_000_000, 10)
            .await
            .expect("timers");
        assert!(due.iter().all(|t| t.contact_id == "bob"), "{due:?}");
        assert_eq!(due.len(), 1);
        let claimed = store
            .claim_messages("w1", 1_000_000, 2_000_000, 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].contact_id, "bob");

        // The counts are the same, but her run in flight has ended, `erased`.
        let after = store
            .journey_tallies(Some("welcome"))
            .await
            .expect("tallies");
        let mut expected = before[0].clone();
        expected.in_flight -= 1;
        expected.ended.insert("erased".into(), 1);
        if let Some(hi) = expected.steps.get_mut("hi") {
            hi.in_flight -= 1;
            hi.exited += 1;
        }
        assert_eq!(after, vec![expected]);
        let activity = store.contact_activity(0).await.expect("activity");
        assert_eq!((activity.contacts, activity.erased), (1, 1));

        // Again: nothing changes, and it says so.
        let again = erase(&store, "ana", 70_000).await.expect("still known");
        assert!(again.already_erased);
        assert_eq!(again.erased_at, 60_000);
        assert_eq!(
            store.export_contact("ana").await.expect("export"),
            Some(export)
        );
        assert_eq!(erase(&store, "nobody", 70_000).await, None);
    })
    .await;
}

#[test]
fn addresses_are_normalised_before_hashing() {
    assert_eq!(
        normalised_address("email", " Ana@Example.COM "),
        "ana@example.com"
    );
    assert_eq!(normalised_address("sms", "+48 500-100-200"), "+48500100200");
    assert_eq!(
        address_sha256("email", "ANA@example.com"),
        address_sha256("email", "ana@example.com")
    );
    assert_ne!(
        address_sha256("email", "ana@example.com"),
        address_sha256("sms", "ana@example.com")
    );
    assert_eq!(address_sha256("email", "a").len(), 64);
}

#[tokio::test]
async fn a_migration_missing_below_the_highest_applied_is_applied() {
    on_both("rights_migration_gap", |store| async move {
        // A database migrated by a binary that had 0004 but not 0003 (each feature
        // has its own number, so they land in any order).
        let mut tx = store.begin().await.expect("begin");
        crate::store::on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM cairn_migrations WHERE version = 3")
                .execute(&mut *c)
                .await
                .expect("forget 0003");
            sqlx::query("DROP TABLE suppressions")
                .execute(&mut *c)
                .await
                .expect("drop its table");
        });
        tx.commit().await.expect("commit");
        store.migrate().await.expect("migrate");
        assert_eq!(
            store.schema_version().await.expect("version"),
            crate::store::SCHEMA_VERSION
        );
        assert!(
            store
                .suppressions(None)
                .await
                .expect("0003's table is back")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_bounce_is_not_delivered_and_activity_has_a_cut_off() {
    on_both("rights_stats", |store| async move {
        populate(&store).await;
        let delivered = |tallies: Vec<JourneyTally>| {
            let t = &tallies[0];
            (t.delivered, t.steps.get("bye").map(|s| s.delivered))
        };
        let before = store.journey_tallies(None).await.expect("tallies");
        assert_eq!(delivered(before), (1, Some(1)));
        let mut tx = store.begin().await.expect("begin");
        crate::store::on_tx!(&mut tx, c => {
            sqlx::query("UPDATE outbox SET delivery_status = 'bounced' WHERE state = 'sent'")
                .execute(&mut *c)
                .await
                .expect("a bounce");
        });
        tx.commit().await.expect("commit");
        let after = store.journey_tallies(None).await.expect("tallies");
        assert_eq!(delivered(after), (0, Some(0)));
        assert!(
            store
                .journey_tallies(Some("other"))
                .await
                .expect("tallies")
                .is_empty()
        );

        // Ana's last event is at 4 000; Bob has none.
        let activity = store.contact_activity(4_000).await.expect("activity");
        assert_eq!(
            (activity.contacts, activity.active, activity.inactive),
            (2, 1, 1)
        );
        let activity = store.contact_activity(4_001).await.expect("activity");
        assert_eq!((activity.active, activity.inactive), (0, 2));
    })
    .await;
}
