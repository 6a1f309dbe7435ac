//! `test` blocks: every name they use resolves, payloads match their events.

use super::Ctx;
use super::expr::Scope;
use crate::codes;
use crate::schema::Ty;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{
    Expectation, ExprKind, Ident, ObjectEntry, StepRef, TestAction, TestDecl, TestStmtKind,
};
use std::collections::BTreeSet;

impl Ctx<'_> {
    pub fn test(&mut self, t: &TestDecl) {
        let mut contacts: BTreeSet<String> = BTreeSet::new();
        let mut previous: Option<String> = None;
        for stmt in &t.statements {
            match &stmt.kind {
                TestStmtKind::Contact { name, fields } => {
                    if !contacts.insert(name.name.clone()) {
                        self.out.push(
                            Diagnostic::error(
                                codes::DUPLICATE,
                                format!("test contact `{}` is declared twice", name.name),
                            )
                            .with_label(name.span, "second declaration"),
                        );
                    }
                    self.contact_fields(fields);
                }
                TestStmtKind::Input {
                    at,
                    contact,
                    action,
                } => {
                    if let Some(prev) = &previous
                        && at.text < *prev
                        && same_zone(prev, &at.text)
                    {
                        self.out.push(
                            Diagnostic::error(codes::BAD_VALUE, "test inputs go in time order")
                                .with_label(
                                    at.span,
                                    format!("earlier than the input before it ({prev})"),
                                ),
                        );
                    }
                    previous = Some(at.text.clone());
                    self.test_contact(contact, &contacts);
                    match action {
                        TestAction::Sends { event, payload } => {
                            if self.event_name(event)
                                && let Some(entries) = payload
                            {
                                self.payload(&Ty::Event(event.name.clone()), entries);
                            }
                        }
                        TestAction::Updates(entries) => self.payload(&Ty::Contact, entries),
                        TestAction::Opens(step) | TestAction::Clicks { step, .. } => {
                            self.step_ref(step);
                        }
                        TestAction::Grants(consent) => {
                            self.consent_name(consent);
                        }
                        TestAction::Unsubscribes(_) | TestAction::Visits(_) => {}
                    }
                }
                TestStmtKind::Expect { expectation, .. } => {
                    self.expectation(expectation, &contacts)
                }
            }
        }
    }

    fn expectation(&mut self, e: &Expectation, contacts: &BTreeSet<String>) {
        match e {
            Expectation::Send { what, contact, .. } => {
                self.test_contact(contact, contacts);
                if let Some((channel, templates)) = what {
                    for t in templates {
                        match self.schema.templates.get(&t.name).and_then(|i| i.channel) {
                            Some(actual) if actual != *channel => self.out.push(
                                Diagnostic::error(
                                    codes::CHANNEL_MISMATCH,
                                    format!("`{}` is an {actual} template, not {channel}", t.name),
                                )
                                .with_label(t.span, format!("{actual} template")),
                            ),
                            Some(_) => {}
                            None => {
                                let names = self.schema.templates.keys().cloned().collect();
                                self.require(codes::UNKNOWN_TEMPLATE, "template", t, false, names);
                            }
                        }
                    }
                }
            }
            Expectation::Split {
                step, contact, arm, ..
            } => {
                if let Some(arms) = self.step_ref(step)
                    && let Some(arm) = arm
                    && !arms.contains(&arm.name)
                {
                    self.unknown_among(codes::UNKNOWN_LABEL, "split arm", arm, arms);
                }
                self.test_contact(contact, contacts);
            }
            Expectation::Skip {
                step,
                contact,
                reason,
                ..
            } => {
                self.step_ref(step);
                if let Some(reason) = reason {
                    self.reason(reason, SKIP_REASONS);
                }
                self.test_contact(contact, contacts);
            }
            Expectation::Defer { step, contact, .. } => {
                self.step_ref(step);
                self.test_contact(contact, contacts);
            }
            Expectation::Tag { tag, contact, .. } => {
                self.tag_name(tag);
                self.test_contact(contact, contacts);
            }
            Expectation::Score { score, contact, .. } => {
                self.score_name(score);
                self.test_contact(contact, contacts);
            }
            Expectation::Exit {
                journey,
                contact,
                reason,
                ..
            } => {
                self.journey_name(journey);
                if let Some(reason) = reason {
                    self.reason(reason, EXIT_REASONS);
                }
                self.test_contact(contact, contacts);
            }
            Expectation::Goal {
                journey, contact, ..
            }
            | Expectation::Enter {
                journey, contact, ..
            } => {
                self.journey_name(journey);
                self.test_contact(contact, contacts);
            }
            Expectation::Nothing { contact, .. } => self.test_contact(contact, contacts),
        }
    }

    fn test_contact(&mut self, name: &Ident, contacts: &BTreeSet<String>) {
        let known = contacts.contains(&name.name);
        if !known {
            let mut d = Diagnostic::error(
                codes::UNKNOWN_TEST_CONTACT,
                format!("unknown test contact `{}`", name.name),
            )
            .with_label(name.span, "not declared in this test");
            d = d.with_help(
                match crate::suggest::did_you_mean(&name.name, contacts.iter().map(String::as_str))
                {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("declare it: `contact {} {{ email: \"...\" }}`", name.name),
                },
            );
            self.out.push(d);
        }
    }

    /// Checks a step label of a test against the journeys' labels; returns the split
    /// arms of the step when it names one.
    fn step_ref(&mut self, step: &StepRef) -> Option<Vec<String>> {
        let labels: Vec<(&String, &Vec<String>)> = match &step.journey {
            Some(j) => {
                self.journey_name(j);
                self.schema.labels.get(&j.name)?.iter().collect()
            }
            None => self.schema.labels.values().flat_map(|l| l.iter()).collect(),
        };
        if let Some((_, arms)) = labels.iter().find(|(l, _)| **l == step.step.name) {
            return Some((*arms).clone());
        }
        let names: Vec<String> = labels.iter().map(|(l, _)| (*l).clone()).collect();
        self.unknown_among(codes::UNKNOWN_LABEL, "step label", &step.step, names);
        None
    }

    fn unknown_among(
        &mut self,
        code: &'static str,
        what: &str,
        name: &cairn_grammar::ast::Ident,
        names: Vec<String>,
    ) {
        self.require(code, what, name, false, names);
    }

    fn reason(&mut self, reason: &cairn_grammar::ast::Ident, known: &[&str]) {
        if !known.contains(&reason.name.as_str()) {
            let mut d = Diagnostic::error(
                codes::BAD_VALUE,
                format!("`{}` is not a reason Cairn records", reason.name),
            )
            .with_label(reason.span, "unknown reason");
            d = d.with_help(
                match crate::suggest::did_you_mean(&reason.name, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "the reasons are {}",
                        known
                            .iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            );
            self.out.push(d);
        }
    }

    /// A test contact: its fields are contact fields, plus `consents` and `tags`.
    fn contact_fields(&mut self, fields: &[ObjectEntry]) {
        let mut rest = Vec::new();
        for entry in fields {
            match entry.key.name.as_str() {
                "consents" | "tags" => {
                    let ExprKind::List(items) = &entry.value.kind else {
                        self.out.push(
                            Diagnostic::error(
                                codes::TYPE_MISMATCH,
                                format!("`{}` is a list of names", entry.key.name),
                            )
                            .with_label(entry.value.span, "not a list"),
                        );
                        continue;
                    };
                    for item in items {
                        let ExprKind::Name(n) = &item.kind else {
                            self.out.push(
                                Diagnostic::error(codes::TYPE_MISMATCH, "expected a name")
                                    .with_label(item.span, "not a name"),
                            );
                            continue;
                        };
                        if entry.key.name == "consents" {
                            self.consent_name(n);
                        } else {
                            self.tag_name(n);
                        }
                    }
                }
                _ => rest.push(entry.clone()),
            }
        }
        self.payload(&Ty::Contact, &rest);
    }

    /// Object entries against the fields of a contact or an event.
    fn payload(&mut self, owner: &Ty, entries: &[ObjectEntry]) {
        self.duplicate_keys(entries);
        for entry in entries {
            match self.schema.member(owner, &entry.key.name) {
                Some(ty) => self.value(&entry.key.name, &ty, &entry.value),
                None => {
                    self.expr(&entry.value, &Scope::default());
                    let members = self.schema.members(owner);
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_FIELD,
                        format!("{owner} has no field `{}`", entry.key.name),
                    )
                    .with_label(entry.key.span, "unknown field");
                    if let Some(s) = crate::suggest::did_you_mean(
                        &entry.key.name,
                        members.iter().map(String::as_str),
                    ) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.out.push(d);
                }
            }
        }
    }

    /// A literal value for a field of type `ty`: objects against records, lists item by
    /// item, plain numbers for money as on the wire.
    fn value(&mut self, field: &str, ty: &Ty, e: &cairn_grammar::ast::Expr) {
        match (ty.required(), &e.kind) {
            (Ty::Record(_), ExprKind::Object(entries)) => self.payload(ty.required(), entries),
            (Ty::List(item), ExprKind::List(items)) => {
                for i in items {
                    self.value(field, item, i);
                }
            }
            _ => {
                let value = self.expr(e, &Scope::default());
                if let Ty::Enum(variants) = ty.required() {
                    self.check_enum_value(variants, e);
                }
                if !self.assignable(&value, ty) && !number_for_money(&value, ty) {
                    self.out.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!("`{field}` is {ty}, the value is {value}"),
                        )
                        .with_label(e.span, format!("this is {value}")),
                    );
                }
            }
        }
    }
}

/// Why a send is skipped (SEMANTICS "Messages and consent"), and `render_error` for a
/// template that fails at send time.
const SKIP_REASONS: &[&str] = &[
    "no_consent",
    "no_address",
    "invalid_address",
    "frequency_cap",
    "erased",
    "paused",
    "render_error",
];
/// Why a run ends.
const EXIT_REASONS: &[&str] = &["completed", "goal", "exit_condition", "timeout", "erased"];

/// A plain number stands for money in the project's currency, as on the wire.
fn number_for_money(value: &Ty, field: &Ty) -> bool {
    *value == Ty::Number && matches!(field.required(), Ty::Money(_))
}

fn same_zone(a: &str, b: &str) -> bool {
    a.ends_with('Z') && b.ends_with('Z')
}
