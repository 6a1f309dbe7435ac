//! Every named thing in a file and what it refers to: the model behind hover, go to
//! definition, references, rename, highlighting and symbols.
//!
//! The compiler resolves names while it checks but keeps no record of what each name
//! meant; this module walks the same trees with the same scoping rules (trigger and
//! `wait for` bindings, bare event fields inside `where`) and writes the answer down.
//! It is a salsa query per item, so after an edit only the edited item is walked again.

use cairn_compiler::checker::expr::FUNCTIONS;
use cairn_compiler::db::{Db, ItemDef, ProjectInput, SourceFile, parse_file, project_schema};
use cairn_compiler::schema::{Schema, Ty};
use cairn_grammar::ast::{
    ArmBody, Block, CallArg, Else, Expectation, Expr, ExprKind, Field, Ident, ItemKind,
    JourneyDecl, MemberKind, MigrateFrom, ObjectEntry, Path, ScoreRuleKind, SendTarget, Span, Step,
    StepKind, StepRef, TestAction, TestDecl, TestStmtKind, Trigger, TypeExpr, TypeKind,
};

/// What a name refers to. Two occurrences with equal symbols mean the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, salsa::SalsaValue)]
pub enum Symbol {
    Event(String),
    EventField {
        event: String,
        field: String,
    },
    ContactField(String),
    Record(String),
    RecordField {
        record: String,
        field: String,
    },
    Segment(String),
    Score(String),
    Template(String),
    Consent(String),
    Tag(String),
    Journey(String),
    /// A step label. `journey` is empty for a test's `opens remind`, which names a label
    /// of whichever journey has it.
    Label {
        journey: String,
        label: String,
    },
    /// A trigger's or `wait for`'s `as NAME`, local to its journey.
    Binding {
        journey: String,
        name: String,
    },
    /// A contact declared in a test, local to that test.
    TestContact {
        test: String,
        name: String,
    },
    Function(String),
    /// A built-in type name such as `money`.
    Type(String),
}

impl Symbol {
    /// The name as written in the source.
    pub fn name(&self) -> &str {
        match self {
            Symbol::Event(n)
            | Symbol::ContactField(n)
            | Symbol::Record(n)
            | Symbol::Segment(n)
            | Symbol::Score(n)
            | Symbol::Template(n)
            | Symbol::Consent(n)
            | Symbol::Tag(n)
            | Symbol::Journey(n)
            | Symbol::Function(n)
            | Symbol::Type(n) => n,
            Symbol::EventField { field, .. } | Symbol::RecordField { field, .. } => field,
            Symbol::Label { label, .. } => label,
            Symbol::Binding { name, .. } | Symbol::TestContact { name, .. } => name,
        }
    }

    /// Whether `other` (an occurrence found in the source) refers to `self`.
    pub fn matches(&self, other: &Symbol) -> bool {
        match (self, other) {
            (
                Symbol::Label { journey, label },
                Symbol::Label {
                    journey: j2,
                    label: l2,
                },
            ) => label == l2 && (journey == j2 || journey.is_empty() || j2.is_empty()),
            _ => self == other,
        }
    }

    /// Whether users may rename it: built-in functions and types are not theirs.
    pub fn renamable(&self) -> bool {
        !matches!(self, Symbol::Function(_) | Symbol::Type(_))
    }

    /// What kind of thing it is, as a user reads it.
    pub fn describe(&self) -> &'static str {
        match self {
            Symbol::Event(_) => "event",
            Symbol::EventField { .. } => "event field",
            Symbol::ContactField(_) => "contact field",
            Symbol::Record(_) => "record",
            Symbol::RecordField { .. } => "record field",
            Symbol::Segment(_) => "segment",
            Symbol::Score(_) => "score",
            Symbol::Template(_) => "template",
            Symbol::Consent(_) => "consent",
            Symbol::Tag(_) => "tag",
            Symbol::Journey(_) => "journey",
            Symbol::Label { .. } => "step",
            Symbol::Binding { .. } => "binding",
            Symbol::TestContact { .. } => "test contact",
            Symbol::Function(_) => "function",
            Symbol::Type(_) => "type",
        }
    }
}

/// One name in the source: where, what it means, and whether this is its declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, salsa::SalsaValue)]
pub struct Occurrence {
    pub span: Span,
    pub symbol: Symbol,
    pub def: bool,
}

/// The names of one item, spans relative to the item.
#[salsa::tracked(returns(ref))]
pub fn item_occurrences<'db>(
    db: &'db dyn Db,
    project: ProjectInput,
    item: ItemDef<'db>,
) -> Vec<Occurrence> {
    let schema = project_schema(db, project);
    let mut walker = Walker {
        schema,
        out: Vec::new(),
    };
    walker.item(item.kind(db));
    walker.out.sort_by_key(|o| (o.span.start, o.span.end));
    walker.out
}

/// The names of one file, absolute, in source order.
#[salsa::tracked(returns(ref))]
pub fn file_occurrences(db: &dyn Db, project: ProjectInput, file: SourceFile) -> Vec<Occurrence> {
    let mut out = Vec::new();
    for item in &parse_file(db, file).items {
        let offset = item.offset(db);
        out.extend(
            item_occurrences(db, project, *item)
                .iter()
                .map(|o| Occurrence {
                    span: o.span.shift(offset),
                    ..o.clone()
                }),
        );
    }
    out
}

/// The occurrence under `offset`: the one containing it, else the one ending there (the
/// cursor just after a name).
pub fn at_offset(occurrences: &[Occurrence], offset: usize) -> Option<&Occurrence> {
    let inside = occurrences
        .iter()
        .find(|o| o.span.start <= offset && offset < o.span.end);
    inside.or_else(|| occurrences.iter().find(|o| o.span.end == offset))
}

/// Scope while walking: bindings in force and the event whose fields are bare names.
#[derive(Clone, Default)]
struct Scope {
    journey: String,
    bindings: Vec<(String, Ty)>,
    event: Option<String>,
}

impl Scope {
    fn with_event(&self, event: &str) -> Scope {
        Scope {
            event: Some(event.to_string()),
            ..self.clone()
        }
    }
}

struct Walker<'s> {
    schema: &'s Schema,
    out: Vec<Occurrence>,
}

impl Walker<'_> {
    fn add(&mut self, ident: &Ident, symbol: Symbol, def: bool) {
        if ident.name.is_empty() {
            return;
        }
        self.out.push(Occurrence {
            span: ident.span,
            symbol,
            def,
        });
    }

    fn item(&mut self, kind: &ItemKind) {
        match kind {
            ItemKind::Contact(c) => {
                for f in &c.fields {
                    self.add(&f.name, Symbol::ContactField(f.name.name.clone()), true);
                    self.field_rest(f);
                }
            }
            ItemKind::Consent(c) => self.add(&c.name, Symbol::Consent(c.name.name.clone()), true),
            ItemKind::Record(r) => {
                self.add(&r.name, Symbol::Record(r.name.name.clone()), true);
                for f in &r.fields {
                    let symbol = Symbol::RecordField {
                        record: r.name.name.clone(),
                        field: f.name.name.clone(),
                    };
                    self.add(&f.name, symbol, true);
                    self.field_rest(f);
                }
            }
            ItemKind::Event(e) => {
                self.add(&e.name, Symbol::Event(e.name.name.clone()), true);
                for f in &e.fields {
                    let symbol = Symbol::EventField {
                        event: e.name.name.clone(),
                        field: f.name.name.clone(),
                    };
                    self.add(&f.name, symbol, true);
                    self.field_rest(f);
                }
            }
            ItemKind::Tag(t) => self.add(&t.name, Symbol::Tag(t.name.name.clone()), true),
            ItemKind::Segment(s) => {
                self.add(&s.name, Symbol::Segment(s.name.name.clone()), true);
                self.expr(&s.condition, &Scope::default());
            }
            ItemKind::Score(s) => {
                self.add(&s.name, Symbol::Score(s.name.name.clone()), true);
                for rule in &s.rules {
                    if let ScoreRuleKind::On { event, filter, .. } = &rule.kind {
                        self.event(event);
                        if let Some(f) = filter {
                            self.expr(f, &Scope::default().with_event(&event.name));
                        }
                    }
                }
            }
            ItemKind::Template(t) => self.add(&t.name, Symbol::Template(t.name.name.clone()), true),
            ItemKind::Journey(j) => self.journey(j),
            ItemKind::Test(t) => self.test(t),
            ItemKind::QuietHours(_) | ItemKind::FrequencyCap(_) | ItemKind::Error => {}
        }
    }

    fn field_rest(&mut self, f: &Field) {
        self.type_expr(&f.ty);
        if let Some(default) = &f.default {
            self.expr(default, &Scope::default());
        }
    }

    fn type_expr(&mut self, t: &TypeExpr) {
        match &t.kind {
            TypeKind::Named(n) if self.schema.records.contains_key(&n.name) => {
                self.add(n, Symbol::Record(n.name.clone()), false)
            }
            TypeKind::Named(n) => self.add(n, Symbol::Type(n.name.clone()), false),
            TypeKind::Enum(_) => {}
            TypeKind::List(inner) => self.type_expr(inner),
        }
    }

    fn event(&mut self, n: &Ident) {
        self.add(n, Symbol::Event(n.name.clone()), false);
    }

    fn label(&mut self, journey: &str, n: &Ident, def: bool) {
        let symbol = Symbol::Label {
            journey: journey.to_string(),
            label: n.name.clone(),
        };
        self.add(n, symbol, def);
    }

    fn contact_path(&mut self, path: &Path) {
        if let [root, field, ..] = path.segments.as_slice()
            && root.name == "contact"
        {
            self.add(field, Symbol::ContactField(field.name.clone()), false);
        }
    }

    fn journey(&mut self, j: &JourneyDecl) {
        let name = j.name.name.clone();
        self.add(&j.name, Symbol::Journey(name.clone()), true);
        let mut scope = Scope {
            journey: name.clone(),
            ..Scope::default()
        };
        // The trigger's binding is in force in the audience and every step, wherever the
        // trigger is written. Only the first trigger counts; the checker reports others.
        let first_trigger = j
            .members
            .iter()
            .position(|m| matches!(m.kind, MemberKind::Trigger(_)));
        if let Some(MemberKind::Trigger(t)) = first_trigger.map(|i| &j.members[i].kind) {
            self.trigger(t, &mut scope);
        }
        for (i, member) in j.members.iter().enumerate() {
            match &member.kind {
                MemberKind::Trigger(t) if Some(i) != first_trigger => {
                    self.trigger(t, &mut scope.clone());
                }
                MemberKind::Trigger(_) | MemberKind::Reenter(_) | MemberKind::Drain => {}
                MemberKind::QuietHours(_) | MemberKind::FrequencyCap(_) => {}
                MemberKind::Audience(e) => {
                    self.expr(e, &scope);
                }
                MemberKind::Goal(g) => {
                    self.event(&g.event);
                    if let Some(f) = &g.filter {
                        self.expr(f, &scope.with_event(&g.event.name));
                    }
                }
                MemberKind::Exit(x) => {
                    self.event(&x.event);
                    if let Some(f) = &x.filter {
                        self.expr(f, &scope.with_event(&x.event.name));
                    }
                }
                MemberKind::Migrate { from, to } => {
                    // A quoted step ID names a step of the deployed plan, not a label.
                    if let MigrateFrom::Label(from) = from {
                        self.label(&name, from, false);
                    }
                    self.label(&name, to, false);
                }
                MemberKind::Step(step) => self.step(step, &scope),
            }
        }
    }

    fn trigger(&mut self, t: &Trigger, scope: &mut Scope) {
        match t {
            Trigger::Event {
                event,
                binding,
                filter,
                unless,
            } => {
                self.event(event);
                if let Some(f) = filter {
                    self.expr(f, &scope.with_event(&event.name));
                }
                if let Some(u) = unless {
                    self.event(&u.event);
                    if let Some(f) = &u.filter {
                        self.expr(f, &scope.with_event(&u.event.name));
                    }
                }
                if let Some(b) = binding {
                    self.bind(b, &event.name, scope);
                }
            }
            Trigger::Anniversary { field, .. } => self.contact_path(field),
            Trigger::Inactive { event, .. } => self.event(event),
            Trigger::Segment { segment, .. } => {
                self.add(segment, Symbol::Segment(segment.name.clone()), false)
            }
            Trigger::Tag { tag, .. } => self.add(tag, Symbol::Tag(tag.name.clone()), false),
            Trigger::ConsentGranted { consent } => {
                self.add(consent, Symbol::Consent(consent.name.clone()), false)
            }
            Trigger::Page { .. } | Trigger::ContactCreated => {}
        }
    }

    fn bind(&mut self, b: &Ident, event: &str, scope: &mut Scope) {
        let symbol = Symbol::Binding {
            journey: scope.journey.clone(),
            name: b.name.clone(),
        };
        self.add(b, symbol, true);
        scope
            .bindings
            .push((b.name.clone(), Ty::Event(event.to_string())));
    }

    fn block(&mut self, block: &Block, scope: &Scope) {
        for step in &block.steps {
            self.step(step, scope);
        }
    }

    fn step(&mut self, step: &Step, scope: &Scope) {
        if let Some(label) = &step.label {
            self.label(&scope.journey, label, true);
        }
        match &step.kind {
            StepKind::Send(send) => match &send.target {
                SendTarget::Channel { template, .. } => {
                    self.add(template, Symbol::Template(template.name.clone()), false)
                }
                SendTarget::Preferred(templates) => {
                    for t in templates {
                        self.add(t, Symbol::Template(t.name.clone()), false);
                    }
                }
            },
            StepKind::Post { body, .. } => {
                for entry in body.iter().flatten() {
                    self.expr(&entry.value, scope);
                }
            }
            StepKind::WaitFor(w) => {
                self.event(&w.event);
                if let Some(f) = &w.filter {
                    self.expr(f, &scope.with_event(&w.event.name));
                }
                let mut inner = scope.clone();
                if let Some(b) = &w.binding {
                    self.bind(b, &w.event.name, &mut inner);
                }
                self.block(&w.then, &inner);
                if let Some(t) = &w.timeout {
                    self.block(t, scope);
                }
            }
            StepKind::If(i) => {
                let mut current = i;
                loop {
                    self.expr(&current.condition, scope);
                    self.block(&current.then, scope);
                    match &current.otherwise {
                        None => break,
                        Some(Else::Block(b)) => {
                            self.block(b, scope);
                            break;
                        }
                        Some(Else::If(next, _)) => current = next,
                    }
                }
            }
            StepKind::Split(arms) => {
                for arm in arms {
                    match &arm.body {
                        ArmBody::Step(s) => self.step(s, scope),
                        ArmBody::Block(b) => self.block(b, scope),
                    }
                }
            }
            StepKind::Tag { tag, .. } => self.add(tag, Symbol::Tag(tag.name.clone()), false),
            StepKind::Score { score, .. } => {
                self.add(score, Symbol::Score(score.name.clone()), false)
            }
            StepKind::Set { target, value } => {
                self.contact_path(target);
                self.expr(value, scope);
            }
            StepKind::Retry { target, .. } => self.label(&scope.journey, target, false),
            StepKind::Wait(_) | StepKind::WaitUntil { .. } | StepKind::Goal | StepKind::Exit => {}
        }
    }

    /// Walks an expression, recording its names; returns its type as far as names go.
    fn expr(&mut self, e: &Expr, scope: &Scope) -> Ty {
        match &e.kind {
            ExprKind::Name(n) => self.name(n, scope),
            ExprKind::Member(base, name) => {
                let base_ty = self.expr(base, scope);
                self.member(&base_ty, name)
            }
            ExprKind::Call(call) => {
                let function = call.function.name.as_str();
                if FUNCTIONS.contains(&function) {
                    self.add(
                        &call.function,
                        Symbol::Function(function.to_string()),
                        false,
                    );
                }
                match function {
                    "consented" | "has_tag" | "opened" | "clicked" => {
                        for arg in &call.args {
                            if let ExprKind::Name(n) = &arg.value.kind {
                                let symbol = match function {
                                    "consented" => Symbol::Consent(n.name.clone()),
                                    "has_tag" => Symbol::Tag(n.name.clone()),
                                    _ => Symbol::Label {
                                        journey: scope.journey.clone(),
                                        label: n.name.clone(),
                                    },
                                };
                                self.add(n, symbol, false);
                            } else {
                                self.call_arg(arg, scope);
                            }
                        }
                        Ty::Bool
                    }
                    "exists" | "count" | "sum" | "avg" | "min" | "max" | "last" => {
                        for arg in &call.args {
                            self.event_query(arg, scope);
                        }
                        Ty::Unknown
                    }
                    _ => {
                        for arg in &call.args {
                            self.call_arg(arg, scope);
                        }
                        Ty::Unknown
                    }
                }
            }
            ExprKind::Unary(_, inner) | ExprKind::Paren(inner) => self.expr(inner, scope),
            ExprKind::IsSet { expr, .. } => {
                self.expr(expr, scope);
                Ty::Bool
            }
            ExprKind::Binary(_, l, r) => {
                self.expr(l, scope);
                self.expr(r, scope);
                Ty::Unknown
            }
            ExprKind::List(items) => {
                for item in items {
                    self.expr(item, scope);
                }
                Ty::Unknown
            }
            ExprKind::Object(entries) => {
                for entry in entries {
                    self.expr(&entry.value, scope);
                }
                Ty::Object
            }
            ExprKind::Literal(_) => Ty::Unknown,
        }
    }

    fn call_arg(&mut self, arg: &CallArg, scope: &Scope) {
        self.expr(&arg.value, scope);
        if let Some(f) = &arg.filter {
            self.expr(f, scope);
        }
    }

    /// `count(page_viewed where path == "/x" within 7d)`, `sum(order_completed.total)`.
    fn event_query(&mut self, arg: &CallArg, scope: &Scope) {
        let event = match &arg.value.kind {
            ExprKind::Name(n) => {
                self.event(n);
                Some(n.name.clone())
            }
            ExprKind::Member(base, field) => match &base.kind {
                ExprKind::Name(n) if self.schema.events.contains_key(&n.name) => {
                    self.event(n);
                    let symbol = Symbol::EventField {
                        event: n.name.clone(),
                        field: field.name.clone(),
                    };
                    self.add(field, symbol, false);
                    Some(n.name.clone())
                }
                _ => {
                    self.expr(&arg.value, scope);
                    None
                }
            },
            _ => {
                self.expr(&arg.value, scope);
                None
            }
        };
        if let Some(f) = &arg.filter {
            match &event {
                Some(event) => self.expr(f, &scope.with_event(event)),
                None => self.expr(f, scope),
            };
        }
    }

    fn name(&mut self, n: &Ident, scope: &Scope) -> Ty {
        let name = n.name.as_str();
        if let Some(event) = &scope.event
            && let Some(ty) = self
                .schema
                .events
                .get(event)
                .and_then(|e| e.fields.get(name))
        {
            let symbol = Symbol::EventField {
                event: event.clone(),
                field: name.to_string(),
            };
            self.add(n, symbol, false);
            return ty.clone();
        }
        if let Some((_, ty)) = scope.bindings.iter().rev().find(|(b, _)| b == name) {
            let symbol = Symbol::Binding {
                journey: scope.journey.clone(),
                name: name.to_string(),
            };
            self.add(n, symbol, false);
            return ty.clone();
        }
        if name == "contact" {
            return Ty::Contact;
        }
        if self.schema.segments.contains(name) {
            self.add(n, Symbol::Segment(name.to_string()), false);
            return Ty::Bool;
        }
        if self.schema.scores.contains(name) {
            self.add(n, Symbol::Score(name.to_string()), false);
            return Ty::Number;
        }
        Ty::Unknown
    }

    fn member(&mut self, base: &Ty, name: &Ident) -> Ty {
        let symbol = match base.required() {
            Ty::Contact => Some(Symbol::ContactField(name.name.clone())),
            Ty::Event(event) => Some(Symbol::EventField {
                event: event.clone(),
                field: name.name.clone(),
            }),
            Ty::Record(record) => Some(Symbol::RecordField {
                record: record.clone(),
                field: name.name.clone(),
            }),
            _ => None,
        };
        let ty = self.schema.member(base, &name.name);
        if let (Some(symbol), Some(_)) = (symbol, &ty) {
            self.add(name, symbol, false);
        }
        ty.unwrap_or(Ty::Unknown)
    }

    fn test(&mut self, t: &TestDecl) {
        let test = t.name.value.clone();
        let contact = |n: &Ident| Symbol::TestContact {
            test: test.clone(),
            name: n.name.clone(),
        };
        for stmt in &t.statements {
            match &stmt.kind {
                TestStmtKind::Contact { name, fields } => {
                    self.add(name, contact(name), true);
                    for entry in fields {
                        match entry.key.name.as_str() {
                            "consents" | "tags" => {
                                if let ExprKind::List(items) = &entry.value.kind {
                                    for item in items {
                                        if let ExprKind::Name(n) = &item.kind {
                                            let symbol = if entry.key.name == "consents" {
                                                Symbol::Consent(n.name.clone())
                                            } else {
                                                Symbol::Tag(n.name.clone())
                                            };
                                            self.add(n, symbol, false);
                                        }
                                    }
                                }
                            }
                            _ => self.payload(&Ty::Contact, std::slice::from_ref(entry)),
                        }
                    }
                }
                TestStmtKind::Input {
                    contact: who,
                    action,
                    ..
                } => {
                    self.add(who, contact(who), false);
                    match action {
                        TestAction::Sends { event, payload } => {
                            self.event(event);
                            if let Some(entries) = payload {
                                self.payload(&Ty::Event(event.name.clone()), entries);
                            }
                        }
                        TestAction::Updates(entries) => self.payload(&Ty::Contact, entries),
                        TestAction::Opens(step) | TestAction::Clicks { step, .. } => {
                            self.step_ref(step)
                        }
                        TestAction::Grants(c) => {
                            self.add(c, Symbol::Consent(c.name.clone()), false)
                        }
                        TestAction::Unsubscribes(_) | TestAction::Visits(_) => {}
                    }
                }
                TestStmtKind::Expect { expectation, .. } => {
                    let who = match expectation {
                        Expectation::Send { what, contact, .. } => {
                            for t in what.iter().flat_map(|(_, templates)| templates) {
                                self.add(t, Symbol::Template(t.name.clone()), false);
                            }
                            contact
                        }
                        Expectation::Split { step, contact, .. }
                        | Expectation::Skip { step, contact, .. }
                        | Expectation::Defer { step, contact, .. } => {
                            self.step_ref(step);
                            contact
                        }
                        Expectation::Tag { tag, contact, .. } => {
                            self.add(tag, Symbol::Tag(tag.name.clone()), false);
                            contact
                        }
                        Expectation::Score { score, contact, .. } => {
                            self.add(score, Symbol::Score(score.name.clone()), false);
                            contact
                        }
                        Expectation::Goal {
                            journey, contact, ..
                        }
                        | Expectation::Exit {
                            journey, contact, ..
                        }
                        | Expectation::Enter {
                            journey, contact, ..
                        } => {
                            self.add(journey, Symbol::Journey(journey.name.clone()), false);
                            contact
                        }
                        Expectation::Nothing { contact, .. } => contact,
                    };
                    self.add(who, contact(who), false);
                }
            }
        }
    }

    fn step_ref(&mut self, step: &StepRef) {
        let journey = match &step.journey {
            Some(j) => {
                self.add(j, Symbol::Journey(j.name.clone()), false);
                j.name.clone()
            }
            None => String::new(),
        };
        self.label(&journey, &step.step, false);
    }

    /// Keys of a payload object are fields of `owner`; nested objects are records.
    fn payload(&mut self, owner: &Ty, entries: &[ObjectEntry]) {
        for entry in entries {
            let field_ty = self.member(owner, &entry.key);
            match (field_ty.required(), &entry.value.kind) {
                (Ty::Record(_), ExprKind::Object(inner)) => self.payload(&field_ty, inner),
                (Ty::List(item), ExprKind::List(values)) => {
                    for v in values {
                        if let ExprKind::Object(inner) = &v.kind {
                            self.payload(item, inner);
                        }
                    }
                }
                _ => {
                    self.expr(&entry.value, &Scope::default());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_compiler::db::Database;
    use std::collections::BTreeMap;

    fn occurrences(src: &str) -> Vec<(String, Symbol, bool)> {
        let db = Database::default();
        let file = SourceFile::new(&db, "a.cairn".into(), src.to_string());
        let project = ProjectInput::new(&db, vec![file], BTreeMap::new(), None);
        file_occurrences(&db, project, file)
            .iter()
            .map(|o| {
                (
                    src[o.span.start..o.span.end].to_string(),
                    o.symbol.clone(),
                    o.def,
                )
            })
            .collect()
    }

    #[test]
    fn resolves_bindings_fields_and_labels() {
        let src = "contact { email email?, city string? }\n\
            event cart_updated { value money }\n\
            template t email { subject \"x\" }\n\
            journey j {\n  when cart_updated as cart where value > 5 EUR\n  \
            remind: send email t\n  if not opened(remind) and cart.value > 1 EUR and contact.city is set { exit }\n}\n";
        let found = occurrences(src);
        let has = |text: &str, symbol: Symbol, def: bool| {
            assert!(
                found.contains(&(text.to_string(), symbol.clone(), def)),
                "{text} {symbol:?} {def} in {found:#?}"
            );
        };
        let field = |f: &str| Symbol::EventField {
            event: "cart_updated".into(),
            field: f.into(),
        };
        has("value", field("value"), true);
        has("value", field("value"), false);
        has(
            "cart",
            Symbol::Binding {
                journey: "j".into(),
                name: "cart".into(),
            },
            true,
        );
        has(
            "cart",
            Symbol::Binding {
                journey: "j".into(),
                name: "cart".into(),
            },
            false,
        );
        has(
            "remind",
            Symbol::Label {
                journey: "j".into(),
                label: "remind".into(),
            },
            false,
        );
        has("city", Symbol::ContactField("city".into()), false);
        has("t", Symbol::Template("t".into()), false);
        has("opened", Symbol::Function("opened".into()), false);
    }
}
