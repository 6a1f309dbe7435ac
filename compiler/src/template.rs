//! Templates: their parts per channel, their Jinja text (parsed with minijinja), the
//! variables and filters they use.

use crate::codes;
use crate::schema::TemplateInfo;
use crate::suggest::did_you_mean;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{Channel, Span, TemplateDecl};
use std::collections::{BTreeMap, BTreeSet};

/// Filters templates may use: minijinja's built-ins and Cairn's own.
pub const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
    "money",
    "date",
];

/// Variables every template may use besides the contact and the journey's bindings.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "unsubscribe_url",
    "preferences_url",
    "confirm_url",
    "journey",
    "step",
    "now",
];

fn parts_for(channel: Channel) -> (&'static [&'static str], &'static [&'static str]) {
    match channel {
        Channel::Email => (
            &["subject", "html"],
            &["subject", "html", "text", "preheader"],
        ),
        Channel::Sms => (&["text"], &["text"]),
        Channel::Push => (&["title", "body"], &["title", "body", "url"]),
    }
}

/// Analyses a template: what it needs at send sites and what is wrong with it (spans
/// relative to the template item).
pub fn analyse(
    decl: &TemplateDecl,
    assets: &BTreeMap<String, String>,
) -> (TemplateInfo, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut info = TemplateInfo {
        channel: Some(decl.channel),
        transactional: decl.transactional,
        variables: BTreeSet::new(),
    };
    let (required, allowed) = parts_for(decl.channel);
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut html_vars: Option<BTreeSet<String>> = None;
    for prop in &decl.props {
        let name = prop.name.name.as_str();
        if let Some(first) = seen.get(name) {
            diagnostics.push(
                Diagnostic::error(
                    codes::DUPLICATE_FIELD,
                    format!("part `{name}` is given twice"),
                )
                .with_label(prop.name.span, "second one")
                .with_secondary(*first, "first one"),
            );
            continue;
        }
        seen.insert(name, prop.name.span);
        if !allowed.contains(&name) {
            let mut d = Diagnostic::error(
                codes::TEMPLATE_PARTS,
                format!("{} templates have no part `{name}`", decl.channel),
            )
            .with_label(prop.name.span, "unknown part");
            d = d.with_help(match did_you_mean(name, allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{} templates have: {}", decl.channel, backticked(allowed)),
            });
            diagnostics.push(d);
            continue;
        }
        let source = if prop.from_file {
            let path = prop.value.value.trim_start_matches("./");
            match assets.get(path) {
                Some(text) => text.as_str(),
                None => {
                    diagnostics.push(
                        Diagnostic::error(
                            codes::TEMPLATE_FILE,
                            format!("template file `{path}` not found"),
                        )
                        .with_label(prop.value.span, "no such file in the project")
                        .with_help(
                            "paths are relative to the project root (the folder with `cairn.toml`)",
                        ),
                    );
                    continue;
                }
            }
        } else {
            prop.value.value.as_str()
        };
        let Some(vars) = jinja(source, prop, &mut diagnostics) else {
            continue;
        };
        if name == "html" {
            html_vars = Some(vars.clone());
        }
        info.variables.extend(vars);
    }
    for part in required {
        if !seen.contains_key(part) {
            diagnostics.push(
                Diagnostic::error(
                    codes::TEMPLATE_PARTS,
                    format!(
                        "{} template `{}` has no `{part}`",
                        decl.channel, decl.name.name
                    ),
                )
                .with_label(decl.name.span, format!("needs `{part}`"))
                .with_help(format!(
                    "{} templates need {}",
                    decl.channel,
                    backticked(required)
                )),
            );
        }
    }
    if decl.channel == Channel::Email
        && !decl.transactional
        && html_vars
            .as_ref()
            .is_some_and(|vars| !vars.contains("unsubscribe_url"))
    {
        diagnostics.push(
            Diagnostic::error(
                codes::UNSUBSCRIBE_LINK,
                format!("marketing email `{}` has no unsubscribe link", decl.name.name),
            )
            .with_label(decl.name.span, "its html never uses `unsubscribe_url`")
            .with_help("add `<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>`, or declare the template `transactional` if it is one"),
        );
    }
    (info, diagnostics)
}

/// Parses Jinja text; returns the variables it reads, or `None` after reporting an error.
fn jinja(
    source: &str,
    prop: &cairn_grammar::ast::TemplateProp,
    out: &mut Vec<Diagnostic>,
) -> Option<BTreeSet<String>> {
    let env = minijinja::Environment::new();
    // Inline single-line strings map byte for byte when they hold no escapes.
    let exact = !prop.from_file
        && !prop.value.triple
        && prop.value.value.len() + 2 == prop.value.span.len();
    let locate = |range: std::ops::Range<usize>| -> Span {
        if exact {
            Span::new(
                prop.value.span.start + 1 + range.start,
                prop.value.span.start + 1 + range.end.max(range.start + 1),
            )
        } else {
            prop.value.span
        }
    };
    match env.template_from_str(source) {
        Ok(template) => {
            let vars: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
            for (name, range) in filters(source) {
                if !FILTERS.contains(&name) {
                    let mut d = Diagnostic::error(
                        codes::TEMPLATE_FILTER,
                        format!("unknown filter `{name}`"),
                    )
                    .with_label(locate(range), "not a filter");
                    if let Some(s) = did_you_mean(name, FILTERS.iter().copied()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    out.push(d);
                }
            }
            Some(vars)
        }
        Err(e) => {
            let detail = e.detail().unwrap_or("invalid template").to_string();
            let where_ = match (prop.from_file, e.line()) {
                (true, Some(line)) => format!(" (line {line} of `{}`)", prop.value.value),
                _ => String::new(),
            };
            out.push(
                Diagnostic::error(
                    codes::TEMPLATE_SYNTAX,
                    format!("template syntax error: {detail}{where_}"),
                )
                .with_label(locate(e.range().unwrap_or(0..source.len())), "here"),
            );
            None
        }
    }
}

/// Filter names used inside `{{ }}` and `{% %}` blocks, with their byte ranges.
fn filters(source: &str) -> Vec<(&str, std::ops::Range<usize>)> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let open = &bytes[i..i + 2];
        if open != b"{{" && open != b"{%" {
            i += 1;
            continue;
        }
        // The delimiters are ASCII, so every offset found here is a char boundary.
        let close = if open == b"{{" { "}}" } else { "%}" };
        let end = source[i + 2..]
            .find(close)
            .map_or(source.len(), |p| i + 2 + p);
        let mut j = i + 2;
        let mut quote: Option<u8> = None;
        while j < end {
            let b = bytes[j];
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'|'
                    && bytes.get(j + 1) != Some(&b'|')
                    && (j == 0 || bytes[j - 1] != b'|') =>
                {
                    let mut k = j + 1;
                    while k < end && bytes[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    let start = k;
                    while k < end && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_') {
                        k += 1;
                    }
                    if k > start {
                        out.push((&source[start..k], start..k));
                    }
                }
                None => {}
            }
            j += 1;
        }
        i = end + 2;
    }
    out
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::filters;

    #[test]
    fn finds_filters_in_blocks_only() {
        let found: Vec<&str> = filters("a | b {{ x | default('a|b') | upper }} {% if y|length %}")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(found, vec!["default", "upper", "length"]);
    }
}
