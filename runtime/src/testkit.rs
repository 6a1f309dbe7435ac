//! Running a `test` block: feed its inputs to a [`World`] on a virtual clock, then
//! hold its expectations against the outcomes. Sends are exhaustive: a message no
//! `expect send` names fails the test.

use crate::model::{Contact, Millis, Outcome};
use crate::sim::World;
use crate::time::timestamp;
use crate::value::decimal;
use cairn_plan::Plan;
use cairn_plan::test::{Expectation, Expected, TestAction, TestCase};
use serde_json::{Value as Json, json};

#[derive(Debug, Clone)]
pub struct TestResult {
    pub name: String,
    pub location: String,
    pub failures: Vec<Failure>,
    /// Every outcome, in time order, for reports and `--format jsonl`.
    pub timeline: Vec<Outcome>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub location: String,
    pub message: String,
}

/// How far past its last named instant a test lets runs finish their waits.
const SETTLE_LIMIT_MS: Millis = 400 * 86_400_000;

fn millis(text: &str) -> Option<Millis> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

pub fn format_time(ms: Millis) -> String {
    timestamp(ms).strftime("%Y-%m-%dT%H:%MZ").to_string()
}

pub fn run(plan: &Plan, case: &TestCase) -> TestResult {
    let mut failures = Vec::new();
    let mut times: Vec<Millis> = Vec::new();
    for input in &case.inputs {
        match millis(&input.at) {
            Some(t) => times.push(t),
            None => failures.push(Failure {
                location: input.location.clone(),
                message: format!("`{}` is not a time", input.at),
            }),
        }
    }
    for e in &case.expectations {
        times.extend(e.at.iter().chain(e.until.iter()).filter_map(|t| millis(t)));
    }
    let start = times.iter().copied().min().unwrap_or(0);
    let horizon = times.iter().copied().max().unwrap_or(start);
    let mut world = World::new(plan, start);
    for c in &case.contacts {
        let time_zone = c
            .traits
            .get("timezone")
            .or_else(|| c.traits.get("time_zone"))
            .and_then(Json::as_str)
            .map(str::to_string);
        world.add_contact(Contact {
            id: c.name.clone(),
            traits: c.traits.clone().into_iter().collect(),
            created_at: start,
            time_zone,
            consents: c.consents.iter().map(|n| (n.clone(), true)).collect(),
            tags: c.tags.iter().map(|t| (t.clone(), start)).collect(),
            ..Contact::default()
        });
    }
    let mut inputs: Vec<_> = case
        .inputs
        .iter()
        .filter_map(|i| millis(&i.at).map(|t| (t, i)))
        .collect();
    inputs.sort_by_key(|(t, _)| *t);
    for (t, input) in inputs {
        world.advance_before(t);
        if !world.contacts.contains_key(&input.contact) {
            failures.push(Failure {
                location: input.location.clone(),
                message: format!("no test contact `{}`", input.contact),
            });
            continue;
        }
        apply_input(&mut world, &input.contact, &input.action);
    }
    world.advance_through(horizon);
    // Then time runs on for the runs' own waits and deferred sends, so a test need not
    // name the last moment of a journey; contact-level timers stop at the horizon.
    world.settle(horizon + SETTLE_LIMIT_MS);
    let mut outcomes = world.outcomes.clone();
    outcomes.sort_by_key(|o| o.at);
    failures.extend(check(&case.expectations, &outcomes));
    TestResult {
        name: case.name.clone(),
        location: case.location.clone(),
        failures,
        timeline: outcomes,
    }
}

fn apply_input(world: &mut World, contact: &str, action: &TestAction) {
    match action {
        TestAction::Sends { event, payload } => {
            world.ingest(
                contact,
                event,
                Json::Object(payload.clone().into_iter().collect()),
            );
        }
        TestAction::Updates { traits } => world.update_traits(contact, traits.clone()),
        TestAction::Opens { journey, step } | TestAction::Clicks { journey, step, .. } => {
            let (channel, run) = match world.message_of(contact, journey.as_deref(), step) {
                Some(m) => (m.channel.clone(), m.run_id.clone()),
                None => ("email".to_string(), String::new()),
            };
            let journey_name = run.split('/').next().unwrap_or_default().to_string();
            let opened = matches!(action, TestAction::Opens { .. });
            let name = match (opened, channel.as_str()) {
                (true, "push") => "push_opened",
                (true, _) => "email_opened",
                (false, "sms") => "sms_clicked",
                (false, _) => "email_clicked",
            };
            let mut payload = json!({ "journey": journey_name, "run": run, "step": step });
            if let TestAction::Clicks { url: Some(url), .. } = action {
                payload["url"] = json!(url);
            }
            world.ingest(contact, name, payload);
        }
        TestAction::Unsubscribes { channel } => world.unsubscribe(contact, channel.as_deref()),
        TestAction::Visits { url } => {
            let path = url_path(url);
            world.ingest(contact, "page_viewed", json!({ "url": url, "path": path }));
        }
        TestAction::Grants { consent } => {
            world.set_consent(contact, consent, true);
            world.ingest(
                contact,
                "consent_granted",
                json!({ "consent": consent, "source": "test" }),
            );
        }
    }
}

/// The path of a URL, without query or fragment.
pub fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = if url.contains("://") {
        after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
    } else {
        after_scheme
    };
    path.split(['?', '#']).next().unwrap_or("/").to_string()
}

fn check(expectations: &[Expectation], outcomes: &[Outcome]) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut claimed = vec![false; outcomes.len()];
    // Positive send expectations first, claiming one send each.
    for e in expectations
        .iter()
        .filter(|e| !e.negated && matches!(e.what, Expected::Send { .. }))
    {
        let found = outcomes
            .iter()
            .enumerate()
            .position(|(i, o)| !claimed[i] && matches_outcome(e, o));
        match found {
            Some(i) => claimed[i] = true,
            None => failures.push(Failure {
                location: e.location.clone(),
                message: format!(
                    "`{}` did not happen{}",
                    e.text,
                    actual_sends(&e.contact, outcomes)
                ),
            }),
        }
    }
    for e in expectations
        .iter()
        .filter(|e| e.negated || !matches!(e.what, Expected::Send { .. }))
    {
        let ok = match (&e.what, e.negated) {
            (Expected::Score { score, value }, negated) => {
                let at = e.at.as_deref().or(e.until.as_deref()).and_then(millis);
                let current = outcomes
                    .iter()
                    .filter(|o| {
                        o.contact_id == e.contact
                            && o.kind == "score"
                            && at.is_none_or(|t| o.at <= t)
                    })
                    .filter(|o| o.detail.get("score").and_then(Json::as_str) == Some(score))
                    .filter_map(|o| o.detail.get("value").and_then(Json::as_str))
                    .next_back()
                    .map_or_else(|| decimal("0"), decimal);
                (current == decimal(value)) != negated
            }
            (Expected::Nothing, _) => {
                let until = e.until.as_deref().and_then(millis).unwrap_or(Millis::MAX);
                // A `not_entered` records that nothing started: it is not something.
                !outcomes.iter().any(|o| {
                    o.contact_id == e.contact
                        && o.at < until
                        && o.kind != crate::engine::NOT_ENTERED
                })
            }
            (_, false) => outcomes.iter().any(|o| matches_outcome(e, o)),
            (_, true) => !outcomes.iter().any(|o| matches_outcome(e, o)),
        };
        if !ok {
            let message = if e.negated {
                format!("`{}` failed: it happened", e.text)
            } else {
                format!("`{}` did not happen", e.text)
            };
            failures.push(Failure {
                location: e.location.clone(),
                message,
            });
        }
    }
    // Sends are exhaustive.
    for (i, o) in outcomes.iter().enumerate() {
        if o.kind == "send" && !claimed[i] {
            failures.push(Failure {
                location: String::new(),
                message: format!(
                    "unexpected send: {} {} to {} at {} (every message a test causes needs an `expect send`)",
                    o.detail.get("channel").and_then(Json::as_str).unwrap_or("?"),
                    o.detail.get("template").and_then(Json::as_str).unwrap_or("?"),
                    o.contact_id,
                    format_time(o.at)
                ),
            });
        }
    }
    failures
}

fn actual_sends(contact: &str, outcomes: &[Outcome]) -> String {
    let sends: Vec<String> = outcomes
        .iter()
        .filter(|o| o.contact_id == contact && o.kind == "send")
        .map(|o| {
            format!(
                "{} {} at {}",
                o.detail
                    .get("channel")
                    .and_then(Json::as_str)
                    .unwrap_or("?"),
                o.detail
                    .get("template")
                    .and_then(Json::as_str)
                    .unwrap_or("?"),
                format_time(o.at)
            )
        })
        .collect();
    if sends.is_empty() {
        format!("; `{contact}` got no message")
    } else {
        format!("; `{contact}` got: {}", sends.join(", "))
    }
}

fn matches_outcome(e: &Expectation, o: &Outcome) -> bool {
    if o.contact_id != e.contact {
        return false;
    }
    if let Some(at) = e.at.as_deref().and_then(millis)
        && o.at != at
    {
        return false;
    }
    let detail = |key: &str| o.detail.get(key).and_then(Json::as_str);
    let step_is = |journey: &Option<String>, step: &str| {
        o.step.as_deref() == Some(step)
            && journey
                .as_ref()
                .is_none_or(|j| o.journey.as_deref() == Some(j))
    };
    let before_until = |o: &Outcome| e.until.as_deref().and_then(millis).is_none_or(|u| o.at < u);
    match &e.what {
        Expected::Send { channel, templates } => {
            o.kind == "send"
                && before_until(o)
                && channel
                    .as_deref()
                    .is_none_or(|c| detail("channel") == Some(c))
                && (templates.is_empty() || templates.iter().any(|t| detail("template") == Some(t)))
        }
        Expected::Split { journey, step, arm } => {
            o.kind == "split"
                && step_is(journey, step)
                && arm.as_deref().is_none_or(|a| detail("arm") == Some(a))
        }
        Expected::Tag { tag, added } => {
            o.kind == "tag"
                && detail("tag") == Some(tag)
                && detail("change") == Some(if *added { "added" } else { "removed" })
        }
        Expected::Goal { journey } => o.kind == "goal" && o.journey.as_deref() == Some(journey),
        Expected::Exit { journey, reason } => {
            o.kind == "exit"
                && o.journey.as_deref() == Some(journey)
                && reason
                    .as_deref()
                    .is_none_or(|r| detail("reason") == Some(r))
        }
        Expected::Skip {
            journey,
            step,
            reason,
        } => {
            o.kind == "skip"
                && step_is(journey, step)
                && reason
                    .as_deref()
                    .is_none_or(|r| detail("reason") == Some(r))
        }
        Expected::Defer { journey, step } => {
            o.kind == "defer"
                && step_is(journey, step)
                && e.until
                    .as_deref()
                    .and_then(millis)
                    .is_none_or(|u| o.detail.get("until").and_then(Json::as_i64) == Some(u))
        }
        Expected::Enter { journey } => o.kind == "enter" && o.journey.as_deref() == Some(journey),
        Expected::Score { .. } | Expected::Nothing => false,
    }
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn paths_drop_query_and_fragment() {
        assert_eq!(url_path("https://shop.example/pricing?x=1#a"), "/pricing");
        assert_eq!(url_path("https://shop.example"), "/");
        assert_eq!(url_path("/tv/oled"), "/tv/oled");
    }
}
