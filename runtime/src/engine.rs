//! The state machine of journey runs. Given a plan, a contact, its history and the
//! runs in flight, it decides what happens at one instant and returns it as
//! [`Effects`]; the caller (the daemon's store, or `cairn test`'s) applies them in one
//! transaction. The engine reads no clock and touches no storage.

use crate::eval::{Binding, Scope};
use crate::model::*;
use crate::time::{self, zone};
use cairn_plan::journey::{Journey, Reentry, SegmentChange, Step, StepKind, TagChange, Trigger};
use cairn_plan::schema::{Channel, Type};
use cairn_plan::{CapAction, CapScope, Plan, StepId};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// Steps one decision may execute for one run before it stops: far above any real
/// journey (loops are bounded by `retry`), it keeps a bad plan from spinning.
const MAX_STEPS_PER_DECISION: usize = 10_000;

/// The outcome of a trigger that matched without the contact entering: its `reason`
/// is `audience`, `reentry`, `paused` or `followed` (an abandonment cancelled by its
/// `unless`).
pub const NOT_ENTERED: &str = "not_entered";

/// Links the engine puts into messages, signed (see [`crate::links`]).
#[derive(Clone)]
pub struct Links {
    /// The daemon's public URL, e.g. `https://cairn.example.com`.
    pub base_url: String,
    /// The key of link signatures: the daemon's `link_secret`.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base_url", &self.base_url)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl Default for Links {
    /// What `cairn test`, `cairn simulate` and `cairn preview` render: a fixed key,
    /// since nothing there is ever followed.
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".to_string(),
            secret: b"cairn-local-link-secret".to_vec(),
        }
    }
}

pub struct Engine<'p> {
    plan: &'p Plan,
    version: i64,
    /// Whether this is the active version: only it starts new runs.
    active: bool,
    links: Links,
    /// Journeys paused by `cairn pause`: no entries, runs held (see [`Engine::holding`]).
    paused: Option<&'p std::collections::HashSet<String>>,
}

impl<'p> Engine<'p> {
    pub fn new(plan: &'p Plan, version: i64, active: bool, links: Links) -> Self {
        Self {
            plan,
            version,
            active,
            links,
            paused: None,
        }
    }

    /// This engine with `paused` journeys held: a trigger of one records a
    /// `not_entered` outcome (reason `paused`) instead of starting a run, and an event
    /// its runs wait for does not move them (its goal and exits still end them).
    pub fn holding(mut self, paused: &'p std::collections::HashSet<String>) -> Self {
        self.paused = Some(paused);
        self
    }

    fn is_paused(&self, journey: &str) -> bool {
        self.paused.is_some_and(|p| p.contains(journey))
    }

    /// A new event for `contact` (already appended to `history`): advances the runs
    /// waiting for it, ends runs it completes or exits, and starts journeys.
    pub fn on_event<'r>(
        &self,
        contact: &Contact,
        history: &[EventRecord],
        event: &EventRecord,
        runs: impl IntoIterator<Item = &'r Run>,
        now: Millis,
    ) -> Effects {
        let mut d = Decision::new(self, contact, history, now);
        for run in runs
            .into_iter()
            .filter(|r| r.plan_version == self.version && self.concerns(r, event))
        {
            d.run_event(run.clone(), event);
        }
        if self.active {
            d.scores(event);
            d.triggers(event);
            d.segments();
        }
        d.effects
    }

    /// Whether `event` can change `run`: it is the run's goal, one of its exits or the
    /// event it waits for. Any other event leaves the run as it is, so it is not copied.
    fn concerns(&self, run: &Run, event: &EventRecord) -> bool {
        if matches!(run.state, RunState::Ended { .. }) {
            return false;
        }
        let Some(journey) = self.plan.journeys.get(&run.journey) else {
            return false;
        };
        journey.goal.as_ref().is_some_and(|g| g.event == event.name)
            || journey.exits.iter().any(|x| x.event == event.name)
            || matches!(&run.state, RunState::WaitingForEvent { event: waited, .. } if *waited == event.name)
    }

    /// A run's timer is due: a wait ended, a deferred send may go, a `wait for` timed out.
    pub fn on_run_due(
        &self,
        contact: &Contact,
        history: &[EventRecord],
        run: &Run,
        now: Millis,
    ) -> Effects {
        let mut d = Decision::new(self, contact, history, now);
        d.run_due(run.clone());
        d.effects
    }

    /// A double opt-in confirmation for `consent`: `template` rendered for `contact`
    /// outside any run, with `confirm_url` activating the consent until `expires` (Unix
    /// seconds), as a message of its own (`opt_in/CONSENT/CONTACT`, step `confirm`,
    /// one visit a day, so a repeated request within a day queues nothing new).
    /// `None` when the template is missing, the contact has no usable email address or
    /// the template does not render.
    pub fn opt_in_request(
        &self,
        contact: &Contact,
        consent: &str,
        template: &str,
        expires: Option<i64>,
        now: Millis,
    ) -> Option<OutboxMessage> {
        let tpl = self.plan.templates.get(template)?;
        let d = Decision::new(self, contact, &[], now);
        let address = d
            .address(tpl.channel)
            .filter(|a| valid_address(tpl.channel, a))?;
        let links = &self.links;
        let mut context = d.template_context();
        context.insert(
            "confirm_url".into(),
            json!(crate::links::confirm_url(
                &links.base_url,
                &links.secret,
                &contact.id,
                consent,
                expires
            )),
        );
        context.insert(
            "preferences_url".into(),
            json!(crate::links::preferences_url(
                &links.base_url,
                &links.secret,
                &contact.id
            )),
        );
        context.insert("now".into(), json!(time::timestamp(now).to_string()));
        let parts = render_parts(tpl, context).ok()?;
        let day = u32::try_from(now.div_euclid(86_400_000)).unwrap_or(u32::MAX);
        Some(OutboxMessage {
            run_id: format!("opt_in/{consent}/{}", contact.id),
            step: "confirm".into(),
            visit: day,
            channel: tpl.channel.as_str().to_string(),
            template: Some(template.to_string()),
            address,
            payload: Json::Object(parts),
            not_before: now,
        })
    }

    /// A contact-level wakeup is due.
    pub fn on_wakeup(
        &self,
        contact: &Contact,
        history: &[EventRecord],
        wakeup: &Wakeup,
        now: Millis,
    ) -> Effects {
        let mut d = Decision::new(self, contact, history, now);
        if self.active {
            d.wakeup(wakeup);
        }
        d.effects
    }
}

/// One decision in progress: a working copy of the contact that steps change as they
/// run, and the effects so far.
struct Decision<'e, 'p> {
    engine: &'e Engine<'p>,
    plan: &'p Plan,
    /// Borrowed until a step changes it: most decisions only read the contact.
    contact: std::borrow::Cow<'e, Contact>,
    history: &'e [EventRecord],
    now: Millis,
    effects: Effects,
    /// A deferred send coming back: its step goes out now, without looking for the
    /// best time again (a best hour inside quiet hours would defer it forever).
    resumed: Option<String>,
}

enum SendResult {
    Done,
    Deferred(Millis),
}

impl<'e, 'p> Decision<'e, 'p> {
    fn new(
        engine: &'e Engine<'p>,
        contact: &'e Contact,
        history: &'e [EventRecord],
        now: Millis,
    ) -> Self {
        Self {
            engine,
            plan: engine.plan,
            contact: std::borrow::Cow::Borrowed(contact),
            history,
            now,
            effects: Effects::default(),
            resumed: None,
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope::new(self.plan, &self.contact, self.history, self.now)
    }

    fn outcome(&mut self, run: Option<&Run>, step: Option<&str>, kind: &str, detail: Json) {
        self.effects.outcomes.push(Outcome {
            at: self.now,
            contact_id: self.contact.id.clone(),
            journey: run.map(|r| r.journey.clone()),
            run_id: run.map(|r| r.id.clone()),
            step: step.map(str::to_string),
            kind: kind.to_string(),
            detail,
        });
    }

    // -------------------------------------------------------------- entering

    fn triggers(&mut self, event: &EventRecord) {
        for (name, journey) in &self.plan.journeys {
            match &journey.trigger {
                Trigger::Event {
                    event: wanted,
                    binding,
                    filter,
                    unless,
                } if *wanted == event.name => {
                    let passes = filter.as_ref().is_none_or(|f| {
                        let mut scope = self.scope();
                        scope.event = Some((wanted, &event.payload));
                        if let Some(b) = binding {
                            scope.bindings.push(Binding {
                                name: b,
                                event: wanted,
                                payload: &event.payload,
                            });
                        }
                        scope.truthy(f)
                    });
                    if !passes {
                        continue;
                    }
                    match unless {
                        Some(u) => self.effects.wakeups.push(Wakeup {
                            contact_id: self.contact.id.clone(),
                            at: time::add(event.occurred_at, u.within),
                            reason: WakeupReason::Abandonment {
                                journey: name.clone(),
                                event_id: event.id,
                            },
                        }),
                        None => {
                            let bindings = binding_map(binding.as_deref(), wanted, &event.payload);
                            self.enter(name, journey, bindings);
                        }
                    }
                }
                Trigger::Page { pattern } if event.name == "page_viewed" => {
                    let path = event
                        .payload
                        .get("path")
                        .and_then(Json::as_str)
                        .unwrap_or_default();
                    let url = event
                        .payload
                        .get("url")
                        .and_then(Json::as_str)
                        .unwrap_or_default();
                    if glob(pattern, path) || glob(pattern, url) {
                        self.enter(name, journey, BTreeMap::new());
                    }
                }
                Trigger::ContactCreated if event.name == "contact_created" => {
                    self.enter(name, journey, BTreeMap::new())
                }
                Trigger::ConsentGranted { consent }
                    if event.name == "consent_granted"
                        && event.payload.get("consent").and_then(Json::as_str) == Some(consent) =>
                {
                    self.enter(name, journey, BTreeMap::new());
                }
                Trigger::Tag { tag, change } => {
                    let wanted = match change {
                        TagChange::Added => "tag_added",
                        TagChange::Removed => "tag_removed",
                    };
                    if event.name == wanted
                        && event.payload.get("tag").and_then(Json::as_str) == Some(tag)
                    {
                        self.enter(name, journey, BTreeMap::new());
                    }
                }
                Trigger::Inactive {
                    event: wanted,
                    for_,
                } if *wanted == event.name => {
                    self.effects.wakeups.push(Wakeup {
                        contact_id: self.contact.id.clone(),
                        at: time::add(event.occurred_at, *for_),
                        reason: WakeupReason::Inactivity {
                            journey: name.clone(),
                            since: event.occurred_at,
                        },
                    });
                }
                Trigger::Anniversary { field, at } => self.schedule_anniversary(name, field, at),
                _ => {}
            }
        }
    }

    /// `+5 on email_opened`: the points of every rule the event matches.
    fn scores(&mut self, event: &EventRecord) {
        for (name, score) in &self.plan.scores {
            let mut delta = rust_decimal::Decimal::ZERO;
            for rule in score.rules.iter().filter(|r| r.event == event.name) {
                let passes = rule.filter.as_ref().is_none_or(|f| {
                    let mut scope = self.scope();
                    scope.event = Some((&rule.event, &event.payload));
                    scope.truthy(f)
                });
                if passes {
                    delta += crate::value::decimal(&rule.points);
                }
            }
            if !delta.is_zero() {
                self.change_score(None, None, name, delta);
            }
        }
    }

    /// Adds `delta` to a score, records it, and schedules its decay.
    fn change_score(
        &mut self,
        run: Option<&Run>,
        step: Option<&str>,
        name: &str,
        delta: rust_decimal::Decimal,
    ) {
        let current = self
            .contact
            .scores
            .get(name)
            .map_or(rust_decimal::Decimal::ZERO, |s| crate::value::decimal(s));
        let value = (current + delta).normalize();
        self.set_score(run, step, name, value, json!(delta.normalize().to_string()));
    }

    fn set_score(
        &mut self,
        run: Option<&Run>,
        step: Option<&str>,
        name: &str,
        value: rust_decimal::Decimal,
        delta: Json,
    ) {
        let text = value.normalize().to_string();
        self.contact
            .to_mut()
            .scores
            .insert(name.to_string(), text.clone());
        self.effects.contact_changes.push((
            self.contact.id.clone(),
            ContactChange::Score {
                score: name.to_string(),
                value: text.clone(),
            },
        ));
        self.outcome(
            run,
            step,
            "score",
            json!({ "score": name, "value": text, "delta": delta }),
        );
        if let Some(decay) = self.plan.scores.get(name).and_then(|s| s.decay.as_ref())
            && !value.is_zero()
        {
            self.effects.wakeups.push(Wakeup {
                contact_id: self.contact.id.clone(),
                at: time::add(self.now, decay.every),
                reason: WakeupReason::ScoreDecay {
                    score: name.to_string(),
                },
            });
        }
    }

    /// Segment membership now against what is stored: entering or leaving records an
    /// outcome and starts the journeys that wait for it.
    fn segments(&mut self) {
        let names: Vec<String> = self.plan.segments.keys().cloned().collect();
        for name in names {
            let member = self.scope().truthy(&Expr::Name { name: name.clone() });
            let was = self.contact.segments.contains_key(&name);
            if member == was {
                continue;
            }
            if member {
                self.contact
                    .to_mut()
                    .segments
                    .insert(name.clone(), self.now);
            } else {
                self.contact.to_mut().segments.remove(&name);
            }
            self.effects.contact_changes.push((
                self.contact.id.clone(),
                ContactChange::Segment {
                    segment: name.clone(),
                    member,
                },
            ));
            self.outcome(
                None,
                None,
                "segment",
                json!({ "segment": name, "change": if member { "entered" } else { "left" } }),
            );
            let change = if member {
                SegmentChange::Enters
            } else {
                SegmentChange::Leaves
            };
            let starting: Vec<(String, &Journey)> = self
                .plan
                .journeys
                .iter()
                .filter(|(_, j)| matches!(&j.trigger, Trigger::Segment { segment, change: c } if *segment == name && *c == change))
                .map(|(n, j)| (n.clone(), j))
                .collect();
            for (journey_name, journey) in starting {
                self.enter(&journey_name, journey, BTreeMap::new());
            }
        }
    }

    fn schedule_anniversary(&mut self, journey: &str, field: &[String], at: &str) {
        let Some(name) = field.get(1) else { return };
        let date = match self.scope().contact_field(name) {
            crate::value::Value::Date(d) => d,
            crate::value::Value::DateTime(t) => t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date(),
            _ => return,
        };
        let Some(local) = time::local_time(at) else {
            return;
        };
        let tz = zone(self.contact.time_zone.as_deref());
        let today = time::timestamp(self.now)
            .to_zoned_datetime(tz.clone())
            .date();
        // This year's anniversary if its local time is still ahead, else next year's
        // (no back-fill: a passed one waits for next year).
        for year in [today.year(), today.year() + 1] {
            let day = jiff::civil::Date::new(year, date.month(), date.day())
                .or_else(|_| jiff::civil::Date::new(year, date.month(), 28));
            let Ok(day) = day else { continue };
            if let Ok(zoned) = day.to_datetime(local).to_zoned_datetime(tz.clone()) {
                let ms = zoned.timestamp().as_millisecond();
                if ms > self.now {
                    self.effects.wakeups.push(Wakeup {
                        contact_id: self.contact.id.clone(),
                        at: ms,
                        reason: WakeupReason::Anniversary {
                            journey: journey.to_string(),
                        },
                    });
                    return;
                }
            }
        }
    }

    fn wakeup(&mut self, wakeup: &Wakeup) {
        match &wakeup.reason {
            WakeupReason::Abandonment { journey, event_id } => {
                let Some(j) = self.plan.journeys.get(journey) else {
                    return;
                };
                let Trigger::Event {
                    event,
                    binding,
                    unless: Some(unless),
                    ..
                } = &j.trigger
                else {
                    return;
                };
                let Some(first) = self.history.iter().find(|e| e.id == *event_id) else {
                    return;
                };
                let until = time::add(first.occurred_at, unless.within);
                let followed = self.history.iter().find(|e| {
                    e.name == unless.event
                        && e.occurred_at >= first.occurred_at
                        && e.occurred_at < until
                        && unless.filter.as_ref().is_none_or(|f| {
                            let mut scope = self.scope();
                            scope.event = Some((&unless.event, &e.payload));
                            scope.bindings.push(Binding {
                                name: binding.as_deref().unwrap_or(""),
                                event,
                                payload: &first.payload,
                            });
                            scope.truthy(f)
                        })
                });
                match followed {
                    None => {
                        let bindings = binding_map(binding.as_deref(), event, &first.payload);
                        self.enter(journey, j, bindings);
                    }
                    Some(e) => {
                        let detail = json!({ "reason": "followed", "event": e.name, "at": e.occurred_at, "trigger_at": first.occurred_at });
                        self.not_entered(journey, detail);
                    }
                }
            }
            WakeupReason::Inactivity { journey, since } => {
                let Some(j) = self.plan.journeys.get(journey) else {
                    return;
                };
                let Trigger::Inactive { event, .. } = &j.trigger else {
                    return;
                };
                if !self
                    .history
                    .iter()
                    .any(|e| e.name == *event && e.occurred_at > *since)
                {
                    self.enter(journey, j, BTreeMap::new());
                }
            }
            WakeupReason::Anniversary { journey } => {
                let Some(j) = self.plan.journeys.get(journey) else {
                    return;
                };
                let Trigger::Anniversary { field, at } = &j.trigger else {
                    return;
                };
                self.enter(journey, j, BTreeMap::new());
                // The next one, a year on.
                let now = self.now;
                self.now += 1;
                self.schedule_anniversary(journey, field, at);
                self.now = now;
            }
            WakeupReason::TimeBoundary => self.segments(),
            WakeupReason::ScoreDecay { score } => {
                let Some(decay) = self.plan.scores.get(score).and_then(|s| s.decay.as_ref()) else {
                    return;
                };
                let current = self
                    .contact
                    .scores
                    .get(score)
                    .map_or(rust_decimal::Decimal::ZERO, |s| crate::value::decimal(s));
                let keep =
                    rust_decimal::Decimal::ONE_HUNDRED - crate::value::decimal(&decay.percent);
                // Scores keep two decimals; below 0.01 a score has decayed to zero.
                let value = (current * keep / rust_decimal::Decimal::ONE_HUNDRED).round_dp(2);
                let value = if value.abs() < rust_decimal::Decimal::new(1, 2) {
                    rust_decimal::Decimal::ZERO
                } else {
                    value
                };
                self.set_score(None, None, score, value, json!("decay"));
                self.segments();
            }
        }
    }

    /// A trigger of `journey` matched but the contact did not enter: a `not_entered`
    /// outcome, so a trace can say why (rare next to events; never per ignored event).
    fn not_entered(&mut self, journey: &str, detail: Json) {
        self.effects.outcomes.push(Outcome {
            at: self.now,
            contact_id: self.contact.id.clone(),
            journey: Some(journey.to_string()),
            run_id: None,
            step: None,
            kind: NOT_ENTERED.to_string(),
            detail,
        });
    }

    /// Starts a run unless the audience or the re-entry policy refuses, which records
    /// a `not_entered` outcome (SEMANTICS "Audience", "Re-entry").
    fn enter(&mut self, name: &str, journey: &Journey, bindings: BTreeMap<String, Json>) {
        if self.contact.erased {
            return;
        }
        if let Some(audience) = &journey.audience {
            let mut scope = self.scope();
            let event_names = binding_events(journey);
            for (b, payload) in &bindings {
                let event = event_names.get(b).map_or("", String::as_str);
                scope.bindings.push(Binding {
                    name: b,
                    event,
                    payload,
                });
            }
            if !scope.truthy(audience) {
                self.not_entered(name, json!({ "reason": "audience" }));
                return;
            }
        }
        let previous = self.contact.entries.get(name).copied().unwrap_or_default();
        let refused = match &journey.reentry {
            _ if previous.count == 0 => None,
            Reentry::Once => Some(json!({ "policy": "once" })),
            Reentry::Always => None,
            Reentry::After { cooldown } => {
                let until = time::add(previous.last, *cooldown);
                (self.now < until).then(|| json!({ "policy": "after", "until": until }))
            }
        };
        if let Some(mut detail) = refused {
            detail["reason"] = json!("reentry");
            detail["last_entry"] = json!(previous.last);
            self.not_entered(name, detail);
            return;
        }
        if self.engine.is_paused(name) {
            self.not_entered(name, json!({ "reason": "paused" }));
            return;
        }
        let count = previous.count + 1;
        self.contact.to_mut().entries.insert(
            name.to_string(),
            Entries {
                count,
                last: self.now,
            },
        );
        let mut run = Run {
            id: format!("{name}/{}/{count}", self.contact.id),
            contact_id: self.contact.id.clone(),
            journey: name.to_string(),
            plan_version: self.engine.version,
            step: None,
            state: RunState::Ready,
            bindings,
            entered_at: self.now,
            visits: BTreeMap::new(),
        };
        self.outcome(
            Some(&run),
            None,
            "enter",
            json!({ "plan_version": self.engine.version }),
        );
        match &journey.entry {
            Some(entry) => {
                goto(&mut run, entry);
                self.advance(run);
            }
            None => self.end(run, EndReason::Completed),
        }
    }

    // -------------------------------------------------------------- runs in flight

    fn run_event(&mut self, mut run: Run, event: &EventRecord) {
        if matches!(run.state, RunState::Ended { .. }) {
            return;
        }
        let Some(journey) = self.plan.journeys.get(&run.journey) else {
            return;
        };
        if let Some(goal) = &journey.goal
            && goal.event == event.name
            && goal
                .within
                .is_none_or(|w| event.occurred_at < time::add(run.entered_at, w))
            && goal.filter.as_ref().is_none_or(|f| {
                self.event_scope_truthy(&run, journey, &goal.event, &event.payload, f)
            })
        {
            self.outcome(
                Some(&run),
                run.step.as_deref(),
                "goal",
                json!({ "event": event.name }),
            );
            self.finish(run, EndReason::Goal);
            return;
        }
        for exit in &journey.exits {
            if exit.event == event.name
                && exit.filter.as_ref().is_none_or(|f| {
                    self.event_scope_truthy(&run, journey, &exit.event, &event.payload, f)
                })
            {
                self.finish(run, EndReason::ExitCondition);
                return;
            }
        }
        // A held run of a paused journey ends on its goal or an exit, and moves on
        // nothing else until the journey resumes.
        if self.engine.is_paused(&run.journey) {
            return;
        }
        let RunState::WaitingForEvent { event: waited, .. } = &run.state else {
            return;
        };
        if *waited != event.name {
            return;
        }
        let Some(step) = run
            .step
            .as_ref()
            .and_then(|s| journey.steps.get(&StepId::new(s.clone())))
        else {
            return;
        };
        let StepKind::WaitFor {
            binding,
            filter,
            on_event,
            event: wanted,
            ..
        } = &step.kind
        else {
            return;
        };
        if filter
            .as_ref()
            .is_some_and(|f| !self.event_scope_truthy(&run, journey, wanted, &event.payload, f))
        {
            return;
        }
        if let Some(b) = binding {
            run.bindings.insert(b.clone(), Json::clone(&event.payload));
        }
        self.continue_at(run, on_event.clone());
    }

    fn event_scope_truthy(
        &self,
        run: &Run,
        journey: &Journey,
        event: &str,
        payload: &Json,
        f: &Expr,
    ) -> bool {
        let names = binding_events(journey);
        let mut scope = self.scope();
        scope.run_id = Some(&run.id);
        for (b, p) in &run.bindings {
            scope.bindings.push(Binding {
                name: b,
                event: names.get(b).map_or("", String::as_str),
                payload: p,
            });
        }
        scope.event = Some((event, payload));
        scope.truthy(f)
    }

    fn run_due(&mut self, mut run: Run) {
        let Some(journey) = self.plan.journeys.get(&run.journey) else {
            return;
        };
        let Some(step_id) = run.step.clone() else {
            // Steps done, the goal window has closed without a conversion.
            if let RunState::WaitingForEvent { until, .. } = run.state
                && until <= self.now
            {
                self.finish(run, EndReason::Completed);
            }
            return;
        };
        let Some(step) = journey.steps.get(&StepId::new(step_id.clone())) else {
            return;
        };
        match (&run.state, &step.kind) {
            (RunState::Waiting { until }, _) if *until > self.now => {}
            (RunState::WaitingForEvent { until, .. }, StepKind::WaitFor { on_timeout, .. })
                if *until <= self.now =>
            {
                self.continue_at(run, on_timeout.clone());
            }
            (RunState::Waiting { .. }, StepKind::Send { .. } | StepKind::SendPreferred { .. }) => {
                // A deferred send: the same visit goes out now.
                run.state = RunState::Ready;
                self.resumed = Some(step_id.clone());
                self.advance(run);
                self.resumed = None;
            }
            (RunState::Waiting { .. }, _) => self.continue_at(run, step.next.clone()),
            (RunState::Ready, _) => self.advance(run),
            _ => {}
        }
    }

    fn continue_at(&mut self, mut run: Run, next: Option<StepId>) {
        match next {
            Some(next) => {
                goto(&mut run, &next);
                self.advance(run);
            }
            None => self.end(run, EndReason::Completed),
        }
    }

    /// Ends a run. A run that completes its steps inside its goal window stays open,
    /// waiting only for the goal, until the window closes: a conversion counts for the
    /// whole window, not only while steps remain.
    fn end(&mut self, mut run: Run, reason: EndReason) {
        if reason == EndReason::Completed
            && let Some(goal) = self
                .plan
                .journeys
                .get(&run.journey)
                .and_then(|j| j.goal.as_ref())
            && let Some(within) = goal.within
        {
            let until = time::add(run.entered_at, within);
            if until > self.now
                && !matches!(run.state, RunState::WaitingForEvent { .. } if run.step.is_none())
            {
                run.step = None;
                run.state = RunState::WaitingForEvent {
                    event: goal.event.clone(),
                    until,
                };
                self.effects.runs.push(run);
                return;
            }
        }
        self.finish(run, reason);
    }

    fn finish(&mut self, mut run: Run, reason: EndReason) {
        self.outcome(
            Some(&run),
            run.step.as_deref(),
            "exit",
            json!({ "reason": reason.as_str() }),
        );
        run.state = RunState::Ended {
            reason,
            at: self.now,
        };
        self.effects.runs.push(run);
    }

    /// Executes instantaneous steps until the run waits or ends.
    fn advance(&mut self, mut run: Run) {
        let plan = self.plan;
        let Some(journey) = plan.journeys.get(&run.journey) else {
            return;
        };
        for _ in 0..MAX_STEPS_PER_DECISION {
            let Some(step_id) = run.step.clone() else {
                self.end(run, EndReason::Completed);
                return;
            };
            let Some(step) = journey.steps.get(&StepId::new(step_id.clone())) else {
                self.end(run, EndReason::Completed);
                return;
            };
            match self.execute(&mut run, journey, step) {
                Flow::Next(next) => match next {
                    Some(next) => goto(&mut run, &next),
                    None => {
                        self.end(run, EndReason::Completed);
                        return;
                    }
                },
                Flow::Wait => {
                    self.effects.runs.push(run);
                    return;
                }
                Flow::End(reason) => {
                    self.end(run, reason);
                    return;
                }
            }
        }
        self.end(run, EndReason::Completed);
    }

    fn execute(&mut self, run: &mut Run, journey: &Journey, step: &Step) -> Flow {
        let id = step.id.0.as_str();
        match &step.kind {
            StepKind::Send {
                channel,
                template,
                best_time,
            } => {
                if *best_time && let Some(until) = self.best_time_wait(run, id) {
                    run.state = RunState::Waiting { until };
                    return Flow::Wait;
                }
                match self.send(run, journey, id, *channel, template) {
                    SendResult::Done => Flow::Next(step.next.clone()),
                    SendResult::Deferred(until) => {
                        run.state = RunState::Waiting { until };
                        Flow::Wait
                    }
                }
            }
            StepKind::SendPreferred {
                templates,
                best_time,
            } => {
                if *best_time && let Some(until) = self.best_time_wait(run, id) {
                    run.state = RunState::Waiting { until };
                    return Flow::Wait;
                }
                let templates = self.by_preference(templates);
                let chosen = templates.iter().find_map(|t| {
                    let tpl = self.plan.templates.get(t)?;
                    let reachable = self.address(tpl.channel).is_some();
                    let consented = tpl.transactional || self.consented(tpl.channel);
                    (reachable && consented).then(|| (tpl.channel, t.clone()))
                });
                let (channel, template) = match chosen {
                    Some(c) => c,
                    None => match templates.first().and_then(|t| self.plan.templates.get(t)) {
                        Some(tpl) => (tpl.channel, tpl.name.clone()),
                        None => return Flow::Next(step.next.clone()),
                    },
                };
                match self.send(run, journey, id, channel, &template) {
                    SendResult::Done => Flow::Next(step.next.clone()),
                    SendResult::Deferred(until) => {
                        run.state = RunState::Waiting { until };
                        Flow::Wait
                    }
                }
            }
            StepKind::Webhook { url, body } => {
                let body_json = {
                    let scope = self.run_scope(run, journey);
                    match body {
                        Some(entries) => Json::Object(
                            entries
                                .iter()
                                .map(|e| (e.key.clone(), scope.eval(&e.value).to_json()))
                                .collect(),
                        ),
                        None => {
                            json!({ "contact": self.contact.id, "journey": run.journey, "step": id })
                        }
                    }
                };
                let visit = run.visits.get(id).copied().unwrap_or(1);
                self.effects.messages.push(OutboxMessage {
                    run_id: run.id.clone(),
                    step: id.to_string(),
                    visit,
                    channel: "webhook".into(),
                    template: None,
                    address: url.clone(),
                    payload: body_json.clone(),
                    not_before: self.now,
                });
                self.outcome(
                    Some(run),
                    Some(id),
                    "webhook",
                    json!({ "url": url, "body": body_json }),
                );
                Flow::Next(step.next.clone())
            }
            StepKind::Wait { seconds } => self.wait_until(
                run,
                time::add(self.now, cairn_plan::Duration::Seconds(*seconds)),
            ),
            StepKind::WaitMonths { months } => self.wait_until(
                run,
                time::add(self.now, cairn_plan::Duration::Months(*months)),
            ),
            StepKind::WaitUntil { from, to } => {
                let tz = zone(self.contact.time_zone.as_deref());
                let (Some(from), to) = (
                    time::local_time(from),
                    to.as_deref().and_then(time::local_time),
                ) else {
                    return Flow::Next(step.next.clone());
                };
                if let Some(to) = to
                    && time::in_window(self.now, &tz, from, to)
                {
                    return Flow::Next(step.next.clone());
                }
                let at = time::next_local(self.now, &tz, from);
                if at <= self.now {
                    return Flow::Next(step.next.clone());
                }
                self.wait_until(run, at)
            }
            StepKind::WaitFor { event, within, .. } => {
                let until = within.map_or(i64::MAX, |w| time::add(self.now, w));
                run.state = RunState::WaitingForEvent {
                    event: event.clone(),
                    until,
                };
                Flow::Wait
            }
            StepKind::Branch {
                condition,
                then,
                else_,
            } => {
                let yes = self.run_scope(run, journey).truthy(condition);
                Flow::Next(if yes { then.clone() } else { else_.clone() })
            }
            StepKind::Split { arms } => {
                let point = split_point(&self.contact.id, &run.journey, id);
                let mut acc = rust_decimal::Decimal::ZERO;
                let mut chosen = arms.last();
                for arm in arms {
                    acc += crate::value::decimal(&arm.percent);
                    if point < acc {
                        chosen = Some(arm);
                        break;
                    }
                }
                let Some(arm) = chosen else {
                    return Flow::Next(None);
                };
                self.outcome(Some(run), Some(id), "split", json!({ "arm": arm.name }));
                Flow::Next(arm.next.clone())
            }
            StepKind::Tag { add, tag } => {
                let has = self.contact.tags.contains_key(tag);
                if *add != has {
                    let change = if *add {
                        self.contact.to_mut().tags.insert(tag.clone(), self.now);
                        ContactChange::TagAdded { tag: tag.clone() }
                    } else {
                        self.contact.to_mut().tags.remove(tag);
                        ContactChange::TagRemoved { tag: tag.clone() }
                    };
                    self.effects
                        .contact_changes
                        .push((self.contact.id.clone(), change));
                }
                self.outcome(
                    Some(run),
                    Some(id),
                    "tag",
                    json!({ "tag": tag, "change": if *add { "added" } else { "removed" } }),
                );
                Flow::Next(step.next.clone())
            }
            StepKind::Score { score, delta } => {
                let run_copy = run.clone();
                self.change_score(
                    Some(&run_copy),
                    Some(id),
                    score,
                    crate::value::decimal(delta),
                );
                Flow::Next(step.next.clone())
            }
            StepKind::Set { path, value } => {
                let new = self.run_scope(run, journey).eval(value).to_json();
                if let Some(field) = path.get(1) {
                    self.contact
                        .to_mut()
                        .traits
                        .insert(field.clone(), new.clone());
                    self.effects.contact_changes.push((
                        self.contact.id.clone(),
                        ContactChange::Attribute {
                            field: field.clone(),
                            value: new.clone(),
                        },
                    ));
                    self.outcome(
                        Some(run),
                        Some(id),
                        "attribute",
                        json!({ "field": field, "value": new }),
                    );
                }
                Flow::Next(step.next.clone())
            }
            StepKind::Retry { target, max } => {
                let retried = run
                    .visits
                    .get(&target.0)
                    .copied()
                    .unwrap_or(1)
                    .saturating_sub(1);
                if retried < *max {
                    Flow::Next(Some(target.clone()))
                } else {
                    Flow::Next(step.next.clone())
                }
            }
            StepKind::Goal => {
                self.outcome(Some(run), Some(id), "goal", json!({}));
                Flow::End(EndReason::Goal)
            }
            StepKind::Exit => Flow::End(EndReason::ExitCondition),
        }
    }

    fn wait_until(&mut self, run: &mut Run, until: Millis) -> Flow {
        run.state = RunState::Waiting { until };
        Flow::Wait
    }

    fn run_scope<'s>(&'s self, run: &'s Run, journey: &Journey) -> Scope<'s> {
        let names = binding_events(journey);
        let mut scope = self.scope();
        scope.run_id = Some(&run.id);
        for (b, p) in &run.bindings {
            let event = names
                .get(b)
                .and_then(|e| self.plan.schema.events.get_key_value(e))
                .map_or("", |(k, _)| k.as_str());
            scope.bindings.push(Binding {
                name: b,
                event,
                payload: p,
            });
        }
        scope
    }

    // -------------------------------------------------------------- sending

    /// The contact's best hour: the local hour (in their zone now) at which most of
    /// their opens and clicks happened; ties go to the earliest hour. `None` without
    /// any engagement yet.
    fn best_hour(&self) -> Option<i8> {
        let tz = zone(self.contact.time_zone.as_deref());
        let mut counts = [0u32; 24];
        for e in self
            .history
            .iter()
            .filter(|e| engagement_channel(&e.name).is_some())
        {
            let hour = time::timestamp(e.occurred_at)
                .to_zoned_datetime(tz.clone())
                .hour();
            if let Some(c) = usize::try_from(hour).ok().and_then(|h| counts.get_mut(h)) {
                *c += 1;
            }
        }
        let best = counts.iter().copied().max().filter(|n| *n > 0)?;
        counts
            .iter()
            .position(|n| *n == best)
            .and_then(|h| i8::try_from(h).ok())
    }

    /// `at best time`: when the contact's best hour is not the current local hour,
    /// the time it next starts (recorded as a `defer` with reason `best_time`).
    /// `None` sends now: within the best hour, without engagement to learn from, or
    /// when the send comes back from a defer (quiet hours or a cap may then move it
    /// again, but the best time is looked for once).
    fn best_time_wait(&mut self, run: &Run, step: &str) -> Option<Millis> {
        if self.resumed.as_deref() == Some(step) {
            self.resumed = None;
            return None;
        }
        let hour = self.best_hour()?;
        let tz = zone(self.contact.time_zone.as_deref());
        if time::timestamp(self.now)
            .to_zoned_datetime(tz.clone())
            .hour()
            == hour
        {
            return None;
        }
        let until = time::next_local(self.now, &tz, jiff::civil::Time::new(hour, 0, 0, 0).ok()?);
        if until <= self.now {
            return None;
        }
        self.outcome(
            Some(run),
            Some(step),
            "defer",
            json!({ "reason": "best_time", "until": until, "hour": hour }),
        );
        Some(until)
    }

    /// `send via preferred channel [...]`: the templates ordered by how often the
    /// contact engaged on their channel (opens and clicks), most first; ties keep the
    /// written order.
    fn by_preference(&self, templates: &[String]) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for e in self.history {
            if let Some(channel) = engagement_channel(&e.name) {
                *counts.entry(channel).or_default() += 1;
            }
        }
        let mut ordered: Vec<(usize, String)> = templates
            .iter()
            .map(|t| {
                let used = self
                    .plan
                    .templates
                    .get(t)
                    .and_then(|tpl| counts.get(tpl.channel.as_str()))
                    .copied()
                    .unwrap_or(0);
                (used, t.clone())
            })
            .collect();
        ordered.sort_by_key(|a| std::cmp::Reverse(a.0));
        ordered.into_iter().map(|(_, t)| t).collect()
    }

    fn consented(&self, channel: Channel) -> bool {
        let consents: Vec<&String> = self
            .plan
            .schema
            .consents
            .iter()
            .filter(|(_, c)| c.channel == channel)
            .map(|(n, _)| n)
            .collect();
        consents.is_empty()
            || consents
                .iter()
                .any(|c| self.contact.consents.get(*c).copied().unwrap_or(false))
    }

    /// The contact's address on `channel`: the first set field of the channel's type.
    fn address(&self, channel: Channel) -> Option<String> {
        contact_address(self.plan, &self.contact, channel)
    }

    fn send(
        &mut self,
        run: &Run,
        journey: &Journey,
        step: &str,
        channel: Channel,
        template: &str,
    ) -> SendResult {
        let Some(tpl) = self.plan.templates.get(template) else {
            return SendResult::Done;
        };
        let marketing = !tpl.transactional;
        let skip = |d: &mut Self, reason: &str, detail: Json| {
            d.outcome(Some(run), Some(step), "skip", json!({ "reason": reason, "channel": channel.as_str(), "template": template, "detail": detail }));
            SendResult::Done
        };
        if self.contact.erased {
            return skip(self, "erased", Json::Null);
        }
        if marketing && !self.consented(channel) {
            return skip(self, "no_consent", Json::Null);
        }
        let Some(address) = self.address(channel) else {
            return skip(self, "no_address", Json::Null);
        };
        if !valid_address(channel, &address) {
            return skip(self, "invalid_address", json!(address));
        }
        if marketing {
            let quiet = journey
                .quiet_hours
                .as_ref()
                .or(self.plan.policies.quiet_hours.as_ref());
            if let Some(q) = quiet
                && let Some(until) = time::quiet_until(
                    self.now,
                    &zone(self.contact.time_zone.as_deref()),
                    &q.from,
                    &q.to,
                )
            {
                self.outcome(
                    Some(run),
                    Some(step),
                    "defer",
                    json!({ "reason": "quiet_hours", "until": until }),
                );
                return SendResult::Deferred(until);
            }
            let caps = journey
                .frequency_caps
                .as_ref()
                .unwrap_or(&self.plan.policies.frequency_caps);
            for cap in caps {
                let applies = |m: &SentMessage| match cap.scope {
                    CapScope::Marketing => m.marketing,
                    CapScope::Channel { channel: c } => m.channel == c.as_str(),
                };
                let from = crate::eval::before(self.now, cap.per);
                let mut in_window: Vec<Millis> = self
                    .contact
                    .sends
                    .iter()
                    .filter(|m| applies(m) && m.at > from && m.at <= self.now)
                    .map(|m| m.at)
                    .collect();
                if in_window.len() >= cap.limit as usize {
                    match cap.action {
                        CapAction::Skip => {
                            return skip(self, "frequency_cap", json!({ "limit": cap.limit }));
                        }
                        CapAction::Defer => {
                            in_window.sort_unstable();
                            // When the oldest counted send leaves the window.
                            let until =
                                time::add(in_window[in_window.len() - cap.limit as usize], cap.per)
                                    + 1;
                            self.outcome(
                                Some(run),
                                Some(step),
                                "defer",
                                json!({ "reason": "frequency_cap", "until": until }),
                            );
                            return SendResult::Deferred(until);
                        }
                    }
                }
            }
        }
        let rendered = match self.render(run, journey, step, tpl) {
            Ok(parts) => parts,
            Err(error) => return skip(self, "render_error", json!(error)),
        };
        let visit = run.visits.get(step).copied().unwrap_or(1);
        self.effects.messages.push(OutboxMessage {
            run_id: run.id.clone(),
            step: step.to_string(),
            visit,
            channel: channel.as_str().to_string(),
            template: Some(template.to_string()),
            address: address.clone(),
            payload: rendered.clone(),
            not_before: self.now,
        });
        self.contact.to_mut().sends.push(SentMessage {
            at: self.now,
            channel: channel.as_str().to_string(),
            marketing,
        });
        self.outcome(
            Some(run),
            Some(step),
            "send",
            json!({ "channel": channel.as_str(), "template": template, "address": address, "visit": visit }),
        );
        SendResult::Done
    }

    /// The variables every template sees: the contact.
    fn template_context(&self) -> serde_json::Map<String, Json> {
        contact_variables(&self.contact)
    }

    fn render(
        &self,
        run: &Run,
        journey: &Journey,
        step: &str,
        tpl: &cairn_plan::Template,
    ) -> Result<Json, String> {
        // The message's idempotency key names it in its links: the outbox row does not
        // exist yet, and the key is what the row is unique on.
        let visit = run.visits.get(step).copied().unwrap_or(1);
        let message = format!("{}/{step}/{visit}", run.id);
        let at = MessageContext {
            contact: &self.contact,
            bindings: &run.bindings,
            journey: &journey.name,
            step,
            message: &message,
            now: self.now,
        };
        let variables = message_variables(self.plan, &self.engine.links, tpl, &at);
        render_message(&self.engine.links, tpl, &at, variables)
            .map(Json::Object)
            .map_err(|e| e.to_string())
    }
}

/// Where one message of a template sits: whom it is for, the run's bindings, its step,
/// and its idempotency key, which its signed links name.
pub struct MessageContext<'a> {
    pub contact: &'a Contact,
    pub bindings: &'a BTreeMap<String, Json>,
    pub journey: &'a str,
    pub step: &'a str,
    pub message: &'a str,
    pub now: Millis,
}

/// The contact's address on `channel`: its first `email` (or `phone`) field that is
/// set; for push, its `push_token`.
pub(crate) fn contact_address(plan: &Plan, contact: &Contact, channel: Channel) -> Option<String> {
    let wanted = match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        Channel::Push => "push_token",
    };
    plan.schema.contact.iter().find_map(|f| {
        let matches = match &f.ty {
            Type::Scalar { name } if channel != Channel::Push => name == wanted,
            _ => channel == Channel::Push && f.name == wanted,
        };
        if !matches {
            return None;
        }
        contact
            .traits
            .get(&f.name)
            .and_then(Json::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    })
}

/// `contact`: the contact's id and traits, as every template sees them.
fn contact_variables(contact: &Contact) -> serde_json::Map<String, Json> {
    let mut context = serde_json::Map::new();
    let mut fields = serde_json::Map::new();
    fields.insert("id".into(), json!(contact.id));
    for (k, v) in &contact.traits {
        fields.insert(k.clone(), v.clone());
    }
    context.insert("contact".into(), Json::Object(fields));
    context
}

/// The variables a message of `tpl` is rendered with: the contact, the run's bindings,
/// the signed links its parts print, the journey, the step and the time.
pub fn message_variables(
    plan: &Plan,
    links: &Links,
    tpl: &cairn_plan::Template,
    at: &MessageContext<'_>,
) -> serde_json::Map<String, Json> {
    let mut context = contact_variables(at.contact);
    for (b, p) in at.bindings {
        context.insert(b.clone(), p.clone());
    }
    let contact = &at.contact.id;
    // Each link is signed (an HMAC over its JSON payload): only the links a part may
    // print are made.
    if reads(tpl, "unsubscribe_url") {
        context.insert(
            "unsubscribe_url".into(),
            json!(crate::links::unsubscribe_url(
                &links.base_url,
                &links.secret,
                contact,
                at.message
            )),
        );
    }
    if reads(tpl, "preferences_url") {
        context.insert(
            "preferences_url".into(),
            json!(crate::links::preferences_url(
                &links.base_url,
                &links.secret,
                contact
            )),
        );
    }
    // The first consent declared for the channel is the one `confirm_url` activates.
    let consent = plan
        .schema
        .consents
        .values()
        .find(|c| c.channel == tpl.channel);
    if reads(tpl, "confirm_url")
        && let Some(consent) = consent
    {
        context.insert(
            "confirm_url".into(),
            json!(crate::links::confirm_url(
                &links.base_url,
                &links.secret,
                contact,
                &consent.name,
                None
            )),
        );
    }
    context.insert("journey".into(), json!(at.journey));
    context.insert("step".into(), json!(at.step));
    context.insert("now".into(), json!(time::timestamp(at.now).to_string()));
    context
}

/// A message of `tpl` as the daemon sends it: every part rendered with `variables`,
/// then, in a marketing email, each web link tracked and the open pixel added.
pub fn render_message(
    links: &Links,
    tpl: &cairn_plan::Template,
    at: &MessageContext<'_>,
    variables: serde_json::Map<String, Json>,
) -> Result<serde_json::Map<String, Json>, PartError> {
    let mut parts = render_parts(tpl, variables)?;
    if tpl.channel == Channel::Email && !tpl.transactional {
        track_links(&mut parts, links, &at.contact.id, at.message);
    }
    Ok(parts)
}

use cairn_plan::Expr;

enum Flow {
    Next(Option<StepId>),
    Wait,
    End(EndReason),
}

fn goto(run: &mut Run, step: &StepId) {
    run.step = Some(step.0.clone());
    *run.visits.entry(step.0.clone()).or_insert(0) += 1;
    run.state = RunState::Ready;
}

fn binding_map(binding: Option<&str>, _event: &str, payload: &Json) -> BTreeMap<String, Json> {
    binding
        .map(|b| BTreeMap::from([(b.to_string(), payload.clone())]))
        .unwrap_or_default()
}

/// Which event each binding of a journey holds.
pub(crate) fn binding_events(journey: &Journey) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Trigger::Event {
        event,
        binding: Some(b),
        ..
    } = &journey.trigger
    {
        out.insert(b.clone(), event.clone());
    }
    for step in journey.steps.values() {
        if let StepKind::WaitFor {
            event,
            binding: Some(b),
            ..
        } = &step.kind
        {
            out.insert(b.clone(), event.clone());
        }
    }
    out
}

/// A point in [0, 100) fixed by (contact, journey, split): the same contact lands in
/// the same arm after a restart, a redeploy or a replay.
fn split_point(contact: &str, journey: &str, step: &str) -> rust_decimal::Decimal {
    // FNV-1a: stable across platforms and releases, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in contact
        .bytes()
        .chain([0])
        .chain(journey.bytes())
        .chain([0])
        .chain(step.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    rust_decimal::Decimal::new((hash % 10_000) as i64, 2)
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

pub(crate) fn valid_address(channel: Channel, address: &str) -> bool {
    match channel {
        Channel::Email => {
            let mut parts = address.splitn(2, '@');
            let (local, domain) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
        }
        Channel::Sms => {
            address.starts_with('+')
                && address.len() >= 8
                && address.len() <= 16
                && address[1..].chars().all(|c| c.is_ascii_digit())
        }
        Channel::Push => !address.trim().is_empty(),
    }
}

/// The environment every template part is rendered in: its filters, and undefined
/// values printed as nothing.
pub(crate) fn template_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_filter("money", |v: String| v);
    env.add_filter("date", |v: String| {
        v.get(..10).map(str::to_string).unwrap_or(v)
    });
    env
}

/// The name a part's compiled template has: the one `render_str` gives, so errors
/// read the same (`... (in <string>:1)`) and autoescaping is decided the same way.
const PART_TEMPLATE: &str = "<string>";

/// Distinct part sources the cache holds before it starts over: far above any plan,
/// it bounds a daemon that sees many deploys.
const TEMPLATE_CACHE_LIMIT: usize = 4096;

/// Each template part's source compiled once per process, not on every send: an
/// environment holding just that part under [`PART_TEMPLATE`]. A source that does not
/// compile is not cached; rendering it reports the syntax error as before.
fn compiled_part(source: &str) -> Option<std::sync::Arc<minijinja::Environment<'static>>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Cache = Mutex<HashMap<String, Arc<minijinja::Environment<'static>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(env) = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(source)
    {
        return Some(env.clone());
    }
    let mut env = template_env();
    env.add_template_owned(PART_TEMPLATE, source.to_string())
        .ok()?;
    let env = Arc::new(env);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= TEMPLATE_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(source.to_string(), env.clone());
    Some(env)
}

/// Whether a part of `tpl` may read the variable `name`: its source names it, or prints
/// the whole context (`debug()`). A variable no part names cannot change the output.
fn reads(tpl: &cairn_plan::Template, name: &str) -> bool {
    tpl.parts
        .values()
        .any(|part| part.source.contains(name) || part.source.contains("debug"))
}

/// The channel an engagement event (an open or a click) shows the contact using.
fn engagement_channel(event: &str) -> Option<&'static str> {
    match event {
        "email_opened" | "email_clicked" => Some("email"),
        "sms_clicked" => Some("sms"),
        "push_opened" => Some("push"),
        _ => None,
    }
}

/// A part of a template that did not render, and why.
#[derive(Debug)]
pub struct PartError {
    /// `subject`, `html`, `text`, ...
    pub part: String,
    pub error: minijinja::Error,
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.part, self.error)
    }
}

/// Renders every part of `tpl` with `context`.
fn render_parts(
    tpl: &cairn_plan::Template,
    context: serde_json::Map<String, Json>,
) -> Result<serde_json::Map<String, Json>, PartError> {
    let ctx = minijinja::Value::from(minijinja::value::Serde(Json::Object(context)));
    let mut parts = serde_json::Map::new();
    for (name, part) in &tpl.parts {
        let rendered = match compiled_part(&part.source) {
            Some(compiled) => compiled
                .get_template(PART_TEMPLATE)
                .and_then(|t| t.render(&ctx)),
            None => template_env().render_str(&part.source, &ctx),
        };
        let text = rendered.map_err(|error| PartError {
            part: name.clone(),
            error,
        })?;
        parts.insert(name.clone(), json!(text));
    }
    Ok(parts)
}

/// Open and click tracking of a marketing email: every `http(s)` link of its html
/// goes through a signed click link, except links to the daemon itself (unsubscribe,
/// preferences), and a 1x1 open pixel closes the body.
fn track_links(
    parts: &mut serde_json::Map<String, Json>,
    links: &Links,
    contact_id: &str,
    message: &str,
) {
    let Some(Json::String(html)) = parts.get_mut("html") else {
        return;
    };
    let base = links.base_url.trim_end_matches('/');
    let mut tracked = crate::links::rewrite_hrefs(html, |target| {
        let scheme = |prefix: &str| {
            target
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        let web = scheme("http://") || scheme("https://");
        (web && !target.starts_with(base))
            .then(|| crate::links::click_url(base, &links.secret, contact_id, message, target))
    });
    let pixel = format!(
        "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
        crate::links::open_pixel_url(base, &links.secret, contact_id, message)
    );
    match rfind_ignore_ascii_case(&tracked, "</body>") {
        Some(at) => tracked.insert_str(at, &pixel),
        None => tracked.push_str(&pixel),
    }
    *html = tracked;
}

/// The byte offset of the last `needle` (ASCII) in `text`, any case, without copying.
fn rfind_ignore_ascii_case(text: &str, needle: &str) -> Option<usize> {
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    (0..=text.len().checked_sub(needle.len())?)
        .rev()
        .find(|&at| text[at..at + needle.len()].eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_body_end_tag_is_found_in_any_case() {
        assert_eq!(
            rfind_ignore_ascii_case("<p>x</p></BODY>", "</body>"),
            Some(8)
        );
        assert_eq!(
            rfind_ignore_ascii_case("</body><p></Body>", "</body>"),
            Some(10)
        );
        assert_eq!(rfind_ignore_ascii_case("<p>", "</body>"), None);
        assert_eq!(rfind_ignore_ascii_case("", "</body>"), None);
    }

    #[test]
    fn glob_matches_paths() {
        assert!(glob("/pricing*", "/pricing"));
        assert!(glob("/pricing*", "/pricing/teams"));
        assert!(!glob("/pricing*", "/about"));
        assert!(glob("*/cart", "https://shop.example/cart"));
        assert!(glob("/a*b*c", "/axxbyyc"));
    }

    #[test]
    fn split_points_are_stable_and_spread() {
        assert_eq!(
            split_point("ana", "j", "offer"),
            split_point("ana", "j", "offer")
        );
        let below_half = (0..1000)
            .filter(|i| {
                split_point(&format!("c{i}"), "j", "offer") < rust_decimal::Decimal::from(50)
            })
            .count();
        assert!((420..580).contains(&below_half), "{below_half}");
    }

    #[test]
    fn addresses_are_validated() {
        assert!(valid_address(Channel::Email, "ana@example.com"));
        assert!(!valid_address(Channel::Email, "ana.example.com"));
        assert!(valid_address(Channel::Sms, "+48500100200"));
        assert!(!valid_address(Channel::Sms, "500 100 200"));
    }
}
