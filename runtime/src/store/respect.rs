//! Respect for the contact: the suppression list checked at dispatch, what a signed
//! link points at, the preference page's consents, and double opt-in statistics.

use super::outbox::ClaimedMessage;
use super::{Result, Store, StoreError, on_read};
use crate::model::Millis;
use serde::Serialize;
use serde_json::{Value as Json, json};
use sqlx::Row;

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// Blocks marketing messages; lifted when the contact grants a consent of the
    /// channel again.
    Unsubscribed,
    /// The address does not exist: blocks every message.
    HardBounce,
    /// The recipient reported a message as spam: blocks every message.
    Complaint,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
        }
    }

    fn parse(text: &str) -> Option<SuppressionReason> {
        match text {
            "unsubscribed" => Some(SuppressionReason::Unsubscribed),
            "hard_bounce" => Some(SuppressionReason::HardBounce),
            "complaint" => Some(SuppressionReason::Complaint),
            _ => None,
        }
    }

    /// Whether it blocks a message that is (or is not) marketing.
    pub fn blocks(self, marketing: bool) -> bool {
        marketing || self != SuppressionReason::Unsubscribed
    }
}

/// How the dispatcher records a message it holds back instead of sending it.
pub(super) struct HeldBack<'a> {
    /// The message's `error_kind`.
    pub error_kind: &'a str,
    pub last_error: &'a str,
    /// The kind of the outcome recorded for the contact.
    pub outcome: &'a str,
    pub detail: &'a serde_json::Value,
}

/// One entry of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub channel: String,
    pub address: String,
    pub reason: SuppressionReason,
    pub contact_id: Option<String>,
    pub source: String,
    pub created_at: Millis,
}

/// The form addresses are compared in: emails are case-insensitive in practice.
pub fn normalise_address(channel: &str, address: &str) -> String {
    let address = address.trim();
    if channel == "email" {
        address.to_lowercase()
    } else {
        address.to_string()
    }
}

/// An outbox message, found from the reference a signed link carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageRef {
    pub id: i64,
    pub run_id: String,
    pub step: String,
    pub visit: i64,
    pub contact_id: String,
    pub channel: String,
    pub address: String,
    pub template: Option<String>,
    /// From the run; `None` for messages outside a journey (a double opt-in request).
    pub journey: Option<String>,
}

/// A contact's consent as the preference page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    pub consent: String,
    pub granted: bool,
    pub source: Option<String>,
    pub changed_at: Millis,
}

/// Double opt-in requests sent and activated, for one consent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoubleOptInStats {
    pub consent: String,
    /// Confirmation emails queued.
    pub requested: i64,
    /// Contacts who followed the link (each counted once per activation).
    pub activated: i64,
}

impl DoubleOptInStats {
    /// `activated / requested`, 0 when nothing was requested.
    pub fn activation_rate(&self) -> f64 {
        if self.requested == 0 {
            0.0
        } else {
            self.activated as f64 / self.requested as f64
        }
    }
}

/// Outcome kind of a double opt-in confirmation sent instead of granting a consent.
pub const OPT_IN_REQUESTED: &str = "opt_in_requested";
/// Outcome kind of a message the dispatcher held back.
pub const SUPPRESSED: &str = "suppressed";

const MESSAGE_COLUMNS: &str = "o.id, o.run_id, o.step, o.visit, o.contact_id, o.channel,
    o.address, o.template, r.journey
    FROM outbox o LEFT JOIN runs r ON r.run_id = o.run_id";

impl Store {
    /// Adds an address to the suppression list (a repeat keeps the first entry).
    pub async fn suppress(
        &self,
        channel: &str,
        address: &str,
        reason: SuppressionReason,
        contact_id: Option<&str>,
        source: &str,
        at: Millis,
    ) -> Result<()> {
        let address = normalise_address(channel, address);
        let mut tx = self.begin().await?;
        super::on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO suppressions (channel, address, reason, contact_id, source, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (channel, address, reason) DO NOTHING",
        )
        .bind(channel)
        .bind(&address)
        .bind(reason.as_str())
        .bind(contact_id)
        .bind(source)
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected());
        tx.commit().await
    }

    /// Removes an address's entry for `reason`; returns whether there was one.
    pub async fn unsuppress(
        &self,
        channel: &str,
        address: &str,
        reason: SuppressionReason,
    ) -> Result<bool> {
        let address = normalise_address(channel, address);
        let mut tx = self.begin().await?;
        let n = super::on_tx!(&mut tx, c => sqlx::query(
            "DELETE FROM suppressions WHERE channel = $1 AND address = $2 AND reason = $3",
        )
        .bind(channel)
        .bind(&address)
        .bind(reason.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected());
        tx.commit().await?;
        Ok(n > 0)
    }

    /// The entries of the list, newest first; for one address when given.
    pub async fn suppressions(&self, address: Option<(&str, &str)>) -> Result<Vec<Suppression>> {
        let wanted =
            address.map(|(channel, a)| (channel.to_string(), normalise_address(channel, a)));
        on_read!(self, c => {
            let rows = match &wanted {
                Some((channel, address)) => sqlx::query(
                    "SELECT channel, address, reason, contact_id, source, created_at
                     FROM suppressions WHERE channel = $1 AND address = $2
                     ORDER BY created_at DESC, reason",
                )
                .bind(channel)
                .bind(address)
                .fetch_all(&mut *c)
                .await?,
                None => sqlx::query(
                    "SELECT channel, address, reason, contact_id, source, created_at
                     FROM suppressions ORDER BY created_at DESC, channel, address, reason",
                )
                .fetch_all(&mut *c)
                .await?,
            };
            rows.iter().map(suppression).collect()
        })
    }

    /// Why `message` must not go out now, if it must not: an erased contact, an
    /// address on the suppression list (an unsubscribe only for marketing, and only
    /// until the contact grants a consent of the channel again), or, for a
    /// marketing message, none of `channel_consents` granted (when the channel has
    /// any). Read when the message is handed to its channel, so a change made after
    /// the step queued it still holds it back.
    pub async fn dispatch_block(
        &self,
        message: &ClaimedMessage,
        channel_consents: &[String],
    ) -> Result<Option<String>> {
        if message.channel == "webhook" {
            return Ok(None);
        }
        let address = normalise_address(&message.channel, &message.address);
        on_read!(self, c => {
            let row = sqlx::query(
                "SELECT o.marketing, ct.erased FROM outbox o
                 LEFT JOIN contacts ct ON ct.contact_id = o.contact_id WHERE o.id = $1",
            )
            .bind(message.id)
            .fetch_optional(&mut *c)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let marketing: bool = row.try_get("marketing")?;
            let erased: Option<bool> = row.try_get("erased")?;
            if erased == Some(true) {
                return Ok(Some("erased".to_string()));
            }
            let entries = sqlx::query(
                "SELECT reason, created_at FROM suppressions WHERE channel = $1 AND address = $2
                 ORDER BY reason",
            )
            .bind(&message.channel)
            .bind(&address)
            .fetch_all(&mut *c)
            .await?;
            let granted = sqlx::query(
                "SELECT consent, changed_at FROM consents WHERE contact_id = $1 AND granted",
            )
            .bind(&message.contact_id)
            .fetch_all(&mut *c)
            .await?;
            // When the contact last granted a consent of this channel.
            let mut regranted: Option<Millis> = None;
            for row in &granted {
                let consent: String = row.try_get("consent")?;
                if channel_consents.contains(&consent) {
                    let at: Millis = row.try_get("changed_at")?;
                    regranted = regranted.max(Some(at));
                }
            }
            for row in &entries {
                let reason: String = row.try_get("reason")?;
                let since: Millis = row.try_get("created_at")?;
                let Some(reason) = SuppressionReason::parse(&reason) else {
                    continue;
                };
                // Subscribing again (a consent of the channel granted after the
                // unsubscribe) lifts an unsubscribe; nothing lifts a bounce or a
                // complaint but an operator.
                let lifted =
                    reason == SuppressionReason::Unsubscribed && regranted.is_some_and(|at| at > since);
                if reason.blocks(marketing) && !lifted {
                    return Ok(Some(reason.as_str().to_string()));
                }
            }
            if marketing && !channel_consents.is_empty() && regranted.is_none() {
                return Ok(Some("no_consent".to_string()));
            }
            Ok(None)
        })
    }

    /// Records that the dispatcher held `message` back: the row ends `failed` with
    /// `error_kind = 'suppressed'` and `last_error = 'suppressed: REASON'`, and the
    /// contact's history gets a `suppressed` outcome. Guarded by the lease like
    /// [`Store::mark_sent`].
    pub async fn mark_suppressed(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        reason: &str,
        now: Millis,
    ) -> Result<()> {
        super::retrying("recording a suppressed message", || {
            self.mark_suppressed_once(message, owner, reason, now)
        })
        .await
    }

    async fn mark_suppressed_once(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        reason: &str,
        now: Millis,
    ) -> Result<()> {
        let detail = json!({
            "reason": reason,
            "channel": message.channel,
            "template": message.template,
            "address": message.address,
            "visit": message.visit,
        });
        let held = HeldBack {
            error_kind: "suppressed",
            last_error: &format!("suppressed: {reason}"),
            outcome: SUPPRESSED,
            detail: &detail,
        };
        self.hold_back_once(message, owner, now, &held).await
    }

    /// Records once that the dispatcher held `message` back, as `held` says: the row
    /// ends `failed` and the contact's history gets the outcome, guarded by the lease.
    pub(super) async fn hold_back_once(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
        held: &HeldBack<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated = super::on_tx!(&mut tx, c => {
            let updated = sqlx::query(
                "UPDATE outbox SET state = 'failed', error_kind = $5, last_error = $1,
                        lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'pending'",
            )
            .bind(held.last_error)
            .bind(message.id)
            .bind(owner)
            .bind(message.attempts)
            .bind(held.error_kind)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if updated == 1 {
                sqlx::query(
                    "INSERT INTO outcomes (at, contact_id, journey, run_id, step, kind, detail)
                     SELECT $1, $2, (SELECT journey FROM runs WHERE run_id = $3), $3, $4, $5, $6",
                )
                .bind(now)
                .bind(&message.contact_id)
                .bind(&message.run_id)
                .bind(&message.step)
                .bind(held.outcome)
                .bind(sqlx::types::Json(held.detail))
                .execute(&mut *c)
                .await?;
            }
            updated
        });
        super::outbox::guarded(tx, updated, message).await
    }

    /// The outbox message a link refers to: by row id (`"42"`) or by idempotency key
    /// (`"run/step/visit"`, which the engine knows before the row exists).
    pub async fn message_ref(&self, reference: &str) -> Result<Option<MessageRef>> {
        if let Ok(id) = reference.parse::<i64>() {
            return on_read!(self, c => {
                let sql = format!("SELECT {MESSAGE_COLUMNS} WHERE o.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?;
                row.as_ref().map(message_ref).transpose()
            });
        }
        // Run ids hold slashes (`journey/contact/n`); step ids and visits do not.
        let mut parts = reference.rsplitn(3, '/');
        let (Some(visit), Some(step), Some(run_id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Ok(visit) = visit.parse::<i64>() else {
            return Ok(None);
        };
        on_read!(self, c => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} WHERE o.run_id = $1 AND o.step = $2 AND o.visit = $3"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(run_id)
                .bind(step)
                .bind(visit)
                .fetch_optional(&mut *c)
                .await?;
            row.as_ref().map(message_ref).transpose()
        })
    }

    /// A contact's stored consents, by name.
    pub async fn consent_records(&self, contact_id: &str) -> Result<Vec<ConsentRecord>> {
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT consent, granted, source, changed_at FROM consents
                 WHERE contact_id = $1 ORDER BY consent",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(ConsentRecord {
                        consent: row.try_get("consent")?,
                        granted: row.try_get("granted")?,
                        source: row.try_get("source")?,
                        changed_at: row.try_get("changed_at")?,
                    })
                })
                .collect()
        })
    }

    /// Double opt-in confirmations requested (the confirmation messages queued, at
    /// most one per contact, consent and day) and activated (consents granted through
    /// a confirmation link), by consent.
    pub async fn double_opt_in_stats(&self) -> Result<Vec<DoubleOptInStats>> {
        let (requests, activations): (Vec<String>, Vec<Json>) = on_read!(self, c => {
            let requests: Vec<String> = sqlx::query_scalar(
                "SELECT run_id FROM outbox WHERE run_id LIKE 'opt_in/%' AND step = 'confirm'",
            )
            .fetch_all(&mut *c)
            .await?;
            let rows: Vec<sqlx::types::Json<Json>> = sqlx::query_scalar(
                "SELECT detail FROM outcomes WHERE kind = 'consent' AND detail->>'source' = $1",
            )
            .bind(crate::respect::DOUBLE_OPT_IN_SOURCE)
            .fetch_all(&mut *c)
            .await?;
            (requests, rows.into_iter().map(|d| d.0).collect())
        });
        let mut stats: std::collections::BTreeMap<String, DoubleOptInStats> = Default::default();
        fn entry<'s>(
            stats: &'s mut std::collections::BTreeMap<String, DoubleOptInStats>,
            consent: &str,
        ) -> &'s mut DoubleOptInStats {
            stats
                .entry(consent.to_string())
                .or_insert_with(|| DoubleOptInStats {
                    consent: consent.to_string(),
                    ..DoubleOptInStats::default()
                })
        }
        for run_id in &requests {
            // `opt_in/CONSENT/CONTACT`: consent names hold no slash.
            if let Some(consent) = run_id.split('/').nth(1) {
                entry(&mut stats, consent).requested += 1;
            }
        }
        for detail in &activations {
            let granted = detail.get("granted").and_then(Json::as_bool) == Some(true);
            if let (true, Some(consent)) = (granted, detail.get("consent").and_then(Json::as_str)) {
                entry(&mut stats, consent).activated += 1;
            }
        }
        Ok(stats.into_values().collect())
    }

    /// The address a contact has on `channel`'s trait, for suppressing it: the first
    /// of `fields` that is set.
    pub async fn contact_address(
        &self,
        contact_id: &str,
        fields: &[&str],
    ) -> Result<Option<String>> {
        let traits: Option<sqlx::types::Json<Json>> = on_read!(self, c => {
            sqlx::query_scalar("SELECT traits FROM contacts WHERE contact_id = $1")
                .bind(contact_id)
                .fetch_optional(&mut *c)
                .await?
        });
        Ok(traits.and_then(|t| {
            fields.iter().find_map(|f| {
                t.0.get(*f)
                    .and_then(Json::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
        }))
    }

    /// The contact an address belongs to, for a webhook that names only the address.
    pub async fn contact_by_email(&self, email: &str) -> Result<Option<String>> {
        let email = normalise_address("email", email);
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT contact_id FROM outbox WHERE channel = 'email' AND LOWER(address) = $1
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(&email)
            .fetch_all(&mut *c)
            .await?;
            Ok(rows.first().map(|r| r.try_get("contact_id")).transpose()?)
        })
    }
}

#[cfg(test)]
impl Store {
    /// The state and last error of the message of `step`.
    pub async fn outbox_fate(&self, step: &str) -> Result<(String, Option<String>)> {
        on_read!(self, c => {
            let row = sqlx::query("SELECT state, last_error FROM outbox WHERE step = $1")
                .bind(step)
                .fetch_one(&mut *c)
                .await?;
            Ok((row.try_get("state")?, row.try_get("last_error")?))
        })
    }

    /// Every outcome's kind and detail, in order.
    pub async fn all_outcomes(&self) -> Result<Vec<(String, Json)>> {
        on_read!(self, c => {
            let rows = sqlx::query("SELECT kind, detail FROM outcomes ORDER BY id")
                .fetch_all(&mut *c)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let detail: sqlx::types::Json<Json> = r.try_get("detail")?;
                out.push((r.try_get("kind")?, detail.0));
            }
            Ok(out)
        })
    }
}

fn suppression<R: Row>(row: &R) -> Result<Suppression>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let reason: String = row.try_get("reason")?;
    Ok(Suppression {
        channel: row.try_get("channel")?,
        address: row.try_get("address")?,
        reason: SuppressionReason::parse(&reason)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown suppression reason `{reason}`")))?,
        contact_id: row.try_get("contact_id")?,
        source: row.try_get("source")?,
        created_at: row.try_get("created_at")?,
    })
}

fn message_ref<R: Row>(row: &R) -> Result<MessageRef>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(MessageRef {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        visit: row.try_get("visit")?,
        contact_id: row.try_get("contact_id")?,
        channel: row.try_get("channel")?,
        address: row.try_get("address")?,
        template: row.try_get("template")?,
        journey: row.try_get("journey")?,
    })
}
