//! The plan format: round trips, the content hash, version checks and the JSON Schema.

#![allow(clippy::unwrap_used)]

use cairn_plan::*;
use std::collections::BTreeMap;

fn name(n: &str) -> Expr {
    Expr::Name {
        name: n.to_string(),
    }
}

fn step(id: &str, kind: StepKind, next: Option<&str>) -> (StepId, Step) {
    (
        StepId::from(id),
        Step {
            id: StepId::from(id),
            kind,
            next: next.map(StepId::from),
            source: Some(SourceRef {
                file: "shop.cairn".into(),
                line: 3,
                column: 3,
                label: None,
            }),
        },
    )
}

/// A small plan touching most of the format.
fn sample() -> Plan {
    let mut plan = Plan::new("shop");
    plan.default_currency = Some("EUR".into());
    plan.schema.contact.push(Field {
        name: "email".into(),
        ty: Type::scalar("email"),
        optional: true,
        default: None,
    });
    plan.schema.consents.insert(
        "email_marketing".into(),
        Consent {
            name: "email_marketing".into(),
            channel: Channel::Email,
        },
    );
    for event in builtin_events() {
        plan.schema.events.insert(event.name.clone(), event);
    }
    plan.schema.events.insert(
        "cart_updated".into(),
        Event {
            name: "cart_updated".into(),
            wire_name: Some("Cart Updated".into()),
            fields: vec![Field {
                name: "value".into(),
                ty: Type::scalar("money"),
                optional: false,
                default: None,
            }],
            builtin: false,
        },
    );
    plan.segments.insert(
        "vip".into(),
        Segment {
            name: "vip".into(),
            description: None,
            condition: Expr::Binary {
                op: BinaryOp::Ge,
                left: Box::new(Expr::Call {
                    function: "sum".into(),
                    args: vec![CallArg {
                        value: Expr::Member {
                            object: Box::new(name("order_completed")),
                            name: "total".into(),
                        },
                        filter: None,
                        within: Some(Duration::Seconds(365 * 86_400)),
                    }],
                }),
                right: Box::new(Expr::Money {
                    amount: "500".into(),
                    currency: "EUR".into(),
                }),
            },
        },
    );
    plan.templates.insert(
        "cart_reminder".into(),
        Template {
            name: "cart_reminder".into(),
            channel: Channel::Email,
            transactional: false,
            parts: BTreeMap::from([(
                "subject".to_string(),
                TemplatePart {
                    source: "Your cart".into(),
                    file: None,
                },
            )]),
        },
    );
    plan.policies.frequency_caps.push(FrequencyCap {
        limit: 3,
        scope: CapScope::Marketing,
        per: Duration::Seconds(7 * 86_400),
        action: CapAction::Defer,
    });
    let steps = BTreeMap::from([
        step(
            "remind",
            StepKind::Send {
                channel: Channel::Email,
                template: "cart_reminder".into(),
                best_time: false,
            },
            Some("remind.wait#1"),
        ),
        step(
            "remind.wait#1",
            StepKind::Wait { seconds: 86_400 },
            Some("remind.if#1"),
        ),
        step(
            "remind.if#1",
            StepKind::Branch {
                condition: Expr::Unary {
                    op: UnaryOp::Not,
                    operand: Box::new(Expr::Call {
                        function: "opened".into(),
                        args: vec![CallArg {
                            value: name("remind"),
                            filter: None,
                            within: None,
                        }],
                    }),
                },
                then: Some(StepId::from("remind.if#1.then.retry#1")),
                else_: None,
            },
            None,
        ),
        step(
            "remind.if#1.then.retry#1",
            StepKind::Retry {
                target: StepId::from("remind"),
                max: 2,
            },
            None,
        ),
    ]);
    plan.journeys.insert(
        "abandoned_cart".into(),
        Journey {
            name: "abandoned_cart".into(),
            description: None,
            trigger: Trigger::Event {
                event: "cart_updated".into(),
                binding: Some("cart".into()),
                filter: None,
                unless: Some(Unless {
                    event: "order_completed".into(),
                    filter: None,
                    within: Duration::Seconds(7_200),
                }),
            },
            audience: None,
            reentry: Reentry::After {
                cooldown: Duration::Seconds(7 * 86_400),
            },
            goal: None,
            exits: vec![],
            quiet_hours: None,
            frequency_caps: None,
            migrations: vec![Migration {
                from: StepId::from("old_remind"),
                to: StepId::from("remind"),
            }],
            drain: false,
            entry: Some(StepId::from("remind")),
            steps,
        },
    );
    plan.seal();
    plan
}

#[test]
fn round_trip() {
    let plan = sample();
    let text = plan.to_json_pretty();
    let back = Plan::from_json(&text).unwrap();
    assert_eq!(back, plan);
    assert_eq!(back.to_json_pretty(), text);
    assert!(back.verify_hash());
}

#[test]
fn hash_is_deterministic() {
    let a = sample();
    let b = sample();
    assert_eq!(a.content_hash, b.content_hash);
    assert_eq!(a.content_hash.len(), 64);
    assert!(
        a.content_hash
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
    // Insertion order into the maps does not matter.
    let mut c = sample();
    let journeys: Vec<_> = std::mem::take(&mut c.journeys).into_iter().rev().collect();
    c.journeys.extend(journeys);
    assert_eq!(c.compute_hash(), a.content_hash);
    // Nor does a reload.
    let reloaded = Plan::from_json(&a.to_json_pretty()).unwrap();
    assert_eq!(reloaded.compute_hash(), a.content_hash);
}

#[test]
fn hash_ignores_commit_and_source_positions() {
    let a = sample();
    let mut b = sample();
    b.git_commit = Some("0123abcd-dirty".into());
    for step in b
        .journeys
        .get_mut("abandoned_cart")
        .unwrap()
        .steps
        .values_mut()
    {
        step.source = Some(SourceRef {
            file: "elsewhere.cairn".into(),
            line: 99,
            column: 1,
            label: None,
        });
    }
    assert_eq!(b.compute_hash(), a.content_hash);
}

#[test]
fn hash_changes_with_content() {
    let a = sample();
    let mut b = sample();
    let journey = b.journeys.get_mut("abandoned_cart").unwrap();
    journey
        .steps
        .get_mut(&StepId::from("remind.wait#1"))
        .unwrap()
        .kind = StepKind::Wait { seconds: 86_401 };
    assert_ne!(b.compute_hash(), a.content_hash);
    assert!(!b.verify_hash(), "the stale hash no longer matches");

    let mut c = sample();
    c.templates
        .get_mut("cart_reminder")
        .unwrap()
        .parts
        .get_mut("subject")
        .unwrap()
        .source
        .push('!');
    assert_ne!(c.compute_hash(), a.content_hash);

    let mut d = sample();
    d.project = "shop2".into();
    assert_ne!(d.compute_hash(), a.content_hash);
}

fn with_version(version: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&sample().to_json_pretty()).unwrap();
    value["format_version"] = serde_json::Value::String(version.into());
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn newer_major_version_is_refused_naming_both() {
    let err = Plan::from_json(&with_version("2.0")).unwrap_err();
    assert!(matches!(
        err,
        PlanError::UnsupportedVersion { newer: true, .. }
    ));
    let message = err.to_string();
    assert!(message.contains("2.0"), "{message}");
    assert!(message.contains(FORMAT_VERSION), "{message}");
    assert!(message.contains("newer"), "{message}");
}

#[test]
fn older_major_version_is_refused() {
    let err = Plan::from_json(&with_version("0.9")).unwrap_err();
    assert!(err.to_string().contains("older"), "{err}");
}

#[test]
fn newer_minor_version_loads() {
    // A newer minor version may add fields; this reader ignores them.
    let mut value: serde_json::Value = serde_json::from_str(&with_version("1.7")).unwrap();
    value["added_in_1_7"] = serde_json::json!({ "anything": true });
    let plan = Plan::from_json(&value.to_string()).unwrap();
    assert_eq!(plan.format_version, "1.7");
}

#[test]
fn malformed_versions_are_refused() {
    for bad in ["1", "one.two", "1.0.0", ""] {
        let err = Plan::from_json(&with_version(bad)).unwrap_err();
        assert!(matches!(err, PlanError::BadVersion { .. }), "{bad}: {err}");
    }
    let err = Plan::from_json(r#"{"project": "x"}"#).unwrap_err();
    assert_eq!(err, PlanError::MissingVersion);
}

#[test]
fn json_errors_have_line_and_column() {
    let err = Plan::from_json("{\n  \"format_version\": \"1.0\",\n  oops\n}").unwrap_err();
    let PlanError::Json { line, column, .. } = &err else {
        panic!("expected a JSON error, got {err:?}");
    };
    assert_eq!((*line, *column), (3, 3));
    assert!(err.to_string().contains("line 3, column 3"), "{err}");

    // Well-formed JSON of the wrong shape is located too.
    let mut value: serde_json::Value = serde_json::from_str(&sample().to_json_pretty()).unwrap();
    value["journeys"]["abandoned_cart"]["reentry"] = serde_json::json!({ "policy": "sometimes" });
    let text = serde_json::to_string_pretty(&value).unwrap();
    let err = Plan::from_json(&text).unwrap_err();
    let PlanError::Json { line, message, .. } = &err else {
        panic!("expected a JSON error, got {err:?}");
    };
    assert!(*line > 1, "{err}");
    assert!(message.contains("sometimes"), "{message}");
}

#[test]
fn dangling_step_references_are_refused() {
    let mut plan = sample();
    let journey = plan.journeys.get_mut("abandoned_cart").unwrap();
    journey
        .steps
        .get_mut(&StepId::from("remind.wait#1"))
        .unwrap()
        .next = Some(StepId::from("nowhere"));
    journey.migrations[0].to = StepId::from("gone");
    let err = Plan::from_json(&plan.to_json_pretty()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`nowhere`"), "{message}");
    assert!(message.contains("`gone`"), "{message}");
}

#[test]
fn block_ids_follow_the_documented_scheme() {
    let mut top = BlockIds::journey();
    assert_eq!(top.next(None, "wait").as_str(), "wait#1");
    assert_eq!(top.next(None, "send").as_str(), "send#1");
    assert_eq!(top.next(None, "wait").as_str(), "wait#2");
    let remind = top.next(Some("remind"), "send");
    assert_eq!(remind.as_str(), "remind");
    assert!(remind.is_label());
    assert_eq!(top.next(None, "wait").as_str(), "remind.wait#1");
    let branch = top.next(None, "if");
    assert_eq!(branch.as_str(), "remind.if#1");
    assert!(!branch.is_label());
    let mut then = BlockIds::branch(&branch, "then");
    assert_eq!(then.next(None, "send").as_str(), "remind.if#1.then.send#1");
    assert_eq!(then.next(Some("nudge"), "send").as_str(), "nudge");
    assert_eq!(then.next(None, "send").as_str(), "nudge.send#1");
    let mut arm = BlockIds::branch(&StepId::from("offer"), "a");
    assert_eq!(arm.next(None, "send").as_str(), "offer.a.send#1");
}

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plan.schema.json");

#[test]
fn checked_in_schema_is_current() {
    let generated = json_schema_text();
    if std::env::var_os("CAIRN_UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_PATH, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        checked_in == generated,
        "plan/plan.schema.json differs from the schema generated from the plan types; \
         regenerate it with `CAIRN_UPDATE_SCHEMA=1 cargo test -p cairn-plan` and commit it"
    );
}

#[test]
fn sample_plan_matches_the_schema() {
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance: serde_json::Value = serde_json::from_str(&sample().to_json_pretty()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // And the schema does reject what the types reject.
    let mut bad = instance.clone();
    bad["journeys"]["abandoned_cart"]["reentry"] = serde_json::json!({ "policy": "sometimes" });
    assert!(!validator.is_valid(&bad));
}
