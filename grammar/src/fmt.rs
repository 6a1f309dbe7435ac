//! The canonical layout of a `.cairn` file.
//!
//! The output is a function of the syntax tree and the comments alone, so formatting is
//! idempotent. Comments stay where they were relative to the lines around them: a
//! comment on its own line stays on its own line above the next statement, a comment
//! after a statement stays after it. Blank lines between statements are kept (several
//! become one); two-space indentation; one statement a line; short bodies inline.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::parse::parse;

/// Lines longer than this are split where the layout allows it.
const WIDTH: usize = 100;
const INDENT: &str = "  ";

/// A file that does not parse is not formatted: its diagnostics say why.
#[derive(Debug, Clone)]
pub struct FormatError {
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the file has syntax errors and was not formatted")
    }
}

impl std::error::Error for FormatError {}

pub fn format(src: &str) -> Result<String, FormatError> {
    let parsed = parse(src);
    if parsed.has_errors() {
        return Err(FormatError {
            diagnostics: parsed.diagnostics,
        });
    }
    Ok(format_file(src, &parsed.file))
}

/// Formats an already parsed, error-free file.
pub fn format_file(src: &str, file: &SourceFile) -> String {
    let mut p = Printer {
        src,
        comments: &file.comments,
        next_comment: 0,
        out: String::with_capacity(src.len() + src.len() / 8),
        depth: 0,
        last_end: 0,
        block_start: true,
        base: 0,
    };
    for item in &file.items {
        p.base = 0;
        p.line(item.span, |p| {
            p.base = item.span.start;
            p.item(item);
        });
    }
    p.comments_before(usize::MAX);
    while p.out.ends_with("\n\n") {
        p.out.pop();
    }
    p.out
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    next_comment: usize,
    out: String,
    depth: usize,
    /// End of the last source element written, for blank-line detection.
    last_end: usize,
    /// Nothing written yet in the current block: no blank line goes here.
    block_start: bool,
    /// Start of the item being written: spans inside an item are relative to it.
    base: usize,
}

impl Printer<'_> {
    // -------------------------------------------------------------- layout primitives

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    fn column(&self) -> usize {
        self.out.len() - self.out.rfind('\n').map_or(0, |i| i + 1)
    }

    fn fits(&self, text: &str) -> bool {
        !text.contains('\n') && self.column() + text.len() <= WIDTH
    }

    fn blank_line_before(&mut self, start: usize) {
        if !self.block_start
            && start > self.last_end
            && has_blank_line(&self.src[self.last_end..start])
        {
            self.out.push('\n');
        }
    }

    fn has_comments_within(&self, span: Span) -> bool {
        let span = span.shift(self.base);
        self.comments[self.next_comment..]
            .iter()
            .take_while(|c| c.span.start < span.end)
            .any(|c| c.span.start >= span.start)
    }

    /// Writes the comments that start before `pos`, each on its own line.
    fn comments_before(&mut self, pos: usize) {
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.span.start >= pos {
                break;
            }
            self.next_comment += 1;
            self.blank_line_before(c.span.start);
            self.indent();
            self.out.push_str(c.text.trim_end());
            self.out.push('\n');
            self.last_end = c.span.end;
            self.block_start = false;
        }
    }

    /// One line-level node: comments above it, the node, a comment after it on the
    /// same source line, then any comment from inside the node the layout had no
    /// place for.
    fn line(&mut self, span: Span, write: impl FnOnce(&mut Self)) {
        let span = span.shift(self.base);
        self.comments_before(span.start);
        self.blank_line_before(span.start);
        self.indent();
        self.block_start = false;
        write(self);
        let inner_start = self.next_comment;
        while self
            .comments
            .get(self.next_comment)
            .is_some_and(|c| c.span.start < span.end)
        {
            self.next_comment += 1;
        }
        let inner = inner_start..self.next_comment;
        if let Some(c) = self.comments.get(self.next_comment)
            && !self.src[span.end..c.span.start].contains('\n')
        {
            self.out.push(' ');
            self.out.push_str(c.text.trim_end());
            self.next_comment += 1;
            self.last_end = c.span.end;
        } else {
            self.last_end = span.end;
        }
        self.out.push('\n');
        for c in &self.comments[inner] {
            self.indent();
            self.out.push_str(c.text.trim_end());
            self.out.push('\n');
        }
    }

    /// `{`, the children each on its own line, `}` at the block's end.
    /// `close` is the item-relative offset of the closing `}`.
    fn block<T>(&mut self, children: &[T], close: usize, mut child: impl FnMut(&mut Self, &T)) {
        let close = close + self.base;
        self.out.push_str("{\n");
        self.depth += 1;
        self.block_start = true;
        for c in children {
            child(self, c);
        }
        self.comments_before(close);
        self.depth -= 1;
        self.indent();
        self.out.push('}');
        self.block_start = false;
    }

    // -------------------------------------------------------------- items

    fn item(&mut self, item: &Item) {
        let whole = Span::new(0, item.span.len());
        let close = whole.end.saturating_sub(1);
        match &item.kind {
            ItemKind::Contact(schema) => {
                self.out.push_str("contact ");
                self.fields_block(&schema.fields, whole, false);
            }
            ItemKind::Consent(c) => {
                self.out
                    .push_str(&format!("consent {} for {}", c.name.name, c.channel));
            }
            ItemKind::Record(r) => {
                self.out.push_str(&format!("record {} ", r.name.name));
                self.fields_block(&r.fields, whole, true);
            }
            ItemKind::Event(e) => {
                self.out.push_str(&format!("event {}", e.name.name));
                if let Some(wire) = &e.wire_name {
                    self.out.push(' ');
                    self.out.push_str(&string(wire));
                }
                if !e.fields.is_empty() {
                    self.out.push(' ');
                    self.fields_block(&e.fields, whole, true);
                }
            }
            ItemKind::Tag(t) => {
                self.out.push_str(&format!("tag {}", t.name.name));
                if let Some(d) = &t.description {
                    self.out.push(' ');
                    self.out.push_str(&string(d));
                }
            }
            ItemKind::Segment(s) => {
                self.out.push_str(&format!("segment {} ", s.name.name));
                if let Some(d) = &s.description {
                    self.out.push_str(&string(d));
                    self.out.push(' ');
                }
                let body = expr(&s.condition);
                let inline = format!("{{ {body} }}");
                if self.fits(&inline) && !self.has_comments_within(whole) {
                    self.out.push_str(&inline);
                } else {
                    self.out.push_str("{\n");
                    self.depth += 1;
                    self.block_start = true;
                    self.line(s.condition.span, |p| p.out.push_str(&body));
                    self.comments_before(close + self.base);
                    self.depth -= 1;
                    self.indent();
                    self.out.push('}');
                }
            }
            ItemKind::Score(s) => {
                self.out.push_str(&format!("score {} ", s.name.name));
                if let Some(d) = &s.description {
                    self.out.push_str(&string(d));
                    self.out.push(' ');
                }
                self.block(&s.rules, close, |p, rule| {
                    p.line(rule.span, |p| p.score_rule(rule));
                });
            }
            ItemKind::Template(t) => {
                self.out
                    .push_str(&format!("template {} {}", t.name.name, t.channel));
                if t.transactional {
                    self.out.push_str(" transactional");
                }
                self.out.push(' ');
                let inline = match t.props.as_slice() {
                    [one] if !one.value.triple => Some(format!("{{ {} }}", template_prop(one))),
                    _ => None,
                };
                match inline {
                    Some(text) if self.fits(&text) && !self.has_comments_within(whole) => {
                        self.out.push_str(&text)
                    }
                    _ => self.block(&t.props, close, |p, prop| {
                        p.line(prop.span, |p| p.out.push_str(&template_prop(prop)));
                    }),
                }
            }
            ItemKind::QuietHours(q) => self.out.push_str(&quiet_hours(q)),
            ItemKind::FrequencyCap(c) => self.out.push_str(&frequency_cap(c)),
            ItemKind::Journey(j) => {
                self.out.push_str(&format!("journey {} ", j.name.name));
                if let Some(d) = &j.description {
                    self.out.push_str(&string(d));
                    self.out.push(' ');
                }
                self.block(&j.members, close, |p, member| {
                    p.line(member.span, |p| p.member(member));
                });
            }
            ItemKind::Test(t) => {
                self.out.push_str(&format!("test {} ", string(&t.name)));
                self.block(&t.statements, close, |p, stmt| {
                    p.line(stmt.span, |p| p.test_stmt(stmt));
                });
            }
            // Files with errors are never formatted; keep the text if one slips by.
            ItemKind::Error => self
                .out
                .push_str(self.src[item.span.start..item.span.end].trim_end()),
        }
    }

    /// Record and event fields go on one line when short; the contact schema and long
    /// field lists get one field a line with the types aligned.
    fn fields_block(&mut self, fields: &[Field], container: Span, may_inline: bool) {
        let close = container.end - 1;
        if may_inline {
            let inline = format!(
                "{{ {} }}",
                fields
                    .iter()
                    .map(|f| field(f, 0))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if fields.len() <= 4 && self.fits(&inline) && !self.has_comments_within(container) {
                self.out.push_str(&inline);
                return;
            }
        }
        let width = fields.iter().map(|f| f.name.name.len()).max().unwrap_or(0);
        self.block(fields, close, |p, f| {
            p.line(f.span, |p| p.out.push_str(&field(f, width)))
        });
    }

    fn score_rule(&mut self, rule: &ScoreRule) {
        match &rule.kind {
            ScoreRuleKind::On {
                points,
                event,
                filter,
            } => {
                self.out
                    .push_str(&format!("{} on {}", signed(points), event.name));
                if let Some(f) = filter {
                    self.out.push_str(&format!(" where {}", expr(f)));
                }
            }
            ScoreRuleKind::Decay { percent, every } => {
                self.out
                    .push_str(&format!("decay {}% every {every}", percent.value.text));
            }
        }
    }

    // -------------------------------------------------------------- journeys

    fn member(&mut self, member: &Member) {
        match &member.kind {
            MemberKind::Trigger(t) => {
                let text = trigger(t);
                self.out.push_str(&format!("when {text}"));
            }
            MemberKind::Audience(e) => self.out.push_str(&format!("audience {}", expr(e))),
            MemberKind::Reenter(r) => self.out.push_str(&match r {
                Reenter::After(d) => format!("reenter after {d}"),
                Reenter::Always => "reenter always".to_string(),
                Reenter::Never => "reenter never".to_string(),
            }),
            MemberKind::Goal(g) => {
                self.out.push_str(&format!("goal {}", g.event.name));
                if let Some(f) = &g.filter {
                    self.out.push_str(&format!(" where {}", expr(f)));
                }
                if let Some(w) = &g.within {
                    self.out.push_str(&format!(" within {w}"));
                }
            }
            MemberKind::Exit(x) => {
                self.out.push_str(&format!("exit when {}", x.event.name));
                if let Some(f) = &x.filter {
                    self.out.push_str(&format!(" where {}", expr(f)));
                }
            }
            MemberKind::QuietHours(q) => self.out.push_str(&quiet_hours(q)),
            MemberKind::FrequencyCap(c) => self.out.push_str(&frequency_cap(c)),
            MemberKind::Migrate { from, to } => {
                let from = match from {
                    MigrateFrom::Label(label) => label.name.clone(),
                    // A step ID never spans lines: written plainly, whatever the source.
                    MigrateFrom::Id(id) => string(&StringLit {
                        triple: false,
                        ..id.clone()
                    }),
                };
                self.out.push_str(&format!("migrate {from} -> {}", to.name));
            }
            MemberKind::Drain => self.out.push_str("drain"),
            MemberKind::Step(step) => self.step(step),
        }
    }

    fn step(&mut self, step: &Step) {
        if let Some(label) = &step.label {
            self.out.push_str(&label.name);
            self.out.push_str(": ");
        }
        self.step_kind(&step.kind, step.span);
    }

    fn step_kind(&mut self, kind: &StepKind, span: Span) {
        match kind {
            StepKind::Send(send) => {
                match &send.target {
                    SendTarget::Channel { channel, template } => {
                        self.out
                            .push_str(&format!("send {channel} {}", template.name));
                    }
                    SendTarget::Preferred(templates) => {
                        let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
                        self.out.push_str(&format!(
                            "send via preferred channel [{}]",
                            names.join(", ")
                        ));
                    }
                }
                if send.best_time {
                    self.out.push_str(" at best time");
                }
            }
            StepKind::Post { url, body } => {
                self.out.push_str(&format!("post {}", string(url)));
                if let Some(entries) = body {
                    self.out.push(' ');
                    self.object(entries, span);
                }
            }
            StepKind::Wait(d) => self.out.push_str(&format!("wait {d}")),
            StepKind::WaitUntil { from, to } => {
                self.out.push_str(&format!("wait until {from}"));
                if let Some(to) = to {
                    self.out.push_str(&format!("..{to}"));
                }
                self.out.push_str(" local");
            }
            StepKind::WaitFor(w) => {
                self.out.push_str(&format!("wait for {}", w.event.name));
                if let Some(b) = &w.binding {
                    self.out.push_str(&format!(" as {}", b.name));
                }
                if let Some(f) = &w.filter {
                    self.out.push_str(&format!(" where {}", expr(f)));
                }
                if let Some(d) = &w.within {
                    self.out.push_str(&format!(" within {d}"));
                }
                self.out.push(' ');
                self.steps_block(&w.then, false);
                if let Some(t) = &w.timeout {
                    self.out.push_str(" timeout ");
                    self.steps_block(t, false);
                }
            }
            StepKind::If(i) => self.if_step(i),
            StepKind::Split(arms) => {
                self.out.push_str("split ");
                self.block(arms, span.end - 1, |p, arm| {
                    p.line(arm.span, |p| {
                        p.out
                            .push_str(&format!("{}% {}: ", arm.weight.value.text, arm.name.name));
                        match &arm.body {
                            ArmBody::Step(s) => p.step(s),
                            ArmBody::Block(b) => p.steps_block(b, false),
                        }
                    });
                });
            }
            StepKind::Tag { add, tag } => {
                self.out.push_str(&format!(
                    "tag {} {}",
                    if *add { "add" } else { "remove" },
                    tag.name
                ));
            }
            StepKind::Score { score, delta } => {
                self.out
                    .push_str(&format!("score {} {}", score.name, signed(delta)))
            }
            StepKind::Set { target, value } => {
                self.out
                    .push_str(&format!("set {} = {}", target.dotted(), expr(value)));
            }
            StepKind::Retry { target, times } => {
                self.out
                    .push_str(&format!("retry {} at most {times} times", target.name));
            }
            StepKind::Goal => self.out.push_str("goal"),
            StepKind::Exit => self.out.push_str("exit"),
        }
    }

    fn if_step(&mut self, step: &IfStep) {
        let inline = self.inline_if(step);
        self.out.push_str(&format!("if {} ", expr(&step.condition)));
        self.steps_block(&step.then, inline);
        match &step.otherwise {
            None => {}
            Some(Else::If(next, _)) => {
                self.out.push_str(" else ");
                self.if_step(next);
            }
            Some(Else::Block(b)) => {
                self.out.push_str(" else ");
                self.steps_block(b, inline);
            }
        }
    }

    /// An `if` is written on one line when each of its blocks holds one simple step,
    /// there are no comments inside, and the line fits.
    fn inline_if(&self, step: &IfStep) -> bool {
        let Some(then) = inline_block(&step.then) else {
            return false;
        };
        let mut text = format!("if {} {then}", expr(&step.condition));
        let mut blocks = vec![step.then.span];
        match &step.otherwise {
            None => {}
            Some(Else::Block(b)) => {
                let Some(other) = inline_block(b) else {
                    return false;
                };
                text.push_str(" else ");
                text.push_str(&other);
                blocks.push(b.span);
            }
            Some(Else::If(..)) => return false,
        }
        blocks.iter().all(|span| !self.has_comments_within(*span)) && self.fits(&text)
    }

    fn steps_block(&mut self, block: &Block, inline: bool) {
        if inline && let Some(text) = inline_block(block) {
            self.out.push_str(&text);
            return;
        }
        self.block(&block.steps, block.span.end - 1, |p, s| {
            p.line(s.span, |p| p.step(s))
        });
    }

    // -------------------------------------------------------------- tests

    fn test_stmt(&mut self, stmt: &TestStmt) {
        match &stmt.kind {
            TestStmtKind::Contact { name, fields } => {
                self.out.push_str(&format!("contact {} ", name.name));
                self.object(fields, stmt.span);
            }
            TestStmtKind::Input {
                at,
                contact,
                action,
            } => {
                self.out
                    .push_str(&format!("at {} {} ", at.text, contact.name));
                match action {
                    TestAction::Sends { event, payload } => {
                        self.out.push_str(&format!("sends {}", event.name));
                        if let Some(entries) = payload {
                            self.out.push(' ');
                            self.object(entries, stmt.span);
                        }
                    }
                    TestAction::Updates(entries) => {
                        self.out.push_str("updates ");
                        self.object(entries, stmt.span);
                    }
                    TestAction::Opens(step) => {
                        self.out.push_str(&format!("opens {}", step_ref(step)))
                    }
                    TestAction::Clicks { step, url } => {
                        self.out.push_str(&format!("clicks {}", step_ref(step)));
                        if let Some(url) = url {
                            self.out.push_str(&format!(" {}", string(url)));
                        }
                    }
                    TestAction::Unsubscribes(UnsubscribeScope::All) => {
                        self.out.push_str("unsubscribes")
                    }
                    TestAction::Unsubscribes(UnsubscribeScope::Channel(c)) => {
                        self.out.push_str(&format!("unsubscribes from {c}"));
                    }
                    TestAction::Visits(url) => {
                        self.out.push_str(&format!("visits {}", string(url)))
                    }
                    TestAction::Grants(consent) => {
                        self.out.push_str(&format!("grants {}", consent.name))
                    }
                }
            }
            TestStmtKind::Expect {
                negated,
                expectation,
            } => {
                self.out.push_str("expect ");
                if *negated {
                    self.out.push_str("no ");
                }
                self.out.push_str(&expectation_text(expectation));
            }
        }
    }

    /// An object literal: inline when it fits, else one entry a line.
    fn object(&mut self, entries: &[ObjectEntry], container: Span) {
        let close = container.end - 1;
        let inline = object_inline(entries);
        if self.fits(&inline) && !self.has_comments_within(container) {
            self.out.push_str(&inline);
            return;
        }
        self.block(entries, close, |p, e| {
            p.line(e.span, |p| {
                p.out
                    .push_str(&format!("{}: {},", e.key.name, expr(&e.value)))
            });
        });
    }
}

fn has_blank_line(between: &str) -> bool {
    let mut lines = between.split('\n');
    lines.next();
    let mut inner: Vec<&str> = lines.collect();
    inner.pop();
    inner.iter().any(|l| l.trim().is_empty())
}

// ------------------------------------------------------------------ pure renderers

fn inline_block(block: &Block) -> Option<String> {
    match block.steps.as_slice() {
        [] => Some("{}".to_string()),
        [step] if step.label.is_none() && is_simple(&step.kind) => {
            let mut p = Printer {
                src: "",
                comments: &[],
                next_comment: 0,
                out: String::new(),
                depth: 0,
                last_end: 0,
                block_start: true,
                base: 0,
            };
            p.step(step);
            Some(format!("{{ {} }}", p.out))
        }
        _ => None,
    }
}

fn is_simple(kind: &StepKind) -> bool {
    !matches!(
        kind,
        StepKind::If(_)
            | StepKind::Split(_)
            | StepKind::WaitFor(_)
            | StepKind::Post { body: Some(_), .. }
    )
}

fn field(f: &Field, width: usize) -> String {
    let mut s = format!("{:width$} {}", f.name.name, type_expr(&f.ty));
    if let Some(d) = &f.default {
        s.push_str(&format!(" = {}", expr(d)));
    }
    s
}

fn type_expr(t: &TypeExpr) -> String {
    let base = match &t.kind {
        TypeKind::Named(n) => n.name.clone(),
        TypeKind::Enum(variants) => {
            let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
            format!("enum {{ {} }}", names.join(", "))
        }
        TypeKind::List(inner) => format!("list<{}>", type_expr(inner)),
    };
    if t.optional { format!("{base}?") } else { base }
}

fn template_prop(prop: &TemplateProp) -> String {
    format!(
        "{}{} {}",
        prop.name.name,
        if prop.from_file { " file" } else { "" },
        string(&prop.value)
    )
}

fn quiet_hours(q: &QuietHours) -> String {
    format!("quiet hours {}..{} local", q.from, q.to)
}

fn frequency_cap(c: &FrequencyCap) -> String {
    let scope = match c.scope {
        CapScope::Marketing => "marketing".to_string(),
        CapScope::Channel(ch) => ch.to_string(),
    };
    let action = match c.action {
        CapAction::Defer => "",
        CapAction::Skip => " skip",
    };
    format!("frequency cap {} {scope} per {}{action}", c.limit, c.per)
}

fn trigger(t: &Trigger) -> String {
    match t {
        Trigger::Event {
            event,
            binding,
            filter,
            unless,
        } => {
            let mut s = event.name.clone();
            if let Some(b) = binding {
                s.push_str(&format!(" as {}", b.name));
            }
            if let Some(f) = filter {
                s.push_str(&format!(" where {}", expr(f)));
            }
            if let Some(u) = unless {
                s.push_str(&format!(" unless {}", u.event.name));
                if let Some(f) = &u.filter {
                    s.push_str(&format!(" where {}", expr(f)));
                }
                s.push_str(&format!(" within {}", u.within));
            }
            s
        }
        Trigger::Anniversary { field, at } => {
            format!("anniversary of {} at {at} local", field.dotted())
        }
        Trigger::Inactive { event, for_ } => format!("no {} for {for_}", event.name),
        Trigger::Segment { enters, segment } => {
            format!(
                "{} segment {}",
                if *enters { "enters" } else { "leaves" },
                segment.name
            )
        }
        Trigger::Tag { tag, added } => format!(
            "tag {} {}",
            tag.name,
            if *added { "added" } else { "removed" }
        ),
        Trigger::Page { pattern } => format!("page {} visited", string(pattern)),
        Trigger::ContactCreated => "contact created".to_string(),
        Trigger::ConsentGranted { consent } => format!("consent {} granted", consent.name),
    }
}

fn expectation_text(e: &Expectation) -> String {
    let time = |t: &Option<TimeClause>| match t {
        Some(TimeClause { until: true, at }) => format!(" until {}", at.text),
        Some(TimeClause { until: false, at }) => format!(" at {}", at.text),
        None => String::new(),
    };
    match e {
        Expectation::Send {
            what,
            contact,
            time: t,
        } => {
            let what = match what {
                None => String::new(),
                Some((channel, templates)) if templates.len() == 1 => {
                    format!("{channel} {} ", templates[0].name)
                }
                Some((channel, templates)) => {
                    let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
                    format!("{channel} ({}) ", names.join(" | "))
                }
            };
            format!("send {what}to {}{}", contact.name, time(t))
        }
        Expectation::Split {
            step,
            contact,
            arm,
            time: t,
        } => {
            let arm = arm
                .as_ref()
                .map(|a| format!(" arm {}", a.name))
                .unwrap_or_default();
            format!(
                "split {} for {}{arm}{}",
                step_ref(step),
                contact.name,
                time(t)
            )
        }
        Expectation::Tag {
            tag,
            added,
            contact,
            time: t,
        } => format!(
            "tag {} {} for {}{}",
            tag.name,
            if *added { "added" } else { "removed" },
            contact.name,
            time(t)
        ),
        Expectation::Score {
            score,
            contact,
            value,
            time: t,
        } => format!(
            "score {} for {} = {}{}",
            score.name,
            contact.name,
            value.text,
            time(t)
        ),
        Expectation::Goal {
            journey,
            contact,
            time: t,
        } => {
            format!("goal {} for {}{}", journey.name, contact.name, time(t))
        }
        Expectation::Exit {
            journey,
            contact,
            reason,
            time: t,
        } => {
            let reason = reason
                .as_ref()
                .map(|r| format!(" reason {}", r.name))
                .unwrap_or_default();
            format!(
                "exit {} for {}{reason}{}",
                journey.name,
                contact.name,
                time(t)
            )
        }
        Expectation::Skip {
            step,
            contact,
            reason,
            time: t,
        } => {
            let reason = reason
                .as_ref()
                .map(|r| format!(" reason {}", r.name))
                .unwrap_or_default();
            format!(
                "skip {} for {}{reason}{}",
                step_ref(step),
                contact.name,
                time(t)
            )
        }
        Expectation::Defer {
            step,
            contact,
            time: t,
        } => {
            format!("defer {} for {}{}", step_ref(step), contact.name, time(t))
        }
        Expectation::Enter {
            journey,
            contact,
            time: t,
        } => {
            format!("enter {} for {}{}", journey.name, contact.name, time(t))
        }
        Expectation::Nothing { contact, until } => {
            format!("nothing for {} until {}", contact.name, until.text)
        }
    }
}

fn step_ref(r: &StepRef) -> String {
    match &r.journey {
        Some(j) => format!("{}.{}", j.name, r.step.name),
        None => r.step.name.clone(),
    }
}

fn signed(n: &SignedNumber) -> String {
    format!("{}{}", if n.negative { '-' } else { '+' }, n.magnitude.text)
}

fn object_inline(entries: &[ObjectEntry]) -> String {
    if entries.is_empty() {
        return "{}".to_string();
    }
    let parts: Vec<String> = entries
        .iter()
        .map(|e| format!("{}: {}", e.key.name, expr(&e.value)))
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

/// An expression on one line. Parentheses are kept exactly where the source had them;
/// everything else follows from precedence, so the text parses back to the same tree.
pub fn expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e);
    out
}

fn write_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Name(n) => out.push_str(&n.name),
        ExprKind::Member(base, name) => {
            write_expr(out, base);
            out.push('.');
            out.push_str(&name.name);
        }
        ExprKind::Literal(l) => out.push_str(&literal(l)),
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item);
            }
            out.push(']');
        }
        ExprKind::Object(entries) => out.push_str(&object_inline(entries)),
        ExprKind::Call(call) => {
            out.push_str(&call.function.name);
            out.push('(');
            for (i, arg) in call.args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, &arg.value);
                if let Some(f) = &arg.filter {
                    out.push_str(" where ");
                    write_expr(out, f);
                }
                if let Some(w) = &arg.within {
                    out.push_str(&format!(" within {w}"));
                }
            }
            out.push(')');
        }
        ExprKind::Unary(UnaryOp::Not, inner) => {
            out.push_str("not ");
            write_expr(out, inner);
        }
        ExprKind::Unary(UnaryOp::Neg, inner) => {
            out.push('-');
            write_expr(out, inner);
        }
        ExprKind::Binary(op, lhs, rhs) => {
            write_expr(out, lhs);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            write_expr(out, rhs);
        }
        ExprKind::IsSet {
            expr: inner,
            negated,
        } => {
            write_expr(out, inner);
            out.push_str(if *negated { " is not set" } else { " is set" });
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            write_expr(out, inner);
            out.push(')');
        }
    }
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::Number(n) => n.text.clone(),
        Literal::Money(m) => format!("{} {}", m.amount.text, m.currency),
        Literal::Percent(p) => format!("{}%", p.value.text),
        Literal::Duration(d) => d.to_string(),
        Literal::String(s) => string(s),
        Literal::Bool(b) => b.to_string(),
        Literal::Date(d) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        Literal::DateTime(d) => d.text.clone(),
        Literal::Time(t) => t.to_string(),
    }
}

fn string(s: &StringLit) -> String {
    if s.triple {
        return format!("\"\"\"{}\"\"\"", s.value);
    }
    let mut out = String::with_capacity(s.value.len() + 2);
    out.push('"');
    for c in s.value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
