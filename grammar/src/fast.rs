//! The fast path of the parser: a hand-written recursive-descent parser over bytes that
//! builds, for one item chunk of the scanner, exactly the tree the pest grammar
//! (`cairn.pest`) and its tree builder in `parse.rs` build.
//!
//! The pest grammar stays the reference. This parser follows it rule by rule with the
//! same PEG semantics: ordered choice, greedy `?` and `*` that never give back, the
//! implicit skipping of blanks and `//` comments between the tokens of non-atomic rules,
//! and the same Pratt precedences. It has no error reporting of its own: when it cannot
//! parse an item ([`Outcome::Rejected`]), or when the item parses but the tree builder
//! would attach a diagnostic to it or pest would place a span differently
//! ([`Outcome::Delegated`]), the caller parses the item again with pest, so every
//! message a person reads comes from the reference.
//!
//! `parse::verify` checks, item by item, that the two agree; the tests run it over
//! every sample, example and fuzz input and over generated and mutated sources.

use crate::ast::*;
use crate::parse::{MAX_OPERATORS, content_len, days_in_month, duration_unit};
use crate::scan::MAX_NESTING;

/// What the fast parser made of one item chunk.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The item's tree and its span, relative to the start of the chunk.
    Parsed(ItemKind, Span),
    /// The grammar does not accept the chunk.
    Rejected,
    /// The grammar accepts the chunk, but only pest's path gives the exact result: the
    /// tree builder reports a diagnostic (an unknown escape, a date that does not
    /// exist, a number too large, ...), or a comment follows the end of a `"""` string,
    /// where the reference's spans are its own (see [`Parser::span_from`]).
    Delegated,
}

/// Parses one item chunk. `scratch` holds the lists being read; passing the same one
/// for every chunk of a file saves growing them again for each item.
pub(crate) fn item(chunk: &str, scratch: &mut Scratch) -> Outcome {
    scratch.clear();
    let mut p = Parser {
        src: chunk,
        b: chunk.as_bytes(),
        pos: 0,
        end: 0,
        base: 0,
        delegate: false,
        triple: false,
        depth: 0,
        scratch,
        word: (usize::MAX, 0),
    };
    p.seps();
    let start = p.pos;
    p.base = start;
    let Some(kind) = p.item() else {
        return Outcome::Rejected;
    };
    let end = p.span_from(start).end + start;
    p.seps();
    if p.pos != p.b.len() {
        return Outcome::Rejected;
    }
    if p.delegate {
        return Outcome::Delegated;
    }
    Outcome::Parsed(kind, Span::new(start, end))
}

/// Deepest nesting of constructs that the scanner's bracket limit does not bound
/// (`else if` chains, `list<...>` types); beyond it pest decides.
const MAX_DEPTH: usize = 256;

struct Parser<'s, 'x> {
    src: &'s str,
    b: &'s [u8],
    pos: usize,
    /// The end of the last token taken: where the span of the rule being built ends.
    end: usize,
    /// Where the item starts; spans inside it are relative to this.
    base: usize,
    /// Set when the finished tree would need pest's path (see [`Outcome::Delegated`]).
    delegate: bool,
    /// A `"""` string has been read: from here on spans are trimmed as the reference
    /// trims them (see [`Parser::span_from`]).
    triple: bool,
    depth: usize,
    scratch: &'x mut Scratch,
    /// The word [`Parser::peek_word`] last found, as `start..end`: the same word is
    /// looked at several times while alternatives are tried.
    word: (usize, usize),
}

/// A place to come back to when an alternative fails.
#[derive(Clone, Copy)]
struct Mark {
    pos: usize,
    end: usize,
    delegate: bool,
}

enum Piece {
    Prefix(UnaryOp, Span),
    Primary(Expr),
    Postfix(Postfix, Span),
    Infix(BinaryOp),
}

enum Postfix {
    Member(Ident),
    IsSet,
    IsNotSet,
}

/// Defines [`Scratch`]: a stack per type of list element, on which the elements of the
/// lists being read pile up (nested lists above outer ones) until [`Parser::list`] moves
/// them into a list of exactly their number. The trees of a whole project are kept in
/// memory, so a list keeps no spare room, and it is allocated once instead of growing.
macro_rules! scratch {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// The stacks the parser reads lists onto, reused from item to item.
        #[derive(Default)]
        pub(crate) struct Scratch {
            /// The flat operand/operator stream of the expressions being read, nested
            /// ones above outer ones.
            pieces: Vec<Piece>,
            $($field: Vec<$ty>,)*
        }

        impl Scratch {
            /// Drops what a failed read may have left (nothing, normally).
            fn clear(&mut self) {
                self.pieces.clear();
                $(self.$field.clear();)*
            }
        }

        $(impl Stacked for $ty {
            fn stack(scratch: &mut Scratch) -> &mut Vec<Self> {
                &mut scratch.$field
            }
        })*
    };
}

scratch! {
    members: Member,
    steps: Step,
    fields: Field,
    score_rules: ScoreRule,
    template_props: TemplateProp,
    test_stmts: TestStmt,
    idents: Ident,
    object_entries: ObjectEntry,
    exprs: Expr,
    call_args: CallArg,
    split_arms: SplitArm,
}

/// A type of list element with its stack in [`Scratch`].
trait Stacked: Sized {
    fn stack(scratch: &mut Scratch) -> &mut Vec<Self>;
}

/// `?` on a token that must be there.
fn need(ok: bool) -> Option<()> {
    ok.then_some(())
}

/// ASCII letters, digits and `_`: the bytes of a word.
static IDC: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    table
};

fn is_idc(b: u8) -> bool {
    IDC[usize::from(b)]
}

fn is_reserved(word: &[u8]) -> bool {
    matches!(
        word,
        b"and"
            | b"or"
            | b"not"
            | b"in"
            | b"is"
            | b"as"
            | b"where"
            | b"within"
            | b"unless"
            | b"true"
            | b"false"
            | b"else"
            | b"timeout"
            | b"to"
            | b"at"
    )
}

impl<'s> Parser<'s, '_> {
    // -------------------------------------------------------------- tokens

    #[inline]
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            end: self.end,
            delegate: self.delegate,
        }
    }

    fn reset(&mut self, m: Mark) {
        self.pos = m.pos;
        self.end = m.end;
        self.delegate = m.delegate;
    }

    /// An optional part: on failure, nothing was taken.
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let m = self.mark();
        let r = f(self);
        if r.is_none() {
            self.reset(m);
        }
        r
    }

    /// A list whose elements `f` reads and [`Parser::push`]es; on failure, what it
    /// pushed is dropped.
    fn list<T: Stacked>(&mut self, f: impl FnOnce(&mut Self) -> Option<()>) -> Option<Vec<T>> {
        let mark = T::stack(self.scratch).len();
        let done = f(self);
        let stack = T::stack(self.scratch);
        match done {
            // Allocates exactly the list's length.
            Some(()) => Some(stack.split_off(mark)),
            None => {
                stack.truncate(mark);
                None
            }
        }
    }

    /// The next element of the list being read (see [`Parser::list`]).
    fn push<T: Stacked>(&mut self, element: T) {
        T::stack(self.scratch).push(element);
    }

    /// Inside a [`Parser::list`]: pushes the elements `item` reads, separated by `,`
    /// with new lines allowed around it, and takes a trailing `,` (none is fine).
    fn comma_separated<T: Stacked>(&mut self, item: impl Fn(&mut Self) -> Option<T>) {
        let Some(first) = self.opt(&item) else {
            return;
        };
        self.push(first);
        while let Some(next) = self.opt(|p| {
            p.nl();
            need(p.punct(b","))?;
            p.nl();
            item(p)
        }) {
            self.push(next);
        }
        self.nl();
        self.punct(b",");
    }

    fn rel(&self, start: usize, end: usize) -> Span {
        Span::new(start - self.base, end - self.base)
    }

    /// The span of a rule whose first token started at `start`: up to the last token
    /// taken.
    ///
    /// The reference takes the text pest matched, which may go on with the blanks and
    /// the comment after that token, and trims it with `content_len`, whose comment
    /// finder reads a line's quotes as string delimiters. That agrees with the last token
    /// except on a line that a `"""` string ends, so after one the same trimming is
    /// applied here, to both texts pest may have matched; should they differ, pest
    /// decides.
    #[inline]
    fn span_from(&mut self, start: usize) -> Span {
        if self.triple {
            self.span_after_triple(start)
        } else {
            self.rel(start, self.end)
        }
    }

    /// [`Parser::span_from`] once a `"""` string has been read.
    fn span_after_triple(&mut self, start: usize) -> Span {
        let mut after = self.end;
        loop {
            match self.at(after) {
                b' ' | b'\t' => after += 1,
                0xEF if self.b[after..].starts_with("\u{FEFF}".as_bytes()) => after += 3,
                b'/' if self.at(after + 1) == b'/' => {
                    while after < self.b.len() && !matches!(self.b[after], b'\n' | b'\r') {
                        after += 1;
                    }
                }
                _ => break,
            }
        }
        let bare = content_len(&self.src[start..self.end]);
        if content_len(&self.src[start..after]) != bare {
            self.delegate = true;
        }
        self.rel(start, start + bare)
    }

    /// Blanks and `//` comments, as pest skips them between tokens.
    #[inline]
    fn skip(&mut self) {
        if matches!(self.at(self.pos), b' ' | b'\t' | b'/' | 0xEF) {
            self.skip_some();
        }
    }

    /// [`Parser::skip`] once there may be something to skip.
    fn skip_some(&mut self) {
        loop {
            match self.at(self.pos) {
                b' ' | b'\t' => self.pos += 1,
                0xEF if self.b[self.pos..].starts_with("\u{FEFF}".as_bytes()) => self.pos += 3,
                b'/' if self.at(self.pos + 1) == b'/' => {
                    while self.pos < self.b.len() && !matches!(self.b[self.pos], b'\n' | b'\r') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// Skips, then the start of the next token.
    #[inline]
    fn start(&mut self) -> usize {
        self.skip();
        self.pos
    }

    fn newline(&mut self) -> bool {
        match self.at(self.pos) {
            b'\n' => self.pos += 1,
            b'\r' if self.at(self.pos + 1) == b'\n' => self.pos += 2,
            b'\r' => self.pos += 1,
            _ => return false,
        }
        true
    }

    /// `nl`: any number of newlines (and the blanks and comments between them).
    fn nl(&mut self) {
        loop {
            self.skip();
            if !self.newline() {
                return;
            }
        }
    }

    /// `sep`: newlines and `;`; false when there was none.
    fn seps(&mut self) -> bool {
        let mut any = false;
        loop {
            self.skip();
            if self.newline() {
                any = true;
            } else if self.at(self.pos) == b';' {
                self.pos += 1;
                any = true;
            } else {
                return any;
            }
        }
    }

    /// `list_sep`: `,`, newlines and `;`.
    fn list_seps(&mut self) -> bool {
        let mut any = false;
        loop {
            self.skip();
            if self.newline() {
                any = true;
            } else if matches!(self.at(self.pos), b';' | b',') {
                self.pos += 1;
                any = true;
            } else {
                return any;
            }
        }
    }

    fn punct(&mut self, token: &[u8]) -> bool {
        self.skip();
        let found = match *token {
            // Most are one byte: no call to compare slices (`at` gives 0 past the end).
            [byte] => self.at(self.pos) == byte,
            _ => self.b[self.pos..].starts_with(token),
        };
        if found {
            self.pos += token.len();
            self.end = self.pos;
            true
        } else {
            false
        }
    }

    /// The keyword `word` (letters only), not followed by another letter, digit or `_`.
    fn kw(&mut self, word: &[u8]) -> bool {
        let next = self.peek_word();
        // The first letters first: most tries fail there, without comparing slices.
        if next.first() == word.first() && next == word {
            self.pos += word.len();
            self.end = self.pos;
            true
        } else {
            false
        }
    }

    /// The word at the next token, without taking it (empty when there is none).
    fn peek_word(&mut self) -> &'s [u8] {
        self.skip();
        let b: &'s [u8] = self.b;
        let start = self.pos;
        if self.word.0 == start {
            return &b[start..self.word.1];
        }
        if !(self.at(start).is_ascii_alphabetic() || self.at(start) == b'_') {
            return &[];
        }
        let mut end = start + 1;
        while end < b.len() && is_idc(b[end]) {
            end += 1;
        }
        self.word = (start, end);
        &b[start..end]
    }

    fn ident(&mut self) -> Option<Ident> {
        let word = self.peek_word();
        if word.is_empty() || is_reserved(word) {
            return None;
        }
        let start = self.pos;
        let end = start + word.len();
        self.pos = end;
        self.end = end;
        Some(Ident {
            name: self.src[start..end].to_string(),
            span: self.rel(start, end),
        })
    }

    /// Whether a name and then `token` come next: what [`Parser::ident`] and then
    /// [`Parser::punct`] would take. Nothing is taken, and the name is not copied.
    fn ident_then(&mut self, token: u8) -> bool {
        let word = self.peek_word();
        if word.is_empty() || is_reserved(word) {
            return false;
        }
        let m = self.mark();
        self.pos += word.len();
        self.skip();
        let found = self.at(self.pos) == token;
        self.reset(m);
        found
    }

    fn channel(&mut self) -> Option<Channel> {
        match self.peek_word() {
            b"email" => self.kw(b"email").then_some(Channel::Email),
            b"sms" => self.kw(b"sms").then_some(Channel::Sms),
            b"push" => self.kw(b"push").then_some(Channel::Push),
            _ => None,
        }
    }

    // -------------------------------------------------------------- items

    fn item(&mut self) -> Option<ItemKind> {
        match self.peek_word() {
            b"contact" => {
                self.kw(b"contact");
                Some(ItemKind::Contact(ContactSchema {
                    fields: self.fields()?,
                }))
            }
            b"consent" => {
                self.kw(b"consent");
                let name = self.ident()?;
                need(self.kw(b"for"))?;
                let channel = self.channel()?;
                Some(ItemKind::Consent(ConsentDecl { name, channel }))
            }
            b"record" => {
                self.kw(b"record");
                let name = self.ident()?;
                let fields = self.fields()?;
                Some(ItemKind::Record(RecordDecl { name, fields }))
            }
            b"event" => {
                self.kw(b"event");
                let name = self.ident()?;
                let wire_name = self.opt(Self::string);
                let fields = self.opt(Self::fields).unwrap_or_default();
                Some(ItemKind::Event(EventDecl {
                    name,
                    wire_name,
                    fields,
                }))
            }
            b"tag" => {
                self.kw(b"tag");
                let name = self.ident()?;
                let description = self.opt(Self::string);
                Some(ItemKind::Tag(TagDecl { name, description }))
            }
            b"segment" => {
                self.kw(b"segment");
                let name = self.ident()?;
                let description = self.opt(Self::string);
                need(self.punct(b"{"))?;
                self.seps();
                let condition = self.expr()?;
                self.seps();
                need(self.punct(b"}"))?;
                Some(ItemKind::Segment(SegmentDecl {
                    name,
                    description,
                    condition,
                }))
            }
            b"score" => {
                self.kw(b"score");
                let name = self.ident()?;
                let description = self.opt(Self::string);
                let rules = self.statements(Self::score_rule)?;
                Some(ItemKind::Score(ScoreDecl {
                    name,
                    description,
                    rules,
                }))
            }
            b"template" => {
                self.kw(b"template");
                let name = self.ident()?;
                let channel = self.channel()?;
                let transactional = self.kw(b"transactional");
                let props = self.statements(Self::template_prop)?;
                Some(ItemKind::Template(TemplateDecl {
                    name,
                    channel,
                    transactional,
                    props,
                }))
            }
            b"quiet" => Some(ItemKind::QuietHours(self.quiet_hours()?)),
            b"frequency" => Some(ItemKind::FrequencyCap(self.frequency_cap()?)),
            b"journey" => {
                self.kw(b"journey");
                let name = self.ident()?;
                let description = self.opt(Self::string);
                let members = self.statements(Self::member)?;
                Some(ItemKind::Journey(JourneyDecl {
                    name,
                    description,
                    members,
                }))
            }
            b"test" => {
                self.kw(b"test");
                let name = self.string()?;
                let statements = self.statements(Self::test_stmt)?;
                Some(ItemKind::Test(TestDecl { name, statements }))
            }
            _ => None,
        }
    }

    /// `"{" ~ sep? ~ (x ~ (sep ~ x)*)? ~ sep? ~ "}"`
    fn statements<T: Stacked>(
        &mut self,
        mut x: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        need(self.punct(b"{"))?;
        self.seps();
        self.list(|p| {
            loop {
                if p.punct(b"}") {
                    return Some(());
                }
                let statement = x(p)?;
                p.push(statement);
                if !p.seps() {
                    return need(p.punct(b"}"));
                }
            }
        })
    }

    /// `"{" ~ list_sep? ~ (field ~ (list_sep ~ field)*)? ~ list_sep? ~ "}"`
    fn fields(&mut self) -> Option<Vec<Field>> {
        need(self.punct(b"{"))?;
        self.list_seps();
        self.list(|p| {
            loop {
                if p.punct(b"}") {
                    return Some(());
                }
                let field = p.field()?;
                p.push(field);
                if !p.list_seps() {
                    return need(p.punct(b"}"));
                }
            }
        })
    }

    fn field(&mut self) -> Option<Field> {
        let start = self.start();
        let name = self.ident()?;
        let ty = self.type_expr()?;
        let default = self.opt(|p| {
            need(p.punct(b"="))?;
            p.expr()
        });
        Some(Field {
            name,
            ty,
            default,
            span: self.span_from(start),
        })
    }

    fn type_expr(&mut self) -> Option<TypeExpr> {
        if self.depth >= MAX_DEPTH {
            self.delegate = true;
            return None;
        }
        let start = self.start();
        let kind = match self.opt(Self::enum_type) {
            Some(kind) => kind,
            None => match self.opt(Self::list_type) {
                Some(kind) => kind,
                None => TypeKind::Named(self.ident()?),
            },
        };
        let optional = self.punct(b"?");
        Some(TypeExpr {
            kind,
            optional,
            span: self.span_from(start),
        })
    }

    fn enum_type(&mut self) -> Option<TypeKind> {
        need(self.kw(b"enum"))?;
        need(self.punct(b"{"))?;
        self.list_seps();
        let names = self.list(|p| {
            let first = p.ident()?;
            p.push(first);
            loop {
                if p.list_seps()
                    && let Some(name) = p.opt(Self::ident)
                {
                    p.push(name);
                    continue;
                }
                return need(p.punct(b"}"));
            }
        })?;
        Some(TypeKind::Enum(names))
    }

    fn list_type(&mut self) -> Option<TypeKind> {
        need(self.kw(b"list"))?;
        need(self.punct(b"<"))?;
        self.depth += 1;
        let inner = self.type_expr();
        self.depth -= 1;
        let inner = inner?;
        need(self.punct(b">"))?;
        Some(TypeKind::List(Box::new(inner)))
    }

    fn score_rule(&mut self) -> Option<ScoreRule> {
        let start = self.start();
        let kind = if self.peek_word() == b"decay" {
            self.kw(b"decay");
            let percent = self.percent()?;
            need(self.kw(b"every"))?;
            let every = self.duration()?;
            ScoreRuleKind::Decay { percent, every }
        } else {
            let points = self.signed_number()?;
            need(self.kw(b"on"))?;
            let event = self.ident()?;
            let filter = self.opt(|p| {
                need(p.kw(b"where"))?;
                p.expr()
            });
            ScoreRuleKind::On {
                points,
                event,
                filter,
            }
        };
        Some(ScoreRule {
            kind,
            span: self.span_from(start),
        })
    }

    fn template_prop(&mut self) -> Option<TemplateProp> {
        let start = self.start();
        let name = self.ident()?;
        let from_file = self.kw(b"file");
        let value = self.string()?;
        Some(TemplateProp {
            name,
            from_file,
            value,
            span: self.span_from(start),
        })
    }

    fn quiet_hours(&mut self) -> Option<QuietHours> {
        need(self.kw(b"quiet"))?;
        need(self.kw(b"hours"))?;
        let from = self.time()?;
        need(self.punct(b".."))?;
        let to = self.time()?;
        self.kw(b"local");
        Some(QuietHours { from, to })
    }

    fn frequency_cap(&mut self) -> Option<FrequencyCap> {
        need(self.kw(b"frequency"))?;
        need(self.kw(b"cap"))?;
        let limit = self.integer()?;
        let scope = if self.kw(b"marketing") {
            CapScope::Marketing
        } else {
            CapScope::Channel(self.channel()?)
        };
        need(self.kw(b"per"))?;
        let per = self.duration()?;
        let action = if self.kw(b"skip") {
            CapAction::Skip
        } else {
            self.kw(b"defer");
            CapAction::Defer
        };
        Some(FrequencyCap {
            limit,
            scope,
            per,
            action,
        })
    }

    // -------------------------------------------------------------- journeys

    fn member(&mut self) -> Option<Member> {
        let start = self.start();
        let m = self.mark();
        let option = match self.peek_word() {
            b"when" => self.trigger().map(|t| MemberKind::Trigger(Box::new(t))),
            b"audience" => {
                self.kw(b"audience");
                self.expr().map(MemberKind::Audience)
            }
            b"reenter" => {
                self.kw(b"reenter");
                if self.kw(b"after") {
                    self.duration()
                        .map(|d| MemberKind::Reenter(Reenter::After(d)))
                } else if self.kw(b"always") {
                    Some(MemberKind::Reenter(Reenter::Always))
                } else if self.kw(b"never") {
                    Some(MemberKind::Reenter(Reenter::Never))
                } else {
                    None
                }
            }
            b"goal" => self.goal_opt(),
            b"exit" => self.exit_opt(),
            b"quiet" => self.quiet_hours().map(MemberKind::QuietHours),
            b"frequency" => self.frequency_cap().map(MemberKind::FrequencyCap),
            b"migrate" => self.migrate_opt(),
            b"drain" => {
                self.kw(b"drain");
                Some(MemberKind::Drain)
            }
            _ => None,
        };
        let kind = match option {
            Some(kind) => kind,
            None => {
                self.reset(m);
                MemberKind::Step(self.step()?)
            }
        };
        Some(Member {
            kind,
            span: self.span_from(start),
        })
    }

    fn goal_opt(&mut self) -> Option<MemberKind> {
        need(self.kw(b"goal"))?;
        let event = self.ident()?;
        let filter = self.where_clause();
        let within = self.within_clause();
        Some(MemberKind::Goal(GoalOpt {
            event,
            filter,
            within,
        }))
    }

    fn exit_opt(&mut self) -> Option<MemberKind> {
        need(self.kw(b"exit"))?;
        need(self.kw(b"when"))?;
        let event = self.ident()?;
        let filter = self.where_clause();
        Some(MemberKind::Exit(ExitOpt { event, filter }))
    }

    fn migrate_opt(&mut self) -> Option<MemberKind> {
        need(self.kw(b"migrate"))?;
        let from = match self.string() {
            Some(id) => MigrateFrom::Id(id),
            None => MigrateFrom::Label(self.ident()?),
        };
        need(self.punct(b"->"))?;
        let to = self.ident()?;
        Some(MemberKind::Migrate { from, to })
    }

    /// `(K_WHERE ~ expr)?`
    fn where_clause(&mut self) -> Option<Expr> {
        self.opt(|p| {
            need(p.kw(b"where"))?;
            p.expr()
        })
    }

    /// `(K_WITHIN ~ duration_lit)?`
    fn within_clause(&mut self) -> Option<DurationLit> {
        self.opt(|p| {
            need(p.kw(b"within"))?;
            p.duration()
        })
    }

    /// `(K_AS ~ ident)?`
    fn binding(&mut self) -> Option<Ident> {
        self.opt(|p| {
            need(p.kw(b"as"))?;
            p.ident()
        })
    }

    fn trigger(&mut self) -> Option<Trigger> {
        need(self.kw(b"when"))?;
        let m = self.mark();
        let special = match self.peek_word() {
            b"anniversary" => (|| {
                self.kw(b"anniversary");
                need(self.kw(b"of"))?;
                let field = self.path()?;
                need(self.kw(b"at"))?;
                let at = self.time()?;
                self.kw(b"local");
                Some(Trigger::Anniversary { field, at })
            })(),
            b"no" => (|| {
                self.kw(b"no");
                let event = self.ident()?;
                need(self.kw(b"for"))?;
                let for_ = self.duration()?;
                Some(Trigger::Inactive { event, for_ })
            })(),
            b"enters" | b"leaves" => (|| {
                let enters = self.kw(b"enters");
                if !enters {
                    self.kw(b"leaves");
                }
                need(self.kw(b"segment"))?;
                let segment = self.ident()?;
                Some(Trigger::Segment { enters, segment })
            })(),
            b"tag" => (|| {
                self.kw(b"tag");
                let tag = self.ident()?;
                let added = if self.kw(b"added") {
                    true
                } else {
                    need(self.kw(b"removed"))?;
                    false
                };
                Some(Trigger::Tag { tag, added })
            })(),
            b"page" => (|| {
                self.kw(b"page");
                let pattern = self.string()?;
                need(self.kw(b"visited"))?;
                Some(Trigger::Page { pattern })
            })(),
            b"contact" => (|| {
                self.kw(b"contact");
                need(self.kw(b"created"))?;
                Some(Trigger::ContactCreated)
            })(),
            b"consent" => (|| {
                self.kw(b"consent");
                let consent = self.ident()?;
                need(self.kw(b"granted"))?;
                Some(Trigger::ConsentGranted { consent })
            })(),
            _ => None,
        };
        if special.is_some() {
            return special;
        }
        self.reset(m);
        let event = self.ident()?;
        let binding = self.binding();
        let filter = self.where_clause();
        let unless = self.opt(|p| {
            let start = p.start();
            need(p.kw(b"unless"))?;
            let event = p.ident()?;
            let filter = p.where_clause();
            need(p.kw(b"within"))?;
            let within = p.duration()?;
            Some(Unless {
                event,
                filter,
                within,
                span: p.span_from(start),
            })
        });
        Some(Trigger::Event {
            event,
            binding,
            filter,
            unless,
        })
    }

    fn block(&mut self) -> Option<Block> {
        let start = self.start();
        let steps = self.statements(Self::step)?;
        Some(Block {
            steps,
            span: self.span_from(start),
        })
    }

    fn step(&mut self) -> Option<Step> {
        let start = self.start();
        let label = if self.ident_then(b':') {
            let label = self.ident();
            self.punct(b":");
            label
        } else {
            None
        };
        let kind = self.step_kind()?;
        Some(Step {
            label,
            kind,
            span: self.span_from(start),
        })
    }

    fn step_kind(&mut self) -> Option<StepKind> {
        match self.peek_word() {
            b"send" => {
                self.kw(b"send");
                let target = if self.kw(b"via") {
                    SendTarget::Preferred(self.preferred_channel()?)
                } else {
                    let channel = self.channel()?;
                    let template = self.ident()?;
                    SendTarget::Channel { channel, template }
                };
                let best_time = self
                    .opt(|p| {
                        let ok = p.kw(b"at") && p.kw(b"best") && p.kw(b"time");
                        ok.then_some(())
                    })
                    .is_some();
                Some(StepKind::Send(Send { target, best_time }))
            }
            b"post" => {
                self.kw(b"post");
                let url = self.string()?;
                let body = self.opt(Self::object);
                Some(StepKind::Post { url, body })
            }
            b"wait" => {
                if let Some(kind) = self.opt(Self::wait_for) {
                    return Some(kind);
                }
                if let Some(kind) = self.opt(Self::wait_until) {
                    return Some(kind);
                }
                self.kw(b"wait");
                Some(StepKind::Wait(self.duration()?))
            }
            b"if" => Some(StepKind::If(Box::new(self.if_step()?))),
            b"split" => {
                self.kw(b"split");
                need(self.punct(b"{"))?;
                self.seps();
                let arms = self.list(|p| {
                    let first = p.split_arm()?;
                    p.push(first);
                    loop {
                        if !p.seps() {
                            return need(p.punct(b"}"));
                        }
                        if p.punct(b"}") {
                            return Some(());
                        }
                        let arm = p.split_arm()?;
                        p.push(arm);
                    }
                })?;
                Some(StepKind::Split(arms))
            }
            b"tag" => {
                self.kw(b"tag");
                let add = if self.kw(b"add") {
                    true
                } else {
                    need(self.kw(b"remove"))?;
                    false
                };
                let tag = self.ident()?;
                Some(StepKind::Tag { add, tag })
            }
            b"score" => {
                self.kw(b"score");
                let score = self.ident()?;
                let delta = self.signed_number()?;
                Some(StepKind::Score { score, delta })
            }
            b"set" => {
                self.kw(b"set");
                let target = self.path()?;
                need(self.punct(b"="))?;
                let value = self.expr()?;
                Some(StepKind::Set { target, value })
            }
            b"retry" => {
                self.kw(b"retry");
                let target = self.ident()?;
                need(self.kw(b"at") && self.kw(b"most"))?;
                let times = self.integer()?;
                need(self.kw(b"times"))?;
                Some(StepKind::Retry { target, times })
            }
            b"goal" => {
                self.kw(b"goal");
                Some(StepKind::Goal)
            }
            b"exit" => {
                self.kw(b"exit");
                Some(StepKind::Exit)
            }
            _ => None,
        }
    }

    /// After `via`: `preferred channel [a, b]`.
    fn preferred_channel(&mut self) -> Option<Vec<Ident>> {
        need(self.kw(b"preferred") && self.kw(b"channel") && self.punct(b"["))?;
        self.nl();
        self.list(|p| {
            let first = p.ident()?;
            p.push(first);
            while let Some(name) = p.opt(|p| {
                p.nl();
                need(p.punct(b","))?;
                p.nl();
                p.ident()
            }) {
                p.push(name);
            }
            p.nl();
            p.punct(b",");
            p.nl();
            need(p.punct(b"]"))
        })
    }

    fn wait_for(&mut self) -> Option<StepKind> {
        need(self.kw(b"wait") && self.kw(b"for"))?;
        let event = self.ident()?;
        let binding = self.binding();
        let filter = self.where_clause();
        let within = self.within_clause();
        let then = self.block()?;
        let timeout = self.opt(|p| {
            need(p.kw(b"timeout"))?;
            p.block()
        });
        Some(StepKind::WaitFor(Box::new(WaitFor {
            event,
            binding,
            filter,
            within,
            then,
            timeout,
        })))
    }

    fn wait_until(&mut self) -> Option<StepKind> {
        need(self.kw(b"wait") && self.kw(b"until"))?;
        let from = self.time()?;
        let to = self.opt(|p| {
            need(p.punct(b".."))?;
            p.time()
        });
        self.kw(b"local");
        Some(StepKind::WaitUntil { from, to })
    }

    fn if_step(&mut self) -> Option<IfStep> {
        if self.depth >= MAX_DEPTH {
            self.delegate = true;
            return None;
        }
        need(self.kw(b"if"))?;
        let condition = self.expr()?;
        let then = self.block()?;
        let otherwise = self.opt(|p| {
            need(p.kw(b"else"))?;
            let start = p.start();
            p.depth += 1;
            let inner = p.opt(Self::if_step);
            p.depth -= 1;
            match inner {
                Some(inner) => Some(Else::If(Box::new(inner), p.span_from(start))),
                None => p.block().map(Else::Block),
            }
        });
        Some(IfStep {
            condition,
            then,
            otherwise,
        })
    }

    fn split_arm(&mut self) -> Option<SplitArm> {
        let start = self.start();
        let weight = self.percent()?;
        let name = self.ident()?;
        need(self.punct(b":"))?;
        let body = match self.opt(Self::block) {
            Some(block) => ArmBody::Block(block),
            None => {
                let step_start = self.start();
                let kind = self.step_kind()?;
                ArmBody::Step(Box::new(Step {
                    label: None,
                    kind,
                    span: self.span_from(step_start),
                }))
            }
        };
        Some(SplitArm {
            weight,
            name,
            body,
            span: self.span_from(start),
        })
    }

    // -------------------------------------------------------------- tests

    fn test_stmt(&mut self) -> Option<TestStmt> {
        let start = self.start();
        let kind = match self.peek_word() {
            b"contact" => {
                self.kw(b"contact");
                let name = self.ident()?;
                let fields = self.object()?;
                TestStmtKind::Contact { name, fields }
            }
            b"at" => {
                self.kw(b"at");
                let at = self.datetime()?;
                let contact = self.ident()?;
                let action = self.test_action()?;
                TestStmtKind::Input {
                    at,
                    contact,
                    action,
                }
            }
            b"expect" => {
                self.kw(b"expect");
                let negated = self.kw(b"no");
                let expectation = self.expectation()?;
                TestStmtKind::Expect {
                    negated,
                    expectation,
                }
            }
            _ => return None,
        };
        Some(TestStmt {
            kind,
            span: self.span_from(start),
        })
    }

    fn test_action(&mut self) -> Option<TestAction> {
        Some(match self.peek_word() {
            b"sends" => {
                self.kw(b"sends");
                let event = self.ident()?;
                let payload = self.opt(Self::object);
                TestAction::Sends { event, payload }
            }
            b"updates" => {
                self.kw(b"updates");
                TestAction::Updates(self.object()?)
            }
            b"opens" => {
                self.kw(b"opens");
                TestAction::Opens(self.step_ref()?)
            }
            b"clicks" => {
                self.kw(b"clicks");
                let step = self.step_ref()?;
                let url = self.opt(Self::string);
                TestAction::Clicks { step, url }
            }
            b"unsubscribes" => {
                self.kw(b"unsubscribes");
                let scope = self.opt(|p| {
                    need(p.kw(b"from"))?;
                    if p.kw(b"all") {
                        Some(UnsubscribeScope::All)
                    } else {
                        p.channel().map(UnsubscribeScope::Channel)
                    }
                });
                TestAction::Unsubscribes(scope.unwrap_or(UnsubscribeScope::All))
            }
            b"visits" => {
                self.kw(b"visits");
                TestAction::Visits(self.string()?)
            }
            b"grants" => {
                self.kw(b"grants");
                TestAction::Grants(self.ident()?)
            }
            _ => return None,
        })
    }

    /// `K_FOR ~ ident`: the contact an expectation is about.
    fn for_contact(&mut self) -> Option<Ident> {
        need(self.kw(b"for"))?;
        self.ident()
    }

    fn time_clause(&mut self) -> Option<TimeClause> {
        self.opt(|p| {
            let until = if p.kw(b"at") {
                false
            } else {
                need(p.kw(b"until"))?;
                true
            };
            let at = p.datetime()?;
            Some(TimeClause { until, at })
        })
    }

    fn reason(&mut self) -> Option<Ident> {
        self.opt(|p| {
            need(p.kw(b"reason"))?;
            p.ident()
        })
    }

    fn expectation(&mut self) -> Option<Expectation> {
        Some(match self.peek_word() {
            b"send" => {
                self.kw(b"send");
                let what = self.opt(|p| {
                    let channel = p.channel()?;
                    let templates = p.template_choice()?;
                    Some((channel, templates))
                });
                need(self.kw(b"to"))?;
                let contact = self.ident()?;
                let time = self.time_clause();
                Expectation::Send {
                    what,
                    contact,
                    time,
                }
            }
            b"split" => {
                self.kw(b"split");
                let step = self.step_ref()?;
                let contact = self.for_contact()?;
                let arm = self.opt(|p| {
                    need(p.kw(b"arm"))?;
                    p.ident()
                });
                let time = self.time_clause();
                Expectation::Split {
                    step,
                    contact,
                    arm,
                    time,
                }
            }
            b"tag" => {
                self.kw(b"tag");
                let tag = self.ident()?;
                let added = if self.kw(b"added") {
                    true
                } else {
                    need(self.kw(b"removed"))?;
                    false
                };
                let contact = self.for_contact()?;
                let time = self.time_clause();
                Expectation::Tag {
                    tag,
                    added,
                    contact,
                    time,
                }
            }
            b"score" => {
                self.kw(b"score");
                let score = self.ident()?;
                let contact = self.for_contact()?;
                need(self.punct(b"="))?;
                let value = self.number()?;
                let time = self.time_clause();
                Expectation::Score {
                    score,
                    contact,
                    value,
                    time,
                }
            }
            b"goal" => {
                self.kw(b"goal");
                let journey = self.ident()?;
                let contact = self.for_contact()?;
                let time = self.time_clause();
                Expectation::Goal {
                    journey,
                    contact,
                    time,
                }
            }
            b"exit" => {
                self.kw(b"exit");
                let journey = self.ident()?;
                let contact = self.for_contact()?;
                let reason = self.reason();
                let time = self.time_clause();
                Expectation::Exit {
                    journey,
                    contact,
                    reason,
                    time,
                }
            }
            b"skip" => {
                self.kw(b"skip");
                let step = self.step_ref()?;
                let contact = self.for_contact()?;
                let reason = self.reason();
                let time = self.time_clause();
                Expectation::Skip {
                    step,
                    contact,
                    reason,
                    time,
                }
            }
            b"defer" => {
                self.kw(b"defer");
                let step = self.step_ref()?;
                let contact = self.for_contact()?;
                let time = self.time_clause();
                Expectation::Defer {
                    step,
                    contact,
                    time,
                }
            }
            b"enter" => {
                self.kw(b"enter");
                let journey = self.ident()?;
                let contact = self.for_contact()?;
                let time = self.time_clause();
                Expectation::Enter {
                    journey,
                    contact,
                    time,
                }
            }
            b"nothing" => {
                self.kw(b"nothing");
                let contact = self.for_contact()?;
                need(self.kw(b"until"))?;
                let until = self.datetime()?;
                Expectation::Nothing { contact, until }
            }
            _ => return None,
        })
    }

    /// `ident | "(" ~ ident ~ ("|" ~ ident)+ ~ ")"`
    fn template_choice(&mut self) -> Option<Vec<Ident>> {
        if let Some(name) = self.opt(Self::ident) {
            return Some(vec![name]);
        }
        need(self.punct(b"("))?;
        let mark = Ident::stack(self.scratch).len();
        self.list(|p| {
            let first = p.ident()?;
            p.push(first);
            while let Some(name) = p.opt(|p| {
                need(p.punct(b"|"))?;
                p.ident()
            }) {
                p.push(name);
            }
            need(Ident::stack(p.scratch).len() - mark >= 2 && p.punct(b")"))
        })
    }

    fn step_ref(&mut self) -> Option<StepRef> {
        let start = self.start();
        let first = self.ident()?;
        let second = self.opt(|p| {
            need(p.punct(b"."))?;
            p.ident()
        });
        let (journey, step) = match second {
            Some(step) => (Some(first), step),
            None => (None, first),
        };
        Some(StepRef {
            journey,
            step,
            span: self.span_from(start),
        })
    }

    fn path(&mut self) -> Option<Path> {
        let start = self.start();
        let segments = self.list(|p| {
            let first = p.ident()?;
            p.push(first);
            while let Some(name) = p.opt(|p| {
                need(p.punct(b"."))?;
                p.ident()
            }) {
                p.push(name);
            }
            Some(())
        })?;
        Some(Path {
            segments,
            span: self.span_from(start),
        })
    }

    /// `"{" ~ nl ~ (object_entry ~ (list_sep ~ object_entry)* ~ list_sep?)? ~ nl ~ "}"`
    fn object(&mut self) -> Option<Vec<ObjectEntry>> {
        need(self.punct(b"{"))?;
        self.nl();
        if self.punct(b"}") {
            return Some(Vec::new());
        }
        self.list(|p| {
            let first = p.object_entry()?;
            p.push(first);
            loop {
                if p.list_seps()
                    && let Some(entry) = p.opt(Self::object_entry)
                {
                    p.push(entry);
                    continue;
                }
                p.nl();
                return need(p.punct(b"}"));
            }
        })
    }

    fn object_entry(&mut self) -> Option<ObjectEntry> {
        let start = self.start();
        let key = self.ident()?;
        need(self.punct(b":"))?;
        let value = self.expr()?;
        Some(ObjectEntry {
            key,
            value,
            span: self.span_from(start),
        })
    }

    // -------------------------------------------------------------- expressions

    /// `term ~ (infix ~ nl ~ term)*`, then the Pratt parser over that stream.
    fn expr(&mut self) -> Option<Expr> {
        let base = self.scratch.pieces.len();
        let start = self.start();
        if self.term().is_none() {
            self.scratch.pieces.truncate(base);
            return None;
        }
        let mut operators = 0;
        loop {
            let m = self.mark();
            let len = self.scratch.pieces.len();
            let Some(op) = self.infix() else {
                self.reset(m);
                break;
            };
            self.scratch.pieces.push(Piece::Infix(op));
            self.nl();
            if self.term().is_none() {
                self.reset(m);
                self.scratch.pieces.truncate(len);
                break;
            }
            operators += 1;
        }
        if operators > MAX_OPERATORS {
            // The reference reports it; here the stream need not even be built.
            self.delegate = true;
            self.scratch.pieces.truncate(base);
            return Some(Expr {
                kind: ExprKind::Literal(Literal::Bool(false)),
                span: self.span_from(start),
            });
        }
        let mut stream = self.scratch.pieces.drain(base..).peekable();
        pratt(&mut stream, 0)
    }

    /// `prefix* ~ primary ~ postfix*`, pushed onto the stream.
    fn term(&mut self) -> Option<()> {
        let first_prefix = self.scratch.pieces.len();
        let mut prefixes = 0;
        loop {
            let start = self.start();
            if self.kw(b"not") {
                self.scratch
                    .pieces
                    .push(Piece::Prefix(UnaryOp::Not, self.rel(start, self.end)));
            } else if self.at(start) == b'-' {
                self.pos += 1;
                self.end = self.pos;
                self.scratch
                    .pieces
                    .push(Piece::Prefix(UnaryOp::Neg, self.rel(start, self.end)));
            } else {
                break;
            }
            prefixes += 1;
        }
        if prefixes > MAX_NESTING {
            // The reference reports it; the stream is only recognized, not built.
            self.delegate = true;
            self.scratch.pieces.truncate(first_prefix);
        }
        let primary = self.primary()?;
        self.scratch.pieces.push(Piece::Primary(primary));
        loop {
            let m = self.mark();
            let start = self.start();
            if self.at(start) == b'.' {
                self.pos += 1;
                self.end = self.pos;
                if let Some(name) = self.ident() {
                    let span = self.span_from(start);
                    self.scratch
                        .pieces
                        .push(Piece::Postfix(Postfix::Member(name), span));
                    continue;
                }
            } else if self.kw(b"is") {
                if self.kw(b"set") {
                    let span = self.span_from(start);
                    self.scratch
                        .pieces
                        .push(Piece::Postfix(Postfix::IsSet, span));
                    continue;
                }
                if self.kw(b"not") && self.kw(b"set") {
                    let span = self.span_from(start);
                    self.scratch
                        .pieces
                        .push(Piece::Postfix(Postfix::IsNotSet, span));
                    continue;
                }
            }
            self.reset(m);
            return Some(());
        }
    }

    fn infix(&mut self) -> Option<BinaryOp> {
        let at = self.start();
        let (op, len) = match (self.at(at), self.at(at + 1)) {
            (b'o', _) => return self.kw(b"or").then_some(BinaryOp::Or),
            (b'a', _) => return self.kw(b"and").then_some(BinaryOp::And),
            (b'n', _) => {
                return (self.kw(b"not") && self.kw(b"in")).then_some(BinaryOp::NotIn);
            }
            (b'i', _) => return self.kw(b"in").then_some(BinaryOp::In),
            (b'=', b'=') => (BinaryOp::Eq, 2),
            (b'!', b'=') => (BinaryOp::Ne, 2),
            (b'<', b'=') => (BinaryOp::Le, 2),
            (b'>', b'=') => (BinaryOp::Ge, 2),
            (b'<', _) => (BinaryOp::Lt, 1),
            (b'>', _) => (BinaryOp::Gt, 1),
            (b'+', _) => (BinaryOp::Add, 1),
            (b'-', _) => (BinaryOp::Sub, 1),
            (b'*', _) => (BinaryOp::Mul, 1),
            (b'/', _) => (BinaryOp::Div, 1),
            _ => return None,
        };
        self.pos += len;
        self.end = self.pos;
        Some(op)
    }

    /// `paren | call | literal | list_lit | object | ident`
    fn primary(&mut self) -> Option<Expr> {
        let start = self.start();
        let kind = match self.at(start) {
            b'(' => {
                self.pos += 1;
                self.nl();
                let inner = self.expr()?;
                self.nl();
                need(self.punct(b")"))?;
                ExprKind::Paren(Box::new(inner))
            }
            b'[' => {
                self.pos += 1;
                self.nl();
                let items = self.list(|p| {
                    p.comma_separated(Self::expr);
                    p.nl();
                    need(p.punct(b"]"))
                })?;
                ExprKind::List(items)
            }
            b'{' => ExprKind::Object(self.object()?),
            b'0'..=b'9' | b'"' => ExprKind::Literal(self.literal()?),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                if self.ident_then(b'(')
                    && let Some(call) = self.opt(Self::call)
                {
                    ExprKind::Call(call)
                } else if self.kw(b"true") {
                    ExprKind::Literal(Literal::Bool(true))
                } else if self.kw(b"false") {
                    ExprKind::Literal(Literal::Bool(false))
                } else {
                    ExprKind::Name(self.ident()?)
                }
            }
            _ => return None,
        };
        Some(Expr {
            kind,
            span: self.span_from(start),
        })
    }

    fn call(&mut self) -> Option<Call> {
        let function = self.ident()?;
        need(self.punct(b"("))?;
        self.nl();
        let args = self.list(|p| {
            p.comma_separated(Self::call_arg);
            p.nl();
            need(p.punct(b")"))
        })?;
        Some(Call { function, args })
    }

    fn call_arg(&mut self) -> Option<CallArg> {
        let start = self.start();
        let value = self.expr()?;
        let filter = self.where_clause();
        let within = self.within_clause();
        Some(CallArg {
            value,
            filter,
            within,
            span: self.span_from(start),
        })
    }

    // -------------------------------------------------------------- literals

    /// `datetime | date | time | money | duration_lit | percent | number | string`
    /// (`boolean` is read with the names).
    fn literal(&mut self) -> Option<Literal> {
        let start = self.start();
        if self.at(start) == b'"' {
            return self.string().map(Literal::String);
        }
        let b = self.b;
        if datetime_end(b, start).is_some() {
            return self.datetime().map(Literal::DateTime);
        }
        if let Some(end) = date_end(b, start) {
            let (year, month, day) = self.check_date(start);
            self.pos = end;
            self.end = end;
            return Some(Literal::Date(DateLit {
                year,
                month,
                day,
                span: self.rel(start, end),
            }));
        }
        if time_end(b, start).is_some() {
            return self.time().map(Literal::Time);
        }
        if let Some(end) = money_end(b, start) {
            let text = &self.src[start..end];
            let digits = text
                .bytes()
                .take_while(|c| c.is_ascii_digit() || *c == b'.')
                .count();
            self.pos = end;
            self.end = end;
            return Some(Literal::Money(Money {
                amount: Number {
                    text: text[..digits].to_string(),
                },
                currency: text[digits..].trim().to_string(),
            }));
        }
        if duration_lit_end(b, start).is_some() {
            return self.duration().map(Literal::Duration);
        }
        if let Some(percent) = self.opt(Self::percent) {
            return Some(Literal::Percent(percent));
        }
        self.number().map(Literal::Number)
    }

    fn string(&mut self) -> Option<StringLit> {
        let start = self.start();
        let b = self.b;
        if self.at(start) != b'"' {
            return None;
        }
        if b[start..].starts_with(b"\"\"\"")
            && let Some(close) = find(b, start + 3, b"\"\"\"")
        {
            self.pos = close + 3;
            self.end = self.pos;
            self.triple = true;
            let len = content_len(&self.src[start..self.pos]);
            return Some(StringLit {
                value: self.src[start + 3..close].to_string(),
                triple: true,
                span: self.rel(start, start + len),
            });
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            i += b
                .get(i..)?
                .iter()
                .position(|c| matches!(c, b'"' | b'\n' | b'\r' | b'\\'))?;
            match b[i] {
                b'"' => break,
                b'\n' | b'\r' => return None,
                _ => {
                    let next = *b.get(i + 1)?;
                    if !matches!(next, b'n' | b't' | b'"' | b'\\') {
                        // An unknown escape: the reference reports it.
                        self.delegate = true;
                    }
                    escaped = true;
                    i += 2;
                }
            }
        }
        let body = &self.src[start + 1..i];
        let value = if escaped {
            let mut out = String::with_capacity(body.len());
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => {}
                }
            }
            out
        } else {
            body.to_string()
        };
        self.pos = i + 1;
        self.end = self.pos;
        Some(StringLit {
            value,
            triple: false,
            span: self.rel(start, self.pos),
        })
    }

    fn datetime(&mut self) -> Option<DateTimeLit> {
        let start = self.start();
        let end = datetime_end(self.b, start)?;
        self.check_date(start);
        let text = &self.src[start..end];
        let hour = two_digits(self.b, start + 11);
        let minute = two_digits(self.b, start + 14);
        let second = if self.at(start + 16) == b':' {
            two_digits(self.b, start + 17)
        } else {
            0
        };
        if hour > 23 || minute > 59 || second > 59 {
            self.delegate = true;
        }
        self.pos = end;
        self.end = end;
        Some(DateTimeLit {
            text: text.to_string(),
            span: self.rel(start, end),
        })
    }

    /// Year, month and day of the date at `start`; a day that does not exist is the
    /// reference's to report.
    fn check_date(&mut self, start: usize) -> (u16, u8, u8) {
        let b = self.b;
        let year = u16::from(two_digits(b, start)) * 100 + u16::from(two_digits(b, start + 2));
        let month = two_digits(b, start + 5);
        let day = two_digits(b, start + 8);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            self.delegate = true;
        }
        (year, month, day)
    }

    fn time(&mut self) -> Option<TimeLit> {
        let start = self.start();
        let end = time_end(self.b, start)?;
        let hour = two_digits(self.b, start);
        let minute = two_digits(self.b, start + 3);
        if hour > 23 || minute > 59 {
            self.delegate = true;
        }
        self.pos = end;
        self.end = end;
        Some(TimeLit {
            hour,
            minute,
            span: self.rel(start, end),
        })
    }

    /// `duration_lit`: `2h`, `7 days`, `6 months`.
    fn duration(&mut self) -> Option<DurationLit> {
        let start = self.start();
        let end = duration_lit_end(self.b, start)?;
        let text = &self.src[start..end];
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let unit = duration_unit(text[digits..].trim_start_matches(' '));
        let value = text[..digits]
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= 1_000_000_000);
        self.pos = end;
        self.end = end;
        let span = self.rel(start, end);
        match (unit, value) {
            (Some(unit), Some(value)) => Some(DurationLit { value, unit, span }),
            _ => {
                self.delegate = true;
                Some(DurationLit {
                    value: 0,
                    unit: DurationUnit::Seconds,
                    span,
                })
            }
        }
    }

    fn percent(&mut self) -> Option<Percent> {
        let start = self.start();
        let digits = decimal_end(self.b, start)?;
        if self.at(digits) != b'%' {
            return None;
        }
        self.pos = digits + 1;
        self.end = self.pos;
        Some(Percent {
            value: Number {
                text: self.src[start..digits].to_string(),
            },
            span: self.rel(start, self.pos),
        })
    }

    fn number(&mut self) -> Option<Number> {
        let start = self.start();
        let end = decimal_end(self.b, start)?;
        if is_idc(self.at(end)) {
            return None;
        }
        self.pos = end;
        self.end = end;
        Some(Number {
            text: self.src[start..end].to_string(),
        })
    }

    fn signed_number(&mut self) -> Option<SignedNumber> {
        let start = self.start();
        let negative = match self.at(start) {
            b'-' => true,
            b'+' => false,
            _ => return None,
        };
        let end = decimal_end(self.b, start + 1)?;
        self.pos = end;
        self.end = end;
        Some(SignedNumber {
            negative,
            magnitude: Number {
                text: self.src[start + 1..end].to_string(),
            },
            span: self.rel(start, end),
        })
    }

    fn integer(&mut self) -> Option<u32> {
        let start = self.start();
        let end = digits_end(self.b, start)?;
        if is_idc(self.at(end)) {
            return None;
        }
        self.pos = end;
        self.end = end;
        match self.src[start..end].parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.delegate = true;
                Some(0)
            }
        }
    }
}

// ------------------------------------------------------------------ Pratt

/// Binding powers, as `parse.rs` declares them for pest's Pratt parser: each level ten
/// above the one before, a prefix operator's operand binding one below its own level.
fn infix_power(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 10,
        BinaryOp::And => 20,
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In
        | BinaryOp::NotIn => 40,
        BinaryOp::Add | BinaryOp::Sub => 50,
        BinaryOp::Mul | BinaryOp::Div => 60,
    }
}

fn prefix_power(op: UnaryOp) -> u8 {
    match op {
        UnaryOp::Not => 30,
        UnaryOp::Neg => 70,
    }
}

const POSTFIX_POWER: u8 = 80;

type Stream<'a> = std::iter::Peekable<std::vec::Drain<'a, Piece>>;

fn power(piece: Option<&Piece>) -> u8 {
    match piece {
        None | Some(Piece::Primary(_)) => 0,
        Some(Piece::Infix(op)) => infix_power(*op),
        Some(Piece::Prefix(op, _)) => prefix_power(*op),
        Some(Piece::Postfix(..)) => POSTFIX_POWER,
    }
}

fn pratt(stream: &mut Stream<'_>, min: u8) -> Option<Expr> {
    let mut lhs = match stream.next()? {
        Piece::Primary(e) => e,
        Piece::Prefix(op, span) => {
            let rhs = pratt(stream, prefix_power(op) - 1)?;
            Expr {
                span: span.cover(rhs.span),
                kind: ExprKind::Unary(op, Box::new(rhs)),
            }
        }
        Piece::Postfix(..) | Piece::Infix(_) => return None,
    };
    while min < power(stream.peek()) {
        lhs = match stream.next()? {
            Piece::Infix(op) => {
                let rhs = pratt(stream, infix_power(op))?;
                Expr {
                    span: lhs.span.cover(rhs.span),
                    kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                }
            }
            Piece::Postfix(post, span) => {
                let span = lhs.span.cover(span);
                let expr = Box::new(lhs);
                let kind = match post {
                    Postfix::Member(name) => ExprKind::Member(expr, name),
                    Postfix::IsSet => ExprKind::IsSet {
                        expr,
                        negated: false,
                    },
                    Postfix::IsNotSet => ExprKind::IsSet {
                        expr,
                        negated: true,
                    },
                };
                Expr { kind, span }
            }
            Piece::Primary(_) | Piece::Prefix(..) => return None,
        };
    }
    Some(lhs)
}

// ------------------------------------------------------------------ atomic rules
// Each returns where the rule's text ends when it matches at `at`.

fn digit(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

fn idc_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|c| is_idc(*c))
}

fn two_digits(b: &[u8], i: usize) -> u8 {
    let d = |i: usize| b.get(i).map_or(0, |c| c.wrapping_sub(b'0'));
    d(i) * 10 + d(i + 1)
}

fn digits_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    while digit(b, i) {
        i += 1;
    }
    (i > at).then_some(i)
}

/// `ASCII_DIGIT+ ~ ("." ~ ASCII_DIGIT+)?`
fn decimal_end(b: &[u8], at: usize) -> Option<usize> {
    let end = digits_end(b, at)?;
    if b.get(end) == Some(&b'.')
        && let Some(fraction) = digits_end(b, end + 1)
    {
        return Some(fraction);
    }
    Some(end)
}

fn digits_exactly(b: &[u8], at: usize, n: usize) -> bool {
    (at..at + n).all(|i| digit(b, i))
}

/// `ASCII_DIGIT{4} - ASCII_DIGIT{2} - ASCII_DIGIT{2}`
fn ymd(b: &[u8], at: usize) -> bool {
    digits_exactly(b, at, 4)
        && b.get(at + 4) == Some(&b'-')
        && digits_exactly(b, at + 5, 2)
        && b.get(at + 7) == Some(&b'-')
        && digits_exactly(b, at + 8, 2)
}

fn date_end(b: &[u8], at: usize) -> Option<usize> {
    let end = at + 10;
    (ymd(b, at) && b.get(end) != Some(&b'T') && !idc_at(b, end)).then_some(end)
}

fn datetime_end(b: &[u8], at: usize) -> Option<usize> {
    if !(ymd(b, at)
        && b.get(at + 10) == Some(&b'T')
        && digits_exactly(b, at + 11, 2)
        && b.get(at + 13) == Some(&b':')
        && digits_exactly(b, at + 14, 2))
    {
        return None;
    }
    let mut i = at + 16;
    if b.get(i) == Some(&b':') && digits_exactly(b, i + 1, 2) {
        i += 3;
    }
    match b.get(i) {
        Some(b'Z') => Some(i + 1),
        Some(b'+' | b'-')
            if digits_exactly(b, i + 1, 2)
                && b.get(i + 3) == Some(&b':')
                && digits_exactly(b, i + 4, 2) =>
        {
            Some(i + 6)
        }
        _ => None,
    }
}

fn time_end(b: &[u8], at: usize) -> Option<usize> {
    let end = at + 5;
    (digits_exactly(b, at, 2)
        && b.get(at + 2) == Some(&b':')
        && digits_exactly(b, at + 3, 2)
        && b.get(end) != Some(&b':')
        && !idc_at(b, end))
    .then_some(end)
}

/// `decimal ~ " "* ~ ASCII_ALPHA_UPPER{3} ~ !IDC`
fn money_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = decimal_end(b, at)?;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let upper = (i..i + 3).all(|j| b.get(j).is_some_and(u8::is_ascii_uppercase));
    (upper && !idc_at(b, i + 3)).then_some(i + 3)
}

/// The IDC run at `at`.
fn word(b: &[u8], at: usize) -> &[u8] {
    let mut end = at;
    while idc_at(b, end) {
        end += 1;
    }
    &b[at..end]
}

/// `calendar_duration | duration | bad_duration`
fn duration_lit_end(b: &[u8], at: usize) -> Option<usize> {
    let digits = digits_end(b, at)?;
    let mut spaced = digits;
    while b.get(spaced) == Some(&b' ') {
        spaced += 1;
    }
    if spaced > digits {
        let w = word(b, spaced);
        if matches!(
            w,
            b"months"
                | b"month"
                | b"years"
                | b"year"
                | b"seconds"
                | b"second"
                | b"minutes"
                | b"minute"
                | b"hours"
                | b"hour"
                | b"days"
                | b"day"
                | b"weeks"
                | b"week"
        ) {
            return Some(spaced + w.len());
        }
    }
    match b.get(digits) {
        Some(b's' | b'm' | b'h' | b'd' | b'w') if !idc_at(b, digits + 1) => Some(digits + 1),
        Some(c) if c.is_ascii_alphabetic() => Some(digits + word(b, digits).len()),
        _ => None,
    }
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}
