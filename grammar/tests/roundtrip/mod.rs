//! The formatter's contract, checked on one source text that parses cleanly:
//!
//! - formatting is idempotent: `format(format(x)) == format(x)`;
//! - the syntax tree of `format(x)` is the tree of `x`, spans aside;
//! - every comment survives: the same multiset of comment texts, trimmed.
//!
//! Shared by the property tests (`format.rs`) and the fuzz corpus replay
//! (`fuzz_corpus.rs`).

use cairn_grammar::ast::SourceFile;
use cairn_grammar::{format, parse};
use serde_json::Value;

/// Whether `src` was checked: it is not when it has syntax errors.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    Yes,
    NotClean,
}

/// Checks the contract on `src`; the error is a report for a person, with `{:?}` of
/// the texts involved so line ends and trailing spaces show.
pub fn check(name: &str, src: &str) -> Result<Checked, String> {
    let before = parse(src);
    if before.has_errors() {
        return Ok(Checked::NotClean);
    }
    let formatted = format(src).map_err(|e| {
        format!(
            "{name}: parses cleanly but `format` refused it: {:?}\n--- source\n{src:?}",
            e.diagnostics
        )
    })?;
    let after = parse(&formatted);
    if after.has_errors() {
        return Err(format!(
            "{name}: the formatted text does not parse: {:#?}\n--- source\n{src:?}\n--- formatted\n{formatted}",
            after.diagnostics
        ));
    }
    let again = format(&formatted).map_err(|_| format!("{name}: cannot happen: parsed above"))?;
    if again != formatted {
        return Err(format!(
            "{name}: formatting is not idempotent; first difference at line {}\n--- source\n{src:?}\n--- format(source)\n{formatted:?}\n--- format(format(source))\n{again:?}",
            first_different_line(&formatted, &again)
        ));
    }
    let tree_before = shape(&before.file);
    let tree_after = shape(&after.file);
    if tree_before != tree_after {
        return Err(format!(
            "{name}: formatting changed the syntax tree at {}\n--- source\n{src:?}\n--- formatted\n{formatted:?}",
            first_difference(&tree_before, &tree_after, "items".to_string())
        ));
    }
    let comments_before = comment_texts(&before.file);
    let comments_after = comment_texts(&after.file);
    if comments_before != comments_after {
        return Err(format!(
            "{name}: formatting lost or changed comments: {comments_before:?} became {comments_after:?}\n--- source\n{src:?}\n--- formatted\n{formatted:?}"
        ));
    }
    Ok(Checked::Yes)
}

/// The items as JSON with every span removed, so only the structure is compared.
pub fn shape(file: &SourceFile) -> Value {
    let mut value = serde_json::to_value(&file.items).expect("the syntax tree serializes");
    strip_spans(&mut value);
    value
}

fn strip_spans(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("span");
            for v in map.values_mut() {
                if is_span(v) {
                    *v = Value::Null;
                } else {
                    strip_spans(v);
                }
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                if is_span(v) {
                    // `Else::If(step, span)` keeps its span in a tuple, not a field.
                    *v = Value::Null;
                } else {
                    strip_spans(v);
                }
            }
        }
        _ => {}
    }
}

fn is_span(value: &Value) -> bool {
    matches!(value, Value::Object(map)
        if map.len() == 2 && map.get("start").is_some_and(Value::is_u64)
            && map.get("end").is_some_and(Value::is_u64))
}

/// The sorted, trimmed texts of all comments.
pub fn comment_texts(file: &SourceFile) -> Vec<String> {
    let mut texts: Vec<String> = file
        .comments
        .iter()
        .map(|c| c.text.trim().to_string())
        .collect();
    texts.sort();
    texts
}

fn first_different_line(a: &str, b: &str) -> usize {
    a.split('\n')
        .zip(b.split('\n'))
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.split('\n').count().min(b.split('\n').count()))
        + 1
}

/// A path such as `items[2].kind.Journey.members[4]` to the first place two trees
/// differ, with both values there.
fn first_difference(a: &Value, b: &Value, path: String) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (key, vx) in x {
                match y.get(key) {
                    Some(vy) if vx == vy => {}
                    Some(vy) => return first_difference(vx, vy, format!("{path}.{key}")),
                    None => break,
                }
            }
            format!("{path}: {a} vs {b}")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (vx, vy)) in x.iter().zip(y).enumerate() {
                if vx != vy {
                    return first_difference(vx, vy, format!("{path}[{i}]"));
                }
            }
            format!("{path}: {a} vs {b}")
        }
        _ => format!("{path}:\n  before: {a}\n  after:  {b}"),
    }
}
