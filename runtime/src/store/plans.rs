//! Deployed plan versions: each deploy is version N+1 with its hash and git commit; one
//! is active; deploying the active hash again changes nothing; a rollback re-activates
//! the version before the active one.

use super::{Result, Store, StoreError, Tx, on_read, on_tx};
use crate::model::Millis;
use sqlx::Row;

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
        let mut tx = self.begin().await?;
        tx.lock_deploys().await?;
        if let Some(active) = tx.active_version().await?
            && active.content_hash == content_hash
        {
            tx.rollback().await?;
            return Ok(Deployed {
                version: active.version,
                content_hash: active.content_hash,
                changed: false,
            });
        }
        let version = on_tx!(&mut tx, c => {
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
            version
        });
        tx.commit().await?;
        Ok(Deployed {
            version,
            content_hash: content_hash.to_string(),
            changed: true,
        })
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
                .map(|row| {
                    Ok(PlanVersion {
                        version: row.try_get("version")?,
                        content_hash: row.try_get("content_hash")?,
                        git_commit: row.try_get("git_commit")?,
                        deployed_at: row.try_get("deployed_at")?,
                        active: row.try_get("active")?,
                    })
                })
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
                Some(row) => Ok(Some((
                    PlanVersion {
                        version: row.try_get("version")?,
                        content_hash: row.try_get("content_hash")?,
                        git_commit: row.try_get("git_commit")?,
                        deployed_at: row.try_get("deployed_at")?,
                        active: row.try_get("active")?,
                    },
                    row.try_get("plan")?,
                ))),
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
                Some(row) => Ok(Some(PlanVersion {
                    version: row.try_get("version")?,
                    content_hash: row.try_get("content_hash")?,
                    git_commit: row.try_get("git_commit")?,
                    deployed_at: row.try_get("deployed_at")?,
                    active: row.try_get("active")?,
                })),
            }
        })
    }
}
