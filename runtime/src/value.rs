//! Runtime values: exact decimals and money, dates and times, lists and objects.
//!
//! Stored JSON is typed by the plan's schema: money is `"80.00 EUR"`, dates are
//! `"YYYY-MM-DD"`, date-times RFC 3339, times `"HH:MM"`, durations seconds.

use cairn_plan::schema::Type;
use rust_decimal::Decimal;
use serde_json::Value as Json;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An optional value that is not set.
    Unset,
    Bool(bool),
    Number(Decimal),
    Money(Decimal, String),
    Percent(Decimal),
    /// Exact seconds; calendar months are only used by waits.
    Duration(i64),
    String(String),
    Date(jiff::civil::Date),
    DateTime(jiff::Timestamp),
    Time(jiff::civil::Time),
    List(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

impl Value {
    pub fn truthy(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    pub fn is_set(&self) -> bool {
        !matches!(self, Value::Unset)
    }

    /// The value as JSON, in the stored forms.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Unset => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(d) | Value::Percent(d) => number_json(*d),
            Value::Money(amount, currency) => Json::String(format!("{amount} {currency}")),
            Value::Duration(s) => Json::from(*s),
            Value::String(s) => Json::String(s.clone()),
            Value::Date(d) => Json::String(d.to_string()),
            Value::DateTime(t) => Json::String(t.to_string()),
            Value::Time(t) => Json::String(t.strftime("%H:%M").to_string()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Object(map) => {
                Json::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Orders two values of one kind; `None` when they do not compare.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Number(a), Value::Number(b)) | (Value::Percent(a), Value::Percent(b)) => {
                Some(a.cmp(b))
            }
            (Value::Number(a), Value::Percent(b)) | (Value::Percent(a), Value::Number(b)) => {
                Some(a.cmp(b))
            }
            (Value::Money(a, ca), Value::Money(b, cb)) if ca == cb => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
            (Value::DateTime(a), Value::DateTime(b)) => Some(a.cmp(b)),
            (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Equality as `==` reads it: an unset value equals nothing.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Unset, _) | (_, Value::Unset) => false,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            _ => self.compare(other) == Some(Ordering::Equal) || self == other,
        }
    }
}

fn number_json(d: Decimal) -> Json {
    let normalized = d.normalize();
    if normalized.scale() == 0
        && let Ok(i) = i64::try_from(normalized.mantissa())
    {
        return Json::from(i);
    }
    Json::String(normalized.to_string())
}

pub fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text.trim()).unwrap_or_default()
}

/// `"80.00 EUR"` or a bare amount in `default_currency`.
pub fn parse_money(text: &str, default_currency: Option<&str>) -> Option<(Decimal, String)> {
    let text = text.trim();
    match text.rsplit_once(' ') {
        Some((amount, currency))
            if currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()) =>
        {
            Some((Decimal::from_str(amount.trim()).ok()?, currency.to_string()))
        }
        _ => Some((Decimal::from_str(text).ok()?, default_currency?.to_string())),
    }
}

/// Reads stored JSON as a value of `ty`; `None` for the type means "as it comes".
pub fn from_json(
    json: &Json,
    ty: Option<&Type>,
    records: &BTreeMap<String, cairn_plan::schema::Record>,
    currency: Option<&str>,
) -> Value {
    if json.is_null() {
        return Value::Unset;
    }
    match ty {
        Some(Type::Scalar { name }) => scalar(json, name, currency),
        Some(Type::Enum { .. }) => json
            .as_str()
            .map_or(Value::Unset, |s| Value::String(s.to_string())),
        Some(Type::List { item }) => match json {
            Json::Array(items) => Value::List(
                items
                    .iter()
                    .map(|i| from_json(i, Some(item), records, currency))
                    .collect(),
            ),
            _ => Value::Unset,
        },
        Some(Type::Record { name }) => match (json, records.get(name)) {
            (Json::Object(map), Some(record)) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let field = record.fields.iter().find(|f| &f.name == k).map(|f| &f.ty);
                        (k.clone(), from_json(v, field, records, currency))
                    })
                    .collect(),
            ),
            _ => untyped(json),
        },
        None => untyped(json),
    }
}

fn scalar(json: &Json, name: &str, currency: Option<&str>) -> Value {
    let text = match json {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => return Value::Bool(*b),
        _ => return untyped(json),
    };
    let parsed = match name {
        "number" | "int" | "decimal" => Decimal::from_str(&text).ok().map(Value::Number),
        "percent" => Decimal::from_str(text.trim_end_matches('%'))
            .ok()
            .map(Value::Percent),
        "money" => parse_money(&text, currency).map(|(a, c)| Value::Money(a, c)),
        "bool" => Some(Value::Bool(text == "true")),
        "date" => text
            .get(..10)
            .and_then(|d| d.parse::<jiff::civil::Date>().ok())
            .map(Value::Date),
        "datetime" => text.parse::<jiff::Timestamp>().ok().map(Value::DateTime),
        "time" => text.parse::<jiff::civil::Time>().ok().map(Value::Time),
        "duration" => text.parse::<i64>().ok().map(Value::Duration),
        _ => Some(Value::String(text.clone())),
    };
    parsed.unwrap_or(Value::String(text))
}

fn untyped(json: &Json) -> Value {
    match json {
        Json::Null => Value::Unset,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Decimal::from_str(&n.to_string()).map_or(Value::Unset, Value::Number),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(untyped).collect()),
        Json::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), untyped(v))).collect())
        }
    }
}
