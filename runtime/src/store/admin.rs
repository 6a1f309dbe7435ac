//! What the admin API reads: settings, counts of runs by step, a contact's trace.

use super::{Result, Store, on_read};
use crate::model::{EventRecord, Millis, Outcome, Run};
use serde::Serialize;
use serde_json::Value as Json;
use sqlx::Row;
use std::sync::Arc;

/// Runs of one journey at one step, in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepCount {
    pub journey: String,
    pub plan_version: i64,
    pub step: Option<String>,
    pub state: String,
    pub runs: i64,
}

/// Ended runs of one journey, by reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndCount {
    pub journey: String,
    pub reason: String,
    pub runs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Totals {
    pub contacts: i64,
    pub events: i64,
    pub runs_in_flight: i64,
    pub timers: i64,
}

/// A contact and everything recorded about it: what "why did Ana get this" reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactTrace {
    pub contact_id: String,
    pub traits: Json,
    pub created_at: Millis,
    pub consents: Json,
    pub events: Vec<TracedEvent>,
    pub runs: Vec<Run>,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracedEvent {
    #[serde(flatten)]
    pub event: EventRecord,
    pub message_id: Option<String>,
    pub received_at: Millis,
}

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        on_read!(self, c => {
            let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.map(|r| r.try_get("value")).transpose()?)
        })
    }

    /// Stores `value` under `key` unless the key is set; returns the stored value.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.begin().await?;
        let stored = super::on_tx!(&mut tx, c => {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(&mut *c)
                .await?;
            let value: String = sqlx::query("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&mut *c)
                .await?
                .try_get("value")?;
            value
        });
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        super::on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *c)
        .await?.rows_affected());
        tx.commit().await
    }

    /// Runs in flight by journey, version, step and state.
    pub async fn step_counts(&self) -> Result<Vec<StepCount>> {
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT journey, plan_version, step, state, COUNT(*) AS n FROM runs
                 WHERE state <> 'ended'
                 GROUP BY journey, plan_version, step, state
                 ORDER BY journey, plan_version, step, state",
            )
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(StepCount {
                        journey: row.try_get("journey")?,
                        plan_version: row.try_get("plan_version")?,
                        step: row.try_get("step")?,
                        state: row.try_get("state")?,
                        runs: row.try_get("n")?,
                    })
                })
                .collect()
        })
    }

    /// Ended runs by journey and reason.
    pub async fn end_counts(&self) -> Result<Vec<EndCount>> {
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT journey, end_reason, COUNT(*) AS n FROM runs WHERE state = 'ended'
                 GROUP BY journey, end_reason ORDER BY journey, end_reason",
            )
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(EndCount {
                        journey: row.try_get("journey")?,
                        reason: row.try_get::<Option<String>, _>("end_reason")?.unwrap_or_default(),
                        runs: row.try_get("n")?,
                    })
                })
                .collect()
        })
    }

    pub async fn totals(&self) -> Result<Totals> {
        on_read!(self, c => {
            let mut count = async |sql: &'static str| -> Result<i64> {
                Ok(sqlx::query(sql).fetch_one(&mut *c).await?.try_get("n")?)
            };
            let totals = Totals {
                contacts: count("SELECT COUNT(*) AS n FROM contacts").await?,
                events: count("SELECT COUNT(*) AS n FROM events").await?,
                runs_in_flight: count("SELECT COUNT(*) AS n FROM runs WHERE state <> 'ended'").await?,
                timers: count("SELECT COUNT(*) AS n FROM timers").await?,
            };
            Ok(totals)
        })
    }

    /// The contact's record, events, runs and outcomes (the latest `limit` of each list).
    pub async fn contact_trace(
        &self,
        contact_id: &str,
        limit: i64,
    ) -> Result<Option<ContactTrace>> {
        let mut tx = self.begin_read().await?;
        let Some(contact) = tx.load_contact(contact_id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let runs = tx.load_runs(contact_id).await?;
        let (events, outcomes) = super::on_tx!(&mut tx, c => {
            let rows = sqlx::query(
                "SELECT id, name, payload, occurred_at, received_at, message_id FROM contact_events
                 WHERE contact_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2",
            )
            .bind(contact_id)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            let mut events = Vec::with_capacity(rows.len());
            for row in rows.iter().rev() {
                let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                events.push(TracedEvent {
                    event: EventRecord {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        payload: Arc::new(payload.0),
                        occurred_at: row.try_get("occurred_at")?,
                    },
                    message_id: row.try_get("message_id")?,
                    received_at: row.try_get("received_at")?,
                });
            }
            let rows = sqlx::query(
                "SELECT at, contact_id, journey, run_id, step, kind, detail FROM outcomes
                 WHERE contact_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(contact_id)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            let mut outcomes = Vec::with_capacity(rows.len());
            for row in rows.iter().rev() {
                let detail: sqlx::types::Json<Json> = row.try_get("detail")?;
                outcomes.push(Outcome {
                    at: row.try_get("at")?,
                    contact_id: row.try_get("contact_id")?,
                    journey: row.try_get("journey")?,
                    run_id: row.try_get("run_id")?,
                    step: row.try_get("step")?,
                    kind: row.try_get("kind")?,
                    detail: detail.0,
                });
            }
            (events, outcomes)
        });
        tx.rollback().await?;
        Ok(Some(ContactTrace {
            contact_id: contact.id,
            traits: serde_json::to_value(&contact.traits).unwrap_or(Json::Null),
            created_at: contact.created_at,
            consents: serde_json::to_value(&contact.consents).unwrap_or(Json::Null),
            events,
            runs,
            outcomes,
        }))
    }
}
