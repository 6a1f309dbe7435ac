//! Evaluating plan expressions against a contact, its history and a run.
//!
//! The checker has already proven the types, so a mismatch here (an unset value in
//! arithmetic, money in two currencies) yields `Unset` or `false` rather than a panic.

use crate::model::{Contact, EventRecord, Millis};
use crate::time::{self, timestamp};
use crate::value::{self, Value};
use cairn_plan::Plan;
use cairn_plan::expr::{BinaryOp, CallArg, Expr, UnaryOp};
use cairn_plan::schema::Type;
use rust_decimal::Decimal;
use serde_json::Value as Json;

/// How deep segments may refer to segments before evaluation gives up.
const MAX_SEGMENT_DEPTH: usize = 16;

/// A binding visible to expressions: `cart` is the payload of a `cart_updated`.
#[derive(Debug, Clone)]
pub struct Binding<'a> {
    pub name: &'a str,
    pub event: &'a str,
    pub payload: &'a Json,
}

#[derive(Clone)]
pub struct Scope<'a> {
    pub plan: &'a Plan,
    pub contact: &'a Contact,
    /// The contact's events, oldest first.
    pub history: &'a [EventRecord],
    pub now: Millis,
    pub bindings: Vec<Binding<'a>>,
    /// Inside `where`: the event whose fields are bare names.
    pub event: Option<(&'a str, &'a Json)>,
    /// The run, for `opened(label)` / `clicked(label)`.
    pub run_id: Option<&'a str>,
    depth: usize,
}

impl<'a> Scope<'a> {
    pub fn new(
        plan: &'a Plan,
        contact: &'a Contact,
        history: &'a [EventRecord],
        now: Millis,
    ) -> Self {
        Self {
            plan,
            contact,
            history,
            now,
            bindings: Vec::new(),
            event: None,
            run_id: None,
            depth: 0,
        }
    }

    fn currency(&self) -> Option<&str> {
        self.plan.default_currency.as_deref()
    }

    fn event_field_type(&self, event: &str, field: &str) -> Option<&'a Type> {
        self.plan
            .schema
            .events
            .get(event)?
            .fields
            .iter()
            .find(|f| f.name == field)
            .map(|f| &f.ty)
    }

    fn contact_field_type(&self, field: &str) -> Option<&'a Type> {
        self.plan
            .schema
            .contact
            .iter()
            .find(|f| f.name == field)
            .map(|f| &f.ty)
    }

    fn typed(&self, json: &Json, ty: Option<&Type>) -> Value {
        value::from_json(json, ty, &self.plan.schema.records, self.currency())
    }

    /// A contact field: its trait, else its declared default, else unset.
    pub fn contact_field(&self, field: &str) -> Value {
        match field {
            "id" => return Value::String(self.contact.id.clone()),
            "created_at" => return Value::DateTime(timestamp(self.contact.created_at)),
            _ => {}
        }
        match self.contact.traits.get(field) {
            Some(json) if !json.is_null() => self.typed(json, self.contact_field_type(field)),
            _ => {
                let default = self
                    .plan
                    .schema
                    .contact
                    .iter()
                    .find(|f| f.name == field)
                    .and_then(|f| f.default.as_ref());
                match default {
                    Some(expr) => self.eval(expr),
                    None => Value::Unset,
                }
            }
        }
    }

    pub fn truthy(&self, e: &Expr) -> bool {
        self.eval(e).truthy()
    }

    pub fn eval(&self, e: &Expr) -> Value {
        match e {
            Expr::Number { value } => Value::Number(value::decimal(value)),
            Expr::Money { amount, currency } => {
                Value::Money(value::decimal(amount), currency.clone())
            }
            Expr::Percent { value } => Value::Percent(value::decimal(value)),
            Expr::Duration { duration } => {
                time::seconds(*duration).map_or(Value::Unset, Value::Duration)
            }
            Expr::String { value } => Value::String(value.clone()),
            Expr::Bool { value } => Value::Bool(*value),
            Expr::Date { value } => value.parse().map_or(Value::Unset, Value::Date),
            Expr::Datetime { value } => value.parse().map_or(Value::Unset, Value::DateTime),
            Expr::Time { value } => value.parse().map_or(Value::Unset, Value::Time),
            Expr::List { items } => Value::List(items.iter().map(|i| self.eval(i)).collect()),
            Expr::Object { entries } => Value::Object(
                entries
                    .iter()
                    .map(|en| (en.key.clone(), self.eval(&en.value)))
                    .collect(),
            ),
            Expr::Name { name } => self.name(name),
            Expr::Member { object, name } => self.member(object, name),
            Expr::Call { function, args } => self.call(function, args),
            Expr::Unary {
                op: UnaryOp::Not,
                operand,
            } => Value::Bool(!self.eval(operand).truthy()),
            Expr::Unary {
                op: UnaryOp::Neg,
                operand,
            } => match self.eval(operand) {
                Value::Number(d) => Value::Number(-d),
                Value::Money(d, c) => Value::Money(-d, c),
                Value::Percent(d) => Value::Percent(-d),
                Value::Duration(s) => Value::Duration(-s),
                _ => Value::Unset,
            },
            Expr::Binary { op, left, right } => self.binary(*op, left, right),
            Expr::IsSet { operand, negated } => {
                Value::Bool(self.eval(operand).is_set() != *negated)
            }
        }
    }

    fn name(&self, name: &str) -> Value {
        if let Some((event, payload)) = self.event
            && let Some(json) = payload.get(name)
        {
            return self.typed(json, self.event_field_type(event, name));
        }
        if let Some(b) = self.bindings.iter().rev().find(|b| b.name == name) {
            return self.typed(b.payload, None);
        }
        if let Some(segment) = self.plan.segments.get(name) {
            if self.depth >= MAX_SEGMENT_DEPTH {
                return Value::Bool(false);
            }
            let mut inner = self.clone();
            inner.depth += 1;
            inner.event = None;
            inner.bindings.clear();
            return Value::Bool(inner.truthy(&segment.condition));
        }
        if self.plan.scores.contains_key(name) {
            return Value::Number(
                self.contact
                    .scores
                    .get(name)
                    .map_or(Decimal::ZERO, |s| value::decimal(s)),
            );
        }
        Value::Unset
    }

    fn member(&self, object: &Expr, name: &str) -> Value {
        if let Expr::Name { name: base } = object {
            if base == "contact" && !self.bindings.iter().any(|b| b.name == "contact") {
                return self.contact_field(name);
            }
            if let Some(b) = self.bindings.iter().rev().find(|b| b.name == base) {
                return match b.payload.get(name) {
                    Some(json) => self.typed(json, self.event_field_type(b.event, name)),
                    None => Value::Unset,
                };
            }
        }
        match self.eval(object) {
            Value::Object(map) => map.get(name).cloned().unwrap_or(Value::Unset),
            _ => Value::Unset,
        }
    }

    fn binary(&self, op: BinaryOp, left: &Expr, right: &Expr) -> Value {
        match op {
            BinaryOp::And => return Value::Bool(self.truthy(left) && self.truthy(right)),
            BinaryOp::Or => return Value::Bool(self.truthy(left) || self.truthy(right)),
            _ => {}
        }
        let (l, r) = (self.eval(left), self.eval(right));
        use std::cmp::Ordering::*;
        match op {
            BinaryOp::Eq => Value::Bool(l.equals(&r)),
            BinaryOp::Ne => Value::Bool(l.is_set() && r.is_set() && !l.equals(&r)),
            BinaryOp::Lt => Value::Bool(l.compare(&r) == Some(Less)),
            BinaryOp::Le => Value::Bool(matches!(l.compare(&r), Some(Less | Equal))),
            BinaryOp::Gt => Value::Bool(l.compare(&r) == Some(Greater)),
            BinaryOp::Ge => Value::Bool(matches!(l.compare(&r), Some(Greater | Equal))),
            BinaryOp::In | BinaryOp::NotIn => {
                let found = match &r {
                    Value::List(items) => items.iter().any(|i| i.equals(&l)),
                    _ => false,
                };
                Value::Bool(found == (op == BinaryOp::In))
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => arithmetic(op, l, r),
            BinaryOp::And | BinaryOp::Or => Value::Unset,
        }
    }

    fn call(&self, function: &str, args: &[CallArg]) -> Value {
        let first = args.first();
        let name_arg = || match first.map(|a| &a.value) {
            Some(Expr::Name { name }) => Some(name.as_str()),
            _ => None,
        };
        match function {
            "consented" => Value::Bool(
                name_arg().is_some_and(|c| self.contact.consents.get(c).copied().unwrap_or(false)),
            ),
            "has_tag" => Value::Bool(name_arg().is_some_and(|t| self.contact.tags.contains_key(t))),
            "opened" | "clicked" => {
                let Some(step) = name_arg() else {
                    return Value::Bool(false);
                };
                let events: &[&str] = if function == "opened" {
                    &["email_opened", "push_opened", "email_clicked"]
                } else {
                    &["email_clicked", "sms_clicked"]
                };
                let run = self.run_id;
                Value::Bool(self.history.iter().any(|e| {
                    e.occurred_at <= self.now
                        && events.contains(&e.name.as_str())
                        && e.payload.get("step").and_then(Json::as_str) == Some(step)
                        && (run.is_none() || e.payload.get("run").and_then(Json::as_str) == run)
                }))
            }
            "exists" | "count" => {
                let Some(arg) = first else {
                    return Value::Unset;
                };
                let Some(event) = name_arg() else {
                    return Value::Unset;
                };
                let n = self.matching(event, arg).count();
                if function == "exists" {
                    Value::Bool(n > 0)
                } else {
                    Value::Number(Decimal::from(n))
                }
            }
            "sum" | "avg" | "min" | "max" | "last" => {
                let Some(arg) = first else {
                    return Value::Unset;
                };
                let Expr::Member {
                    object,
                    name: field,
                } = &arg.value
                else {
                    return Value::Unset;
                };
                let Expr::Name { name: event } = object.as_ref() else {
                    return Value::Unset;
                };
                let ty = self.event_field_type(event, field);
                let values: Vec<Value> = self
                    .matching(event, arg)
                    .filter_map(|e| e.payload.get(field.as_str()).map(|j| self.typed(j, ty)))
                    .filter(Value::is_set)
                    .collect();
                aggregate(function, values, ty, self.currency())
            }
            "days_since" => match first.map(|a| self.eval(&a.value)) {
                Some(Value::Date(d)) => {
                    let today = timestamp(self.now)
                        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                        .date();
                    let days = (today - d).get_days();
                    Value::Number(Decimal::from(days))
                }
                Some(Value::DateTime(t)) => Value::Number(Decimal::from(
                    (self.now - t.as_millisecond()).div_euclid(86_400_000),
                )),
                _ => Value::Unset,
            },
            "default" => {
                let value = first.map_or(Value::Unset, |a| self.eval(&a.value));
                if value.is_set() {
                    value
                } else {
                    args.get(1).map_or(Value::Unset, |a| self.eval(&a.value))
                }
            }
            "now" => Value::DateTime(timestamp(self.now)),
            "lower" | "upper" => match first.map(|a| self.eval(&a.value)) {
                Some(Value::String(s)) => Value::String(if function == "lower" {
                    s.to_lowercase()
                } else {
                    s.to_uppercase()
                }),
                _ => Value::Unset,
            },
            "len" => match first.map(|a| self.eval(&a.value)) {
                Some(Value::List(items)) => Value::Number(Decimal::from(items.len())),
                Some(Value::String(s)) => Value::Number(Decimal::from(s.chars().count())),
                _ => Value::Unset,
            },
            _ => Value::Unset,
        }
    }

    /// Events named `event` in the window and passing the filter. A window `within d`
    /// at time t covers the half-open interval (t - d, t].
    fn matching<'s>(
        &'s self,
        event: &'s str,
        arg: &'s CallArg,
    ) -> impl Iterator<Item = &'s EventRecord> + 's {
        let from = arg.within.map(|d| before(self.now, d));
        self.history.iter().filter(move |e| {
            e.name == event
                && e.occurred_at <= self.now
                && from.is_none_or(|from| e.occurred_at > from)
                && arg.filter.as_ref().is_none_or(|f| {
                    let mut inner = self.clone();
                    inner.event = Some((event, &e.payload));
                    inner.truthy(f)
                })
        })
    }
}

fn arithmetic(op: BinaryOp, l: Value, r: Value) -> Value {
    use Value::*;
    match (op, l, r) {
        (BinaryOp::Add, Number(a), Number(b)) => Number(a + b),
        (BinaryOp::Sub, Number(a), Number(b)) => Number(a - b),
        (BinaryOp::Mul, Number(a), Number(b)) => Number(a * b),
        (BinaryOp::Div, Number(a), Number(b)) if !b.is_zero() => Number(a / b),
        (BinaryOp::Add, Money(a, c), Money(b, d)) if c == d => Money(a + b, c),
        (BinaryOp::Sub, Money(a, c), Money(b, d)) if c == d => Money(a - b, c),
        (BinaryOp::Mul, Money(a, c), Number(b)) | (BinaryOp::Mul, Number(b), Money(a, c)) => {
            Money(a * b, c)
        }
        (BinaryOp::Mul, Money(a, c), Percent(p)) | (BinaryOp::Mul, Percent(p), Money(a, c)) => {
            Money(a * p / Decimal::ONE_HUNDRED, c)
        }
        (BinaryOp::Div, Money(a, c), Number(b)) if !b.is_zero() => Money(a / b, c),
        (BinaryOp::Add, Duration(a), Duration(b)) => Duration(a + b),
        (BinaryOp::Sub, Duration(a), Duration(b)) => Duration(a - b),
        (BinaryOp::Mul, Duration(a), Number(b)) => {
            Duration((Decimal::from(a) * b).trunc().try_into().unwrap_or(0))
        }
        (BinaryOp::Add, DateTime(t), Duration(s)) | (BinaryOp::Add, Duration(s), DateTime(t)) => {
            DateTime(timestamp(t.as_millisecond() + s * 1000))
        }
        (BinaryOp::Sub, DateTime(t), Duration(s)) => {
            DateTime(timestamp(t.as_millisecond() - s * 1000))
        }
        (BinaryOp::Sub, DateTime(a), DateTime(b)) => {
            Duration((a.as_millisecond() - b.as_millisecond()) / 1000)
        }
        _ => Unset,
    }
}

fn aggregate(
    function: &str,
    values: Vec<Value>,
    ty: Option<&Type>,
    currency: Option<&str>,
) -> Value {
    if function == "last" {
        return values.into_iter().last().unwrap_or(Value::Unset);
    }
    let money = matches!(ty, Some(Type::Scalar { name }) if name == "money");
    let mut amounts: Vec<Decimal> = Vec::new();
    let mut unit: Option<String> = None;
    for v in values {
        match v {
            Value::Number(d) | Value::Percent(d) => amounts.push(d),
            Value::Money(d, c) => {
                if unit.get_or_insert_with(|| c.clone()) != &c {
                    // Amounts in another currency are not added without a conversion.
                    continue;
                }
                amounts.push(d);
            }
            _ => {}
        }
    }
    let wrap = |d: Decimal| {
        if money {
            match unit.clone().or_else(|| currency.map(str::to_string)) {
                Some(c) => Value::Money(d, c),
                None => Value::Number(d),
            }
        } else {
            Value::Number(d)
        }
    };
    match function {
        "sum" => wrap(amounts.iter().copied().sum()),
        "avg" if amounts.is_empty() => Value::Unset,
        "avg" => wrap(amounts.iter().copied().sum::<Decimal>() / Decimal::from(amounts.len())),
        "min" => amounts.iter().copied().min().map_or(Value::Unset, wrap),
        "max" => amounts.iter().copied().max().map_or(Value::Unset, wrap),
        _ => Value::Unset,
    }
}

/// The instant `d` before `t`.
pub fn before(t: Millis, d: cairn_plan::expr::Duration) -> Millis {
    match d {
        cairn_plan::expr::Duration::Seconds(s) => t - (s as i64).saturating_mul(1000),
        cairn_plan::expr::Duration::Months(m) => {
            let utc = timestamp(t).to_zoned_datetime(jiff::tz::TimeZone::UTC);
            let months = i64::try_from(m).unwrap_or(0);
            use jiff::ToSpan;
            utc.checked_sub(months.months())
                .map_or(i64::MIN, |z| z.timestamp().as_millisecond())
        }
    }
}
