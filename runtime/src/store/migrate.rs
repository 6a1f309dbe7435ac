//! Versioned migrations, embedded in the binary and applied on start.
//!
//! Each migration has one SQL file per backend under `migrations/`. The applied versions
//! are rows of `cairn_migrations`; a database newer than this binary is refused rather
//! than guessed at. On PostgreSQL an advisory lock keeps two daemons starting at once
//! from migrating together.

use super::{Pools, Result, Store, StoreError};
use sqlx::Row;
use std::collections::BTreeSet;

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "channels",
        sqlite: include_str!("migrations/sqlite/0002_channels.sql"),
        postgres: include_str!("migrations/postgres/0002_channels.sql"),
    },
    Migration {
        version: 3,
        name: "suppressions",
        sqlite: include_str!("migrations/sqlite/0003_suppressions.sql"),
        postgres: include_str!("migrations/postgres/0003_suppressions.sql"),
    },
    Migration {
        version: 4,
        name: "data_rights",
        sqlite: include_str!("migrations/sqlite/0004_data_rights.sql"),
        postgres: include_str!("migrations/postgres/0004_data_rights.sql"),
    },
    Migration {
        version: 5,
        name: "paused_journeys",
        sqlite: include_str!("migrations/sqlite/0005_paused_journeys.sql"),
        postgres: include_str!("migrations/postgres/0005_paused_journeys.sql"),
    },
    Migration {
        version: 6,
        name: "event_index",
        sqlite: include_str!("migrations/sqlite/0006_event_index.sql"),
        postgres: include_str!("migrations/postgres/0006_event_index.sql"),
    },
];

/// An existing store brought to this binary's schema: said in the log before and
/// after, since a migration may go through a large table (migration 6 indexes every event).
struct Upgrade {
    from: i64,
    started: std::time::Instant,
}

impl Upgrade {
    /// `None` for a new store or one already at [`SCHEMA_VERSION`].
    fn start(applied: &BTreeSet<i64>) -> Option<Upgrade> {
        let from = applied.iter().copied().max()?;
        (from < SCHEMA_VERSION).then(|| {
            tracing::info!(
                from,
                to = SCHEMA_VERSION,
                "upgrading the store's schema; on a large store this can take minutes"
            );
            Upgrade {
                from,
                started: std::time::Instant::now(),
            }
        })
    }
}

/// Logs the end of an upgrade [`Upgrade::start`] began.
fn upgraded(upgrade: Option<Upgrade>) {
    if let Some(upgrade) = upgrade {
        tracing::info!(
            from = upgrade.from,
            to = SCHEMA_VERSION,
            seconds = upgrade.started.elapsed().as_secs_f64(),
            "the store's schema is upgraded"
        );
    }
}

/// The schema version this binary writes: the highest migration it has.
pub const SCHEMA_VERSION: i64 = 6;

/// Any number, the same in every daemon: the advisory lock's key.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00;

const RECORD: &str = "INSERT INTO cairn_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS cairn_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_at BIGINT NOT NULL
)";

impl Store {
    /// Applies every migration the database lacks, each in its own transaction.
    pub(super) async fn migrate(&self) -> Result<()> {
        let now = jiff::Timestamp::now().as_millisecond();
        match &self.pools {
            Pools::Sqlite { write, .. } => {
                let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::raw_sql(CREATE_TABLE).execute(&mut *tx).await?;
                let applied: Vec<i64> = sqlx::query_scalar(APPLIED).fetch_all(&mut *tx).await?;
                let applied = check(applied.into_iter().collect())?;
                let upgrade = Upgrade::start(&applied);
                for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
                    sqlx::raw_sql(m.sqlite).execute(&mut *tx).await?;
                    sqlx::query(RECORD)
                        .bind(m.version)
                        .bind(m.name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                upgraded(upgrade);
            }
            Pools::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(CREATE_TABLE).execute(&mut *tx).await?;
                let applied: Vec<i64> = sqlx::query_scalar(APPLIED).fetch_all(&mut *tx).await?;
                let applied = check(applied.into_iter().collect())?;
                let upgrade = Upgrade::start(&applied);
                for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
                    sqlx::raw_sql(m.postgres).execute(&mut *tx).await?;
                    sqlx::query(RECORD)
                        .bind(m.version)
                        .bind(m.name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                upgraded(upgrade);
            }
        }
        Ok(())
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        super::on_read!(self, c => {
            let v: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM cairn_migrations")
                .fetch_one(&mut *c)
                .await?
                .try_get("v")?;
            Ok(v.unwrap_or(0))
        })
    }
}

/// Migration numbers may have gaps (each feature has its own number), so a migration
/// is applied when its own version is not recorded, not when it is above the highest.
const APPLIED: &str = "SELECT version FROM cairn_migrations";

fn check(applied: BTreeSet<i64>) -> Result<BTreeSet<i64>> {
    if let Some(&found) = applied.last()
        && found > SCHEMA_VERSION
    {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(applied)
}
