//! Applying what the engine decided: runs, their timers, outcomes, outbox messages,
//! contact changes and wakeups, all inside the caller's transaction, and the same
//! changes to the in-memory [`ContactState`] so the next decision of the batch sees them.

use super::contacts::{ContactState, state_columns};
use super::{Result, Tx, json, on_tx};
use crate::model::{
    ContactChange, Effects, Entries, Millis, OutboxMessage, Run, RunState, SentMessage, Wakeup,
    WakeupReason,
};
use cairn_plan::Plan;
use serde_json::Value as Json;
use sqlx::Row;
use std::collections::BTreeMap;

/// What applying one decision wrote, for metrics and for waking the workers early.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The earliest timer this decision scheduled.
    pub earliest_timer: Option<Millis>,
    /// Outbox rows inserted (a replay of the same idempotency key inserts none).
    pub messages: u64,
    pub outcomes: u64,
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
    wakeup.key()
}

impl Tx {
    /// Applies `effects` for the contact of `state` at `now`, in this transaction.
    /// `plan` says which templates are marketing (frequency caps count those).
    pub async fn apply_effects(
        &mut self,
        state: &mut ContactState,
        effects: &Effects,
        plan: &Plan,
        now: Millis,
    ) -> Result<Applied> {
        let mut applied = Applied::default();
        for run in &effects.runs {
            self.upsert_run(run, now).await?;
            if let Some(due) = self.schedule_run(run, now).await? {
                applied.add(Applied {
                    earliest_timer: Some(due),
                    ..Applied::default()
                });
            }
            applied.runs += 1;
            match state.runs.iter_mut().find(|r| r.id == run.id) {
                Some(existing) => *existing = run.clone(),
                None => state.runs.push(run.clone()),
            }
        }
        if !effects.runs.is_empty() {
            state.contact.entries = entries(&state.runs);
        }
        for outcome in &effects.outcomes {
            on_tx!(self, c => sqlx::query(
                "INSERT INTO outcomes (at, contact_id, journey, run_id, step, kind, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(outcome.at)
            .bind(&outcome.contact_id)
            .bind(outcome.journey.as_deref())
            .bind(outcome.run_id.as_deref())
            .bind(outcome.step.as_deref())
            .bind(&outcome.kind)
            .bind(json(&outcome.detail))
            .execute(&mut *c)
            .await?.rows_affected());
            applied.outcomes += 1;
        }
        for message in &effects.messages {
            let marketing = is_marketing(plan, message);
            let contact_id = state.contact.id.clone();
            if self
                .insert_message(&contact_id, message, marketing, now)
                .await?
            {
                applied.messages += 1;
                state.contact.sends.push(SentMessage {
                    at: now,
                    channel: message.channel.clone(),
                    marketing,
                });
            }
        }
        for (contact_id, change) in &effects.contact_changes {
            self.apply_change(contact_id, change, now).await?;
            if *contact_id == state.contact.id {
                change_in_memory(state, change, now);
            }
        }
        if effects
            .contact_changes
            .iter()
            .any(|(id, c)| *id == state.contact.id && matches!(c, ContactChange::Attribute { .. }))
        {
            let contact = state.contact.clone();
            self.save_traits(&contact, now).await?;
        }
        for wakeup in &effects.wakeups {
            self.upsert_timer(
                &wakeup_timer_key(wakeup),
                "wakeup",
                &wakeup.contact_id,
                None,
                Some(&wakeup.reason),
                wakeup.at,
            )
            .await?;
            applied.add(Applied {
                earliest_timer: Some(wakeup.at),
                ..Applied::default()
            });
        }
        Ok(applied)
    }

    async fn upsert_run(&mut self, run: &Run, now: Millis) -> Result<()> {
        let (state, wait_event, until, ended_at, end_reason) = state_columns(&run.state);
        on_tx!(self, c => sqlx::query(
            "INSERT INTO runs (run_id, contact_id, journey, plan_version, step, state, wait_event,
                               until_at, bindings, visits, entered_at, ended_at, end_reason,
                               updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (run_id) DO UPDATE SET
                plan_version = excluded.plan_version, step = excluded.step,
                state = excluded.state, wait_event = excluded.wait_event,
                until_at = excluded.until_at, bindings = excluded.bindings,
                visits = excluded.visits, ended_at = excluded.ended_at,
                end_reason = excluded.end_reason, updated_at = excluded.updated_at",
        )
        .bind(&run.id)
        .bind(&run.contact_id)
        .bind(&run.journey)
        .bind(run.plan_version)
        .bind(run.step.as_deref())
        .bind(state)
        .bind(wait_event)
        .bind(until)
        .bind(json(&run.bindings))
        .bind(json(&run.visits))
        .bind(run.entered_at)
        .bind(ended_at)
        .bind(end_reason)
        .bind(now)
        .execute(&mut *c)
        .await?.rows_affected());
        Ok(())
    }

    /// Keeps the run's one timer in step with its state; returns when it is due.
    async fn schedule_run(&mut self, run: &Run, now: Millis) -> Result<Option<Millis>> {
        let key = run_timer_key(&run.id);
        let due = match &run.state {
            RunState::Ready => Some(now),
            RunState::Waiting { until } | RunState::WaitingForEvent { until, .. } => Some(*until),
            RunState::Paused | RunState::Ended { .. } => None,
        };
        match due {
            Some(due) => {
                self.upsert_timer(&key, "run", &run.contact_id, Some(&run.id), None, due)
                    .await?;
            }
            None => {
                on_tx!(self, c => sqlx::query("DELETE FROM timers WHERE key = $1")
                    .bind(&key)
                    .execute(&mut *c)
                    .await?.rows_affected());
            }
        }
        Ok(due)
    }

    /// Schedules the work named `key` at `due`, moving it when it exists. Moving a timer
    /// clears its lease: the worker holding it then fails its guarded delete and rolls
    /// back, and the timer fires at its new time instead.
    async fn upsert_timer(
        &mut self,
        key: &str,
        kind: &str,
        contact_id: &str,
        run_id: Option<&str>,
        detail: Option<&WakeupReason>,
        due: Millis,
    ) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "INSERT INTO timers (key, kind, contact_id, run_id, detail, due_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (key) DO UPDATE SET
                due_at = excluded.due_at, detail = excluded.detail,
                lease_owner = NULL, lease_expires_at = NULL",
        )
        .bind(key)
        .bind(kind)
        .bind(contact_id)
        .bind(run_id)
        .bind(detail.map(json))
        .bind(due)
        .execute(&mut *c)
        .await?.rows_affected());
        Ok(())
    }

    /// Queues a message once per idempotency key (run, step, visit); returns whether
    /// this call inserted it.
    async fn insert_message(
        &mut self,
        contact_id: &str,
        message: &OutboxMessage,
        marketing: bool,
        now: Millis,
    ) -> Result<bool> {
        let inserted = on_tx!(self, c => sqlx::query(
            "INSERT INTO outbox (run_id, step, visit, contact_id, channel, template, marketing,
                                 address, payload, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (run_id, step, visit) DO NOTHING",
        )
        .bind(&message.run_id)
        .bind(&message.step)
        .bind(i64::from(message.visit))
        .bind(contact_id)
        .bind(&message.channel)
        .bind(message.template.as_deref())
        .bind(marketing)
        .bind(&message.address)
        .bind(json(&message.payload))
        .bind(message.not_before)
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(inserted > 0)
    }

    async fn apply_change(
        &mut self,
        contact_id: &str,
        change: &ContactChange,
        now: Millis,
    ) -> Result<()> {
        match change {
            ContactChange::TagAdded { tag } => on_tx!(self, c => sqlx::query(
                "INSERT INTO tags (contact_id, tag, added_at) VALUES ($1, $2, $3)
                 ON CONFLICT (contact_id, tag) DO NOTHING",
            )
            .bind(contact_id)
            .bind(tag)
            .bind(now)
            .execute(&mut *c)
            .await?.rows_affected()),
            ContactChange::TagRemoved { tag } => on_tx!(self, c => sqlx::query(
                "DELETE FROM tags WHERE contact_id = $1 AND tag = $2",
            )
            .bind(contact_id)
            .bind(tag)
            .execute(&mut *c)
            .await?.rows_affected()),
            ContactChange::Score { score, value } => on_tx!(self, c => sqlx::query(
                "INSERT INTO scores (contact_id, score, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (contact_id, score) DO UPDATE
                 SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(contact_id)
            .bind(score)
            .bind(value)
            .bind(now)
            .execute(&mut *c)
            .await?.rows_affected()),
            ContactChange::Segment {
                segment,
                member: true,
            } => on_tx!(self, c => sqlx::query(
                "INSERT INTO segment_members (contact_id, segment, entered_at) VALUES ($1, $2, $3)
                 ON CONFLICT (contact_id, segment) DO NOTHING",
            )
            .bind(contact_id)
            .bind(segment)
            .bind(now)
            .execute(&mut *c)
            .await?.rows_affected()),
            ContactChange::Segment {
                segment,
                member: false,
            } => on_tx!(self, c => sqlx::query(
                "DELETE FROM segment_members WHERE contact_id = $1 AND segment = $2",
            )
            .bind(contact_id)
            .bind(segment)
            .execute(&mut *c)
            .await?.rows_affected()),
            ContactChange::Attribute { field, value } => {
                // The contact of the decision is written whole afterwards; another
                // contact is read, changed and written here.
                let current = on_tx!(self, c => {
                    let row = sqlx::query("SELECT traits FROM contacts WHERE contact_id = $1")
                        .bind(contact_id)
                        .fetch_optional(&mut *c)
                        .await?;
                    row.map(|r| r.try_get::<sqlx::types::Json<BTreeMap<String, Json>>, _>("traits"))
                        .transpose()?
                });
                let Some(mut traits) = current.map(|t| t.0) else {
                    return Ok(());
                };
                traits.insert(field.clone(), value.clone());
                let time_zone = time_zone_of(&traits);
                on_tx!(self, c => sqlx::query(
                    "UPDATE contacts SET traits = $2, time_zone = $3, updated_at = $4
                     WHERE contact_id = $1",
                )
                .bind(contact_id)
                .bind(json(&traits))
                .bind(time_zone)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected())
            }
        };
        Ok(())
    }
}

fn change_in_memory(state: &mut ContactState, change: &ContactChange, now: Millis) {
    let contact = &mut state.contact;
    match change {
        ContactChange::TagAdded { tag } => {
            contact.tags.entry(tag.clone()).or_insert(now);
        }
        ContactChange::TagRemoved { tag } => {
            contact.tags.remove(tag);
        }
        ContactChange::Score { score, value } => {
            contact.scores.insert(score.clone(), value.clone());
        }
        ContactChange::Attribute { field, value } => {
            contact.traits.insert(field.clone(), value.clone());
            contact.time_zone = time_zone_of(&contact.traits);
        }
        ContactChange::Segment {
            segment,
            member: true,
        } => {
            contact.segments.entry(segment.clone()).or_insert(now);
        }
        ContactChange::Segment {
            segment,
            member: false,
        } => {
            contact.segments.remove(segment);
        }
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
