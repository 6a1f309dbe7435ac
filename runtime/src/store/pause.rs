//! Paused journeys: the rows `cairn pause` writes and `cairn resume` deletes, what the
//! workers read of them, and what resuming and the dispatcher ask.
//!
//! A pause is one row per journey name, independent of plan versions, so it outlives
//! deploys. Held timers are not marked: the queries that take due timers leave out the
//! run timers of paused journeys (see [`super::timers`]), so held timers are never
//! loaded nor wake a worker while the pause lasts, and are due again the moment its row
//! is gone.

use super::{Result, Store, Tx, on_read, on_tx};
use crate::model::Millis;
use crate::store::outbox::ClaimedMessage;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// The skip reason of a message or an entry held back by a pause.
pub const PAUSED: &str = "paused";

/// A paused journey, as `GET /admin/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedJourney {
    pub journey: String,
    pub paused_at: Millis,
    /// Runs in flight the pause holds.
    pub runs_held: i64,
}

/// The paused journeys, share-locked on PostgreSQL until the transaction ends: a resume
/// (which deletes the row) waits for the transactions that saw the journey paused, and
/// the ones after it see it resumed.
const PAUSED_ROWS: (&str, &str) = (
    "SELECT journey, paused_at FROM paused_journeys",
    "SELECT journey, paused_at FROM paused_journeys FOR SHARE",
);

/// The events a held `wait for` waited for that arrived since the pause began, before
/// the wait's deadline: `(contact, event id)`, by contact, then time.
const WAITS_MET: &str = "SELECT DISTINCT r.contact_id, e.id, e.occurred_at
    FROM runs r
    JOIN contact_events e ON e.contact_id = r.contact_id AND e.name = r.wait_event
    WHERE r.journey = $1 AND r.state = 'waiting_for_event' AND r.step IS NOT NULL
      AND e.received_at >= $2 AND e.occurred_at < r.until_at
    ORDER BY r.contact_id, e.occurred_at, e.id";

const PAUSED_MESSAGES: (&str, &str) = (
    "SELECT o.id FROM outbox o
     JOIN runs r ON r.run_id = o.run_id
     JOIN paused_journeys p ON p.journey = r.journey
     WHERE o.id IN (SELECT value FROM json_each($1))",
    "SELECT o.id FROM outbox o
     JOIN runs r ON r.run_id = o.run_id
     JOIN paused_journeys p ON p.journey = r.journey
     WHERE o.id IN (SELECT value::bigint FROM jsonb_array_elements_text($1))",
);

const RUNS_IN_FLIGHT: &str =
    "SELECT COUNT(*) AS n FROM runs WHERE journey = $1 AND state <> 'ended'";

impl Tx {
    /// The paused journeys and when each was paused (see [`PAUSED_ROWS`] for the lock).
    pub async fn paused_journeys(&mut self) -> Result<HashMap<String, Millis>> {
        let sql = self.pick(PAUSED_ROWS);
        on_tx!(self, c => {
            let rows = sqlx::query(sql).fetch_all(&mut *c).await?;
            rows.iter()
                .map(|row| Ok((row.try_get("journey")?, row.try_get("paused_at")?)))
                .collect()
        })
    }

    /// Pauses `journey` at `now`: when it was paused, and whether this call paused it
    /// (`false`: it already was, and nothing changed).
    pub async fn pause_journey(&mut self, journey: &str, now: Millis) -> Result<(Millis, bool)> {
        on_tx!(self, c => {
            let inserted = sqlx::query(
                "INSERT INTO paused_journeys (journey, paused_at) VALUES ($1, $2)
                 ON CONFLICT (journey) DO NOTHING",
            )
            .bind(journey)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            let since: i64 = sqlx::query("SELECT paused_at FROM paused_journeys WHERE journey = $1")
                .bind(journey)
                .fetch_one(&mut *c)
                .await?
                .try_get("paused_at")?;
            Ok((since, inserted == 1))
        })
    }

    /// Ends the pause of `journey`: when it began, or `None` when it was not paused.
    pub async fn unpause_journey(&mut self, journey: &str) -> Result<Option<Millis>> {
        on_tx!(self, c => {
            let row = sqlx::query("DELETE FROM paused_journeys WHERE journey = $1 RETURNING paused_at")
                .bind(journey)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.map(|r| r.try_get("paused_at")).transpose()?)
        })
    }

    /// The events that came for `journey`'s held `wait for`s since `since` (the
    /// pause), before each wait's deadline: `(contact, event id)`, by contact, then
    /// time.
    pub async fn waits_met_while_paused(
        &mut self,
        journey: &str,
        since: Millis,
    ) -> Result<Vec<(String, i64)>> {
        on_tx!(self, c => {
            let rows = sqlx::query(WAITS_MET)
                .bind(journey)
                .bind(since)
                .fetch_all(&mut *c)
                .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("contact_id")?, row.try_get("id")?)))
                .collect()
        })
    }

    /// How many run timers of `journey` are due at `now`.
    pub async fn run_timers_due(&mut self, journey: &str, now: Millis) -> Result<i64> {
        on_tx!(self, c => Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM timers
             WHERE kind = 'run' AND substr(run_id, 1, length($1) + 1) = $2 AND due_at <= $3",
        )
        .bind(journey)
        .bind(format!("{journey}/"))
        .bind(now)
        .fetch_one(&mut *c)
        .await?
        .try_get("n")?))
    }

    /// How many runs of `journey` are in flight.
    pub async fn runs_in_flight_of(&mut self, journey: &str) -> Result<i64> {
        on_tx!(self, c => Ok(sqlx::query(RUNS_IN_FLIGHT)
            .bind(journey)
            .fetch_one(&mut *c)
            .await?
            .try_get("n")?))
    }
}

impl Store {
    /// The paused journeys, by name, with the runs each holds.
    pub async fn paused_journeys(&self) -> Result<Vec<PausedJourney>> {
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT p.journey, p.paused_at,
                        (SELECT COUNT(*) FROM runs r
                         WHERE r.journey = p.journey AND r.state <> 'ended') AS runs_held
                 FROM paused_journeys p ORDER BY p.journey",
            )
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(PausedJourney {
                        journey: row.try_get("journey")?,
                        paused_at: row.try_get("paused_at")?,
                        runs_held: row.try_get("runs_held")?,
                    })
                })
                .collect()
        })
    }

    /// Ends the pauses of journeys not in `journeys` (a deploy removed them); returns
    /// their names.
    pub async fn unpause_journeys_except(&self, journeys: &[&str]) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let gone: Vec<String> = tx
            .paused_journeys()
            .await?
            .into_keys()
            .filter(|j| !journeys.contains(&j.as_str()))
            .collect();
        for journey in &gone {
            tx.unpause_journey(journey).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// The ids of `messages` whose journey is paused.
    pub async fn paused_messages(&self, messages: &[ClaimedMessage]) -> Result<HashSet<i64>> {
        if messages.is_empty() {
            return Ok(HashSet::new());
        }
        let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
        let mut tx = self.begin_read().await?;
        let sql = tx.pick(PAUSED_MESSAGES);
        let paused = on_tx!(&mut tx, c => {
            let rows = sqlx::query(sql)
                .bind(super::json(&ids))
                .fetch_all(&mut *c)
                .await?;
            rows.iter()
                .map(|row| Ok(row.try_get::<i64, _>("id")?))
                .collect::<Result<HashSet<i64>>>()?
        });
        tx.rollback().await?;
        Ok(paused)
    }

    /// Records that the dispatcher skipped `message` because its journey is paused:
    /// the row ends `failed` with `error_kind = 'paused'`, and the contact's history
    /// gets a `skip` outcome with reason `paused`. Guarded by the lease like
    /// [`Store::mark_sent`].
    pub async fn mark_paused(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
    ) -> Result<()> {
        super::retrying("recording a message skipped by a pause", || {
            self.mark_paused_once(message, owner, now)
        })
        .await
    }

    async fn mark_paused_once(
        &self,
        message: &ClaimedMessage,
        owner: &str,
        now: Millis,
    ) -> Result<()> {
        let detail = json!({
            "reason": PAUSED,
            "channel": message.channel,
            "template": message.template,
            "visit": message.visit,
        });
        let held = super::respect::HeldBack {
            error_kind: PAUSED,
            last_error: "skipped: the journey is paused",
            outcome: "skip",
            detail: &detail,
        };
        self.hold_back_once(message, owner, now, &held).await
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Effects, OutboxMessage, Run, RunState};
    use crate::store::Backend;
    use crate::store::channels::MessageFilter;
    use crate::store::contacts::EventRow;
    use crate::store::tests::on_both;
    use crate::store::timers::TimerWork;
    use serde_json::json;
    use std::borrow::Cow;
    use std::collections::{BTreeMap, HashMap};

    fn waiting(journey: &str, contact: &str, until: i64) -> Run {
        Run {
            id: format!("{journey}/{contact}/1"),
            contact_id: contact.into(),
            journey: journey.into(),
            plan_version: 1,
            step: Some("hi".into()),
            state: RunState::Waiting { until },
            bindings: BTreeMap::new(),
            entered_at: 0,
            visits: BTreeMap::new(),
        }
    }

    fn run_ids(timers: &[crate::store::timers::ClaimedTimer]) -> Vec<&str> {
        timers
            .iter()
            .filter_map(|t| match &t.work {
                TimerWork::Run { run_id } => Some(run_id.as_str()),
                TimerWork::Wakeup { .. } => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn paused_timers_are_not_taken_and_resuming_makes_them_due() {
        on_both("pause", |store| async move {
            let plan = cairn_plan::Plan::new("test");
            // Ana waits in `welcome` until 100 and has a message queued; Bob waits in
            // `welcome_back` (a name `welcome` is a prefix of) until 200; Cem waits
            // for `confirmed` in `welcome`.
            let mut cem = waiting("welcome", "cem", 0);
            cem.state = RunState::WaitingForEvent {
                event: "confirmed".into(),
                until: 10_000,
            };
            let mut tx = store.begin().await.expect("begin");
            for (run, message) in [
                (waiting("welcome", "ana", 100), true),
                (waiting("welcome_back", "bob", 200), false),
                (cem, false),
            ] {
                let mut state = tx.load_state(&run.contact_id, 0).await.expect("state");
                let messages = message.then(|| OutboxMessage {
                    run_id: run.id.clone(),
                    step: "hi".into(),
                    visit: 1,
                    channel: "email".into(),
                    template: None,
                    address: "ana@example.com".into(),
                    payload: json!({"subject": "Hi"}),
                    not_before: 0,
                });
                let effects = Effects {
                    runs: vec![run],
                    messages: messages.into_iter().collect(),
                    ..Effects::default()
                };
                tx.apply_effects(&mut state, &effects, &plan, 0)
                    .await
                    .expect("apply");
            }
            assert_eq!(
                tx.pause_journey("welcome", 50).await.expect("pause"),
                (50, true)
            );
            assert_eq!(
                tx.pause_journey("welcome", 60).await.expect("again"),
                (50, false)
            );
            // Cem confirms before the pause and during it: the second counts at resume.
            let confirmed = |received_at, id: &str| EventRow {
                contact_id: Some("cem".into()),
                anonymous_id: None,
                name: Cow::Borrowed("confirmed"),
                payload: std::sync::Arc::new(json!({})),
                occurred_at: received_at - 5,
                received_at,
                message_id: id.into(),
            };
            let ids = tx
                .insert_events(&[confirmed(40, "c1"), confirmed(70, "c2")])
                .await
                .expect("events");
            let paused = tx.paused_journeys().await.expect("paused");
            assert_eq!(paused, HashMap::from([("welcome".to_string(), 50)]));
            let met = tx.waits_met_while_paused("welcome", 50).await.expect("met");
            assert_eq!(met, [("cem".to_string(), ids[1].expect("stored"))]);
            tx.commit().await.expect("commit");
            let paused = store.paused_journeys().await.expect("paused");
            assert_eq!(paused.len(), 1);
            assert_eq!(
                (
                    paused[0].journey.as_str(),
                    paused[0].paused_at,
                    paused[0].runs_held
                ),
                ("welcome", 50, 2)
            );

            // The held timer neither wakes the worker nor is taken.
            assert_eq!(store.next_timer_due().await.expect("next"), Some(200));
            if store.backend() == Backend::Sqlite {
                let mut tx = store.begin().await.expect("begin");
                let taken = tx.take_due_timers(300, 10).await.expect("take");
                assert_eq!(run_ids(&taken), ["welcome_back/bob/1"]);
                tx.rollback().await.expect("rollback");
            }
            let claimed = store
                .claim_timers("w1", 300, 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(run_ids(&claimed), ["welcome_back/bob/1"]);

            // The dispatcher skips the paused journey's message, recorded as a skip.
            let messages = store
                .claim_messages("w1", 300, 60_000, 10)
                .await
                .expect("claim");
            let held = store
                .paused_messages(&messages)
                .await
                .expect("paused messages");
            assert_eq!(held.len(), 1);
            store
                .mark_paused(&messages[0], "w1", 300)
                .await
                .expect("mark");
            let filter = MessageFilter {
                state: None,
                contact_id: Some("ana".into()),
                channel: None,
                limit: 10,
            };
            let rows = store.list_messages(&filter).await.expect("list");
            assert_eq!(
                (rows[0].state.as_str(), rows[0].error_kind.as_deref()),
                ("failed", Some("paused"))
            );
            let trace = store
                .contact_trace("ana", 10)
                .await
                .expect("trace")
                .expect("ana");
            let skip = trace
                .outcomes
                .iter()
                .find(|o| o.kind == "skip")
                .expect("a skip");
            assert_eq!(
                (skip.journey.as_deref(), &skip.detail["reason"]),
                (Some("welcome"), &json!("paused"))
            );

            // Resuming makes Ana's timer due at once; resuming again changes nothing.
            let mut tx = store.begin().await.expect("begin");
            assert_eq!(tx.run_timers_due("welcome", 300).await.expect("due"), 1);
            assert_eq!(
                tx.unpause_journey("welcome").await.expect("resume"),
                Some(50)
            );
            assert_eq!(tx.unpause_journey("welcome").await.expect("again"), None);
            tx.commit().await.expect("commit");
            assert_eq!(store.next_timer_due().await.expect("next"), Some(100));
            let claimed = store
                .claim_timers("w2", 300, 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(run_ids(&claimed), ["welcome/ana/1"]);
        })
        .await;
    }
}
