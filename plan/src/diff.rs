//! What changes between two plans, by name and by stable step ID: what `cairn diff`
//! prints for a pull request, and what a deploy's in-flight checks start from.
//!
//! [`diff`] compares two plans item by item: journeys (their options and their steps,
//! keyed by [`StepId`]), segments, scores, templates (part by part, keeping both texts
//! so a caller can show a line diff), the schema (contact fields, records, events,
//! consents, tags) and the sending policies. Besides listing what changed it names the
//! schema changes that break data already stored ([`Breaking`]): a contact field
//! removed or retyped, a field made required, an enum value removed.

use crate::expr::{BinaryOp, Duration, Expr, UnaryOp};
use crate::journey::{Journey, Reentry, Step, StepKind, Trigger};
use crate::schema::{Field, Type};
use crate::{CapAction, CapScope, StepId};
use crate::{FrequencyCap, Plan, QuietHours};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Everything that differs between two plans. Each list is sorted by name (steps by ID).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanDiff {
    pub journeys: Vec<JourneyDiff>,
    pub segments: Vec<Change>,
    pub scores: Vec<Change>,
    pub templates: Vec<TemplateDiff>,
    pub events: Vec<Change>,
    /// The contact's fields.
    pub contact: Vec<Change>,
    pub records: Vec<Change>,
    pub consents: Vec<Change>,
    pub tags: Vec<Change>,
    /// Project-wide quiet hours and frequency caps, as sentences.
    pub policies: Vec<String>,
    /// Schema changes that break data already stored.
    pub breaking: Vec<Breaking>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// A named item added, removed or changed; `details` says what changed, one sentence
/// each (`condition: \`a\` → \`b\``).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub name: String,
    pub kind: ChangeKind,
    pub details: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JourneyDiff {
    pub name: String,
    pub kind: ChangeKind,
    /// Changes of the journey's trigger and options.
    pub details: Vec<String>,
    /// Steps added, removed or changed, by stable ID.
    pub steps: Vec<StepChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepChange {
    pub id: StepId,
    pub kind: ChangeKind,
    /// The step as it reads in the new plan (the old one when removed), such as
    /// `send email cart_reminder` or `wait 1d`.
    pub step: String,
    pub details: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateDiff {
    pub name: String,
    pub kind: ChangeKind,
    /// Channel and transactional changes.
    pub details: Vec<String>,
    /// The parts whose text differs, with both texts (absent where the part is new or
    /// gone).
    pub parts: Vec<PartDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartDiff {
    pub part: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A schema change that stored contacts or events no longer satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breaking {
    /// `contact.city`, `event order_completed.total`, `record line_item.sku`.
    pub subject: String,
    pub reason: String,
}

impl PlanDiff {
    /// Whether the plans behave the same (they may still differ in source positions or
    /// git commit).
    pub fn is_empty(&self) -> bool {
        self.journeys.is_empty()
            && self.segments.is_empty()
            && self.scores.is_empty()
            && self.templates.is_empty()
            && self.events.is_empty()
            && self.contact.is_empty()
            && self.records.is_empty()
            && self.consents.is_empty()
            && self.tags.is_empty()
            && self.policies.is_empty()
            && self.breaking.is_empty()
    }

    /// The steps of `journey` the new plan removes.
    pub fn removed_steps(&self, journey: &str) -> Vec<&StepId> {
        self.journeys
            .iter()
            .filter(|j| j.name == journey)
            .flat_map(|j| &j.steps)
            .filter(|s| s.kind == ChangeKind::Removed)
            .map(|s| &s.id)
            .collect()
    }
}

/// Compares `old` with `new`.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let mut out = PlanDiff {
        journeys: journeys(&old.journeys, &new.journeys),
        segments: by_name(&old.segments, &new.segments, |a, b| {
            let mut d = Vec::new();
            changed(
                &mut d,
                "description",
                &a.description,
                &b.description,
                quote_opt,
            );
            changed(&mut d, "condition", &a.condition, &b.condition, |e| {
                format!("`{}`", expr_text(e))
            });
            d
        }),
        scores: by_name(&old.scores, &new.scores, |a, b| {
            let mut d = Vec::new();
            let rules = |s: &crate::Score| -> Vec<String> {
                s.rules
                    .iter()
                    .map(|r| {
                        let filter = r
                            .filter
                            .as_ref()
                            .map(|f| format!(" where {}", expr_text(f)))
                            .unwrap_or_default();
                        format!("on {}{filter} {}", r.event, signed(&r.points))
                    })
                    .collect()
            };
            list_changes(&mut d, "rule", &rules(a), &rules(b));
            let decay = |s: &crate::Score| {
                s.decay
                    .as_ref()
                    .map(|d| format!("decay {}% every {}", d.percent, duration(d.every)))
            };
            changed(&mut d, "decay", &decay(a), &decay(b), code_opt);
            d
        }),
        templates: templates(old, new),
        events: by_name(&old.schema.events, &new.schema.events, |a, b| {
            let mut d = Vec::new();
            changed(&mut d, "wire name", &a.wire_name, &b.wire_name, quote_opt);
            fields(&mut d, &a.fields, &b.fields);
            d
        }),
        contact: fields_by_name(&old.schema.contact, &new.schema.contact),
        records: by_name(&old.schema.records, &new.schema.records, |a, b| {
            let mut d = Vec::new();
            fields(&mut d, &a.fields, &b.fields);
            d
        }),
        consents: by_name(&old.schema.consents, &new.schema.consents, |a, b| {
            let mut d = Vec::new();
            changed(
                &mut d,
                "channel",
                &a.channel.as_str(),
                &b.channel.as_str(),
                |c| format!("`{c}`"),
            );
            d
        }),
        tags: by_name(&old.schema.tags, &new.schema.tags, |a, b| {
            let mut d = Vec::new();
            changed(
                &mut d,
                "description",
                &a.description,
                &b.description,
                quote_opt,
            );
            d
        }),
        policies: Vec::new(),
        breaking: Vec::new(),
    };
    // Built-in events are the same in every plan of a format version: not news.
    out.events
        .retain(|c| !is_builtin(old, &c.name) || !is_builtin(new, &c.name));
    changed(
        &mut out.policies,
        "quiet hours",
        &old.policies.quiet_hours,
        &new.policies.quiet_hours,
        |q| code_opt(&q.as_ref().map(quiet_hours)),
    );
    let caps = |c: &[FrequencyCap]| c.iter().map(cap).collect::<Vec<_>>();
    list_changes(
        &mut out.policies,
        "frequency cap",
        &caps(&old.policies.frequency_caps),
        &caps(&new.policies.frequency_caps),
    );
    out.breaking = breaking(old, new);
    out
}

fn is_builtin(plan: &Plan, event: &str) -> bool {
    plan.schema.events.get(event).is_some_and(|e| e.builtin)
}

/// Items of two maps by name: added, removed, and changed where `details` finds a
/// difference.
fn by_name<T: PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    details: impl Fn(&T, &T) -> Vec<String>,
) -> Vec<Change> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let change = |kind, details| Change {
                name: name.clone(),
                kind,
                details,
            };
            match (old.get(name), new.get(name)) {
                (None, Some(_)) => Some(change(ChangeKind::Added, Vec::new())),
                (Some(_), None) => Some(change(ChangeKind::Removed, Vec::new())),
                (Some(a), Some(b)) if a != b => {
                    let mut d = details(a, b);
                    if d.is_empty() {
                        d.push("changed".to_string());
                    }
                    Some(change(ChangeKind::Changed, d))
                }
                _ => None,
            }
        })
        .collect()
}

/// A sentence when `a` and `b` differ: `what: A → B`.
fn changed<T: PartialEq>(
    out: &mut Vec<String>,
    what: &str,
    a: &T,
    b: &T,
    show: impl Fn(&T) -> String,
) {
    if a != b {
        out.push(format!("{what}: {} → {}", show(a), show(b)));
    }
}

/// Entries of a list added and removed, by their text.
fn list_changes(out: &mut Vec<String>, what: &str, old: &[String], new: &[String]) {
    for gone in old.iter().filter(|x| !new.contains(x)) {
        out.push(format!("{what} removed: `{gone}`"));
    }
    for added in new.iter().filter(|x| !old.contains(x)) {
        out.push(format!("{what} added: `{added}`"));
    }
}

fn quote_opt(s: &Option<String>) -> String {
    s.as_ref()
        .map_or_else(|| "none".to_string(), |s| format!("{s:?}"))
}

fn code_opt(s: &Option<String>) -> String {
    s.as_ref()
        .map_or_else(|| "none".to_string(), |s| format!("`{s}`"))
}

fn signed(points: &str) -> String {
    if points.starts_with('-') {
        points.to_string()
    } else {
        format!("+{points}")
    }
}

fn fields_by_name(old: &[Field], new: &[Field]) -> Vec<Change> {
    let index = |fs: &[Field]| -> BTreeMap<String, Field> {
        fs.iter().map(|f| (f.name.clone(), f.clone())).collect()
    };
    by_name(&index(old), &index(new), |a, b| {
        vec![format!("`{}` → `{}`", field_text(a), field_text(b))]
    })
}

/// Field changes of an event or record, as sentences.
fn fields(out: &mut Vec<String>, old: &[Field], new: &[Field]) {
    for change in fields_by_name(old, new) {
        match change.kind {
            ChangeKind::Added => {
                let field = new.iter().find(|f| f.name == change.name);
                let text = field.map(field_text).unwrap_or_default();
                out.push(format!("field added: `{text}`"));
            }
            ChangeKind::Removed => out.push(format!("field removed: `{}`", change.name)),
            ChangeKind::Changed => out.push(format!(
                "field `{}`: {}",
                change.name,
                change.details.join("; ")
            )),
        }
    }
}

/// `city string?`, `timezone timezone = "UTC"`
pub fn field_text(field: &Field) -> String {
    let mut text = format!("{} {}", field.name, type_text(&field.ty));
    if field.optional {
        text.push('?');
    }
    if let Some(default) = &field.default {
        let _ = write!(text, " = {}", expr_text(default));
    }
    text
}

pub fn type_text(ty: &Type) -> String {
    match ty {
        Type::Scalar { name } | Type::Record { name } => name.clone(),
        Type::Enum { values } => format!("enum {{ {} }}", values.join(", ")),
        Type::List { item } => format!("list<{}>", type_text(item)),
    }
}

fn templates(old: &Plan, new: &Plan) -> Vec<TemplateDiff> {
    let names: BTreeSet<&String> = old.templates.keys().chain(new.templates.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (old.templates.get(name), new.templates.get(name));
        if a == b {
            continue;
        }
        let kind = match (a, b) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        };
        let mut details = Vec::new();
        if let (Some(a), Some(b)) = (a, b) {
            changed(
                &mut details,
                "channel",
                &a.channel.as_str(),
                &b.channel.as_str(),
                |c| format!("`{c}`"),
            );
            changed(
                &mut details,
                "kind",
                &a.transactional,
                &b.transactional,
                |t| if *t { "transactional" } else { "marketing" }.to_string(),
            );
        }
        let parts_of = |t: Option<&crate::Template>| -> BTreeMap<String, String> {
            t.map(|t| {
                t.parts
                    .iter()
                    .map(|(k, p)| (k.clone(), p.source.clone()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let (pa, pb) = (parts_of(a), parts_of(b));
        let part_names: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
        let parts = part_names
            .into_iter()
            .filter(|p| pa.get(*p) != pb.get(*p))
            .map(|p| PartDiff {
                part: p.clone(),
                old: pa.get(p).cloned(),
                new: pb.get(p).cloned(),
            })
            .collect();
        out.push(TemplateDiff {
            name: name.clone(),
            kind,
            details,
            parts,
        });
    }
    out
}

fn journeys(old: &BTreeMap<String, Journey>, new: &BTreeMap<String, Journey>) -> Vec<JourneyDiff> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (old.get(name), new.get(name));
        let steps_of = |j: Option<&Journey>| j.map(|j| j.steps.clone()).unwrap_or_default();
        let (sa, sb) = (steps_of(a), steps_of(b));
        let mut steps = Vec::new();
        let ids: BTreeSet<&StepId> = sa.keys().chain(sb.keys()).collect();
        for id in ids {
            match (sa.get(id), sb.get(id)) {
                (None, Some(s)) => steps.push(StepChange {
                    id: id.clone(),
                    kind: ChangeKind::Added,
                    step: step_text(&s.kind),
                    details: Vec::new(),
                }),
                (Some(s), None) => steps.push(StepChange {
                    id: id.clone(),
                    kind: ChangeKind::Removed,
                    step: step_text(&s.kind),
                    details: Vec::new(),
                }),
                (Some(x), Some(y)) => {
                    let details = step_details(x, y);
                    if !details.is_empty() {
                        steps.push(StepChange {
                            id: id.clone(),
                            kind: ChangeKind::Changed,
                            step: step_text(&y.kind),
                            details,
                        });
                    }
                }
                (None, None) => {}
            }
        }
        let (kind, details) = match (a, b) {
            (None, Some(_)) => (ChangeKind::Added, Vec::new()),
            (Some(_), None) => (ChangeKind::Removed, Vec::new()),
            (Some(a), Some(b)) => (ChangeKind::Changed, journey_details(a, b)),
            (None, None) => continue,
        };
        if kind == ChangeKind::Changed && details.is_empty() && steps.is_empty() {
            continue;
        }
        out.push(JourneyDiff {
            name: name.clone(),
            kind,
            details,
            steps,
        });
    }
    out
}

fn journey_details(a: &Journey, b: &Journey) -> Vec<String> {
    let mut d = Vec::new();
    changed(
        &mut d,
        "description",
        &a.description,
        &b.description,
        quote_opt,
    );
    changed(&mut d, "trigger", &a.trigger, &b.trigger, |t| {
        format!("`{}`", trigger_text(t))
    });
    changed(&mut d, "audience", &a.audience, &b.audience, |e| {
        e.as_ref()
            .map_or_else(|| "everyone".to_string(), |e| format!("`{}`", expr_text(e)))
    });
    changed(&mut d, "re-entry", &a.reentry, &b.reentry, |r| match r {
        Reentry::Once => "once".to_string(),
        Reentry::After { cooldown } => format!("after {}", duration(*cooldown)),
        Reentry::Always => "always".to_string(),
    });
    changed(&mut d, "goal", &a.goal, &b.goal, |g| match g {
        None => "none".to_string(),
        Some(g) => {
            let mut text = g.event.clone();
            if let Some(f) = &g.filter {
                let _ = write!(text, " where {}", expr_text(f));
            }
            if let Some(w) = g.within {
                let _ = write!(text, " within {}", duration(w));
            }
            format!("`{text}`")
        }
    });
    let exits = |j: &Journey| -> Vec<String> {
        j.exits
            .iter()
            .map(|e| match &e.filter {
                Some(f) => format!("exit when {} where {}", e.event, expr_text(f)),
                None => format!("exit when {}", e.event),
            })
            .collect()
    };
    list_changes(&mut d, "exit", &exits(a), &exits(b));
    changed(&mut d, "quiet hours", &a.quiet_hours, &b.quiet_hours, |q| {
        q.as_ref().map_or_else(
            || "the project's".to_string(),
            |q| format!("`{}`", quiet_hours(q)),
        )
    });
    changed(
        &mut d,
        "frequency caps",
        &a.frequency_caps,
        &b.frequency_caps,
        |c| {
            c.as_ref().map_or_else(
                || "the project's".to_string(),
                |c| {
                    let caps: Vec<String> = c.iter().map(|c| format!("`{}`", cap(c))).collect();
                    if caps.is_empty() {
                        "none".to_string()
                    } else {
                        caps.join(", ")
                    }
                },
            )
        },
    );
    let migrations = |j: &Journey| -> Vec<String> {
        j.migrations
            .iter()
            .map(|m| format!("migrate {} -> {}", migrate_source(m.from.as_str()), m.to))
            .collect()
    };
    list_changes(&mut d, "migration", &migrations(a), &migrations(b));
    changed(&mut d, "drain", &a.drain, &b.drain, |x| {
        if *x { "yes" } else { "no" }.to_string()
    });
    changed(&mut d, "first step", &a.entry, &b.entry, |e| {
        e.as_ref()
            .map_or_else(|| "none".to_string(), |e| format!("`{e}`"))
    });
    d
}

fn step_details(a: &Step, b: &Step) -> Vec<String> {
    let mut d = Vec::new();
    if a.kind != b.kind {
        use StepKind::*;
        match (&a.kind, &b.kind) {
            (
                Send {
                    channel: c1,
                    template: t1,
                    best_time: b1,
                },
                Send {
                    channel: c2,
                    template: t2,
                    best_time: b2,
                },
            ) => {
                changed(&mut d, "channel", &c1.as_str(), &c2.as_str(), |c| {
                    format!("`{c}`")
                });
                changed(&mut d, "template", t1, t2, |t| format!("`{t}`"));
                changed(&mut d, "at best time", b1, b2, |x| {
                    if *x { "yes" } else { "no" }.to_string()
                });
            }
            (Wait { .. } | WaitMonths { .. }, Wait { .. } | WaitMonths { .. }) => {
                d.push(format!(
                    "wait duration: `{}` → `{}`",
                    step_text(&a.kind),
                    step_text(&b.kind)
                ));
            }
            (Branch { condition: c1, .. }, Branch { condition: c2, .. }) if c1 != c2 => {
                d.push(format!(
                    "condition: `{}` → `{}`",
                    expr_text(c1),
                    expr_text(c2)
                ));
            }
            _ => {}
        }
        if d.is_empty() {
            let (x, y) = (step_text(&a.kind), step_text(&b.kind));
            if x != y {
                d.push(format!("`{x}` → `{y}`"));
            }
        }
        let (ta, tb) = (a.kind.targets(), b.kind.targets());
        if ta != tb {
            d.push(format!(
                "branches to {} → {}",
                targets_text(&ta),
                targets_text(&tb)
            ));
        }
    }
    changed(&mut d, "then", &a.next, &b.next, |n| {
        n.as_ref()
            .map_or_else(|| "the end of the run".to_string(), |n| format!("`{n}`"))
    });
    d
}

fn targets_text(targets: &[&StepId]) -> String {
    if targets.is_empty() {
        return "nothing".to_string();
    }
    targets
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quiet_hours(q: &QuietHours) -> String {
    format!("quiet hours {}..{} local", q.from, q.to)
}

fn cap(c: &FrequencyCap) -> String {
    let scope = match c.scope {
        CapScope::Marketing => "marketing".to_string(),
        CapScope::Channel { channel } => channel.as_str().to_string(),
    };
    let action = match c.action {
        CapAction::Defer => "defer",
        CapAction::Skip => "skip",
    };
    format!(
        "frequency cap {} {scope} per {} {action}",
        c.limit,
        duration(c.per)
    )
}

/// The schema changes of `new` that data stored under `old` does not satisfy.
fn breaking(old: &Plan, new: &Plan) -> Vec<Breaking> {
    let mut out = Vec::new();
    fields_breaking(
        &mut out,
        "contact",
        &old.schema.contact,
        &new.schema.contact,
        true,
    );
    for (name, a) in &old.schema.records {
        if let Some(b) = new.schema.records.get(name) {
            let subject = format!("record {name}");
            fields_breaking(&mut out, &subject, &a.fields, &b.fields, false);
        }
    }
    for (name, a) in &old.schema.events {
        if a.builtin {
            continue;
        }
        if let Some(b) = new.schema.events.get(name) {
            let subject = format!("event {name}");
            fields_breaking(&mut out, &subject, &a.fields, &b.fields, false);
        }
    }
    out
}

fn fields_breaking(
    out: &mut Vec<Breaking>,
    owner: &str,
    old: &[Field],
    new: &[Field],
    removal_breaks: bool,
) {
    let mut push = |field: &str, reason: String| {
        out.push(Breaking {
            subject: format!("{owner}.{field}"),
            reason,
        });
    };
    for a in old {
        match new.iter().find(|b| b.name == a.name) {
            None if removal_breaks => push(
                &a.name,
                "removed: the values stored for every contact are no longer readable".into(),
            ),
            None => {}
            Some(b) => {
                match (&a.ty, &b.ty) {
                    (Type::Enum { values: va }, Type::Enum { values: vb }) => {
                        let gone: Vec<String> = va
                            .iter()
                            .filter(|v| !vb.contains(v))
                            .map(|v| format!("`{v}`"))
                            .collect();
                        if !gone.is_empty() {
                            push(
                                &a.name,
                                format!(
                                    "enum value {} removed: stored values no longer fit the type",
                                    gone.join(", ")
                                ),
                            );
                        }
                    }
                    (ta, tb) if ta != tb => push(
                        &a.name,
                        format!(
                            "type changed from `{}` to `{}`: stored values no longer fit it",
                            type_text(ta),
                            type_text(tb)
                        ),
                    ),
                    _ => {}
                }
                if a.optional && !b.optional && b.default.is_none() {
                    push(
                        &a.name,
                        "made required: stored data may lack it".to_string(),
                    );
                }
            }
        }
    }
    if !removal_breaks {
        for b in new {
            if !old.iter().any(|a| a.name == b.name) && !b.optional && b.default.is_none() {
                push(
                    &b.name,
                    "added as a required field: stored data lacks it".to_string(),
                );
            }
        }
    }
}

/// `1d`, `90m`, `6 months`: the largest unit that divides the length exactly.
pub fn duration(d: Duration) -> String {
    match d {
        Duration::Months(1) => "1 month".to_string(),
        Duration::Months(n) => format!("{n} months"),
        Duration::Seconds(0) => "0s".to_string(),
        Duration::Seconds(s) => {
            for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
                if s % size == 0 {
                    return format!("{}{unit}", s / size);
                }
            }
            format!("{s}s")
        }
    }
}

/// A step in one line, as it reads in the source: `send email cart_reminder`.
pub fn step_text(kind: &StepKind) -> String {
    match kind {
        StepKind::Send {
            channel,
            template,
            best_time,
        } => {
            let best = if *best_time { " at best time" } else { "" };
            format!("send {} {template}{best}", channel.as_str())
        }
        StepKind::SendPreferred {
            templates,
            best_time,
        } => {
            let best = if *best_time { " at best time" } else { "" };
            format!("send via preferred channel {}{best}", templates.join(", "))
        }
        StepKind::Webhook { url, .. } => format!("post {url:?}"),
        StepKind::Wait { seconds } => format!("wait {}", duration(Duration::Seconds(*seconds))),
        StepKind::WaitMonths { months } => format!("wait {}", duration(Duration::Months(*months))),
        StepKind::WaitUntil { from, to } => match to {
            Some(to) => format!("wait until {from}..{to} local"),
            None => format!("wait until {from} local"),
        },
        StepKind::WaitFor {
            event,
            filter,
            within,
            ..
        } => {
            let mut text = format!("wait for {event}");
            if let Some(f) = filter {
                let _ = write!(text, " where {}", expr_text(f));
            }
            if let Some(w) = within {
                let _ = write!(text, " within {}", duration(*w));
            }
            text
        }
        StepKind::Branch { condition, .. } => format!("if {}", expr_text(condition)),
        StepKind::Split { arms } => {
            let arms: Vec<String> = arms
                .iter()
                .map(|a| format!("{}% {}", a.percent, a.name))
                .collect();
            format!("split {}", arms.join(" / "))
        }
        StepKind::Tag { add, tag } => {
            format!("tag {} {tag}", if *add { "add" } else { "remove" })
        }
        StepKind::Score { score, delta } => format!("score {score} {}", signed(delta)),
        StepKind::Set { path, value } => format!("set {} = {}", path.join("."), expr_text(value)),
        StepKind::Retry { target, max } => format!("retry {target} at most {max} times"),
        StepKind::Goal => "goal".to_string(),
        StepKind::Exit => "exit".to_string(),
    }
}

/// A migration's old step as the source writes it: a label bare, a derived step ID
/// (`remind.wait#1`) quoted.
fn migrate_source(step: &str) -> String {
    let label = step
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if label && !step.is_empty() {
        step.to_string()
    } else {
        format!("\"{step}\"")
    }
}

/// Whether a run can rest at a step of this kind: the waits, where a migrated run
/// starts over (see `docs/semantics.md`).
pub fn can_hold_a_run(kind: &StepKind) -> bool {
    matches!(
        kind,
        StepKind::Wait { .. }
            | StepKind::WaitMonths { .. }
            | StepKind::WaitUntil { .. }
            | StepKind::WaitFor { .. }
    )
}

/// A trigger in one line, as it reads in the source: `when cart_updated as cart`.
pub fn trigger_text(t: &Trigger) -> String {
    match t {
        Trigger::Event {
            event,
            binding,
            filter,
            unless,
        } => {
            let mut text = format!("when {event}");
            if let Some(b) = binding {
                let _ = write!(text, " as {b}");
            }
            if let Some(f) = filter {
                let _ = write!(text, " where {}", expr_text(f));
            }
            if let Some(u) = unless {
                let _ = write!(text, " unless {}", u.event);
                if let Some(f) = &u.filter {
                    let _ = write!(text, " where {}", expr_text(f));
                }
                let _ = write!(text, " within {}", duration(u.within));
            }
            text
        }
        Trigger::Anniversary { field, at } => {
            format!("when anniversary of {} at {at} local", field.join("."))
        }
        Trigger::Inactive { event, for_ } => format!("when no {event} for {}", duration(*for_)),
        Trigger::Segment { segment, change } => match change {
            crate::SegmentChange::Enters => format!("when enters segment {segment}"),
            crate::SegmentChange::Leaves => format!("when leaves segment {segment}"),
        },
        Trigger::Tag { tag, change } => match change {
            crate::TagChange::Added => format!("when tag {tag} added"),
            crate::TagChange::Removed => format!("when tag {tag} removed"),
        },
        Trigger::Page { pattern } => format!("when page {pattern:?} visited"),
        Trigger::ContactCreated => "when contact created".to_string(),
        Trigger::ConsentGranted { consent } => format!("when consent {consent} granted"),
    }
}

fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In
        | BinaryOp::NotIn => 3,
        BinaryOp::Add | BinaryOp::Sub => 4,
        BinaryOp::Mul | BinaryOp::Div => 5,
    }
}

fn op_text(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Or => "or",
        BinaryOp::And => "and",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Lt => "<",
        BinaryOp::Le => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::Ge => ">=",
        BinaryOp::In => "in",
        BinaryOp::NotIn => "not in",
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
    }
}

/// An expression as Cairn source, with the parentheses its precedence needs.
pub fn expr_text(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e, 0);
    out
}

fn write_expr(out: &mut String, e: &Expr, min: u8) {
    match e {
        Expr::Percent { value } => {
            let _ = write!(out, "{value}%");
        }
        Expr::Number { value } => out.push_str(value),
        Expr::Money { amount, currency } => {
            let _ = write!(out, "{amount} {currency}");
        }
        Expr::Duration { duration: d } => out.push_str(&duration(*d)),
        Expr::String { value } => {
            let _ = write!(out, "{value:?}");
        }
        Expr::Bool { value } => {
            let _ = write!(out, "{value}");
        }
        Expr::Date { value } | Expr::Datetime { value } | Expr::Time { value } => {
            out.push_str(value);
        }
        Expr::List { items } => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item, 0);
            }
            out.push(']');
        }
        Expr::Object { entries } => {
            out.push_str("{ ");
            for (i, entry) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", entry.key);
                write_expr(out, &entry.value, 0);
            }
            out.push_str(" }");
        }
        Expr::Name { name } => out.push_str(name),
        Expr::Member { object, name } => {
            write_expr(out, object, 10);
            let _ = write!(out, ".{name}");
        }
        Expr::Call { function, args } => {
            let _ = write!(out, "{function}(");
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, &arg.value, 0);
                if let Some(f) = &arg.filter {
                    out.push_str(" where ");
                    write_expr(out, f, 0);
                }
                if let Some(w) = arg.within {
                    let _ = write!(out, " within {}", duration(w));
                }
            }
            out.push(')');
        }
        Expr::Unary { op, operand } => match op {
            UnaryOp::Not => {
                let paren = min > 2;
                if paren {
                    out.push('(');
                }
                out.push_str("not ");
                write_expr(out, operand, 3);
                if paren {
                    out.push(')');
                }
            }
            UnaryOp::Neg => {
                out.push('-');
                write_expr(out, operand, 6);
            }
        },
        Expr::Binary { op, left, right } => {
            let p = precedence(*op);
            let paren = p < min;
            if paren {
                out.push('(');
            }
            write_expr(out, left, p);
            let _ = write!(out, " {} ", op_text(*op));
            write_expr(out, right, p + 1);
            if paren {
                out.push(')');
            }
        }
        Expr::IsSet { operand, negated } => {
            write_expr(out, operand, 10);
            out.push_str(if *negated { " is not set" } else { " is set" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Box<Expr> {
        Box::new(Expr::Name { name: n.into() })
    }

    #[test]
    fn expressions_keep_the_parentheses_they_need() {
        let or = Expr::Binary {
            op: BinaryOp::Or,
            left: name("a"),
            right: name("b"),
        };
        let and = Expr::Binary {
            op: BinaryOp::And,
            left: Box::new(or.clone()),
            right: name("c"),
        };
        assert_eq!(expr_text(&and), "(a or b) and c");
        let not = Expr::Unary {
            op: UnaryOp::Not,
            operand: Box::new(Expr::Call {
                function: "opened".into(),
                args: vec![crate::CallArg {
                    value: *name("remind"),
                    filter: None,
                    within: None,
                }],
            }),
        };
        assert_eq!(expr_text(&not), "not opened(remind)");
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration(Duration::Seconds(86_400)), "1d");
        assert_eq!(duration(Duration::Seconds(5_400)), "90m");
        assert_eq!(duration(Duration::Seconds(61)), "61s");
        assert_eq!(duration(Duration::Months(6)), "6 months");
    }
}
