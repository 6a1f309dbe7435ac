//! Every SQL statement of the daemon, for SQLite and PostgreSQL.
//!
//! Statements go through sqlx's runtime query API: the compile-time macros would need a
//! live database at build time and check one backend only, so the store test suite, run
//! against both backends, is the check. Both backends share one schema (see
//! `migrations/`); SQL text is shared where the dialects agree (`$1` placeholders,
//! `ON CONFLICT`, `RETURNING`) and split where they do not (`FOR UPDATE SKIP LOCKED`,
//! row locks, advisory locks).
//!
//! - [`Store`]: a pool of connections; [`Store::begin`] opens a write transaction.
//! - [`Tx`]: a transaction; the methods in [`contacts`], [`effects`], [`timers`],
//!   [`outbox`], [`plans`] and [`admin`] run inside one.
//!
//! On SQLite one connection writes (the single writer serialises claims, and every
//! write transaction starts with `BEGIN IMMEDIATE`, so it never fails half-way on a lock
//! upgrade); others read. On PostgreSQL work is claimed with `FOR UPDATE SKIP LOCKED`
//! and a lease, and every transaction that moves a contact locks its row first, so two
//! daemons never run one contact's transitions at once.

pub mod admin;
pub mod channels;
pub mod contacts;
pub mod effects;
mod event_index;
pub mod import;
mod migrate;
pub mod outbox;
pub mod pause;
pub mod plans;
mod positional;
pub mod replay;
pub mod respect;
pub mod retention;
pub mod rights;
pub mod stats;
pub mod timers;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Row as _, Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use migrate::SCHEMA_VERSION;

/// How long a SQLite writer waits for the file's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers beside the one SQLite writer (status pages, admin queries).
const SQLITE_READERS: u32 = 4;
/// WAL pages (4 KiB each) after which a committing connection copies the WAL back into
/// the database file itself. The daemon's checkpointer ([`Store::checkpoint`]) does it
/// long before, from a connection of its own, so the single writer rarely pays for it
/// (at 8,000 pages a busy ingest still reached the bound between two checkpoints and
/// the writer spent a tenth of its time checkpointing); this bound holds when nothing
/// else checkpoints (other commands, a stalled task).
const SQLITE_AUTOCHECKPOINT_PAGES: &str = "32000";

/// Rows a SQLite statement hands to its reader before it waits for them to be taken.
const SQLITE_ROW_CHANNEL: usize = 4096;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(
        "unsupported database URL `{0}`: use `sqlite:PATH` (or a path ending in `.db`) or `postgres://...`"
    )]
    BadUrl(String),
    #[error(
        "the database's schema is version {found}, newer than this cairn knows ({known}): upgrade cairn"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// Another worker took over the claimed work; the transaction must roll back.
    #[error("lost the lease on {0}: another worker took it over")]
    LostLease(String),
    #[error("stored data does not read back: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether running the same unit of work again may succeed: a PostgreSQL
    /// serialisation failure or deadlock, a dropped connection, a busy SQLite file, or a
    /// lease lost to another worker (the work is then skipped, not redone).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Sql(sqlx::Error::Database(db)) => matches!(
                db.code().as_deref(),
                // serialization_failure, deadlock_detected, admin_shutdown,
                // SQLITE_BUSY, SQLITE_LOCKED
                Some("40001" | "40P01" | "57P01" | "5" | "6" | "517" | "261")
            ),
            StoreError::Sql(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        }
    }
}

/// How many times [`retrying`] runs a unit of work that keeps failing transiently.
pub const RETRY_ATTEMPTS: u32 = 8;

/// The pause before retry number `attempt` (1, 2, …): 25 ms doubling up to 2 s, with
/// up to a quarter more at random so workers that failed together do not retry
/// together. The first seven pauses add up to about 3 s, enough for a dropped
/// PostgreSQL connection to be replaced or a failover to finish.
pub fn retry_delay(attempt: u32) -> Duration {
    let base = Duration::from_millis(25)
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(2));
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let quarter = u32::try_from(base.as_micros() / 4)
        .unwrap_or(u32::MAX)
        .max(1);
    base + Duration::from_micros(u64::from(jitter % quarter))
}

/// Runs `work` until it succeeds, fails for good, or has failed transiently
/// [`RETRY_ATTEMPTS`] times, pausing [`retry_delay`] between tries. `work` must be
/// safe to run again: each try is a whole transaction, and a try whose commit was lost
/// with its connection is either a no-op when repeated (guarded by leases or unique
/// keys) or reported as one.
pub async fn retrying<T, F, Fut>(what: &str, mut work: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match work().await {
            Err(e) if e.is_retryable() && attempt < RETRY_ATTEMPTS => {
                let delay = retry_delay(attempt);
                tracing::info!(error = %e, attempt, ?delay, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// A connection pool to one database.
#[derive(Clone, Debug)]
pub struct Store {
    pools: Pools,
    /// SQLite: events stored since the last fold into `event_index` (see
    /// [`event_index`]), counted by this process.
    unindexed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Debug)]
enum Pools {
    Sqlite {
        /// The one connection that writes.
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// A write transaction on either backend. Dropping it without [`Tx::commit`] rolls it
/// back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the transaction's connection, once per backend, so
/// one piece of code (with the SQL text it shares) serves both.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c: &mut sqlx::SqliteConnection = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c: &mut sqlx::PgConnection = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// Like [`on_tx!`] on the store's read pool.
macro_rules! on_read {
    ($store:expr, $c:ident => $body:expr) => {
        match &$store.pools {
            $crate::store::Pools::Sqlite { read, .. } => {
                let mut conn = read.acquire().await?;
                let $c: &mut sqlx::SqliteConnection = &mut *conn;
                $body
            }
            $crate::store::Pools::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let $c: &mut sqlx::PgConnection = &mut *conn;
                $body
            }
        }
    };
}
pub(crate) use on_read;

/// Options of [`Store::open_with`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// PostgreSQL only: work in this schema (created when missing) instead of the
    /// user's default. The tests use it for a fresh schema each.
    pub postgres_schema: Option<String>,
    /// PostgreSQL only: the size of the pool (default 8).
    pub max_connections: Option<u32>,
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date. `sqlite:PATH` (the
    /// file is created when missing) or a bare path ending in `.db`/`.sqlite`, or
    /// `postgres://...`.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Store> {
        let store = if is_postgres_url(url) {
            Store::open_postgres(url, options).await?
        } else if let Some(path) = sqlite_path(url) {
            Store::open_sqlite(&path).await?
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        store.prepared().await
    }

    /// The SQLite file at `path`, created when missing.
    pub async fn open_sqlite_file(path: &Path) -> Result<Store> {
        Store::open_sqlite(&path.to_string_lossy())
            .await?
            .prepared()
            .await
    }

    /// A store just opened, brought to this binary's schema, with the events SQLite's
    /// per-contact index lacks folded in.
    async fn prepared(self) -> Result<Store> {
        self.migrate().await?;
        self.fold_event_index().await?;
        Ok(self)
    }

    async fn open_sqlite(path: &str) -> Result<Store> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses no committed transaction on a process crash; only
            // a power loss may drop the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(false)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536")
            .pragma("wal_autocheckpoint", SQLITE_AUTOCHECKPOINT_PAGES)
            // Rows a statement may hand over before the reader takes them: a bulk
            // insert returns an id per event and a timer batch is hundreds of rows, and
            // at sqlx's default (50) SQLite's thread stops every 50 rows to wait for the
            // reader's task to drain them.
            .row_buffer_size(SQLITE_ROW_CHANNEL);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.read_only(false))
            .await?;
        Ok(Store {
            pools: Pools::Sqlite { write, read },
            unindexed: Default::default(),
        })
    }

    async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Store> {
        let mut connect = PgConnectOptions::from_str(url)?;
        if let Some(schema) = &options.postgres_schema {
            // Create the schema first, on a connection of its own.
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(connect.clone())
                .await?;
            let create = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&admin)
                .await?;
            admin.close().await;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(8))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await?;
        Ok(Store {
            pools: Pools::Postgres(pool),
            unindexed: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens a write transaction: `BEGIN IMMEDIATE` on SQLite (it takes the write lock
    /// up front), `BEGIN` (read committed) on PostgreSQL.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &self.pools {
            Pools::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Opens a read-only transaction: on SQLite on a reader connection, so it never
    /// waits for the writer.
    pub async fn begin_read(&self) -> Result<Tx> {
        Ok(match &self.pools {
            Pools::Sqlite { read, .. } => Tx::Sqlite(read.begin().await?),
            Pools::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// On SQLite, copies the pages committed to the write-ahead log back into the
    /// database file, from a reader connection: `PASSIVE`, so it neither waits for nor
    /// blocks the writer and readers, and the writer's commits stay short. Returns the
    /// WAL pages still to copy (readers may hold some). A no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<i64> {
        let Pools::Sqlite { read, .. } = &self.pools else {
            return Ok(0);
        };
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(read)
            .await?;
        let (log, copied): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
        Ok((log - copied).max(0))
    }

    /// Closes every connection, after the work in flight.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Whether `url` names a PostgreSQL store.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with its connections working in the PostgreSQL schema `name` (through the
/// `search_path` option), for a store that should live in a schema of its own.
pub fn postgres_url_in_schema(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{name}")
}

/// Creates the schema `name` on the PostgreSQL server at `url`.
pub async fn create_postgres_schema(url: &str, name: &str) -> Result<()> {
    on_own_connection(url, format!("CREATE SCHEMA {}", quote_ident(name))).await
}

/// Drops the schema `name`, with everything in it, on the PostgreSQL server at `url`.
pub async fn drop_postgres_schema(url: &str, name: &str) -> Result<()> {
    on_own_connection(url, format!("DROP SCHEMA {} CASCADE", quote_ident(name))).await
}

/// Runs `sql` on a connection of its own to the PostgreSQL server at `url`.
async fn on_own_connection(url: &str, sql: String) -> Result<()> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await;
    admin.close().await;
    done?;
    Ok(())
}

/// The file of a SQLite store URL (`sqlite:PATH` or a path ending in `.db`), or `None`
/// for another kind of URL.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if is_postgres_url(url) {
        return None;
    }
    sqlite_path(url).map(std::path::PathBuf::from)
}

/// The file a SQLite URL or path names, or `None` for another kind of URL.
fn sqlite_path(url: &str) -> Option<String> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        return Some(rest.to_string());
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return Some(rest.to_string());
    }
    let looks_like_file = [".db", ".sqlite", ".sqlite3"]
        .iter()
        .any(|ext| url.ends_with(ext));
    (looks_like_file && !url.contains("://")).then(|| url.to_string())
}

/// `name` as a PostgreSQL identifier, quoted.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Encodes a value for a JSON column (TEXT on SQLite, JSONB on PostgreSQL).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> sqlx::types::Json<&T> {
    sqlx::types::Json(value)
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod url_tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_urls_and_paths() {
        assert_eq!(sqlite_path("sqlite:a/b.db").as_deref(), Some("a/b.db"));
        assert_eq!(sqlite_path("sqlite:///tmp/x").as_deref(), Some("/tmp/x"));
        assert_eq!(sqlite_path("state.sqlite").as_deref(), Some("state.sqlite"));
        assert_eq!(sqlite_path("postgres://h/db"), None);
        assert_eq!(sqlite_path("mysql://h/x.db"), None);
    }
}
