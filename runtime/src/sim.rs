//! An in-memory world on a virtual clock: contacts, their history, runs, wakeups and
//! the outbox, driven by the same [`Engine`] as the daemon. `cairn test` and
//! `cairn simulate` run on it; the daemon's store applies [`Effects`] the same way in
//! SQL.

use crate::engine::{Engine, Links};
use crate::model::*;
use cairn_plan::Plan;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A map keyed by ids (contacts, runs, wakeup keys) with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A set of keys hashed with [`IdHasher`].
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// A fast hasher for the world's short ids, eight bytes at a step (the multiply and
/// rotate of rustc's FxHash). It gives up the standard hasher's resistance to
/// crafted collisions, which a replay of one's own events does not need; nothing the
/// world decides or reports depends on the order of a map.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Work due at an instant, in the order it fires then: runs (by id) before wakeups (in
/// the order they were scheduled).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Run(String),
    Wakeup(u64),
}

/// Runs and contacts below which a world is freed in place: a thread is not worth it.
const BACKGROUND_DROP_MIN: usize = 10_000;

pub struct World<'p> {
    plan: &'p Plan,
    pub contacts: IdMap<String, Contact>,
    pub history: IdMap<String, Vec<EventRecord>>,
    pub runs: IdMap<String, Run>,
    pub outbox: Vec<OutboxMessage>,
    pub outcomes: Vec<Outcome>,
    /// The virtual clock.
    pub now: Millis,
    next_event_id: i64,
    /// The engine every decision goes through: built once, so its links are not
    /// copied for each one.
    engine: Engine<'p>,
    /// The timer table: what is due when, so finding the next due work does not scan
    /// every run (a replay holds hundreds of thousands).
    queue: BTreeSet<(Millis, Due)>,
    /// Each run's entry in `queue`, if it waits for a time.
    run_due: IdMap<String, Millis>,
    /// Pending contact-level wakeups by key, with their place in `queue`.
    wakeups: IdMap<String, (Millis, u64, Wakeup)>,
    wakeup_keys: IdMap<u64, String>,
    next_wakeup: u64,
    /// Each contact's runs, ended ones included.
    runs_of: IdMap<String, Vec<String>>,
    /// The idempotency keys (run, step, visit) of the outbox.
    sent_keys: IdSet<(String, String, u32)>,
}

impl<'p> World<'p> {
    pub fn new(plan: &'p Plan, start: Millis) -> Self {
        Self {
            plan,
            contacts: IdMap::default(),
            history: IdMap::default(),
            runs: IdMap::default(),
            outbox: Vec::new(),
            outcomes: Vec::new(),
            now: start,
            next_event_id: 1,
            engine: Engine::new(plan, 1, true, Links::default()),
            queue: BTreeSet::new(),
            run_due: IdMap::default(),
            wakeups: IdMap::default(),
            wakeup_keys: IdMap::default(),
            next_wakeup: 0,
            runs_of: IdMap::default(),
            sent_keys: IdSet::default(),
        }
    }

    pub fn plan(&self) -> &'p Plan {
        self.plan
    }

    /// Frees the world on a thread of its own when it is large: freeing hundreds of
    /// thousands of runs and histories takes a tenth of a replay, which the caller need
    /// not wait for (and a command that exits first does not pay for at all).
    pub fn drop_in_background(self) {
        if self.runs.len() + self.contacts.len() < BACKGROUND_DROP_MIN {
            return;
        }
        let state = (
            self.contacts,
            self.history,
            self.runs,
            self.outbox,
            self.outcomes,
            self.queue,
            self.run_due,
            (self.wakeups, self.wakeup_keys, self.runs_of, self.sent_keys),
        );
        let spawned = std::thread::Builder::new()
            .name("cairn-drop-world".into())
            .spawn(move || drop(state));
        // Without a thread the world is freed here, as it would have been.
        drop(spawned);
    }

    pub fn add_contact(&mut self, contact: Contact) {
        self.history.entry(contact.id.clone()).or_default();
        self.contacts.insert(contact.id.clone(), contact);
    }

    /// Pending contact-level wakeups, in the order they were scheduled.
    pub fn wakeups(&self) -> Vec<&Wakeup> {
        let mut pending: Vec<&(Millis, u64, Wakeup)> = self.wakeups.values().collect();
        pending.sort_by_key(|(_, seq, _)| *seq);
        pending.into_iter().map(|(_, _, w)| w).collect()
    }

    /// When the next timer or wakeup is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.queue.first().map(|(at, _)| (*at).max(self.now))
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
            let due = self.queue.iter().find_map(|(at, due)| match due {
                Due::Run(id) => match self.runs.get(id).map(|r| &r.state) {
                    Some(RunState::Waiting { .. }) => Some((*at).max(self.now)),
                    Some(RunState::Ready) => Some(self.now),
                    _ => None,
                },
                Due::Wakeup(_) => None,
            });
            let Some(due) = due.filter(|d| *d <= limit) else {
                break;
            };
            self.now = self.now.max(due);
            let ids: Vec<String> = self
                .queue
                .iter()
                .take_while(|(at, _)| *at <= due)
                .filter_map(|(_, d)| match d {
                    Due::Run(id) => Some(id.clone()),
                    Due::Wakeup(_) => None,
                })
                .filter(|id| {
                    self.runs.get(id).is_some_and(|r| {
                        matches!(r.state, RunState::Waiting { .. } | RunState::Ready)
                    })
                })
                .collect();
            self.fire_runs(ids);
        }
    }

    /// Hands each run of `ids` to the engine.
    fn fire_runs(&mut self, ids: Vec<String>) {
        for id in ids {
            if let Some(at) = self.run_due.remove(&id) {
                self.queue.remove(&(at, Due::Run(id.clone())));
            }
            let effects = {
                let Some(run) = self.runs.get(&id) else {
                    continue;
                };
                let Some(contact) = self.contacts.get(&run.contact_id) else {
                    continue;
                };
                let history = self
                    .history
                    .get(&run.contact_id)
                    .map_or(&[][..], Vec::as_slice);
                self.engine.on_run_due(contact, history, run, self.now)
            };
            self.apply(effects);
        }
    }

    fn fire_due(&mut self, due: Millis) {
        self.now = self.now.max(due);
        let runs: Vec<String> = self
            .queue
            .iter()
            .take_while(|(at, _)| *at <= due)
            .filter_map(|(_, d)| match d {
                Due::Run(id) => Some(id.clone()),
                Due::Wakeup(_) => None,
            })
            .collect();
        self.fire_runs(runs);
        let due_now: Vec<(Millis, u64)> = self
            .queue
            .iter()
            .take_while(|(at, _)| *at <= due)
            .filter_map(|(at, d)| match d {
                Due::Wakeup(seq) => Some((*at, *seq)),
                Due::Run(_) => None,
            })
            .collect();
        let mut wakeups = Vec::with_capacity(due_now.len());
        for (at, seq) in due_now {
            self.queue.remove(&(at, Due::Wakeup(seq)));
            if let Some(key) = self.wakeup_keys.remove(&seq)
                && let Some((_, _, wakeup)) = self.wakeups.remove(&key)
            {
                wakeups.push((seq, wakeup));
            }
        }
        wakeups.sort_by_key(|(seq, _)| *seq);
        for (_, wakeup) in wakeups {
            let effects = {
                let Some(contact) = self.contacts.get(&wakeup.contact_id) else {
                    continue;
                };
                let history = self
                    .history
                    .get(&wakeup.contact_id)
                    .map_or(&[][..], Vec::as_slice);
                self.engine.on_wakeup(contact, history, &wakeup, self.now)
            };
            self.apply(effects);
        }
    }

    /// An event arrives for `contact` now.
    pub fn ingest(&mut self, contact_id: &str, name: &str, payload: impl Into<Arc<Json>>) {
        let event = EventRecord {
            id: self.next_event_id,
            name: name.to_string(),
            payload: payload.into(),
            occurred_at: self.now,
        };
        self.next_event_id += 1;
        let history = match self.history.get_mut(contact_id) {
            Some(history) => history,
            None => self.history.entry(contact_id.to_string()).or_default(),
        };
        history.push(event);
        let effects = {
            let Some(contact) = self.contacts.get(contact_id) else {
                return;
            };
            let history = self.history.get(contact_id).map_or(&[][..], Vec::as_slice);
            let Some(event) = history.last() else {
                return;
            };
            let runs = self
                .runs_of
                .get(contact_id)
                .into_iter()
                .flatten()
                .filter_map(|id| self.runs.get(id))
                .filter(|r| !matches!(r.state, RunState::Ended { .. }));
            self.engine
                .on_event(contact, history, event, runs, self.now)
        };
        self.apply(effects);
    }

    /// Adds an event to the contact's history at `at` without handing it to the
    /// engine: history merged in from an anonymous visitor.
    pub fn record(
        &mut self,
        contact_id: &str,
        name: &str,
        payload: impl Into<Arc<Json>>,
        at: Millis,
    ) {
        let event = EventRecord {
            id: self.next_event_id,
            name: name.to_string(),
            payload: payload.into(),
            occurred_at: at,
        };
        self.next_event_id += 1;
        let history = self.history.entry(contact_id.to_string()).or_default();
        let place = history.partition_point(|e| (e.occurred_at, e.id) <= (at, event.id));
        history.insert(place, event);
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
            if !self.runs.contains_key(&run.id) {
                self.runs_of
                    .entry(run.contact_id.clone())
                    .or_default()
                    .push(run.id.clone());
            }
            if let Some(at) = self.run_due.remove(&run.id) {
                self.queue.remove(&(at, Due::Run(run.id.clone())));
            }
            let due = match run.state {
                RunState::Waiting { until } | RunState::WaitingForEvent { until, .. } => {
                    Some(until)
                }
                RunState::Ready => Some(self.now),
                RunState::Paused | RunState::Ended { .. } => None,
            };
            if let Some(at) = due {
                self.queue.insert((at, Due::Run(run.id.clone())));
                self.run_due.insert(run.id.clone(), at);
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
            let key = (message.run_id.clone(), message.step.clone(), message.visit);
            if !self.sent_keys.insert(key) {
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
            if let Some((at, seq, _)) = self.wakeups.remove(&key) {
                self.queue.remove(&(at, Due::Wakeup(seq)));
                self.wakeup_keys.remove(&seq);
            }
            let seq = self.next_wakeup;
            self.next_wakeup += 1;
            self.queue.insert((wakeup.at, Due::Wakeup(seq)));
            self.wakeup_keys.insert(seq, key.clone());
            self.wakeups.insert(key, (wakeup.at, seq, wakeup));
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
