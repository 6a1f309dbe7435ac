//! Checking incoming properties and traits against the plan's schema, and turning them
//! into the stored forms the engine reads (see [`crate::value`]): money as
//! `"80.00 EUR"`, dates `YYYY-MM-DD`, date-times RFC 3339 in UTC, numbers as JSON
//! numbers. A value that does not fit is an error naming the field; fields the schema
//! does not know are kept as they came.

use cairn_plan::schema::{Field, Record, Type};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::str::FromStr;

/// What a value is read with: the plan's records, and the currency of bare amounts.
pub struct Context<'a> {
    pub records: &'a BTreeMap<String, Record>,
    /// The call's `currency` property, else the project's default currency.
    pub currency: Option<&'a str>,
}

/// Where a value sits in a message (`properties.items[0].price`), for error messages.
/// It becomes text only when something is wrong: checking a valid message builds no
/// paths.
#[derive(Debug, Clone, Copy)]
pub enum Path<'a> {
    /// The outermost name (`properties`, `traits`, or empty).
    Root(&'a str),
    /// A field of an object.
    Field(&'a Path<'a>, &'a str),
    /// An item of a list.
    Item(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn is_empty(&self) -> bool {
        matches!(self, Path::Root(s) if s.is_empty())
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(s) => f.write_str(s),
            Path::Field(parent, name) if parent.is_empty() => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Checks `object` against `fields` and returns it in stored form. `partial` (traits of
/// an `identify`) does not require the non-optional fields, since a contact's traits
/// arrive a few at a time. Errors name the field by its path (`items[0].price`).
pub fn check_fields(
    object: &Map<String, Json>,
    fields: &[Field],
    context: &Context<'_>,
    partial: bool,
    path: &str,
    errors: &mut Vec<String>,
) -> Map<String, Json> {
    check_fields_owned(
        object.clone(),
        fields,
        context,
        partial,
        &Path::Root(path),
        errors,
    )
}

/// [`check_fields`] of an object the caller gives up: values that are already in
/// stored form move into the result instead of being copied.
pub fn check_fields_owned(
    mut object: Map<String, Json>,
    fields: &[Field],
    context: &Context<'_>,
    partial: bool,
    path: &Path<'_>,
    errors: &mut Vec<String>,
) -> Map<String, Json> {
    // Checked in place: a field's value is replaced by its stored form, and fields
    // the schema does not know stay as they came.
    for field in fields {
        let checked = match object.get_mut(&field.name) {
            // An explicit null unsets the field.
            Some(Json::Null) => continue,
            None => {
                if !field.optional && field.default.is_none() && !partial {
                    let name = Path::Field(path, &field.name);
                    errors.push(format!("missing field `{name}`"));
                }
                continue;
            }
            Some(slot) => {
                let name = Path::Field(path, &field.name);
                match check_value_owned(std::mem::take(slot), &field.ty, context, &name) {
                    Ok(value) => {
                        *slot = value;
                        true
                    }
                    Err(e) => {
                        errors.push(e);
                        false
                    }
                }
            }
        };
        if !checked {
            // A value that does not fit is left out.
            object.remove(&field.name);
        }
    }
    object
}

/// One value of type `ty`, in stored form.
pub fn check_value(
    value: &Json,
    ty: &Type,
    context: &Context<'_>,
    path: &str,
) -> Result<Json, String> {
    check_value_owned(value.clone(), ty, context, &Path::Root(path))
}

/// [`check_value`] of a value the caller gives up.
pub fn check_value_owned(
    value: Json,
    ty: &Type,
    context: &Context<'_>,
    path: &Path<'_>,
) -> Result<Json, String> {
    match ty {
        Type::Scalar { name } => scalar(value, name, context, path),
        Type::Enum { values } => match value {
            Json::String(s) if values.contains(&s) => Ok(Json::String(s)),
            _ => Err(format!(
                "field `{path}` must be one of {}, not {}",
                values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                describe(&value)
            )),
        },
        Type::List { item } => match value {
            Json::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| check_value_owned(v, item, context, &Path::Item(path, i)))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            _ => Err(format!(
                "field `{path}` must be a list, not {}",
                describe(&value)
            )),
        },
        Type::Record { name } => match (value, context.records.get(name)) {
            (Json::Object(map), Some(record)) => {
                let mut errors = Vec::new();
                let out =
                    check_fields_owned(map, &record.fields, context, false, path, &mut errors);
                if errors.is_empty() {
                    Ok(Json::Object(out))
                } else {
                    Err(errors.join("; "))
                }
            }
            (Json::Object(map), None) => Ok(Json::Object(map)),
            (value, _) => Err(format!(
                "field `{path}` must be an object (a `{name}`), not {}",
                describe(&value)
            )),
        },
    }
}

fn scalar(value: Json, name: &str, context: &Context<'_>, path: &Path<'_>) -> Result<Json, String> {
    let wrong = |what: &str, value: &Json| {
        format!("field `{path}` must be {what}, not {}", describe(value))
    };
    match name {
        "string" => match value {
            Json::String(_) => Ok(value),
            // Identifiers often arrive as numbers.
            Json::Number(n) => Ok(Json::String(n.to_string())),
            _ => Err(wrong("a string", &value)),
        },
        "bool" => match value {
            Json::Bool(_) => Ok(value),
            Json::String(s) if s == "true" || s == "false" => Ok(Json::Bool(s == "true")),
            _ => Err(wrong("`true` or `false`", &value)),
        },
        "number" | "int" | "decimal" | "percent" => {
            // A whole JSON number is already in stored form.
            if let Json::Number(n) = &value
                && n.as_i64().is_some()
            {
                return Ok(value);
            }
            let text = match &value {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.trim().to_string(),
                _ => return Err(wrong("a number", &value)),
            };
            let parsed = Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| wrong("a number", &value))?;
            if name == "int" && !parsed.fract().is_zero() {
                return Err(wrong("a whole number", &value));
            }
            Ok(number(parsed))
        }
        "money" if matches!(&value, Json::String(s) if stored_money(s)) => Ok(value),
        "money" => money(&value, context.currency).ok_or_else(|| match (&value, context.currency) {
            (Json::Number(_), None) => format!(
                "field `{path}` is an amount without a currency: send `\"{} EUR\"`, a `currency` property, or set the project's currency",
                value
            ),
            _ => wrong("an amount with a currency, such as `\"80.00 EUR\"`", &value),
        }),
        "date" => match value.as_str() {
            Some(s) => date(s).ok_or_else(|| wrong("an ISO 8601 date (`2026-03-01`)", &value)),
            None => Err(wrong("an ISO 8601 date (`2026-03-01`)", &value)),
        },
        "datetime" => match value.as_str() {
            Some(s) => parse_instant(s)
                .map(|t| Json::String(t.to_string()))
                .ok_or_else(|| {
                    wrong(
                        "an ISO 8601 date and time (`2026-03-01T10:00:00Z`)",
                        &value,
                    )
                }),
            None => Err(wrong(
                "an ISO 8601 date and time (`2026-03-01T10:00:00Z`)",
                &value,
            )),
        },
        "time" => match value.as_str().and_then(|s| s.parse::<jiff::civil::Time>().ok()) {
            Some(t) => Ok(Json::String(t.strftime("%H:%M").to_string())),
            None => Err(wrong("a time of day (`09:30`)", &value)),
        },
        "duration" => match &value {
            Json::Number(n) if n.as_i64().is_some_and(|s| s >= 0) => Ok(value),
            _ => Err(wrong("a number of seconds", &value)),
        },
        "email" => match value {
            Json::String(s) if is_email(&s) => Ok(Json::String(trimmed(s))),
            _ => Err(wrong("an email address", &value)),
        },
        "phone" => match value.as_str().and_then(phone) {
            Some(p) => Ok(Json::String(p)),
            None => Err(wrong(
                "a phone number in international form (`+33612345678`)",
                &value,
            )),
        },
        "url" => match &value {
            Json::String(s) if is_url(s) => Ok(value),
            _ => Err(wrong("an absolute http(s) URL", &value)),
        },
        "timezone" => match &value {
            Json::String(s) if jiff::tz::TimeZone::get(s).is_ok() => Ok(value),
            _ => Err(wrong("an IANA time zone (`Europe/Paris`)", &value)),
        },
        // A scalar this runtime does not know: keep it as it came.
        _ => Ok(value),
    }
}

/// `s` without surrounding white space, reusing it when there is none.
fn trimmed(s: String) -> String {
    if s.trim().len() == s.len() {
        s
    } else {
        s.trim().to_string()
    }
}

/// A JSON number for an exact decimal: an integer when whole, else the decimal's text
/// read as a JSON number.
fn number(d: Decimal) -> Json {
    let d = d.normalize();
    if d.scale() == 0
        && let Ok(i) = i64::try_from(d.mantissa())
    {
        return Json::from(i);
    }
    serde_json::from_str::<Json>(&d.to_string()).unwrap_or_else(|_| Json::String(d.to_string()))
}

/// `"80.00 EUR"`, `"80 eur"`, or a bare number (or numeric string) in `currency`.
fn money(value: &Json, currency: Option<&str>) -> Option<Json> {
    let (amount, code) = match value {
        Json::Number(n) => (n.to_string(), currency?.to_string()),
        Json::String(s) => {
            let s = s.trim();
            match s.rsplit_once(' ') {
                Some((amount, code)) => (amount.trim().to_string(), code.to_ascii_uppercase()),
                None => (s.to_string(), currency?.to_string()),
            }
        }
        _ => return None,
    };
    let valid_code = code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase());
    let amount = Decimal::from_str(&amount)
        .or_else(|_| Decimal::from_scientific(&amount))
        .ok()?;
    valid_code.then(|| Json::String(format!("{amount} {code}")))
}

/// Whether `s` is already money in stored form, as [`money`] would write it: a plain
/// amount (no sign, exponent or leading zero, at most 18 digits, so that reading it
/// loses nothing), one space, and an upper-case three-letter code.
fn stored_money(s: &str) -> bool {
    let Some((amount, code)) = s.split_once(' ') else {
        return false;
    };
    let (whole, fraction) = match amount.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (amount, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    code.len() == 3
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(digits)
        && whole.len() + fraction.map_or(0, str::len) <= 18
}

fn date(s: &str) -> Option<Json> {
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Some(Json::String(d.to_string()));
    }
    // A date-time stands for its calendar date as written.
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .map(|dt| Json::String(dt.date().to_string()))
        .or_else(|| {
            s.get(..10)
                .and_then(|d| d.parse::<jiff::civil::Date>().ok())
                .filter(|_| s.len() > 10 && s.as_bytes()[10] == b'T')
                .map(|d| Json::String(d.to_string()))
        })
}

/// An ISO 8601 instant: with an offset or `Z`; a bare date-time is read as UTC.
pub fn parse_instant(s: &str) -> Option<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

fn is_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// A phone number as `+` and digits, without the spaces, dots, dashes and brackets
/// people write.
fn phone(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+')?;
    (digits.len() >= 6 && digits.len() <= 15 && digits.chars().all(|c| c.is_ascii_digit()))
        .then_some(compact)
}

fn is_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// How a wrong value looks in an error message.
fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("`{b}`"),
        Json::Number(n) => format!("`{n}`"),
        Json::String(s) if s.chars().count() <= 40 => format!("`\"{s}\"`"),
        Json::String(_) => "a long string".into(),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// `snake_case` of an event name as Segment clients write it: "Order Completed",
/// "orderCompleted" and "order-completed" are all `order_completed`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && previous_lower && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(currency: Option<&str>) -> (BTreeMap<String, Record>, Option<&str>) {
        (BTreeMap::new(), currency)
    }

    fn check(value: Json, ty: &str, currency: Option<&str>) -> Result<Json, String> {
        let (records, currency) = context(currency);
        let ctx = Context {
            records: &records,
            currency,
        };
        check_value(&value, &Type::scalar(ty), &ctx, "f")
    }

    #[test]
    fn money_takes_a_currency_from_the_text_the_call_or_the_project() {
        assert_eq!(
            check(json!("80.00 EUR"), "money", None),
            Ok(json!("80.00 EUR"))
        );
        assert_eq!(check(json!("80 eur"), "money", None), Ok(json!("80 EUR")));
        assert_eq!(
            check(json!(80.5), "money", Some("USD")),
            Ok(json!("80.5 USD"))
        );
        assert_eq!(
            check(json!("12"), "money", Some("GBP")),
            Ok(json!("12 GBP"))
        );
        let err = check(json!(80), "money", None).expect_err("no currency");
        assert!(err.contains("without a currency"), "{err}");
        assert!(check(json!("eighty EUR"), "money", None).is_err());
        assert!(check(json!("80 EURO"), "money", None).is_err());
    }

    #[test]
    fn money_in_stored_form_is_kept_as_it_is() {
        for text in [
            "80.00 EUR",
            "0 USD",
            "0.5 GBP",
            "0.00 EUR",
            "1234567890.12345678 JPY",
            "10 PLN",
        ] {
            assert!(stored_money(text), "{text}");
            assert_eq!(money(&json!(text), None), Some(json!(text)), "{text}");
        }
        for text in [
            "080 EUR",
            "-5 EUR",
            "+5 EUR",
            ".5 EUR",
            "5. EUR",
            "5 eur",
            " 5 EUR",
            "5 EUR ",
            "5  EUR",
            "5 EURO",
            "1e3 EUR",
            "1234567890123456789 EUR",
        ] {
            assert!(!stored_money(text), "{text}");
        }
    }

    #[test]
    fn dates_and_times_are_iso_8601() {
        assert_eq!(
            check(json!("2026-03-01"), "date", None),
            Ok(json!("2026-03-01"))
        );
        assert_eq!(
            check(json!("2026-03-01T10:00:00Z"), "date", None),
            Ok(json!("2026-03-01"))
        );
        assert!(check(json!("01/03/2026"), "date", None).is_err());
        assert!(check(json!("2026-02-30"), "date", None).is_err());
        assert_eq!(
            check(json!("2026-03-01T11:00:00+01:00"), "datetime", None),
            Ok(json!("2026-03-01T10:00:00Z"))
        );
        assert!(check(json!("yesterday"), "datetime", None).is_err());
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check(json!("ana@example.com"), "email", None).is_ok());
        assert!(check(json!("ana@example"), "email", None).is_err());
        assert_eq!(
            check(json!("+33 6 12 34 56 78"), "phone", None),
            Ok(json!("+33612345678"))
        );
        assert!(check(json!("0612345678"), "phone", None).is_err());
        assert!(check(json!("https://shop.example/cart"), "url", None).is_ok());
        assert!(check(json!("shop.example/cart"), "url", None).is_err());
        assert!(check(json!("Europe/Paris"), "timezone", None).is_ok());
        assert!(check(json!("Mars/Olympus"), "timezone", None).is_err());
    }

    #[test]
    fn numbers_stay_exact() {
        assert_eq!(check(json!("15"), "number", None), Ok(json!(15)));
        assert_eq!(check(json!(2.50), "number", None), Ok(json!(2.5)));
        assert!(check(json!("many"), "number", None).is_err());
        assert!(check(json!(1.5), "int", None).is_err());
    }

    #[test]
    fn missing_and_unknown_fields() {
        let fields = vec![
            Field {
                name: "cart_id".into(),
                ty: Type::scalar("string"),
                optional: false,
                default: None,
            },
            Field {
                name: "coupon".into(),
                ty: Type::scalar("string"),
                optional: true,
                default: None,
            },
        ];
        let (records, currency) = context(None);
        let ctx = Context {
            records: &records,
            currency,
        };
        let mut errors = Vec::new();
        let object = json!({"extra": 1});
        let out = check_fields(
            object.as_object().expect("object"),
            &fields,
            &ctx,
            false,
            "",
            &mut errors,
        );
        assert_eq!(errors, vec!["missing field `cart_id`".to_string()]);
        assert_eq!(out.get("extra"), Some(&json!(1)), "unknown fields are kept");
        let mut errors = Vec::new();
        check_fields(
            object.as_object().expect("object"),
            &fields,
            &ctx,
            true,
            "",
            &mut errors,
        );
        assert!(errors.is_empty(), "traits may come a few at a time");
    }

    #[test]
    fn event_names_in_snake_case() {
        assert_eq!(snake_case("Order Completed"), "order_completed");
        assert_eq!(snake_case("orderCompleted"), "order_completed");
        assert_eq!(snake_case("cart-updated"), "cart_updated");
        assert_eq!(snake_case("  Page   Viewed! "), "page_viewed");
        assert_eq!(snake_case("order_completed"), "order_completed");
    }
}
