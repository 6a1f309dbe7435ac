//! The typed syntax tree of one `.cairn` file.
//!
//! Every node that a person can point at carries a [`Span`] of byte offsets into the
//! file. The tree keeps what the source says, not what it means: names are not
//! resolved here and literals keep their exact decimal text.

use serde::Serialize;
use std::fmt;

/// A half-open range of byte offsets `start..end` into one source file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    pub const fn len(self) -> usize {
        self.end - self.start
    }

    pub const fn is_empty(self) -> bool {
        self.start == self.end
    }

    pub const fn contains(self, offset: usize) -> bool {
        self.start <= offset && offset < self.end
    }

    /// The span moved `by` bytes later.
    pub const fn shift(self, by: usize) -> Span {
        Span::new(self.start + by, self.end + by)
    }

    /// The smallest span covering both.
    pub fn cover(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.start, span.len()).into()
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A comment as written, `//` included. `///` comments directly above an item are
/// also attached to that item as its [`Item::doc`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

impl Comment {
    pub fn is_doc(&self) -> bool {
        self.text.starts_with("///") && !self.text.starts_with("////")
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct SourceFile {
    pub items: Vec<Item>,
    pub comments: Vec<Comment>,
}

/// A top-level item. Its `span` is absolute in the file; every span *inside* `kind` is
/// relative to `span.start`, so an item's tree does not change when text above it does
/// (the compiler's incremental checks rely on that). [`Item::absolute`] converts.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
    /// The text of the `///` comments directly above the item, without the slashes.
    pub doc: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ItemKind {
    Contact(ContactSchema),
    Consent(ConsentDecl),
    Record(RecordDecl),
    Event(EventDecl),
    Tag(TagDecl),
    Segment(SegmentDecl),
    Score(ScoreDecl),
    Template(TemplateDecl),
    QuietHours(QuietHours),
    FrequencyCap(FrequencyCap),
    Journey(JourneyDecl),
    Test(TestDecl),
    /// An item that did not parse; its syntax diagnostics say why.
    Error,
}

impl Item {
    /// An item-relative span as an absolute span in the file.
    pub fn absolute(&self, relative: Span) -> Span {
        relative.shift(self.span.start)
    }
}

impl ItemKind {
    /// The name the item declares, if it declares one.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            ItemKind::Consent(d) => Some(&d.name),
            ItemKind::Record(d) => Some(&d.name),
            ItemKind::Event(d) => Some(&d.name),
            ItemKind::Tag(d) => Some(&d.name),
            ItemKind::Segment(d) => Some(&d.name),
            ItemKind::Score(d) => Some(&d.name),
            ItemKind::Template(d) => Some(&d.name),
            ItemKind::Journey(d) => Some(&d.name),
            ItemKind::Contact(_)
            | ItemKind::QuietHours(_)
            | ItemKind::FrequencyCap(_)
            | ItemKind::Test(_)
            | ItemKind::Error => None,
        }
    }

    /// The keyword that introduces the item, as a user reads it.
    pub fn keyword(&self) -> &'static str {
        match self {
            ItemKind::Contact(_) => "contact",
            ItemKind::Consent(_) => "consent",
            ItemKind::Record(_) => "record",
            ItemKind::Event(_) => "event",
            ItemKind::Tag(_) => "tag",
            ItemKind::Segment(_) => "segment",
            ItemKind::Score(_) => "score",
            ItemKind::Template(_) => "template",
            ItemKind::QuietHours(_) => "quiet hours",
            ItemKind::FrequencyCap(_) => "frequency cap",
            ItemKind::Journey(_) => "journey",
            ItemKind::Test(_) => "test",
            ItemKind::Error => "item",
        }
    }
}

// ------------------------------------------------------------------ schema

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ContactSchema {
    pub fields: Vec<Field>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Field {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub optional: bool,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum TypeKind {
    /// A built-in type (`string`, `money`, ...) or a record.
    Named(Ident),
    Enum(Vec<Ident>),
    List(Box<TypeExpr>),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, PartialOrd, Ord)]
pub enum Channel {
    Email,
    Sms,
    Push,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ConsentDecl {
    pub name: Ident,
    pub channel: Channel,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct RecordDecl {
    pub name: Ident,
    pub fields: Vec<Field>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct EventDecl {
    pub name: Ident,
    /// The name the event has on the wire (Segment's `event`), when it differs.
    pub wire_name: Option<StringLit>,
    pub fields: Vec<Field>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TagDecl {
    pub name: Ident,
    pub description: Option<StringLit>,
}

// ------------------------------------------------------------------ segments and scores

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct SegmentDecl {
    pub name: Ident,
    pub description: Option<StringLit>,
    pub condition: Expr,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ScoreDecl {
    pub name: Ident,
    pub description: Option<StringLit>,
    pub rules: Vec<ScoreRule>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ScoreRule {
    pub kind: ScoreRuleKind,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ScoreRuleKind {
    /// `+20 on page_viewed where path == "/pricing"`
    On {
        points: SignedNumber,
        event: Ident,
        filter: Option<Expr>,
    },
    /// `decay 10% every 30d`
    Decay {
        percent: Percent,
        every: DurationLit,
    },
}

// ------------------------------------------------------------------ templates and policies

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TemplateDecl {
    pub name: Ident,
    pub channel: Channel,
    pub transactional: bool,
    pub props: Vec<TemplateProp>,
}

/// `subject "..."`, `html file "templates/x.html"`, `text "..."`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TemplateProp {
    pub name: Ident,
    pub from_file: bool,
    pub value: StringLit,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct QuietHours {
    pub from: TimeLit,
    pub to: TimeLit,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct FrequencyCap {
    pub limit: u32,
    pub scope: CapScope,
    pub per: DurationLit,
    pub action: CapAction,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum CapScope {
    Marketing,
    Channel(Channel),
}

/// What happens to a send over the cap. `defer` is the default.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum CapAction {
    Defer,
    Skip,
}

// ------------------------------------------------------------------ journeys

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct JourneyDecl {
    pub name: Ident,
    pub description: Option<StringLit>,
    /// Trigger, options and steps in source order.
    pub members: Vec<Member>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Member {
    pub kind: MemberKind,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum MemberKind {
    /// Boxed, as the larger rare members are, so that a journey's many steps stay small.
    Trigger(Box<Trigger>),
    Audience(Expr),
    Reenter(Reenter),
    Goal(GoalOpt),
    Exit(ExitOpt),
    QuietHours(QuietHours),
    FrequencyCap(FrequencyCap),
    /// `migrate OLD -> NEW`, or `migrate "remind.wait#1" -> NEW` to name a step of the
    /// previous plan by its derived ID.
    Migrate {
        from: MigrateFrom,
        to: Ident,
    },
    Drain,
    Step(Step),
}

/// The step a `migrate` moves runs from.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum MigrateFrom {
    /// `migrate remind -> ...`: a label (or any ID spelled as a name).
    Label(Ident),
    /// `migrate "remind.wait#1" -> ...`: any step ID of the deployed plan, such as an
    /// unlabelled step's derived ID.
    Id(StringLit),
}

impl MigrateFrom {
    /// The step ID it names.
    pub fn name(&self) -> &str {
        match self {
            MigrateFrom::Label(label) => &label.name,
            MigrateFrom::Id(id) => &id.value,
        }
    }

    /// Where it is written (a quoted ID's quotes included).
    pub fn span(&self) -> Span {
        match self {
            MigrateFrom::Label(label) => label.span,
            MigrateFrom::Id(id) => id.span,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "one trigger per journey; boxing buys nothing"
)]
pub enum Trigger {
    /// `when cart_updated as cart where ... unless order_completed within 2h`
    Event {
        event: Ident,
        binding: Option<Ident>,
        filter: Option<Expr>,
        unless: Option<Unless>,
    },
    /// `when anniversary of contact.birthday at 09:00 local`
    Anniversary { field: Path, at: TimeLit },
    /// `when no page_viewed for 7d`
    Inactive { event: Ident, for_: DurationLit },
    /// `when enters segment vip` / `when leaves segment vip`
    Segment { enters: bool, segment: Ident },
    /// `when tag vip_card added`
    Tag { tag: Ident, added: bool },
    /// `when page "/pricing*" visited`
    Page { pattern: StringLit },
    /// `when contact created`
    ContactCreated,
    /// `when consent email_marketing granted`
    ConsentGranted { consent: Ident },
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Unless {
    pub event: Ident,
    pub filter: Option<Expr>,
    pub within: DurationLit,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum Reenter {
    After(DurationLit),
    Always,
    Never,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct GoalOpt {
    pub event: Ident,
    pub filter: Option<Expr>,
    pub within: Option<DurationLit>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ExitOpt {
    pub event: Ident,
    pub filter: Option<Expr>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Block {
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Step {
    pub label: Option<Ident>,
    pub kind: StepKind,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum StepKind {
    Send(Send),
    Post {
        url: StringLit,
        body: Option<Vec<ObjectEntry>>,
    },
    Wait(DurationLit),
    WaitUntil {
        from: TimeLit,
        to: Option<TimeLit>,
    },
    /// Boxed, like `If`: the common steps stay small.
    WaitFor(Box<WaitFor>),
    If(Box<IfStep>),
    Split(Vec<SplitArm>),
    Tag {
        add: bool,
        tag: Ident,
    },
    Score {
        score: Ident,
        delta: SignedNumber,
    },
    Set {
        target: Path,
        value: Expr,
    },
    Retry {
        target: Ident,
        times: u32,
    },
    Goal,
    Exit,
}

impl StepKind {
    /// The keyword a user reads for this kind of step.
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Send(_) => "send",
            StepKind::Post { .. } => "post",
            StepKind::Wait(_) | StepKind::WaitUntil { .. } | StepKind::WaitFor(_) => "wait",
            StepKind::If(_) => "if",
            StepKind::Split(_) => "split",
            StepKind::Tag { .. } => "tag",
            StepKind::Score { .. } => "score",
            StepKind::Set { .. } => "set",
            StepKind::Retry { .. } => "retry",
            StepKind::Goal => "goal",
            StepKind::Exit => "exit",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Send {
    pub target: SendTarget,
    pub best_time: bool,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum SendTarget {
    /// `send email cart_reminder`
    Channel { channel: Channel, template: Ident },
    /// `send via preferred channel [vip_email, vip_sms]`
    Preferred(Vec<Ident>),
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct WaitFor {
    pub event: Ident,
    pub binding: Option<Ident>,
    pub filter: Option<Expr>,
    pub within: Option<DurationLit>,
    pub then: Block,
    pub timeout: Option<Block>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct IfStep {
    pub condition: Expr,
    pub then: Block,
    pub otherwise: Option<Else>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum Else {
    If(Box<IfStep>, Span),
    Block(Block),
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct SplitArm {
    pub weight: Percent,
    pub name: Ident,
    pub body: ArmBody,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ArmBody {
    /// `50% a: send email discount_10`
    Step(Box<Step>),
    /// `50% b: { ... }`
    Block(Block),
}

// ------------------------------------------------------------------ tests

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TestDecl {
    pub name: StringLit,
    pub statements: Vec<TestStmt>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TestStmt {
    pub kind: TestStmtKind,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum TestStmtKind {
    /// `contact ana { email: "ana@example.com", consents: [email_marketing] }`
    Contact {
        name: Ident,
        fields: Vec<ObjectEntry>,
    },
    /// `at 2026-03-01T10:00Z ana sends cart_updated { ... }`
    Input {
        at: DateTimeLit,
        contact: Ident,
        action: TestAction,
    },
    /// `expect send email cart_reminder to ana at 2026-03-01T12:00Z`
    Expect {
        negated: bool,
        expectation: Expectation,
    },
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum TestAction {
    Sends {
        event: Ident,
        payload: Option<Vec<ObjectEntry>>,
    },
    Updates(Vec<ObjectEntry>),
    Opens(StepRef),
    Clicks {
        step: StepRef,
        url: Option<StringLit>,
    },
    Unsubscribes(UnsubscribeScope),
    Visits(StringLit),
    Grants(Ident),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum UnsubscribeScope {
    All,
    Channel(Channel),
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum Expectation {
    Send {
        what: Option<(Channel, Vec<Ident>)>,
        contact: Ident,
        time: Option<TimeClause>,
    },
    Split {
        step: StepRef,
        contact: Ident,
        arm: Option<Ident>,
        time: Option<TimeClause>,
    },
    Tag {
        tag: Ident,
        added: bool,
        contact: Ident,
        time: Option<TimeClause>,
    },
    Score {
        score: Ident,
        contact: Ident,
        value: Number,
        time: Option<TimeClause>,
    },
    Goal {
        journey: Ident,
        contact: Ident,
        time: Option<TimeClause>,
    },
    Exit {
        journey: Ident,
        contact: Ident,
        reason: Option<Ident>,
        time: Option<TimeClause>,
    },
    Skip {
        step: StepRef,
        contact: Ident,
        reason: Option<Ident>,
        time: Option<TimeClause>,
    },
    Defer {
        step: StepRef,
        contact: Ident,
        time: Option<TimeClause>,
    },
    Enter {
        journey: Ident,
        contact: Ident,
        time: Option<TimeClause>,
    },
    Nothing {
        contact: Ident,
        until: DateTimeLit,
    },
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TimeClause {
    /// `until T` rather than `at T`.
    pub until: bool,
    pub at: DateTimeLit,
}

/// `remind` or `abandoned_cart.remind`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct StepRef {
    pub journey: Option<Ident>,
    pub step: Ident,
    pub span: Span,
}

// ------------------------------------------------------------------ expressions

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ExprKind {
    Name(Ident),
    Member(Box<Expr>, Ident),
    Literal(Literal),
    List(Vec<Expr>),
    Object(Vec<ObjectEntry>),
    Call(Call),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `x is set` (`negated`: `x is not set`)
    IsSet {
        expr: Box<Expr>,
        negated: bool,
    },
    Paren(Box<Expr>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
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
}

/// `count(page_viewed where category == "tv" within 7d)`
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Call {
    pub function: Ident,
    pub args: Vec<CallArg>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct CallArg {
    pub value: Expr,
    pub filter: Option<Expr>,
    pub within: Option<DurationLit>,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ObjectEntry {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

impl Path {
    pub fn dotted(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|s| s.name.as_str()).collect();
        names.join(".")
    }
}

// ------------------------------------------------------------------ literals

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum Literal {
    Number(Number),
    Money(Money),
    Percent(Percent),
    Duration(DurationLit),
    String(StringLit),
    Bool(bool),
    Date(DateLit),
    DateTime(DateTimeLit),
    Time(TimeLit),
}

/// An exact decimal as written (`80`, `80.00`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Number {
    pub text: String,
}

/// `+20` or `-5.5`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct SignedNumber {
    pub negative: bool,
    pub magnitude: Number,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Money {
    pub amount: Number,
    pub currency: String,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Percent {
    pub value: Number,
    pub span: Span,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum DurationUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl DurationUnit {
    /// Exact length in seconds; `None` for calendar units.
    pub fn seconds(self) -> Option<u64> {
        match self {
            DurationUnit::Seconds => Some(1),
            DurationUnit::Minutes => Some(60),
            DurationUnit::Hours => Some(3_600),
            DurationUnit::Days => Some(86_400),
            DurationUnit::Weeks => Some(7 * 86_400),
            DurationUnit::Months | DurationUnit::Years => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct DurationLit {
    pub value: u64,
    pub unit: DurationUnit,
    pub span: Span,
}

impl DurationLit {
    /// Exact elapsed seconds, or `None` for calendar durations (`6 months`).
    pub fn exact_seconds(&self) -> Option<u64> {
        self.unit.seconds().map(|s| s.saturating_mul(self.value))
    }

    /// Calendar months, for `months` and `years`.
    pub fn calendar_months(&self) -> Option<u64> {
        match self.unit {
            DurationUnit::Months => Some(self.value),
            DurationUnit::Years => Some(self.value.saturating_mul(12)),
            _ => None,
        }
    }
}

impl fmt::Display for DurationLit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        match self.unit {
            DurationUnit::Seconds => write!(f, "{v}s"),
            DurationUnit::Minutes => write!(f, "{v}m"),
            DurationUnit::Hours => write!(f, "{v}h"),
            DurationUnit::Days => write!(f, "{v}d"),
            DurationUnit::Weeks => write!(f, "{v}w"),
            DurationUnit::Months if v == 1 => write!(f, "1 month"),
            DurationUnit::Months => write!(f, "{v} months"),
            DurationUnit::Years if v == 1 => write!(f, "1 year"),
            DurationUnit::Years => write!(f, "{v} years"),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct StringLit {
    /// The value with escapes resolved.
    pub value: String,
    /// Written as a `"""` block.
    pub triple: bool,
    pub span: Span,
}

/// `2026-03-01`
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct DateLit {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub span: Span,
}

/// `2026-03-01T10:00Z`, `2026-03-01T10:00:30+02:00`
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct DateTimeLit {
    pub text: String,
    pub span: Span,
}

/// A local time of day, `09:00`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct TimeLit {
    pub hour: u8,
    pub minute: u8,
    pub span: Span,
}

impl fmt::Display for TimeLit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}
