//! Journeys: the trigger, the options, and every step in order.

use super::Ctx;
use super::expr::{Scope, narrowed_by};
use crate::codes;
use crate::schema::Ty;
use crate::template::BUILTIN_VARIABLES;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{
    ArmBody, Block, Channel, Else, Ident, JourneyDecl, MemberKind, Reenter, SendTarget, Span, Step,
    StepKind, Trigger,
};
use std::collections::BTreeMap;

/// What the walk over a journey's steps knows so far.
struct Walk {
    /// Every label of the journey, for `retry` and duplicate checks.
    labels: BTreeMap<String, Span>,
    /// Labels on the path from the start to the current step: the ones `retry` may
    /// jump back to.
    enclosing: Vec<String>,
    goal_window: Option<(u64, Span)>,
    audience_consents: Vec<String>,
    has_audience: bool,
    warned_consent: Vec<Channel>,
}

impl Ctx<'_> {
    pub fn journey(&mut self, j: &JourneyDecl) {
        let mut scope = Scope {
            in_journey: true,
            ..Scope::default()
        };
        let mut seen_options: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut walk = Walk {
            labels: BTreeMap::new(),
            enclosing: Vec::new(),
            goal_window: None,
            audience_consents: Vec::new(),
            has_audience: false,
            warned_consent: Vec::new(),
        };
        let mut trigger_seen = false;
        // The trigger first, wherever it is written: its binding is visible to the
        // options and every step.
        for member in &j.members {
            if let MemberKind::Trigger(t) = &member.kind
                && !trigger_seen
            {
                trigger_seen = true;
                self.trigger(t, &mut scope);
            }
        }
        let mut trigger_count = 0;
        for member in &j.members {
            let option = match &member.kind {
                MemberKind::Trigger(_) => {
                    trigger_count += 1;
                    (trigger_count > 1).then_some("when")
                }
                MemberKind::Audience(e) => {
                    self.condition(e, &scope, "an audience");
                    walk.has_audience = true;
                    collect_consents(e, &mut walk.audience_consents);
                    // `audience true` says "everyone" on purpose: no consent warning.
                    if matches!(
                        e.kind,
                        cairn_grammar::ast::ExprKind::Literal(cairn_grammar::ast::Literal::Bool(
                            true
                        ))
                    ) {
                        walk.audience_consents.push("*".to_string());
                    }
                    Some("audience")
                }
                MemberKind::Reenter(r) => {
                    if let Reenter::After(d) = r
                        && d.value == 0
                    {
                        self.out.push(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                "`reenter after` needs a period longer than zero",
                            )
                            .with_label(d.span, "zero")
                            .with_help("write `reenter always` to let contacts re-enter at once"),
                        );
                    }
                    Some("reenter")
                }
                MemberKind::Goal(g) => {
                    if self.event_name(&g.event)
                        && let Some(f) = &g.filter
                    {
                        self.condition(
                            f,
                            &scope.with_event(&g.event.name),
                            "a goal's `where` condition",
                        );
                    }
                    if let Some(w) = &g.within {
                        walk.goal_window = w.exact_seconds().map(|s| (s, w.span));
                    }
                    Some("goal")
                }
                MemberKind::Exit(x) => {
                    if self.event_name(&x.event)
                        && let Some(f) = &x.filter
                    {
                        self.condition(
                            f,
                            &scope.with_event(&x.event.name),
                            "an exit's `where` condition",
                        );
                    }
                    None
                }
                MemberKind::QuietHours(q) => {
                    self.quiet_hours(q);
                    Some("quiet hours")
                }
                MemberKind::FrequencyCap(c) => {
                    // Several caps may apply (per channel, per window).
                    self.frequency_cap(c);
                    None
                }
                MemberKind::Migrate { .. } | MemberKind::Drain | MemberKind::Step(_) => None,
            };
            if option == Some("when") {
                self.out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_OPTION,
                        format!("journey `{}` has two triggers", j.name.name),
                    )
                    .with_label(member.span, "second `when`")
                    .with_help(
                        "a journey starts one way; make a second journey for the other trigger",
                    ),
                );
            } else if let Some(option) = option {
                if let Some(first) = seen_options.get(option) {
                    self.out.push(
                        Diagnostic::error(
                            codes::DUPLICATE_OPTION,
                            format!("journey `{}` has `{option}` twice", j.name.name),
                        )
                        .with_label(member.span, "second one")
                        .with_secondary(*first, "first one")
                        .with_help("a journey has one of each option; merge them"),
                    );
                } else {
                    seen_options.insert(option, member.span);
                }
            }
        }
        if !trigger_seen {
            self.out.push(
                Diagnostic::error(codes::NO_TRIGGER, format!("journey `{}` has no trigger", j.name.name))
                    .with_label(j.name.span, "never starts")
                    .with_help("start it with `when EVENT`, `when enters segment S`, `when contact created`, ..."),
            );
        }
        if !walk.has_audience {
            self.out.push(
                Diagnostic::warning(codes::NO_AUDIENCE, format!("journey `{}` has no audience", j.name.name))
                    .with_label(j.name.span, "every contact that triggers it enters")
                    .with_help("add `audience consented(email_marketing)` (or any condition); `audience true` means everyone"),
            );
        }
        let steps: Vec<&Step> = j
            .members
            .iter()
            .filter_map(|m| match &m.kind {
                MemberKind::Step(s) => Some(s),
                _ => None,
            })
            .collect();
        if steps.is_empty() {
            self.out.push(
                Diagnostic::error(
                    codes::EMPTY_JOURNEY,
                    format!("journey `{}` has no steps", j.name.name),
                )
                .with_label(j.name.span, "does nothing"),
            );
        }
        collect_labels(steps.iter().copied(), &mut walk.labels, &mut self.out);
        self.steps(&steps, &mut scope, &mut walk);
        for member in &j.members {
            if let MemberKind::Migrate { to, .. } = &member.kind
                && !walk.labels.contains_key(&to.name)
            {
                self.unknown_label(to, &walk.labels);
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
                if self.event_name(event) {
                    if let Some(f) = filter {
                        self.condition(
                            f,
                            &scope.with_event(&event.name),
                            "a trigger's `where` condition",
                        );
                    }
                    if let Some(b) = binding {
                        scope.bind(&b.name, Ty::Event(event.name.clone()));
                    }
                }
                if let Some(u) = unless {
                    if self.event_name(&u.event)
                        && let Some(f) = &u.filter
                    {
                        self.condition(
                            f,
                            &scope.with_event(&u.event.name),
                            "an `unless` condition",
                        );
                    }
                    if u.within.value == 0 {
                        self.out.push(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                "`unless ... within` needs a window longer than zero",
                            )
                            .with_label(u.within.span, "zero"),
                        );
                    }
                }
            }
            Trigger::Anniversary { field, .. } => {
                let ok = field.segments.len() == 2 && field.segments[0].name == "contact";
                let ty = field
                    .segments
                    .get(1)
                    .and_then(|f| self.schema.contact.get(&f.name))
                    .cloned();
                match (ok, ty) {
                    (true, Some(ty)) if matches!(ty.required(), Ty::Date | Ty::DateTime) => {}
                    (true, Some(ty)) => self.out.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!(
                                "an anniversary needs a date field, `{}` is {ty}",
                                field.dotted()
                            ),
                        )
                        .with_label(field.span, "not a date"),
                    ),
                    (true, None) => {
                        if let Some(name) = field.segments.get(1) {
                            let fields: Vec<String> = self.schema.contact.keys().cloned().collect();
                            self.require(
                                codes::UNKNOWN_FIELD,
                                "contact field",
                                name,
                                false,
                                fields,
                            );
                        }
                    }
                    (false, _) => self.out.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            "an anniversary is of a contact field",
                        )
                        .with_label(field.span, "write `contact.FIELD`"),
                    ),
                }
            }
            Trigger::Inactive { event, for_ } => {
                self.event_name(event);
                if for_.value == 0 {
                    self.out.push(
                        Diagnostic::error(
                            codes::BAD_VALUE,
                            "inactivity needs a period longer than zero",
                        )
                        .with_label(for_.span, "zero"),
                    );
                }
            }
            Trigger::Segment { segment, .. } => {
                self.segment_name(segment);
            }
            Trigger::Tag { tag, .. } => {
                self.tag_name(tag);
            }
            Trigger::Page { pattern } => {
                if !(pattern.value.starts_with('/')
                    || pattern.value.starts_with("http://")
                    || pattern.value.starts_with("https://"))
                {
                    self.out.push(
                        Diagnostic::error(codes::BAD_VALUE, "a page pattern is a path or a URL")
                            .with_label(pattern.span, "should start with `/` or `https://`")
                            .with_help("for example `\"/pricing*\"`; `*` matches any characters"),
                    );
                }
            }
            Trigger::ContactCreated => {}
            Trigger::ConsentGranted { consent } => {
                self.consent_name(consent);
            }
        }
    }

    fn steps(&mut self, steps: &[&Step], scope: &mut Scope, walk: &mut Walk) {
        let depth = walk.enclosing.len();
        let mut ended: Option<&Step> = None;
        for step in steps {
            if let Some(end) = ended {
                self.out.push(
                    Diagnostic::error(codes::UNREACHABLE, "this step can never run")
                        .with_label(step.span, "unreachable")
                        .with_secondary(
                            end.span,
                            format!("the run ends at this `{}`", end.kind.keyword()),
                        )
                        .with_help("move the step before it, or remove it"),
                );
                break;
            }
            // A step's own label encloses its nested blocks: a `timeout` may retry it.
            if let Some(label) = &step.label {
                walk.enclosing.push(label.name.clone());
            }
            self.step(step, scope, walk);
            if let Some(label) = &step.label {
                scope
                    .sends_before
                    .insert(label.name.clone(), sent_channel(&step.kind));
            }
            if ends_run(step) {
                ended = Some(step);
            }
        }
        walk.enclosing.truncate(depth);
    }

    fn block(&mut self, block: &Block, scope: &Scope, walk: &mut Walk) {
        let steps: Vec<&Step> = block.steps.iter().collect();
        let mut inner = scope.clone();
        self.steps(&steps, &mut inner, walk);
    }

    fn step(&mut self, step: &Step, scope: &mut Scope, walk: &mut Walk) {
        match &step.kind {
            StepKind::Send(send) => {
                match &send.target {
                    SendTarget::Channel { channel, template } => {
                        self.send(*channel, template, step.span, scope, walk)
                    }
                    SendTarget::Preferred(templates) => {
                        let mut channels: BTreeMap<Channel, &Ident> = BTreeMap::new();
                        for t in templates {
                            let Some(channel) =
                                self.schema.templates.get(&t.name).and_then(|i| i.channel)
                            else {
                                self.unknown_template(t);
                                continue;
                            };
                            if let Some(first) = channels.insert(channel, t) {
                                self.out.push(
                                    Diagnostic::error(
                                        codes::CHANNEL_MISMATCH,
                                        format!(
                                            "two {channel} templates for one preferred-channel send"
                                        ),
                                    )
                                    .with_label(t.span, "second one")
                                    .with_secondary(first.span, "first one")
                                    .with_help("give one template per channel"),
                                );
                            }
                            self.send(channel, t, step.span, scope, walk);
                        }
                        if templates.len() < 2 {
                            self.out.push(
                            Diagnostic::error(codes::BAD_ARGUMENTS, "a preferred-channel send needs templates for two channels or more")
                                .with_label(step.span, "one channel only")
                                .with_help("with one channel, write `send email NAME`"),
                        );
                        }
                    }
                }
            }
            StepKind::Post { url, body } => {
                if !(url.value.starts_with("https://") || url.value.starts_with("http://")) {
                    self.out.push(
                        Diagnostic::error(codes::BAD_VALUE, "a webhook URL must be http or https")
                            .with_label(url.span, "not an http(s) URL"),
                    );
                }
                if let Some(entries) = body {
                    self.duplicate_keys(entries);
                    for e in entries {
                        self.expr(&e.value, scope);
                    }
                }
            }
            StepKind::Wait(d) => {
                if d.value == 0 {
                    self.out.push(
                        Diagnostic::error(codes::BAD_VALUE, "a wait of zero does nothing")
                            .with_label(d.span, "zero"),
                    );
                }
                if let (Some(seconds), Some((goal, goal_span))) =
                    (d.exact_seconds(), walk.goal_window)
                    && seconds > goal
                {
                    self.out.push(
                        Diagnostic::warning(
                            codes::WAIT_PAST_GOAL,
                            format!("this wait is longer than the goal window ({d})"),
                        )
                        .with_label(d.span, "longer than the goal window")
                        .with_secondary(goal_span, "goal window")
                        .with_help(
                            "the steps after it run only for contacts who can no longer convert",
                        ),
                    );
                }
            }
            StepKind::WaitUntil { from, to } => {
                if to.is_some_and(|to| (to.hour, to.minute) == (from.hour, from.minute)) {
                    self.out.push(
                        Diagnostic::warning(
                            codes::EMPTY_WINDOW,
                            "a window from a time to the same time is empty",
                        )
                        .with_label(from.span, "empty window"),
                    );
                }
            }
            StepKind::WaitFor(w) => {
                let mut inner = scope.clone();
                if self.event_name(&w.event) {
                    if let Some(f) = &w.filter {
                        self.condition(
                            f,
                            &scope.with_event(&w.event.name),
                            "a `wait for` condition",
                        );
                    }
                    if let Some(b) = &w.binding {
                        inner.bind(&b.name, Ty::Event(w.event.name.clone()));
                    }
                }
                if w.within.is_none() || w.timeout.is_none() {
                    let missing = match (w.within.is_none(), w.timeout.is_none()) {
                        (true, true) => "`within` and a `timeout` branch",
                        (true, false) => "`within DURATION`",
                        _ => "a `timeout { ... }` branch",
                    };
                    self.out.push(
                        Diagnostic::error(
                            codes::WAIT_FOR_TIMEOUT,
                            format!("`wait for {}` has no {missing}", w.event.name),
                        )
                        .with_label(w.event.span, "could wait forever")
                        .with_help("write `wait for EVENT within 14d { ... } timeout { ... }`"),
                    );
                }
                self.block(&w.then, &inner, walk);
                if let Some(t) = &w.timeout {
                    self.block(t, scope, walk);
                }
            }
            StepKind::If(i) => self.if_step(i, scope, walk),
            StepKind::Split(arms) => {
                let mut total = Decimal::default();
                let mut names: BTreeMap<&str, Span> = BTreeMap::new();
                for arm in arms {
                    total = total.add(&arm.weight.value.text);
                    if let Some(first) = names.insert(&arm.name.name, arm.name.span) {
                        self.out.push(
                            Diagnostic::error(
                                codes::DUPLICATE_LABEL,
                                format!("two arms named `{}`", arm.name.name),
                            )
                            .with_label(arm.name.span, "second one")
                            .with_secondary(first, "first one"),
                        );
                    }
                    match &arm.body {
                        ArmBody::Step(s) => {
                            let mut inner = scope.clone();
                            self.steps(&[s.as_ref()], &mut inner, walk);
                        }
                        ArmBody::Block(b) => self.block(b, scope, walk),
                    }
                }
                if !total.is_hundred() {
                    self.out.push(
                        Diagnostic::error(
                            codes::SPLIT_WEIGHTS,
                            format!("split weights add up to {}%, not 100%", total.text()),
                        )
                        .with_label(step.span, "weights must add up to 100%")
                        .with_help("adjust the percentages of the arms"),
                    );
                }
            }
            StepKind::Tag { tag, .. } => {
                self.tag_name(tag);
            }
            StepKind::Score { score, .. } => {
                self.score_name(score);
            }
            StepKind::Set { target, value } => {
                let value_ty = self.expr(value, scope);
                if target.segments.len() != 2 || target.segments[0].name != "contact" {
                    self.out.push(
                        Diagnostic::error(codes::TYPE_MISMATCH, "`set` changes a contact field")
                            .with_label(target.span, "write `contact.FIELD`"),
                    );
                    return;
                }
                let field = &target.segments[1];
                match self.schema.contact.get(&field.name).cloned() {
                    Some(ty) => {
                        if crate::schema::BUILTIN_CONTACT_FIELDS
                            .iter()
                            .any(|(n, _)| *n == field.name)
                        {
                            self.out.push(
                                Diagnostic::error(
                                    codes::TYPE_MISMATCH,
                                    format!("`contact.{}` is set by Cairn", field.name),
                                )
                                .with_label(field.span, "read-only"),
                            );
                        }
                        if !self.assignable(&value_ty, &ty) {
                            self.out.push(
                                Diagnostic::error(
                                    codes::TYPE_MISMATCH,
                                    format!(
                                        "`contact.{}` is {ty}, the value is {value_ty}",
                                        field.name
                                    ),
                                )
                                .with_label(value.span, format!("this is {value_ty}")),
                            );
                        } else if let crate::schema::Ty::Enum(variants) = ty.required() {
                            self.check_enum_value(variants, value);
                        }
                    }
                    None => {
                        let fields: Vec<String> = self.schema.contact.keys().cloned().collect();
                        self.require(codes::UNKNOWN_FIELD, "contact field", field, false, fields);
                    }
                }
            }
            StepKind::Retry { target, times } => {
                if !walk.labels.contains_key(&target.name) {
                    self.unknown_label(target, &walk.labels);
                } else if !walk.enclosing.contains(&target.name) {
                    self.out.push(
                        Diagnostic::error(codes::BAD_RETRY, format!("`retry {}` does not jump back", target.name))
                            .with_label(target.span, "not a step before this one on its path")
                            .with_help("retry jumps back to a labelled step that comes before it, on the way to the retry"),
                    );
                }
                if *times == 0 || *times > 100 {
                    self.out.push(
                        Diagnostic::error(
                            codes::BAD_RETRY,
                            format!("retry at most {times} times is out of range"),
                        )
                        .with_label(step.span, "1 to 100")
                        .with_help("every loop is bounded: retry between 1 and 100 times"),
                    );
                }
            }
            StepKind::Goal | StepKind::Exit => {}
        }
    }

    fn if_step(&mut self, i: &cairn_grammar::ast::IfStep, scope: &Scope, walk: &mut Walk) {
        self.condition(&i.condition, scope, "an `if` condition");
        self.block(&i.then, &narrowed_by(&i.condition, scope), walk);
        match &i.otherwise {
            None => {}
            Some(Else::Block(b)) => self.block(b, scope, walk),
            Some(Else::If(next, _)) => self.if_step(next, scope, walk),
        }
    }

    fn send(
        &mut self,
        channel: Channel,
        template: &Ident,
        step: Span,
        scope: &Scope,
        walk: &mut Walk,
    ) {
        let Some(info) = self.schema.templates.get(&template.name).cloned() else {
            self.unknown_template(template);
            return;
        };
        if let Some(actual) = info.channel
            && actual != channel
        {
            self.out.push(
                Diagnostic::error(
                    codes::CHANNEL_MISMATCH,
                    format!("`{}` is an {actual} template, not {channel}", template.name),
                )
                .with_label(template.span, format!("{actual} template"))
                .with_help(format!("write `send {actual} {}`", template.name)),
            );
            return;
        }
        if !self.schema.has_channel_address(channel) {
            let (code, need) = match channel {
                Channel::Email => (codes::NO_EMAIL, "a field of type `email`"),
                Channel::Sms => (codes::NO_PHONE, "a field of type `phone`"),
                Channel::Push => (codes::NO_PUSH_TOKEN, "a `push_token string?` field"),
            };
            self.out.push(
                Diagnostic::error(code, format!("contacts cannot be reached by {channel}"))
                    .with_label(step, format!("sends {channel}"))
                    .with_help(format!("add {need} to the `contact` schema")),
            );
        }
        if !info.transactional {
            let consents = self.schema.consents_for(channel);
            if consents.is_empty() {
                self.out.push(
                    Diagnostic::error(codes::NO_CONSENT, format!("marketing {channel} needs a consent, and the project declares none"))
                        .with_label(step, format!("marketing {channel}"))
                        .with_help(format!(
                            "declare `consent {channel}_marketing for {channel}`, or mark `{}` transactional if it is",
                            template.name
                        )),
                );
            } else if walk.has_audience
                && walk.audience_consents.is_empty()
                && !self.out.iter().any(Diagnostic::is_error)
                && !scope.narrowed.iter().any(|p| p.starts_with("consented:"))
                && !walk.warned_consent.contains(&channel)
            {
                walk.warned_consent.push(channel);
                self.out.push(
                    Diagnostic::warning(
                        codes::CONSENT_NOT_REQUIRED,
                        format!("marketing {channel} to an audience that checks no consent"),
                    )
                    .with_label(
                        step,
                        format!("skipped at dispatch for contacts without `{}`", consents[0]),
                    )
                    .with_help(format!("add `consented({})` to the audience", consents[0])),
                );
            }
        }
        // Every variable the template reads must be provided by this journey.
        for var in &info.variables {
            let mut parts = var.split('.');
            let root = parts.next().unwrap_or_default();
            let field = parts.next();
            let ok = if BUILTIN_VARIABLES.contains(&root) {
                true
            } else if root == "contact" {
                field.is_none_or(|f| self.schema.contact.contains_key(f))
            } else if let Some((_, ty)) = scope.bindings.iter().rev().find(|(b, _)| b == root) {
                *ty == Ty::Unknown || field.is_none_or(|f| self.schema.member(ty, f).is_some())
            } else {
                false
            };
            if !ok {
                let mut available: Vec<String> = vec!["contact".to_string()];
                available.extend(scope.bindings.iter().map(|(b, _)| b.clone()));
                available.extend(BUILTIN_VARIABLES.iter().map(|s| (*s).to_string()));
                let help = if field.is_some()
                    && (root == "contact" || scope.bindings.iter().any(|(b, _)| b == root))
                {
                    format!("`{root}` has no field `{}`", field.unwrap_or_default())
                } else {
                    format!("this journey provides {}", super::expr::list(&available))
                };
                self.out.push(
                    Diagnostic::error(
                        codes::TEMPLATE_VARIABLE,
                        format!(
                            "template `{}` uses `{var}`, which this journey does not provide",
                            template.name
                        ),
                    )
                    .with_label(template.span, format!("`{var}` is not in scope here"))
                    .with_help(help),
                );
            }
        }
    }

    pub fn check_enum_value(&mut self, variants: &[String], value: &cairn_grammar::ast::Expr) {
        if let cairn_grammar::ast::ExprKind::Literal(cairn_grammar::ast::Literal::String(s)) =
            &value.kind
            && !variants.contains(&s.value)
        {
            self.out.push(
                Diagnostic::error(
                    codes::NOT_A_VARIANT,
                    format!("\"{}\" is not one of the enum's values", s.value),
                )
                .with_label(value.span, "not a variant")
                .with_help(format!("the values are {}", super::expr::list(variants))),
            );
        }
    }

    fn unknown_template(&mut self, t: &Ident) {
        let names: Vec<String> = self.schema.templates.keys().cloned().collect();
        self.require(codes::UNKNOWN_TEMPLATE, "template", t, false, names);
    }

    fn unknown_label(&mut self, l: &Ident, labels: &BTreeMap<String, Span>) {
        let names: Vec<String> = labels.keys().cloned().collect();
        self.require(codes::UNKNOWN_LABEL, "step label", l, false, names);
    }
}

/// Whether every path through `step` ends the run (`goal` or `exit` on each branch).
fn ends_run(step: &Step) -> bool {
    fn block_ends(block: &Block) -> bool {
        block.steps.last().is_some_and(ends_run)
    }
    fn if_ends(i: &cairn_grammar::ast::IfStep) -> bool {
        block_ends(&i.then)
            && match &i.otherwise {
                None => false,
                Some(Else::Block(b)) => block_ends(b),
                Some(Else::If(next, _)) => if_ends(next),
            }
    }
    match &step.kind {
        StepKind::Goal | StepKind::Exit => true,
        StepKind::If(i) => if_ends(i),
        StepKind::Split(arms) => arms.iter().all(|arm| match &arm.body {
            ArmBody::Step(s) => ends_run(s),
            ArmBody::Block(b) => block_ends(b),
        }),
        StepKind::WaitFor(w) => block_ends(&w.then) && w.timeout.as_ref().is_some_and(block_ends),
        _ => false,
    }
}

fn sent_channel(kind: &StepKind) -> Option<Channel> {
    match kind {
        StepKind::Send(s) => match &s.target {
            SendTarget::Channel { channel, .. } => Some(*channel),
            // A preferred-channel send may go out by email or push: it is tracked.
            SendTarget::Preferred(_) => Some(Channel::Email),
        },
        _ => None,
    }
}

/// Every label in the journey, reporting duplicates.
fn collect_labels<'s>(
    steps: impl Iterator<Item = &'s Step>,
    labels: &mut BTreeMap<String, Span>,
    out: &mut Vec<Diagnostic>,
) {
    for step in steps {
        if let Some(label) = &step.label {
            if let Some(first) = labels.get(&label.name) {
                out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_LABEL,
                        format!("label `{}` is used twice", label.name),
                    )
                    .with_label(label.span, "second one")
                    .with_secondary(*first, "first one")
                    .with_help("labels are step IDs: each is unique in its journey"),
                );
            } else {
                labels.insert(label.name.clone(), label.span);
            }
        }
        match &step.kind {
            StepKind::WaitFor(w) => {
                collect_labels(w.then.steps.iter(), labels, out);
                if let Some(t) = &w.timeout {
                    collect_labels(t.steps.iter(), labels, out);
                }
            }
            StepKind::If(i) => {
                let mut current = i;
                loop {
                    collect_labels(current.then.steps.iter(), labels, out);
                    match &current.otherwise {
                        None => break,
                        Some(Else::Block(b)) => {
                            collect_labels(b.steps.iter(), labels, out);
                            break;
                        }
                        Some(Else::If(next, _)) => current = next,
                    }
                }
            }
            StepKind::Split(arms) => {
                for arm in arms {
                    match &arm.body {
                        ArmBody::Step(s) => {
                            collect_labels(std::iter::once(s.as_ref()), labels, out)
                        }
                        ArmBody::Block(b) => collect_labels(b.steps.iter(), labels, out),
                    }
                }
            }
            _ => {}
        }
    }
}

/// Consents the audience mentions anywhere: `consented(x)`, also under `or`.
fn collect_consents(e: &cairn_grammar::ast::Expr, out: &mut Vec<String>) {
    use cairn_grammar::ast::ExprKind;
    match &e.kind {
        ExprKind::Binary(_, l, r) => {
            collect_consents(l, out);
            collect_consents(r, out);
        }
        ExprKind::Paren(inner) | ExprKind::Unary(_, inner) => collect_consents(inner, out),
        ExprKind::Call(c) if c.function.name == "consented" => {
            if let Some(arg) = c.args.first()
                && let ExprKind::Name(n) = &arg.value.kind
            {
                out.push(n.name.clone());
            }
        }
        _ => {}
    }
}

/// Exact sums of percentages, in millionths, so `33.3% + 33.3% + 33.4%` is exactly 100.
#[derive(Default)]
struct Decimal {
    millionths: u128,
}

impl Decimal {
    fn add(self, text: &str) -> Decimal {
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let whole: u128 = whole.parse().unwrap_or(0);
        let mut frac_digits: String = frac.chars().take(6).collect();
        while frac_digits.len() < 6 {
            frac_digits.push('0');
        }
        let frac: u128 = frac_digits.parse().unwrap_or(0);
        Decimal {
            millionths: self.millionths + whole * 1_000_000 + frac,
        }
    }

    fn is_hundred(&self) -> bool {
        self.millionths == 100_000_000
    }

    fn text(&self) -> String {
        let whole = self.millionths / 1_000_000;
        let frac = self.millionths % 1_000_000;
        if frac == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{}", format!("{frac:06}").trim_end_matches('0'))
        }
    }
}
