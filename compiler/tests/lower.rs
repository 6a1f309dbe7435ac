//! Lowering to plans: every example project, one snapshot, the stability of step IDs
//! and the errors lowering reports.

#![allow(clippy::unwrap_used)]

use cairn_compiler::lower::{LowerError, LowerInput, SourceInput, codes, lower};
use cairn_compiler::project;
use cairn_plan::{Journey, Plan, StepId, StepKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn lower_text(text: &str, assets: &BTreeMap<String, String>) -> Result<Plan, Vec<LowerError>> {
    let parsed = cairn_grammar::parse(text);
    assert!(
        !parsed.has_errors(),
        "test source has syntax errors: {:#?}",
        parsed.diagnostics
    );
    let sources = [SourceInput {
        path: "test.cairn",
        text,
        file: &parsed.file,
    }];
    lower(&LowerInput {
        project: "test",
        default_currency: Some("EUR"),
        sources: &sources,
        assets,
        git_commit: None,
    })
}

fn lower_ok(text: &str) -> Plan {
    match lower_text(text, &BTreeMap::new()) {
        Ok(plan) => plan,
        Err(errors) => panic!("lowering failed: {errors:#?}"),
    }
}

fn lower_err(text: &str) -> Vec<LowerError> {
    match lower_text(text, &BTreeMap::new()) {
        Ok(_) => panic!("lowering should fail"),
        Err(errors) => errors,
    }
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(workspace().join("plan/plan.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, plan: &Plan) -> Vec<String> {
    let instance: serde_json::Value = serde_json::from_str(&plan.to_json_pretty()).unwrap();
    validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn every_example_lowers_to_a_valid_plan() {
    let examples = workspace().join("examples");
    let projects = project::discover(&[examples]).unwrap();
    assert!(!projects.is_empty(), "no example projects found");
    let validator = validator();
    let mut failures = Vec::new();
    for project in &projects {
        let name = project.name();
        let parsed: Vec<_> = project
            .sources
            .iter()
            .map(|s| cairn_grammar::parse(&s.text))
            .collect();
        let syntax: Vec<_> = parsed
            .iter()
            .zip(&project.sources)
            .filter(|(p, _)| p.has_errors())
            .map(|(p, s)| format!("{}: {:?}", s.path.display(), p.diagnostics))
            .collect();
        if !syntax.is_empty() {
            failures.push(format!("{name}: syntax errors {syntax:#?}"));
            continue;
        }
        let paths: Vec<String> = project
            .sources
            .iter()
            .map(|s| {
                let relative = s.path.strip_prefix(&project.root).unwrap_or(&s.path);
                relative.to_string_lossy().replace('\\', "/")
            })
            .collect();
        let sources: Vec<SourceInput> = project
            .sources
            .iter()
            .zip(&parsed)
            .zip(&paths)
            .map(|((s, p), path)| SourceInput {
                path,
                text: &s.text,
                file: &p.file,
            })
            .collect();
        let input = LowerInput {
            project: &name,
            default_currency: project.manifest.project.currency.as_deref(),
            sources: &sources,
            assets: &project.assets,
            git_commit: Some("0000000"),
        };
        let plan = match lower(&input) {
            Ok(plan) => plan,
            Err(errors) => {
                let messages: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {} {}",
                            paths[e.file], e.diagnostic.code, e.diagnostic.message
                        )
                    })
                    .collect();
                failures.push(format!("{name}: lowering failed {messages:#?}"));
                continue;
            }
        };
        let errors = schema_errors(&validator, &plan);
        if !errors.is_empty() {
            failures.push(format!(
                "{name}: plan does not match the schema {errors:#?}"
            ));
        }
        match Plan::from_json(&plan.to_json_pretty()) {
            Ok(back) => assert_eq!(back, plan, "{name}: round trip changed the plan"),
            Err(e) => failures.push(format!("{name}: plan does not load back: {e}")),
        }
        assert!(plan.verify_hash(), "{name}: hash");
        assert!(
            !plan.journeys.is_empty(),
            "{name}: an example should have a journey"
        );
        // Lowering is a function of its input.
        assert_eq!(lower(&input).ok(), Some(plan), "{name}: not deterministic");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

const SMALL: &str = r#"contact {
  email email?
  phone phone?
  timezone timezone = "UTC"
}
consent email_marketing for email
record line_item { sku string, price money }
event cart_updated "Cart Updated" { cart_id string, value money, items list<line_item> }
event order_completed { total money }
tag engaged "opened something"

segment big_spender { sum(order_completed.total within 365d) >= 500 EUR }
score engagement {
  +5 on email_opened
  decay 10% every 30d
}

template cart_reminder email {
  subject "You left {{ cart.value }} behind"
  html file "templates/cart.html"
}
template cart_sms sms { text "Still there? {{ cart.cart_id }}" }

quiet hours 21:00..08:00 local
frequency cap 3 marketing per 7d

/// Win back abandoned carts.
journey abandoned_cart {
  when cart_updated as cart where cart.value > 10 EUR unless order_completed within 2h
  audience consented(email_marketing)
  reenter after 7d
  goal order_completed within 7d
  exit when unsubscribed
  migrate old_remind -> remind

  remind: send email cart_reminder at best time
  wait 1d
  if not opened(remind) {
    send sms cart_sms
  } else if contact.phone is set {
    tag add engaged
  }
  wait for order_completed as order within 3d {
    score engagement +10
  } timeout {
    retry remind at most 2 times
  }
}
"#;

#[test]
fn small_plan_snapshot() {
    let assets = BTreeMap::from([(
        "templates/cart.html".to_string(),
        "<p>{{ cart.value }} <a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>\n".to_string(),
    )]);
    let plan = lower_text(SMALL, &assets).unwrap();
    assert!(schema_errors(&validator(), &plan).is_empty());
    let json: serde_json::Value = serde_json::from_str(&plan.to_json_pretty()).unwrap();
    // The built-in events are the same in every plan; keep the snapshot to the project.
    let mut json = json;
    let events = json["schema"]["events"].as_object_mut().unwrap();
    events.retain(|_, e| e["builtin"] == serde_json::Value::Bool(false));
    insta::assert_json_snapshot!("small_plan", json);
}

const STABLE: &str = r#"journey onboarding {
  when signup
  wait 1d
  send email hello
  remind: send email nudge
  wait 2d
  if not opened(remind) {
    send sms nudge_sms
    send email nudge_again
  } else {
    tag add engaged
  }
  offer: split {
    50% a: send email ten_off
    50% b: {
      wait 1h
      send email shipping
    }
  }
  wait for bought within 3d {
    score engagement +10
  } timeout {
    retry remind at most 2 times
  }
}

journey other {
  when signup
  send email hello
}
"#;

fn ids(journey: &Journey) -> BTreeSet<String> {
    journey.steps.keys().map(|id| id.to_string()).collect()
}

/// The steps of a journey without their source positions.
fn content(journey: &Journey) -> BTreeMap<StepId, (StepKind, Option<StepId>)> {
    journey
        .steps
        .iter()
        .map(|(id, s)| (id.clone(), (s.kind.clone(), s.next.clone())))
        .collect()
}

fn onboarding(text: &str) -> Journey {
    lower_ok(text).journeys["onboarding"].clone()
}

#[test]
fn step_ids_follow_the_scheme() {
    let journey = onboarding(STABLE);
    let expected: BTreeSet<String> = [
        "wait#1",
        "send#1",
        "remind",
        "remind.wait#1",
        "remind.if#1",
        "remind.if#1.then.send#1",
        "remind.if#1.then.send#2",
        "remind.if#1.else.tag#1",
        "offer",
        "offer.a.send#1",
        "offer.b.wait#1",
        "offer.b.send#1",
        "offer.wait#1",
        "offer.wait#1.event.score#1",
        "offer.wait#1.timeout.retry#1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(ids(&journey), expected);
    assert_eq!(journey.entry, Some(StepId::from("wait#1")));
    // The graph: the branch's arms join again at the split.
    let step = |id: &str| &journey.steps[&StepId::from(id)];
    assert_eq!(
        step("remind.if#1.then.send#2").next,
        Some(StepId::from("offer"))
    );
    assert_eq!(
        step("remind.if#1.else.tag#1").next,
        Some(StepId::from("offer"))
    );
    assert_eq!(
        step("offer.a.send#1").next,
        Some(StepId::from("offer.wait#1"))
    );
    assert_eq!(
        step("offer.wait#1.timeout.retry#1").next,
        None,
        "retries exhausted: the run ends"
    );
    let source = step("remind").source.clone().unwrap();
    assert_eq!((source.line, source.column), (5, 3));
    assert_eq!(source.label.as_deref(), Some("remind"));
}

#[test]
fn step_ids_survive_an_unrelated_insert_in_another_branch() {
    let before = onboarding(STABLE);
    let edited = STABLE.replace(
        "    tag add engaged\n",
        "    tag add engaged\n    send email thanks\n",
    );
    let after = onboarding(&edited);
    let added: BTreeSet<String> = ids(&after).difference(&ids(&before)).cloned().collect();
    assert_eq!(
        added,
        BTreeSet::from(["remind.if#1.else.send#1".to_string()])
    );
    assert!(ids(&before).is_subset(&ids(&after)));
    // Only the step before the insert changed: it now continues at the new one.
    let (b, a) = (content(&before), content(&after));
    let changed: Vec<&StepId> = b.keys().filter(|id| b[*id] != a[*id]).collect();
    assert_eq!(changed, vec![&StepId::from("remind.if#1.else.tag#1")]);
}

#[test]
fn step_ids_survive_inserts_of_another_kind_before_and_steps_after() {
    let before = ids(&onboarding(STABLE));
    // A tag at the top, before `wait#1`; a score after everything; a send at the end
    // of the `then` branch.
    let edited = STABLE
        .replace(
            "  when signup\n  wait 1d\n",
            "  when signup\n  tag add new\n  wait 1d\n",
        )
        .replace(
            "    send email nudge_again\n",
            "    send email nudge_again\n    send email last_nudge\n",
        )
        .replace(
            "    retry remind at most 2 times\n  }\n}",
            "    retry remind at most 2 times\n  }\n  score engagement +1\n}",
        );
    let after = ids(&onboarding(&edited));
    assert!(before.is_subset(&after), "{before:?}\n{after:?}");
    let added: BTreeSet<&str> = after.difference(&before).map(String::as_str).collect();
    assert_eq!(
        added,
        BTreeSet::from(["tag#1", "remind.if#1.then.send#3", "offer.score#1"])
    );
}

#[test]
fn step_ids_survive_edits_in_place() {
    let before = onboarding(STABLE);
    let edited = STABLE
        .replace("  wait 2d\n", "  wait until 09:00 local\n")
        .replace(
            "send sms nudge_sms",
            "send via preferred channel [nudge_sms, nudge_push]",
        )
        .replace("50% a: send email ten_off", "40% a: send email fifteen_off")
        .replace("50% b: {", "60% b: {")
        .replace("if not opened(remind) {", "if not clicked(remind) {");
    let after = onboarding(&edited);
    assert_eq!(ids(&before), ids(&after));
    assert_ne!(content(&before), content(&after));
}

#[test]
fn step_ids_survive_edits_to_another_journey() {
    let before = onboarding(STABLE);
    // The other journey moves above this one and changes; this one's lines shift.
    let (first, second) = STABLE.split_at(STABLE.find("journey other").unwrap());
    let edited = format!(
        "{}\n{}",
        second.replace("send email hello", "wait 1d\n  send email hello"),
        first
    );
    let after = onboarding(&edited);
    assert_eq!(content(&before), content(&after));
    let mut a = lower_ok(STABLE);
    let mut b = lower_ok(&edited);
    assert_ne!(
        a.content_hash, b.content_hash,
        "the other journey did change"
    );
    // And the onboarding journey is byte-for-byte the same except for positions,
    // which the content hash ignores.
    a.journeys.remove("other");
    b.journeys.remove("other");
    a.seal();
    b.seal();
    assert_eq!(a.content_hash, b.content_hash);
}

#[test]
fn comments_and_blank_lines_do_not_change_the_hash() {
    let a = lower_ok(STABLE);
    let b = lower_ok(&format!("// onboarding and more\n\n{STABLE}"));
    assert_eq!(a.content_hash, b.content_hash);
    assert_ne!(a, b, "the positions did move");
}

fn codes_of(errors: &[LowerError]) -> Vec<&'static str> {
    errors.iter().map(|e| e.diagnostic.code).collect()
}

#[test]
fn missing_template_file_is_located() {
    let text = "template t email {\n  subject \"Hi\"\n  html file \"templates/missing.html\"\n}\n";
    let errors = lower_err(text);
    assert_eq!(codes_of(&errors), vec![codes::TEMPLATE_FILE_MISSING]);
    let span = errors[0].diagnostic.primary_span().unwrap();
    assert_eq!(&text[span.start..span.end], "\"templates/missing.html\"");
    assert!(
        errors[0]
            .diagnostic
            .message
            .contains("`templates/missing.html`")
    );
}

#[test]
fn retry_of_an_unknown_label_is_an_error() {
    let text =
        "journey j {\n  when signup\n  first: send email a\n  retry frist at most 2 times\n}\n";
    let errors = lower_err(text);
    assert_eq!(codes_of(&errors), vec![codes::UNKNOWN_RETRY_TARGET]);
    let span = errors[0].diagnostic.primary_span().unwrap();
    assert_eq!(&text[span.start..span.end], "frist");
    assert!(
        errors[0]
            .diagnostic
            .help
            .as_deref()
            .unwrap()
            .contains("`first`")
    );
}

#[test]
fn migrate_to_an_unknown_label_is_an_error() {
    let text = "journey j {\n  when signup\n  migrate old -> nowhere\n  first: send email a\n}\n";
    let errors = lower_err(text);
    assert_eq!(codes_of(&errors), vec![codes::UNKNOWN_MIGRATE_TARGET]);
}

#[test]
fn migrate_from_a_quoted_step_id() {
    let text = "journey j {\n  when signup\n  migrate \"first.wait#1\" -> pause\n  first: send email a\n  pause: wait 2d\n}\n";
    let plan = lower_ok(text);
    let migration = &plan.journeys["j"].migrations[0];
    assert_eq!(migration.from, StepId::from("first.wait#1"));
    assert_eq!(migration.to, StepId::from("pause"));
}

#[test]
fn duplicate_labels_and_missing_triggers_are_errors() {
    let text = "journey j {\n  when signup\n  a: send email x\n  if true {\n    a: send email y\n  }\n}\n\njourney k {\n  send email x\n}\n";
    let errors = lower_err(text);
    assert_eq!(
        codes_of(&errors),
        vec![codes::DUPLICATE_LABEL, codes::NO_TRIGGER]
    );
    let span = errors[1].diagnostic.primary_span().unwrap();
    assert_eq!(&text[span.start..span.end], "k");
}

#[test]
fn duplicate_declarations_are_errors() {
    let text = "segment s { true }\nsegment s { false }\nevent page_viewed {}\n";
    let errors = lower_err(text);
    assert_eq!(
        codes_of(&errors),
        vec![codes::DECLARED_TWICE, codes::DECLARED_TWICE]
    );
    let second = errors[0].diagnostic.primary_span().unwrap();
    assert_eq!(second.start, text.find("segment s { false").unwrap() + 8);
}

#[test]
fn expressions_too_deep_for_a_plan_are_refused() {
    let chain = vec!["contact.city == \"x\""; 120].join(" or ");
    let text = format!("segment many {{ {chain} }}\n");
    let errors = lower_err(&text);
    assert_eq!(codes_of(&errors), vec![codes::TOO_DEEP]);
    // Just under the limit still loads back.
    let chain = vec!["contact.city == \"x\""; 40].join(" or ");
    let plan = lower_ok(&format!("segment some {{ {chain} }}\n"));
    Plan::from_json(&plan.to_json_pretty()).unwrap();
}

/// The worked example in `docs/plan.md` says which ID each step gets; check it.
#[test]
fn docs_step_id_example_is_right() {
    let doc = std::fs::read_to_string(workspace().join("docs/plan.md")).unwrap();
    let section = &doc[doc.find("### Stable step IDs").unwrap()..];
    let start = section.find("```cairn\n").unwrap() + "```cairn\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let journey = lower_ok(example).journeys["j"].clone();
    let by_line: BTreeMap<u32, String> = journey
        .steps
        .values()
        .map(|s| (s.source.as_ref().unwrap().line, s.id.to_string()))
        .collect();
    let mut documented = BTreeMap::new();
    for (n, line) in example.lines().enumerate() {
        if let Some((code, comment)) = line.split_once("//")
            && !code.trim().starts_with("when")
        {
            documented.insert(u32::try_from(n + 1).unwrap(), comment.trim().to_string());
        }
    }
    assert_eq!(documented, by_line);
}
