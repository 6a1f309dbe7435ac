//! Durable timers: claiming due ones with a lease, and releasing them guarded by it.
//!
//! A worker claims a batch in a short transaction of its own (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so daemons sharing a database take disjoint rows), which
//! stamps each row with the worker's id, a lease expiry and a new attempt number. The
//! transaction that then acts on a timer first deletes it *guarded by owner and attempt*:
//! zero rows means the lease was lost (it expired and another worker took the row, or an
//! event moved the timer) and that timer's work is not done. A worker that dies leaves
//! its rows to be claimed again when the lease expires.

use super::{Result, Store, Tx, on_tx};
use crate::model::{Millis, WakeupReason};
use sqlx::Row;

/// A timer a worker holds the lease of.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTimer {
    pub id: i64,
    pub key: String,
    pub contact_id: String,
    pub due_at: Millis,
    pub attempt: i64,
    pub work: TimerWork,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TimerWork {
    /// A run's wait ended, a deferred send may go, or a `wait for` timed out.
    Run { run_id: String },
    /// Contact-level work.
    Wakeup { reason: WakeupReason },
}

/// The condition that leaves out the run timers of paused journeys (a run's id starts
/// with its journey's name and `/`): they are held, not due, until the journey resumes.
/// Each due timer passed over costs a lookup in the small (usually empty)
/// `paused_journeys` table.
macro_rules! not_held {
    () => {
        "NOT EXISTS (SELECT 1 FROM paused_journeys p WHERE timers.kind = 'run'
            AND substr(timers.run_id, 1, length(p.journey) + 1) = p.journey || '/')"
    };
}

const CLAIM_POSTGRES: &str = concat!(
    "UPDATE timers
    SET lease_owner = $1, lease_expires_at = $2, attempt = attempt + 1
    WHERE id IN (
        SELECT id FROM timers
        WHERE due_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at <= $3) AND ",
    not_held!(),
    "
        ORDER BY due_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED)
    RETURNING id, key, kind, contact_id, run_id, detail, due_at, attempt"
);

// The single SQLite writer serialises claims; there is nothing to skip.
const CLAIM_SQLITE: &str = concat!(
    "UPDATE timers
    SET lease_owner = $1, lease_expires_at = $2, attempt = attempt + 1
    WHERE id IN (
        SELECT id FROM timers
        WHERE due_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at <= $3) AND ",
    not_held!(),
    "
        ORDER BY due_at
        LIMIT $4)
    RETURNING id, key, kind, contact_id, run_id, detail, due_at, attempt"
);

// A SQLite daemon is the store's one worker: it deletes due timers in the transaction
// that runs them, with no lease.
const DUE_SQLITE: &str = concat!(
    "SELECT id, key, kind, contact_id, run_id, detail, due_at, attempt
    FROM timers
    WHERE due_at <= $1 AND (lease_expires_at IS NULL OR lease_expires_at <= $1) AND ",
    not_held!(),
    "
    ORDER BY due_at
    LIMIT $2"
);
const DELETE_TIMERS_BY_ID: &str =
    "DELETE FROM timers WHERE id IN (SELECT value FROM json_each($1))";
/// Timers this binary cannot run are set aside for an hour, as a lease would.
const SET_ASIDE_TIMERS: &str = "UPDATE timers SET lease_expires_at = $2, attempt = attempt + 1
    WHERE id IN (SELECT value FROM json_each($1))";
const SET_ASIDE_FOR: Millis = 3_600_000;

const RELEASE_TIMERS: (&str, &str) = (
    "DELETE FROM timers WHERE lease_owner = $2 AND (id, attempt) IN
        (SELECT value->>0, value->>1 FROM jsonb_each($1))
     RETURNING id",
    "DELETE FROM timers WHERE lease_owner = $2 AND (id, attempt) IN
        (SELECT (value->>0)::bigint, (value->>1)::bigint FROM jsonb_array_elements($1))
     RETURNING id",
);

const UNCLAIM_TIMERS: (&str, &str) = (
    "UPDATE timers SET lease_owner = NULL, lease_expires_at = NULL
     WHERE lease_owner = $2 AND (id, attempt) IN
        (SELECT value->>0, value->>1 FROM jsonb_each($1))",
    "UPDATE timers SET lease_owner = NULL, lease_expires_at = NULL
     WHERE lease_owner = $2 AND (id, attempt) IN
        (SELECT (value->>0)::bigint, (value->>1)::bigint FROM jsonb_array_elements($1))",
);

impl Store {
    /// Claims up to `limit` timers due at `now` for `owner` until `lease_until`, in a
    /// transaction of its own. They come back ordered by due time.
    pub async fn claim_timers(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<ClaimedTimer>> {
        let mut tx = self.begin().await?;
        let claimed = tx.claim_timers(owner, now, lease_until, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// When the next unleased timer is due, if any: how long a worker may sleep. (A
    /// worker also polls, which picks up timers whose lease expired.) Held timers of
    /// paused journeys do not count, so they never wake the worker.
    pub async fn next_timer_due(&self) -> Result<Option<Millis>> {
        super::on_read!(self, c => {
            let sql = concat!(
                "SELECT MIN(due_at) AS due FROM timers WHERE lease_owner IS NULL AND ",
                not_held!()
            );
            let row = sqlx::query(sql)
                .fetch_one(&mut *c)
                .await?;
            Ok(row.try_get::<Option<i64>, _>("due")?)
        })
    }

    /// Gives back timers this worker claimed but could not run (their transaction
    /// failed for good), so they are claimed again at once rather than when the lease
    /// expires. Best effort: a timer not given back waits for its lease.
    pub async fn unclaim_timers(&self, timers: &[ClaimedTimer], owner: &str) -> Result<u64> {
        if timers.is_empty() {
            return Ok(0);
        }
        let pairs: Vec<(i64, i64)> = timers.iter().map(|t| (t.id, t.attempt)).collect();
        let mut tx = self.begin().await?;
        let sql = tx.pick(UNCLAIM_TIMERS);
        let freed = on_tx!(&mut tx, c => sqlx::query(sql)
            .bind(super::json(&pairs))
            .bind(owner)
            .execute(&mut *c)
            .await?
            .rows_affected());
        tx.commit().await?;
        Ok(freed)
    }

    /// Frees every lease on timers and outbox messages, so their work is claimed again
    /// at once. Only for a daemon that knows it is the store's one worker: a SQLite
    /// daemon at start, holding the file's daemon lock, whose predecessor may have died
    /// holding leases. The guards still hold: work a dead worker claimed is redone by a
    /// new claim (a new attempt), and the outbox's idempotency keys keep a message from
    /// being queued twice.
    pub async fn release_all_leases(&self) -> Result<(u64, u64)> {
        let mut tx = self.begin().await?;
        let freed = on_tx!(&mut tx, c => {
            let timers = sqlx::query(
                "UPDATE timers SET lease_owner = NULL, lease_expires_at = NULL
                 WHERE lease_owner IS NOT NULL",
            )
            .execute(&mut *c)
            .await?
            .rows_affected();
            let messages = sqlx::query(
                "UPDATE outbox SET lease_owner = NULL, lease_expires_at = NULL
                 WHERE lease_owner IS NOT NULL AND state = 'pending'",
            )
            .execute(&mut *c)
            .await?
            .rows_affected();
            (timers, messages)
        });
        tx.commit().await?;
        Ok(freed)
    }

    /// How many timers are due at `now`, and how late the oldest is (ms).
    pub async fn timers_due(&self, now: Millis) -> Result<(i64, Millis)> {
        super::on_read!(self, c => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(due_at) AS oldest FROM timers WHERE due_at <= $1",
            )
            .bind(now)
            .fetch_one(&mut *c)
            .await?;
            let n: i64 = row.try_get("n")?;
            let oldest: Option<i64> = row.try_get("oldest")?;
            Ok((n, oldest.map_or(0, |o| now - o)))
        })
    }
}

impl Tx {
    async fn claim_timers(
        &mut self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<ClaimedTimer>> {
        let sql = match self {
            Tx::Sqlite(_) => CLAIM_SQLITE,
            Tx::Postgres(_) => CLAIM_POSTGRES,
        };
        let mut claimed = on_tx!(self, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
            rows.iter()
                .filter_map(|row| claimed_from_row(row).transpose())
                .collect::<Result<Vec<_>>>()?
        });
        claimed.sort_by_key(|t| (t.due_at, t.id));
        Ok(claimed)
    }

    /// Deletes and returns up to `limit` timers due at `now`, ordered by due time, for
    /// this transaction to run: only on SQLite, where one daemon works the store and
    /// a rolled-back transaction puts them all back. On PostgreSQL, claim them with a
    /// lease ([`Store::claim_timers`]).
    pub async fn take_due_timers(&mut self, now: Millis, limit: i64) -> Result<Vec<ClaimedTimer>> {
        let Tx::Sqlite(c) = self else {
            return Err(super::StoreError::Conflict(
                "timers are taken without a lease only on SQLite".into(),
            ));
        };
        let rows = sqlx::query(DUE_SQLITE)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut **c)
            .await?;
        let mut taken = Vec::with_capacity(rows.len());
        let mut set_aside = Vec::new();
        for row in &rows {
            match claimed_from_row(row)? {
                Some(timer) => taken.push(timer),
                // Work this binary does not understand: leave it to a newer one.
                None => set_aside.push(row.try_get::<i64, _>("id")?),
            }
        }
        if !taken.is_empty() {
            let ids: Vec<i64> = taken.iter().map(|t| t.id).collect();
            sqlx::query(DELETE_TIMERS_BY_ID)
                .bind(super::json(&ids))
                .execute(&mut **c)
                .await?;
        }
        if !set_aside.is_empty() {
            sqlx::query(SET_ASIDE_TIMERS)
                .bind(super::json(&set_aside))
                .bind(now + SET_ASIDE_FOR)
                .execute(&mut **c)
                .await?;
        }
        taken.sort_by_key(|t| (t.due_at, t.id));
        Ok(taken)
    }

    /// [`Tx::release_timer`] for many timers in one statement: returns the ids of those
    /// this worker still held (and has now deleted).
    pub async fn release_timers(
        &mut self,
        timers: &[ClaimedTimer],
        owner: &str,
    ) -> Result<std::collections::HashSet<i64>> {
        if timers.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let pairs: Vec<(i64, i64)> = timers.iter().map(|t| (t.id, t.attempt)).collect();
        let sql = self.pick(RELEASE_TIMERS);
        on_tx!(self, c => {
            let rows = sqlx::query(sql)
                .bind(super::json(&pairs))
                .bind(owner)
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(|r| Ok(r.try_get::<i64, _>("id")?)).collect()
        })
    }

    /// Deletes a claimed timer if this worker still holds its lease: `false` means the
    /// lease was lost and the timer's work must not be done.
    pub async fn release_timer(&mut self, timer: &ClaimedTimer, owner: &str) -> Result<bool> {
        let deleted = on_tx!(self, c => sqlx::query(
            "DELETE FROM timers WHERE id = $1 AND lease_owner = $2 AND attempt = $3",
        )
        .bind(timer.id)
        .bind(owner)
        .bind(timer.attempt)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(deleted == 1)
    }
}

fn claimed_from_row<R>(row: &R) -> Result<Option<ClaimedTimer>>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<sqlx::types::Json<WakeupReason>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    let work = match kind.as_str() {
        "run" => match row.try_get::<Option<String>, _>("run_id")? {
            Some(run_id) => TimerWork::Run { run_id },
            None => return Ok(None),
        },
        _ => match row.try_get::<Option<sqlx::types::Json<WakeupReason>>, _>("detail") {
            Ok(Some(reason)) => TimerWork::Wakeup { reason: reason.0 },
            // A wakeup this binary does not understand: leave it to a newer one.
            _ => return Ok(None),
        },
    };
    Ok(Some(ClaimedTimer {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        contact_id: row.try_get("contact_id")?,
        due_at: row.try_get("due_at")?,
        attempt: row.try_get("attempt")?,
        work,
    }))
}

#[cfg(test)]
mod tests {
    use crate::model::{Effects, Run, RunState};
    use crate::store::tests::on_both;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn claims_given_back_or_freed_are_claimed_again_at_once() {
        on_both("unclaim", |store| async move {
            let plan = cairn_plan::Plan::new("test");
            let mut tx = store.begin().await.expect("begin");
            for contact in ["ana", "bob"] {
                let mut state = tx.load_state(contact, 0).await.expect("state");
                let effects = Effects {
                    runs: vec![Run {
                        id: format!("welcome/{contact}/1"),
                        contact_id: contact.into(),
                        journey: "welcome".into(),
                        plan_version: 1,
                        step: Some("hi".into()),
                        state: RunState::Waiting { until: 100 },
                        bindings: BTreeMap::new(),
                        entered_at: 0,
                        visits: BTreeMap::new(),
                    }],
                    ..Effects::default()
                };
                tx.apply_effects(&mut state, &effects, &plan, 0)
                    .await
                    .expect("apply");
            }
            tx.commit().await.expect("commit");
            let claimed = store
                .claim_timers("w1", 100, 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(claimed.len(), 2);
            let none = store
                .claim_timers("w2", 200, 60_000, 10)
                .await
                .expect("claim");
            assert!(none.is_empty(), "leased");

            // w1 gives ana's back (after its transaction failed for good); another
            // worker cannot give back what it does not hold.
            let given = store.unclaim_timers(&claimed[..1], "w2").await;
            assert_eq!(given.expect("unclaim"), 0);
            let given = store.unclaim_timers(&claimed[..1], "w1").await;
            assert_eq!(given.expect("unclaim"), 1);
            let again = store
                .claim_timers("w2", 200, 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].id, claimed[0].id);

            // A SQLite daemon starting after a crash frees every lease, bob's too.
            let freed = store.release_all_leases().await.expect("free");
            assert_eq!(freed, (2, 0));
            let all = store
                .claim_timers("w3", 200, 60_000, 10)
                .await
                .expect("claim");
            assert_eq!(all.len(), 2);
            // The dead worker's claims release nothing now.
            let mut tx = store.begin().await.expect("begin");
            let released = tx.release_timers(&claimed, "w1").await.expect("release");
            assert!(released.is_empty(), "{released:?}");
            tx.rollback().await.expect("rollback");
        })
        .await;
    }
}
