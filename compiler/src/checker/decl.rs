//! Declarations: schema fields, segments, scores and project policies.

use super::Ctx;
use super::expr::Scope;
use crate::codes;
use crate::schema::{self, Ty};
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{
    ContactSchema, EventDecl, Field, FrequencyCap, QuietHours, ScoreDecl, ScoreRuleKind,
    SegmentDecl, TypeExpr, TypeKind,
};
use std::collections::BTreeMap;

impl Ctx<'_> {
    pub fn contact(&mut self, c: &ContactSchema) {
        for f in &c.fields {
            if let Some((name, _)) = schema::BUILTIN_CONTACT_FIELDS
                .iter()
                .find(|(n, _)| *n == f.name.name)
            {
                self.out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_FIELD,
                        format!("`{name}` is a built-in contact field"),
                    )
                    .with_label(f.name.span, "already defined by Cairn")
                    .with_help("every contact has `id` and `created_at`; pick another name"),
                );
            }
        }
        self.fields(&c.fields);
    }

    pub fn event(&mut self, e: &EventDecl) {
        if schema::builtin_events().contains_key(&e.name.name) {
            self.out.push(
                Diagnostic::error(
                    codes::DUPLICATE,
                    format!("`{}` is a built-in event", e.name.name),
                )
                .with_label(e.name.span, "already defined by Cairn")
                .with_help("built-in events need no declaration; remove this one or rename it"),
            );
        }
        self.fields(&e.fields);
    }

    /// Field lists: unique names, known types, defaults of the right type.
    pub fn fields(&mut self, fields: &[Field]) {
        let mut seen: BTreeMap<&str, cairn_grammar::ast::Span> = BTreeMap::new();
        for f in fields {
            if let Some(first) = seen.get(f.name.name.as_str()) {
                self.out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_FIELD,
                        format!("field `{}` is declared twice", f.name.name),
                    )
                    .with_label(f.name.span, "second declaration")
                    .with_secondary(*first, "first declaration"),
                );
            }
            seen.insert(&f.name.name, f.name.span);
            let ty = self.type_expr(&f.ty);
            if let (Some(default), Some(ty)) = (&f.default, ty) {
                let found = self.expr(default, &Scope::default());
                if !self.assignable(&found, &ty) {
                    self.out.push(
                        Diagnostic::error(
                            codes::BAD_DEFAULT,
                            format!(
                                "the default of `{}` must be {ty}, found {found}",
                                f.name.name
                            ),
                        )
                        .with_label(default.span, format!("this is {found}")),
                    );
                }
                if ty.required() == &Ty::Timezone
                    && let cairn_grammar::ast::ExprKind::Literal(
                        cairn_grammar::ast::Literal::String(s),
                    ) = &default.kind
                    && !is_time_zone(&s.value)
                {
                    self.out.push(
                        Diagnostic::error(
                            codes::BAD_VALUE,
                            format!("`{}` is not a time zone", s.value),
                        )
                        .with_label(default.span, "not an IANA time zone name")
                        .with_help(
                            "use a name such as `UTC`, `Europe/Warsaw` or `America/New_York`",
                        ),
                    );
                }
            }
        }
    }

    fn type_expr(&mut self, t: &TypeExpr) -> Option<Ty> {
        let records: std::collections::BTreeSet<String> =
            self.schema.records.keys().cloned().collect();
        if let Some(ty) = schema::resolve_type(t, &records, &self.schema.currency) {
            if let TypeKind::Enum(variants) = &t.kind {
                let mut seen = Vec::new();
                for v in variants {
                    if seen.contains(&&v.name) {
                        self.out.push(
                            Diagnostic::error(
                                codes::DUPLICATE_FIELD,
                                format!("enum value `{}` is listed twice", v.name),
                            )
                            .with_label(v.span, "again here"),
                        );
                    }
                    seen.push(&v.name);
                }
            }
            return Some(ty);
        }
        let mut named = t;
        while let TypeKind::List(inner) = &named.kind {
            named = inner;
        }
        if let TypeKind::Named(n) = &named.kind {
            let mut candidates: Vec<String> = schema::BUILTIN_TYPE_NAMES
                .iter()
                .map(|s| (*s).to_string())
                .collect();
            candidates.extend(records);
            self.require(codes::UNKNOWN_TYPE, "type", n, false, candidates);
        }
        None
    }

    pub fn segment(&mut self, s: &SegmentDecl) {
        self.condition(&s.condition, &Scope::default(), "a segment's condition");
        if contradicts(&s.condition) {
            self.out.push(
                Diagnostic::warning(
                    codes::NEVER_TRUE,
                    format!("segment `{}` can never contain anyone", s.name.name),
                )
                .with_label(
                    s.condition.span,
                    "a condition and its negation are both required",
                ),
            );
        }
    }

    pub fn score(&mut self, s: &ScoreDecl) {
        let mut decays = 0;
        for rule in &s.rules {
            match &rule.kind {
                ScoreRuleKind::On { event, filter, .. } => {
                    if self.event_name(event)
                        && let Some(f) = filter
                    {
                        self.condition(
                            f,
                            &Scope::default().with_event(&event.name),
                            "a `where` condition",
                        );
                    }
                }
                ScoreRuleKind::Decay { percent, every } => {
                    decays += 1;
                    if decays > 1 {
                        self.out.push(
                            Diagnostic::error(
                                codes::DUPLICATE_OPTION,
                                "a score decays at one rate",
                            )
                            .with_label(rule.span, "second `decay`"),
                        );
                    }
                    let value: f64 = percent.value.text.parse().unwrap_or(0.0);
                    if value <= 0.0 || value > 100.0 {
                        self.out.push(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                "decay must be more than 0% and at most 100%",
                            )
                            .with_label(percent.span, "out of range"),
                        );
                    }
                    if every.value == 0 {
                        self.out.push(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                "decay needs a period longer than zero",
                            )
                            .with_label(every.span, "zero"),
                        );
                    }
                }
            }
        }
    }

    pub fn quiet_hours(&mut self, q: &QuietHours) {
        if (q.from.hour, q.from.minute) == (q.to.hour, q.to.minute) {
            self.out.push(
                Diagnostic::warning(
                    codes::EMPTY_WINDOW,
                    "quiet hours from a time to the same time cover nothing",
                )
                .with_label(q.from.span.cover(q.to.span), "empty window"),
            );
        }
    }

    pub fn frequency_cap(&mut self, c: &FrequencyCap) {
        if c.limit == 0 {
            self.out.push(
                Diagnostic::error(codes::BAD_VALUE, "a frequency cap of 0 stops every message")
                    .with_label(c.per.span, "cap of zero")
                    .with_help("to stop a journey, pause it; a cap is at least 1"),
            );
        }
        if c.per.value == 0 {
            self.out.push(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    "a frequency cap needs a period longer than zero",
                )
                .with_label(c.per.span, "zero"),
            );
        }
    }
}

/// `x and not x`, at the top level of a conjunction.
fn contradicts(e: &cairn_grammar::ast::Expr) -> bool {
    use cairn_grammar::ast::{BinaryOp, ExprKind, UnaryOp};
    let mut terms = Vec::new();
    fn conjuncts<'e>(e: &'e cairn_grammar::ast::Expr, out: &mut Vec<&'e cairn_grammar::ast::Expr>) {
        match &e.kind {
            ExprKind::Binary(BinaryOp::And, l, r) => {
                conjuncts(l, out);
                conjuncts(r, out);
            }
            ExprKind::Paren(inner) => conjuncts(inner, out),
            _ => out.push(e),
        }
    }
    conjuncts(e, &mut terms);
    let text = |e: &cairn_grammar::ast::Expr| cairn_grammar::expr_text(e);
    terms.iter().any(|t| match &t.kind {
        ExprKind::Unary(UnaryOp::Not, inner) => {
            let negated = text(inner);
            terms.iter().any(|other| text(other) == negated)
        }
        _ => false,
    })
}

/// Whether `name` is an IANA time zone name Cairn knows.
pub fn is_time_zone(name: &str) -> bool {
    name == "UTC" || jiff::tz::TimeZone::get(name).is_ok()
}
