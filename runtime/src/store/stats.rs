//! The counts `cairn stats` reports: per journey and step, how many runs reached each
//! point of the funnel, and how many contacts are active.
//!
//! Every count is of runs (a run is one contact's pass through a journey), read from
//! columns erasure keeps (see [`super::rights`]): runs' journey, step, visits and end;
//! outbox rows' run, step and state; open and click events' run and step. So the
//! numbers stay the same after a contact is erased.

use super::{Result, Store, Tx, on_tx};
use crate::model::Millis;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::BTreeMap;

/// Runs that reached each point of the funnel at one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTally {
    /// Runs that visited the step.
    pub reached: i64,
    /// Runs the step queued a message for (to the outbox).
    pub sent: i64,
    /// Runs whose message from the step was handed over and not reported undelivered.
    pub delivered: i64,
    /// Runs whose message from the step was opened (a click counts as an open).
    pub opened: i64,
    pub clicked: i64,
    /// Runs that reached the goal while at the step.
    pub goal: i64,
    /// Runs that ended at the step for another reason.
    pub exited: i64,
    /// Runs at the step now.
    pub in_flight: i64,
}

/// One journey's runs: the whole funnel and each step's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyTally {
    pub journey: String,
    /// Runs started.
    pub entered: i64,
    /// Runs with at least one message queued, delivered, opened, clicked.
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub in_flight: i64,
    /// Ended runs by reason (`goal`, `completed`, `exit_condition`, `timeout`, `erased`).
    pub ended: BTreeMap<String, i64>,
    pub steps: BTreeMap<String, StepTally>,
}

/// Contacts by activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactActivity {
    /// Contacts not erased.
    pub contacts: i64,
    /// Of those, contacts with an event at or after the activity cut-off.
    pub active: i64,
    pub inactive: i64,
    pub erased: i64,
}

/// Events that mean a message was opened, and clicked: as `opened(step)` and
/// `clicked(step)` read them.
const OPENED: &str = "'email_opened', 'push_opened', 'email_clicked'";
const CLICKED: &str = "'email_clicked', 'sms_clicked'";

/// Provider reports that a message handed over never arrived.
const UNDELIVERED: &str = "'undelivered', 'failed', 'bounced', 'rejected'";

fn runs_by_step() -> &'static str {
    "SELECT journey, step, state, end_reason, COUNT(*) AS n FROM runs
     WHERE ($1 = '' OR journey = $1)
     GROUP BY journey, step, state, end_reason"
}

const VISITS: (&str, &str) = (
    "SELECT r.journey, v.key AS step, COUNT(*) AS n FROM runs r, json_each(r.visits) v
     WHERE ($1 = '' OR r.journey = $1) GROUP BY r.journey, v.key",
    "SELECT r.journey, v.key AS step, COUNT(*) AS n FROM runs r, jsonb_each(r.visits) v
     WHERE ($1 = '' OR r.journey = $1) GROUP BY r.journey, v.key",
);

/// Messages by journey (and step when `by_step`), in runs.
fn messages(by_step: bool) -> String {
    let (step, group) = if by_step {
        ("o.step", "r.journey, o.step")
    } else {
        ("''", "r.journey")
    };
    format!(
        "SELECT r.journey, {step} AS step, COUNT(DISTINCT o.run_id) AS sent,
                COUNT(DISTINCT CASE WHEN o.state = 'sent'
                     AND (o.delivery_status IS NULL OR o.delivery_status NOT IN ({UNDELIVERED}))
                     THEN o.run_id END) AS delivered
         FROM outbox o JOIN runs r ON r.run_id = o.run_id
         WHERE o.channel <> 'webhook' AND ($1 = '' OR r.journey = $1)
         GROUP BY {group}"
    )
}

/// Opens and clicks by journey (and step when `by_step`), in runs.
fn engagement(by_step: bool) -> String {
    let (step, group) = if by_step {
        ("e.payload->>'step'", "r.journey, e.payload->>'step'")
    } else {
        ("''", "r.journey")
    };
    format!(
        "SELECT r.journey, {step} AS step,
                COUNT(DISTINCT CASE WHEN e.name IN ({OPENED}) THEN r.run_id END) AS opened,
                COUNT(DISTINCT CASE WHEN e.name IN ({CLICKED}) THEN r.run_id END) AS clicked
         FROM events e JOIN runs r ON r.run_id = e.payload->>'run'
         WHERE e.name IN ({OPENED}, {CLICKED}) AND ($1 = '' OR r.journey = $1)
         GROUP BY {group}"
    )
}

impl Store {
    /// The funnel of `journey`, or of every journey with runs when `None`; read in one
    /// snapshot so the counts agree with each other.
    pub async fn journey_tallies(&self, journey: Option<&str>) -> Result<Vec<JourneyTally>> {
        let mut tx = self.begin_read().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut **t)
                .await?;
        }
        let tallies = tx.journey_tallies(journey.unwrap_or_default()).await;
        tx.rollback().await?;
        tallies
    }

    /// Contacts with an event at or after `active_since`, and those without.
    pub async fn contact_activity(&self, active_since: Millis) -> Result<ContactActivity> {
        let mut tx = self.begin_read().await?;
        let activity = on_tx!(&mut tx, c => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS contacts,
                        COALESCE(SUM(CASE WHEN erased THEN 1 ELSE 0 END), 0) AS erased,
                        COALESCE(SUM(CASE WHEN NOT erased AND c.contact_id IN (
                            SELECT e.contact_id FROM contact_events e WHERE e.occurred_at >= $1
                        ) THEN 1 ELSE 0 END), 0) AS active
                 FROM contacts c",
            )
            .bind(active_since)
            .fetch_one(&mut *c)
            .await?;
            let all: i64 = row.try_get("contacts")?;
            let erased: i64 = row.try_get("erased")?;
            let active: i64 = row.try_get("active")?;
            ContactActivity {
                contacts: all - erased,
                active,
                inactive: all - erased - active,
                erased,
            }
        });
        tx.rollback().await?;
        Ok(activity)
    }
}

impl Tx {
    async fn journey_tallies(&mut self, journey: &str) -> Result<Vec<JourneyTally>> {
        let visits = self.pick(VISITS);
        let mut tallies: BTreeMap<String, JourneyTally> = BTreeMap::new();
        on_tx!(self, c => {
            for row in sqlx::query(runs_by_step()).bind(journey).fetch_all(&mut *c).await? {
                let name: String = row.try_get("journey")?;
                let step: Option<String> = row.try_get("step")?;
                let state: String = row.try_get("state")?;
                let reason: Option<String> = row.try_get("end_reason")?;
                let n: i64 = row.try_get("n")?;
                let t = tally(&mut tallies, &name);
                t.entered += n;
                if state == "ended" {
                    let reason = reason.unwrap_or_default();
                    *t.ended.entry(reason.clone()).or_default() += n;
                    if let Some(step) = step {
                        let s = t.steps.entry(step).or_default();
                        if reason == "goal" {
                            s.goal += n;
                        } else {
                            s.exited += n;
                        }
                    }
                } else {
                    t.in_flight += n;
                    if let Some(step) = step {
                        t.steps.entry(step).or_default().in_flight += n;
                    }
                }
            }
            for row in sqlx::query(visits).bind(journey).fetch_all(&mut *c).await? {
                let name: String = row.try_get("journey")?;
                let step: String = row.try_get("step")?;
                tally(&mut tallies, &name).steps.entry(step).or_default().reached = row.try_get("n")?;
            }
            for by_step in [false, true] {
                let sql = messages(by_step);
                for row in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(journey).fetch_all(&mut *c).await? {
                    let name: String = row.try_get("journey")?;
                    let sent: i64 = row.try_get("sent")?;
                    let delivered: i64 = row.try_get("delivered")?;
                    let t = tally(&mut tallies, &name);
                    if by_step {
                        let s = t.steps.entry(row.try_get("step")?).or_default();
                        s.sent = sent;
                        s.delivered = delivered;
                    } else {
                        t.sent = sent;
                        t.delivered = delivered;
                    }
                }
                let sql = engagement(by_step);
                for row in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(journey).fetch_all(&mut *c).await? {
                    let name: String = row.try_get("journey")?;
                    let step: Option<String> = row.try_get("step")?;
                    let opened: i64 = row.try_get("opened")?;
                    let clicked: i64 = row.try_get("clicked")?;
                    let t = tally(&mut tallies, &name);
                    if by_step {
                        // An open of a message no step sent names no step: it counts
                        // for the journey only.
                        if let Some(step) = step {
                            let s = t.steps.entry(step).or_default();
                            s.opened = opened;
                            s.clicked = clicked;
                        }
                    } else {
                        t.opened = opened;
                        t.clicked = clicked;
                    }
                }
            }
        });
        Ok(tallies.into_values().collect())
    }
}

fn tally<'a>(tallies: &'a mut BTreeMap<String, JourneyTally>, name: &str) -> &'a mut JourneyTally {
    tallies
        .entry(name.to_string())
        .or_insert_with(|| JourneyTally {
            journey: name.to_string(),
            ..JourneyTally::default()
        })
}
