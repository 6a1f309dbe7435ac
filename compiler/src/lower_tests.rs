//! `test` blocks to [`cairn_plan::test::TestCase`]s: the data `cairn test` runs.

use cairn_grammar::ast::{
    self, Expectation as AstExpectation, Expr, ExprKind, Item, ItemKind, Literal, ObjectEntry,
    StepRef, TestAction as AstAction, TestStmtKind, TimeClause, UnsubscribeScope,
};
use cairn_grammar::lines::LineIndex;
use cairn_plan::test::{Expectation, Expected, TestAction, TestCase, TestContact, TestInput};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// The tests of one parsed file. `filter` keeps tests whose name contains it.
pub fn lower_tests(path: &str, text: &str, items: &[Item], filter: Option<&str>) -> Vec<TestCase> {
    let index = LineIndex::new(text);
    let location = |item: &Item, span: ast::Span| {
        let abs = item.absolute(span);
        format!("{path}:{}", index.line_col(text, abs.start).line)
    };
    let mut out = Vec::new();
    for item in items {
        let ItemKind::Test(test) = &item.kind else {
            continue;
        };
        if filter.is_some_and(|f| !test.name.value.contains(f)) {
            continue;
        }
        let mut case = TestCase {
            name: test.name.value.clone(),
            location: format!("{path}:{}", index.line_col(text, item.span.start).line),
            contacts: Vec::new(),
            inputs: Vec::new(),
            expectations: Vec::new(),
        };
        for stmt in &test.statements {
            let at_line = location(item, stmt.span);
            match &stmt.kind {
                TestStmtKind::Contact { name, fields } => {
                    case.contacts.push(contact(&name.name, fields))
                }
                TestStmtKind::Input {
                    at,
                    contact,
                    action,
                } => case.inputs.push(TestInput {
                    at: at.text.clone(),
                    contact: contact.name.clone(),
                    action: input(action),
                    location: at_line,
                }),
                TestStmtKind::Expect {
                    negated,
                    expectation,
                } => {
                    let source = item.absolute(stmt.span);
                    case.expectations.push(expectation_of(
                        *negated,
                        expectation,
                        at_line,
                        text[source.start..source.end].to_string(),
                    ));
                }
            }
        }
        out.push(case);
    }
    out
}

fn contact(name: &str, fields: &[ObjectEntry]) -> TestContact {
    let mut c = TestContact {
        name: name.to_string(),
        traits: BTreeMap::new(),
        consents: Vec::new(),
        tags: Vec::new(),
    };
    for entry in fields {
        match entry.key.name.as_str() {
            "consents" | "tags" => {
                let names: Vec<String> = match &entry.value.kind {
                    ExprKind::List(items) => items
                        .iter()
                        .filter_map(|i| match &i.kind {
                            ExprKind::Name(n) => Some(n.name.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                if entry.key.name == "consents" {
                    c.consents = names;
                } else {
                    c.tags = names;
                }
            }
            key => {
                c.traits.insert(key.to_string(), value(&entry.value));
            }
        }
    }
    c
}

fn object(entries: &[ObjectEntry]) -> BTreeMap<String, Json> {
    entries
        .iter()
        .map(|e| (e.key.name.clone(), value(&e.value)))
        .collect()
}

/// A literal as the ingestion API stores it.
pub fn value(e: &Expr) -> Json {
    match &e.kind {
        ExprKind::Literal(l) => match l {
            Literal::Number(n) => n
                .text
                .parse::<i64>()
                .map_or_else(|_| json!(n.text), Json::from),
            Literal::Money(m) => json!(format!("{} {}", m.amount.text, m.currency)),
            Literal::Percent(p) => json!(p.value.text),
            Literal::Duration(d) => d.exact_seconds().map_or(Json::Null, Json::from),
            Literal::String(s) => json!(s.value),
            Literal::Bool(b) => json!(b),
            Literal::Date(d) => json!(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
            Literal::DateTime(d) => json!(d.text),
            Literal::Time(t) => json!(t.to_string()),
        },
        ExprKind::List(items) => Json::Array(items.iter().map(value).collect()),
        ExprKind::Object(entries) => Json::Object(object(entries).into_iter().collect()),
        ExprKind::Name(n) => json!(n.name),
        ExprKind::Paren(inner) => value(inner),
        ExprKind::Unary(ast::UnaryOp::Neg, inner) => match value(inner) {
            Json::Number(n) => n.as_i64().map_or(Json::Null, |i| json!(-i)),
            Json::String(s) => json!(format!("-{s}")),
            other => other,
        },
        _ => Json::Null,
    }
}

fn step_parts(r: &StepRef) -> (Option<String>, String) {
    (
        r.journey.as_ref().map(|j| j.name.clone()),
        r.step.name.clone(),
    )
}

fn input(action: &AstAction) -> TestAction {
    match action {
        AstAction::Sends { event, payload } => TestAction::Sends {
            event: event.name.clone(),
            payload: payload.as_deref().map(object).unwrap_or_default(),
        },
        AstAction::Updates(entries) => TestAction::Updates {
            traits: object(entries),
        },
        AstAction::Opens(step) => {
            let (journey, step) = step_parts(step);
            TestAction::Opens { journey, step }
        }
        AstAction::Clicks { step, url } => {
            let (journey, step) = step_parts(step);
            TestAction::Clicks {
                journey,
                step,
                url: url.as_ref().map(|u| u.value.clone()),
            }
        }
        AstAction::Unsubscribes(scope) => TestAction::Unsubscribes {
            channel: match scope {
                UnsubscribeScope::All => None,
                UnsubscribeScope::Channel(c) => Some(c.as_str().to_string()),
            },
        },
        AstAction::Visits(url) => TestAction::Visits {
            url: url.value.clone(),
        },
        AstAction::Grants(consent) => TestAction::Grants {
            consent: consent.name.clone(),
        },
    }
}

fn expectation_of(
    negated: bool,
    e: &AstExpectation,
    location: String,
    text: String,
) -> Expectation {
    let time = |t: &Option<TimeClause>| match t {
        Some(TimeClause { until: true, at }) => (None, Some(at.text.clone())),
        Some(TimeClause { until: false, at }) => (Some(at.text.clone()), None),
        None => (None, None),
    };
    let (contact, what, (at, until)) = match e {
        AstExpectation::Send {
            what,
            contact,
            time: t,
        } => (
            contact,
            Expected::Send {
                channel: what.as_ref().map(|(c, _)| c.as_str().to_string()),
                templates: what
                    .as_ref()
                    .map(|(_, ts)| ts.iter().map(|t| t.name.clone()).collect())
                    .unwrap_or_default(),
            },
            time(t),
        ),
        AstExpectation::Split {
            step,
            contact,
            arm,
            time: t,
        } => {
            let (journey, step) = step_parts(step);
            (
                contact,
                Expected::Split {
                    journey,
                    step,
                    arm: arm.as_ref().map(|a| a.name.clone()),
                },
                time(t),
            )
        }
        AstExpectation::Tag {
            tag,
            added,
            contact,
            time: t,
        } => (
            contact,
            Expected::Tag {
                tag: tag.name.clone(),
                added: *added,
            },
            time(t),
        ),
        AstExpectation::Score {
            score,
            contact,
            value,
            time: t,
        } => (
            contact,
            Expected::Score {
                score: score.name.clone(),
                value: value.text.clone(),
            },
            time(t),
        ),
        AstExpectation::Goal {
            journey,
            contact,
            time: t,
        } => (
            contact,
            Expected::Goal {
                journey: journey.name.clone(),
            },
            time(t),
        ),
        AstExpectation::Exit {
            journey,
            contact,
            reason,
            time: t,
        } => (
            contact,
            Expected::Exit {
                journey: journey.name.clone(),
                reason: reason.as_ref().map(|r| r.name.clone()),
            },
            time(t),
        ),
        AstExpectation::Skip {
            step,
            contact,
            reason,
            time: t,
        } => {
            let (journey, step) = step_parts(step);
            (
                contact,
                Expected::Skip {
                    journey,
                    step,
                    reason: reason.as_ref().map(|r| r.name.clone()),
                },
                time(t),
            )
        }
        AstExpectation::Defer {
            step,
            contact,
            time: t,
        } => {
            let (journey, step) = step_parts(step);
            (contact, Expected::Defer { journey, step }, time(t))
        }
        AstExpectation::Enter {
            journey,
            contact,
            time: t,
        } => (
            contact,
            Expected::Enter {
                journey: journey.name.clone(),
            },
            time(t),
        ),
        AstExpectation::Nothing { contact, until } => {
            (contact, Expected::Nothing, (None, Some(until.text.clone())))
        }
    };
    Expectation {
        negated,
        contact: contact.name.clone(),
        what,
        at,
        until,
        location,
        text: text.trim().to_string(),
    }
}
