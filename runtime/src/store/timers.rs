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

const CLAIM_POSTGRES: &str = "UPDATE timers
    SET lease_owner = $1, lease_expires_at = $2, attempt = attempt + 1
    WHERE id IN (
        SELECT id FROM timers
        WHERE due_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at <= $3)
        ORDER BY due_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED)
    RETURNING id, key, kind, contact_id, run_id, detail, due_at, attempt";

// The single SQLite writer serialises claims; there is nothing to skip.
const CLAIM_SQLITE: &str = "UPDATE timers
    SET lease_owner = $1, lease_expires_at = $2, attempt = attempt + 1
    WHERE id IN (
        SELECT id FROM timers
        WHERE due_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at <= $3)
        ORDER BY due_at
        LIMIT $4)
    RETURNING id, key, kind, contact_id, run_id, detail, due_at, attempt";

const RELEASE_TIMERS: (&str, &str) = (
    "DELETE FROM timers WHERE lease_owner = $2 AND (id, attempt) IN
        (SELECT value->>0, value->>1 FROM json_each($1))
     RETURNING id",
    "DELETE FROM timers WHERE lease_owner = $2 AND (id, attempt) IN
        (SELECT (value->>0)::bigint, (value->>1)::bigint FROM jsonb_array_elements($1))
     RETURNING id",
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
    /// worker also polls, which picks up timers whose lease expired.)
    pub async fn next_timer_due(&self) -> Result<Option<Millis>> {
        super::on_read!(self, c => {
            let row = sqlx::query("SELECT MIN(due_at) AS due FROM timers WHERE lease_owner IS NULL")
                .fetch_one(&mut *c)
                .await?;
            Ok(row.try_get::<Option<i64>, _>("due")?)
        })
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
