//! Lowering: the syntax trees of a checked project to a [`Plan`].
//!
//! [`lower`] is a pure function of its [`LowerInput`]: the caller reads the sources,
//! the template files and the git commit, and the result depends on nothing else (no
//! clock, no file system, no environment). It assumes the project passed the checker;
//! what it still cannot turn into a plan (a template file that is not there, a `retry`
//! of a label the journey does not have, ...) comes back as located diagnostics with
//! codes `E0900`-`E0999` (see [`codes`]).
//!
//! Journeys become graphs of steps keyed by stable step IDs; the ID scheme is
//! [`cairn_plan::id`]'s (and `docs/plan.md`'s).

use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{self, ItemKind, MemberKind, Span};
use cairn_grammar::lines::LineIndex;
use cairn_plan::{self as plan, BlockIds, Duration, Expr, Plan, StepId};
use std::collections::{BTreeMap, BTreeSet};

/// The codes of what lowering reports. The checker's catalogue stops below `E0900`.
pub mod codes {
    /// A template part names a file (`html file "templates/x.html"`) that is not
    /// among the project's files. Paths are relative to the project root.
    pub const TEMPLATE_FILE_MISSING: &str = "E0900";
    /// `retry LABEL` names no labelled step of its journey.
    pub const UNKNOWN_RETRY_TARGET: &str = "E0901";
    /// `migrate OLD -> NEW` names no labelled step `NEW` in its journey.
    pub const UNKNOWN_MIGRATE_TARGET: &str = "E0902";
    /// Two steps of one journey have the same label; step IDs would collide.
    pub const DUPLICATE_LABEL: &str = "E0903";
    /// A journey has no `when` trigger, so no contact could ever enter it.
    pub const NO_TRIGGER: &str = "E0904";
    /// Something a plan holds once is declared twice: a name in its namespace, a
    /// journey's trigger or option, the project's quiet hours, a score's decay, a
    /// template part.
    pub const DECLARED_TWICE: &str = "E0905";
    /// An expression nests deeper than a plan may hold
    /// ([`cairn_plan::MAX_EXPR_NESTING`] JSON levels).
    pub const TOO_DEEP: &str = "E0906";
}

/// One parsed source file of the project.
#[derive(Debug, Clone, Copy)]
pub struct SourceInput<'a> {
    /// The file's path relative to the project root, with `/` separators; it appears
    /// in the plan's step positions.
    pub path: &'a str,
    /// The file's text, for line numbers.
    pub text: &'a str,
    pub file: &'a ast::SourceFile,
}

/// Everything a plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct LowerInput<'a> {
    pub project: &'a str,
    /// The manifest's currency.
    pub default_currency: Option<&'a str>,
    pub sources: &'a [SourceInput<'a>],
    /// Template files by path relative to the project root, `/`-separated.
    pub assets: &'a BTreeMap<String, String>,
    pub git_commit: Option<&'a str>,
}

/// A diagnostic and the index (in [`LowerInput::sources`]) of the file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerError {
    pub file: usize,
    pub diagnostic: Diagnostic,
}

/// Builds the plan of a checked project, or says what stops it.
pub fn lower(input: &LowerInput<'_>) -> Result<Plan, Vec<LowerError>> {
    let mut cx = Lowerer::new(input);
    cx.run();
    if cx.errors.is_empty() {
        let mut plan = cx.plan;
        plan.seal();
        Ok(plan)
    } else {
        Err(cx.errors)
    }
}

/// The plan's name for a built-in type, folding the checker's aliases.
fn canonical_type(name: &str) -> &str {
    match name {
        "text" => "string",
        "int" | "decimal" => "number",
        other => other,
    }
}

fn channel(c: ast::Channel) -> plan::Channel {
    match c {
        ast::Channel::Email => plan::Channel::Email,
        ast::Channel::Sms => plan::Channel::Sms,
        ast::Channel::Push => plan::Channel::Push,
    }
}

fn duration(d: &ast::DurationLit) -> Duration {
    match (d.exact_seconds(), d.calendar_months()) {
        (Some(seconds), _) => Duration::Seconds(seconds),
        (None, months) => Duration::Months(months.unwrap_or(0)),
    }
}

fn time(t: &ast::TimeLit) -> String {
    t.to_string()
}

fn signed(n: &ast::SignedNumber) -> String {
    if n.negative {
        format!("-{}", n.magnitude.text)
    } else {
        n.magnitude.text.clone()
    }
}

fn path(p: &ast::Path) -> Vec<String> {
    p.segments.iter().map(|s| s.name.clone()).collect()
}

/// An expression without spans or parentheses.
pub fn lower_expr(e: &ast::Expr) -> Expr {
    match &e.kind {
        ast::ExprKind::Paren(inner) => lower_expr(inner),
        ast::ExprKind::Name(name) => Expr::Name {
            name: name.name.clone(),
        },
        ast::ExprKind::Member(object, name) => Expr::Member {
            object: Box::new(lower_expr(object)),
            name: name.name.clone(),
        },
        ast::ExprKind::Literal(literal) => lower_literal(literal),
        ast::ExprKind::List(items) => Expr::List {
            items: items.iter().map(lower_expr).collect(),
        },
        ast::ExprKind::Object(entries) => Expr::Object {
            entries: lower_entries(entries),
        },
        ast::ExprKind::Call(call) => Expr::Call {
            function: call.function.name.clone(),
            args: call
                .args
                .iter()
                .map(|a| plan::CallArg {
                    value: lower_expr(&a.value),
                    filter: a.filter.as_ref().map(lower_expr),
                    within: a.within.as_ref().map(duration),
                })
                .collect(),
        },
        ast::ExprKind::Unary(op, operand) => Expr::Unary {
            op: match op {
                ast::UnaryOp::Not => plan::UnaryOp::Not,
                ast::UnaryOp::Neg => plan::UnaryOp::Neg,
            },
            operand: Box::new(lower_expr(operand)),
        },
        ast::ExprKind::Binary(op, left, right) => Expr::Binary {
            op: binary_op(*op),
            left: Box::new(lower_expr(left)),
            right: Box::new(lower_expr(right)),
        },
        ast::ExprKind::IsSet { expr, negated } => Expr::IsSet {
            operand: Box::new(lower_expr(expr)),
            negated: *negated,
        },
    }
}

fn binary_op(op: ast::BinaryOp) -> plan::BinaryOp {
    use ast::BinaryOp as A;
    use plan::BinaryOp as P;
    match op {
        A::Or => P::Or,
        A::And => P::And,
        A::Eq => P::Eq,
        A::Ne => P::Ne,
        A::Lt => P::Lt,
        A::Le => P::Le,
        A::Gt => P::Gt,
        A::Ge => P::Ge,
        A::In => P::In,
        A::NotIn => P::NotIn,
        A::Add => P::Add,
        A::Sub => P::Sub,
        A::Mul => P::Mul,
        A::Div => P::Div,
    }
}

fn lower_literal(literal: &ast::Literal) -> Expr {
    match literal {
        ast::Literal::Number(n) => Expr::Number {
            value: n.text.clone(),
        },
        ast::Literal::Money(m) => Expr::Money {
            amount: m.amount.text.clone(),
            currency: m.currency.clone(),
        },
        ast::Literal::Percent(p) => Expr::Percent {
            value: p.value.text.clone(),
        },
        ast::Literal::Duration(d) => Expr::Duration {
            duration: duration(d),
        },
        ast::Literal::String(s) => Expr::String {
            value: s.value.clone(),
        },
        ast::Literal::Bool(b) => Expr::Bool { value: *b },
        ast::Literal::Date(d) => Expr::Date {
            value: format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        },
        ast::Literal::DateTime(d) => Expr::Datetime {
            value: d.text.clone(),
        },
        ast::Literal::Time(t) => Expr::Time { value: time(t) },
    }
}

fn lower_entries(entries: &[ast::ObjectEntry]) -> Vec<plan::Entry> {
    entries
        .iter()
        .map(|e| plan::Entry {
            key: e.key.name.clone(),
            value: lower_expr(&e.value),
        })
        .collect()
}

struct Lowerer<'a> {
    input: &'a LowerInput<'a>,
    plan: Plan,
    errors: Vec<LowerError>,
    /// Declared record names, so field types can tell records from built-in types.
    records: BTreeSet<String>,
    /// The first declaration of each (namespace, name): its file and absolute span.
    declared: BTreeMap<(&'static str, String), (usize, Span)>,
    lines: Vec<LineIndex>,
    /// The file and the item being lowered; spans inside an item are relative to it.
    file: usize,
    item_start: usize,
}

impl<'a> Lowerer<'a> {
    fn new(input: &'a LowerInput<'a>) -> Self {
        let mut plan = Plan::new(input.project);
        plan.default_currency = input.default_currency.map(str::to_string);
        plan.git_commit = input.git_commit.map(str::to_string);
        for event in plan::builtin_events() {
            plan.schema.events.insert(event.name.clone(), event);
        }
        let records = input
            .sources
            .iter()
            .flat_map(|s| &s.file.items)
            .filter_map(|item| match &item.kind {
                ItemKind::Record(r) => Some(r.name.name.clone()),
                _ => None,
            })
            .collect();
        Lowerer {
            input,
            plan,
            errors: Vec::new(),
            records,
            declared: BTreeMap::new(),
            lines: input
                .sources
                .iter()
                .map(|s| LineIndex::new(s.text))
                .collect(),
            file: 0,
            item_start: 0,
        }
    }

    fn run(&mut self) {
        for (index, source) in self.input.sources.iter().enumerate() {
            self.file = index;
            for item in &source.file.items {
                self.item_start = item.span.start;
                self.item(item);
            }
        }
    }

    /// An item-relative span as an absolute one.
    fn abs(&self, span: Span) -> Span {
        span.shift(self.item_start)
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.errors.push(LowerError {
            file: self.file,
            diagnostic,
        });
    }

    /// Registers a declaration; `false` (and a diagnostic) when the name is taken.
    fn declare(&mut self, namespace: &'static str, name: &ast::Ident) -> bool {
        let span = self.abs(name.span);
        if namespace == "event"
            && self
                .plan
                .schema
                .events
                .get(&name.name)
                .is_some_and(|e| e.builtin)
        {
            self.error(
                Diagnostic::error(
                    codes::DECLARED_TWICE,
                    format!("event `{}` is built in", name.name),
                )
                .with_label(span, "declared again here")
                .with_help("every project has the built-in events; use it without declaring it, or pick another name"),
            );
            return false;
        }
        let key = (namespace, name.name.clone());
        if let Some(&(file, first)) = self.declared.get(&key) {
            let mut d = Diagnostic::error(
                codes::DECLARED_TWICE,
                format!("{namespace} `{}` is declared twice", name.name),
            )
            .with_label(span, "declared again here");
            if file == self.file {
                d = d.with_secondary(first, "first declared here");
            } else {
                d = d.with_help(format!(
                    "the first declaration is in `{}`",
                    self.input.sources[file].path
                ));
            }
            self.error(d);
            return false;
        }
        self.declared.insert(key, (self.file, span));
        true
    }

    fn twice(&mut self, what: &str, span: Span) {
        let span = self.abs(span);
        self.error(
            Diagnostic::error(codes::DECLARED_TWICE, format!("{what} is given twice"))
                .with_label(span, "given again here")
                .with_help("keep one of them"),
        );
    }

    /// A top-level expression, refused when it nests too deep for a plan.
    fn expr(&mut self, e: &ast::Expr) -> Expr {
        let lowered = lower_expr(e);
        let nesting = lowered.json_nesting();
        if nesting > plan::MAX_EXPR_NESTING {
            let span = self.abs(e.span);
            self.error(
                Diagnostic::error(
                    codes::TOO_DEEP,
                    format!(
                        "this expression nests {nesting} levels deep; a plan holds at most {}",
                        plan::MAX_EXPR_NESTING
                    ),
                )
                .with_label(span, "too deep")
                .with_help(
                    "split it into segments, or compare with `in [...]` instead of chaining `or`",
                ),
            );
        }
        lowered
    }

    fn opt_expr(&mut self, e: Option<&ast::Expr>) -> Option<Expr> {
        e.map(|e| self.expr(e))
    }

    fn ty(&self, ty: &ast::TypeExpr) -> plan::Type {
        match &ty.kind {
            ast::TypeKind::Named(name) if self.records.contains(&name.name) => plan::Type::Record {
                name: name.name.clone(),
            },
            ast::TypeKind::Named(name) => plan::Type::scalar(canonical_type(&name.name)),
            ast::TypeKind::Enum(values) => plan::Type::Enum {
                values: values.iter().map(|v| v.name.clone()).collect(),
            },
            ast::TypeKind::List(item) => plan::Type::List {
                item: Box::new(self.ty(item)),
            },
        }
    }

    fn fields(&mut self, fields: &[ast::Field]) -> Vec<plan::Field> {
        fields
            .iter()
            .map(|f| plan::Field {
                name: f.name.name.clone(),
                ty: self.ty(&f.ty),
                optional: f.ty.optional,
                default: self.opt_expr(f.default.as_ref()),
            })
            .collect()
    }

    fn quiet_hours(q: &ast::QuietHours) -> plan::QuietHours {
        plan::QuietHours {
            from: time(&q.from),
            to: time(&q.to),
        }
    }

    fn cap(c: &ast::FrequencyCap) -> plan::FrequencyCap {
        plan::FrequencyCap {
            limit: c.limit,
            scope: match c.scope {
                ast::CapScope::Marketing => plan::CapScope::Marketing,
                ast::CapScope::Channel(c) => plan::CapScope::Channel {
                    channel: channel(c),
                },
            },
            per: duration(&c.per),
            action: match c.action {
                ast::CapAction::Defer => plan::CapAction::Defer,
                ast::CapAction::Skip => plan::CapAction::Skip,
            },
        }
    }

    fn item(&mut self, item: &ast::Item) {
        let doc = item.doc.as_ref().map(|d| d.trim().to_string());
        match &item.kind {
            ItemKind::Contact(c) => {
                for field in self.fields(&c.fields) {
                    // A field declared twice is the checker's to report; the first wins.
                    if !self
                        .plan
                        .schema
                        .contact
                        .iter()
                        .any(|f| f.name == field.name)
                    {
                        self.plan.schema.contact.push(field);
                    }
                }
            }
            ItemKind::Consent(c) => {
                if self.declare("consent", &c.name) {
                    self.plan.schema.consents.insert(
                        c.name.name.clone(),
                        plan::Consent {
                            name: c.name.name.clone(),
                            channel: channel(c.channel),
                        },
                    );
                }
            }
            ItemKind::Record(r) => {
                if self.declare("record", &r.name) {
                    let fields = self.fields(&r.fields);
                    self.plan.schema.records.insert(
                        r.name.name.clone(),
                        plan::Record {
                            name: r.name.name.clone(),
                            fields,
                        },
                    );
                }
            }
            ItemKind::Event(e) => {
                if self.declare("event", &e.name) {
                    let fields = self.fields(&e.fields);
                    self.plan.schema.events.insert(
                        e.name.name.clone(),
                        plan::Event {
                            name: e.name.name.clone(),
                            wire_name: e.wire_name.as_ref().map(|w| w.value.clone()),
                            fields,
                            builtin: false,
                        },
                    );
                }
            }
            ItemKind::Tag(t) => {
                if self.declare("tag", &t.name) {
                    self.plan.schema.tags.insert(
                        t.name.name.clone(),
                        plan::Tag {
                            name: t.name.name.clone(),
                            description: t.description.as_ref().map(|d| d.value.clone()).or(doc),
                        },
                    );
                }
            }
            ItemKind::Segment(s) => {
                if self.declare("segment", &s.name) {
                    let condition = self.expr(&s.condition);
                    self.plan.segments.insert(
                        s.name.name.clone(),
                        plan::Segment {
                            name: s.name.name.clone(),
                            description: s.description.as_ref().map(|d| d.value.clone()).or(doc),
                            condition,
                        },
                    );
                }
            }
            ItemKind::Score(s) => {
                if self.declare("score", &s.name) {
                    let score = self.score(s, doc);
                    self.plan.scores.insert(s.name.name.clone(), score);
                }
            }
            ItemKind::Template(t) => {
                if self.declare("template", &t.name) {
                    let template = self.template(t);
                    self.plan.templates.insert(t.name.name.clone(), template);
                }
            }
            ItemKind::QuietHours(q) => {
                if self.plan.policies.quiet_hours.is_some() {
                    self.twice("the project's `quiet hours`", Span::new(0, item.span.len()));
                } else {
                    self.plan.policies.quiet_hours = Some(Self::quiet_hours(q));
                }
            }
            ItemKind::FrequencyCap(c) => self.plan.policies.frequency_caps.push(Self::cap(c)),
            ItemKind::Journey(j) => {
                if self.declare("journey", &j.name) {
                    let journey = self.journey(j, doc);
                    self.plan.journeys.insert(j.name.name.clone(), journey);
                }
            }
            // Tests are compiled by `cairn test`, not deployed; broken items never
            // reach lowering (their syntax errors stop the build).
            ItemKind::Test(_) | ItemKind::Error => {}
        }
    }

    fn score(&mut self, s: &ast::ScoreDecl, doc: Option<String>) -> plan::Score {
        let mut rules = Vec::new();
        let mut decay = None;
        for rule in &s.rules {
            match &rule.kind {
                ast::ScoreRuleKind::On {
                    points,
                    event,
                    filter,
                } => {
                    let filter = self.opt_expr(filter.as_ref());
                    rules.push(plan::ScoreRule {
                        event: event.name.clone(),
                        filter,
                        points: signed(points),
                    });
                }
                ast::ScoreRuleKind::Decay { percent, every } => {
                    if decay.is_some() {
                        self.twice(
                            &format!("the `decay` of score `{}`", s.name.name),
                            rule.span,
                        );
                    } else {
                        decay = Some(plan::Decay {
                            percent: percent.value.text.clone(),
                            every: duration(every),
                        });
                    }
                }
            }
        }
        plan::Score {
            name: s.name.name.clone(),
            description: s.description.as_ref().map(|d| d.value.clone()).or(doc),
            rules,
            decay,
        }
    }

    fn template(&mut self, t: &ast::TemplateDecl) -> plan::Template {
        let mut parts = BTreeMap::new();
        for prop in &t.props {
            let name = prop.name.name.clone();
            if parts.contains_key(&name) {
                self.twice(
                    &format!("part `{name}` of template `{}`", t.name.name),
                    prop.span,
                );
                continue;
            }
            let part = if prop.from_file {
                let path = prop.value.value.trim_start_matches("./").to_string();
                match self.input.assets.get(&path) {
                    Some(text) => plan::TemplatePart {
                        source: text.clone(),
                        file: Some(path),
                    },
                    None => {
                        let span = self.abs(prop.value.span);
                        self.error(
                            Diagnostic::error(
                                codes::TEMPLATE_FILE_MISSING,
                                format!("template file `{path}` not found"),
                            )
                            .with_label(span, "no such file in the project")
                            .with_help(
                                "paths are relative to the project root (the folder with `cairn.toml`)",
                            ),
                        );
                        continue;
                    }
                }
            } else {
                plan::TemplatePart {
                    source: prop.value.value.clone(),
                    file: None,
                }
            };
            parts.insert(name, part);
        }
        plan::Template {
            name: t.name.name.clone(),
            channel: channel(t.channel),
            transactional: t.transactional,
            parts,
        }
    }

    fn trigger(&mut self, t: &ast::Trigger) -> plan::Trigger {
        match t {
            ast::Trigger::Event {
                event,
                binding,
                filter,
                unless,
            } => plan::Trigger::Event {
                event: event.name.clone(),
                binding: binding.as_ref().map(|b| b.name.clone()),
                filter: self.opt_expr(filter.as_ref()),
                unless: unless.as_ref().map(|u| plan::Unless {
                    event: u.event.name.clone(),
                    filter: self.opt_expr(u.filter.as_ref()),
                    within: duration(&u.within),
                }),
            },
            ast::Trigger::Anniversary { field, at } => plan::Trigger::Anniversary {
                field: path(field),
                at: time(at),
            },
            ast::Trigger::Inactive { event, for_ } => plan::Trigger::Inactive {
                event: event.name.clone(),
                for_: duration(for_),
            },
            ast::Trigger::Segment { enters, segment } => plan::Trigger::Segment {
                segment: segment.name.clone(),
                change: if *enters {
                    plan::SegmentChange::Enters
                } else {
                    plan::SegmentChange::Leaves
                },
            },
            ast::Trigger::Tag { tag, added } => plan::Trigger::Tag {
                tag: tag.name.clone(),
                change: if *added {
                    plan::TagChange::Added
                } else {
                    plan::TagChange::Removed
                },
            },
            ast::Trigger::Page { pattern } => plan::Trigger::Page {
                pattern: pattern.value.clone(),
            },
            ast::Trigger::ContactCreated => plan::Trigger::ContactCreated,
            ast::Trigger::ConsentGranted { consent } => plan::Trigger::ConsentGranted {
                consent: consent.name.clone(),
            },
        }
    }

    fn journey(&mut self, j: &ast::JourneyDecl, doc: Option<String>) -> plan::Journey {
        let mut trigger = None;
        let mut audience = None;
        let mut reentry = None;
        let mut goal = None;
        let mut exits = Vec::new();
        let mut quiet_hours = None;
        let mut caps: Option<Vec<plan::FrequencyCap>> = None;
        let mut migrations = Vec::new();
        let mut drain = false;
        let mut steps: Vec<&ast::Step> = Vec::new();
        let journey = &j.name.name;
        for member in &j.members {
            let once = |seen: bool, what: &str, cx: &mut Self| {
                if seen {
                    cx.twice(&format!("{what} of journey `{journey}`"), member.span);
                }
                !seen
            };
            match &member.kind {
                MemberKind::Trigger(t) => {
                    if once(trigger.is_some(), "the `when` trigger", self) {
                        trigger = Some(self.trigger(t));
                    }
                }
                MemberKind::Audience(e) => {
                    if once(audience.is_some(), "`audience`", self) {
                        audience = Some(self.expr(e));
                    }
                }
                MemberKind::Reenter(r) => {
                    if once(reentry.is_some(), "`reenter`", self) {
                        reentry = Some(match r {
                            ast::Reenter::After(d) => plan::Reentry::After {
                                cooldown: duration(d),
                            },
                            ast::Reenter::Always => plan::Reentry::Always,
                            ast::Reenter::Never => plan::Reentry::Once,
                        });
                    }
                }
                MemberKind::Goal(g) => {
                    if once(goal.is_some(), "`goal`", self) {
                        goal = Some(plan::Goal {
                            event: g.event.name.clone(),
                            filter: self.opt_expr(g.filter.as_ref()),
                            within: g.within.as_ref().map(duration),
                        });
                    }
                }
                MemberKind::Exit(x) => {
                    let filter = self.opt_expr(x.filter.as_ref());
                    exits.push(plan::ExitCondition {
                        event: x.event.name.clone(),
                        filter,
                    });
                }
                MemberKind::QuietHours(q) => {
                    if once(quiet_hours.is_some(), "`quiet hours`", self) {
                        quiet_hours = Some(Self::quiet_hours(q));
                    }
                }
                MemberKind::FrequencyCap(c) => caps.get_or_insert_with(Vec::new).push(Self::cap(c)),
                MemberKind::Migrate { from, to } => migrations.push((from, to)),
                MemberKind::Drain => drain = true,
                MemberKind::Step(step) => steps.push(step),
            }
        }
        let trigger = trigger.unwrap_or_else(|| {
            let span = self.abs(j.name.span);
            self.error(
                Diagnostic::error(
                    codes::NO_TRIGGER,
                    format!("journey `{journey}` has no trigger"),
                )
                .with_label(span, "no contact can enter this journey")
                .with_help("add a `when ...` line, such as `when cart_updated as cart`"),
            );
            plan::Trigger::ContactCreated
        });

        let labels = self.labels(&steps);
        let mut graph = Graph {
            cx: self,
            labels: &labels,
            journey,
            steps: BTreeMap::new(),
        };
        let entry = graph.block(&steps, BlockIds::journey(), None);
        let steps = graph.steps;

        let migrations = migrations
            .into_iter()
            .map(|(from, to)| {
                if !labels.contains_key(&to.name) {
                    let span = self.abs(to.span);
                    self.error(
                        Diagnostic::error(
                            codes::UNKNOWN_MIGRATE_TARGET,
                            format!("journey `{journey}` has no step labelled `{}`", to.name),
                        )
                        .with_label(span, "runs would be moved to a step that does not exist")
                        .with_help(label_help(&labels)),
                    );
                }
                plan::Migration {
                    from: StepId::new(from.name().to_string()),
                    to: StepId::new(to.name.clone()),
                }
            })
            .collect();

        plan::Journey {
            name: journey.clone(),
            description: j.description.as_ref().map(|d| d.value.clone()).or(doc),
            trigger,
            audience,
            reentry: reentry.unwrap_or(plan::Reentry::Once),
            goal,
            exits,
            quiet_hours,
            frequency_caps: caps,
            migrations,
            drain,
            entry,
            steps,
        }
    }

    /// Every label of a journey's steps, nested ones included; reports duplicates.
    fn labels(&mut self, steps: &[&ast::Step]) -> BTreeMap<String, Span> {
        fn walk<'s>(steps: impl IntoIterator<Item = &'s ast::Step>, out: &mut Vec<&'s ast::Ident>) {
            for step in steps {
                if let Some(label) = &step.label {
                    out.push(label);
                }
                match &step.kind {
                    ast::StepKind::WaitFor(w) => {
                        walk(&w.then.steps, out);
                        if let Some(t) = &w.timeout {
                            walk(&t.steps, out);
                        }
                    }
                    ast::StepKind::If(i) => walk_if(i, out),
                    ast::StepKind::Split(arms) => {
                        for arm in arms {
                            match &arm.body {
                                ast::ArmBody::Step(s) => walk(std::iter::once(s.as_ref()), out),
                                ast::ArmBody::Block(b) => walk(&b.steps, out),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        fn walk_if<'s>(i: &'s ast::IfStep, out: &mut Vec<&'s ast::Ident>) {
            walk(&i.then.steps, out);
            match &i.otherwise {
                Some(ast::Else::If(nested, _)) => walk_if(nested, out),
                Some(ast::Else::Block(b)) => walk(&b.steps, out),
                None => {}
            }
        }
        let mut found = Vec::new();
        walk(steps.iter().copied(), &mut found);
        let mut labels: BTreeMap<String, Span> = BTreeMap::new();
        for label in found {
            let span = self.abs(label.span);
            if let Some(first) = labels.get(&label.name) {
                let first = *first;
                self.error(
                    Diagnostic::error(
                        codes::DUPLICATE_LABEL,
                        format!("two steps are labelled `{}`", label.name),
                    )
                    .with_label(span, "labelled again here")
                    .with_secondary(first, "first labelled here")
                    .with_help("a label names one step of its journey; rename one of them"),
                );
            } else {
                labels.insert(label.name.clone(), span);
            }
        }
        labels
    }
}

fn label_help(labels: &BTreeMap<String, Span>) -> String {
    if labels.is_empty() {
        "label the step first (`name: send email ...`)".to_string()
    } else {
        let names: Vec<String> = labels.keys().map(|l| format!("`{l}`")).collect();
        format!("the labelled steps are {}", names.join(", "))
    }
}

/// Builds one journey's step graph.
struct Graph<'c, 'a> {
    cx: &'c mut Lowerer<'a>,
    labels: &'c BTreeMap<String, Span>,
    journey: &'c str,
    steps: BTreeMap<StepId, plan::Step>,
}

impl Graph<'_, '_> {
    /// Lowers a block whose run continues at `cont` after its last step; returns the
    /// block's first step (or `cont` for an empty block).
    fn block(
        &mut self,
        steps: &[&ast::Step],
        mut ids: BlockIds,
        cont: Option<StepId>,
    ) -> Option<StepId> {
        let ids: Vec<StepId> = steps
            .iter()
            .map(|s| ids.next(s.label.as_ref().map(|l| l.name.as_str()), s.kind.keyword()))
            .collect();
        let mut next = cont;
        for (step, id) in steps.iter().zip(ids).rev() {
            self.step(step, id.clone(), next);
            next = Some(id);
        }
        next
    }

    fn nested(
        &mut self,
        block: &ast::Block,
        parent: &StepId,
        branch: &str,
        cont: &Option<StepId>,
    ) -> Option<StepId> {
        let steps: Vec<&ast::Step> = block.steps.iter().collect();
        self.block(&steps, BlockIds::branch(parent, branch), cont.clone())
    }

    fn source(&self, span: Span, label: Option<&ast::Ident>) -> plan::SourceRef {
        let cx = &self.cx;
        let source = &cx.input.sources[cx.file];
        let at = cx.lines[cx.file].line_col(source.text, cx.abs(span).start);
        plan::SourceRef {
            file: source.path.to_string(),
            line: u32::try_from(at.line).unwrap_or(u32::MAX),
            column: u32::try_from(at.column).unwrap_or(u32::MAX),
            label: label.map(|l| l.name.clone()),
        }
    }

    fn insert(
        &mut self,
        id: StepId,
        kind: plan::StepKind,
        next: Option<StepId>,
        source: plan::SourceRef,
    ) {
        self.steps.insert(
            id.clone(),
            plan::Step {
                id,
                kind,
                next,
                source: Some(source),
            },
        );
    }

    fn step(&mut self, step: &ast::Step, id: StepId, cont: Option<StepId>) {
        use plan::StepKind as K;
        let source = self.source(step.span, step.label.as_ref());
        let (kind, next) = match &step.kind {
            ast::StepKind::Send(send) => {
                let kind = match &send.target {
                    ast::SendTarget::Channel {
                        channel: c,
                        template,
                    } => K::Send {
                        channel: channel(*c),
                        template: template.name.clone(),
                        best_time: send.best_time,
                    },
                    ast::SendTarget::Preferred(templates) => K::SendPreferred {
                        templates: templates.iter().map(|t| t.name.clone()).collect(),
                        best_time: send.best_time,
                    },
                };
                (kind, cont)
            }
            ast::StepKind::Post { url, body } => {
                let body = body.as_ref().map(|entries| {
                    entries
                        .iter()
                        .map(|e| plan::Entry {
                            key: e.key.name.clone(),
                            value: self.cx.expr(&e.value),
                        })
                        .collect()
                });
                (
                    K::Webhook {
                        url: url.value.clone(),
                        body,
                    },
                    cont,
                )
            }
            ast::StepKind::Wait(d) => {
                let kind = match duration(d) {
                    Duration::Seconds(seconds) => K::Wait { seconds },
                    Duration::Months(months) => K::WaitMonths { months },
                };
                (kind, cont)
            }
            ast::StepKind::WaitUntil { from, to } => (
                K::WaitUntil {
                    from: time(from),
                    to: to.as_ref().map(time),
                },
                cont,
            ),
            ast::StepKind::WaitFor(w) => {
                let filter = self.cx.opt_expr(w.filter.as_ref());
                let on_event = self.nested(&w.then, &id, "event", &cont);
                let on_timeout = match &w.timeout {
                    Some(block) => self.nested(block, &id, "timeout", &cont),
                    None => cont.clone(),
                };
                (
                    K::WaitFor {
                        event: w.event.name.clone(),
                        binding: w.binding.as_ref().map(|b| b.name.clone()),
                        filter,
                        within: w.within.as_ref().map(duration),
                        on_event,
                        on_timeout,
                    },
                    None,
                )
            }
            ast::StepKind::If(branch) => (self.branch(branch, &id, &cont), None),
            ast::StepKind::Split(arms) => {
                let arms = arms
                    .iter()
                    .map(|arm| {
                        let next = match &arm.body {
                            ast::ArmBody::Step(s) => self.block(
                                &[s.as_ref()],
                                BlockIds::branch(&id, &arm.name.name),
                                cont.clone(),
                            ),
                            ast::ArmBody::Block(b) => self.nested(b, &id, &arm.name.name, &cont),
                        };
                        plan::SplitArm {
                            name: arm.name.name.clone(),
                            percent: arm.weight.value.text.clone(),
                            next,
                        }
                    })
                    .collect();
                (K::Split { arms }, None)
            }
            ast::StepKind::Tag { add, tag } => (
                K::Tag {
                    add: *add,
                    tag: tag.name.clone(),
                },
                cont,
            ),
            ast::StepKind::Score { score, delta } => (
                K::Score {
                    score: score.name.clone(),
                    delta: signed(delta),
                },
                cont,
            ),
            ast::StepKind::Set { target, value } => (
                K::Set {
                    path: path(target),
                    value: self.cx.expr(value),
                },
                cont,
            ),
            ast::StepKind::Retry { target, times } => {
                if !self.labels.contains_key(&target.name) {
                    let span = self.cx.abs(target.span);
                    let help = label_help(self.labels);
                    self.cx.error(
                        Diagnostic::error(
                            codes::UNKNOWN_RETRY_TARGET,
                            format!(
                                "journey `{}` has no step labelled `{}` to retry",
                                self.journey, target.name
                            ),
                        )
                        .with_label(span, "not a label in this journey")
                        .with_help(help),
                    );
                }
                (
                    K::Retry {
                        target: StepId::new(target.name.clone()),
                        max: *times,
                    },
                    cont,
                )
            }
            ast::StepKind::Goal => (K::Goal, None),
            ast::StepKind::Exit => (K::Exit, None),
        };
        self.insert(id, kind, next, source);
    }

    /// An `if`: its `then` block, and its `else` block or `else if` chain. An
    /// `else if` is the one step of the `else` block: `ID.else.if#1`.
    fn branch(
        &mut self,
        branch: &ast::IfStep,
        id: &StepId,
        cont: &Option<StepId>,
    ) -> plan::StepKind {
        let condition = self.cx.expr(&branch.condition);
        let then = self.nested(&branch.then, id, "then", cont);
        let else_ = match &branch.otherwise {
            None => cont.clone(),
            Some(ast::Else::Block(block)) => self.nested(block, id, "else", cont),
            Some(ast::Else::If(nested, span)) => {
                let nested_id = BlockIds::branch(id, "else").next(None, "if");
                let source = self.source(*span, None);
                let kind = self.branch(nested, &nested_id, cont);
                self.insert(nested_id.clone(), kind, None, source);
                Some(nested_id)
            }
        };
        plan::StepKind::Branch {
            condition,
            then,
            else_,
        }
    }
}
