//! Data rights: everything held about a contact ([`Store::export_contact`]), erasing
//! it while the anonymous counts stay right ([`Tx::erase_contact`]), and the hashes of
//! erased addresses the dispatcher refuses to send to ([`Store::is_erased_address`]).
//!
//! Erasure scrubs in place rather than deleting what statistics count: a run keeps its
//! journey, step, visits and end; an outbox row its step, channel and state; an open or
//! click event its journey, run and step; an outcome its kind and the non-personal part
//! of its detail. Everything that says who the person is or what they did goes: traits,
//! aliases, addresses, rendered messages, event payloads, bindings, consents, tags,
//! scores and segment memberships. The contact's id stays as a tombstone, so later
//! events under it find an erased contact and start nothing.

use super::respect::normalise_address;
use super::{Result, Store, StoreError, Tx, on_read, on_tx};
use crate::model::{Millis, Outcome, Run, RunState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// Everything stored about one contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactExport {
    pub contact_id: String,
    pub erased: bool,
    /// When it was erased; `None` while it is not.
    pub erased_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub traits: Json,
    pub time_zone: Option<String>,
    pub aliases: Vec<AliasRecord>,
    pub consents: Vec<ConsentRecord>,
    pub tags: Vec<TagRecord>,
    pub scores: Vec<ScoreRecord>,
    pub segments: Vec<SegmentRecord>,
    /// Oldest first.
    pub events: Vec<ExportedEvent>,
    pub runs: Vec<Run>,
    pub outcomes: Vec<Outcome>,
    pub messages: Vec<ExportedMessage>,
    /// Entries that keep the contact's addresses from being messaged.
    pub suppressions: Vec<Suppression>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasRecord {
    pub anonymous_id: String,
    pub merged_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    pub consent: String,
    pub granted: bool,
    /// Where the change came from: `identify`, `consent_granted`, `unsubscribe`...
    pub source: Option<String>,
    pub changed_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRecord {
    pub tag: String,
    pub added_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoreRecord {
    pub score: String,
    /// The exact decimal value, as text.
    pub value: String,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRecord {
    pub segment: String,
    pub entered_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedEvent {
    pub id: i64,
    pub name: String,
    pub payload: Json,
    pub occurred_at: Millis,
    pub received_at: Millis,
    pub message_id: Option<String>,
    /// The anonymous id it was tracked under before the contact was known.
    pub anonymous_id: Option<String>,
}

/// A message of the outbox, with its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedMessage {
    pub id: i64,
    pub run_id: String,
    pub step: String,
    pub visit: i64,
    pub channel: String,
    pub template: Option<String>,
    pub address: String,
    pub payload: Json,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
    /// The last status the provider reported (`delivered`, `bounced`, `opened`...).
    pub delivery_status: Option<String>,
    pub delivery_at: Option<Millis>,
}

/// An entry that keeps one of the contact's addresses from being messaged: on the
/// suppression list (unsubscribed, bounced, complained), or erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub channel: String,
    /// The address, on the suppression list; `None` for an erased one.
    pub address: Option<String>,
    /// The SHA-256 of the normalised address: all that is kept of an erased one.
    pub address_sha256: Option<String>,
    /// `unsubscribed`, `hard_bounce`, `complaint` or `erased`.
    pub reason: String,
    pub source: Option<String>,
    pub since: Millis,
}

/// What [`Tx::erase_contact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub contact_id: String,
    /// The contact was erased before: nothing changed.
    pub already_erased: bool,
    pub erased_at: Millis,
    /// Runs in flight, ended with reason `erased`.
    pub runs_ended: u64,
    /// Messages not yet sent, cancelled.
    pub messages_cancelled: u64,
    /// Events whose payload was removed.
    pub events_scrubbed: u64,
    /// Addresses whose hash now refuses messages.
    pub addresses_suppressed: u64,
}

/// Trait fields holding an address, by channel: what [`Tx::erase_contact`] hashes
/// besides the addresses messages went to.
pub type AddressFields = Vec<(String, String)>;

/// The fields every project's contacts may hold addresses in, whatever their schema.
pub fn default_address_fields() -> AddressFields {
    [("email", "email"), ("sms", "phone"), ("push", "push_token")]
        .into_iter()
        .map(|(c, f)| (c.to_string(), f.to_string()))
        .collect()
}

/// An address as it is compared: a lower-case email, a phone number's digits with
/// its leading `+`, a push token trimmed.
pub fn normalised_address(channel: &str, address: &str) -> String {
    let address = address.trim();
    match channel {
        "email" => address.to_lowercase(),
        "sms" => {
            let plus = if address.starts_with('+') { "+" } else { "" };
            let digits: String = address.chars().filter(char::is_ascii_digit).collect();
            format!("{plus}{digits}")
        }
        _ => address.to_string(),
    }
}

/// The SHA-256 (hex) of the normalised address: what the erased-address table keeps.
pub fn address_sha256(channel: &str, address: &str) -> String {
    Sha256::digest(normalised_address(channel, address).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Event names that tell statistics a message was opened or clicked: their payload
/// keeps the journey, run and step through erasure.
const ENGAGEMENT_EVENTS: &[&str] = &[
    "email_opened",
    "push_opened",
    "email_clicked",
    "sms_clicked",
    "push_clicked",
];

/// Keys of an outcome's detail that say nothing about the person, kept by erasure:
/// which message, which arm, why. (`consent` names the consent of a double opt-in
/// request, which its statistics count.) Tags, scores, segments, set values,
/// addresses and webhook bodies describe the person and go.
const NEUTRAL_DETAIL: &[&str] = &[
    "reason",
    "channel",
    "template",
    "visit",
    "arm",
    "event",
    "plan_version",
    "until",
    "consent",
];

/// A row of the suppression list (`channel, address, reason, source, created_at`).
fn listed_suppression<R: Row>(row: &R) -> Result<Suppression>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Suppression {
        channel: row.try_get("channel")?,
        address: row.try_get("address")?,
        address_sha256: None,
        reason: row.try_get("reason")?,
        source: row.try_get("source")?,
        since: row.try_get("created_at")?,
    })
}

fn neutral_detail(detail: &Json) -> Json {
    match detail {
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| NEUTRAL_DETAIL.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<String, Json>>(),
        ),
        _ => Json::Object(Map::new()),
    }
}

impl Store {
    /// Everything stored about `contact_id`, or `None` when there is no such contact.
    /// Read in one transaction, so the parts agree with each other.
    pub async fn export_contact(&self, contact_id: &str) -> Result<Option<ContactExport>> {
        let mut tx = self.begin_read().await?;
        let export = tx.export_contact(contact_id).await;
        tx.rollback().await?;
        export
    }

    /// Whether `address` belonged to an erased contact on `channel`.
    pub async fn is_erased_address(&self, channel: &str, address: &str) -> Result<bool> {
        let hash = address_sha256(channel, address);
        on_read!(self, c => {
            let row = sqlx::query(
                "SELECT 1 AS one FROM erased_addresses WHERE channel = $1 AND address_sha256 = $2",
            )
            .bind(channel)
            .bind(&hash)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.is_some())
        })
    }
}

impl Tx {
    async fn export_contact(&mut self, contact_id: &str) -> Result<Option<ContactExport>> {
        let runs = self.load_runs(contact_id).await?;
        on_tx!(self, c => {
            let Some(row) = sqlx::query(
                "SELECT contact_id, traits, time_zone, created_at, updated_at, erased, erased_at
                 FROM contacts WHERE contact_id = $1",
            )
            .bind(contact_id)
            .fetch_optional(&mut *c)
            .await?
            else {
                return Ok(None);
            };
            let traits: sqlx::types::Json<Json> = row.try_get("traits")?;
            let mut export = ContactExport {
                contact_id: row.try_get("contact_id")?,
                erased: row.try_get("erased")?,
                erased_at: row.try_get("erased_at")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                traits: traits.0,
                time_zone: row.try_get("time_zone")?,
                aliases: Vec::new(),
                consents: Vec::new(),
                tags: Vec::new(),
                scores: Vec::new(),
                segments: Vec::new(),
                events: Vec::new(),
                runs,
                outcomes: Vec::new(),
                messages: Vec::new(),
                suppressions: Vec::new(),
            };
            for row in sqlx::query(
                "SELECT anonymous_id, merged_at FROM aliases WHERE contact_id = $1
                 ORDER BY merged_at, anonymous_id",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                export.aliases.push(AliasRecord {
                    anonymous_id: row.try_get("anonymous_id")?,
                    merged_at: row.try_get("merged_at")?,
                });
            }
            for row in sqlx::query(
                "SELECT consent, granted, source, changed_at FROM consents WHERE contact_id = $1
                 ORDER BY consent",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                export.consents.push(ConsentRecord {
                    consent: row.try_get("consent")?,
                    granted: row.try_get("granted")?,
                    source: row.try_get("source")?,
                    changed_at: row.try_get("changed_at")?,
                });
            }
            for row in sqlx::query("SELECT tag, added_at FROM tags WHERE contact_id = $1 ORDER BY tag")
                .bind(contact_id)
                .fetch_all(&mut *c)
                .await?
            {
                export.tags.push(TagRecord {
                    tag: row.try_get("tag")?,
                    added_at: row.try_get("added_at")?,
                });
            }
            for row in sqlx::query(
                "SELECT score, value, updated_at FROM scores WHERE contact_id = $1 ORDER BY score",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                export.scores.push(ScoreRecord {
                    score: row.try_get("score")?,
                    value: row.try_get("value")?,
                    updated_at: row.try_get("updated_at")?,
                });
            }
            for row in sqlx::query(
                "SELECT segment, entered_at FROM segment_members WHERE contact_id = $1
                 ORDER BY segment",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                export.segments.push(SegmentRecord {
                    segment: row.try_get("segment")?,
                    entered_at: row.try_get("entered_at")?,
                });
            }
            for row in sqlx::query(
                "SELECT id, name, payload, occurred_at, received_at, message_id, anonymous_id
                 FROM contact_events WHERE contact_id = $1 ORDER BY occurred_at, id",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                export.events.push(ExportedEvent {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    payload: payload.0,
                    occurred_at: row.try_get("occurred_at")?,
                    received_at: row.try_get("received_at")?,
                    message_id: row.try_get("message_id")?,
                    anonymous_id: row.try_get("anonymous_id")?,
                });
            }
            for row in sqlx::query(
                "SELECT at, contact_id, journey, run_id, step, kind, detail FROM outcomes
                 WHERE contact_id = $1 ORDER BY at, id",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                let detail: sqlx::types::Json<Json> = row.try_get("detail")?;
                export.outcomes.push(Outcome {
                    at: row.try_get("at")?,
                    contact_id: row.try_get("contact_id")?,
                    journey: row.try_get("journey")?,
                    run_id: row.try_get("run_id")?,
                    step: row.try_get("step")?,
                    kind: row.try_get("kind")?,
                    detail: detail.0,
                });
            }
            for row in sqlx::query(
                "SELECT id, run_id, step, visit, channel, template, address, payload, state,
                        attempts, last_error, created_at, sent_at, delivery_status, delivery_at
                 FROM outbox WHERE contact_id = $1 ORDER BY created_at, id",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                export.messages.push(ExportedMessage {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    step: row.try_get("step")?,
                    visit: row.try_get("visit")?,
                    channel: row.try_get("channel")?,
                    template: row.try_get("template")?,
                    address: row.try_get("address")?,
                    payload: payload.0,
                    state: row.try_get("state")?,
                    attempts: row.try_get("attempts")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                    sent_at: row.try_get("sent_at")?,
                    delivery_status: row.try_get("delivery_status")?,
                    delivery_at: row.try_get("delivery_at")?,
                });
            }
            // The suppression entries of every address the contact holds or was
            // messaged at.
            let mut addresses: Vec<(String, String)> = export
                .messages
                .iter()
                .filter(|m| m.channel != "webhook" && !m.address.is_empty())
                .map(|m| (m.channel.clone(), m.address.clone()))
                .collect();
            for (channel, field) in default_address_fields() {
                if let Some(address) = export.traits.get(&field).and_then(Json::as_str) {
                    addresses.push((channel, address.to_string()));
                }
            }
            addresses.sort();
            addresses.dedup();
            for row in sqlx::query(
                "SELECT channel, address, reason, source, created_at FROM suppressions
                 WHERE contact_id = $1 ORDER BY created_at, channel, reason",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                export.suppressions.push(listed_suppression(&row)?);
            }
            for (channel, address) in &addresses {
                let listed = sqlx::query(
                    "SELECT channel, address, reason, source, created_at FROM suppressions
                     WHERE channel = $1 AND address = $2
                       AND (contact_id IS NULL OR contact_id <> $3)
                     ORDER BY reason",
                )
                .bind(channel)
                .bind(normalise_address(channel, address))
                .bind(contact_id)
                .fetch_all(&mut *c)
                .await?;
                for row in listed {
                    export.suppressions.push(listed_suppression(&row)?);
                }
            }
            let mut hashes: Vec<(String, String)> = addresses
                .iter()
                .map(|(channel, address)| (channel.clone(), address_sha256(channel, address)))
                .collect();
            hashes.sort();
            hashes.dedup();
            for (channel, hash) in hashes {
                let since: Option<Millis> = sqlx::query_scalar(
                    "SELECT erased_at FROM erased_addresses
                     WHERE channel = $1 AND address_sha256 = $2",
                )
                .bind(&channel)
                .bind(&hash)
                .fetch_optional(&mut *c)
                .await?;
                if let Some(since) = since {
                    export.suppressions.push(Suppression {
                        channel,
                        address: None,
                        address_sha256: Some(hash),
                        reason: "erased".into(),
                        source: None,
                        since,
                    });
                }
            }
            Ok(Some(export))
        })
    }

    /// Erases a contact (see the module's documentation): ends its runs in flight with
    /// reason `erased` and removes their timers, cancels its unsent messages, records
    /// the hashes of its addresses (those in `address_fields` of its traits and those
    /// its messages went to), and scrubs the rest. `None` when there is no such
    /// contact; erasing an erased contact changes nothing.
    pub async fn erase_contact(
        &mut self,
        contact_id: &str,
        address_fields: &[(String, String)],
        now: Millis,
    ) -> Result<Option<Erasure>> {
        self.lock_contacts(&[contact_id]).await?;
        let Some(contact) = self.load_contact(contact_id).await? else {
            return Ok(None);
        };
        if contact.erased {
            let erased_at: Option<Millis> = on_tx!(self, c => {
                sqlx::query_scalar("SELECT erased_at FROM contacts WHERE contact_id = $1")
                    .bind(contact_id)
                    .fetch_one(&mut *c)
                    .await?
            });
            return Ok(Some(Erasure {
                contact_id: contact_id.to_string(),
                already_erased: true,
                erased_at: erased_at.unwrap_or_default(),
                ..Erasure::default()
            }));
        }
        let mut addresses: Vec<(String, String)> = address_fields
            .iter()
            .filter_map(|(channel, field)| {
                let value = contact.traits.get(field).and_then(Json::as_str)?;
                (!value.trim().is_empty()).then(|| (channel.clone(), value.to_string()))
            })
            .collect();
        let runs_ended = self.end_runs_erased(contact_id, now).await?;
        let (messages_cancelled, messaged) = self.cancel_messages_erased(contact_id).await?;
        addresses.extend(messaged);
        let addresses_suppressed = self.suppress_erased(&addresses, contact_id, now).await?;
        let events_scrubbed = self.scrub_events(contact_id).await?;
        self.scrub_outcomes(contact_id).await?;
        self.forget_profile(contact_id, now).await?;
        Ok(Some(Erasure {
            contact_id: contact_id.to_string(),
            already_erased: false,
            erased_at: now,
            runs_ended,
            messages_cancelled,
            events_scrubbed,
            addresses_suppressed,
        }))
    }

    /// Ends the contact's runs in flight, at the step they were at, each with its
    /// `exit` outcome as the engine records it; removes its timers and every run's
    /// bindings. Returns how many runs ended.
    async fn end_runs_erased(&mut self, contact_id: &str, now: Millis) -> Result<u64> {
        let runs = self.load_runs(contact_id).await?;
        let in_flight: Vec<&Run> = runs
            .iter()
            .filter(|r| !matches!(r.state, RunState::Ended { .. }))
            .collect();
        let exit = serde_json::json!({ "reason": "erased" });
        on_tx!(self, c => {
            for run in &in_flight {
                sqlx::query(
                    "UPDATE runs SET state = 'ended', ended_at = $2, end_reason = 'erased',
                            wait_event = NULL, until_at = NULL, updated_at = $2
                     WHERE run_id = $1",
                )
                .bind(&run.id)
                .bind(now)
                .execute(&mut *c)
                .await?;
                sqlx::query(
                    "INSERT INTO outcomes (at, contact_id, journey, run_id, step, kind, detail)
                     VALUES ($1, $2, $3, $4, $5, 'exit', $6)",
                )
                .bind(now)
                .bind(contact_id)
                .bind(&run.journey)
                .bind(&run.id)
                .bind(run.step.as_deref())
                .bind(super::json(&exit))
                .execute(&mut *c)
                .await?;
            }
            sqlx::query("UPDATE runs SET bindings = '{}' WHERE contact_id = $1")
                .bind(contact_id)
                .execute(&mut *c)
                .await?;
            sqlx::query("DELETE FROM timers WHERE contact_id = $1")
                .bind(contact_id)
                .execute(&mut *c)
                .await?;
        });
        Ok(in_flight.len() as u64)
    }

    /// Cancels the contact's unsent messages and removes every message's address and
    /// content. Returns how many were cancelled, and the addresses messages went to.
    async fn cancel_messages_erased(
        &mut self,
        contact_id: &str,
    ) -> Result<(u64, Vec<(String, String)>)> {
        on_tx!(self, c => {
            let mut addresses = Vec::new();
            for row in sqlx::query(
                "SELECT DISTINCT channel, address FROM outbox
                 WHERE contact_id = $1 AND channel IN ('email', 'sms', 'push') AND address <> ''",
            )
            .bind(contact_id)
            .fetch_all(&mut *c)
            .await?
            {
                addresses.push((row.try_get("channel")?, row.try_get("address")?));
            }
            let cancelled = sqlx::query(
                "UPDATE outbox SET state = 'failed', last_error = 'the contact was erased',
                        lease_owner = NULL, lease_expires_at = NULL
                 WHERE contact_id = $1 AND state = 'pending'",
            )
            .bind(contact_id)
            .execute(&mut *c)
            .await?
            .rows_affected();
            sqlx::query("UPDATE outbox SET address = '', payload = '{}' WHERE contact_id = $1")
                .bind(contact_id)
                .execute(&mut *c)
                .await?;
            Ok((cancelled, addresses))
        })
    }

    /// Records the hash of each address, and removes the suppression list's entries
    /// of the contact and its addresses: they hold the address in clear, and the hash
    /// blocks every message to it instead. Returns how many hashes there are.
    async fn suppress_erased(
        &mut self,
        addresses: &[(String, String)],
        contact_id: &str,
        now: Millis,
    ) -> Result<u64> {
        let mut hashes: Vec<(String, String)> = addresses
            .iter()
            .map(|(channel, address)| (channel.clone(), address_sha256(channel, address)))
            .collect();
        hashes.sort();
        hashes.dedup();
        on_tx!(self, c => {
            sqlx::query("DELETE FROM suppressions WHERE contact_id = $1")
                .bind(contact_id)
                .execute(&mut *c)
                .await?;
            for (channel, address) in addresses {
                sqlx::query("DELETE FROM suppressions WHERE channel = $1 AND address = $2")
                    .bind(channel)
                    .bind(normalise_address(channel, address))
                    .execute(&mut *c)
                    .await?;
            }
            for (channel, hash) in &hashes {
                sqlx::query(
                    "INSERT INTO erased_addresses (channel, address_sha256, erased_at)
                     VALUES ($1, $2, $3) ON CONFLICT (channel, address_sha256) DO NOTHING",
                )
                .bind(channel)
                .bind(hash)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
        });
        Ok(hashes.len() as u64)
    }

    /// Removes the payload and anonymous id of the contact's events, the history under
    /// its anonymous ids included; an open or click keeps its journey, run and step.
    /// Returns how many events were scrubbed.
    async fn scrub_events(&mut self, contact_id: &str) -> Result<u64> {
        self.index_adopted(contact_id).await?;
        on_tx!(self, c => {
            sqlx::query(
                "UPDATE events SET contact_id = $1
                 WHERE contact_id IS NULL AND anonymous_id IN
                       (SELECT anonymous_id FROM aliases WHERE contact_id = $1)",
            )
            .bind(contact_id)
            .execute(&mut *c)
            .await?;
            let rows = sqlx::query("SELECT id, name, payload FROM contact_events WHERE contact_id = $1")
                .bind(contact_id)
                .fetch_all(&mut *c)
                .await?;
            for row in &rows {
                let name: String = row.try_get("name")?;
                let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                let kept: Map<String, Json> = if ENGAGEMENT_EVENTS.contains(&name.as_str()) {
                    payload
                        .0
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| matches!(k.as_str(), "journey" | "run" | "step"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                } else {
                    Map::new()
                };
                let id: i64 = row.try_get("id")?;
                sqlx::query("UPDATE events SET payload = $2, anonymous_id = NULL WHERE id = $1")
                    .bind(id)
                    .bind(super::json(&Json::Object(kept)))
                    .execute(&mut *c)
                    .await?;
            }
            Ok(rows.len() as u64)
        })
    }

    /// Outcomes keep what statistics and traces count, not what they said.
    async fn scrub_outcomes(&mut self, contact_id: &str) -> Result<()> {
        on_tx!(self, c => {
            for row in sqlx::query("SELECT id, detail FROM outcomes WHERE contact_id = $1")
                .bind(contact_id)
                .fetch_all(&mut *c)
                .await?
            {
                let id: i64 = row.try_get("id")?;
                let detail: sqlx::types::Json<Json> = row.try_get("detail")?;
                let kept = neutral_detail(&detail.0);
                if kept != detail.0 {
                    sqlx::query("UPDATE outcomes SET detail = $2 WHERE id = $1")
                        .bind(id)
                        .bind(super::json(&kept))
                        .execute(&mut *c)
                        .await?;
                }
            }
            Ok(())
        })
    }

    /// Removes the contact's aliases, consents, tags, scores, segment memberships and
    /// traits, and marks it erased.
    async fn forget_profile(&mut self, contact_id: &str, now: Millis) -> Result<()> {
        on_tx!(self, c => {
            for delete in [
                "DELETE FROM aliases WHERE contact_id = $1",
                "DELETE FROM consents WHERE contact_id = $1",
                "DELETE FROM tags WHERE contact_id = $1",
                "DELETE FROM scores WHERE contact_id = $1",
                "DELETE FROM segment_members WHERE contact_id = $1",
            ] {
                sqlx::query(delete).bind(contact_id).execute(&mut *c).await?;
            }
            let updated = sqlx::query(
                "UPDATE contacts SET traits = '{}', time_zone = NULL, erased = TRUE,
                        erased_at = $2, updated_at = $2
                 WHERE contact_id = $1",
            )
            .bind(contact_id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if updated != 1 {
                return Err(StoreError::Corrupt(format!("contact `{contact_id}` vanished")));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
