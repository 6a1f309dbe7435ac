//! What `cairn simulate --against-server` reads: the events stored for a window of
//! time, page by page, and the contacts they belong to.

use super::{Result, Store, on_read};
use crate::model::{Contact, Millis};
use serde_json::Value as Json;
use sqlx::Row;

/// One stored event, as the tracking API accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub contact_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// The plan's event name.
    pub name: String,
    pub payload: Json,
    pub occurred_at: Millis,
    pub message_id: Option<String>,
}

impl Store {
    /// Events that occurred in `[from, to)`, in time order (then arrival), strictly
    /// after the `after` cursor `(occurred_at, id)`; at most `limit`.
    pub async fn events_between(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, i64)>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        let (after_at, after_id) = after.unwrap_or((Millis::MIN, 0));
        on_read!(self, c => {
            let rows = sqlx::query(
                "SELECT id, contact_id, anonymous_id, name, payload, occurred_at, message_id
                 FROM events
                 WHERE occurred_at >= $1 AND occurred_at < $2
                   AND (occurred_at > $3 OR (occurred_at = $3 AND id > $4))
                 ORDER BY occurred_at, id LIMIT $5",
            )
            .bind(from)
            .bind(to)
            .bind(after_at)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|row| {
                    let payload: sqlx::types::Json<Json> = row.try_get("payload")?;
                    Ok(StoredEvent {
                        id: row.try_get("id")?,
                        contact_id: row.try_get("contact_id")?,
                        anonymous_id: row.try_get("anonymous_id")?,
                        name: row.try_get("name")?,
                        payload: payload.0,
                        occurred_at: row.try_get("occurred_at")?,
                        message_id: row.try_get("message_id")?,
                    })
                })
                .collect()
        })
    }

    /// The contacts of `ids` that exist (traits, time zone, consents and tags as they
    /// are now).
    pub async fn contacts_now(&self, ids: &[String]) -> Result<Vec<Contact>> {
        let mut tx = self.begin_read().await?;
        let mut contacts = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(contact) = tx.load_contact(id).await? {
                contacts.push(contact);
            }
        }
        tx.rollback().await?;
        Ok(contacts)
    }
}

#[cfg(test)]
mod tests {
    use super::super::contacts::EventRow;
    use super::super::tests::on_both;
    use serde_json::json;

    #[tokio::test]
    async fn events_of_a_window_come_in_pages_in_time_order() {
        on_both("replay_events", |store| async move {
            let mut tx = store.begin().await.expect("begin");
            tx.ensure_contacts(&["ana".to_string()], 0)
                .await
                .expect("contacts");
            let row = |n: i64, at: i64| EventRow {
                contact_id: Some("ana".into()),
                anonymous_id: None,
                name: "page_viewed".into(),
                payload: std::sync::Arc::new(json!({ "url": format!("https://shop.example/{n}") })),
                occurred_at: at,
                received_at: 10_000,
                message_id: format!("m-{n}"),
            };
            // Out of time order, two at the same instant, one before and one after the
            // window.
            let rows = [
                row(1, 3_000),
                row(2, 1_000),
                row(3, 2_000),
                row(4, 2_000),
                row(5, 500),
                row(6, 9_000),
            ];
            tx.insert_events(&rows).await.expect("insert");
            tx.commit().await.expect("commit");

            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .events_between(1_000, 9_000, after, 2)
                    .await
                    .expect("a page");
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= 2);
                after = page.last().map(|e| (e.occurred_at, e.id));
                seen.extend(page.into_iter().map(|e| {
                    (
                        e.occurred_at,
                        e.message_id.unwrap_or_default(),
                        e.payload["url"].clone(),
                    )
                }));
            }
            let at: Vec<(i64, &str)> = seen.iter().map(|(t, m, _)| (*t, m.as_str())).collect();
            assert_eq!(
                at,
                [
                    (1_000, "m-2"),
                    (2_000, "m-3"),
                    (2_000, "m-4"),
                    (3_000, "m-1")
                ]
            );
            assert_eq!(seen[0].2, json!("https://shop.example/2"));

            let contacts = store
                .contacts_now(&["ana".to_string(), "nobody".to_string()])
                .await
                .expect("contacts");
            assert_eq!(contacts.len(), 1);
            assert_eq!(contacts[0].id, "ana");
        })
        .await;
    }
}
