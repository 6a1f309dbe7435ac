//! Event retention: deleting the events that occurred before a cutoff, a batch per
//! transaction so ingestion waits at most one batch for the writer.
//!
//! Events are walked in id order (the order they arrived) from the oldest. An event
//! never occurred after it arrived, so once a whole batch arrived after the cutoff,
//! nothing later can have occurred before it and the walk stops; an event that
//! arrived late with an old time is deleted when its arrival passes the cutoff too.

use super::{Result, Store, on_tx};
use crate::model::Millis;
use sqlx::Row;

/// Where a purge stands after one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeBatch {
    /// Events deleted by this batch.
    pub deleted: u64,
    /// The id to continue after; `None` when the purge is done.
    pub next: Option<i64>,
}

const PAGE: &str = "SELECT MAX(id) AS last, MIN(received_at) AS oldest
    FROM (SELECT id, received_at FROM events WHERE id > $1 ORDER BY id LIMIT $2) AS page";

const DELETE: &str = "DELETE FROM events WHERE id > $1 AND id <= $2 AND occurred_at < $3";

impl Store {
    /// Deletes, in one transaction, the events among the next `batch` after id `after`
    /// (0 to start) that occurred before `cutoff`.
    pub async fn purge_events(&self, cutoff: Millis, after: i64, batch: i64) -> Result<PurgeBatch> {
        let mut tx = self.begin().await?;
        let done = PurgeBatch {
            deleted: 0,
            next: None,
        };
        let (last, oldest): (Option<i64>, Option<i64>) = on_tx!(&mut tx, c => {
            let row = sqlx::query(PAGE).bind(after).bind(batch.max(1)).fetch_one(&mut *c).await?;
            (row.try_get("last")?, row.try_get("oldest")?)
        });
        let (Some(last), Some(oldest)) = (last, oldest) else {
            tx.rollback().await?;
            return Ok(done);
        };
        if oldest >= cutoff {
            tx.rollback().await?;
            return Ok(done);
        }
        tx.unindex_purged(after, last, cutoff).await?;
        let deleted = on_tx!(&mut tx, c => sqlx::query(DELETE)
            .bind(after)
            .bind(last)
            .bind(cutoff)
            .execute(&mut *c)
            .await?
            .rows_affected());
        tx.commit().await?;
        Ok(PurgeBatch {
            deleted,
            next: Some(last),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::contacts::NewEvent;
    use crate::store::tests::on_both;
    use serde_json::json;

    #[tokio::test]
    async fn a_purge_deletes_old_events_in_batches_and_keeps_recent_ones() {
        on_both("purge", |store| async move {
            let mut tx = store.begin().await.expect("begin");
            tx.ensure_contact("ana", 0).await.expect("ana");
            let payload = json!({});
            // Ten old events, then one that arrived late with an old time, then five
            // recent ones.
            let times: Vec<(i64, i64)> = (0..10)
                .map(|i| (1_000 + i, 1_000 + i))
                .chain([(1_500, 9_000)])
                .chain((0..5).map(|i| (9_000 + i, 9_000 + i)))
                .collect();
            for (n, (occurred, received)) in times.iter().enumerate() {
                let message = format!("m{n}");
                tx.insert_event(&NewEvent {
                    contact_id: Some("ana"),
                    anonymous_id: None,
                    name: "page_viewed",
                    payload: &payload,
                    occurred_at: *occurred,
                    received_at: *received,
                    message_id: Some(&message),
                })
                .await
                .expect("insert");
            }
            tx.commit().await.expect("commit");

            let mut after = 0;
            let mut batches = Vec::new();
            loop {
                let batch = store.purge_events(5_000, after, 4).await.expect("purge");
                batches.push(batch.deleted);
                match batch.next {
                    Some(next) => after = next,
                    None => break,
                }
            }
            assert_eq!(batches, vec![4, 4, 3, 0], "batches of at most four");
            let mut tx = store.begin().await.expect("begin");
            let left: Vec<i64> = tx
                .load_history("ana")
                .await
                .expect("history")
                .iter()
                .map(|e| e.occurred_at)
                .collect();
            tx.rollback().await.expect("rollback");
            assert_eq!(left, vec![9_000, 9_001, 9_002, 9_003, 9_004]);

            // Nothing is left to purge: the walk stops at the first batch.
            let batch = store.purge_events(5_000, 0, 4).await.expect("purge");
            assert_eq!(batch.deleted, 0);
            assert_eq!(batch.next, None);
        })
        .await;
    }
}
