//! Pausing and resuming a journey on a running daemon: an emergency stop that holds
//! every run of the journey where it is (docs/semantics.md, "Pause and resume").
//!
//! While a journey is paused its run timers are not taken (the store leaves them out of
//! the due ones), the engine starts no run of it and moves none on an event (goals and
//! exits still end runs), and the dispatcher skips its queued messages. Resuming
//! deletes the pause and, in the same transaction, hands each held `wait for` the
//! events it waited for that came during the pause; the held timers are then due.

use super::{Core, LoadedPlan, StateCache, Work};
use crate::model::{Millis, Run, RunState};
use crate::store::outbox::ClaimedMessage;
use crate::store::timers::{ClaimedTimer, TimerWork};
use crate::store::{Result, StoreError, Tx};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

/// What `POST /admin/journeys/{name}/pause` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseReport {
    pub journey: String,
    /// `false` when the journey was already paused: nothing changed.
    pub changed: bool,
    /// Since when the journey is paused.
    pub paused_at: Millis,
    /// Runs in flight the pause holds.
    pub runs_held: i64,
}

/// What `POST /admin/journeys/{name}/resume` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeReport {
    pub journey: String,
    /// `false` when the journey was not paused: nothing changed.
    pub changed: bool,
    /// When the pause that ended began.
    pub paused_at: Option<Millis>,
    /// Runs in flight that continue.
    pub runs_resumed: i64,
    /// Held timers that came due during the pause and run now, late.
    pub timers_due: i64,
    /// Held `wait for`s whose event came during the pause, moved on by it now.
    pub waits_met: i64,
}

/// The journeys paused now, read inside `tx` (which, on PostgreSQL, keeps a resume
/// waiting until it ends).
pub(super) async fn journeys(tx: &mut Tx) -> Result<HashSet<String>> {
    Ok(tx.paused_journeys().await?.into_keys().collect())
}

/// `timers` without the run timers of `paused` journeys: claimed just before the pause
/// committed, they are not run (nor deleted) now; their lease runs out and they are
/// taken again once the journey resumes.
pub(super) fn not_held<'t>(
    timers: &'t [ClaimedTimer],
    paused: &HashSet<String>,
) -> Cow<'t, [ClaimedTimer]> {
    if paused.is_empty() {
        return Cow::Borrowed(timers);
    }
    let held = |t: &ClaimedTimer| match &t.work {
        TimerWork::Run { run_id } => run_id
            .split_once('/')
            .is_some_and(|(journey, _)| paused.contains(journey)),
        TimerWork::Wakeup { .. } => false,
    };
    Cow::Owned(timers.iter().filter(|t| !held(t)).cloned().collect())
}

impl Core {
    /// Pauses `journey` (a name the caller checked). Pausing a paused journey changes
    /// nothing and says so.
    pub async fn pause_journey(&self, journey: &str) -> Result<PauseReport> {
        let report = crate::store::retrying("pausing a journey", || async {
            let mut tx = self.store.begin().await?;
            let (paused_at, changed) = tx.pause_journey(journey, self.now()).await?;
            let runs_held = tx.runs_in_flight_of(journey).await?;
            tx.commit().await?;
            Ok(PauseReport {
                journey: journey.to_string(),
                changed,
                paused_at,
                runs_held,
            })
        })
        .await?;
        if report.changed {
            tracing::warn!(journey, runs_held = report.runs_held, "journey paused");
        }
        Ok(report)
    }

    /// Resumes `journey`: its held runs continue where they were, each `wait for`
    /// seeing the events that came during the pause, and its held timers are due
    /// (late). Resuming a journey that is not paused changes nothing and says so.
    pub async fn resume_journey(&self, journey: &str) -> Result<ResumeReport> {
        let Some(active) = self.active_plan() else {
            return Err(StoreError::Conflict("no plan is deployed".into()));
        };
        let report = self
            .transaction("resuming a journey", || self.resume_once(journey, &active))
            .await?;
        if report.changed {
            tracing::warn!(
                journey,
                runs = report.runs_resumed,
                waits_met = report.waits_met,
                "journey resumed"
            );
            self.timers_changed.notify_one();
        }
        Ok(report)
    }

    async fn resume_once(
        &self,
        journey: &str,
        active: &Arc<LoadedPlan>,
    ) -> Result<(ResumeReport, crate::store::effects::Applied)> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut report = ResumeReport {
            journey: journey.to_string(),
            changed: false,
            paused_at: None,
            runs_resumed: 0,
            timers_due: 0,
            waits_met: 0,
        };
        let Some(since) = tx.unpause_journey(journey).await? else {
            tx.rollback().await?;
            return Ok((report, Default::default()));
        };
        report.changed = true;
        report.paused_at = Some(since);
        let met = tx.waits_met_while_paused(journey, since).await?;
        let mut ids: Vec<String> = met.iter().map(|(contact, _)| contact.clone()).collect();
        ids.dedup();
        let generation = self.cache.as_ref().map(StateCache::generation);
        let (states, _) = self.load(&mut tx, &ids, &[], now).await?;
        let mut work = Work::new(self, active.clone(), now, states);
        work.paused = journeys(&mut tx).await?;
        for (contact, event_id) in &met {
            report.waits_met += work.replay(contact, journey, *event_id).await?;
        }
        let applied = tx.flush(work.writes).await?;
        report.runs_resumed = tx.runs_in_flight_of(journey).await?;
        report.timers_due = tx.run_timers_due(journey, now).await?;
        tx.commit().await?;
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.put(generation, work.contacts);
        }
        Ok((report, applied))
    }
}

impl Work<'_> {
    /// Hands the stored event `event_id` of `contact` to each run of `journey` that
    /// still waits for it at a `wait for` whose deadline is after it, as if it had
    /// just arrived; returns how many runs it moved.
    async fn replay(&mut self, contact: &str, journey: &str, event_id: i64) -> Result<i64> {
        let Some(state) = self.contacts.get(contact) else {
            return Ok(0);
        };
        let Some(at) = state.history.iter().position(|e| e.id == event_id) else {
            return Ok(0);
        };
        let event = &state.history[at];
        let waiting: Vec<Run> = state
            .runs
            .iter()
            .filter(|r| r.journey == journey && r.step.is_some())
            .filter(|r| {
                matches!(&r.state, RunState::WaitingForEvent { event: waited, until }
                    if *waited == event.name && event.occurred_at < *until)
            })
            .cloned()
            .collect();
        let mut moved = 0;
        for run in waiting {
            let loaded = if run.plan_version == self.active.version {
                self.active.clone()
            } else {
                self.core.plan_of(run.plan_version).await?
            };
            // The run's own version, not as the active one: the event moves the run,
            // and starts, scores and segments nothing a second time.
            self.decide(contact, &loaded, false, |engine, state, now| {
                engine.on_event(
                    &state.contact,
                    &state.history,
                    &state.history[at],
                    std::iter::once(&run),
                    now,
                )
            });
            moved += 1;
        }
        Ok(moved)
    }
}

/// The messages of `claimed` that may go out now. Those of paused journeys are skipped:
/// recorded `failed` (`error_kind` `paused`) with a `skip` outcome, reason `paused`.
pub async fn hold_back_paused(core: &Core, claimed: Vec<ClaimedMessage>) -> Vec<ClaimedMessage> {
    let paused = match core.store.paused_messages(&claimed).await {
        Ok(paused) if paused.is_empty() => return claimed,
        Ok(paused) => paused,
        // Not knowing is not a reason to send: the leases expire and the messages are
        // looked at again.
        Err(e) => {
            tracing::warn!(error = %e, "could not check for paused journeys; the messages wait");
            return Vec::new();
        }
    };
    let mut sendable = Vec::with_capacity(claimed.len());
    for message in claimed {
        if !paused.contains(&message.id) {
            sendable.push(message);
            continue;
        }
        tracing::info!(key = %message.idempotency_key(), "message skipped: its journey is paused");
        match core
            .store
            .mark_paused(&message, &core.worker_id, core.now())
            .await
        {
            Ok(()) => core.metrics.record_send(&message.channel, "paused"),
            Err(e) => {
                tracing::warn!(key = %message.idempotency_key(), error = %e, "could not record a message skipped by a pause");
            }
        }
    }
    sendable
}
