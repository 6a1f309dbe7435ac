//! Which declared names the project uses, for the "declared but never used" warning.

use cairn_grammar::ast::*;
use std::collections::BTreeSet;

/// Every name used anywhere in the items: bare names in expressions and the names
/// steps, triggers and tests refer to. Namespaces are not told apart: a template and a
/// segment sharing a name count as used together, which errs on the quiet side.
pub fn used_names<'a>(items: impl IntoIterator<Item = &'a ItemKind>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in items {
        match item {
            ItemKind::Segment(s) => expr(&s.condition, &mut out),
            ItemKind::Score(s) => {
                for rule in &s.rules {
                    if let ScoreRuleKind::On {
                        filter: Some(f), ..
                    } = &rule.kind
                    {
                        expr(f, &mut out);
                    }
                }
            }
            ItemKind::Journey(j) => {
                for m in &j.members {
                    match &m.kind {
                        MemberKind::Trigger(t) => trigger(t, &mut out),
                        MemberKind::Audience(e) => expr(e, &mut out),
                        MemberKind::Goal(GoalOpt {
                            filter: Some(f), ..
                        })
                        | MemberKind::Exit(ExitOpt {
                            filter: Some(f), ..
                        }) => expr(f, &mut out),
                        MemberKind::Step(s) => step(s, &mut out),
                        _ => {}
                    }
                }
            }
            ItemKind::Test(t) => {
                for stmt in &t.statements {
                    if let TestStmtKind::Expect {
                        expectation:
                            Expectation::Send {
                                what: Some((_, templates)),
                                ..
                            },
                        ..
                    } = &stmt.kind
                    {
                        out.extend(templates.iter().map(|t| t.name.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn trigger(t: &Trigger, out: &mut BTreeSet<String>) {
    match t {
        Trigger::Event { filter, unless, .. } => {
            if let Some(f) = filter {
                expr(f, out);
            }
            if let Some(Unless {
                filter: Some(f), ..
            }) = unless
            {
                expr(f, out);
            }
        }
        Trigger::Segment { segment, .. } => {
            out.insert(segment.name.clone());
        }
        _ => {}
    }
}

fn block(b: &Block, out: &mut BTreeSet<String>) {
    for s in &b.steps {
        step(s, out);
    }
}

fn step(s: &Step, out: &mut BTreeSet<String>) {
    match &s.kind {
        StepKind::Send(send) => match &send.target {
            SendTarget::Channel { template, .. } => {
                out.insert(template.name.clone());
            }
            SendTarget::Preferred(templates) => {
                out.extend(templates.iter().map(|t| t.name.clone()))
            }
        },
        StepKind::Post {
            body: Some(entries),
            ..
        } => entries.iter().for_each(|e| expr(&e.value, out)),
        StepKind::WaitFor(w) => {
            if let Some(f) = &w.filter {
                expr(f, out);
            }
            block(&w.then, out);
            if let Some(t) = &w.timeout {
                block(t, out);
            }
        }
        StepKind::If(i) => if_step(i, out),
        StepKind::Split(arms) => {
            for arm in arms {
                match &arm.body {
                    ArmBody::Step(s) => step(s, out),
                    ArmBody::Block(b) => block(b, out),
                }
            }
        }
        StepKind::Set { value, .. } => expr(value, out),
        _ => {}
    }
}

fn if_step(i: &IfStep, out: &mut BTreeSet<String>) {
    expr(&i.condition, out);
    block(&i.then, out);
    match &i.otherwise {
        Some(Else::If(next, _)) => if_step(next, out),
        Some(Else::Block(b)) => block(b, out),
        None => {}
    }
}

fn expr(e: &Expr, out: &mut BTreeSet<String>) {
    match &e.kind {
        ExprKind::Name(n) => {
            out.insert(n.name.clone());
        }
        ExprKind::Member(base, _) => expr(base, out),
        ExprKind::List(items) => items.iter().for_each(|i| expr(i, out)),
        ExprKind::Object(entries) => entries.iter().for_each(|en| expr(&en.value, out)),
        ExprKind::Call(c) => {
            for arg in &c.args {
                expr(&arg.value, out);
                if let Some(f) = &arg.filter {
                    expr(f, out);
                }
            }
        }
        ExprKind::Unary(_, inner) | ExprKind::Paren(inner) => expr(inner, out),
        ExprKind::IsSet { expr: inner, .. } => expr(inner, out),
        ExprKind::Binary(_, l, r) => {
            expr(l, out);
            expr(r, out);
        }
        ExprKind::Literal(_) => {}
    }
}
