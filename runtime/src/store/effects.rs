//! Applying what the engine decided: runs, their timers, outcomes, outbox messages,
//! contact changes and wakeups.
//!
//! A transaction *stages* each decision in a [`WriteSet`] (which also changes the
//! in-memory [`ContactState`], so the next decision of the batch sees it) and *flushes*
//! the set once before committing: one statement per table for the whole transaction,
//! its rows passed as one JSON parameter (`jsonb_each` on SQLite, which parses it once
//! and then reads each row's fields from the binary form; `jsonb_to_recordset` on
//! PostgreSQL). A statement per row would cost a round trip to the database each.

use super::contacts::{ContactState, state_columns};
use super::{Backend, Result, Tx, json, on_tx};
use crate::model::{
    ContactChange, Effects, Entries, Millis, OutboxMessage, Outcome, Run, RunState, SentMessage,
    Wakeup, WakeupReason,
};
use cairn_plan::Plan;
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};

/// What a transaction wrote, for metrics and for waking the workers early.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The earliest timer the transaction scheduled.
    pub earliest_timer: Option<Millis>,
    /// Outbox rows inserted (a replay of the same idempotency key inserts none).
    pub messages: u64,
    pub outcomes: u64,
    /// Runs created or moved.
    pub runs: u64,
}

impl Applied {
    pub fn add(&mut self, other: Applied) {
        self.earliest_timer = match (self.earliest_timer, other.earliest_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.messages += other.messages;
        self.outcomes += other.outcomes;
        self.runs += other.runs;
    }
}

/// The timer key of a run's next move: one per run.
pub fn run_timer_key(run_id: &str) -> String {
    format!("run:{run_id}")
}

/// The timer key of a wakeup: one per contact and reason, so scheduling it again moves it.
pub fn wakeup_timer_key(wakeup: &Wakeup) -> String {
    // One key scheme for the store and the in-memory world of `cairn test`.
    wakeup.key()
}

#[derive(Debug, Clone, Serialize)]
struct RunRow {
    run_id: String,
    contact_id: String,
    journey: String,
    plan_version: i64,
    step: Option<String>,
    state: &'static str,
    wait_event: Option<String>,
    until_at: Option<Millis>,
    bindings: BTreeMap<String, Json>,
    visits: BTreeMap<String, u32>,
    entered_at: Millis,
    ended_at: Option<Millis>,
    end_reason: Option<&'static str>,
    updated_at: Millis,
}

#[derive(Debug, Clone, Serialize)]
struct TimerRow {
    key: String,
    kind: &'static str,
    contact_id: String,
    run_id: Option<String>,
    detail: Option<WakeupReason>,
    due_at: Millis,
}

#[derive(Debug, Clone, Serialize)]
struct MessageRow {
    run_id: String,
    step: String,
    visit: i64,
    contact_id: String,
    channel: String,
    template: Option<String>,
    marketing: bool,
    address: String,
    payload: Json,
    next_attempt_at: Millis,
    created_at: Millis,
}

#[derive(Debug, Clone, Serialize)]
struct OutcomeRow<'a> {
    at: Millis,
    contact_id: &'a str,
    journey: Option<&'a str>,
    run_id: Option<&'a str>,
    step: Option<&'a str>,
    kind: &'a str,
    detail: &'a Json,
}

/// A row of a (contact, name) table: tags, scores, segments, consents.
#[derive(Debug, Clone, Serialize)]
struct PairRow<'a> {
    contact_id: &'a str,
    name: &'a str,
    /// The score's value, or the consent's source.
    value: Option<&'a str>,
    /// Whether the consent is granted.
    flag: bool,
    at: Millis,
}

#[derive(Debug, Clone, Serialize)]
struct TraitsRow<'a> {
    contact_id: &'a str,
    traits: &'a BTreeMap<String, Json>,
    time_zone: Option<&'a str>,
    updated_at: Millis,
}

/// A contact's traits, its time zone, and when they changed.
type StagedTraits = (BTreeMap<String, Json>, Option<String>, Millis);

/// The writes of one transaction, staged: the last state of each run, timer, tag,
/// score, segment membership, consent and trait set, and every outcome and message.
#[derive(Debug, Default)]
pub struct WriteSet {
    runs: BTreeMap<String, RunRow>,
    /// `None`: delete the timer.
    timers: BTreeMap<String, Option<TimerRow>>,
    outcomes: Vec<Outcome>,
    messages: Vec<MessageRow>,
    /// (contact, tag) → added at, or `None` to remove.
    tags: BTreeMap<(String, String), Option<Millis>>,
    scores: BTreeMap<(String, String), (String, Millis)>,
    segments: BTreeMap<(String, String), Option<Millis>>,
    consents: BTreeMap<(String, String), (bool, Option<String>, Millis)>,
    /// Contacts whose traits changed: traits, time zone, when.
    traits: BTreeMap<String, StagedTraits>,
    /// Changes the engine asked for another contact's attributes: applied at flush by
    /// reading and writing that contact's traits.
    foreign_attributes: Vec<(String, String, Json, Millis)>,
    pub applied: Applied,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.timers.is_empty()
            && self.outcomes.is_empty()
            && self.messages.is_empty()
            && self.tags.is_empty()
            && self.scores.is_empty()
            && self.segments.is_empty()
            && self.consents.is_empty()
            && self.traits.is_empty()
            && self.foreign_attributes.is_empty()
    }

    /// Stages `effects` for the contact of `state` at `now`, and applies them to
    /// `state`. `plan` says which templates are marketing (frequency caps count those).
    pub fn stage(&mut self, state: &mut ContactState, effects: &Effects, plan: &Plan, now: Millis) {
        for run in &effects.runs {
            self.stage_run(run, now);
            match state.runs.iter_mut().find(|r| r.id == run.id) {
                Some(existing) => *existing = run.clone(),
                None => state.runs.push(run.clone()),
            }
        }
        if !effects.runs.is_empty() {
            state.contact.entries = entries(&state.runs);
        }
        self.outcomes.extend(effects.outcomes.iter().cloned());
        self.applied.outcomes += effects.outcomes.len() as u64;
        for message in &effects.messages {
            let marketing = is_marketing(plan, message);
            self.messages.push(MessageRow {
                run_id: message.run_id.clone(),
                step: message.step.clone(),
                visit: i64::from(message.visit),
                contact_id: state.contact.id.clone(),
                channel: message.channel.clone(),
                template: message.template.clone(),
                marketing,
                address: message.address.clone(),
                payload: message.payload.clone(),
                next_attempt_at: message.not_before,
                created_at: now,
            });
            state.contact.sends.push(SentMessage {
                at: now,
                channel: message.channel.clone(),
                marketing,
            });
        }
        for (contact_id, change) in &effects.contact_changes {
            if *contact_id == state.contact.id {
                self.stage_change(state, change, now);
            } else if let ContactChange::Attribute { field, value } = change {
                self.foreign_attributes.push((
                    contact_id.clone(),
                    field.clone(),
                    value.clone(),
                    now,
                ));
            } else {
                let mut other = ContactState {
                    contact: crate::model::Contact {
                        id: contact_id.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                self.stage_change(&mut other, change, now);
            }
        }
        for wakeup in &effects.wakeups {
            self.stage_timer(TimerRow {
                key: wakeup_timer_key(wakeup),
                kind: "wakeup",
                contact_id: wakeup.contact_id.clone(),
                run_id: None,
                detail: Some(wakeup.reason.clone()),
                due_at: wakeup.at,
            });
        }
    }

    fn stage_run(&mut self, run: &Run, now: Millis) {
        let (state, wait_event, until_at, ended_at, end_reason) = state_columns(&run.state);
        self.runs.insert(
            run.id.clone(),
            RunRow {
                run_id: run.id.clone(),
                contact_id: run.contact_id.clone(),
                journey: run.journey.clone(),
                plan_version: run.plan_version,
                step: run.step.clone(),
                state,
                wait_event,
                until_at,
                bindings: run.bindings.clone(),
                visits: run.visits.clone(),
                entered_at: run.entered_at,
                ended_at,
                end_reason,
                updated_at: now,
            },
        );
        self.applied.runs += 1;
        // The run's one timer follows its state.
        let key = run_timer_key(&run.id);
        match &run.state {
            RunState::Ready => self.stage_timer(run_timer(key, run, now)),
            RunState::Waiting { until } | RunState::WaitingForEvent { until, .. } => {
                self.stage_timer(run_timer(key, run, *until));
            }
            RunState::Paused | RunState::Ended { .. } => {
                self.timers.insert(key, None);
            }
        }
    }

    fn stage_timer(&mut self, row: TimerRow) {
        self.applied.add(Applied {
            earliest_timer: Some(row.due_at),
            ..Applied::default()
        });
        self.timers.insert(row.key.clone(), Some(row));
    }

    fn stage_change(&mut self, state: &mut ContactState, change: &ContactChange, now: Millis) {
        let id = state.contact.id.clone();
        let contact = &mut state.contact;
        match change {
            ContactChange::TagAdded { tag } => {
                let at = *contact.tags.entry(tag.clone()).or_insert(now);
                self.tags.insert((id, tag.clone()), Some(at));
            }
            ContactChange::TagRemoved { tag } => {
                contact.tags.remove(tag);
                self.tags.insert((id, tag.clone()), None);
            }
            ContactChange::Score { score, value } => {
                contact.scores.insert(score.clone(), value.clone());
                self.scores
                    .insert((id, score.clone()), (value.clone(), now));
            }
            ContactChange::Segment {
                segment,
                member: true,
            } => {
                let at = *contact.segments.entry(segment.clone()).or_insert(now);
                self.segments.insert((id, segment.clone()), Some(at));
            }
            ContactChange::Segment {
                segment,
                member: false,
            } => {
                contact.segments.remove(segment);
                self.segments.insert((id, segment.clone()), None);
            }
            ContactChange::Attribute { field, value } => {
                contact.traits.insert(field.clone(), value.clone());
                self.stage_traits(state, now);
            }
        }
    }

    /// Stages the contact's traits as they are now in `state`.
    pub fn stage_traits(&mut self, state: &mut ContactState, now: Millis) {
        state.contact.time_zone = time_zone_of(&state.contact.traits);
        self.traits.insert(
            state.contact.id.clone(),
            (
                state.contact.traits.clone(),
                state.contact.time_zone.clone(),
                now,
            ),
        );
    }

    /// Stages a consent change, applies it to `state`, and records its outcome.
    pub fn stage_consent(
        &mut self,
        state: &mut ContactState,
        consent: &str,
        granted: bool,
        source: &str,
        now: Millis,
    ) {
        let id = state.contact.id.clone();
        state.contact.consents.insert(consent.to_string(), granted);
        self.consents.insert(
            (id.clone(), consent.to_string()),
            (granted, Some(source.to_string()), now),
        );
        self.outcomes.push(Outcome {
            at: now,
            contact_id: id,
            journey: None,
            run_id: None,
            step: None,
            kind: "consent".into(),
            detail: serde_json::json!({ "consent": consent, "granted": granted, "source": source }),
        });
        self.applied.outcomes += 1;
    }
}

fn run_timer(key: String, run: &Run, due_at: Millis) -> TimerRow {
    TimerRow {
        key,
        kind: "run",
        contact_id: run.contact_id.clone(),
        run_id: Some(run.id.clone()),
        detail: None,
        due_at,
    }
}

// The statements of a flush, SQLite then PostgreSQL. `WHERE true` keeps SQLite from
// reading `ON CONFLICT` as a join constraint of the `SELECT`.

const UPSERT_RUNS: (&str, &str) = (
    "INSERT INTO runs (run_id, contact_id, journey, plan_version, step, state, wait_event,
                       until_at, bindings, visits, entered_at, ended_at, end_reason, updated_at)
     SELECT value->>'run_id', value->>'contact_id', value->>'journey', value->>'plan_version',
            value->>'step', value->>'state', value->>'wait_event', value->>'until_at',
            value->'bindings', value->'visits', value->>'entered_at', value->>'ended_at',
            value->>'end_reason', value->>'updated_at'
     FROM jsonb_each($1) WHERE true
     ON CONFLICT (run_id) DO UPDATE SET
        plan_version = excluded.plan_version, step = excluded.step, state = excluded.state,
        wait_event = excluded.wait_event, until_at = excluded.until_at,
        bindings = excluded.bindings, visits = excluded.visits, ended_at = excluded.ended_at,
        end_reason = excluded.end_reason, updated_at = excluded.updated_at",
    "INSERT INTO runs (run_id, contact_id, journey, plan_version, step, state, wait_event,
                       until_at, bindings, visits, entered_at, ended_at, end_reason, updated_at)
     SELECT x.run_id, x.contact_id, x.journey, x.plan_version, x.step, x.state, x.wait_event,
            x.until_at, x.bindings, x.visits, x.entered_at, x.ended_at, x.end_reason,
            x.updated_at
     FROM jsonb_to_recordset($1) AS x(run_id text, contact_id text, journey text,
            plan_version bigint, step text, state text, wait_event text, until_at bigint,
            bindings jsonb, visits jsonb, entered_at bigint, ended_at bigint, end_reason text,
            updated_at bigint)
     ON CONFLICT (run_id) DO UPDATE SET
        plan_version = excluded.plan_version, step = excluded.step, state = excluded.state,
        wait_event = excluded.wait_event, until_at = excluded.until_at,
        bindings = excluded.bindings, visits = excluded.visits, ended_at = excluded.ended_at,
        end_reason = excluded.end_reason, updated_at = excluded.updated_at",
);

/// Moving a timer clears its lease: a worker holding it then fails its guarded delete
/// and rolls back, and the timer fires at its new time instead.
const UPSERT_TIMERS: (&str, &str) = (
    "INSERT INTO timers (key, kind, contact_id, run_id, detail, due_at)
     SELECT value->>'key', value->>'kind', value->>'contact_id', value->>'run_id',
            value->>'detail', value->>'due_at'
     FROM jsonb_each($1) WHERE true
     ON CONFLICT (key) DO UPDATE SET
        due_at = excluded.due_at, detail = excluded.detail,
        lease_owner = NULL, lease_expires_at = NULL",
    "INSERT INTO timers (key, kind, contact_id, run_id, detail, due_at)
     SELECT x.key, x.kind, x.contact_id, x.run_id, x.detail, x.due_at
     FROM jsonb_to_recordset($1) AS x(key text, kind text, contact_id text, run_id text,
            detail jsonb, due_at bigint)
     ON CONFLICT (key) DO UPDATE SET
        due_at = excluded.due_at, detail = excluded.detail,
        lease_owner = NULL, lease_expires_at = NULL",
);

const DELETE_TIMERS: (&str, &str) = (
    "DELETE FROM timers WHERE key IN (SELECT value FROM jsonb_each($1))",
    "DELETE FROM timers WHERE key IN (SELECT jsonb_array_elements_text($1))",
);

const INSERT_MESSAGES: (&str, &str) = (
    "INSERT INTO outbox (run_id, step, visit, contact_id, channel, template, marketing, address,
                         payload, next_attempt_at, created_at)
     SELECT value->>'run_id', value->>'step', value->>'visit', value->>'contact_id',
            value->>'channel', value->>'template', value->>'marketing', value->>'address',
            value->'payload', value->>'next_attempt_at', value->>'created_at'
     FROM jsonb_each($1) WHERE true
     ON CONFLICT (run_id, step, visit) DO NOTHING",
    "INSERT INTO outbox (run_id, step, visit, contact_id, channel, template, marketing, address,
                         payload, next_attempt_at, created_at)
     SELECT x.run_id, x.step, x.visit, x.contact_id, x.channel, x.template, x.marketing,
            x.address, x.payload, x.next_attempt_at, x.created_at
     FROM jsonb_to_recordset($1) AS x(run_id text, step text, visit bigint, contact_id text,
            channel text, template text, marketing boolean, address text, payload jsonb,
            next_attempt_at bigint, created_at bigint)
     ON CONFLICT (run_id, step, visit) DO NOTHING",
);

pub(crate) const INSERT_OUTCOMES: (&str, &str) = (
    "INSERT INTO outcomes (at, contact_id, journey, run_id, step, kind, detail)
     SELECT value->>'at', value->>'contact_id', value->>'journey', value->>'run_id',
            value->>'step', value->>'kind', value->'detail'
     FROM jsonb_each($1)",
    "INSERT INTO outcomes (at, contact_id, journey, run_id, step, kind, detail)
     SELECT x.at, x.contact_id, x.journey, x.run_id, x.step, x.kind, x.detail
     FROM jsonb_to_recordset($1) AS x(at bigint, contact_id text, journey text, run_id text,
            step text, kind text, detail jsonb)",
);

const UPSERT_TAGS: (&str, &str) = (
    "INSERT INTO tags (contact_id, tag, added_at)
     SELECT value->>'contact_id', value->>'name', value->>'at' FROM jsonb_each($1) WHERE true
     ON CONFLICT (contact_id, tag) DO NOTHING",
    "INSERT INTO tags (contact_id, tag, added_at)
     SELECT x.contact_id, x.name, x.at
     FROM jsonb_to_recordset($1) AS x(contact_id text, name text, at bigint)
     ON CONFLICT (contact_id, tag) DO NOTHING",
);

const DELETE_TAGS: (&str, &str) = (
    "DELETE FROM tags WHERE (contact_id, tag) IN
        (SELECT value->>'contact_id', value->>'name' FROM jsonb_each($1))",
    "DELETE FROM tags WHERE (contact_id, tag) IN
        (SELECT x.contact_id, x.name FROM jsonb_to_recordset($1) AS x(contact_id text, name text))",
);

const UPSERT_SCORES: (&str, &str) = (
    "INSERT INTO scores (contact_id, score, value, updated_at)
     SELECT value->>'contact_id', value->>'name', value->>'value', value->>'at'
     FROM jsonb_each($1) WHERE true
     ON CONFLICT (contact_id, score) DO UPDATE
     SET value = excluded.value, updated_at = excluded.updated_at",
    "INSERT INTO scores (contact_id, score, value, updated_at)
     SELECT x.contact_id, x.name, x.value, x.at
     FROM jsonb_to_recordset($1) AS x(contact_id text, name text, value text, at bigint)
     ON CONFLICT (contact_id, score) DO UPDATE
     SET value = excluded.value, updated_at = excluded.updated_at",
);

const UPSERT_SEGMENTS: (&str, &str) = (
    "INSERT INTO segment_members (contact_id, segment, entered_at)
     SELECT value->>'contact_id', value->>'name', value->>'at' FROM jsonb_each($1) WHERE true
     ON CONFLICT (contact_id, segment) DO NOTHING",
    "INSERT INTO segment_members (contact_id, segment, entered_at)
     SELECT x.contact_id, x.name, x.at
     FROM jsonb_to_recordset($1) AS x(contact_id text, name text, at bigint)
     ON CONFLICT (contact_id, segment) DO NOTHING",
);

const DELETE_SEGMENTS: (&str, &str) = (
    "DELETE FROM segment_members WHERE (contact_id, segment) IN
        (SELECT value->>'contact_id', value->>'name' FROM jsonb_each($1))",
    "DELETE FROM segment_members WHERE (contact_id, segment) IN
        (SELECT x.contact_id, x.name FROM jsonb_to_recordset($1) AS x(contact_id text, name text))",
);

pub(crate) const UPSERT_CONSENTS: (&str, &str) = (
    "INSERT INTO consents (contact_id, consent, granted, source, changed_at)
     SELECT value->>'contact_id', value->>'name', value->>'flag', value->>'value', value->>'at'
     FROM jsonb_each($1) WHERE true
     ON CONFLICT (contact_id, consent) DO UPDATE
     SET granted = excluded.granted, source = excluded.source, changed_at = excluded.changed_at",
    "INSERT INTO consents (contact_id, consent, granted, source, changed_at)
     SELECT x.contact_id, x.name, x.flag, x.value, x.at
     FROM jsonb_to_recordset($1) AS x(contact_id text, name text, flag boolean, value text,
            at bigint)
     ON CONFLICT (contact_id, consent) DO UPDATE
     SET granted = excluded.granted, source = excluded.source, changed_at = excluded.changed_at",
);

pub(crate) const UPDATE_TRAITS: (&str, &str) = (
    "UPDATE contacts SET traits = t.traits, time_zone = t.time_zone, updated_at = t.updated_at
     FROM (SELECT value->>'contact_id' AS contact_id, value->'traits' AS traits,
                  value->>'time_zone' AS time_zone, value->>'updated_at' AS updated_at
           FROM jsonb_each($1)) AS t
     WHERE contacts.contact_id = t.contact_id",
    "UPDATE contacts SET traits = t.traits, time_zone = t.time_zone, updated_at = t.updated_at
     FROM jsonb_to_recordset($1) AS t(contact_id text, traits jsonb, time_zone text,
            updated_at bigint)
     WHERE contacts.contact_id = t.contact_id",
);

impl Tx {
    /// The statement of `pair` for this transaction's backend.
    pub(crate) fn pick(&self, pair: (&'static str, &'static str)) -> &'static str {
        match self.backend() {
            Backend::Sqlite => pair.0,
            Backend::Postgres => pair.1,
        }
    }

    /// Runs `pair` with `rows` as its one JSON parameter (on SQLite, each row as an
    /// array read by position: see [`super::positional`]); returns the rows affected.
    pub(crate) async fn bulk<T: Serialize>(
        &mut self,
        pair: (&'static str, &'static str),
        rows: &T,
    ) -> Result<u64> {
        if let Tx::Sqlite(c) = self
            && let Some(p) = super::positional::positional(pair.0, rows)
        {
            return Ok(sqlx::query(sqlx::AssertSqlSafe(p.sql))
                .bind(p.rows)
                .execute(&mut **c)
                .await?
                .rows_affected());
        }
        let sql = self.pick(pair);
        Ok(on_tx!(self, c => sqlx::query(sql)
            .bind(json(rows))
            .execute(&mut *c)
            .await?
            .rows_affected()))
    }

    /// Writes everything `writes` staged. Returns what was written.
    pub async fn flush(&mut self, writes: WriteSet) -> Result<Applied> {
        let mut applied = writes.applied;
        if !writes.traits.is_empty() {
            let rows: Vec<TraitsRow<'_>> = writes
                .traits
                .iter()
                .map(|(id, (traits, time_zone, at))| TraitsRow {
                    contact_id: id,
                    traits,
                    time_zone: time_zone.as_deref(),
                    updated_at: *at,
                })
                .collect();
            self.bulk(UPDATE_TRAITS, &rows).await?;
        }
        for (contact_id, field, value, at) in &writes.foreign_attributes {
            self.set_attribute(contact_id, field, value, *at).await?;
        }
        if !writes.consents.is_empty() {
            let rows: Vec<PairRow<'_>> = writes
                .consents
                .iter()
                .map(|((contact, name), (granted, source, at))| PairRow {
                    contact_id: contact,
                    name,
                    value: source.as_deref(),
                    flag: *granted,
                    at: *at,
                })
                .collect();
            self.bulk(UPSERT_CONSENTS, &rows).await?;
        }
        if !writes.runs.is_empty() {
            let rows: Vec<&RunRow> = writes.runs.values().collect();
            self.bulk(UPSERT_RUNS, &rows).await?;
        }
        let (upserts, deletes): (Vec<_>, Vec<_>) =
            writes.timers.iter().partition(|(_, row)| row.is_some());
        if !deletes.is_empty() {
            let keys: Vec<&String> = deletes.iter().map(|(key, _)| *key).collect();
            self.bulk(DELETE_TIMERS, &keys).await?;
        }
        if !upserts.is_empty() {
            let rows: Vec<&TimerRow> = upserts.iter().filter_map(|(_, row)| row.as_ref()).collect();
            self.bulk(UPSERT_TIMERS, &rows).await?;
        }
        if !writes.messages.is_empty() {
            applied.messages = self.bulk(INSERT_MESSAGES, &writes.messages).await?;
        }
        if !writes.outcomes.is_empty() {
            let rows: Vec<OutcomeRow<'_>> = writes
                .outcomes
                .iter()
                .map(|o| OutcomeRow {
                    at: o.at,
                    contact_id: &o.contact_id,
                    journey: o.journey.as_deref(),
                    run_id: o.run_id.as_deref(),
                    step: o.step.as_deref(),
                    kind: &o.kind,
                    detail: &o.detail,
                })
                .collect();
            self.bulk(INSERT_OUTCOMES, &rows).await?;
        }
        self.flush_pairs(&writes.tags, UPSERT_TAGS, DELETE_TAGS)
            .await?;
        self.flush_pairs(&writes.segments, UPSERT_SEGMENTS, DELETE_SEGMENTS)
            .await?;
        if !writes.scores.is_empty() {
            let rows: Vec<PairRow<'_>> = writes
                .scores
                .iter()
                .map(|((contact, name), (value, at))| PairRow {
                    contact_id: contact,
                    name,
                    value: Some(value),
                    flag: false,
                    at: *at,
                })
                .collect();
            self.bulk(UPSERT_SCORES, &rows).await?;
        }
        Ok(applied)
    }

    async fn flush_pairs(
        &mut self,
        pairs: &BTreeMap<(String, String), Option<Millis>>,
        upsert: (&'static str, &'static str),
        delete: (&'static str, &'static str),
    ) -> Result<()> {
        fn row(key: &(String, String), at: Millis) -> PairRow<'_> {
            PairRow {
                contact_id: &key.0,
                name: &key.1,
                value: None,
                flag: false,
                at,
            }
        }
        let added: Vec<PairRow<'_>> = pairs
            .iter()
            .filter_map(|(key, at)| at.map(|at| row(key, at)))
            .collect();
        let removed: Vec<PairRow<'_>> = pairs
            .iter()
            .filter(|(_, at)| at.is_none())
            .map(|(key, _)| row(key, 0))
            .collect();
        if !removed.is_empty() {
            self.bulk(delete, &removed).await?;
        }
        if !added.is_empty() {
            self.bulk(upsert, &added).await?;
        }
        Ok(())
    }

    /// Sets one trait of a contact the transaction has not loaded.
    async fn set_attribute(
        &mut self,
        contact_id: &str,
        field: &str,
        value: &Json,
        at: Millis,
    ) -> Result<()> {
        let Some(mut contact) = self.load_contact(contact_id).await? else {
            return Ok(());
        };
        contact.traits.insert(field.to_string(), value.clone());
        contact.time_zone = time_zone_of(&contact.traits);
        self.save_traits(&contact, at).await
    }

    /// Stages and flushes one decision: [`WriteSet::stage`] then [`Tx::flush`].
    pub async fn apply_effects(
        &mut self,
        state: &mut ContactState,
        effects: &Effects,
        plan: &Plan,
        now: Millis,
    ) -> Result<Applied> {
        let mut writes = WriteSet::default();
        writes.stage(state, effects, plan, now);
        self.flush(writes).await
    }
}

/// The contact's time zone: its `timezone` trait.
pub fn time_zone_of(traits: &BTreeMap<String, Json>) -> Option<String> {
    traits
        .get("timezone")
        .and_then(Json::as_str)
        .filter(|z| !z.is_empty())
        .map(str::to_string)
}

/// Whether frequency caps count the message: a send of a template not declared
/// transactional. Webhooks are not messages to the contact.
pub fn is_marketing(plan: &Plan, message: &OutboxMessage) -> bool {
    message
        .template
        .as_ref()
        .and_then(|t| plan.templates.get(t))
        .is_some_and(|t| !t.transactional)
}

/// Each journey's entries (count and latest), from the contact's runs.
pub fn entries(runs: &[Run]) -> BTreeMap<String, Entries> {
    let mut entries: BTreeMap<String, Entries> = BTreeMap::new();
    for run in runs {
        let e = entries.entry(run.journey.clone()).or_default();
        e.count += 1;
        e.last = e.last.max(run.entered_at);
    }
    entries
}

/// Contacts by id, as a transaction loaded them. Boxed: a state moves between the
/// daemon's cache and a transaction by pointer, not by copying the whole struct.
pub type States = HashMap<String, Box<ContactState>>;
