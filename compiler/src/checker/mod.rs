//! The checks of one item against the project's schema. Pure: the item's tree and the
//! schema in, diagnostics with item-relative spans out.

mod decl;
pub mod expr;
mod journey;
mod test_block;

use crate::schema::Schema;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::ItemKind;

pub struct Ctx<'a> {
    pub schema: &'a Schema,
    pub out: Vec<Diagnostic>,
}

/// Every finding in one item except template analysis and duplicate names, which the
/// database computes across items.
pub fn check_item(schema: &Schema, kind: &ItemKind) -> Vec<Diagnostic> {
    let mut ctx = Ctx {
        schema,
        out: Vec::new(),
    };
    match kind {
        ItemKind::Contact(c) => ctx.contact(c),
        ItemKind::Record(r) => ctx.fields(&r.fields),
        ItemKind::Event(e) => ctx.event(e),
        ItemKind::Segment(s) => ctx.segment(s),
        ItemKind::Score(s) => ctx.score(s),
        ItemKind::QuietHours(q) => ctx.quiet_hours(q),
        ItemKind::FrequencyCap(c) => ctx.frequency_cap(c),
        ItemKind::Journey(j) => ctx.journey(j),
        ItemKind::Test(t) => ctx.test(t),
        ItemKind::Consent(_) | ItemKind::Tag(_) | ItemKind::Template(_) | ItemKind::Error => {}
    }
    ctx.out
}
