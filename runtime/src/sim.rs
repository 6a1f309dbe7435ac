//! An in-memory world on a virtual clock: contacts, their history, runs, wakeups and
//! the outbox, driven by the same [`Engine`] as the daemon. `cairn test` and
//! `cairn simulate` run on it; the daemon's store applies [`Effects`] the same way in
//! SQL.

use crate::engine::{Engine, Links};
use crate::model::*;
use cairn_plan::Plan;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

pub struct World<'p> {
    plan: &'p Plan,
    pub contacts: BTreeMap<String, Contact>,
    pub history: BTreeMap<String, Vec<EventRecord>>,
    pub runs: BTreeMap<String, Run>,
    pub wakeups: Vec<Wakeup>,
    pub outbox: Vec<OutboxMessage>,
    pub outcomes: Vec<Outcome>,
    /// The virtual clock.
    pub now: Millis,
    next_event_id: i64,
    links: Links,
}

impl<'p> World<'p> {
    pub fn new(plan: &'p Plan, start: Millis) -> Self {
        Self {
            plan,
            contacts: BTreeMap::new(),
            history: BTreeMap::new(),
            runs: BTreeMap::new(),
            wakeups: Vec::new(),
            outbox: Vec::new(),
            outcomes: Vec::new(),
            now: start,
            next_event_id: 1,
            links: Links::default(),
        }
    }

    fn engine(&self) -> Engine<'p> {
        Engine::new(self.plan, 1, true, self.links.clone())
    }

    pub fn add_contact(&mut self, contact: Contact) {
        self.history.entry(contact.id.clone()).or_default();
        self.contacts.insert(contact.id.clone(), contact);
    }

    /// Runs every timer and wakeup due before `t` (in time order), then sets the clock
    /// to `t`. Inputs at `t` come next, and timers due exactly at `t` after them
    /// (SEMANTICS: same instant, inputs first).
    pub fn advance_before(&mut self, t: Millis) {
        while let Some(due) = self.next_due().filter(|d| *d < t) {
            self.fire_due(due);
        }
        self.now = self.now.max(t);
    }

    /// Runs everything due at or before `t`.
    pub fn advance_through(&mut self, t: Millis) {
        while let Some(due) = self.next_due().filter(|d| *d <= t) {
            self.fire_due(due);
        }
        self.now = self.now.max(t);
    }

    /// Lets timed waits and deferred sends run out (at most until `limit`), without
    /// firing contact-level wakeups or `wait for` timeouts: what a run does on its own
    /// once nothing else happens to the contact.
    pub fn settle(&mut self, limit: Millis) {
        loop {
            let due = self
                .runs
                .values()
                .filter_map(|r| match r.state {
                    RunState::Waiting { until } => Some(until),
                    RunState::Ready => Some(self.now),
                    _ => None,
                })
                .min();
            let Some(due) = due.filter(|d| *d <= limit) else {
                break;
            };
            self.now = self.now.max(due);
            self.fire_runs(|state| {
                matches!(state, RunState::Waiting { until } if *until <= due)
                    || *state == RunState::Ready
            });
        }
    }

    /// Hands every run whose state `due` selects to the engine.
    fn fire_runs(&mut self, due: impl Fn(&RunState) -> bool) {
        let engine = self.engine();
        let ids: Vec<String> = self
            .runs
            .values()
            .filter(|r| due(&r.state))
            .map(|r| r.id.clone())
            .collect();
        for id in ids {
            let Some(run) = self.runs.get(&id).cloned() else {
                continue;
            };
            let Some(contact) = self.contacts.get(&run.contact_id).cloned() else {
                continue;
            };
            let history = self
                .history
                .get(&run.contact_id)
                .cloned()
                .unwrap_or_default();
            let effects = engine.on_run_due(&contact, &history, &run, self.now);
            self.apply(effects);
        }
    }

    fn next_due(&self) -> Option<Millis> {
        let runs = self.runs.values().filter_map(|r| match r.state {
            RunState::Waiting { until } | RunState::WaitingForEvent { until, .. } => Some(until),
            RunState::Ready => Some(self.now),
            _ => None,
        });
        runs.chain(self.wakeups.iter().map(|w| w.at)).min()
    }

    fn fire_due(&mut self, due: Millis) {
        self.now = self.now.max(due);
        self.fire_runs(|state| match state {
            RunState::Waiting { until } | RunState::WaitingForEvent { until, .. } => *until <= due,
            RunState::Ready => true,
            _ => false,
        });
        let engine = self.engine();
        let (due_now, later): (Vec<Wakeup>, Vec<Wakeup>) = std::mem::take(&mut self.wakeups)
            .into_iter()
            .partition(|w| w.at <= due);
        self.wakeups = later;
        for wakeup in due_now {
            let Some(contact) = self.contacts.get(&wakeup.contact_id).cloned() else {
                continue;
            };
            let history = self
                .history
                .get(&wakeup.contact_id)
                .cloned()
                .unwrap_or_default();
            let effects = engine.on_wakeup(&contact, &history, &wakeup, self.now);
            self.apply(effects);
        }
    }

    /// An event arrives for `contact` now.
    pub fn ingest(&mut self, contact_id: &str, name: &str, payload: Json) {
        let event = EventRecord {
            id: self.next_event_id,
            name: name.to_string(),
            payload,
            occurred_at: self.now,
        };
        self.next_event_id += 1;
        let history = self.history.entry(contact_id.to_string()).or_default();
        history.push(event.clone());
        let history = history.clone();
        let Some(contact) = self.contacts.get(contact_id).cloned() else {
            return;
        };
        let runs: Vec<Run> = self
            .runs
            .values()
            .filter(|r| r.contact_id == contact_id && !matches!(r.state, RunState::Ended { .. }))
            .cloned()
            .collect();
        let effects = self
            .engine()
            .on_event(&contact, &history, &event, &runs, self.now);
        self.apply(effects);
    }

    /// Applies a decision: what the daemon's store does in one transaction.
    pub fn apply(&mut self, effects: Effects) {
        for run in effects.runs {
            let contact = self.contacts.get_mut(&run.contact_id);
            if let Some(contact) = contact {
                let entry = contact.entries.entry(run.journey.clone()).or_default();
                if !self.runs.contains_key(&run.id) {
                    entry.count += 1;
                    entry.last = run.entered_at;
                }
            }
            self.runs.insert(run.id.clone(), run);
        }
        for (contact_id, change) in effects.contact_changes {
            let Some(contact) = self.contacts.get_mut(&contact_id) else {
                continue;
            };
            match change {
                ContactChange::TagAdded { tag } => {
                    contact.tags.insert(tag, self.now);
                }
                ContactChange::TagRemoved { tag } => {
                    contact.tags.remove(&tag);
                }
                ContactChange::Score { score, value } => {
                    contact.scores.insert(score, value);
                }
                ContactChange::Attribute { field, value } => {
                    contact.traits.insert(field, value);
                }
                ContactChange::Segment { segment, member } => {
                    if member {
                        contact.segments.insert(segment, self.now);
                    } else {
                        contact.segments.remove(&segment);
                    }
                }
            }
        }
        for message in effects.messages {
            // The idempotency key (run, step, visit) admits each message once.
            if self.outbox.iter().any(|m| {
                m.run_id == message.run_id && m.step == message.step && m.visit == message.visit
            }) {
                continue;
            }
            if let Some(contact) = self
                .runs
                .get(&message.run_id)
                .and_then(|r| self.contacts.get_mut(&r.contact_id))
            {
                let marketing = message
                    .template
                    .as_ref()
                    .and_then(|t| self.plan.templates.get(t))
                    .is_some_and(|t| !t.transactional);
                contact.sends.push(SentMessage {
                    at: self.now,
                    channel: message.channel.clone(),
                    marketing,
                });
            }
            self.outbox.push(message);
        }
        for wakeup in effects.wakeups {
            // One pending wakeup per key, as in the store: a newer one replaces it.
            let key = wakeup.key();
            self.wakeups.retain(|w| w.key() != key);
            self.wakeups.push(wakeup);
        }
        self.outcomes.extend(effects.outcomes);
    }

    // -------------------------------------------------------------- contact inputs

    pub fn update_traits(&mut self, contact_id: &str, traits: BTreeMap<String, Json>) {
        if let Some(contact) = self.contacts.get_mut(contact_id) {
            for (k, v) in traits {
                if k == "timezone" || k == "time_zone" {
                    contact.time_zone = v.as_str().map(str::to_string);
                }
                contact.traits.insert(k, v);
            }
        }
        // Trait changes can move segment membership and schedule anniversaries.
        self.ingest(contact_id, "$identify", json!({}));
    }

    pub fn set_consent(&mut self, contact_id: &str, consent: &str, granted: bool) {
        if let Some(contact) = self.contacts.get_mut(contact_id) {
            contact.consents.insert(consent.to_string(), granted);
        }
    }

    /// Revokes the consents of `channel` (or all) and records the unsubscribe event.
    pub fn unsubscribe(&mut self, contact_id: &str, channel: Option<&str>) {
        let names: Vec<String> = self
            .plan
            .schema
            .consents
            .iter()
            .filter(|(_, c)| channel.is_none_or(|ch| c.channel.as_str() == ch))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.set_consent(contact_id, &name, false);
            self.outcomes.push(Outcome {
                at: self.now,
                contact_id: contact_id.to_string(),
                journey: None,
                run_id: None,
                step: None,
                kind: "consent".into(),
                detail: json!({ "consent": name, "granted": false }),
            });
        }
        self.ingest(
            contact_id,
            "unsubscribed",
            json!({ "scope": channel.unwrap_or("all"), "via": "test" }),
        );
    }

    /// The newest message the contact got from `step` (optionally of `journey`).
    pub fn message_of(
        &self,
        contact_id: &str,
        journey: Option<&str>,
        step: &str,
    ) -> Option<&OutboxMessage> {
        self.outbox.iter().rev().find(|m| {
            m.step == step
                && self.runs.get(&m.run_id).is_some_and(|r| {
                    r.contact_id == contact_id && journey.is_none_or(|j| r.journey == j)
                })
        })
    }
}
