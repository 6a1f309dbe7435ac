//! SQLite's index of each contact's events, filled in batches: new events go in without
//! it and the writer folds the newest into `event_index` in key order, so each of its
//! leaves is written once per fold rather than once per commit (see
//! `migrations/sqlite/0006_event_index.sql`). Readers go through the `contact_events`
//! view, which also scans the few events not folded yet. PostgreSQL keeps an ordinary
//! index and needs none of this: every function here does nothing there.

use super::{Result, Store, Tx};
use std::sync::atomic::Ordering;

/// Events stored since the last fold after which the next ingest transaction folds:
/// a contact's history read outside the cache scans at most about this many events.
pub(crate) const FOLD_EVERY: u64 = 16_384;

const FOLD: &str = "INSERT OR IGNORE INTO event_index (contact_id, occurred_at, id)
    SELECT contact_id, occurred_at, id FROM events
    WHERE id > (SELECT upto FROM event_index_upto) AND contact_id IS NOT NULL
    ORDER BY contact_id, occurred_at, id";

const ADVANCE: &str = "UPDATE event_index_upto
    SET upto = MAX(upto, COALESCE((SELECT MAX(id) FROM events), 0))";

/// Before an anonymous id's events move to `$2`: those already folded get an entry
/// under their new contact (the partial index on anonymous ids finds them).
const INDEX_MERGED: &str = "INSERT OR IGNORE INTO event_index (contact_id, occurred_at, id)
    SELECT $2, occurred_at, id FROM events
    WHERE anonymous_id = $1 AND contact_id IS NULL
      AND id <= (SELECT upto FROM event_index_upto)";

/// Before the events under a contact's anonymous ids that no merge moved are given to
/// it (erasure): those already folded get an entry under it.
const INDEX_ADOPTED: &str = "INSERT OR IGNORE INTO event_index (contact_id, occurred_at, id)
    SELECT $1, occurred_at, id FROM events
    WHERE contact_id IS NULL
      AND anonymous_id IN (SELECT anonymous_id FROM aliases WHERE contact_id = $1)
      AND id <= (SELECT upto FROM event_index_upto)";

/// Before events are deleted by id range and age (retention), their entries go.
const UNINDEX_PURGED: &str = "DELETE FROM event_index WHERE (contact_id, occurred_at, id) IN
    (SELECT contact_id, occurred_at, id FROM events
     WHERE id > $1 AND id <= $2 AND occurred_at < $3 AND contact_id IS NOT NULL)";

impl Store {
    /// Counts events stored without an index entry; true once enough are waiting
    /// that the transaction should fold them (the count starts again).
    pub(crate) fn stored_unindexed(&self, events: usize) -> bool {
        if self.backend() != super::Backend::Sqlite {
            return false;
        }
        let waiting = self
            .unindexed
            .fetch_add(events as u64, Ordering::Relaxed)
            .saturating_add(events as u64);
        if waiting < FOLD_EVERY {
            return false;
        }
        self.unindexed.store(0, Ordering::Relaxed);
        true
    }

    /// Folds every event not yet in the index, in a transaction of its own (at start).
    pub(crate) async fn fold_event_index(&self) -> Result<()> {
        if self.backend() != super::Backend::Sqlite {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.fold_event_index().await?;
        tx.commit().await
    }
}

#[cfg(test)]
impl Store {
    /// How many entries `event_index` holds (SQLite).
    pub(crate) async fn event_index_entries(&self) -> Result<i64> {
        use sqlx::Row;
        super::on_read!(self, c => {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM event_index").fetch_one(&mut *c).await?;
            Ok(row.try_get("n")?)
        })
    }
}

impl Tx {
    /// Adds the events stored since the last fold to the index, in key order.
    pub(crate) async fn fold_event_index(&mut self) -> Result<()> {
        if let Tx::Sqlite(c) = self {
            sqlx::query(FOLD).execute(&mut **c).await?;
            sqlx::query(ADVANCE).execute(&mut **c).await?;
        }
        Ok(())
    }

    /// Call before moving `anonymous_id`'s events to `contact_id`.
    pub(crate) async fn index_merged(
        &mut self,
        anonymous_id: &str,
        contact_id: &str,
    ) -> Result<()> {
        if let Tx::Sqlite(c) = self {
            sqlx::query(INDEX_MERGED)
                .bind(anonymous_id)
                .bind(contact_id)
                .execute(&mut **c)
                .await?;
        }
        Ok(())
    }

    /// Call before giving `contact_id` the events under its anonymous ids.
    pub(crate) async fn index_adopted(&mut self, contact_id: &str) -> Result<()> {
        if let Tx::Sqlite(c) = self {
            sqlx::query(INDEX_ADOPTED)
                .bind(contact_id)
                .execute(&mut **c)
                .await?;
        }
        Ok(())
    }

    /// Call before deleting the events with ids in `(after, last]` older than `cutoff`.
    pub(crate) async fn unindex_purged(
        &mut self,
        after: i64,
        last: i64,
        cutoff: i64,
    ) -> Result<()> {
        if let Tx::Sqlite(c) = self {
            sqlx::query(UNINDEX_PURGED)
                .bind(after)
                .bind(last)
                .bind(cutoff)
                .execute(&mut **c)
                .await?;
        }
        Ok(())
    }
}
