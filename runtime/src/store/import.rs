//! Bulk import of contacts with their consents: one transaction per chunk of checked
//! rows, a few statements for the whole chunk. Rows arrive already checked against the
//! plan (see [`crate::admin`]'s import); here they meet what the store holds: erased
//! contacts, traits to merge, and consent changes newer than the file's.

use super::effects::{INSERT_OUTCOMES, UPDATE_TRAITS, UPSERT_CONSENTS, time_zone_of};
use super::{Result, Store, Tx, json, on_tx};
use crate::model::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The consent source of an import; a file's own source follows it (`import:crm`).
pub const IMPORT_SOURCE: &str = "import";

/// One contact of an import file, checked against the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportContact {
    /// Where the contact is in the file (its line), for error messages.
    pub line: u64,
    pub id: String,
    /// Traits in stored form, merged into the contact's as an `identify` merges them
    /// (a `null` removes the trait).
    pub traits: Map<String, Json>,
    pub consents: Vec<ImportConsent>,
}

/// A consent as the file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportConsent {
    pub consent: String,
    pub granted: bool,
    /// When the contact granted or revoked it.
    pub at: Millis,
    /// The source recorded with it: `import`, or `import:<source>` when the file
    /// names one.
    pub source: String,
}

/// A row the store refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportError {
    pub line: u64,
    pub message: String,
}

/// What an import of one chunk did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Contacts that did not exist.
    pub created: u64,
    /// Contacts whose traits or consents changed.
    pub updated: u64,
    /// Contacts already as the file says.
    pub unchanged: u64,
    /// Rows refused (reported in the errors).
    pub rejected: u64,
}

impl ImportCounts {
    pub fn add(&mut self, other: &ImportCounts) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.rejected += other.rejected;
    }
}

/// The result of [`Store::import_contacts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub counts: ImportCounts,
    /// Rows the store refused (an erased contact).
    pub errors: Vec<ImportError>,
    /// Whether anything was written.
    pub applied: bool,
}

/// How the import treats a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportMode {
    /// Only count what would happen; write nothing.
    pub dry_run: bool,
    /// Import the good rows of a chunk that has refused ones, instead of nothing.
    pub skip_invalid: bool,
}

/// A contact as stored, as far as an import reads it.
#[derive(Default)]
struct Stored {
    traits: BTreeMap<String, Json>,
    erased: bool,
    /// Consent name → (granted, changed_at).
    consents: HashMap<String, (bool, Millis)>,
}

/// A row of the flush's `UPDATE_TRAITS`.
#[derive(Serialize)]
struct ContactRow<'a> {
    contact_id: &'a str,
    traits: &'a BTreeMap<String, Json>,
    time_zone: Option<String>,
    updated_at: Millis,
}

/// A row of the flush's `UPSERT_CONSENTS`.
#[derive(Serialize)]
struct ConsentRow<'a> {
    contact_id: &'a str,
    #[serde(rename = "name")]
    consent: &'a str,
    #[serde(rename = "flag")]
    granted: bool,
    #[serde(rename = "value")]
    source: &'a str,
    at: Millis,
}

/// A row of the flush's `INSERT_OUTCOMES`: a `consent` outcome.
#[derive(Serialize)]
struct OutcomeRow<'a> {
    at: Millis,
    contact_id: &'a str,
    kind: &'static str,
    detail: Json,
}

// SQLite then PostgreSQL; the writes are the flush's own statements (see
// `super::effects`).

const LOAD_CONTACTS: (&str, &str) = (
    "SELECT contact_id, traits, erased FROM contacts
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, traits, erased FROM contacts
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);
const LOAD_CONSENTS: (&str, &str) = (
    "SELECT contact_id, consent, granted, changed_at FROM consents
     WHERE contact_id IN (SELECT value FROM jsonb_each($1))",
    "SELECT contact_id, consent, granted, changed_at FROM consents
     WHERE contact_id IN (SELECT jsonb_array_elements_text($1))",
);

impl Store {
    /// Imports one chunk of checked contacts in one transaction: creates the missing
    /// ones, merges traits, and records each consent whose state differs from the
    /// stored one and is newer than the stored change (a contact who revoked a consent
    /// after the file's grant keeps it revoked), with a `consent` outcome at the file's
    /// time. An erased contact's row is refused. With refused rows and without
    /// `skip_invalid`, or with `dry_run`, nothing is written; the counts say what would
    /// have happened. `before_commit` runs while the transaction still holds the
    /// writer (the daemon forgets the contacts it caches).
    pub async fn import_contacts(
        &self,
        rows: &[ImportContact],
        now: Millis,
        mode: ImportMode,
        before_commit: impl FnOnce(),
    ) -> Result<ImportOutcome> {
        let mut ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = if mode.dry_run {
            self.begin_read().await?
        } else {
            self.begin().await?
        };
        // Creating the missing contacts first gives every row something to lock, so
        // an `identify` of the same contact waits for the import, or the import for it.
        let created: HashSet<String> = if mode.dry_run {
            HashSet::new()
        } else {
            let created = tx.ensure_contacts(&ids, now).await?;
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            tx.lock_contacts(&refs).await?;
            created
        };
        let mut stored = tx.load_for_import(&ids).await?;
        let mut new: HashSet<String> = ids
            .iter()
            .filter(|id| created.contains(*id) || !stored.contains_key(*id))
            .cloned()
            .collect();

        let mut outcome = ImportOutcome::default();
        let mut traits_changed: BTreeSet<&str> = BTreeSet::new();
        // The last change of each consent of each contact (one upsert may not touch a
        // row twice, should a contact come twice).
        let mut consents: BTreeMap<(&str, &str), ConsentRow<'_>> = BTreeMap::new();
        for row in rows {
            let contact = stored.entry(row.id.clone()).or_default();
            if contact.erased {
                outcome.counts.rejected += 1;
                outcome.errors.push(ImportError {
                    line: row.line,
                    message: format!(
                        "contact `{}` was erased: its data is not imported again",
                        row.id
                    ),
                });
                continue;
            }
            let before = contact.traits.clone();
            super::contacts::merge_traits(&mut contact.traits, &row.traits);
            let mut changed = contact.traits != before;
            if changed {
                traits_changed.insert(&row.id);
            }
            for consent in &row.consents {
                let apply = match contact.consents.get(&consent.consent) {
                    None => true,
                    Some(&(granted, at)) => granted != consent.granted && consent.at > at,
                };
                if apply {
                    contact
                        .consents
                        .insert(consent.consent.clone(), (consent.granted, consent.at));
                    let key = (row.id.as_str(), consent.consent.as_str());
                    consents.insert(
                        key,
                        ConsentRow {
                            contact_id: &row.id,
                            consent: &consent.consent,
                            granted: consent.granted,
                            source: &consent.source,
                            at: consent.at,
                        },
                    );
                    changed = true;
                }
            }
            if new.remove(&row.id) {
                outcome.counts.created += 1;
            } else if changed {
                outcome.counts.updated += 1;
            } else {
                outcome.counts.unchanged += 1;
            }
        }

        let refused = !outcome.errors.is_empty() && !mode.skip_invalid;
        if mode.dry_run || refused {
            tx.rollback().await?;
            return Ok(outcome);
        }
        let contacts: Vec<ContactRow<'_>> = traits_changed
            .iter()
            .filter_map(|id| {
                let contact = stored.get(*id)?;
                Some(ContactRow {
                    contact_id: id,
                    traits: &contact.traits,
                    time_zone: time_zone_of(&contact.traits),
                    updated_at: now,
                })
            })
            .collect();
        if !contacts.is_empty() {
            tx.bulk(UPDATE_TRAITS, &contacts).await?;
        }
        if !consents.is_empty() {
            let consents: Vec<&ConsentRow<'_>> = consents.values().collect();
            tx.bulk(UPSERT_CONSENTS, &consents).await?;
            let outcomes: Vec<OutcomeRow<'_>> = consents
                .iter()
                .map(|c| OutcomeRow {
                    at: c.at,
                    contact_id: c.contact_id,
                    kind: "consent",
                    detail: serde_json::json!({
                        "consent": c.consent, "granted": c.granted, "source": c.source,
                    }),
                })
                .collect();
            tx.bulk(INSERT_OUTCOMES, &outcomes).await?;
        }
        before_commit();
        tx.commit().await?;
        outcome.applied = true;
        Ok(outcome)
    }
}

impl Tx {
    /// The traits, erasure and consents of the contacts among `ids` that exist.
    async fn load_for_import(&mut self, ids: &[String]) -> Result<HashMap<String, Stored>> {
        let mut stored: HashMap<String, Stored> = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(stored);
        }
        let (contacts_sql, consents_sql) = (self.pick(LOAD_CONTACTS), self.pick(LOAD_CONSENTS));
        on_tx!(self, c => {
            for row in sqlx::query(contacts_sql).bind(json(&ids)).fetch_all(&mut *c).await? {
                let traits: sqlx::types::Json<BTreeMap<String, Json>> = row.try_get("traits")?;
                stored.insert(
                    row.try_get("contact_id")?,
                    Stored {
                        traits: traits.0,
                        erased: row.try_get("erased")?,
                        consents: HashMap::new(),
                    },
                );
            }
            for row in sqlx::query(consents_sql).bind(json(&ids)).fetch_all(&mut *c).await? {
                let id: String = row.try_get("contact_id")?;
                if let Some(contact) = stored.get_mut(&id) {
                    contact.consents.insert(
                        row.try_get("consent")?,
                        (row.try_get("granted")?, row.try_get("changed_at")?),
                    );
                }
            }
        });
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::on_both;
    use serde_json::json;

    fn contact(
        line: u64,
        id: &str,
        traits: Json,
        consents: &[(&str, bool, Millis)],
    ) -> ImportContact {
        ImportContact {
            line,
            id: id.into(),
            traits: traits.as_object().cloned().unwrap_or_default(),
            consents: consents
                .iter()
                .map(|(name, granted, at)| ImportConsent {
                    consent: (*name).into(),
                    granted: *granted,
                    at: *at,
                    source: "import:crm".into(),
                })
                .collect(),
        }
    }

    const APPLY: ImportMode = ImportMode {
        dry_run: false,
        skip_invalid: false,
    };

    #[tokio::test]
    async fn an_import_records_consents_with_source_and_time_and_counts_what_it_did() {
        on_both("import_consents", |store| async move {
            // Ben exists, and revoked `news` at 5,000.
            let mut tx = store.begin().await.expect("begin");
            tx.ensure_contact("ben", 100).await.expect("ben");
            tx.set_consent("ben", "news", false, Some("preferences"), 5_000)
                .await
                .expect("revoke");
            tx.commit().await.expect("commit");

            let rows = vec![
                contact(
                    1,
                    "ana",
                    json!({"email": "ana@example.com", "timezone": "Europe/Paris"}),
                    &[("news", true, 2_000)],
                ),
                // An older grant than Ben's revocation: the revocation stands.
                contact(2, "ben", json!({}), &[("news", true, 4_000)]),
            ];
            let dry = ImportMode {
                dry_run: true,
                ..APPLY
            };
            let outcome = store
                .import_contacts(&rows, 10_000, dry, || {})
                .await
                .expect("dry run");
            assert_eq!((outcome.counts.created, outcome.counts.unchanged), (1, 1));
            assert!(!outcome.applied);
            assert!(
                store.export_contact("ana").await.expect("export").is_none(),
                "a dry run writes nothing"
            );

            let outcome = store
                .import_contacts(&rows, 10_000, APPLY, || {})
                .await
                .expect("import");
            assert!(outcome.applied);
            assert_eq!(
                outcome.counts,
                ImportCounts {
                    created: 1,
                    updated: 0,
                    unchanged: 1,
                    rejected: 0
                }
            );
            let ana = store
                .export_contact("ana")
                .await
                .expect("export")
                .expect("ana");
            let ana = serde_json::to_value(&ana).expect("json");
            assert_eq!(ana["traits"]["email"], json!("ana@example.com"));
            assert_eq!(ana["time_zone"], json!("Europe/Paris"));
            let consent = &ana["consents"][0];
            assert_eq!(
                (
                    &consent["consent"],
                    &consent["granted"],
                    &consent["source"],
                    &consent["changed_at"]
                ),
                (
                    &json!("news"),
                    &json!(true),
                    &json!("import:crm"),
                    &json!(2_000)
                )
            );
            let outcome = &ana["outcomes"][0];
            assert_eq!(
                (&outcome["kind"], &outcome["at"]),
                (&json!("consent"), &json!(2_000))
            );
            assert_eq!(outcome["detail"]["source"], json!("import:crm"));
            let ben = serde_json::to_value(store.export_contact("ben").await.expect("export"))
                .expect("json");
            assert_eq!(ben["consents"][0]["granted"], json!(false));
            assert_eq!(ben["consents"][0]["source"], json!("preferences"));

            // The same file again changes nothing; a newer grant for Ben is recorded.
            let again = store
                .import_contacts(&rows, 11_000, APPLY, || {})
                .await
                .expect("again");
            assert_eq!(again.counts.unchanged, 2);
            let newer = vec![contact(
                1,
                "ben",
                json!({"first_name": "Ben"}),
                &[("news", true, 6_000)],
            )];
            let outcome = store
                .import_contacts(&newer, 12_000, APPLY, || {})
                .await
                .expect("newer");
            assert_eq!(outcome.counts.updated, 1);
            let ben = serde_json::to_value(store.export_contact("ben").await.expect("export"))
                .expect("json");
            assert_eq!(ben["consents"][0]["granted"], json!(true));
            assert_eq!(ben["consents"][0]["changed_at"], json!(6_000));
        })
        .await;
    }

    #[tokio::test]
    async fn a_refused_row_leaves_the_chunk_unwritten_unless_skipped() {
        on_both("import_refused", |store| async move {
            let mut tx = store.begin().await.expect("begin");
            tx.ensure_contact("gone", 100).await.expect("gone");
            tx.commit().await.expect("commit");
            let mut tx = store.begin().await.expect("begin");
            let fields = crate::store::rights::default_address_fields();
            tx.erase_contact("gone", &fields, 200).await.expect("erase");
            tx.commit().await.expect("commit");

            let rows = vec![
                contact(
                    1,
                    "ana",
                    json!({"first_name": "Ana"}),
                    &[("news", true, 2_000)],
                ),
                contact(2, "gone", json!({"first_name": "Again"}), &[]),
            ];
            let outcome = store
                .import_contacts(&rows, 10_000, APPLY, || {})
                .await
                .expect("import");
            assert!(!outcome.applied);
            assert_eq!(outcome.errors.len(), 1);
            assert_eq!(outcome.errors[0].line, 2);
            assert!(
                outcome.errors[0].message.contains("`gone` was erased"),
                "{:?}",
                outcome.errors
            );
            assert!(
                store.export_contact("ana").await.expect("export").is_none(),
                "nothing imported"
            );

            let skip = ImportMode {
                skip_invalid: true,
                ..APPLY
            };
            let mut committed = false;
            let outcome = store
                .import_contacts(&rows, 10_000, skip, || committed = true)
                .await
                .expect("import");
            assert!(outcome.applied && committed);
            assert_eq!((outcome.counts.created, outcome.counts.rejected), (1, 1));
            let gone = serde_json::to_value(store.export_contact("gone").await.expect("export"))
                .expect("json");
            assert_eq!(gone["traits"], json!({}), "an erased contact stays erased");
        })
        .await;
    }
}
