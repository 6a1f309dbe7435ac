//! Contacts, their identities, events, consents, tags, scores and segments: what the
//! engine reads about a contact, loaded inside the transaction that moves it.

use super::effects::States;
use super::{Result, StoreError, Tx, json, on_tx};
use crate::model::{Contact, EndReason, EventRecord, Millis, Run, RunState, SentMessage};
use serde_json::{Map, Value as Json};
use sqlx::Row;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Everything the engine reads about one contact, kept in step with the writes of the
/// transaction so a batch can feed several events of one contact in a row.
#[derive(Debug, Clone, Default)]
pub struct ContactState {
    pub contact: Contact,
    /// Oldest first.
    pub history: Vec<EventRecord>,
    /// Every run of the contact, ended ones included (re-entry reads them).
    pub runs: Vec<Run>,
    /// The contact row did not exist before this transaction.
    pub created: bool,
}

impl ContactState {
    /// A contact [`Tx::ensure_contacts`] created at `now` in this transaction, as
    /// [`Tx::load_states`] would read it back: its row holds no traits, and nothing else
    /// refers to it yet (unless history was merged into it, which must be read).
    pub fn created(id: &str, now: Millis) -> ContactState {
        ContactState {
            contact: Contact {
                id: id.to_string(),
                created_at: now,
                ..Contact::default()
            },
            history: Vec::new(),
            runs: Vec::new(),
            created: true,
        }
    }

    /// The runs still in flight.
    pub fn active_runs(&self) -> Vec<Run> {
        self.runs
            .iter()
            .filter(|r| !matches!(r.state, RunState::Ended { .. }))
            .cloned()
            .collect()
    }
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub contact_id: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub name: &'a str,
    pub payload: &'a Json,
    pub occurred_at: Millis,
    pub received_at: Millis,
    pub message_id: Option<&'a str>,
}

impl Tx {
    /// Locks the contacts' rows, in one order everywhere (sorted ids), so transactions
    /// that move the same contacts queue instead of interleaving or deadlocking. On
    /// SQLite the single writer already serialises every write transaction.
    pub async fn lock_contacts(&mut self, ids: &[&str]) -> Result<()> {
        if let Tx::Postgres(t) = self {
            let mut sorted: Vec<&str> = ids.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            sqlx::query(
                "SELECT contact_id FROM contacts WHERE contact_id = ANY($1)
                 ORDER BY contact_id FOR UPDATE",
            )
            .bind(&sorted)
            .fetch_all(&mut **t)
            .await?;
        }
        Ok(())
    }

    /// Creates the contact when missing. Returns whether it was created. Call before
    /// [`Tx::lock_contacts`] so the lock has a row to take.
    pub async fn ensure_contact(&mut self, id: &str, now: Millis) -> Result<bool> {
        let inserted = on_tx!(self, c => sqlx::query(
            "INSERT INTO contacts (contact_id, traits, created_at, updated_at)
             VALUES ($1, '{}', $2, $2) ON CONFLICT (contact_id) DO NOTHING",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(inserted > 0)
    }

    /// The contact with its consents, tags, scores and segments; `None` when unknown.
    pub async fn load_contact(&mut self, id: &str) -> Result<Option<Contact>> {
        on_tx!(self, c => {
            let Some(row) = sqlx::query(
                "SELECT contact_id, traits, time_zone, created_at, erased
                 FROM contacts WHERE contact_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
            else {
                return Ok(None);
            };
            let traits: sqlx::types::Json<BTreeMap<String, Json>> = row.try_get("traits")?;
            let mut contact = Contact {
                id: row.try_get("contact_id")?,
                traits: traits.0,
                created_at: row.try_get("created_at")?,
                time_zone: row.try_get("time_zone")?,
                erased: row.try_get("erased")?,
                ..Contact::default()
            };
            for row in sqlx::query("SELECT consent, granted FROM consents WHERE contact_id = $1")
                .bind(id)
                .fetch_all(&mut *c)
                .await?
            {
                contact.consents.insert(row.try_get("consent")?, row.try_get("granted")?);
            }
            for row in sqlx::query("SELECT tag, added_at FROM tags WHERE contact_id = $1")
                .bind(id)
                .fetch_all(&mut *c)
                .await?
            {
                contact.tags.insert(row.try_get("tag")?, row.try_get("added_at")?);
            }
            for row in sqlx::query("SELECT score, value FROM scores WHERE contact_id = $1")
                .bind(id)
                .fetch_all(&mut *c)
                .await?
            {
                contact.scores.insert(row.try_get("score")?, row.try_get("value")?);
            }
            for row in
                sqlx::query("SELECT segment, entered_at FROM segment_members WHERE contact_id = $1")
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?
            {
                contact.segments.insert(row.try_get("segment")?, row.try_get("entered_at")?);
            }
            Ok(Some(contact))
        })
    }

    /// The contact's events, oldest first (by time, then by arrival).
    pub async fn load_history(&mut self, id: &str) -> Result<Vec<EventRecord>> {
        on_tx!(self, c => {
            let rows = sqlx::query(
                "SELECT id, name, payload, occurred_at FROM contact_events
                 WHERE contact_id = $1 ORDER BY occurred_at, id",
            )
            .bind(id)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                    Ok(EventRecord {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        payload: Arc::new(payload.0),
                        occurred_at: row.try_get("occurred_at")?,
                    })
                })
                .collect()
        })
    }

    /// Every run of the contact, ended ones included, oldest entry first.
    pub async fn load_runs(&mut self, id: &str) -> Result<Vec<Run>> {
        on_tx!(self, c => {
            let rows = sqlx::query(RUN_COLUMNS_WHERE_CONTACT)
                .bind(id)
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(run_from_row).collect()
        })
    }

    /// The messages queued for the contact, which frequency caps count.
    pub async fn load_sends(&mut self, id: &str) -> Result<Vec<SentMessage>> {
        on_tx!(self, c => {
            let rows = sqlx::query(
                "SELECT created_at, channel, marketing FROM outbox
                 WHERE contact_id = $1 ORDER BY created_at",
            )
            .bind(id)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(SentMessage {
                        at: row.try_get("created_at")?,
                        channel: row.try_get("channel")?,
                        marketing: row.try_get("marketing")?,
                    })
                })
                .collect()
        })
    }

    /// One run by id.
    pub async fn load_run(&mut self, run_id: &str) -> Result<Option<Run>> {
        on_tx!(self, c => {
            let row = sqlx::query(RUN_COLUMNS_WHERE_ID)
                .bind(run_id)
                .fetch_optional(&mut *c)
                .await?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    /// Creates the contact when missing, locks it, and loads what the engine reads.
    pub async fn load_state(&mut self, id: &str, now: Millis) -> Result<ContactState> {
        let created = self.ensure_contact(id, now).await?;
        self.lock_contacts(&[id]).await?;
        self.load_state_locked(id, created).await
    }

    /// [`Tx::load_state`] for a contact already created and locked.
    pub async fn load_state_locked(&mut self, id: &str, created: bool) -> Result<ContactState> {
        let mut contact = self
            .load_contact(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("contact `{id}` vanished")))?;
        let history = self.load_history(id).await?;
        let runs = self.load_runs(id).await?;
        contact.entries = super::effects::entries(&runs);
        contact.sends = self.load_sends(id).await?;
        Ok(ContactState {
            contact,
            history,
            runs,
            created,
        })
    }

    /// Writes the contact's traits (and the time zone they name) as they are in `contact`.
    pub async fn save_traits(&mut self, contact: &Contact, now: Millis) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "UPDATE contacts SET traits = $2, time_zone = $3, updated_at = $4
             WHERE contact_id = $1",
        )
        .bind(&contact.id)
        .bind(json(&contact.traits))
        .bind(contact.time_zone.as_deref())
        .bind(now)
        .execute(&mut *c)
        .await?.rows_affected());
        Ok(())
    }

    /// Stores an event; `None` when its `messageId` was seen before (nothing stored).
    pub async fn insert_event(&mut self, event: &NewEvent<'_>) -> Result<Option<i64>> {
        on_tx!(self, c => {
            let row = sqlx::query(
                "INSERT INTO events
                   (contact_id, anonymous_id, name, payload, occurred_at, received_at, message_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (message_id) DO NOTHING
                 RETURNING id",
            )
            .bind(event.contact_id)
            .bind(event.anonymous_id)
            .bind(event.name)
            .bind(json(event.payload))
            .bind(event.occurred_at)
            .bind(event.received_at)
            .bind(event.message_id)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.map(|r| r.try_get("id")).transpose()?)
        })
    }

    /// Whether an event with this `messageId` is stored.
    pub async fn has_message(&mut self, message_id: &str) -> Result<bool> {
        on_tx!(self, c => {
            let row = sqlx::query("SELECT 1 AS one FROM events WHERE message_id = $1")
                .bind(message_id)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.is_some())
        })
    }

    /// The contact an anonymous id was merged into.
    pub async fn resolve_alias(&mut self, anonymous_id: &str) -> Result<Option<String>> {
        on_tx!(self, c => {
            let row = sqlx::query("SELECT contact_id FROM aliases WHERE anonymous_id = $1")
                .bind(anonymous_id)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.map(|r| r.try_get("contact_id")).transpose()?)
        })
    }

    /// Merges an anonymous id into a contact: later events under the id belong to the
    /// contact, and so does the history recorded under it so far. The first merge of an
    /// id wins. Returns how many stored events moved.
    pub async fn merge_alias(
        &mut self,
        anonymous_id: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<u64> {
        self.index_merged(anonymous_id, contact_id).await?;
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO aliases (anonymous_id, contact_id, merged_at) VALUES ($1, $2, $3)
                 ON CONFLICT (anonymous_id) DO NOTHING",
            )
            .bind(anonymous_id)
            .bind(contact_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
            let moved = sqlx::query(
                "UPDATE events SET contact_id = $1 WHERE anonymous_id = $2 AND contact_id IS NULL",
            )
            .bind(contact_id)
            .bind(anonymous_id)
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(moved)
        })
    }

    /// Grants or revokes a consent.
    pub async fn set_consent(
        &mut self,
        contact_id: &str,
        consent: &str,
        granted: bool,
        source: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        on_tx!(self, c => sqlx::query(
            "INSERT INTO consents (contact_id, consent, granted, source, changed_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (contact_id, consent) DO UPDATE
             SET granted = excluded.granted, source = excluded.source,
                 changed_at = excluded.changed_at",
        )
        .bind(contact_id)
        .bind(consent)
        .bind(granted)
        .bind(source)
        .bind(now)
        .execute(&mut *c)
        .await?.rows_affected());
        Ok(())
    }
}

/// An event to store in a bulk insert. Every row has a `message_id` (generated when
/// the client sent none), by which the inserted ids are matched back. Name and payload
/// come from the request (the name borrowed, the payload shared): a busy ingest copies
/// nothing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow<'a> {
    pub contact_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub name: Cow<'a, str>,
    pub payload: Arc<Json>,
    pub occurred_at: Millis,
    pub received_at: Millis,
    pub message_id: String,
}

const ENSURE_CONTACTS: (&str, &str) = (
    "INSERT INTO contacts (contact_id, traits, created_at, updated_at)
     SELECT value, '{}', $2, $2 FROM jsonb_each($1) WHERE true
     ON CONFLICT (contact_id) DO NOTHING
     RETURNING contact_id",
    "INSERT INTO contacts (contact_id, traits, created_at, updated_at)
     SELECT id, '{}', $2, $2 FROM jsonb_array_elements_text($1) AS ids(id)
     ON CONFLICT (contact_id) DO NOTHING
     RETURNING contact_id",
);

const LOAD_CONTACTS: (&str, &str) = (
    "SELECT contact_id, traits, time_zone, created_at, erased FROM contacts
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, traits, time_zone, created_at, erased FROM contacts
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);
const LOAD_CONSENTS: (&str, &str) = (
    "SELECT contact_id, consent, granted FROM consents
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, consent, granted FROM consents
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);
const LOAD_TAGS: (&str, &str) = (
    "SELECT contact_id, tag, added_at FROM tags
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, tag, added_at FROM tags
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);
const LOAD_SCORES: (&str, &str) = (
    "SELECT contact_id, score, value FROM scores
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, score, value FROM scores
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);
const LOAD_SEGMENTS: (&str, &str) = (
    "SELECT contact_id, segment, entered_at FROM segment_members
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, segment, entered_at FROM segment_members
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);
const LOAD_EVENTS: (&str, &str) = (
    "SELECT contact_id, id, name, payload, occurred_at FROM contact_events
     WHERE contact_id IN (SELECT value FROM jsonb_each($1)) ORDER BY occurred_at, id",
    "SELECT contact_id, id, name, payload, occurred_at FROM contact_events
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1)) ORDER BY occurred_at, id",
);
const LOAD_RUNS: (&str, &str) = (
    "SELECT run_id, contact_id, journey, plan_version, step, state, wait_event, until_at,
            bindings, visits, entered_at, ended_at, end_reason FROM runs
     WHERE contact_id IN (SELECT value FROM jsonb_each($1)) ORDER BY entered_at, run_id",
    "SELECT run_id, contact_id, journey, plan_version, step, state, wait_event, until_at,
            bindings, visits, entered_at, ended_at, end_reason FROM runs
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1)) ORDER BY entered_at, run_id",
);
const LOAD_SENDS: (&str, &str) = (
    "SELECT contact_id, created_at, channel, marketing FROM outbox
     WHERE contact_id IN (SELECT value FROM jsonb_each($1)) ORDER BY created_at",
    "SELECT contact_id, created_at, channel, marketing FROM outbox
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1)) ORDER BY created_at",
);
const INSERT_EVENTS: (&str, &str) = (
    "INSERT INTO events (contact_id, anonymous_id, name, payload, occurred_at, received_at,
                         message_id)
     SELECT value->>'contact_id', value->>'anonymous_id', value->>'name', value->'payload',
            value->>'occurred_at', value->>'received_at', value->>'message_id'
     FROM jsonb_each($1) WHERE true
     ON CONFLICT (message_id) DO NOTHING
     RETURNING id, message_id",
    "INSERT INTO events (contact_id, anonymous_id, name, payload, occurred_at, received_at,
                         message_id)
     SELECT x.contact_id, x.anonymous_id, x.name, x.payload, x.occurred_at, x.received_at,
            x.message_id
     FROM jsonb_to_recordset($1) AS x(contact_id text, anonymous_id text, name text,
            payload jsonb, occurred_at bigint, received_at bigint, message_id text)
     ON CONFLICT (message_id) DO NOTHING
     RETURNING id, message_id",
);

impl Tx {
    /// Creates the contacts that are missing; returns those created.
    pub async fn ensure_contacts(
        &mut self,
        ids: &[String],
        now: Millis,
    ) -> Result<HashSet<String>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = self.pick(ENSURE_CONTACTS);
        on_tx!(self, c => {
            let rows = sqlx::query(sql)
                .bind(json(&ids))
                .bind(now)
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(|r| Ok(r.try_get::<String, _>("contact_id")?)).collect()
        })
    }

    /// Loads what the engine reads about each contact, a few statements for them all.
    /// The contacts must exist (see [`Tx::ensure_contacts`]); `created` marks those
    /// created by this transaction.
    pub async fn load_states(
        &mut self,
        ids: &[String],
        created: &HashSet<String>,
    ) -> Result<States> {
        let mut states: States = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(states);
        }
        let sqls = [
            self.pick(LOAD_CONTACTS),
            self.pick(LOAD_CONSENTS),
            self.pick(LOAD_TAGS),
            self.pick(LOAD_SCORES),
            self.pick(LOAD_SEGMENTS),
            self.pick(LOAD_EVENTS),
            self.pick(LOAD_RUNS),
            self.pick(LOAD_SENDS),
        ];
        on_tx!(self, c => {
            let fetch = async |c: &mut _, sql: &'static str| {
                sqlx::query(sql).bind(json(&ids)).fetch_all(c).await
            };
            for row in fetch(&mut *c, sqls[0]).await? {
                let traits: sqlx::types::Json<BTreeMap<String, Json>> = row.try_get("traits")?;
                let id: String = row.try_get("contact_id")?;
                let contact = Contact {
                    id: id.clone(),
                    traits: traits.0,
                    created_at: row.try_get("created_at")?,
                    time_zone: row.try_get("time_zone")?,
                    erased: row.try_get("erased")?,
                    ..Contact::default()
                };
                let created = created.contains(&id);
                states.insert(id, Box::new(ContactState { contact, history: Vec::new(), runs: Vec::new(), created }));
            }
            for row in fetch(&mut *c, sqls[1]).await? {
                if let Some(s) = states.get_mut(&row.try_get::<String, _>("contact_id")?) {
                    s.contact.consents.insert(row.try_get("consent")?, row.try_get("granted")?);
                }
            }
            for row in fetch(&mut *c, sqls[2]).await? {
                if let Some(s) = states.get_mut(&row.try_get::<String, _>("contact_id")?) {
                    s.contact.tags.insert(row.try_get("tag")?, row.try_get("added_at")?);
                }
            }
            for row in fetch(&mut *c, sqls[3]).await? {
                if let Some(s) = states.get_mut(&row.try_get::<String, _>("contact_id")?) {
                    s.contact.scores.insert(row.try_get("score")?, row.try_get("value")?);
                }
            }
            for row in fetch(&mut *c, sqls[4]).await? {
                if let Some(s) = states.get_mut(&row.try_get::<String, _>("contact_id")?) {
                    s.contact.segments.insert(row.try_get("segment")?, row.try_get("entered_at")?);
                }
            }
            for row in fetch(&mut *c, sqls[5]).await? {
                if let Some(s) = states.get_mut(&row.try_get::<String, _>("contact_id")?) {
                    let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                    s.history.push(EventRecord {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        payload: Arc::new(payload.0),
                        occurred_at: row.try_get("occurred_at")?,
                    });
                }
            }
            for row in fetch(&mut *c, sqls[6]).await? {
                let run = run_from_row(&row)?;
                if let Some(s) = states.get_mut(&run.contact_id) {
                    s.runs.push(run);
                }
            }
            for row in fetch(&mut *c, sqls[7]).await? {
                if let Some(s) = states.get_mut(&row.try_get::<String, _>("contact_id")?) {
                    s.contact.sends.push(SentMessage {
                        at: row.try_get("created_at")?,
                        channel: row.try_get("channel")?,
                        marketing: row.try_get("marketing")?,
                    });
                }
            }
        });
        for state in states.values_mut() {
            state.contact.entries = super::effects::entries(&state.runs);
        }
        Ok(states)
    }

    /// Stores events in one statement; returns each row's id, or `None` for a row
    /// whose `message_id` was seen before (in the database or earlier in `rows`).
    pub async fn insert_events(&mut self, rows: &[EventRow<'_>]) -> Result<Vec<Option<i64>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.pick(INSERT_EVENTS);
        // On SQLite, the rows as arrays read by position (see `positional`).
        let positional = match self {
            Tx::Sqlite(_) => super::positional::positional(INSERT_EVENTS.0, rows),
            Tx::Postgres(_) => None,
        };
        let inserted: HashMap<String, i64> = on_tx!(self, c => {
            let returned = match &positional {
                Some(p) => {
                    sqlx::query(sqlx::AssertSqlSafe(p.sql.clone()))
                        .bind(p.rows.as_str())
                        .fetch_all(&mut *c)
                        .await?
                }
                None => sqlx::query(sql).bind(json(&rows)).fetch_all(&mut *c).await?,
            };
            returned
                .iter()
                .map(|r| Ok((r.try_get::<String, _>("message_id")?, r.try_get::<i64, _>("id")?)))
                .collect::<Result<HashMap<_, _>>>()?
        });
        let mut seen = HashSet::new();
        Ok(rows
            .iter()
            .map(|row| {
                if seen.insert(row.message_id.as_str()) {
                    inserted.get(&row.message_id).copied()
                } else {
                    None
                }
            })
            .collect())
    }
}

const RUN_COLUMNS_WHERE_CONTACT: &str = "SELECT run_id, contact_id, journey, plan_version, step,
    state, wait_event, until_at, bindings, visits, entered_at, ended_at, end_reason FROM runs
    WHERE contact_id = $1 ORDER BY entered_at, run_id";
const RUN_COLUMNS_WHERE_ID: &str = "SELECT run_id, contact_id, journey, plan_version, step,
    state, wait_event, until_at, bindings, visits, entered_at, ended_at, end_reason FROM runs
    WHERE run_id = $1";

/// The columns of a run's state: (state, wait_event, until_at, ended_at, end_reason).
pub(crate) type StateColumns = (
    &'static str,
    Option<String>,
    Option<Millis>,
    Option<Millis>,
    Option<&'static str>,
);

pub(crate) fn state_columns(state: &RunState) -> StateColumns {
    match state {
        RunState::Ready => ("ready", None, None, None, None),
        RunState::Waiting { until } => ("waiting", None, Some(*until), None, None),
        RunState::WaitingForEvent { event, until } => (
            "waiting_for_event",
            Some(event.clone()),
            Some(*until),
            None,
            None,
        ),
        RunState::Paused => ("paused", None, None, None, None),
        RunState::Ended { reason, at } => ("ended", None, None, Some(*at), Some(reason.as_str())),
    }
}

fn end_reason(text: &str) -> Option<EndReason> {
    Some(match text {
        "completed" => EndReason::Completed,
        "goal" => EndReason::Goal,
        "exit_condition" => EndReason::ExitCondition,
        "timeout" => EndReason::Timeout,
        "erased" => EndReason::Erased,
        _ => return None,
    })
}

fn run_from_row<R>(row: &R) -> Result<Run>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> sqlx::types::Json<BTreeMap<String, Json>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> sqlx::types::Json<BTreeMap<String, u32>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("run_id")?;
    let state: String = row.try_get("state")?;
    let until: Option<Millis> = row.try_get("until_at")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("run `{id}`: {what}"));
    let state = match state.as_str() {
        "ready" => RunState::Ready,
        "waiting" => RunState::Waiting {
            until: until.ok_or_else(|| corrupt("waiting without a time"))?,
        },
        "waiting_for_event" => RunState::WaitingForEvent {
            event: row
                .try_get::<Option<String>, _>("wait_event")?
                .ok_or_else(|| corrupt("waiting for no event"))?,
            until: until.ok_or_else(|| corrupt("waiting without a time"))?,
        },
        "paused" => RunState::Paused,
        "ended" => {
            let reason: Option<String> = row.try_get("end_reason")?;
            RunState::Ended {
                reason: reason
                    .as_deref()
                    .and_then(end_reason)
                    .ok_or_else(|| corrupt("an unknown end reason"))?,
                at: row
                    .try_get::<Option<i64>, _>("ended_at")?
                    .ok_or_else(|| corrupt("ended without a time"))?,
            }
        }
        other => return Err(corrupt(&format!("unknown state `{other}`"))),
    };
    let bindings: sqlx::types::Json<BTreeMap<String, Json>> = row.try_get("bindings")?;
    let visits: sqlx::types::Json<BTreeMap<String, u32>> = row.try_get("visits")?;
    Ok(Run {
        contact_id: row.try_get("contact_id")?,
        journey: row.try_get("journey")?,
        plan_version: row.try_get("plan_version")?,
        step: row.try_get("step")?,
        state,
        bindings: bindings.0,
        entered_at: row.try_get("entered_at")?,
        visits: visits.0,
        id,
    })
}

/// Merges `patch` into `traits`: a `null` trait removes the field.
pub fn merge_traits(traits: &mut BTreeMap<String, Json>, patch: &Map<String, Json>) {
    for (key, value) in patch {
        if value.is_null() {
            traits.remove(key);
        } else {
            traits.insert(key.clone(), value.clone());
        }
    }
}
