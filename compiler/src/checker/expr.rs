//! Types of expressions: names, members, literals, operators and the built-in functions.

use super::Ctx;
use crate::codes;
use crate::schema::Ty;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{
    BinaryOp, Call, CallArg, Channel, Expr, ExprKind, Ident, Literal, UnaryOp,
};
use std::collections::BTreeMap;

/// What names mean where an expression is checked.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Bindings introduced with `as` (trigger, `wait for`), innermost last.
    pub bindings: Vec<(String, Ty)>,
    /// Inside `where`: this event's fields are bare names.
    pub event: Option<String>,
    /// Paths proven set by an enclosing `x is set and ...` or `if x is set`.
    pub narrowed: Vec<String>,
    /// Labels of the steps before this point, and the channel when the step sends.
    pub sends_before: BTreeMap<String, Option<Channel>>,
    /// Whether `opened(...)`/`clicked(...)` may be used (only inside journeys).
    pub in_journey: bool,
}

impl Scope {
    pub fn with_event(&self, event: &str) -> Scope {
        Scope {
            event: Some(event.to_string()),
            ..self.clone()
        }
    }

    pub fn bind(&mut self, name: &str, ty: Ty) {
        self.bindings.push((name.to_string(), ty));
    }
}

/// The dotted path of `contact.city` or `cart.value`, for narrowing.
pub fn path_of(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.name.clone()),
        ExprKind::Member(base, name) => Some(format!("{}.{}", path_of(base)?, name.name)),
        ExprKind::Paren(inner) => path_of(inner),
        _ => None,
    }
}

/// Paths that are set whenever `e` is true, and the consents it checks (as
/// `consented:NAME`).
fn proven_set(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::IsSet {
            expr,
            negated: false,
        } => out.extend(path_of(expr)),
        ExprKind::Call(c) if c.function.name == "consented" => {
            if let Some(ExprKind::Name(n)) = c.args.first().map(|a| &a.value.kind) {
                out.push(format!("consented:{}", n.name));
            }
        }
        ExprKind::Binary(BinaryOp::And, l, r) => {
            proven_set(l, out);
            proven_set(r, out);
        }
        ExprKind::Paren(inner) => proven_set(inner, out),
        _ => {}
    }
}

pub fn narrowed_by(condition: &Expr, scope: &Scope) -> Scope {
    let mut scope = scope.clone();
    proven_set(condition, &mut scope.narrowed);
    scope
}

impl Ctx<'_> {
    /// Checks `e` and reports when it is not a `bool`.
    pub fn condition(&mut self, e: &Expr, scope: &Scope, what: &str) {
        let ty = self.expr(e, scope);
        self.expect(e, &ty, &Ty::Bool, what);
    }

    /// Reports a mismatch between the type found and the one a place needs.
    pub fn expect(&mut self, e: &Expr, found: &Ty, wanted: &Ty, what: &str) {
        if !self.assignable(found, wanted) {
            let mut d = Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!("{what} must be {wanted}, found {found}"),
            )
            .with_label(e.span, format!("this is {found}"));
            if found.is_optional() && self.assignable(found.required(), wanted) {
                d = Diagnostic::error(codes::OPTIONAL_UNCHECKED, format!("{what} may be unset"))
                    .with_label(e.span, format!("this is {found}"))
                    .with_help("check it with `is set` first, or give a fallback with `default(value, fallback)`");
            }
            self.out.push(d);
        }
    }

    /// Whether a value of type `found` may stand where `wanted` is needed.
    pub fn assignable(&self, found: &Ty, wanted: &Ty) -> bool {
        match (found, wanted) {
            (Ty::Unknown, _) | (_, Ty::Unknown) => true,
            (Ty::Optional(f), Ty::Optional(w)) => self.assignable(f, w),
            (f, Ty::Optional(w)) => self.assignable(f, w),
            (Ty::Optional(_), _) => false,
            (Ty::Money(a), Ty::Money(b)) => a.is_none() || b.is_none() || a == b,
            (Ty::String, w) if w.is_textual() => true,
            (Ty::Enum(_), Ty::String) => true,
            (Ty::List(f), Ty::List(w)) => self.assignable(f, w),
            (f, w) => f == w,
        }
    }

    pub fn expr(&mut self, e: &Expr, scope: &Scope) -> Ty {
        match &e.kind {
            ExprKind::Name(n) => self.name(n, scope),
            ExprKind::Member(base, name) => {
                let base_ty = self.expr(base, scope);
                self.member(base, &base_ty, name, scope)
            }
            ExprKind::Literal(l) => self.literal(l),
            ExprKind::List(items) => {
                let mut element = Ty::Unknown;
                for item in items {
                    let ty = self.expr(item, scope);
                    if element == Ty::Unknown {
                        element = ty;
                    } else if !self.assignable(&ty, &element) && !self.assignable(&element, &ty) {
                        self.out.push(
                            Diagnostic::error(
                                codes::TYPE_MISMATCH,
                                format!("list items must share one type: {element} and {ty}"),
                            )
                            .with_label(item.span, format!("this is {ty}")),
                        );
                    }
                }
                Ty::List(Box::new(element))
            }
            ExprKind::Object(entries) => {
                self.duplicate_keys(entries);
                for entry in entries {
                    self.expr(&entry.value, scope);
                }
                Ty::Object
            }
            ExprKind::Call(call) => self.call(e, call, scope),
            ExprKind::Unary(UnaryOp::Not, inner) => {
                let ty = self.expr(inner, scope);
                self.operand(inner, &ty, "`not`", |t| *t == Ty::Bool);
                Ty::Bool
            }
            ExprKind::Unary(UnaryOp::Neg, inner) => {
                let ty = self.expr(inner, scope);
                self.operand(inner, &ty, "`-`", |t| t.is_numeric() || *t == Ty::Duration);
                ty
            }
            ExprKind::Binary(op, lhs, rhs) => self.binary(*op, lhs, rhs, scope),
            ExprKind::IsSet { expr, .. } => {
                self.expr(expr, scope);
                Ty::Bool
            }
            ExprKind::Paren(inner) => self.expr(inner, scope),
        }
    }

    fn operand(&mut self, e: &Expr, ty: &Ty, op: &str, ok: impl Fn(&Ty) -> bool) {
        if *ty == Ty::Unknown || ok(ty) {
            return;
        }
        if ty.is_optional() && ok(ty.required()) {
            self.out.push(
                Diagnostic::error(codes::OPTIONAL_UNCHECKED, format!("{op} needs a value, but this may be unset"))
                    .with_label(e.span, format!("this is {ty}"))
                    .with_help("check it with `is set` first, or give a fallback with `default(value, fallback)`"),
            );
        } else {
            self.out.push(
                Diagnostic::error(codes::BAD_OPERANDS, format!("{op} does not apply to {ty}"))
                    .with_label(e.span, format!("this is {ty}")),
            );
        }
    }

    fn name(&mut self, n: &Ident, scope: &Scope) -> Ty {
        let name = n.name.as_str();
        if let Some(event) = &scope.event
            && let Some(ty) = self
                .schema
                .events
                .get(event)
                .and_then(|e| e.fields.get(name))
        {
            return self.narrow(name, ty.clone(), scope);
        }
        if let Some((_, ty)) = scope.bindings.iter().rev().find(|(b, _)| b == name) {
            return ty.clone();
        }
        if name == "contact" {
            return Ty::Contact;
        }
        if self.schema.segments.contains(name) {
            return Ty::Bool;
        }
        if self.schema.scores.contains(name) {
            return Ty::Number;
        }
        let mut candidates: Vec<String> = vec!["contact".to_string()];
        candidates.extend(scope.bindings.iter().map(|(b, _)| b.clone()));
        candidates.extend(self.schema.segments.iter().cloned());
        candidates.extend(self.schema.scores.iter().cloned());
        if let Some(event) = &scope.event {
            candidates.extend(self.schema.members(&Ty::Event(event.clone())));
        }
        let mut d = Diagnostic::error(codes::UNKNOWN_NAME, format!("unknown name `{name}`"))
            .with_label(n.span, "not a segment, score, binding or field");
        if let Some(s) = crate::suggest::did_you_mean(name, candidates.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if self.schema.events.contains_key(name) {
            d = d.with_help(format!(
                "`{name}` is an event: use it in `exists({name})`, `count({name} within 7d)`, or bind it with `as`"
            ));
        } else if self.schema.contact.contains_key(name) {
            d = d.with_help(format!("contact fields are written `contact.{name}`"));
        }
        self.out.push(d);
        Ty::Unknown
    }

    fn narrow(&self, path: &str, ty: Ty, scope: &Scope) -> Ty {
        if ty.is_optional() && scope.narrowed.iter().any(|p| p == path) {
            ty.required().clone()
        } else {
            ty
        }
    }

    fn member(&mut self, base: &Expr, base_ty: &Ty, name: &Ident, scope: &Scope) -> Ty {
        if *base_ty == Ty::Unknown {
            return Ty::Unknown;
        }
        match self.schema.member(base_ty, &name.name) {
            Some(ty) => {
                let ty = if base_ty.is_optional() {
                    ty.optional()
                } else {
                    ty
                };
                match path_of(base) {
                    Some(p) => self.narrow(&format!("{p}.{}", name.name), ty, scope),
                    None => ty,
                }
            }
            None => {
                let members = self.schema.members(base_ty);
                if members.is_empty() {
                    self.out.push(
                        Diagnostic::error(codes::BAD_OPERANDS, format!("{base_ty} has no fields"))
                            .with_label(name.span, format!("`.{}` on {base_ty}", name.name)),
                    );
                    return Ty::Unknown;
                }
                let owner = match base_ty.required() {
                    Ty::Contact => "the contact".to_string(),
                    other => other.to_string(),
                };
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_FIELD,
                    format!("{owner} has no field `{}`", name.name),
                )
                .with_label(name.span, "unknown field");
                d = d.with_help(
                    match crate::suggest::did_you_mean(
                        &name.name,
                        members.iter().map(String::as_str),
                    ) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("its fields: {}", list(&members)),
                    },
                );
                self.out.push(d);
                Ty::Unknown
            }
        }
    }

    pub fn literal(&mut self, l: &Literal) -> Ty {
        match l {
            Literal::Number(_) => Ty::Number,
            Literal::Money(m) => Ty::Money(Some(m.currency.clone())),
            Literal::Percent(_) => Ty::Percent,
            Literal::Duration(_) => Ty::Duration,
            Literal::String(_) => Ty::String,
            Literal::Bool(_) => Ty::Bool,
            Literal::Date(_) => Ty::Date,
            Literal::DateTime(_) => Ty::DateTime,
            Literal::Time(_) => Ty::Time,
        }
    }

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr, scope: &Scope) -> Ty {
        let l = self.expr(lhs, scope);
        let r = if op == BinaryOp::And {
            self.expr(rhs, &narrowed_by(lhs, scope))
        } else {
            self.expr(rhs, scope)
        };
        if l == Ty::Unknown || r == Ty::Unknown {
            return match op {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => Ty::Unknown,
                _ => Ty::Bool,
            };
        }
        let sym = format!("`{}`", op.as_str());
        match op {
            BinaryOp::And | BinaryOp::Or => {
                self.operand(lhs, &l, &sym, |t| *t == Ty::Bool);
                self.operand(rhs, &r, &sym, |t| *t == Ty::Bool);
                Ty::Bool
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                self.comparable(lhs, &l, rhs, &r, &sym, false);
                Ty::Bool
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                self.operand(lhs, &l, &sym, Ty::is_ordered);
                self.operand(rhs, &r, &sym, Ty::is_ordered);
                if l.is_ordered() && r.is_ordered() {
                    self.comparable(lhs, &l, rhs, &r, &sym, true);
                }
                self.never_true_count(op, lhs, rhs);
                Ty::Bool
            }
            BinaryOp::In | BinaryOp::NotIn => {
                match r.required() {
                    Ty::List(element) => {
                        let element = (**element).clone();
                        self.comparable(lhs, &l, rhs, &element, &sym, false);
                        if let (Ty::Enum(variants), ExprKind::List(items)) =
                            (l.required(), &rhs.kind)
                        {
                            for item in items {
                                self.check_variant(variants, item);
                            }
                        }
                    }
                    _ => self.out.push(
                        Diagnostic::error(
                            codes::BAD_OPERANDS,
                            format!("{sym} needs a list on its right"),
                        )
                        .with_label(rhs.span, format!("this is {r}")),
                    ),
                }
                Ty::Bool
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                self.arithmetic(op, lhs, &l, rhs, &r)
            }
        }
    }

    fn comparable(&mut self, lhs: &Expr, l: &Ty, rhs: &Expr, r: &Ty, sym: &str, ordered: bool) {
        if ordered {
            // Ordering needs both values.
            for (e, t) in [(lhs, l), (rhs, r)] {
                if t.is_optional() {
                    self.operand(e, t, sym, |_| false);
                    return;
                }
            }
        }
        let (lr, rr) = (l.required(), r.required());
        if let (Ty::Money(Some(a)), Ty::Money(Some(b))) = (lr, rr)
            && a != b
        {
            self.out.push(
                Diagnostic::error(codes::CURRENCY_MISMATCH, format!("comparing {a} with {b}"))
                    .with_label(lhs.span, format!("in {a}"))
                    .with_secondary(rhs.span, format!("in {b}"))
                    .with_help(
                        "amounts in different currencies cannot be compared; use one currency",
                    ),
            );
            return;
        }
        if let (Ty::Enum(variants), _) = (lr, rr) {
            self.check_variant(variants, rhs);
        }
        if let (_, Ty::Enum(variants)) = (lr, rr) {
            self.check_variant(variants, lhs);
        }
        if !(self.assignable(lr, rr) || self.assignable(rr, lr)) {
            self.out.push(
                Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    format!("cannot compare {lr} with {rr}"),
                )
                .with_label(rhs.span, format!("this is {rr}"))
                .with_secondary(lhs.span, format!("this is {lr}")),
            );
        }
    }

    fn check_variant(&mut self, variants: &[String], e: &Expr) {
        if let ExprKind::Literal(Literal::String(s)) = &e.kind
            && !variants.contains(&s.value)
        {
            let mut d = Diagnostic::error(
                codes::NOT_A_VARIANT,
                format!("\"{}\" is not one of the enum's values", s.value),
            )
            .with_label(e.span, "not a variant");
            d = d.with_help(
                match crate::suggest::did_you_mean(&s.value, variants.iter().map(String::as_str)) {
                    Some(v) => format!("did you mean \"{v}\"?"),
                    None => format!("the values are {}", list(variants)),
                },
            );
            self.out.push(d);
        }
    }

    fn arithmetic(&mut self, op: BinaryOp, lhs: &Expr, l: &Ty, rhs: &Expr, r: &Ty) -> Ty {
        let sym = format!("`{}`", op.as_str());
        if l.is_optional() || r.is_optional() {
            let (e, t) = if l.is_optional() { (lhs, l) } else { (rhs, r) };
            self.operand(e, t, &sym, |_| false);
            return Ty::Unknown;
        }
        let result = match (op, l, r) {
            (_, Ty::Number, Ty::Number) => Some(Ty::Number),
            (BinaryOp::Add | BinaryOp::Sub, Ty::Money(a), Ty::Money(b)) => {
                if let (Some(a), Some(b)) = (a, b)
                    && a != b
                {
                    self.out.push(
                        Diagnostic::error(codes::CURRENCY_MISMATCH, format!("adding {a} and {b}"))
                            .with_label(rhs.span, format!("in {b}"))
                            .with_secondary(lhs.span, format!("in {a}")),
                    );
                    return Ty::Unknown;
                }
                Some(Ty::Money(a.clone().or_else(|| b.clone())))
            }
            (BinaryOp::Mul | BinaryOp::Div, Ty::Money(c), Ty::Number | Ty::Percent) => {
                Some(Ty::Money(c.clone()))
            }
            (BinaryOp::Mul, Ty::Number | Ty::Percent, Ty::Money(c)) => Some(Ty::Money(c.clone())),
            (BinaryOp::Add | BinaryOp::Sub, Ty::Date | Ty::DateTime, Ty::Duration) => {
                Some(l.clone())
            }
            (BinaryOp::Add, Ty::Duration, Ty::Date | Ty::DateTime) => Some(r.clone()),
            (BinaryOp::Add | BinaryOp::Sub, Ty::Duration, Ty::Duration) => Some(Ty::Duration),
            (BinaryOp::Mul | BinaryOp::Div, Ty::Duration, Ty::Number) => Some(Ty::Duration),
            (BinaryOp::Mul, Ty::Number | Ty::Percent, Ty::Number | Ty::Percent) => Some(Ty::Number),
            (BinaryOp::Sub, Ty::DateTime, Ty::DateTime) | (BinaryOp::Sub, Ty::Date, Ty::Date) => {
                Some(Ty::Duration)
            }
            _ => None,
        };
        result.unwrap_or_else(|| {
            self.out.push(
                Diagnostic::error(
                    codes::BAD_OPERANDS,
                    format!("{sym} does not apply to {l} and {r}"),
                )
                .with_label(rhs.span, format!("this is {r}"))
                .with_secondary(lhs.span, format!("this is {l}")),
            );
            Ty::Unknown
        })
    }

    /// `count(...) < 0` and friends: a count is never negative.
    fn never_true_count(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) {
        let is_count =
            |e: &Expr| matches!(&e.kind, ExprKind::Call(c) if c.function.name == "count");
        let is_zero = |e: &Expr| matches!(&e.kind, ExprKind::Literal(Literal::Number(n)) if n.text.trim_start_matches('0').trim_start_matches('.').trim_matches('0').is_empty());
        if (is_count(lhs) && op == BinaryOp::Lt && is_zero(rhs))
            || (is_count(rhs) && op == BinaryOp::Gt && is_zero(lhs))
        {
            self.out.push(
                Diagnostic::warning(
                    codes::NEVER_TRUE,
                    "a count is never below zero, so this is never true",
                )
                .with_label(lhs.span.cover(rhs.span), "always false"),
            );
        }
    }

    fn call(&mut self, whole: &Expr, call: &Call, scope: &Scope) -> Ty {
        let name = call.function.name.as_str();
        let args = &call.args;
        match name {
            "consented" | "has_tag" => {
                let Some(arg) = self.arity(call, 1, whole) else {
                    return Ty::Bool;
                };
                self.plain_arg(arg);
                if let ExprKind::Name(n) = &arg.value.kind {
                    if name == "consented" {
                        self.consent_name(n);
                    } else {
                        self.tag_name(n);
                    }
                } else {
                    self.bad_arg(
                        arg,
                        &format!(
                            "`{name}` takes the name of a {}",
                            if name == "consented" {
                                "consent"
                            } else {
                                "tag"
                            }
                        ),
                    );
                }
                Ty::Bool
            }
            "opened" | "clicked" => {
                let Some(arg) = self.arity(call, 1, whole) else {
                    return Ty::Bool;
                };
                self.plain_arg(arg);
                match &arg.value.kind {
                    ExprKind::Name(n) if !scope.in_journey => {
                        self.out.push(
                            Diagnostic::error(
                                codes::NOT_A_SEND,
                                format!("`{name}` only works inside a journey"),
                            )
                            .with_label(n.span, "no journey steps here"),
                        );
                    }
                    ExprKind::Name(n) => match scope.sends_before.get(&n.name) {
                        Some(Some(Channel::Email | Channel::Push)) => {}
                        Some(_) => self.out.push(
                            Diagnostic::error(
                                codes::NOT_A_SEND,
                                format!("step `{}` sends no email or push", n.name),
                            )
                            .with_label(n.span, format!("`{name}` needs a tracked message"))
                            .with_help("only email and push messages report opens and clicks"),
                        ),
                        None => {
                            let mut d = Diagnostic::error(
                                codes::UNKNOWN_LABEL,
                                format!("no step `{}` before this point", n.name),
                            )
                            .with_label(n.span, "unknown step label");
                            if let Some(s) = crate::suggest::did_you_mean(
                                &n.name,
                                scope.sends_before.keys().map(String::as_str),
                            ) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            } else {
                                d = d.with_help("label the send step (`remind: send email ...`) and use the label after it");
                            }
                            self.out.push(d);
                        }
                    },
                    _ => self.bad_arg(arg, &format!("`{name}` takes a step label")),
                }
                Ty::Bool
            }
            "exists" | "count" => {
                let Some(arg) = self.arity(call, 1, whole) else {
                    return Ty::Unknown;
                };
                if let ExprKind::Name(n) = &arg.value.kind {
                    if self.event_name(n) {
                        self.query_clauses(arg, &n.name, scope);
                    }
                } else {
                    self.bad_arg(
                        arg,
                        &format!("`{name}` takes an event: `{name}(order_completed within 30d)`"),
                    );
                }
                if name == "exists" {
                    Ty::Bool
                } else {
                    Ty::Number
                }
            }
            "sum" | "avg" | "min" | "max" | "last" => {
                let Some(arg) = self.arity(call, 1, whole) else {
                    return Ty::Unknown;
                };
                let ExprKind::Member(base, field) = &arg.value.kind else {
                    self.bad_arg(arg, &format!("`{name}` takes an event field: `{name}(order_completed.total within 365d)`"));
                    return Ty::Unknown;
                };
                let ExprKind::Name(event) = &base.kind else {
                    self.bad_arg(arg, &format!("`{name}` takes an event field"));
                    return Ty::Unknown;
                };
                if !self.event_name(event) {
                    return Ty::Unknown;
                }
                self.query_clauses(arg, &event.name, scope);
                let event_ty = Ty::Event(event.name.clone());
                let field_ty = self.member(base, &event_ty, field, scope);
                if name == "last" {
                    return field_ty.optional();
                }
                if field_ty != Ty::Unknown && !field_ty.required().is_numeric() {
                    self.out.push(
                        Diagnostic::error(
                            codes::BAD_AGGREGATE,
                            format!(
                                "`{name}` needs a numeric field, `{}` is {field_ty}",
                                field.name
                            ),
                        )
                        .with_label(field.span, "not a number or money"),
                    );
                    return Ty::Unknown;
                }
                if name == "avg" && matches!(field_ty.required(), Ty::Money(_)) {
                    return field_ty.required().clone();
                }
                field_ty.required().clone()
            }
            "days_since" => {
                let Some(arg) = self.arity(call, 1, whole) else {
                    return Ty::Number;
                };
                self.plain_arg(arg);
                let ty = self.expr(&arg.value, scope);
                self.operand(&arg.value, &ty, "`days_since`", |t| {
                    matches!(t, Ty::Date | Ty::DateTime)
                });
                Ty::Number
            }
            "default" => {
                if args.len() != 2 {
                    self.wrong_count(call, 2, whole);
                    return Ty::Unknown;
                }
                args.iter().for_each(|a| self.plain_arg(a));
                let value = self.expr(&args[0].value, scope);
                let fallback = self.expr(&args[1].value, scope);
                if !value.is_optional() && value != Ty::Unknown {
                    // Legal, but there is nothing to default.
                    return value;
                }
                let inner = value.required().clone();
                if !self.assignable(&fallback, &inner) {
                    self.out.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!("the fallback must be {inner}, found {fallback}"),
                        )
                        .with_label(args[1].value.span, format!("this is {fallback}")),
                    );
                }
                inner
            }
            "now" => {
                if !args.is_empty() {
                    self.wrong_count(call, 0, whole);
                }
                Ty::DateTime
            }
            "lower" | "upper" | "len" => {
                let Some(arg) = self.arity(call, 1, whole) else {
                    return Ty::Unknown;
                };
                self.plain_arg(arg);
                let ty = self.expr(&arg.value, scope);
                if name == "len" {
                    self.operand(&arg.value, &ty, "`len`", |t| {
                        matches!(t, Ty::List(_)) || t.is_textual()
                    });
                    Ty::Number
                } else {
                    self.operand(&arg.value, &ty, &format!("`{name}`"), Ty::is_textual);
                    Ty::String
                }
            }
            _ => {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_FUNCTION,
                    format!("unknown function `{name}`"),
                )
                .with_label(call.function.span, "not a function");
                if let Some(s) = crate::suggest::did_you_mean(name, FUNCTIONS.iter().copied()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else {
                    d = d.with_help("see `cairn explain E0110` for the functions");
                }
                self.out.push(d);
                // The arguments mean nothing until the function is known.
                Ty::Unknown
            }
        }
    }

    fn arity<'c>(&mut self, call: &'c Call, n: usize, whole: &Expr) -> Option<&'c CallArg> {
        if call.args.len() == n {
            call.args.first()
        } else {
            self.wrong_count(call, n, whole);
            None
        }
    }

    fn wrong_count(&mut self, call: &Call, n: usize, whole: &Expr) {
        self.out.push(
            Diagnostic::error(
                codes::BAD_ARGUMENTS,
                format!(
                    "`{}` takes {n} argument{}, found {}",
                    call.function.name,
                    if n == 1 { "" } else { "s" },
                    call.args.len()
                ),
            )
            .with_label(whole.span, "wrong number of arguments"),
        );
    }

    /// `where` and `within` belong to event queries only.
    fn plain_arg(&mut self, arg: &CallArg) {
        if arg.filter.is_some() || arg.within.is_some() {
            self.out.push(
                Diagnostic::error(
                    codes::BAD_ARGUMENTS,
                    "`where` and `within` only go with events",
                )
                .with_label(arg.span, "not an event query"),
            );
        }
    }

    fn bad_arg(&mut self, arg: &CallArg, message: &str) {
        self.out.push(
            Diagnostic::error(codes::BAD_ARGUMENTS, message.to_string())
                .with_label(arg.value.span, "this argument"),
        );
    }

    fn query_clauses(&mut self, arg: &CallArg, event: &str, scope: &Scope) {
        if let Some(filter) = &arg.filter {
            self.condition(filter, &scope.with_event(event), "a `where` condition");
        }
        if let Some(within) = &arg.within
            && within.value == 0
        {
            self.out.push(
                Diagnostic::error(codes::BAD_VALUE, "a window of zero covers no events")
                    .with_label(within.span, "empty window"),
            );
        }
    }

    /// Reports every key given twice in an object literal, a webhook body or a payload.
    pub fn duplicate_keys(&mut self, entries: &[cairn_grammar::ast::ObjectEntry]) {
        let mut seen: Vec<&str> = Vec::new();
        for entry in entries {
            if seen.contains(&entry.key.name.as_str()) {
                self.out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_FIELD,
                        format!("`{}` is given twice", entry.key.name),
                    )
                    .with_label(entry.key.span, "again here"),
                );
            }
            seen.push(&entry.key.name);
        }
    }

    /// Reports `n` as an unknown `what` unless `known`; the suggestions are computed
    /// only then. Returns `known`.
    fn declared<'s>(
        &mut self,
        code: &'static str,
        what: &str,
        n: &Ident,
        known: bool,
        names: impl Iterator<Item = &'s String>,
    ) -> bool {
        if !known {
            self.require(code, what, n, false, names.cloned().collect());
        }
        known
    }

    /// Checks that `n` names an event; reports it otherwise.
    pub fn event_name(&mut self, n: &Ident) -> bool {
        let schema = self.schema;
        self.declared(
            codes::UNKNOWN_EVENT,
            "event",
            n,
            schema.events.contains_key(&n.name),
            schema.events.keys(),
        )
    }

    pub fn tag_name(&mut self, n: &Ident) -> bool {
        let schema = self.schema;
        self.declared(
            codes::UNKNOWN_TAG,
            "tag",
            n,
            schema.tags.contains(&n.name),
            schema.tags.iter(),
        )
    }

    pub fn segment_name(&mut self, n: &Ident) -> bool {
        let schema = self.schema;
        self.declared(
            codes::UNKNOWN_SEGMENT,
            "segment",
            n,
            schema.segments.contains(&n.name),
            schema.segments.iter(),
        )
    }

    pub fn score_name(&mut self, n: &Ident) -> bool {
        let schema = self.schema;
        self.declared(
            codes::UNKNOWN_SCORE,
            "score",
            n,
            schema.scores.contains(&n.name),
            schema.scores.iter(),
        )
    }

    pub fn consent_name(&mut self, n: &Ident) -> bool {
        let schema = self.schema;
        self.declared(
            codes::UNKNOWN_CONSENT,
            "consent",
            n,
            schema.consents.contains_key(&n.name),
            schema.consents.keys(),
        )
    }

    pub fn journey_name(&mut self, n: &Ident) -> bool {
        let schema = self.schema;
        self.declared(
            codes::UNKNOWN_JOURNEY,
            "journey",
            n,
            schema.journeys.contains(&n.name),
            schema.journeys.iter(),
        )
    }

    /// Reports `n` as an unknown `what` unless `known`, suggesting from `candidates`.
    pub fn require(
        &mut self,
        code: &'static str,
        what: &str,
        n: &Ident,
        known: bool,
        candidates: Vec<String>,
    ) {
        if known {
            return;
        }
        let mut d = Diagnostic::error(code, format!("unknown {what} `{}`", n.name))
            .with_label(n.span, format!("no {what} of this name"));
        if let Some(s) =
            crate::suggest::did_you_mean(&n.name, candidates.iter().map(String::as_str))
        {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if candidates.is_empty() {
            d = d.with_help(format!("declare it first; the project has no {what} yet"));
        } else if candidates.len() <= 8 {
            d = d.with_help(format!("declared: {}", list(&candidates)));
        }
        self.out.push(d);
    }
}

pub const FUNCTIONS: &[&str] = &[
    "consented",
    "has_tag",
    "opened",
    "clicked",
    "exists",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "last",
    "days_since",
    "default",
    "now",
    "lower",
    "upper",
    "len",
];

pub fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
