//! A contact's trace: "why did Ana get this, and why not that", read from what the
//! daemon recorded. Built for `GET /admin/contacts/{id}/trace` from the contact's
//! export ([`crate::store::rights`]) and the plans its runs are on; printed by
//! `cairn trace`.
//!
//! Each run is a group of lines in time order: the event that started it with the
//! journey's trigger, the entry, each step that recorded an outcome (sends, skips and
//! defers with their reason in words, splits, tags, scores, webhooks), each message's
//! life after it was queued (sent, delivered, opened, clicked, bounced, held back), the
//! goal and the end. Then, for each journey of the active plan the contact is not in,
//! the last reason it did not enter. Steps that record nothing (waits, branches) show
//! only as where a run waits now.

use crate::engine::NOT_ENTERED;
use crate::model::{Millis, Outcome, Run, RunState};
use crate::process::Core;
use crate::store::StoreError;
use crate::store::rights::{ContactExport, ExportedEvent, ExportedMessage};
use cairn_plan::diff::{duration, expr_text, trigger_text};
use cairn_plan::journey::{Reentry, Trigger};
use cairn_plan::{Channel, Plan};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What part of the history a trace covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// Only this journey's runs and reasons.
    pub journey: Option<String>,
    /// Only what happened from this time on (the "why not" reasons are always the
    /// last ones recorded).
    pub since: Option<Millis>,
}

/// `GET /admin/contacts/{id}/trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub contact_id: String,
    /// An erased contact's trace holds only what erasure keeps for statistics.
    pub erased: bool,
    pub erased_at: Option<Millis>,
    /// The contact's time zone, which local times in the lines are in (UTC when unset).
    pub time_zone: String,
    pub active_version: Option<i64>,
    /// Oldest entry first.
    pub runs: Vec<TracedRun>,
    /// What happened outside any run: triggers that did not start a run (`not_entered`),
    /// consent changes, double opt-in requests, segments entered and left, scores that
    /// decayed.
    pub contact: Vec<TraceLine>,
    /// The journeys of the active plan the contact is not in, and why.
    pub why_not: Vec<WhyNot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracedRun {
    pub run_id: String,
    pub journey: String,
    pub plan_version: i64,
    pub entered_at: Millis,
    /// The journey's trigger as written (`when cart_updated as cart`), when the run's
    /// plan is known.
    pub trigger: Option<String>,
    /// Where the run is now, in words.
    pub state: String,
    pub ended: bool,
    pub lines: Vec<TraceLine>,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceLine {
    pub at: Millis,
    /// The outcome's kind (`enter`, `send`, `skip`, `defer`, `goal`, `exit`...), `event`
    /// for the event that started a run, or what became of a message: `sent`,
    /// `delivered`, `opened`, `clicked`, `bounced`, `complained`, `failed`.
    pub kind: String,
    pub step: Option<String>,
    pub text: String,
}

/// Why the contact is not in a journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyNot {
    pub journey: String,
    /// The journey's trigger as written.
    pub trigger: String,
    /// `audience`, `reentry`, `paused` or `followed` (a recorded `not_entered`), `ended` (its
    /// last run ended and nothing entered it since), `erased`, or `not_triggered`.
    pub reason: String,
    /// When it was recorded.
    pub at: Option<Millis>,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no journey `{journey}` in the active plan or in the contact's runs: {known}")]
    UnknownJourney { journey: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The trace of `contact_id`, or `None` when there is no such contact.
pub async fn build(
    core: &Core,
    contact_id: &str,
    filter: &TraceFilter,
) -> Result<Option<Trace>, TraceError> {
    let Some(export) = core.store.export_contact(contact_id).await? else {
        return Ok(None);
    };
    let active = core.active_plan();
    let mut plans: BTreeMap<i64, Arc<Plan>> = BTreeMap::new();
    if let Some(active) = &active {
        plans.insert(active.version, active.plan.clone());
    }
    if let Ok(loaded) = core.plans.read() {
        for run in &export.runs {
            if let Some(version) = loaded.version(run.plan_version) {
                plans.insert(version.version, version.plan.clone());
            }
        }
    }
    assemble(&export, &plans, active.as_ref().map(|a| a.version), filter).map(Some)
}

/// The trace of an exported contact, with the plans by version (the active one among
/// them).
pub fn assemble(
    export: &ContactExport,
    plans: &BTreeMap<i64, Arc<Plan>>,
    active_version: Option<i64>,
    filter: &TraceFilter,
) -> Result<Trace, TraceError> {
    let active = active_version.and_then(|v| plans.get(&v));
    if let Some(journey) = &filter.journey {
        let in_plan = active.is_some_and(|p| p.journeys.contains_key(journey));
        if !in_plan && !export.runs.iter().any(|r| r.journey == *journey) {
            let known: Vec<String> = active
                .map(|p| p.journeys.keys().map(|j| format!("`{j}`")).collect())
                .unwrap_or_default();
            return Err(TraceError::UnknownJourney {
                journey: journey.clone(),
                known: if known.is_empty() {
                    "there are none".into()
                } else {
                    format!("expected one of {}", known.join(", "))
                },
            });
        }
    }
    let zone = export.time_zone.clone().unwrap_or_else(|| "UTC".into());
    let wanted = |journey: &str| filter.journey.as_deref().is_none_or(|j| j == journey);
    let recent = |at: Millis| filter.since.is_none_or(|s| at >= s);
    let mut runs: Vec<&Run> = export.runs.iter().filter(|r| wanted(&r.journey)).collect();
    runs.sort_by(|a, b| (a.entered_at, &a.id).cmp(&(b.entered_at, &b.id)));
    let traced = runs
        .into_iter()
        .filter(|run| match run.state {
            RunState::Ended { at, .. } => recent(at),
            _ => true,
        })
        .map(|run| {
            let plan = plans.get(&run.plan_version).or(active).map(Arc::as_ref);
            let mut traced = trace_run(export, run, plan, &zone);
            traced.lines.retain(|l| recent(l.at));
            traced
        })
        .collect();
    let contact = export
        .outcomes
        .iter()
        .filter(|o| o.run_id.is_none() && recent(o.at))
        .filter(|o| o.kind != NOT_ENTERED || o.journey.as_deref().is_some_and(wanted))
        .map(|o| {
            let text = outcome_text(o, active.map(Arc::as_ref), &zone);
            TraceLine {
                at: o.at,
                kind: o.kind.clone(),
                step: None,
                text: match (&o.journey, o.kind.as_str()) {
                    (Some(journey), NOT_ENTERED) => format!("{journey} {text}"),
                    _ => text,
                },
            }
        })
        .collect();
    let why_not = match active {
        Some(plan) => plan
            .journeys
            .keys()
            .filter(|j| wanted(j))
            .filter_map(|j| why_not(export, plan, j))
            .collect(),
        None => Vec::new(),
    };
    Ok(Trace {
        contact_id: export.contact_id.clone(),
        erased: export.erased,
        erased_at: export.erased_at,
        time_zone: zone,
        active_version,
        runs: traced,
        contact,
        why_not,
    })
}

fn trace_run(export: &ContactExport, run: &Run, plan: Option<&Plan>, zone: &str) -> TracedRun {
    let journey = plan.and_then(|p| p.journeys.get(&run.journey));
    let mut lines = Vec::new();
    let mut deliveries = Vec::new();
    if let Some(journey) = journey
        && let Some(event) = trigger_event(&journey.trigger, run, &export.events)
    {
        lines.push(TraceLine {
            at: event.occurred_at,
            kind: "event".into(),
            step: None,
            text: format!("`{}` started the run", event.name),
        });
    }
    for o in export
        .outcomes
        .iter()
        .filter(|o| o.run_id.as_deref() == Some(run.id.as_str()))
    {
        let mut text = outcome_text(o, plan, zone);
        // A goal or an end is the run's, not the step's it happened at.
        let step = match (o.kind.as_str(), &o.step) {
            ("goal", Some(step)) => {
                text = format!("{text} (at `{step}`)");
                None
            }
            ("exit", _) => None,
            _ => o.step.clone(),
        };
        if o.kind == "enter"
            && let Some(Trigger::Event {
                unless: Some(unless),
                ..
            }) = journey.map(|j| &j.trigger)
        {
            text = format!(
                "{text}: no `{}` within {}",
                unless.event,
                duration(unless.within)
            );
        }
        lines.push(TraceLine {
            at: o.at,
            kind: o.kind.clone(),
            step,
            text,
        });
        if o.kind == "send" {
            deliveries.extend(message_lines(export, run, o));
        }
    }
    // Stable: at one instant, the order things were recorded in, and what the channels
    // did after the engine's decisions.
    lines.append(&mut deliveries);
    lines.sort_by_key(|l| l.at);
    let (state, ended) = match &run.state {
        RunState::Ended { reason, at } => (
            format!("ended {}: {}", utc_text(*at), end_text(reason.as_str())),
            true,
        ),
        RunState::Ready => (
            format!("about to run `{}`", run.step.as_deref().unwrap_or("?")),
            false,
        ),
        RunState::Waiting { until } => (
            format!(
                "waiting at `{}` until {}",
                run.step.as_deref().unwrap_or("?"),
                utc_text(*until)
            ),
            false,
        ),
        RunState::WaitingForEvent { event, until } => {
            let deadline = if *until == Millis::MAX {
                "with no deadline".to_string()
            } else {
                format!("until {}", utc_text(*until))
            };
            let text = match &run.step {
                Some(step) => format!("waiting at `{step}` for `{event}` {deadline}"),
                None => format!("steps done; waiting for the goal `{event}` {deadline}"),
            };
            (text, false)
        }
        RunState::Paused => (
            format!("paused at `{}`", run.step.as_deref().unwrap_or("?")),
            false,
        ),
    };
    TracedRun {
        run_id: run.id.clone(),
        journey: run.journey.clone(),
        plan_version: run.plan_version,
        entered_at: run.entered_at,
        trigger: journey.map(|j| trigger_text(&j.trigger)),
        state,
        ended,
        lines,
    }
}

/// The event that started `run`: the last one of the trigger's kind at or before the
/// entry (for an abandonment, before the entry by its window), the one whose payload the
/// run bound when there are several.
fn trigger_event<'e>(
    trigger: &Trigger,
    run: &Run,
    events: &'e [ExportedEvent],
) -> Option<&'e ExportedEvent> {
    let (name, latest, binding) = match trigger {
        Trigger::Event {
            event,
            binding,
            unless,
            ..
        } => {
            let latest = unless.as_ref().map_or(run.entered_at, |u| {
                run.entered_at - crate::time::add(0, u.within)
            });
            (event.as_str(), latest, binding.as_deref())
        }
        Trigger::Page { .. } => ("page_viewed", run.entered_at, None),
        Trigger::ContactCreated => ("contact_created", run.entered_at, None),
        Trigger::ConsentGranted { .. } => ("consent_granted", run.entered_at, None),
        _ => return None,
    };
    let candidate = |e: &&ExportedEvent| e.name == name && e.occurred_at <= latest;
    let bound = binding.and_then(|b| run.bindings.get(b));
    bound
        .and_then(|payload| {
            events
                .iter()
                .rfind(|e| candidate(e) && e.payload == *payload)
        })
        .or_else(|| events.iter().rfind(candidate))
}

/// What became of the message a `send` outcome queued: sent, the provider's status, the
/// opens, clicks and bounces that name it, a failure.
fn message_lines(export: &ContactExport, run: &Run, send: &Outcome) -> Vec<TraceLine> {
    let visit = send.detail.get("visit").and_then(Json::as_i64).unwrap_or(1);
    let step = send.step.as_deref().unwrap_or_default();
    let Some(message) = export
        .messages
        .iter()
        .find(|m| m.run_id == run.id && m.step == step && m.visit == visit)
    else {
        return Vec::new();
    };
    let what = message_name(message);
    let line = |at: Millis, kind: &str, text: String| TraceLine {
        at,
        kind: kind.to_string(),
        step: Some(step.to_string()),
        text,
    };
    let mut lines = Vec::new();
    if let Some(sent) = message.sent_at {
        let attempts = if message.attempts > 1 {
            format!(" (attempt {})", message.attempts)
        } else {
            String::new()
        };
        lines.push(line(sent, "sent", format!("{what} sent{attempts}")));
    }
    if message.state == "failed"
        && let Some(error) = &message.last_error
        // A message held back at hand-over has its own `suppressed` outcome.
        && !error.starts_with("suppressed")
    {
        let at = message.delivery_at.unwrap_or(message.created_at);
        lines.push(line(at, "failed", format!("{what} not sent: {error}")));
    }
    // A later visit of the step (a `retry`) is another message: feedback goes to the
    // latest visit queued before it.
    let later_visit = |at: Millis| {
        export
            .messages
            .iter()
            .any(|m| m.run_id == run.id && m.step == step && m.visit > visit && m.created_at <= at)
    };
    let mut feedback_kinds = Vec::new();
    for event in export.events.iter().filter(|e| {
        e.payload.get("run").and_then(Json::as_str) == Some(run.id.as_str())
            && e.payload.get("step").and_then(Json::as_str) == Some(step)
    }) {
        let Some(kind) = feedback_kind(&event.name) else {
            continue;
        };
        if later_visit(event.occurred_at) {
            continue;
        }
        let text = match (kind, event.payload.get("url").and_then(Json::as_str)) {
            ("clicked", Some(url)) => format!("{what} clicked: {url}"),
            ("bounced", _) => match event.payload.get("kind").and_then(Json::as_str) {
                Some(bounce) => format!("{what} bounced ({bounce})"),
                None => format!("{what} bounced"),
            },
            ("complained", _) => format!("{what} marked as spam"),
            _ => format!("{what} {kind}"),
        };
        feedback_kinds.push(kind);
        lines.push(line(event.occurred_at, kind, text));
    }
    if let (Some(status), Some(at)) = (&message.delivery_status, message.delivery_at)
        && !feedback_kinds.contains(&status.as_str())
    {
        lines.push(line(
            at,
            status,
            format!("{what} {status} (the provider said)"),
        ));
    }
    lines
}

/// What a feedback event says of the message it names.
fn feedback_kind(event: &str) -> Option<&'static str> {
    Some(match event {
        "email_delivered" | "sms_delivered" => "delivered",
        "email_opened" | "push_opened" => "opened",
        "email_clicked" | "sms_clicked" | "push_clicked" => "clicked",
        "email_bounced" => "bounced",
        "email_complained" => "complained",
        _ => return None,
    })
}

fn message_name(message: &ExportedMessage) -> String {
    match &message.template {
        Some(template) => format!("{} `{template}`", message.channel),
        None => format!("{} to {}", message.channel, message.address),
    }
}

/// Why the contact is not in `journey` of the active plan; `None` when it is.
fn why_not(export: &ContactExport, plan: &Plan, journey: &str) -> Option<WhyNot> {
    let runs: Vec<&Run> = export
        .runs
        .iter()
        .filter(|r| r.journey == journey)
        .collect();
    if runs
        .iter()
        .any(|r| !matches!(r.state, RunState::Ended { .. }))
    {
        return None;
    }
    let trigger = plan
        .journeys
        .get(journey)
        .map(|j| trigger_text(&j.trigger))
        .unwrap_or_default();
    let answer = |reason: &str, at: Option<Millis>, text: String| WhyNot {
        journey: journey.to_string(),
        trigger: trigger.clone(),
        reason: reason.to_string(),
        at,
        text,
    };
    if export.erased {
        let at = export.erased_at;
        let when = at.map(|t| format!(" {}", utc_text(t))).unwrap_or_default();
        return Some(answer(
            "erased",
            at,
            format!("the contact was erased{when}: no journey starts for them"),
        ));
    }
    let last_run = runs.iter().max_by_key(|r| r.entered_at);
    let refusal = export
        .outcomes
        .iter()
        .rfind(|o| o.kind == NOT_ENTERED && o.journey.as_deref() == Some(journey))
        .filter(|o| last_run.is_none_or(|r| o.at >= r.entered_at));
    if let Some(o) = refusal {
        let reason = o
            .detail
            .get("reason")
            .and_then(Json::as_str)
            .unwrap_or("unknown");
        let text = outcome_text(o, Some(plan), "UTC");
        return Some(answer(reason, Some(o.at), text));
    }
    if let Some(run) = last_run
        && let RunState::Ended { reason, at } = run.state
    {
        return Some(answer(
            "ended",
            Some(at),
            format!(
                "its last run ended {} ({}); no trigger has matched since",
                utc_text(at),
                end_text(reason.as_str())
            ),
        ));
    }
    Some(answer(
        "not_triggered",
        None,
        "nothing has triggered it for this contact".to_string(),
    ))
}

/// A time as the trace prints it: `2026-03-03 12:00:00Z`.
pub fn utc_text(at: Millis) -> String {
    crate::time::timestamp(at)
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

/// A time in the contact's zone: `2026-03-04 08:00 Europe/Oslo`.
fn local_text(at: Millis, zone: &str) -> String {
    let local = crate::time::timestamp(at).to_zoned_datetime(crate::time::zone(Some(zone)));
    format!("{} {zone}", local.strftime("%Y-%m-%d %H:%M"))
}

fn end_text(reason: &str) -> &'static str {
    match reason {
        "completed" => "went past its last step",
        "goal" => "the goal was reached",
        "exit_condition" => "an exit condition",
        "timeout" => "a time limit",
        "erased" => "the contact was erased",
        _ => "for a reason this cairn does not know",
    }
}

fn channel_of(o: &Outcome) -> Option<Channel> {
    match o.detail.get("channel").and_then(Json::as_str)? {
        "email" => Some(Channel::Email),
        "sms" => Some(Channel::Sms),
        "push" => Some(Channel::Push),
        _ => None,
    }
}

/// The consents a marketing send on `channel` needs, as `` `a` `` or `` `a` or `b` ``.
fn consents_for(plan: Option<&Plan>, channel: Channel) -> Option<String> {
    let names: Vec<String> = plan?
        .schema
        .consents
        .iter()
        .filter(|(_, c)| c.channel == channel)
        .map(|(n, _)| format!("`{n}`"))
        .collect();
    (!names.is_empty()).then(|| names.join(" or "))
}

/// An outcome in plain words, as the trace prints it: `skipped: no consent
/// `sms_marketing``, `deferred to 2026-03-04 08:00 Europe/Oslo: quiet hours`. `plan`
/// names consents and audiences; `zone` is the contact's, for local times.
pub fn outcome_text(o: &Outcome, plan: Option<&Plan>, zone: &str) -> String {
    let d = &o.detail;
    let text = |key: &str| d.get(key).and_then(Json::as_str);
    let millis = |key: &str| d.get(key).and_then(Json::as_i64);
    let what = match (text("channel"), text("template")) {
        (Some(channel), Some(template)) => format!("{channel} `{template}`"),
        (Some(channel), None) => channel.to_string(),
        _ => "the message".to_string(),
    };
    let reason = text("reason").unwrap_or("unknown");
    let journey = o
        .journey
        .as_deref()
        .and_then(|j| plan.and_then(|p| p.journeys.get(j)));
    match o.kind.as_str() {
        "enter" => match d.get("plan_version").and_then(Json::as_i64) {
            Some(version) => format!("entered (plan version {version})"),
            None => "entered".into(),
        },
        "send" => match text("address").filter(|a| !a.is_empty()) {
            Some(address) => format!("{what} queued to {address}"),
            None => format!("{what} queued"),
        },
        "skip" => {
            let why = match reason {
                "no_consent" => match channel_of(o).and_then(|c| consents_for(plan, c)) {
                    Some(consents) => format!("no consent {consents}"),
                    None => "no consent for the channel".into(),
                },
                "no_address" => match channel_of(o) {
                    Some(Channel::Email) => "no email address".into(),
                    Some(Channel::Sms) => "no phone number".into(),
                    Some(Channel::Push) => "no push token".into(),
                    None => "no address".into(),
                },
                "invalid_address" => "the address is not usable".into(),
                "frequency_cap" => match d.pointer("/detail/limit").and_then(Json::as_i64) {
                    Some(limit) => format!("frequency cap of {limit} reached"),
                    None => "frequency cap reached".into(),
                },
                "erased" => "the contact was erased".into(),
                "paused" => "the journey is paused".into(),
                "render_error" => match text("detail") {
                    Some(error) => format!("the template did not render: {error}"),
                    None => "the template did not render".into(),
                },
                other => other.replace('_', " "),
            };
            format!("{what} skipped: {why}")
        }
        "defer" => {
            let until = millis("until")
                .map(|t| format!(" to {}", local_text(t, zone)))
                .unwrap_or_default();
            let why = match reason {
                "quiet_hours" => "quiet hours".to_string(),
                "frequency_cap" => "frequency cap".to_string(),
                "best_time" => match d.get("hour").and_then(Json::as_i64) {
                    Some(hour) => format!("the contact's best time ({hour:02}:00)"),
                    None => "the contact's best time".to_string(),
                },
                other => other.replace('_', " "),
            };
            format!("deferred{until}: {why}")
        }
        "suppressed" => format!(
            "{what} held back at hand-over: {}",
            reason.replace('_', " ")
        ),
        "webhook" => match text("url") {
            Some(url) => format!("posted to {url}"),
            None => "posted the webhook".into(),
        },
        "split" => match text("arm") {
            Some(arm) => format!("split: arm `{arm}`"),
            None => "split".into(),
        },
        "tag" => match (text("tag"), text("change")) {
            (Some(tag), Some(change)) => format!("tag `{tag}` {change}"),
            _ => "tag changed".into(),
        },
        "score" => match (text("score"), text("value")) {
            (Some(score), Some(value)) if d.get("delta") == Some(&Json::from("decay")) => {
                format!("score `{score}` decayed to {value}")
            }
            (Some(score), Some(value)) => format!("score `{score}` is now {value}"),
            _ => "score changed".into(),
        },
        "attribute" => match (text("field"), d.get("value")) {
            (Some(field), Some(value)) => format!("set `{field}` to {value}"),
            (Some(field), None) => format!("set `{field}`"),
            _ => "set a contact field".into(),
        },
        "segment" => match (text("segment"), text("change")) {
            (Some(segment), Some("left")) => format!("left segment `{segment}`"),
            (Some(segment), _) => format!("entered segment `{segment}`"),
            _ => "segment changed".into(),
        },
        "consent" => {
            let name = text("consent").unwrap_or("?");
            let change = match d.get("granted").and_then(Json::as_bool) {
                Some(true) => "granted",
                Some(false) => "revoked",
                None => "changed",
            };
            match text("source") {
                Some(source) => format!("consent `{name}` {change} (by {source})"),
                None => format!("consent `{name}` {change}"),
            }
        }
        crate::store::respect::OPT_IN_REQUESTED => format!(
            "double opt-in confirmation sent for `{}`",
            text("consent").unwrap_or("?")
        ),
        "goal" => match text("event") {
            Some(event) => format!("goal: `{event}` arrived"),
            None => "goal step reached".into(),
        },
        "exit" => format!("ended: {}", end_text(reason)),
        NOT_ENTERED => {
            let why = match reason {
                "audience" => match journey.and_then(|j| j.audience.as_ref()) {
                    Some(audience) => format!("outside the audience `{}`", expr_text(audience)),
                    None => "outside the audience".to_string(),
                },
                "reentry" => {
                    let last = millis("last_entry")
                        .map(|t| format!(" (last entry {})", utc_text(t)))
                        .unwrap_or_default();
                    match (text("policy"), journey.map(|j| &j.reentry)) {
                        (Some("once"), _) => format!("the journey admits a contact once{last}"),
                        (_, Some(Reentry::After { cooldown })) => format!(
                            "re-entry is allowed {} after the last entry{last}{}",
                            duration(*cooldown),
                            millis("until")
                                .map(|t| format!(", not before {}", utc_text(t)))
                                .unwrap_or_default()
                        ),
                        _ => format!("the re-entry policy refused it{last}"),
                    }
                }
                "paused" => "the journey is paused".to_string(),
                "followed" => {
                    let event = text("event").unwrap_or("?");
                    let within = match journey.map(|j| &j.trigger) {
                        Some(Trigger::Event {
                            event: trigger,
                            unless: Some(unless),
                            ..
                        }) => format!(" within {} of `{trigger}`", duration(unless.within)),
                        _ => String::new(),
                    };
                    let at = millis("at")
                        .map(|t| format!(" at {}", utc_text(t)))
                        .unwrap_or_default();
                    let trigger_at = millis("trigger_at")
                        .filter(|_| !within.is_empty())
                        .map(|t| format!(" at {}", utc_text(t)))
                        .unwrap_or_default();
                    format!("`{event}` came{at}{within}{trigger_at}")
                }
                other => other.replace('_', " "),
            };
            format!("not entered: {why}")
        }
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plan::Duration;
    use serde_json::json;

    const T: Millis = 1_772_532_000_000; // 2026-03-03T10:00:00Z

    fn outcome(kind: &str, journey: Option<&str>, detail: Json) -> Outcome {
        Outcome {
            at: T,
            contact_id: "ana".into(),
            journey: journey.map(str::to_string),
            run_id: None,
            step: None,
            kind: kind.into(),
            detail,
        }
    }

    fn plan() -> Plan {
        let mut plan = Plan::new("shop");
        for (name, channel) in [
            ("email_marketing", Channel::Email),
            ("sms_marketing", Channel::Sms),
        ] {
            plan.schema.consents.insert(
                name.into(),
                cairn_plan::Consent {
                    name: name.into(),
                    channel,
                },
            );
        }
        let mut journey = cairn_plan::journey::Journey {
            name: "abandoned_cart".into(),
            description: None,
            trigger: Trigger::Event {
                event: "cart_updated".into(),
                binding: Some("cart".into()),
                filter: None,
                unless: Some(cairn_plan::journey::Unless {
                    event: "order_completed".into(),
                    filter: None,
                    within: Duration::Seconds(7_200),
                }),
            },
            audience: Some(cairn_plan::Expr::Call {
                function: "consented".into(),
                args: vec![cairn_plan::CallArg {
                    value: cairn_plan::Expr::Name {
                        name: "email_marketing".into(),
                    },
                    filter: None,
                    within: None,
                }],
            }),
            reentry: Reentry::After {
                cooldown: Duration::Seconds(7 * 86_400),
            },
            goal: None,
            exits: Vec::new(),
            quiet_hours: None,
            frequency_caps: None,
            migrations: Vec::new(),
            drain: false,
            entry: None,
            steps: BTreeMap::new(),
        };
        plan.journeys
            .insert("abandoned_cart".into(), journey.clone());
        journey.name = "welcome".into();
        journey.reentry = Reentry::Once;
        plan.journeys.insert("welcome".into(), journey);
        plan
    }

    #[test]
    fn skips_name_the_consent_the_channel_needs() {
        let plan = plan();
        let skip = outcome(
            "skip",
            Some("abandoned_cart"),
            json!({ "reason": "no_consent", "channel": "sms", "template": "cart_sms" }),
        );
        assert_eq!(
            outcome_text(&skip, Some(&plan), "UTC"),
            "sms `cart_sms` skipped: no consent `sms_marketing`"
        );
        let skip = outcome(
            "skip",
            None,
            json!({ "reason": "no_address", "channel": "sms", "template": "cart_sms" }),
        );
        assert_eq!(
            outcome_text(&skip, None, "UTC"),
            "sms `cart_sms` skipped: no phone number"
        );
    }

    #[test]
    fn defers_say_until_when_in_the_contacts_zone() {
        // 22:00 in Oslo (UTC+1 in March) deferred to 08:00 there, 07:00 UTC.
        let defer = outcome(
            "defer",
            None,
            json!({ "reason": "quiet_hours", "until": T + 21 * 3_600_000 }),
        );
        assert_eq!(
            outcome_text(&defer, None, "Europe/Oslo"),
            "deferred to 2026-03-04 08:00 Europe/Oslo: quiet hours"
        );
        let best = outcome(
            "defer",
            None,
            json!({ "reason": "best_time", "until": T + 3_600_000, "hour": 11 }),
        );
        assert_eq!(
            outcome_text(&best, None, "UTC"),
            "deferred to 2026-03-03 11:00 UTC: the contact's best time (11:00)"
        );
    }

    #[test]
    fn refused_entries_give_the_rule_that_refused_them() {
        let plan = plan();
        let audience = outcome(
            NOT_ENTERED,
            Some("abandoned_cart"),
            json!({ "reason": "audience" }),
        );
        assert_eq!(
            outcome_text(&audience, Some(&plan), "UTC"),
            "not entered: outside the audience `consented(email_marketing)`"
        );
        let cooldown = outcome(
            NOT_ENTERED,
            Some("abandoned_cart"),
            json!({ "reason": "reentry", "policy": "after", "last_entry": T, "until": T + 7 * 86_400_000 }),
        );
        assert_eq!(
            outcome_text(&cooldown, Some(&plan), "UTC"),
            "not entered: re-entry is allowed 7d after the last entry \
             (last entry 2026-03-03 10:00:00Z), not before 2026-03-10 10:00:00Z"
        );
        let once = outcome(
            NOT_ENTERED,
            Some("welcome"),
            json!({ "reason": "reentry", "policy": "once", "last_entry": T }),
        );
        assert_eq!(
            outcome_text(&once, Some(&plan), "UTC"),
            "not entered: the journey admits a contact once (last entry 2026-03-03 10:00:00Z)"
        );
        let followed = outcome(
            NOT_ENTERED,
            Some("abandoned_cart"),
            json!({ "reason": "followed", "event": "order_completed", "at": T + 1_800_000, "trigger_at": T }),
        );
        assert_eq!(
            outcome_text(&followed, Some(&plan), "UTC"),
            "not entered: `order_completed` came at 2026-03-03 10:30:00Z within 2h of \
             `cart_updated` at 2026-03-03 10:00:00Z"
        );
    }

    #[test]
    fn why_not_gives_the_last_reason_and_since_leaves_out_older_runs() {
        let plan = Arc::new(plan());
        let ended = |n: i64, at: Millis| Run {
            id: format!("welcome/ana/{n}"),
            contact_id: "ana".into(),
            journey: "welcome".into(),
            plan_version: 1,
            step: None,
            state: RunState::Ended {
                reason: crate::model::EndReason::Completed,
                at,
            },
            bindings: BTreeMap::new(),
            entered_at: at,
            visits: BTreeMap::new(),
        };
        let mut refusal = outcome(
            NOT_ENTERED,
            Some("welcome"),
            json!({ "reason": "audience" }),
        );
        refusal.at = T + 1_000;
        let export = ContactExport {
            contact_id: "ana".into(),
            erased: false,
            erased_at: None,
            created_at: T,
            updated_at: T,
            traits: json!({}),
            time_zone: None,
            aliases: Vec::new(),
            consents: Vec::new(),
            tags: Vec::new(),
            scores: Vec::new(),
            segments: Vec::new(),
            events: Vec::new(),
            // A refusal, then a run that entered later: the refusal no longer explains.
            runs: vec![ended(1, T), ended(2, T + 2_000)],
            outcomes: vec![refusal],
            messages: Vec::new(),
            suppressions: Vec::new(),
        };
        let plans = BTreeMap::from([(1, plan)]);
        let filter = TraceFilter {
            journey: None,
            since: Some(T + 2_000),
        };
        let trace = assemble(&export, &plans, Some(1), &filter).expect("a trace");
        let runs: Vec<&str> = trace.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(runs, ["welcome/ana/2"]);
        assert!(trace.contact.is_empty());
        let reasons: Vec<(&str, &str)> = trace
            .why_not
            .iter()
            .map(|w| (w.journey.as_str(), w.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [("abandoned_cart", "not_triggered"), ("welcome", "ended")]
        );
        let unknown = TraceFilter {
            journey: Some("nope".into()),
            since: None,
        };
        assert!(matches!(
            assemble(&export, &plans, Some(1), &unknown),
            Err(TraceError::UnknownJourney { .. })
        ));
    }
}
