//! Deployed plan versions: each deploy is version N+1 with its hash and git commit; one
//! is active; deploying the active hash again changes nothing; a rollback re-activates
//! the version before the active one.

use super::{Result, Store, StoreError, Tx, on_read, on_tx};
use crate::inflight::{InFlight, Move};
use crate::model::Millis;
use sqlx::Row;
use std::ops::ControlFlow;

/// One stored version, without its plan text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanVersion {
    pub version: i64,
    pub content_hash: String,
    pub git_commit: Option<String>,
    pub deployed_at: Millis,
    pub active: bool,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deployed {
    pub version: i64,
    pub content_hash: String,
    /// `false` when the plan was already the active version.
    pub changed: bool,
}

/// Any number, the same in every daemon: serialises deploys on PostgreSQL.
const DEPLOY_LOCK: i64 = 0x6361_6972_6e01;

impl Store {
    /// Stores `plan_json` as the next version and activates it, unless its hash is the
    /// active one's.
    pub async fn deploy(
        &self,
        plan_json: &str,
        content_hash: &str,
        git_commit: Option<&str>,
        now: Millis,
    ) -> Result<Deployed> {
        let mut tx = match self.begin_deploy(content_hash).await? {
            ControlFlow::Continue(tx) => tx,
            ControlFlow::Break(unchanged) => return Ok(unchanged),
        };
        let version = tx
            .insert_active_version(plan_json, content_hash, git_commit, now)
            .await?;
        tx.commit().await?;
        Ok(Deployed {
            version,
            content_hash: content_hash.to_string(),
            changed: true,
        })
    }

    /// Stores `plan_json` as the next version, like [`Store::deploy`], and in the same
    /// transaction moves the runs in flight that `decide` says move: it reads every
    /// group of runs in flight (by journey, version, step and state, under a lock that
    /// holds off the engine on PostgreSQL; SQLite has one writer) and returns the moves,
    /// or a refusal that rolls everything back as a [`StoreError::Conflict`].
    /// `before_commit` runs once the moves are written and before the commit, so a
    /// daemon can drop what it cached about runs before anyone reads them again.
    pub async fn deploy_moving_runs<D, B>(
        &self,
        plan_json: &str,
        content_hash: &str,
        git_commit: Option<&str>,
        now: Millis,
        decide: D,
        before_commit: B,
    ) -> Result<Deployed>
    where
        D: FnOnce(&[InFlight]) -> std::result::Result<Vec<Move>, String>,
        B: FnOnce(),
    {
        let mut tx = match self.begin_deploy(content_hash).await? {
            ControlFlow::Continue(tx) => tx,
            ControlFlow::Break(unchanged) => return Ok(unchanged),
        };
        if let Tx::Postgres(t) = &mut tx {
            // Engine transactions write runs and timers; they wait for this one.
            sqlx::query("LOCK TABLE runs, timers IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut **t)
                .await?;
        }
        let in_flight = on_tx!(&mut tx, c => {
            let rows = sqlx::query(
                "SELECT journey, plan_version, step, state, COUNT(*) AS n FROM runs
                 WHERE state <> 'ended' AND step IS NOT NULL
                 GROUP BY journey, plan_version, step, state
                 ORDER BY journey, plan_version, step, state",
            )
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(InFlight {
                        journey: row.try_get("journey")?,
                        plan_version: row.try_get("plan_version")?,
                        step: row.try_get("step")?,
                        state: row.try_get("state")?,
                        runs: row.try_get("n")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        });
        let moves = match decide(&in_flight) {
            Ok(moves) => moves,
            Err(refusal) => {
                tx.rollback().await?;
                return Err(StoreError::Conflict(refusal));
            }
        };
        let version = tx
            .insert_active_version(plan_json, content_hash, git_commit, now)
            .await?;
        on_tx!(&mut tx, c => {
            for m in &moves {
                let from = &m.from;
                if m.migrated {
                    // The run enters its new step now: its one timer is due at once.
                    sqlx::query(
                        "INSERT INTO timers (key, kind, contact_id, run_id, due_at)
                         SELECT 'run:' || run_id, 'run', contact_id, run_id, $1 FROM runs
                         WHERE journey = $2 AND plan_version = $3 AND step = $4 AND state = $5
                         ON CONFLICT (key) DO UPDATE SET due_at = excluded.due_at,
                             lease_owner = NULL, lease_expires_at = NULL",
                    )
                    .bind(now)
                    .bind(&from.journey)
                    .bind(from.plan_version)
                    .bind(&from.step)
                    .bind(&from.state)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "UPDATE runs SET plan_version = $1, step = $2, state = 'ready',
                             wait_event = NULL, until_at = NULL, updated_at = $3
                         WHERE journey = $4 AND plan_version = $5 AND step = $6 AND state = $7",
                    )
                    .bind(version)
                    .bind(&m.to)
                    .bind(now)
                    .bind(&from.journey)
                    .bind(from.plan_version)
                    .bind(&from.step)
                    .bind(&from.state)
                    .execute(&mut *c)
                    .await?;
                } else if let Some(rewait) = &m.rewait {
                    // A changed `wait for`: each run waits for the new event, until its
                    // wait's start plus the new `within` (a past deadline fires at once).
                    let runs = sqlx::query(
                        "SELECT run_id, until_at FROM runs
                         WHERE journey = $1 AND plan_version = $2 AND step = $3 AND state = $4",
                    )
                    .bind(&from.journey)
                    .bind(from.plan_version)
                    .bind(&from.step)
                    .bind(&from.state)
                    .fetch_all(&mut *c)
                    .await?;
                    for row in &runs {
                        let run_id: String = row.try_get("run_id")?;
                        let old_until: Option<Millis> = row.try_get("until_at")?;
                        let until = rewait.until(old_until.unwrap_or(Millis::MAX), now);
                        sqlx::query(
                            "UPDATE runs SET plan_version = $1, wait_event = $2, until_at = $3,
                                 updated_at = $4
                             WHERE run_id = $5",
                        )
                        .bind(version)
                        .bind(&rewait.event)
                        .bind(until)
                        .bind(now)
                        .bind(&run_id)
                        .execute(&mut *c)
                        .await?;
                        sqlx::query(
                            "UPDATE timers SET due_at = $1, lease_owner = NULL,
                                 lease_expires_at = NULL
                             WHERE key = $2",
                        )
                        .bind(until)
                        .bind(super::effects::run_timer_key(&run_id))
                        .execute(&mut *c)
                        .await?;
                    }
                } else {
                    sqlx::query(
                        "UPDATE runs SET plan_version = $1, updated_at = $2
                         WHERE journey = $3 AND plan_version = $4 AND step = $5 AND state = $6",
                    )
                    .bind(version)
                    .bind(now)
                    .bind(&from.journey)
                    .bind(from.plan_version)
                    .bind(&from.step)
                    .bind(&from.state)
                    .execute(&mut *c)
                    .await?;
                }
            }
        });
        before_commit();
        tx.commit().await?;
        Ok(Deployed {
            version,
            content_hash: content_hash.to_string(),
            changed: true,
        })
    }

    /// Opens a deploy's transaction under the deploy lock, or breaks with what the deploy
    /// did (nothing, the transaction rolled back) when `content_hash` is already active.
    async fn begin_deploy(&self, content_hash: &str) -> Result<ControlFlow<Deployed, Tx>> {
        let mut tx = self.begin().await?;
        tx.lock_deploys().await?;
        if let Some(active) = tx.active_version().await?
            && active.content_hash == content_hash
        {
            tx.rollback().await?;
            return Ok(ControlFlow::Break(Deployed {
                version: active.version,
                content_hash: active.content_hash,
                changed: false,
            }));
        }
        Ok(ControlFlow::Continue(tx))
    }

    /// Re-activates the version before the active one.
    pub async fn rollback(&self) -> Result<Deployed> {
        let mut tx = self.begin().await?;
        tx.lock_deploys().await?;
        let Some(active) = tx.active_version().await? else {
            return Err(StoreError::Conflict(
                "nothing is deployed, so there is nothing to roll back".into(),
            ));
        };
        let previous = on_tx!(&mut tx, c => {
            let row = sqlx::query(
                "SELECT version, content_hash FROM plan_versions WHERE version < $1
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(active.version)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => Some((row.try_get::<i64, _>("version")?, row.try_get::<String, _>("content_hash")?)),
                None => None,
            }
        });
        let Some((version, content_hash)) = previous else {
            return Err(StoreError::Conflict(format!(
                "version {} is the first deployed version; there is none before it",
                active.version
            )));
        };
        on_tx!(&mut tx, c => {
            sqlx::query("UPDATE plan_versions SET active = FALSE WHERE active")
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE plan_versions SET active = TRUE WHERE version = $1")
                .bind(version)
                .execute(&mut *c)
                .await?;
        });
        tx.commit().await?;
        Ok(Deployed {
            version,
            content_hash,
            changed: true,
        })
    }

    /// Every version, newest first.
    pub async fn versions(&self) -> Result<Vec<PlanVersion>> {
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT version, content_hash, git_commit, deployed_at, active
                 FROM plan_versions ORDER BY version DESC",
            )
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(plan_version)
                .collect()
        })
    }

    /// The active version and its plan text.
    pub async fn active_plan(&self) -> Result<Option<(PlanVersion, String)>> {
        on_read!(self, c => {
            let row = sqlx::query(
                "SELECT version, content_hash, git_commit, deployed_at, active, plan
                 FROM plan_versions WHERE active",
            )
            .fetch_optional(&mut *c)
            .await?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Some((plan_version(&row)?, row.try_get("plan")?))),
            }
        })
    }

    /// The plan text of one version.
    pub async fn plan_text(&self, version: i64) -> Result<Option<String>> {
        on_read!(self, c => {
            let row = sqlx::query("SELECT plan FROM plan_versions WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.map(|r| r.try_get("plan")).transpose()?)
        })
    }
}

impl Tx {
    async fn lock_deploys(&mut self) -> Result<()> {
        if let Tx::Postgres(t) = self {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(DEPLOY_LOCK)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// Stores `plan_json` as version N+1, the only active one, and returns N+1.
    async fn insert_active_version(
        &mut self,
        plan_json: &str,
        content_hash: &str,
        git_commit: Option<&str>,
        now: Millis,
    ) -> Result<i64> {
        on_tx!(self, c => {
            let next: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM plan_versions")
                .fetch_one(&mut *c)
                .await?
                .try_get("v")?;
            let version = next.unwrap_or(0) + 1;
            sqlx::query("UPDATE plan_versions SET active = FALSE WHERE active")
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO plan_versions (version, content_hash, git_commit, plan, deployed_at, active)
                 VALUES ($1, $2, $3, $4, $5, TRUE)",
            )
            .bind(version)
            .bind(content_hash)
            .bind(git_commit)
            .bind(plan_json)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(version)
        })
    }

    async fn active_version(&mut self) -> Result<Option<PlanVersion>> {
        on_tx!(self, c => {
            let row = sqlx::query(
                "SELECT version, content_hash, git_commit, deployed_at, active
                 FROM plan_versions WHERE active",
            )
            .fetch_optional(&mut *c)
            .await?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Some(plan_version(&row)?)),
            }
        })
    }
}

/// A `plan_versions` row, read on either backend.
fn plan_version<R: Row>(row: &R) -> Result<PlanVersion>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(PlanVersion {
        version: row.try_get("version")?,
        content_hash: row.try_get("content_hash")?,
        git_commit: row.try_get("git_commit")?,
        deployed_at: row.try_get("deployed_at")?,
        active: row.try_get("active")?,
    })
}
