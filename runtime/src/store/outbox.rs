//! The transactional outbox, as the dispatcher sees it: claim pending messages with a
//! lease, then record each one's fate guarded by that lease.

use super::{Result, Store, StoreError, on_read};
use crate::model::Millis;
use serde_json::Value as Json;
use sqlx::Row;

/// A message the dispatcher holds the lease of.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedMessage {
    pub id: i64,
    pub run_id: String,
    pub step: String,
    pub visit: i64,
    pub contact_id: String,
    pub channel: String,
    pub template: Option<String>,
    pub address: String,
    pub payload: Json,
    /// This attempt's number, starting at 1.
    pub attempts: i64,
    pub created_at: Millis,
    /// A marketing message (not a transactional one, nor a webhook): it carries a
    /// one-click unsubscribe link.
    pub marketing: bool,
}

impl ClaimedMessage {
    /// The message's idempotency key, `run/step/visit`, the same for every attempt.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.run_id, self.step, self.visit)
    }
}

const CLAIM_POSTGRES: &str = "UPDATE outbox
    SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM outbox
        WHERE state = 'pending' AND next_attempt_at <= $3
          AND (lease_expires_at IS NULL OR lease_expires_at <= $3)
        ORDER BY next_attempt_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED)
    RETURNING id, run_id, step, visit, contact_id, channel, template, address, payload,
              attempts, created_at, marketing";

const CLAIM_SQLITE: &str = "UPDATE outbox
    SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM outbox
        WHERE state = 'pending' AND next_attempt_at <= $3
          AND (lease_expires_at IS NULL OR lease_expires_at <= $3)
        ORDER BY next_attempt_at
        LIMIT $4)
    RETURNING id, run_id, step, visit, contact_id, channel, template, address, payload,
              attempts, created_at, marketing";

/// Counts of outbox rows by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

impl Store {
    /// Claims up to `limit` messages due at `now`, in a transaction of its own.
    pub async fn claim_messages(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<ClaimedMessage>> {
        let mut tx = self.begin().await?;
        let sql = match &tx {
            super::Tx::Sqlite(_) => CLAIM_SQLITE,
            super::Tx::Postgres(_) => CLAIM_POSTGRES,
        };
        let mut claimed = super::on_tx!(&mut tx, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                claimed.push(ClaimedMessage {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    step: row.try_get("step")?,
                    visit: row.try_get("visit")?,
                    contact_id: row.try_get("contact_id")?,
                    channel: row.try_get("channel")?,
                    template: row.try_get("template")?,
                    address: row.try_get("address")?,
                    payload: payload.0,
                    attempts: row.try_get("attempts")?,
                    created_at: row.try_get("created_at")?,
                    marketing: row.try_get("marketing")?,
                });
            }
            claimed
        });
        tx.commit().await?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    /// Records a delivered message. Fails with [`StoreError::LostLease`] when another
    /// dispatcher took it over meanwhile. Retried on transient database errors: a
    /// delivery not recorded would be made again once its lease expires.
    pub async fn mark_sent(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
    ) -> Result<()> {
        super::retrying("recording a delivery", || {
            self.mark_sent_once(message, owner, now)
        })
        .await
    }

    async fn mark_sent_once(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated = super::on_tx!(&mut tx, c => sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $1, last_error = NULL,
                    lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'pending'",
        )
        .bind(now)
        .bind(message.id)
        .bind(owner)
        .bind(message.attempts)
        .execute(&mut *c)
        .await?
        .rows_affected());
        guarded(tx, updated, message).await
    }

    /// Records a failed attempt: tried again at `retry_at`, or given up when `None`.
    pub async fn mark_failed(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        error: &str,
        retry_at: Option<Millis>,
    ) -> Result<()> {
        super::retrying("recording a failed delivery", || {
            self.mark_failed_once(message, owner, error, retry_at)
        })
        .await
    }

    async fn mark_failed_once(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        error: &str,
        retry_at: Option<Millis>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated = super::on_tx!(&mut tx, c => sqlx::query(
            "UPDATE outbox SET
                state = CASE WHEN $1 IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = COALESCE($1, next_attempt_at),
                last_error = $2, lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $3 AND lease_owner = $4 AND attempts = $5 AND state = 'pending'",
        )
        .bind(retry_at)
        .bind(error)
        .bind(message.id)
        .bind(owner)
        .bind(message.attempts)
        .execute(&mut *c)
        .await?
        .rows_affected());
        guarded(tx, updated, message).await
    }

    /// How many messages are pending, sent and failed.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        on_read!(self, c => {
            let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
                .fetch_all(&mut *c)
                .await?;
            let mut counts = OutboxCounts::default();
            for row in rows {
                let state: String = row.try_get("state")?;
                let n: i64 = row.try_get("n")?;
                match state.as_str() {
                    "pending" => counts.pending = n,
                    "sent" => counts.sent = n,
                    _ => counts.failed += n,
                }
            }
            Ok(counts)
        })
    }
}

/// Commits a write guarded by `message`'s lease when it `updated` the one row, or rolls
/// it back as [`StoreError::LostLease`] when another dispatcher took the lease over.
pub(super) async fn guarded(tx: super::Tx, updated: u64, message: &ClaimedMessage) -> Result<()> {
    if updated == 1 {
        tx.commit().await
    } else {
        tx.rollback().await?;
        Err(StoreError::LostLease(format!(
            "message {}",
            message.idempotency_key()
        )))
    }
}
