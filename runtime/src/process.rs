//! Turning inputs and due timers into committed transitions: each unit of work opens a
//! transaction, locks and loads the contacts it touches, asks the engine, and applies
//! the effects before committing, so an event and what it causes, or a timer and what
//! it causes, commit together or not at all.

use crate::engine::{Engine, Links};
use crate::ingest::segment::{Input, InputKind};
use crate::metrics::Metrics;
use crate::model::{Effects, EventRecord, Millis, Outcome, RunState, Wakeup};
use crate::store::contacts::{ContactState, NewEvent, merge_traits};
use crate::store::effects::{Applied, time_zone_of};
use crate::store::timers::{ClaimedTimer, TimerWork};
use crate::store::{Result, Store, StoreError, Tx};
use crate::time::Clock;
use cairn_plan::Plan;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// A deployed plan in memory.
#[derive(Debug)]
pub struct LoadedPlan {
    pub version: i64,
    pub content_hash: String,
    pub plan: Arc<Plan>,
}

/// The plans the daemon runs: the active one starts runs, older ones finish theirs.
#[derive(Debug, Default)]
pub struct Plans {
    active: Option<Arc<LoadedPlan>>,
    versions: HashMap<i64, Arc<LoadedPlan>>,
}

impl Plans {
    pub fn active(&self) -> Option<Arc<LoadedPlan>> {
        self.active.clone()
    }

    pub fn version(&self, version: i64) -> Option<Arc<LoadedPlan>> {
        self.versions.get(&version).cloned()
    }

    fn insert(&mut self, loaded: Arc<LoadedPlan>, active: bool) {
        self.versions.insert(loaded.version, loaded.clone());
        if active {
            self.active = Some(loaded);
        }
    }
}

/// What every worker of one daemon shares.
pub struct Core {
    pub store: Store,
    pub plans: RwLock<Plans>,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub links: Links,
    /// This daemon's name in leases.
    pub worker_id: String,
    /// Rung when a transaction scheduled a timer, so the timer worker need not wait
    /// for its next poll.
    pub timers_changed: Notify,
    /// Rung when a transaction queued a message.
    pub outbox_changed: Notify,
}

/// How many times a unit of work is tried when the database asks for a retry.
const ATTEMPTS: u32 = 5;

impl Core {
    pub fn new(store: Store, clock: Arc<dyn Clock>, links: Links, worker_id: String) -> Core {
        Core {
            store,
            plans: RwLock::new(Plans::default()),
            metrics: Metrics::default(),
            clock,
            links,
            worker_id,
            timers_changed: Notify::new(),
            outbox_changed: Notify::new(),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn active_plan(&self) -> Option<Arc<LoadedPlan>> {
        self.plans.read().ok().and_then(|p| p.active())
    }

    /// Loads the active version from the store (after a deploy or a rollback).
    pub async fn reload_active(&self) -> Result<Option<Arc<LoadedPlan>>> {
        let Some((version, text)) = self.store.active_plan().await? else {
            return Ok(None);
        };
        let loaded = Arc::new(LoadedPlan {
            version: version.version,
            content_hash: version.content_hash,
            plan: Arc::new(parse_plan(&text, version.version)?),
        });
        if let Ok(mut plans) = self.plans.write() {
            plans.insert(loaded.clone(), true);
        }
        Ok(Some(loaded))
    }

    /// The plan of `version`, loaded from the store the first time.
    async fn plan_of(&self, version: i64) -> Result<Arc<LoadedPlan>> {
        if let Some(loaded) = self.plans.read().ok().and_then(|p| p.version(version)) {
            return Ok(loaded);
        }
        let text = self
            .store
            .plan_text(version)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("plan version {version} is missing")))?;
        let (content_hash, plan) = {
            let plan = parse_plan(&text, version)?;
            (plan.content_hash.clone(), plan)
        };
        let loaded = Arc::new(LoadedPlan {
            version,
            content_hash,
            plan: Arc::new(plan),
        });
        if let Ok(mut plans) = self.plans.write() {
            plans.insert(loaded.clone(), false);
        }
        Ok(loaded)
    }

    /// Stores and hands to the engine every input of `batches` in one transaction
    /// (retried when the database asks). Inputs keep their order. Only events are
    /// de-duplicated by `messageId`; `identify` and `alias` are idempotent.
    pub async fn ingest(
        &self,
        batches: &[Vec<Input>],
        received_at: Millis,
    ) -> Result<IngestReport> {
        let Some(active) = self.active_plan() else {
            return Err(StoreError::Conflict("no plan is deployed".into()));
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.ingest_once(batches, received_at, &active).await;
            match outcome {
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "retrying an ingest transaction");
                    continue;
                }
                Err(e) => return Err(e),
                Ok((report, applied)) => {
                    self.after_commit(&applied);
                    self.metrics.record_applied(&applied);
                    return Ok(report);
                }
            }
        }
    }

    async fn ingest_once(
        &self,
        batches: &[Vec<Input>],
        received_at: Millis,
        active: &Arc<LoadedPlan>,
    ) -> Result<(IngestReport, Applied)> {
        let now = self.now().max(received_at);
        let mut tx = self.store.begin().await?;
        let mut work = Work::new(self, active.clone(), now);
        for input in batches.iter().flatten() {
            work.input(&mut tx, input).await?;
        }
        tx.commit().await?;
        Ok((work.report, work.applied))
    }

    /// Runs the work of claimed timers, one transaction for the batch; a timer whose
    /// lease was lost is skipped. Returns how many timers did their work.
    pub async fn run_timers(&self, timers: &[ClaimedTimer]) -> Result<u64> {
        let Some(active) = self.active_plan() else {
            return Ok(0);
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.run_timers_once(timers, &active).await {
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => continue,
                Err(e) => return Err(e),
                Ok((done, applied)) => {
                    self.after_commit(&applied);
                    self.metrics.record_applied(&applied);
                    return Ok(done);
                }
            }
        }
    }

    async fn run_timers_once(
        &self,
        timers: &[ClaimedTimer],
        active: &Arc<LoadedPlan>,
    ) -> Result<(u64, Applied)> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut contacts: Vec<&str> = timers.iter().map(|t| t.contact_id.as_str()).collect();
        contacts.sort_unstable();
        contacts.dedup();
        tx.lock_contacts(&contacts).await?;
        let mut work = Work::new(self, active.clone(), now);
        let mut done = 0;
        for timer in timers {
            if !tx.release_timer(timer, &self.worker_id).await? {
                tracing::debug!(key = %timer.key, "lost the lease on a timer; skipping it");
                continue;
            }
            self.metrics.record_timer_lateness(now - timer.due_at);
            work.timer(&mut tx, timer).await?;
            done += 1;
        }
        tx.commit().await?;
        Ok((done, work.applied))
    }

    fn after_commit(&self, applied: &Applied) {
        // Any new timer may be sooner than the worker's next wake-up.
        if applied.earliest_timer.is_some() {
            self.timers_changed.notify_one();
        }
        if applied.messages > 0 {
            self.outbox_changed.notify_one();
        }
    }
}

fn parse_plan(text: &str, version: i64) -> Result<Plan> {
    Plan::from_json(text)
        .map_err(|e| StoreError::Corrupt(format!("plan version {version} does not load: {e}")))
}

/// What an ingest transaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Events stored.
    pub stored: u64,
    /// Messages ignored because their `messageId` was seen before.
    pub duplicates: u64,
}

/// One transaction's work: the contacts it loaded, kept current as effects apply.
struct Work<'c> {
    core: &'c Core,
    active: Arc<LoadedPlan>,
    now: Millis,
    contacts: HashMap<String, ContactState>,
    report: IngestReport,
    applied: Applied,
}

impl<'c> Work<'c> {
    fn new(core: &'c Core, active: Arc<LoadedPlan>, now: Millis) -> Self {
        Work {
            core,
            active,
            now,
            contacts: HashMap::new(),
            report: IngestReport::default(),
            applied: Applied::default(),
        }
    }

    /// The contact's state, loaded (and on PostgreSQL locked) the first time the
    /// transaction touches it. A contact created now first gets `contact_created`,
    /// stamped `at` (when the message that created it happened).
    async fn contact(&mut self, tx: &mut Tx, id: &str, at: Millis) -> Result<()> {
        if self.contacts.contains_key(id) {
            return Ok(());
        }
        let state = tx.load_state(id, self.now).await?;
        let created = state.created;
        self.contacts.insert(id.to_string(), state);
        if created {
            let payload = json!({});
            self.event(
                tx,
                id,
                None,
                "contact_created",
                &payload,
                at.min(self.now),
                None,
            )
            .await?;
        }
        Ok(())
    }

    async fn input(&mut self, tx: &mut Tx, input: &Input) -> Result<()> {
        // A retried event changes nothing, not even the consents it carries.
        if let (Some(id), InputKind::Track { .. }) = (&input.message_id, &input.kind)
            && tx.has_message(id).await?
        {
            self.report.duplicates += 1;
            return Ok(());
        }
        // The contact: `userId`, else the contact an anonymous id merged into.
        let contact_id = match (&input.user_id, &input.anonymous_id) {
            (Some(user), _) => Some(user.clone()),
            (None, Some(anonymous)) => tx.resolve_alias(anonymous).await?,
            (None, None) => None,
        };
        if let Some(id) = &contact_id {
            self.contact(tx, id, input.occurred_at).await?;
            if let (Some(anonymous), Some(_)) = (&input.anonymous_id, &input.user_id) {
                // An identified call carrying both ids merges the anonymous history.
                self.merge(tx, anonymous, id).await?;
            }
        }
        match &input.kind {
            InputKind::Identify { traits, consents } => {
                let Some(id) = &contact_id else {
                    // Traits of someone not yet identified have no contact to go to.
                    return Ok(());
                };
                if let Some(state) = self.contacts.get_mut(id) {
                    merge_traits(&mut state.contact.traits, traits);
                    state.contact.time_zone = time_zone_of(&state.contact.traits);
                    let contact = state.contact.clone();
                    tx.save_traits(&contact, self.now).await?;
                }
                for (consent, granted) in consents {
                    self.consent(tx, id, consent, *granted, "identify").await?;
                }
                Ok(())
            }
            InputKind::Track { event, payload } => {
                if let Some(id) = &contact_id {
                    self.consents_of_event(tx, id, event, payload).await?;
                }
                let stored = self
                    .event(
                        tx,
                        contact_id.as_deref().unwrap_or_default(),
                        input
                            .anonymous_id
                            .as_deref()
                            .filter(|_| contact_id.is_none()),
                        event,
                        payload,
                        input.occurred_at,
                        input.message_id.as_deref(),
                    )
                    .await?;
                if stored {
                    self.report.stored += 1;
                    self.core.metrics.events_ingested.inc();
                } else {
                    self.report.duplicates += 1;
                }
                Ok(())
            }
            InputKind::Alias { previous_id } => {
                if let Some(id) = &contact_id {
                    self.merge(tx, previous_id, id).await?;
                }
                Ok(())
            }
            InputKind::Ignored => Ok(()),
        }
    }

    async fn merge(&mut self, tx: &mut Tx, anonymous: &str, contact_id: &str) -> Result<()> {
        if anonymous == contact_id {
            return Ok(());
        }
        let moved = tx.merge_alias(anonymous, contact_id, self.now).await?;
        if moved > 0 {
            // The merged history now belongs to the contact: read it again.
            let fresh = tx.load_history(contact_id).await?;
            if let Some(state) = self.contacts.get_mut(contact_id) {
                state.history = fresh;
            }
        }
        Ok(())
    }

    /// `consent_granted` grants its consent; `unsubscribed` revokes the consents of its
    /// channel (or all), at that instant, before the engine sees the event.
    async fn consents_of_event(
        &mut self,
        tx: &mut Tx,
        contact_id: &str,
        event: &str,
        payload: &Json,
    ) -> Result<()> {
        let plan = self.active.plan.clone();
        match event {
            "consent_granted" => {
                if let Some(consent) = payload.get("consent").and_then(Json::as_str) {
                    let source = payload
                        .get("source")
                        .and_then(Json::as_str)
                        .unwrap_or("track");
                    self.consent(tx, contact_id, consent, true, source).await?;
                }
            }
            "unsubscribed" => {
                let scope = payload.get("scope").and_then(Json::as_str).unwrap_or("all");
                let via = payload.get("via").and_then(Json::as_str).unwrap_or("track");
                for consent in plan.schema.consents.values() {
                    if scope == "all" || scope == consent.channel.as_str() {
                        self.consent(tx, contact_id, &consent.name, false, via)
                            .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn consent(
        &mut self,
        tx: &mut Tx,
        contact_id: &str,
        consent: &str,
        granted: bool,
        source: &str,
    ) -> Result<()> {
        let Some(state) = self.contacts.get_mut(contact_id) else {
            return Ok(());
        };
        if state.contact.consents.get(consent) == Some(&granted) {
            return Ok(());
        }
        tx.set_consent(contact_id, consent, granted, Some(source), self.now)
            .await?;
        state.contact.consents.insert(consent.to_string(), granted);
        let outcome = Outcome {
            at: self.now,
            contact_id: contact_id.to_string(),
            journey: None,
            run_id: None,
            step: None,
            kind: "consent".into(),
            detail: json!({ "consent": consent, "granted": granted, "source": source }),
        };
        let effects = Effects {
            outcomes: vec![outcome],
            ..Effects::default()
        };
        let plan = self.active.plan.clone();
        let applied = tx.apply_effects(state, &effects, &plan, self.now).await?;
        self.applied.add(applied);
        Ok(())
    }

    /// Stores an event and, for a contact, hands it to the engine of every version
    /// with runs in flight and to the active one. Returns `false` for a duplicate.
    #[allow(clippy::too_many_arguments)]
    async fn event(
        &mut self,
        tx: &mut Tx,
        contact_id: &str,
        anonymous_id: Option<&str>,
        name: &str,
        payload: &Json,
        occurred_at: Millis,
        message_id: Option<&str>,
    ) -> Result<bool> {
        let new = NewEvent {
            contact_id: (!contact_id.is_empty()).then_some(contact_id),
            anonymous_id,
            name,
            payload,
            occurred_at,
            received_at: self.now,
            message_id,
        };
        let Some(id) = tx.insert_event(&new).await? else {
            return Ok(false);
        };
        if contact_id.is_empty() {
            return Ok(true);
        }
        let record = EventRecord {
            id,
            name: name.to_string(),
            payload: payload.clone(),
            occurred_at,
        };
        let versions = {
            let Some(state) = self.contacts.get_mut(contact_id) else {
                return Ok(true);
            };
            // Keep the history ordered by time, then arrival.
            let at = state
                .history
                .partition_point(|e| (e.occurred_at, e.id) <= (occurred_at, id));
            state.history.insert(at, record.clone());
            let mut versions: Vec<i64> = state
                .active_runs()
                .iter()
                .map(|r| r.plan_version)
                .filter(|v| *v != self.active.version)
                .collect();
            versions.sort_unstable();
            versions.dedup();
            versions
        };
        for version in versions {
            let loaded = self.core.plan_of(version).await?;
            self.decide(tx, contact_id, &loaded, false, |engine, state, now| {
                engine.on_event(
                    &state.contact,
                    &state.history,
                    &record,
                    &state.active_runs(),
                    now,
                )
            })
            .await?;
        }
        let active = self.active.clone();
        self.decide(tx, contact_id, &active, true, |engine, state, now| {
            engine.on_event(
                &state.contact,
                &state.history,
                &record,
                &state.active_runs(),
                now,
            )
        })
        .await?;
        Ok(true)
    }

    async fn timer(&mut self, tx: &mut Tx, timer: &ClaimedTimer) -> Result<()> {
        self.contact(tx, &timer.contact_id, self.now).await?;
        match &timer.work {
            TimerWork::Run { run_id } => {
                let run = self
                    .contacts
                    .get(&timer.contact_id)
                    .and_then(|s| s.runs.iter().find(|r| r.id == *run_id))
                    .filter(|r| !matches!(r.state, RunState::Ended { .. } | RunState::Paused))
                    .cloned();
                let Some(run) = run else {
                    return Ok(());
                };
                let loaded = if run.plan_version == self.active.version {
                    self.active.clone()
                } else {
                    self.core.plan_of(run.plan_version).await?
                };
                let active = loaded.version == self.active.version;
                self.decide(
                    tx,
                    &timer.contact_id,
                    &loaded,
                    active,
                    |engine, state, now| {
                        engine.on_run_due(&state.contact, &state.history, &run, now)
                    },
                )
                .await
            }
            TimerWork::Wakeup { reason } => {
                let wakeup = Wakeup {
                    contact_id: timer.contact_id.clone(),
                    at: timer.due_at,
                    reason: reason.clone(),
                };
                let active = self.active.clone();
                self.decide(
                    tx,
                    &timer.contact_id,
                    &active,
                    true,
                    |engine, state, now| {
                        engine.on_wakeup(&state.contact, &state.history, &wakeup, now)
                    },
                )
                .await
            }
        }
    }

    /// Asks the engine of `loaded` and applies what it decides.
    async fn decide<F>(
        &mut self,
        tx: &mut Tx,
        contact_id: &str,
        loaded: &LoadedPlan,
        active: bool,
        ask: F,
    ) -> Result<()>
    where
        F: FnOnce(&Engine<'_>, &ContactState, Millis) -> Effects,
    {
        let Some(state) = self.contacts.get_mut(contact_id) else {
            return Ok(());
        };
        let engine = Engine::new(
            &loaded.plan,
            loaded.version,
            active,
            self.core.links.clone(),
        );
        let effects = ask(&engine, state, self.now);
        if effects == Effects::default() {
            return Ok(());
        }
        self.core.metrics.record_effects(&effects);
        let applied = tx
            .apply_effects(state, &effects, &loaded.plan, self.now)
            .await?;
        self.applied.add(applied);
        Ok(())
    }
}
