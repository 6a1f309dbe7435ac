//! What the dispatcher records about handing messages to real channels: the start of
//! a hand-over (so a crash mid-way is never followed by a second send), each attempt's
//! fate with a kind and a reason, the provider's id of the message, and the delivery
//! statuses providers call back with.

use super::{Result, Store, on_read};
use crate::model::Millis;
use crate::store::outbox::ClaimedMessage;
use serde::Serialize;
use sqlx::Row;

/// Where a message's hand-over stands when the dispatcher is about to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Recorded as started now: send it.
    Start,
    /// An earlier attempt began handing it over at this instant and never recorded
    /// the result (the daemon died): it may have been sent, so it is not sent again.
    Interrupted(Millis),
    /// Another dispatcher holds it now.
    LostLease,
}

/// What an attempt came to, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Accepted by the server or provider, which may name it (`provider_ref`).
    Sent { provider_ref: Option<String> },
    /// Failed; tried again at `retry_at`, or given up for good when `None`.
    Failed {
        kind: ErrorKind,
        reason: String,
        retry_at: Option<Millis>,
    },
}

/// Why a message failed, for people and programs: `last_error` says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth trying again: the server was down, slow, or answered 4xx (SMTP) / 5xx.
    Temporary,
    /// The server or provider refused it for good (SMTP 5xx, an HTTP 4xx).
    Rejected,
    /// The address or phone number cannot be sent to.
    InvalidAddress,
    /// The rendered message lacks what its channel needs (a subject, a body).
    InvalidMessage,
    /// The daemon stopped while handing it over; not sent again.
    Interrupted,
    /// The channel is not configured in this daemon.
    Config,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Temporary => "temporary",
            ErrorKind::Rejected => "rejected",
            ErrorKind::InvalidAddress => "invalid_address",
            ErrorKind::InvalidMessage => "invalid_message",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Config => "config",
        }
    }
}

/// A message as `cairn status --messages` and `GET /admin/messages` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MessageRow {
    pub id: i64,
    pub run_id: String,
    pub step: String,
    pub visit: i64,
    pub contact_id: String,
    pub channel: String,
    pub template: Option<String>,
    pub address: String,
    /// `pending`, `sending` (a hand-over under way), `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub last_error: Option<String>,
    pub error_kind: Option<String>,
    pub provider_ref: Option<String>,
    pub delivery_status: Option<String>,
    pub delivery_at: Option<Millis>,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub state: Option<String>,
    pub contact_id: Option<String>,
    pub channel: Option<String>,
    pub limit: i64,
}

/// The message a delivery status callback was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledBack {
    pub id: i64,
    pub contact_id: String,
    pub run_id: String,
    pub step: String,
    pub journey: Option<String>,
    /// Whether this status is new for the message (a provider repeating a callback
    /// changes nothing).
    pub changed: bool,
}

const SELECT_MESSAGE: &str = "SELECT o.id, o.run_id, o.step, o.visit, o.contact_id, o.channel,
        o.template, o.address, o.state, o.attempts, o.next_attempt_at, o.last_error,
        o.error_kind, o.provider_ref, o.delivery_status, o.delivery_at, o.created_at,
        o.sent_at, o.sending_at
    FROM outbox o";

impl Store {
    /// Records that each of `messages` (claimed by `owner`) is being handed over now,
    /// in one transaction, and says for each whether to send it.
    pub async fn begin_handover(
        &self,
        messages: &[&ClaimedMessage],
        owner: &str,
        now: Millis,
    ) -> Result<Vec<Handover>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        super::retrying("recording hand-overs", || {
            self.begin_handover_once(messages, owner, now)
        })
        .await
    }

    async fn begin_handover_once(
        &self,
        messages: &[&ClaimedMessage],
        owner: &str,
        now: Millis,
    ) -> Result<Vec<Handover>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let started: Option<Option<i64>> = super::on_tx!(&mut tx, c => sqlx::query(
                "UPDATE outbox SET sending_at = COALESCE(sending_at, $1)
                 WHERE id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'pending'
                 RETURNING sending_at",
            )
            .bind(now)
            .bind(message.id)
            .bind(owner)
            .bind(message.attempts)
            .fetch_optional(&mut *c)
            .await?
            .map(|row| row.try_get::<Option<i64>, _>("sending_at"))
            .transpose()?);
            out.push(match started {
                None => Handover::LostLease,
                Some(Some(at)) if at != now => Handover::Interrupted(at),
                Some(_) => Handover::Start,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records the fate of `message`'s attempt, guarded by the lease `owner` holds;
    /// fails with [`LostLease`](super::StoreError::LostLease) when another dispatcher
    /// took it over.
    pub async fn record_fate(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
        fate: &Fate,
    ) -> Result<()> {
        super::retrying("recording a delivery", || {
            self.record_fate_once(message, owner, now, fate)
        })
        .await
    }

    async fn record_fate_once(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
        fate: &Fate,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated = match fate {
            Fate::Sent { provider_ref } => super::on_tx!(&mut tx, c => sqlx::query(
                "UPDATE outbox SET state = 'sent', sent_at = $1, last_error = NULL,
                        error_kind = NULL, provider_ref = $2, sending_at = NULL,
                        lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $3 AND lease_owner = $4 AND attempts = $5 AND state = 'pending'",
            )
            .bind(now)
            .bind(provider_ref.as_deref())
            .bind(message.id)
            .bind(owner)
            .bind(message.attempts)
            .execute(&mut *c)
            .await?
            .rows_affected()),
            Fate::Failed {
                kind,
                reason,
                retry_at,
            } => super::on_tx!(&mut tx, c => sqlx::query(
                "UPDATE outbox SET
                    state = CASE WHEN $1 IS NULL THEN 'failed' ELSE 'pending' END,
                    next_attempt_at = COALESCE($1, next_attempt_at),
                    last_error = $2, error_kind = $3, sending_at = NULL,
                    lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $4 AND lease_owner = $5 AND attempts = $6 AND state = 'pending'",
            )
            .bind(*retry_at)
            .bind(reason.as_str())
            .bind(kind.as_str())
            .bind(message.id)
            .bind(owner)
            .bind(message.attempts)
            .execute(&mut *c)
            .await?
            .rows_affected()),
        };
        super::outbox::guarded(tx, updated, message).await
    }

    /// Records a provider's delivery status for the message it knows as
    /// `provider_ref` on `channel`. `None` when no message has that reference.
    pub async fn record_delivery_status(
        &self,
        channel: &str,
        provider_ref: &str,
        status: &str,
        error: Option<&str>,
        at: Millis,
    ) -> Result<Option<CalledBack>> {
        let mut tx = self.begin().await?;
        let found = super::on_tx!(&mut tx, c => {
            let row = sqlx::query(
                "SELECT o.id, o.contact_id, o.run_id, o.step, o.delivery_status, r.journey
                 FROM outbox o LEFT JOIN runs r ON r.run_id = o.run_id
                 WHERE o.channel = $1 AND o.provider_ref = $2",
            )
            .bind(channel)
            .bind(provider_ref)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                None => None,
                Some(row) => {
                    let previous: Option<String> = row.try_get("delivery_status")?;
                    let called = CalledBack {
                        id: row.try_get("id")?,
                        contact_id: row.try_get("contact_id")?,
                        run_id: row.try_get("run_id")?,
                        step: row.try_get("step")?,
                        journey: row.try_get("journey")?,
                        changed: previous.as_deref() != Some(status),
                    };
                    sqlx::query(
                        "UPDATE outbox SET delivery_status = $1, delivery_at = $2,
                                last_error = COALESCE($3, last_error),
                                error_kind = CASE WHEN $3 IS NULL THEN error_kind
                                                  ELSE 'undelivered' END
                         WHERE id = $4",
                    )
                    .bind(status)
                    .bind(at)
                    .bind(error)
                    .bind(called.id)
                    .execute(&mut *c)
                    .await?;
                    Some(called)
                }
            }
        });
        tx.commit().await?;
        Ok(found)
    }

    /// Messages, newest first.
    pub async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRow>> {
        let limit = if filter.limit <= 0 {
            100
        } else {
            filter.limit.min(10_000)
        };
        // `sending` is `pending` with a hand-over under way.
        let (state, sending) = match filter.state.as_deref() {
            Some("sending") => (Some("pending"), Some(true)),
            Some("pending") => (Some("pending"), Some(false)),
            other => (other, None),
        };
        let sql = format!(
            "{SELECT_MESSAGE}
             WHERE ($1 IS NULL OR o.state = $1)
               AND ($2 IS NULL OR o.contact_id = $2)
               AND ($3 IS NULL OR o.channel = $3)
               AND ($4 IS NULL OR (o.sending_at IS NOT NULL) = $4)
             ORDER BY o.id DESC LIMIT $5"
        );
        on_read!(self, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(state)
                .bind(filter.contact_id.as_deref())
                .bind(filter.channel.as_deref())
                .bind(sending)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let state: String = row.try_get("state")?;
                let sending_at: Option<i64> = row.try_get("sending_at")?;
                out.push(MessageRow {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    step: row.try_get("step")?,
                    visit: row.try_get("visit")?,
                    contact_id: row.try_get("contact_id")?,
                    channel: row.try_get("channel")?,
                    template: row.try_get("template")?,
                    address: row.try_get("address")?,
                    state: if state == "pending" && sending_at.is_some() {
                        "sending".to_string()
                    } else {
                        state
                    },
                    attempts: row.try_get("attempts")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    last_error: row.try_get("last_error")?,
                    error_kind: row.try_get("error_kind")?,
                    provider_ref: row.try_get("provider_ref")?,
                    delivery_status: row.try_get("delivery_status")?,
                    delivery_at: row.try_get("delivery_at")?,
                    created_at: row.try_get("created_at")?,
                    sent_at: row.try_get("sent_at")?,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
impl Store {
    /// The names of a contact's stored events, oldest first.
    pub async fn event_names(&self, contact_id: &str) -> Result<Vec<String>> {
        on_read!(self, c => {
            let rows = sqlx::query("SELECT name FROM contact_events WHERE contact_id = $1 ORDER BY id")
                .bind(contact_id)
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
        })
    }
}
