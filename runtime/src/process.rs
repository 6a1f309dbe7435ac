//! Turning inputs and due timers into committed transitions: each unit of work opens a
//! transaction, locks and loads the contacts it touches, asks the engine, and applies
//! the effects before committing, so an event and what it causes, or a timer and what
//! it causes, commit together or not at all.

mod erase;
pub mod pause;

use crate::engine::{Engine, Links};
use crate::ingest::segment::{Input, InputKind};
use crate::metrics::Metrics;
use crate::model::{Effects, EventRecord, Millis, RunState, Wakeup};
use crate::store::contacts::{ContactState, EventRow, merge_traits};
use crate::store::effects::{Applied, States, WriteSet};
use crate::store::timers::{ClaimedTimer, TimerWork};
use crate::store::{Result, Store, StoreError, Tx};
use crate::time::Clock;
use cairn_plan::Plan;
use serde_json::{Value as Json, json};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
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
    /// Double opt-in and the other rules of [`crate::respect`].
    pub respect: crate::respect::Settings,
    /// `[retention] events`: how long events are kept; `None` keeps them forever.
    /// Deploys of plans that read further back are refused.
    pub retention: Option<cairn_plan::Duration>,
    /// This daemon's name in leases.
    pub worker_id: String,
    /// Rung when a transaction scheduled a timer, so the timer worker need not wait
    /// for its next poll.
    pub timers_changed: Notify,
    /// Rung when a transaction queued a message.
    pub outbox_changed: Notify,
    /// Numbers the `messageId`s made for events sent without one.
    generated_ids: std::sync::atomic::AtomicU64,
    /// Contacts as the last transaction left them: only with SQLite, where this daemon
    /// is the one writer, so what it committed is what the database holds.
    cache: Option<StateCache>,
}

/// Contacts kept in memory between transactions, so a busy contact is not read back
/// from the database for every event. An entry is taken out while a transaction works
/// on it and put back after the commit; each transaction has a generation (taken once
/// it holds the single SQLite writer, so generations follow commit order) and a put
/// never replaces the state of a later one.
pub struct StateCache {
    entries: std::sync::Mutex<CacheEntries>,
    generations: std::sync::atomic::AtomicU64,
    /// Puts of generations below this are dropped: they read the database before a
    /// deploy moved runs.
    floor: std::sync::atomic::AtomicU64,
    capacity: usize,
}

#[derive(Default)]
struct CacheEntries {
    /// A contact's slot stays while a transaction has its state out, so the eviction
    /// order names each cached contact once.
    slots: HashMap<String, Slot>,
    /// Ids in the order their slots were made, oldest first, for eviction; may name
    /// slots already gone.
    order: std::collections::VecDeque<String>,
}

struct Slot {
    /// The transaction that put the state.
    generation: u64,
    /// `None` while a transaction works on it.
    state: Option<Box<ContactState>>,
}

impl StateCache {
    pub fn new(capacity: usize) -> StateCache {
        StateCache {
            entries: std::sync::Mutex::new(CacheEntries::default()),
            generations: std::sync::atomic::AtomicU64::new(1),
            floor: std::sync::atomic::AtomicU64::new(0),
            capacity,
        }
    }

    /// Forgets every contact, and every state a transaction already running will put
    /// back: call while holding the writer, before committing a change the cache does
    /// not see (a deploy that moves runs).
    fn invalidate(&self) {
        let floor = self.generation();
        self.floor.store(floor, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut entries) = self.entries.lock() {
            entries.slots.clear();
            entries.order.clear();
        }
    }

    /// A new generation: call once the transaction holds the writer.
    fn generation(&self) -> u64 {
        self.generations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    fn take(&self, ids: &[String]) -> States {
        let Ok(mut entries) = self.entries.lock() else {
            return HashMap::new();
        };
        let mut taken = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(state) = entries.slots.get_mut(id).and_then(|s| s.state.take()) {
                taken.insert(id.clone(), state);
            }
        }
        taken
    }

    fn forget(&self, ids: &[String]) {
        if let Ok(mut entries) = self.entries.lock() {
            for id in ids {
                entries.slots.remove(id);
            }
        }
    }

    fn put(&self, generation: u64, states: States) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if generation < self.floor.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let CacheEntries { slots, order } = &mut *entries;
        for (id, mut state) in states {
            state.created = false;
            match slots.get_mut(&id) {
                Some(slot) => {
                    if slot.generation < generation {
                        *slot = Slot {
                            generation,
                            state: Some(state),
                        };
                    }
                }
                None => {
                    order.push_back(id.clone());
                    slots.insert(
                        id,
                        Slot {
                            generation,
                            state: Some(state),
                        },
                    );
                }
            }
        }
        while slots.len() > self.capacity {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            slots.remove(&oldest);
        }
        // Forgotten ids leave stale entries in the order; keep it bounded.
        if order.len() > 2 * self.capacity.max(1) {
            let mut seen = HashSet::with_capacity(slots.len());
            order.retain(|id| slots.contains_key(id) && seen.insert(id.clone()));
        }
    }
}

/// Contacts the SQLite daemon keeps in memory between transactions.
const CACHED_CONTACTS: usize = 50_000;

impl Core {
    pub fn new(store: Store, clock: Arc<dyn Clock>, links: Links, worker_id: String) -> Core {
        Core {
            cache: (store.backend() == crate::store::Backend::Sqlite)
                .then(|| StateCache::new(CACHED_CONTACTS)),
            store,
            plans: RwLock::new(Plans::default()),
            metrics: Metrics::default(),
            clock,
            links,
            respect: crate::respect::Settings::default(),
            retention: None,
            worker_id,
            timers_changed: Notify::new(),
            outbox_changed: Notify::new(),
            generated_ids: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn active_plan(&self) -> Option<Arc<LoadedPlan>> {
        self.plans.read().ok().and_then(|p| p.active())
    }

    /// Forgets the contacts cached between transactions: a deploy that moves runs
    /// calls it before its commit.
    pub fn forget_cached_contacts(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate();
        }
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
        let report = self
            .transaction("an ingest transaction", || {
                self.ingest_once(batches, received_at, &active)
            })
            .await?;
        self.metrics.ingest_transactions.inc();
        Ok(report)
    }

    async fn ingest_once(
        &self,
        batches: &[Vec<Input>],
        received_at: Millis,
        active: &Arc<LoadedPlan>,
    ) -> Result<(IngestReport, Applied)> {
        let now = self.now().max(received_at);
        let inputs: Vec<&Input> = batches.iter().flatten().collect();
        let mut tx = self.store.begin().await?;

        // Who each input is about: `userId`, else the contact its anonymous id merged
        // into. Merges come first, so the history loaded next includes what they move.
        let mut contact_of: Vec<Option<String>> = Vec::with_capacity(inputs.len());
        let mut merged: Vec<String> = Vec::new();
        for input in &inputs {
            let contact = match (&input.user_id, &input.anonymous_id) {
                (Some(user), _) => Some(user.clone()),
                (None, Some(anonymous)) => tx.resolve_alias(anonymous).await?,
                (None, None) => None,
            };
            if let Some(contact) = &contact {
                let previous = match &input.kind {
                    InputKind::Alias { previous_id } => Some(previous_id),
                    _ => input
                        .anonymous_id
                        .as_ref()
                        .filter(|_| input.user_id.is_some()),
                };
                if let Some(previous) = previous.filter(|p| *p != contact)
                    && tx.merge_alias(previous, contact, now).await? > 0
                {
                    merged.push(contact.clone());
                }
            }
            contact_of.push(contact);
        }
        let mut ids: Vec<String> = contact_of.iter().flatten().cloned().collect();
        ids.sort_unstable();
        ids.dedup();
        let generation = self.cache.as_ref().map(StateCache::generation);
        let (states, created) = self.load(&mut tx, &ids, &merged, now).await?;

        // Every event of the transaction in one statement: a new contact's
        // `contact_created` first, then the tracked events in order.
        let mut rows: Vec<EventRow> = Vec::new();
        let mut row_of_input: Vec<Option<usize>> = Vec::with_capacity(inputs.len());
        let mut created_row: HashMap<String, usize> = HashMap::new();
        for (input, contact) in inputs.iter().zip(&contact_of) {
            if let Some(id) = contact
                && created.contains(id)
                && !created_row.contains_key(id)
            {
                created_row.insert(id.clone(), rows.len());
                rows.push(EventRow {
                    contact_id: Some(id.clone()),
                    anonymous_id: None,
                    name: Cow::Borrowed("contact_created"),
                    payload: Arc::new(json!({})),
                    occurred_at: input.occurred_at.min(now),
                    received_at: now,
                    message_id: format!("cairn:contact_created:{id}"),
                });
            }
            match &input.kind {
                InputKind::Track { event, payload } => {
                    row_of_input.push(Some(rows.len()));
                    rows.push(EventRow {
                        contact_id: contact.clone(),
                        anonymous_id: input.anonymous_id.clone().filter(|_| contact.is_none()),
                        name: Cow::Borrowed(event),
                        // An erased contact's later events keep no payload.
                        payload: if contact
                            .as_ref()
                            .and_then(|id| states.get(id))
                            .is_some_and(|s| s.contact.erased)
                        {
                            Arc::new(json!({}))
                        } else {
                            payload.clone()
                        },
                        occurred_at: input.occurred_at,
                        received_at: now,
                        message_id: input
                            .message_id
                            .clone()
                            .unwrap_or_else(|| self.message_id()),
                    });
                }
                _ => row_of_input.push(None),
            }
        }
        let ids_of_rows = tx.insert_events(&rows).await?;
        // Every few thousand events, SQLite's per-contact index takes the new ones in.
        if self.store.stored_unindexed(rows.len()) {
            tx.fold_event_index().await?;
        }

        let mut work = Work::new(self, active.clone(), now, states);
        work.paused = pause::journeys(&mut tx).await?;
        for ((input, contact), row) in inputs.iter().zip(&contact_of).zip(&row_of_input) {
            let created = contact.as_ref().and_then(|id| {
                let at = created_row.remove(id)?;
                Some((id, at, ids_of_rows[at]?))
            });
            let event = row.map(|r| (&rows[r], ids_of_rows[r]));
            if matches!(input.kind, InputKind::Identify { .. }) {
                // The identify that creates a contact sets its traits first, so
                // `when contact created` journeys and their audiences see them (and
                // the creation's pass over segments and anniversaries covers them).
                work.input(input, contact.as_deref(), event, created.is_none())
                    .await?;
                if let Some((id, at, event_id)) = created {
                    work.event(id, &rows[at], event_id).await?;
                }
            } else {
                if let Some((id, at, event_id)) = created {
                    work.event(id, &rows[at], event_id).await?;
                }
                work.input(input, contact.as_deref(), event, true).await?;
            }
        }
        let report = work.report.clone();
        let applied = tx.flush(work.writes).await?;
        tx.commit().await?;
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.put(generation, work.contacts);
        }
        Ok((report, applied))
    }

    /// Creates the contacts that are missing, locks them (PostgreSQL), and returns
    /// what the engine reads about each, from the cache when it has them. Contacts in
    /// `merged` just received merged history and are read from the database.
    async fn load(
        &self,
        tx: &mut Tx,
        ids: &[String],
        merged: &[String],
        now: Millis,
    ) -> Result<(States, HashSet<String>)> {
        let mut states = match &self.cache {
            Some(cache) => {
                cache.forget(merged);
                cache.take(ids)
            }
            None => HashMap::new(),
        };
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !states.contains_key(*id))
            .cloned()
            .collect();
        let created = tx.ensure_contacts(&missing, now).await?;
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        tx.lock_contacts(&id_refs).await?;
        // A contact created just now has nothing to read, unless history was merged
        // into it.
        let (fresh, stored): (Vec<String>, Vec<String>) = missing
            .into_iter()
            .partition(|id| created.contains(id) && !merged.contains(id));
        states.extend(
            fresh
                .iter()
                .map(|id| (id.clone(), Box::new(ContactState::created(id, now)))),
        );
        states.extend(tx.load_states(&stored, &created).await?);
        Ok((states, created))
    }

    /// A `messageId` for an event sent without one.
    fn message_id(&self) -> String {
        let n = self
            .generated_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("cairn:{}:{n}", self.worker_id)
    }

    /// Runs the work of claimed timers, one transaction for the batch; a timer whose
    /// lease was lost is skipped. Returns how many timers did their work.
    pub async fn run_timers(&self, timers: &[ClaimedTimer]) -> Result<u64> {
        let Some(active) = self.active_plan() else {
            return Ok(0);
        };
        self.transaction("a timer transaction", || {
            self.run_timers_once(timers, &active)
        })
        .await
    }

    /// Takes up to `limit` due timers and runs them, in one transaction that deletes
    /// them as it takes them: for a SQLite daemon, the store's one worker, which needs
    /// no lease (a failed or interrupted transaction leaves every timer in place).
    /// Returns how many timers ran.
    pub async fn run_due_timers(&self, limit: i64) -> Result<u64> {
        let Some(active) = self.active_plan() else {
            return Ok(0);
        };
        self.transaction("a timer transaction", || async {
            let mut tx = self.store.begin().await?;
            let timers = tx.take_due_timers(self.now(), limit).await?;
            if timers.is_empty() {
                tx.rollback().await?;
                return Ok((0, Applied::default()));
            }
            self.work_timers(tx, &timers, TimerGuard::Taken, &active)
                .await
        })
        .await
    }

    /// Runs `once`, a whole transaction, retried while the database asks; then wakes
    /// the workers for what it wrote and counts it.
    async fn transaction<T, F, Fut>(&self, what: &str, once: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(T, Applied)>>,
    {
        let (value, applied) = crate::store::retrying(what, once).await?;
        self.after_commit(&applied);
        self.metrics.record_applied(&applied);
        Ok(value)
    }

    async fn run_timers_once(
        &self,
        timers: &[ClaimedTimer],
        active: &Arc<LoadedPlan>,
    ) -> Result<(u64, Applied)> {
        let tx = self.store.begin().await?;
        self.work_timers(tx, timers, TimerGuard::Lease, active)
            .await
    }

    /// Runs the work of `timers` in `tx` and commits.
    async fn work_timers(
        &self,
        mut tx: Tx,
        timers: &[ClaimedTimer],
        guard: TimerGuard,
        active: &Arc<LoadedPlan>,
    ) -> Result<(u64, Applied)> {
        let now = self.now();
        let mut ids: Vec<String> = timers.iter().map(|t| t.contact_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let generation = self.cache.as_ref().map(StateCache::generation);
        let (states, _) = self.load(&mut tx, &ids, &[], now).await?;
        let paused = pause::journeys(&mut tx).await?;
        let kept = pause::not_held(timers, &paused);
        let timers: &[ClaimedTimer] = &kept;
        let released = match guard {
            // Guarded by the lease: a timer another worker took over, or an event
            // moved, is not ours any more and its work is skipped.
            TimerGuard::Lease => tx.release_timers(timers, &self.worker_id).await?,
            TimerGuard::Taken => timers.iter().map(|t| t.id).collect(),
        };
        let mut work = Work::new(self, active.clone(), now, states);
        work.paused = paused;
        let mut done = 0;
        for timer in timers {
            if !released.contains(&timer.id) {
                tracing::debug!(key = %timer.key, "lost the lease on a timer; skipping it");
                continue;
            }
            self.metrics.record_timer_lateness(now - timer.due_at);
            work.timer(timer).await?;
            done += 1;
        }
        let applied = tx.flush(work.writes).await?;
        tx.commit().await?;
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.put(generation, work.contacts);
        }
        Ok((done, applied))
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

/// What makes a timer this worker's to run.
#[derive(Clone, Copy)]
enum TimerGuard {
    /// Claimed earlier with a lease: deleted guarded by owner and attempt.
    Lease,
    /// Deleted by the transaction that runs it.
    Taken,
}

/// The event [`Work::announce`] hands to the engines.
#[derive(Clone, Copy)]
enum Announced<'r> {
    /// Just stored in the contact's history, at this index.
    Stored(usize),
    /// Not stored (an `$identify`).
    Loose(&'r EventRecord),
}

impl<'r> Announced<'r> {
    fn record<'h>(self, history: &'h [EventRecord]) -> &'h EventRecord
    where
        'r: 'h,
    {
        match self {
            Announced::Stored(at) => &history[at],
            Announced::Loose(record) => record,
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

/// One transaction's decisions: the contacts it loaded, kept current as effects are
/// staged, and the writes to flush before it commits.
struct Work<'c> {
    core: &'c Core,
    active: Arc<LoadedPlan>,
    now: Millis,
    contacts: States,
    report: IngestReport,
    writes: WriteSet,
    /// The journeys paused as this transaction reads them (see [`pause`]).
    paused: HashSet<String>,
}

impl<'c> Work<'c> {
    fn new(core: &'c Core, active: Arc<LoadedPlan>, now: Millis, contacts: States) -> Self {
        Work {
            core,
            active,
            now,
            contacts,
            report: IngestReport::default(),
            writes: WriteSet::default(),
            paused: HashSet::new(),
        }
    }

    /// One input, for `contact` (when it has one); `event` is its stored row and id
    /// (`None` when the row was a duplicate). An identify that changes the contact
    /// drives the engine when `announce` (segments entered or left, anniversaries
    /// scheduled, runs re-checked), as `cairn test` does.
    async fn input(
        &mut self,
        input: &Input,
        contact: Option<&str>,
        event: Option<(&EventRow<'_>, Option<i64>)>,
        announce: bool,
    ) -> Result<()> {
        match &input.kind {
            InputKind::Identify { traits, consents } => {
                // Traits of someone not yet identified have no contact to go to.
                let Some(id) = contact else {
                    return Ok(());
                };
                // An erased contact's new traits and consents are not kept.
                if self.contacts.get(id).is_some_and(|s| s.contact.erased) {
                    return Ok(());
                }
                let mut changed = false;
                if let Some(state) = self.contacts.get_mut(id) {
                    // The time zone is read from the traits: it changes only with them.
                    let before = state.contact.traits.clone();
                    merge_traits(&mut state.contact.traits, traits);
                    if state.contact.traits != before {
                        self.writes.stage_traits(state, self.now);
                        changed = true;
                    }
                }
                for (consent, granted) in consents {
                    changed |= self.consent(id, consent, *granted, "identify");
                }
                if changed && announce {
                    self.identified(id, input.occurred_at.min(self.now)).await?;
                }
                Ok(())
            }
            InputKind::Track {
                event: name,
                payload,
            } => {
                let Some((row, Some(event_id))) = event else {
                    // A retried event changes nothing, not even the consents it carries.
                    self.report.duplicates += 1;
                    return Ok(());
                };
                self.report.stored += 1;
                self.core.metrics.events_ingested.inc();
                if let Some(id) = contact {
                    // A grant held for double opt-in is kept in the history as the
                    // request it is, but no journey sees a consent granted.
                    if !self.consents_of_event(id, name, payload) {
                        self.event(id, row, event_id).await?;
                    }
                }
                Ok(())
            }
            InputKind::Alias { .. } | InputKind::Ignored => Ok(()),
        }
    }

    /// `consent_granted` grants its consent; `unsubscribed` revokes the consents of its
    /// scope (a channel, one consent by name, or all), at that instant, before the
    /// engine sees the event. Returns whether the event was a grant held for double
    /// opt-in (a confirmation was sent instead).
    fn consents_of_event(&mut self, contact_id: &str, event: &str, payload: &Json) -> bool {
        let plan = self.active.plan.clone();
        match event {
            "consent_granted" => {
                if let Some(consent) = payload.get("consent").and_then(Json::as_str) {
                    let source = payload
                        .get("source")
                        .and_then(Json::as_str)
                        .unwrap_or("track");
                    if self.held_for_opt_in(consent, true, source) {
                        self.request_opt_in(contact_id, consent);
                        return true;
                    }
                    self.consent(contact_id, consent, true, source);
                }
            }
            "unsubscribed" => {
                let scope = payload.get("scope").and_then(Json::as_str).unwrap_or("all");
                let via = payload.get("via").and_then(Json::as_str).unwrap_or("track");
                for consent in plan.schema.consents.values() {
                    if scope == "all" || scope == consent.channel.as_str() || scope == consent.name
                    {
                        self.consent(contact_id, &consent.name, false, via);
                    }
                }
            }
            _ => {}
        }
        false
    }

    /// Whether granting `consent` from `source` must wait for a confirmation link.
    fn held_for_opt_in(&self, consent: &str, granted: bool, source: &str) -> bool {
        granted
            && source != crate::respect::DOUBLE_OPT_IN_SOURCE
            && self.core.respect.double_opt_in.contains_key(consent)
    }

    /// Stages a consent change; returns whether it changed anything. A grant of a
    /// double opt-in consent from anywhere but its confirmation link queues the
    /// confirmation email instead.
    fn consent(&mut self, contact_id: &str, consent: &str, granted: bool, source: &str) -> bool {
        let unchanged = self
            .contacts
            .get(contact_id)
            .is_none_or(|s| s.contact.consents.get(consent) == Some(&granted));
        if unchanged {
            return false;
        }
        if self.held_for_opt_in(consent, granted, source) {
            self.request_opt_in(contact_id, consent);
            return false;
        }
        let Some(state) = self.contacts.get_mut(contact_id) else {
            return false;
        };
        self.writes
            .stage_consent(state, consent, granted, source, self.now);
        true
    }

    /// Queues the double opt-in confirmation of `consent` (at most one a day; nothing
    /// when the consent is already granted or the contact has no email address) and
    /// records an `opt_in_requested` outcome.
    fn request_opt_in(&mut self, contact_id: &str, consent: &str) {
        let Some(template) = self.core.respect.double_opt_in.get(consent).cloned() else {
            return;
        };
        let Some(state) = self.contacts.get_mut(contact_id) else {
            return;
        };
        if state.contact.consents.get(consent) == Some(&true) {
            return;
        }
        let plan = self.active.plan.clone();
        let engine = Engine::new(&plan, self.active.version, true, self.core.links.clone());
        let expires = self.now / 1000 + crate::respect::CONFIRM_LINK_TTL_SECS;
        let message =
            engine.opt_in_request(&state.contact, consent, &template, Some(expires), self.now);
        let detail = match &message {
            Some(m) => json!({ "consent": consent, "template": template, "address": m.address }),
            None => json!({ "consent": consent, "template": template, "address": null }),
        };
        let effects = Effects {
            outcomes: vec![crate::model::Outcome {
                at: self.now,
                contact_id: contact_id.to_string(),
                journey: None,
                run_id: None,
                step: None,
                kind: crate::store::respect::OPT_IN_REQUESTED.into(),
                detail,
            }],
            messages: message.into_iter().collect(),
            ..Effects::default()
        };
        self.writes.stage(state, &effects, &plan, self.now);
    }

    /// The contact's traits or consents changed: the engines see an `$identify` (not
    /// stored, not in the history), which re-evaluates segments (so `when enters
    /// segment` journeys start), schedules anniversaries of new dates, and re-checks
    /// runs in flight.
    async fn identified(&mut self, contact_id: &str, at: Millis) -> Result<()> {
        let record = EventRecord {
            id: 0,
            name: "$identify".into(),
            payload: Arc::new(json!({})),
            occurred_at: at,
        };
        self.announce(contact_id, Announced::Loose(&record)).await
    }

    /// Hands a stored event to the engine of every version with runs in flight for the
    /// contact, then to the active one.
    async fn event(&mut self, contact_id: &str, row: &EventRow<'_>, id: i64) -> Result<()> {
        let Some(state) = self.contacts.get_mut(contact_id) else {
            return Ok(());
        };
        // Keep the history ordered by time, then arrival; the engines read the event
        // where it was stored (deciding never changes the history).
        let at = state
            .history
            .partition_point(|e| (e.occurred_at, e.id) <= (row.occurred_at, id));
        let record = EventRecord {
            id,
            name: row.name.to_string(),
            payload: row.payload.clone(),
            occurred_at: row.occurred_at,
        };
        state.history.insert(at, record);
        self.announce(contact_id, Announced::Stored(at)).await
    }

    /// Hands the event to the engine of every version with runs in flight for the
    /// contact, then to the active one.
    async fn announce(&mut self, contact_id: &str, announced: Announced<'_>) -> Result<()> {
        let versions = {
            let Some(state) = self.contacts.get(contact_id) else {
                return Ok(());
            };
            let mut versions: Vec<i64> = state
                .runs
                .iter()
                .filter(|r| !matches!(r.state, RunState::Ended { .. }))
                .map(|r| r.plan_version)
                .filter(|v| *v != self.active.version)
                .collect();
            versions.sort_unstable();
            versions.dedup();
            versions
        };
        for version in versions {
            let loaded = self.core.plan_of(version).await?;
            self.decide(contact_id, &loaded, false, |engine, state, now| {
                engine.on_event(
                    &state.contact,
                    &state.history,
                    announced.record(&state.history),
                    &state.active_runs(),
                    now,
                )
            });
        }
        let active = self.active.clone();
        self.decide(contact_id, &active, true, |engine, state, now| {
            engine.on_event(
                &state.contact,
                &state.history,
                announced.record(&state.history),
                &state.active_runs(),
                now,
            )
        });
        Ok(())
    }

    async fn timer(&mut self, timer: &ClaimedTimer) -> Result<()> {
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
                self.decide(&timer.contact_id, &loaded, active, |engine, state, now| {
                    engine.on_run_due(&state.contact, &state.history, &run, now)
                });
                Ok(())
            }
            TimerWork::Wakeup { reason } => {
                let wakeup = Wakeup {
                    contact_id: timer.contact_id.clone(),
                    at: timer.due_at,
                    reason: reason.clone(),
                };
                let active = self.active.clone();
                self.decide(&timer.contact_id, &active, true, |engine, state, now| {
                    engine.on_wakeup(&state.contact, &state.history, &wakeup, now)
                });
                Ok(())
            }
        }
    }

    /// Asks the engine of `loaded` and stages what it decides.
    fn decide<F>(&mut self, contact_id: &str, loaded: &LoadedPlan, active: bool, ask: F)
    where
        F: FnOnce(&Engine<'_>, &ContactState, Millis) -> Effects,
    {
        let Some(state) = self.contacts.get_mut(contact_id) else {
            return;
        };
        let engine = Engine::new(
            &loaded.plan,
            loaded.version,
            active,
            self.core.links.clone(),
        )
        .holding(&self.paused);
        let effects = ask(&engine, state, self.now);
        if effects == Effects::default() {
            return;
        }
        self.core.metrics.record_effects(&effects);
        self.writes.stage(state, &effects, &loaded.plan, self.now);
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn states(ids: &[&str]) -> States {
        ids.iter()
            .map(|id| (id.to_string(), Box::new(ContactState::created(id, 0))))
            .collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn cached(cache: &StateCache) -> Vec<String> {
        let entries = cache.entries.lock().expect("the cache lock");
        let mut ids: Vec<String> = entries
            .slots
            .iter()
            .filter(|(_, slot)| slot.state.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_state_taken_out_is_gone_until_put_back_and_comes_back_not_created() {
        let cache = StateCache::new(10);
        let g = cache.generation();
        cache.put(g, states(&["ana", "bob"]));
        let taken = cache.take(&ids(&["ana", "cem"]));
        assert_eq!(taken.keys().collect::<Vec<_>>(), ["ana"]);
        assert!(
            !taken["ana"].created,
            "a cached state was created by an earlier transaction"
        );
        assert!(cache.take(&ids(&["ana"])).is_empty(), "taken twice");
        assert_eq!(cached(&cache), ["bob"]);
        cache.put(cache.generation(), taken);
        assert_eq!(cached(&cache), ["ana", "bob"]);
    }

    #[test]
    fn an_older_transaction_never_puts_its_state_over_a_newer_one() {
        let cache = StateCache::new(10);
        let older = cache.generation();
        let newer = cache.generation();
        let mut fresh = states(&["ana"]);
        fresh.get_mut("ana").expect("ana").contact.time_zone = Some("Europe/Oslo".into());
        cache.put(newer, fresh);
        cache.put(older, states(&["ana"]));
        let ana = cache.take(&ids(&["ana"]));
        assert_eq!(ana["ana"].contact.time_zone.as_deref(), Some("Europe/Oslo"));
    }

    #[test]
    fn the_oldest_contacts_are_evicted_first_and_each_is_named_once_in_the_order() {
        let cache = StateCache::new(3);
        for round in 0..50 {
            // `ana` is taken and put back every round: it stays one entry of the order.
            let mut back = cache.take(&ids(&["ana"]));
            back.extend(states(if round == 0 { &["ana"] } else { &[] }));
            cache.put(cache.generation(), back);
        }
        assert_eq!(cache.entries.lock().expect("lock").order.len(), 1);
        for id in ["bob", "cem", "dan"] {
            cache.put(cache.generation(), states(&[id]));
        }
        // Four contacts in a cache of three: `ana`, made first, went first.
        assert_eq!(cached(&cache), ["bob", "cem", "dan"]);
        assert_eq!(cache.entries.lock().expect("lock").order.len(), 3);
    }

    #[test]
    fn invalidating_drops_everything_and_the_puts_of_transactions_already_running() {
        let cache = StateCache::new(10);
        let running = cache.generation();
        cache.put(cache.generation(), states(&["ana"]));
        cache.invalidate();
        assert!(cached(&cache).is_empty());
        cache.put(running, states(&["bob"]));
        assert!(
            cached(&cache).is_empty(),
            "a put from before the invalidation"
        );
        cache.put(cache.generation(), states(&["cem"]));
        assert_eq!(cached(&cache), ["cem"]);
        cache.forget(&ids(&["cem"]));
        assert!(cached(&cache).is_empty());
    }
}
