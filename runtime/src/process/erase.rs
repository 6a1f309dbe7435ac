//! Erasing a contact from a running daemon: the store's erasure, retried like any unit
//! of work, with the contact cache kept in step so no later transaction works from the
//! state the contact had before.

use super::{Core, StateCache};
use crate::store::Result;
use crate::store::rights::{AddressFields, Erasure, default_address_fields};
use cairn_plan::Plan;
use cairn_plan::Type;
use std::collections::HashMap;

impl Core {
    /// Erases `contact_id` (see [`crate::store::rights`]); `None` when there is no such
    /// contact. Erasing twice is fine: the second time changes nothing.
    pub async fn erase_contact(&self, contact_id: &str) -> Result<Option<Erasure>> {
        let fields = self
            .active_plan()
            .map_or_else(default_address_fields, |a| address_fields(&a.plan));
        crate::store::retrying("an erasure", || self.erase_once(contact_id, &fields)).await
    }

    async fn erase_once(
        &self,
        contact_id: &str,
        fields: &AddressFields,
    ) -> Result<Option<Erasure>> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        // Taken once the transaction holds the SQLite writer: a transaction that
        // committed before this one cannot put its older state back over the erased one.
        let generation = self.cache.as_ref().map(StateCache::generation);
        let erasure = tx.erase_contact(contact_id, fields, now).await?;
        if let (Some(cache), Some(generation), Some(_)) = (&self.cache, generation, &erasure) {
            // The erased state goes into the cache before the commit, while this
            // transaction holds the writer, so no transaction can take the state from
            // before; an older one putting its state back afterwards loses to this
            // generation.
            let erased = tx.load_state_locked(contact_id, false).await?;
            cache.put(
                generation,
                HashMap::from([(contact_id.to_string(), Box::new(erased))]),
            );
        }
        if let Err(e) = tx.commit().await {
            if let Some(cache) = &self.cache {
                cache.forget(&[contact_id.to_string()]);
            }
            return Err(e);
        }
        Ok(erasure)
    }
}

/// The trait fields of the plan's contact schema that hold an address, by channel (an
/// `email` field, a `phone` field, the `push_token`), and the usual names besides.
pub fn address_fields(plan: &Plan) -> AddressFields {
    let mut fields = default_address_fields();
    for field in &plan.schema.contact {
        let channel = match &field.ty {
            Type::Scalar { name } if name == "email" => "email",
            Type::Scalar { name } if name == "phone" => "sms",
            _ => continue,
        };
        fields.push((channel.to_string(), field.name.clone()));
    }
    fields.sort();
    fields.dedup();
    fields
}
